//! openraft over the [`crate::transport`], for any Raft group.
//!
//! [`GroupNetworkFactory`] is the client side (openraft's
//! `RaftNetworkFactory`), [`RaftService`] the server side (a
//! [`GroupHandler`] wrapping the group's `Raft`). Both are generic over the
//! group's type config, so a quorum queue's group registers the same way the
//! metadata group does: build its `Raft<C>` with a `GroupNetworkFactory` for
//! its group id, then `registry.register(id, Arc::new(RaftService::new(raft)))`.
//!
//! Payloads go through a [`Codec`]: JSON for the metadata group (its ops
//! hold JSON maps bincode cannot read back), bincode for quorum queues
//! (JSON would turn a 1 KiB body into a 3-4 KiB array of numbers). Also
//! carried: a client write forwarded from a follower to the leader
//! ([`RPC_FORWARD`]).

use crate::group::{GroupHandler, GroupId, HandlerFuture};
use crate::transport::{CallError, Transport};
use crate::NodeId;
use bytes::Bytes;
use futures_util::FutureExt;
use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, ClientWriteResponse, InstallSnapshotRequest,
    InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode, Raft, RaftTypeConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

pub const RPC_APPEND: u8 = 1;
pub const RPC_VOTE: u8 = 2;
pub const RPC_SNAPSHOT: u8 = 3;
pub const RPC_FORWARD: u8 = 4;

/// How a group's RPC payloads are encoded.
pub trait Codec: Send + Sync + 'static {
    fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String>;
    fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String>;
}

/// JSON (the metadata group).
pub struct Json;

impl Codec for Json {
    fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
        serde_json::to_vec(v).map_err(|e| format!("encode: {e}"))
    }
    fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
        serde_json::from_slice(b).map_err(|e| format!("decode: {e}"))
    }
}

/// bincode (quorum queues: message bodies stay bytes).
pub struct Bincode;

impl Codec for Bincode {
    fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
        bincode::serialize(v).map_err(|e| format!("encode: {e}"))
    }
    fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
        bincode::deserialize(b).map_err(|e| format!("decode: {e}"))
    }
}

/// What a forwarded client write answers.
pub type ForwardResult<C> =
    Result<ClientWriteResponse<C>, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>;

pub struct GroupNetworkFactory<C, K = Json> {
    transport: Arc<Transport>,
    group: GroupId,
    _c: PhantomData<fn() -> (C, K)>,
}

impl<C, K> GroupNetworkFactory<C, K> {
    pub fn new(transport: Arc<Transport>, group: GroupId) -> Self {
        GroupNetworkFactory {
            transport,
            group,
            _c: PhantomData,
        }
    }
}

pub struct GroupNetwork<C, K = Json> {
    transport: Arc<Transport>,
    group: GroupId,
    target: NodeId,
    addr: String,
    _c: PhantomData<fn() -> (C, K)>,
}

impl<C, K> RaftNetworkFactory<C> for GroupNetworkFactory<C, K>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    K: Codec,
{
    type Network = GroupNetwork<C, K>;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Self::Network {
        GroupNetwork {
            transport: self.transport.clone(),
            group: self.group,
            target,
            addr: node.addr.clone(),
            _c: PhantomData,
        }
    }
}

impl<C, K> GroupNetwork<C, K>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    K: Codec,
{
    /// One RPC whose answer is the remote `Result<Resp, E>`.
    async fn rpc<Req, Resp, E>(
        &self,
        code: u8,
        req: &Req,
        ttl: Duration,
    ) -> Result<Resp, RPCError<NodeId, BasicNode, E>>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        let body = K::encode(req)
            .map_err(|e| RPCError::Network(NetworkError::new(&AnyError::error(e))))?;
        let answer = self
            .transport
            .call(&self.addr, self.group, code, &body, ttl)
            .await
            .map_err(|e| match e {
                CallError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
                CallError::Remote(_) => RPCError::Network(NetworkError::new(&e)),
            })?;
        let r: Result<Resp, E> = K::decode(&answer)
            .map_err(|e| RPCError::Network(NetworkError::new(&AnyError::error(e))))?;
        r.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                BasicNode::new(&self.addr),
                e,
            ))
        })
    }
}

impl<C, K> RaftNetwork<C> for GroupNetwork<C, K>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    K: Codec,
{
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc(RPC_APPEND, &rpc, option.hard_ttl()).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        self.rpc(RPC_SNAPSHOT, &rpc, option.hard_ttl()).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        self.rpc(RPC_VOTE, &rpc, option.hard_ttl()).await
    }
}

/// Forward a client write to the leader at `addr` (JSON payloads).
pub async fn forward<C>(
    transport: &Transport,
    addr: &str,
    group: GroupId,
    data: &C::D,
    timeout: Duration,
) -> Result<ForwardResult<C>, CallError>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
{
    forward_with::<C, Json>(transport, addr, group, data, timeout).await
}

/// Forward a client write to the node at `addr`, payloads in codec `K`.
pub async fn forward_with<C, K>(
    transport: &Transport,
    addr: &str,
    group: GroupId,
    data: &C::D,
    timeout: Duration,
) -> Result<ForwardResult<C>, CallError>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
    K: Codec,
{
    let body = K::encode(data).map_err(CallError::Remote)?;
    let answer = transport
        .call(addr, group, RPC_FORWARD, &body, timeout)
        .await?;
    K::decode(&answer).map_err(CallError::Remote)
}

/// The server side of a group: RPCs from peers into this node's `Raft`.
pub struct RaftService<C: RaftTypeConfig, K = Json> {
    raft: Raft<C>,
    _k: PhantomData<fn() -> K>,
}

impl<C: RaftTypeConfig, K> RaftService<C, K> {
    pub fn new(raft: Raft<C>) -> Self {
        RaftService {
            raft,
            _k: PhantomData,
        }
    }
}

impl<C, K> GroupHandler for RaftService<C, K>
where
    C: RaftTypeConfig<
        NodeId = NodeId,
        Node = BasicNode,
        Responder = openraft::impls::OneshotResponder<C>,
    >,
    K: Codec,
{
    fn handle(&self, rpc: u8, payload: Bytes) -> HandlerFuture {
        let raft = self.raft.clone();
        if rpc == RPC_FORWARD {
            // Proposed now, before the transport reads the next frame: the
            // writes one sender forwards in sequence enter the leader's log
            // in that sequence (a quorum enqueuer pipelines its batches and
            // counts on it). Handing a write to openraft is a send on an
            // unbounded channel: ready at the first poll.
            let proposed =
                K::decode::<C::D>(&payload).map(|d| raft.client_write_ff(d).now_or_never());
            return Box::pin(async move {
                let rx = match proposed? {
                    Some(r) => r,
                    None => return Err("raft core busy".to_string()),
                };
                let r: ForwardResult<C> = match rx {
                    Err(fatal) => Err(RaftError::Fatal(fatal)),
                    Ok(rx) => match rx.await {
                        Ok(res) => res.map_err(RaftError::APIError),
                        Err(_) => Err(RaftError::Fatal(openraft::error::Fatal::Stopped)),
                    },
                };
                Ok(Bytes::from(K::encode(&r)?))
            });
        }
        Box::pin(async move {
            let out = match rpc {
                RPC_APPEND => K::encode(&raft.append_entries(K::decode(&payload)?).await)?,
                RPC_VOTE => K::encode(&raft.vote(K::decode(&payload)?).await)?,
                RPC_SNAPSHOT => K::encode(&raft.install_snapshot(K::decode(&payload)?).await)?,
                RPC_FORWARD => {
                    let d: C::D = K::decode(&payload)?;
                    let r: ForwardResult<C> = raft.client_write(d).await;
                    K::encode(&r)?
                }
                other => return Err(format!("unknown raft rpc {other}")),
            };
            Ok(Bytes::from(out))
        })
    }
}
