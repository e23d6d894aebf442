//! The metadata Raft group: every node's vhosts, exchanges, queues and
//! bindings, as one replicated log of [`MetaOp`]s.
//!
//! * [`log_store`]: the group's durable Raft log (a file of its own, for now).
//! * [`state_machine`]: applies committed ops to this node's broker core and
//!   keeps the materialized metadata for snapshots.

pub mod log_store;
pub mod state_machine;

use serde::{Deserialize, Serialize};
use std::io::Cursor;
pub use warren_core::meta::MetaOp;

/// The answer to an applied op: the error this node's core gave, if any
/// (every node gives the same one: same log, same state).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MetaResponse {
    pub error: Option<(u16, String)>,
}

openraft::declare_raft_types!(
    /// The metadata group's types.
    pub MetaConfig:
        D = MetaOp,
        R = MetaResponse,
);

pub type MetaRaft = openraft::Raft<MetaConfig>;
