//! Warren's clustering layer.
//!
//! * [`config`]: who this node is (its name, its cluster address) and who the
//!   seed nodes are; node ids are a stable hash of node names.
//! * [`auth`]: the cluster cookie and the handshake every link passes
//!   before it carries a frame.
//! * [`transport`]: one TCP link per peer carrying requests for any number
//!   of Raft groups, told apart by [`GroupId`]; groups plug in through the
//!   [`group::GroupHandler`] trait ([`group::Registry`]).
//! * [`raft_net`]: openraft's network and RPC service for any group over that
//!   transport (generic over the group's type config).
//! * [`meta`]: the metadata Raft group (vhosts, exchanges, queues, bindings):
//!   its log storage, state machine, and how a node proposes a change.
//! * [`classic`]: classic queues reachable from every node (their messages
//!   stay on their home node; routing and delivery are forwarded).
//! * [`failover`]: the groups' Raft timers, and a fast election when a
//!   leader's process is gone.
//! * [`node`]: starting a clustered node, forming the cluster, its status.

pub mod auth;
pub mod classic;
pub mod config;
mod failover;
#[doc(hidden)]
pub mod fuzzing;
pub mod group;
pub mod meta;
mod names;
pub mod node;
pub mod quorum;
pub mod raft_net;
pub mod transport;

pub use config::{node_id, ClusterConfig, Seed};
pub use group::{GroupHandler, GroupId, Registry, META_GROUP, NODE_GROUP};
pub use node::{Cluster, ClusterStatus, NodeStatus};

/// Raft node ids are u64 (the shared openraft type configs use it).
pub type NodeId = u64;
