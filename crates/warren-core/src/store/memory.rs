//! In-memory queue storage.

use super::QueueStorage;
use crate::message::QueuedMessage;
use std::collections::VecDeque;

/// Ready messages in a deque ordered by sequence number. New messages go to the
/// back; requeued ones are inserted at their original position (found by binary
/// search, usually at or near the front), which keeps RabbitMQ's ordering.
#[derive(Default)]
pub struct MemoryStorage {
    ready: VecDeque<QueuedMessage>,
    bytes: usize,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }
}

impl QueueStorage for MemoryStorage {
    fn push(&mut self, msg: QueuedMessage) {
        self.bytes += msg.message.size();
        self.ready.push_back(msg);
    }

    fn front(&self) -> Option<&QueuedMessage> {
        self.ready.front()
    }

    fn pop_front(&mut self) -> Option<QueuedMessage> {
        let m = self.ready.pop_front()?;
        self.bytes -= m.message.size();
        Some(m)
    }

    fn requeue(&mut self, msg: QueuedMessage) {
        self.bytes += msg.message.size();
        let pos = self.ready.partition_point(|m| m.seq < msg.seq);
        self.ready.insert(pos, msg);
    }

    fn settle(&mut self, _seq: u64) {}

    fn len(&self) -> usize {
        self.ready.len()
    }

    fn bytes(&self) -> usize {
        self.bytes
    }

    fn purge(&mut self) -> usize {
        let n = self.ready.len();
        self.ready.clear();
        self.bytes = 0;
        n
    }
}
