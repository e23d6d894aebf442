//! The metadata Raft group: every node's vhosts, exchanges, queues and
//! bindings, as one replicated log of [`MetaOp`]s.
//!
//! * The group's Raft log is group 0 ([`crate::group::META_GROUP`]) of the
//!   node's shared WAL (warren-raftlog), so one fsync batch covers metadata
//!   and quorum queues alike; [`MetaEntry`] makes ops storable there.
//! * [`log_store`]: the log's former file (`meta-raft.log`), kept only to read
//!   it once ([`migrate`]).
//! * [`state_machine`]: applies committed ops to this node's broker core and
//!   keeps the materialized metadata for snapshots.

pub mod log_store;
pub mod migrate;
pub mod state_machine;

use serde::{Deserialize, Serialize};
use std::io::Cursor;
pub use warren_core::meta::MetaOp;

/// A [`MetaOp`] as a Raft entry. The shared WAL stores entries with bincode,
/// which cannot decode `MetaOp` (an internally tagged enum, and policies hold
/// `serde_json` maps: both need a self-describing format). So in a binary
/// format the op travels as its JSON text; in a human-readable one (the
/// group's JSON RPCs, the old `meta-raft.log`) it is the op itself, as before,
/// so the wire format between nodes is unchanged.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaEntry(pub MetaOp);

impl Serialize for MetaEntry {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            self.0.serialize(s)
        } else {
            let json = serde_json::to_string(&self.0).map_err(serde::ser::Error::custom)?;
            s.serialize_str(&json)
        }
    }
}

impl<'de> Deserialize<'de> for MetaEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            MetaOp::deserialize(d).map(MetaEntry)
        } else {
            let json = String::deserialize(d)?;
            serde_json::from_str(&json)
                .map(MetaEntry)
                .map_err(serde::de::Error::custom)
        }
    }
}

/// The answer to an applied op: the error this node's core gave, if any
/// (every node gives the same one: same log, same state).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct MetaResponse {
    pub error: Option<(u16, String)>,
}

openraft::declare_raft_types!(
    /// The metadata group's types.
    pub MetaConfig:
        D = MetaEntry,
        R = MetaResponse,
);

pub type MetaRaft = openraft::Raft<MetaConfig>;
