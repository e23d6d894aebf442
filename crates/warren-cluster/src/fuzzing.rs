//! Entry points for the `cluster_port` fuzz target (fuzz/): every decoder a
//! peer's bytes reach through the cluster port, without sockets. Not an API.
//!
//! A peer reaches, in this order: the link handshake ([`crate::auth`]), the
//! transport's frame reader, then per group the payload decoders: JSON for
//! the metadata group and node RPCs, bincode for quorum queue groups, the
//! classic-queue wire format (applied to a real broker).

use crate::auth::{Cookie, LinkAuth};
use crate::classic::{Classic, ClassicService};
use crate::group::GroupHandler;
use crate::meta::MetaConfig;
use crate::raft_net::{Bincode, Codec, ForwardResult, Json};
use crate::transport::{read_frame, Transport};
use crate::NodeId;
use bytes::Bytes;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::RaftTypeConfig;
use std::sync::Arc;
use warren_core::Broker;
use warren_quorum::QuorumConfig;

fn auth() -> Arc<LinkAuth> {
    let cookie = Cookie::from_value("fuzz-cookie").expect("a valid cookie");
    LinkAuth::new("fuzz", &cookie)
}

/// Read frames from `data` until it ends or one is refused; how many were
/// read.
pub async fn frames(mut data: &[u8]) -> usize {
    let mut n = 0;
    while let Ok(f) = read_frame(&mut data).await {
        assert!(f.payload.len() <= crate::transport::MAX_FRAME);
        n += 1;
    }
    n
}

/// The acceptor's side of a handshake fed `data` by the dialer (what it
/// writes goes nowhere). Without the cookie it must fail.
pub async fn accept(data: &[u8]) -> bool {
    let mut s = tokio::io::join(data, tokio::io::sink());
    auth().accept(&mut s).await.is_ok()
}

/// The dialer's side, `data` being the acceptor's answers.
pub async fn dial(data: &[u8]) -> bool {
    let mut s = tokio::io::join(data, tokio::io::sink());
    auth().dial(&mut s).await.is_ok()
}

fn raft_payloads<C, K>(rpc: u8, data: &[u8])
where
    C: RaftTypeConfig<NodeId = NodeId, Node = openraft::BasicNode>,
    K: Codec,
{
    let _ = match rpc % 8 {
        0 => K::decode::<AppendEntriesRequest<C>>(data).map(drop),
        1 => K::decode::<VoteRequest<NodeId>>(data).map(drop),
        2 => K::decode::<InstallSnapshotRequest<C>>(data).map(drop),
        3 => K::decode::<C::D>(data).map(drop),
        4 => K::decode::<ForwardResult<C>>(data).map(drop),
        5 => K::decode::<AppendEntriesResponse<NodeId>>(data).map(drop),
        6 => K::decode::<VoteResponse<NodeId>>(data).map(drop),
        _ => K::decode::<InstallSnapshotResponse<NodeId>>(data).map(drop),
    };
}

/// The metadata group's and the node group's JSON payloads.
pub fn meta_payloads(rpc: u8, data: &[u8]) {
    match rpc {
        0..=7 => raft_payloads::<MetaConfig, Json>(rpc, data),
        8 => {
            let _ = serde_json::from_slice::<(String, Option<String>)>(data);
        }
        9 => {
            let _ = serde_json::from_slice::<crate::node::NodeInfo>(data);
        }
        _ => {
            let _ = serde_json::from_slice::<Option<u64>>(data);
        }
    }
}

/// A quorum queue group's bincode payloads.
pub fn quorum_payloads(rpc: u8, data: &[u8]) {
    raft_payloads::<QuorumConfig, Bincode>(rpc, data);
}

/// A classic-queue RPC from a peer, applied to `broker` as this node's
/// classic-queue service applies it.
pub async fn classic(broker: Arc<Broker>, rpc: u8, payload: &[u8]) -> Result<Bytes, String> {
    let c = Classic::new("fuzz".into(), broker, Transport::new(auth(), None));
    let service = ClassicService(Arc::downgrade(&c));
    service.handle(rpc, Bytes::copy_from_slice(payload)).await
}
