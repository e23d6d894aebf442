//! What the management API reads from a queue: its depth (one lock), its
//! consumers, its message counters.

use super::{ConsumerInfo, Queue};
use crate::stats::MessageSnapshot;

/// A queue's message counts and body sizes at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub messages_ready: u64,
    pub messages_unacknowledged: u64,
    /// Body bytes of the ready messages (paged-out ones included).
    pub message_bytes_ready: u64,
    /// Body bytes of the delivered, unacknowledged ones.
    pub message_bytes_unacknowledged: u64,
    pub consumers: u32,
}

impl QueueDepth {
    /// RabbitMQ's `messages`: ready + unacknowledged.
    pub fn messages(&self) -> u64 {
        self.messages_ready + self.messages_unacknowledged
    }

    /// RabbitMQ's `message_bytes`: ready + unacknowledged.
    pub fn message_bytes(&self) -> u64 {
        self.message_bytes_ready + self.message_bytes_unacknowledged
    }
}

impl Queue {
    /// Message counts, byte totals and consumer count, read under one
    /// acquisition of the queue's lock.
    pub fn depth(&self) -> QueueDepth {
        if let Some(b) = self.backend() {
            return b.depth(self);
        }
        if let Some(s) = self.stream() {
            // A stream's messages are all "ready": nothing is ever taken out.
            let sum = s.summary();
            return QueueDepth {
                messages_ready: sum.messages,
                message_bytes_ready: sum.bytes,
                consumers: self.consumer_count(),
                ..QueueDepth::default()
            };
        }
        let inner = self.inner.lock();
        QueueDepth {
            messages_ready: inner.storage.len() as u64,
            messages_unacknowledged: inner.unacked as u64,
            message_bytes_ready: inner.storage.bytes() as u64,
            message_bytes_unacknowledged: inner.unacked_bytes as u64,
            consumers: inner.consumers.len() as u32,
        }
    }

    /// The queue's message counters (`publish`, `deliver`, `ack`...) and their
    /// rates; no lock.
    pub fn message_stats(&self) -> MessageSnapshot {
        self.stats.snapshot()
    }

    pub(crate) fn stats(&self) -> &crate::stats::MessageStats {
        &self.stats
    }

    /// Per second, over the last sampling interval: how fast `messages`,
    /// `messages_ready` and `messages_unacknowledged` changed (negative when
    /// the queue shrank), RabbitMQ's `*_details.rate`.
    pub fn depth_rates(&self) -> [f64; 3] {
        [
            self.depth_rates[0].get(),
            self.depth_rates[1].get(),
            self.depth_rates[2].get(),
        ]
    }

    /// Sample the depth for [`Queue::depth_rates`] (the sampler, every 5 s;
    /// one short lock of the queue).
    pub(crate) fn sample_depth(&self, secs: f64) {
        let d = self.depth();
        let levels = [d.messages(), d.messages_ready, d.messages_unacknowledged];
        for (rate, level) in self.depth_rates.iter().zip(levels) {
            rate.sample(level, secs);
        }
    }

    /// The queue's consumers, highest `x-priority` first.
    pub fn consumers_info(&self) -> Vec<ConsumerInfo> {
        if let Some(list) = self.backend().and_then(|b| b.consumers_info(self)) {
            return list;
        }
        let single_active = self.args().single_active_consumer;
        let inner = self.inner.lock();
        inner
            .consumers
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // Only the first consumer of a single-active-consumer queue
                // receives (see `deliver_locked`).
                let (active, activity_status) = match (single_active, i) {
                    (false, _) => (true, "up"),
                    (true, 0) => (true, "single_active"),
                    (true, _) => (false, "waiting"),
                };
                ConsumerInfo {
                    consumer_tag: c.tag.clone(),
                    ack_required: !c.no_ack,
                    exclusive: c.exclusive,
                    prefetch_count: c.prefetch(),
                    arguments: c.arguments.clone(),
                    active,
                    activity_status,
                    channel: c.channel,
                }
            })
            .collect()
    }
}
