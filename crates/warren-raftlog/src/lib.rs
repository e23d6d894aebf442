//! Warren's Raft log storage: one write-ahead log per node shared by every
//! Raft group on it (the metadata group and one group per quorum queue), as
//! RabbitMQ's Ra shares its WAL.
//!
//! - [`SharedWal::open`] recovers the log and starts its writer thread;
//! - [`SharedWal::group`] gives a [`GroupLog`], openraft 0.9's
//!   `RaftLogStorage` + `RaftLogReader` for that group;
//! - appends of all groups are written and fdatasync'd together, one sync
//!   per batch (`writer.rs`);
//! - segment files are rolled at a size and deleted when no group needs
//!   them (`wal.rs`). The record format is in `record.rs`.

mod group_log;
mod index;
pub mod record;
mod wal;
mod writer;

pub use group_log::GroupLog;
pub use wal::{replay_segment, SegmentScan, SharedWal, WalOptions, WalStats, SEGMENT_MAGIC};

/// For the fuzz target and tests: the per-group index recovery builds.
pub use index::GroupIndex;
