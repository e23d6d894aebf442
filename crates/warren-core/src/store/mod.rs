//! Message storage.
//!
//! A queue keeps its ready messages in a [`QueueStorage`]; the implementation,
//! [`PagedStorage`], keeps a bounded window of bodies in memory and the rest in the
//! shared [`MessageLog`]. Durable definitions (exchanges, queues, bindings) are in
//! [`definitions`].

pub mod budget;
mod compact;
pub mod definitions;
pub mod log;
mod paged;
mod priority;
pub mod record;
pub mod recovered;
pub mod spill;
pub mod stream_index;
pub mod stream_reader;
pub mod stream_summary;
pub mod summary;

pub use log::{Loc, LogOptions, MessageLog};
pub use paged::PagedStorage;
pub use priority::PriorityStorage;
pub use recovered::{RecoveredEntry, RecoveredQueue};

use crate::message::QueuedMessage;

/// Ready (not yet delivered, or requeued) messages of one queue, ordered by
/// queue sequence number.
pub trait QueueStorage: Send {
    /// Append a newly published message (its seq is larger than any before).
    fn push(&mut self, msg: QueuedMessage);
    /// The next message to deliver (read back from disk if it was paged out).
    fn front(&mut self) -> Option<&QueuedMessage>;
    fn pop_front(&mut self) -> Option<QueuedMessage>;
    /// Put a delivered-but-unacked message back at its original position.
    fn requeue(&mut self, msg: QueuedMessage);
    /// Delivered messages were acknowledged (or dropped): forget them for good.
    fn settle(&mut self, msgs: &[QueuedMessage]);
    /// Number of ready messages.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Body bytes of ready messages.
    fn bytes(&self) -> usize;
    /// Drop every ready message; returns how many.
    fn purge(&mut self) -> usize;
    /// Attach a queue's backlog recovered at startup, numbering its messages
    /// from `first_seq`; `ttl` is the queue's message TTL (expiry counts from
    /// each message's publish time). Returns the next free sequence number.
    fn recover(&mut self, msgs: RecoveredQueue, first_seq: u64, ttl: Option<u64>) -> u64;
}

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The broker's on-disk state: the message log and the definitions file, both in
/// the data directory.
pub struct Store {
    /// The data directory: adapters keep their own durable state under it
    /// (MQTT's retained messages in `mqtt/`).
    pub dir: std::path::PathBuf,
    pub log: Arc<MessageLog>,
    pub definitions: definitions::DefinitionStore,
    next_queue_id: AtomicU64,
}

/// What a restart found on disk.
pub struct Recovered {
    pub definitions: definitions::Definitions,
    /// Persistent messages per durable queue id, in publish order.
    pub messages: log::RecoveredQueues,
}

impl Store {
    /// Open the data directory: load definitions, replay the message log.
    pub fn open(data_dir: &Path, options: &LogOptions) -> std::io::Result<(Arc<Store>, Recovered)> {
        let (definitions, defs) = definitions::DefinitionStore::open(data_dir)?;
        let (log, messages) = MessageLog::open(&data_dir.join("messages"), options)?;
        let max_stream = log.max_recovered_stream();
        let store = Arc::new(Store {
            dir: data_dir.to_path_buf(),
            log,
            definitions,
            // Never reuse the id of a queue that still has live records in the
            // log (a deleted queue whose acks a crash lost): a new queue with
            // that id would inherit its messages at the next start.
            next_queue_id: AtomicU64::new(
                defs.max_queue_id()
                    .max(messages.keys().copied().max().unwrap_or(0))
                    .max(max_stream)
                    + 1,
            ),
        });
        Ok((
            store,
            Recovered {
                definitions: defs,
                messages,
            },
        ))
    }

    /// An id for a new durable queue.
    pub fn next_queue_id(&self) -> u64 {
        self.next_queue_id.fetch_add(1, Ordering::Relaxed)
    }
}
