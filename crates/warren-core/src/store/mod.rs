//! Message storage behind an interface.
//!
//! A queue keeps its ready messages in a [`QueueStorage`]. The in-memory
//! implementation is a sorted deque; the durable one (message log on disk with a
//! bounded in-memory window) plugs in behind the same trait, so queue logic
//! (delivery, prefetch, requeue order) does not care where bytes live.

mod memory;

pub use memory::MemoryStorage;

use crate::message::QueuedMessage;

/// Ready (not yet delivered, or requeued) messages of one queue, ordered by
/// queue sequence number.
pub trait QueueStorage: Send {
    /// Append a newly published message (its seq is larger than any before).
    fn push(&mut self, msg: QueuedMessage);
    /// The next message to deliver.
    fn front(&self) -> Option<&QueuedMessage>;
    fn pop_front(&mut self) -> Option<QueuedMessage>;
    /// Put a delivered-but-unacked message back at its original position.
    fn requeue(&mut self, msg: QueuedMessage);
    /// A delivered message was acknowledged (or dropped): forget it for good.
    fn settle(&mut self, seq: u64);
    /// Number of ready messages.
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Body bytes of ready messages.
    fn bytes(&self) -> usize;
    /// Drop every ready message; returns how many.
    fn purge(&mut self) -> usize;
}
