//! Quorum queues: one Raft group per queue, replicated with openraft.
//!
//! - `command.rs`: what the log carries (`Command`) and what applying it
//!   gives (`Outcome`: a `Reply` for the proposer, `Effect`s — deliveries
//!   and dead-letters — for the leader to carry out);
//! - `queue.rs`: `QueueState`, the deterministic queue logic (pure);
//! - `machine.rs`: `QuorumStateMachine`, openraft's `RaftStateMachine`, with
//!   snapshots persisted per group.
//!
//! The log side is `warren_raftlog::GroupLog<QuorumConfig>`.

// openraft's trait methods return its (large) StorageError.
#![allow(clippy::result_large_err)]

mod command;
mod machine;
mod queue;

pub use command::{
    Command, ConsumerId, DeadLetterReason, Effect, Message, NodeId, Outcome, Overflow,
    PublisherSeq, QueueConfig, Reply, NEVER,
};
pub use machine::{EffectSink, QuorumStateMachine};
pub use queue::QueueState;

use std::io::Cursor;

openraft::declare_raft_types!(
    /// The Raft type config of every quorum queue group.
    pub QuorumConfig:
        D = Command,
        R = Outcome,
        NodeId = u64,
        Node = openraft::BasicNode,
        Entry = openraft::Entry<QuorumConfig>,
        SnapshotData = Cursor<Vec<u8>>,
        AsyncRuntime = openraft::TokioRuntime,
);
