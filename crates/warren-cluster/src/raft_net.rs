//! openraft over the [`crate::transport`], for any Raft group.
//!
//! [`GroupNetworkFactory`] is the client side (openraft's
//! `RaftNetworkFactory`), [`RaftService`] the server side (a
//! [`GroupHandler`] wrapping the group's `Raft`). Both are generic over the
//! group's type config, so a quorum queue's group registers the same way the
//! metadata group does: build its `Raft<C>` with a `GroupNetworkFactory` for
//! its group id, then `registry.register(id, Arc::new(RaftService::new(raft)))`.
//!
//! Payloads are JSON (openraft's `serde` feature). Also carried: a client
//! write forwarded from a follower to the leader ([`RPC_FORWARD`]).

use crate::group::{GroupHandler, GroupId, HandlerFuture};
use crate::transport::{CallError, Transport};
use crate::NodeId;
use bytes::Bytes;
use openraft::error::{
    ClientWriteError, InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError,
    Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, ClientWriteResponse, InstallSnapshotRequest,
    InstallSnapshotResponse, VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft, RaftTypeConfig};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

pub const RPC_APPEND: u8 = 1;
pub const RPC_VOTE: u8 = 2;
pub const RPC_SNAPSHOT: u8 = 3;
pub const RPC_FORWARD: u8 = 4;

/// What a forwarded client write answers.
pub type ForwardResult<C> =
    Result<ClientWriteResponse<C>, RaftError<NodeId, ClientWriteError<NodeId, BasicNode>>>;

pub struct GroupNetworkFactory<C> {
    transport: Arc<Transport>,
    group: GroupId,
    _c: PhantomData<fn() -> C>,
}

impl<C> GroupNetworkFactory<C> {
    pub fn new(transport: Arc<Transport>, group: GroupId) -> Self {
        GroupNetworkFactory {
            transport,
            group,
            _c: PhantomData,
        }
    }
}

pub struct GroupNetwork<C> {
    transport: Arc<Transport>,
    group: GroupId,
    target: NodeId,
    addr: String,
    _c: PhantomData<fn() -> C>,
}

impl<C> RaftNetworkFactory<C> for GroupNetworkFactory<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
{
    type Network = GroupNetwork<C>;

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

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, String> {
    serde_json::to_vec(v).map_err(|e| format!("encode: {e}"))
}

impl<C> GroupNetwork<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
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
        let body = serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        let answer = self
            .transport
            .call(&self.addr, self.group, code, &body, ttl)
            .await
            .map_err(|e| match e {
                CallError::Unreachable(_) => RPCError::Unreachable(Unreachable::new(&e)),
                CallError::Remote(_) => RPCError::Network(NetworkError::new(&e)),
            })?;
        let r: Result<Resp, E> = serde_json::from_slice(&answer)
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        r.map_err(|e| {
            RPCError::RemoteError(RemoteError::new_with_node(
                self.target,
                BasicNode::new(&self.addr),
                e,
            ))
        })
    }
}

impl<C> RaftNetwork<C> for GroupNetwork<C>
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
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

/// Forward a client write to the leader at `addr`.
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
    let body = to_json(data).map_err(CallError::Remote)?;
    let answer = transport
        .call(addr, group, RPC_FORWARD, &body, timeout)
        .await?;
    serde_json::from_slice(&answer).map_err(|e| CallError::Remote(format!("decode: {e}")))
}

/// The server side of a group: RPCs from peers into this node's `Raft`.
pub struct RaftService<C: RaftTypeConfig> {
    raft: Raft<C>,
}

impl<C: RaftTypeConfig> RaftService<C> {
    pub fn new(raft: Raft<C>) -> Self {
        RaftService { raft }
    }
}

fn decode<T: DeserializeOwned>(b: &[u8]) -> Result<T, String> {
    serde_json::from_slice(b).map_err(|e| format!("decode: {e}"))
}

impl<C> GroupHandler for RaftService<C>
where
    C: RaftTypeConfig<
        NodeId = NodeId,
        Node = BasicNode,
        Responder = openraft::impls::OneshotResponder<C>,
    >,
{
    fn handle(&self, rpc: u8, payload: Bytes) -> HandlerFuture {
        let raft = self.raft.clone();
        Box::pin(async move {
            let out = match rpc {
                RPC_APPEND => to_json(&raft.append_entries(decode(&payload)?).await)?,
                RPC_VOTE => to_json(&raft.vote(decode(&payload)?).await)?,
                RPC_SNAPSHOT => to_json(&raft.install_snapshot(decode(&payload)?).await)?,
                RPC_FORWARD => {
                    let d: C::D = decode(&payload)?;
                    let r: ForwardResult<C> = raft.client_write(d).await;
                    to_json(&r)?
                }
                other => return Err(format!("unknown raft rpc {other}")),
            };
            Ok(Bytes::from(out))
        })
    }
}
