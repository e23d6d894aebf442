//! A vhost's totals over its queues, exchanges and connections.

use super::channel::{PublishSnapshot, PublishStats};
use super::fields::{
    ConnectionField, ExchangeField, ExchangeSnapshot, MessageField, MessageSnapshot, MESSAGE_FIELDS,
};
use super::set::Aggregate;
use crate::queue::Reason;
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
    /// Confirms, returns and drops of the vhost's channels, counted as they
    /// happen (once per confirm batch; unroutable messages are off the fast
    /// path), so closed channels' counts stay in the totals.
    pub(crate) publishing: PublishStats,
    /// Publishes received on confirm-mode channels (added once per confirm
    /// batch): Prometheus' `rabbitmq_global_messages_received_confirm_total`.
    pub(crate) received_confirm: AtomicU64,
    /// Messages dead-lettered, by [`DeadLetterStrategy`] and reason.
    dead_lettered: [[AtomicU64; 4]; 2],
}

/// Whether a dead-lettered message went somewhere (RabbitMQ's
/// `dead_letter_strategy` label for classic queues).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetterStrategy {
    /// The queue has no dead-letter exchange: the message is dropped.
    Disabled = 0,
    /// Republished to the dead-letter exchange, unconfirmed.
    AtMostOnce = 1,
}

impl VHostStats {
    /// Count a message dead-lettered for `reason` under `strategy`.
    pub(crate) fn count_dead_lettered(&self, strategy: DeadLetterStrategy, reason: Reason) {
        self.dead_lettered[strategy as usize][reason as usize].fetch_add(1, Relaxed);
    }

    /// Dead-lettered counts: `[strategy][reason]`, reasons in [`Reason`]'s
    /// order (rejected, expired, maxlen, delivery_limit).
    pub fn dead_lettered(&self) -> [[u64; 4]; 2] {
        std::array::from_fn(|s| std::array::from_fn(|r| self.dead_lettered[s][r].load(Relaxed)))
    }

    /// The vhost's confirms, returns and drops.
    pub fn publishing(&self) -> PublishSnapshot {
        self.publishing.snapshot()
    }

    /// Publishes received on confirm-mode channels.
    pub fn received_confirm(&self) -> u64 {
        self.received_confirm.load(Relaxed)
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
