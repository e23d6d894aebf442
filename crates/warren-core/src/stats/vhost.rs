//! A vhost's totals over its queues, exchanges and connections.

use super::fields::{
    ConnectionField, ExchangeField, ExchangeSnapshot, MessageField, MessageSnapshot, MESSAGE_FIELDS,
};
use super::set::Aggregate;

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
