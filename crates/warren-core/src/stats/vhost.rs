//! A vhost's totals over its queues, exchanges and connections.

use super::fields::{
    ConnectionField, ExchangeField, ExchangeSnapshot, MessageField, MessageSnapshot, MESSAGE_FIELDS,
};
use super::set::Aggregate;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What a vhost's deleted queues, exchanges and closed connections had
/// counted (folded in when each went), and the sampled rates of the totals.
/// Live objects are summed when read, never counted twice on the message
/// path: a per-vhost counter would be one more cache line every publisher
/// of the vhost writes.
#[derive(Default)]
pub struct VHostStats {
    pub(crate) queues: Aggregate<MessageField, MESSAGE_FIELDS>,
    pub(crate) exchanges: Aggregate<ExchangeField, 2>,
    pub(crate) connections: Aggregate<ConnectionField, 4>,
    /// queue.declare calls that named or created a queue (redeclares too),
    /// queues created, queues deleted: RabbitMQ's `rabbitmq_queues_declared_total`,
    /// `_created_total`, `_deleted_total` (Prometheus). Off the message path.
    pub(crate) queues_declared: AtomicU64,
    pub(crate) queues_created: AtomicU64,
    pub(crate) queues_deleted: AtomicU64,
}

/// A vhost's queue lifecycle counts (see [`VHostStats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueChurn {
    pub declared: u64,
    pub created: u64,
    pub deleted: u64,
}

impl VHostStats {
    /// The vhost's queue lifecycle counts.
    pub fn queue_churn(&self) -> QueueChurn {
        QueueChurn {
            declared: self.queues_declared.load(Relaxed),
            created: self.queues_created.load(Relaxed),
            deleted: self.queues_deleted.load(Relaxed),
        }
    }
}

/// A vhost's `message_stats`: the queues' deliveries, gets, acks and
/// redeliveries, and as `publish` what clients published into its exchanges
/// (RabbitMQ's vhost `publish` counts publishes, not queue copies).
pub(crate) fn vhost_messages(
    queues: MessageSnapshot,
    exchanges: ExchangeSnapshot,
) -> MessageSnapshot {
    let mut values = [0u64; MESSAGE_FIELDS];
    let mut rates = [0f64; MESSAGE_FIELDS];
    for (i, (_, v, r)) in queues.iter().enumerate() {
        values[i] = v;
        rates[i] = r;
    }
    let p = MessageField::Publish as usize;
    values[p] = exchanges.get(ExchangeField::PublishIn);
    rates[p] = exchanges.rate(ExchangeField::PublishIn);
    MessageSnapshot::from_parts(values, rates)
}
