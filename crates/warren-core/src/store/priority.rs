//! Priority queues (`x-max-priority`): one paged sub-queue per priority level.
//!
//! The head is the head of the highest non-empty level, so higher priorities
//! overtake lower ones and each level stays FIFO, as in RabbitMQ.

use super::log::MessageLog;
use super::recovered::RecoveredQueue;
use super::{PagedStorage, QueueStorage};
use crate::message::QueuedMessage;
use crate::shortstr::ShortStr;
use std::sync::Arc;

pub struct PriorityStorage {
    /// Index = priority.
    levels: Vec<PagedStorage>,
}

impl PriorityStorage {
    pub fn new(log: Arc<MessageLog>, queue_id: u64, name: ShortStr, max: u8) -> Self {
        PriorityStorage {
            levels: (0..=max)
                .map(|_| PagedStorage::new(log.clone(), queue_id, name.clone()))
                .collect(),
        }
    }

    fn level(&mut self, priority: u8) -> &mut PagedStorage {
        let i = (priority as usize).min(self.levels.len() - 1);
        &mut self.levels[i]
    }
}

impl QueueStorage for PriorityStorage {
    fn push(&mut self, msg: QueuedMessage) {
        self.level(msg.priority).push(msg);
    }

    fn front(&mut self) -> Option<&QueuedMessage> {
        // Why not just `top()?.front()`: reading the head back from disk may drop
        // unreadable entries and empty the top level; the head is then in a lower
        // level, and answering `None` while messages are ready would stop the
        // queue from offering with nothing to wake it.
        let i = self.levels.iter_mut().rposition(|l| l.front().is_some())?;
        self.levels[i].front()
    }

    fn pop_front(&mut self) -> Option<QueuedMessage> {
        // Same as `front`: the first level whose head can be read.
        self.levels.iter_mut().rev().find_map(|l| l.pop_front())
    }

    fn requeue(&mut self, msg: QueuedMessage) {
        self.level(msg.priority).requeue(msg);
    }

    fn settle(&mut self, msgs: &[QueuedMessage]) {
        // Settling only touches the log, which every level shares.
        self.levels[0].settle(msgs);
    }

    fn len(&self) -> usize {
        self.levels.iter().map(|l| l.len()).sum()
    }

    fn bytes(&self) -> usize {
        self.levels.iter().map(|l| l.bytes()).sum()
    }

    fn purge(&mut self) -> usize {
        self.levels.iter_mut().map(|l| l.purge()).sum()
    }

    fn recover(&mut self, msgs: RecoveredQueue, first_seq: u64, ttl: Option<u64>) -> u64 {
        // One recovered backlog per level, read lazily as each drains (a
        // message's level is only known from its entry, so the split reads
        // the entries once to count them). Each level keeps publish order;
        // sequence numbers stay unique.
        let log = self.levels[0].log().clone();
        let parts = msgs.split_levels(&log, self.levels.len());
        let mut seq = first_seq;
        for (level, part) in self.levels.iter_mut().zip(parts) {
            seq = level.recover(part, seq, ttl);
        }
        seq
    }
}
