//! Dead-lettering: messages rejected, expired or dropped for length go to the
//! queue's `x-dead-letter-exchange`, with the `x-death` history RabbitMQ writes,
//! so retry loops built on RabbitMQ (work queue → DLX → delay queue → back) work
//! unchanged.

use super::{now_ms, Queue};
use crate::message::{Message, QueuedMessage};
use crate::shortstr::ShortStr;
use crate::stats::DeadLetterStrategy;
use crate::table::{FieldTable, FieldValue};
use std::sync::Arc;

/// Why a message was dead-lettered (the `reason` in `x-death`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Rejected,
    Expired,
    Maxlen,
    /// A quorum queue's message returned more often than `x-delivery-limit`.
    DeliveryLimit,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::Maxlen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// Publish dead letters of `queue` to its dead-letter exchange. A missing
/// exchange drops them, as in RabbitMQ.
pub(super) fn dead_letter(queue: &Arc<Queue>, dead: Vec<(QueuedMessage, Reason)>) {
    let Some(vhost) = queue.vhost() else { return };
    // Counted as RabbitMQ's `rabbitmq_global_messages_dead_lettered_*_total`:
    // with a dead-letter exchange "at_most_once", without "disabled".
    let Some(dlx) = queue.args().dead_letter_exchange.clone() else {
        for (_, reason) in &dead {
            vhost
                .stats
                .count_dead_lettered(DeadLetterStrategy::Disabled, *reason);
        }
        return;
    };
    for (_, reason) in &dead {
        vhost
            .stats
            .count_dead_lettered(DeadLetterStrategy::AtMostOnce, *reason);
    }
    publish_dead(queue, &dlx, dead.into_iter().map(|(qm, r)| (qm.message, r)));
}

/// Dead-letter messages that left `queue` outside its core buffer: a quorum
/// queue's state machine decides (rejected, over `x-delivery-limit`, dropped
/// for length) and its group leader hands them here, so they get the same
/// `x-death` history and routing as a classic queue's. RabbitMQ's default
/// (`at-most-once`): republished unconfirmed; without a dead-letter
/// exchange they are dropped. Not counted in the classic queues' totals.
pub fn dead_letter_messages(queue: &Arc<Queue>, dead: Vec<(Arc<Message>, Reason)>) {
    let Some(dlx) = queue.args().dead_letter_exchange.clone() else {
        return;
    };
    publish_dead(queue, &dlx, dead.into_iter());
}

fn publish_dead(
    queue: &Arc<Queue>,
    dlx: &ShortStr,
    dead: impl Iterator<Item = (Arc<Message>, Reason)>,
) {
    let Some(vhost) = queue.vhost() else { return };
    let Some(exchange) = vhost.exchange(dlx.as_bytes()) else {
        return;
    };
    let mut out = Vec::new();
    for (m, reason) in dead {
        if let Some(m) = dead_lettered(&m, reason, queue, dlx) {
            vhost.publish(&exchange, m, &mut out);
        }
    }
}

fn text(t: &FieldTable, key: &str) -> Option<Vec<u8>> {
    t.get(key).and_then(|v| v.as_bytes()).map(|b| b.to_vec())
}

/// The message as it leaves `queue` for the dead-letter exchange, or None if this
/// would be a dead-letter cycle with no rejection in it (dropped, as in RabbitMQ).
fn dead_lettered(
    m: &Message,
    reason: Reason,
    queue: &Queue,
    dlx: &ShortStr,
) -> Option<Arc<Message>> {
    let mut props = m.decode_properties();
    let mut headers = props.headers.take().unwrap_or_default();
    let mut deaths: Vec<FieldValue> = match headers.remove("x-death") {
        Some(FieldValue::Array(v)) => v,
        _ => Vec::new(),
    };
    let qname = queue.name.as_bytes().to_vec();
    let tables = || {
        deaths.iter().filter_map(|d| match d {
            FieldValue::Table(t) => Some(t),
            _ => None,
        })
    };
    if reason != Reason::Rejected {
        let seen_here = tables().any(|t| text(t, "queue").as_deref() == Some(&qname[..]));
        let any_rejection =
            tables().any(|t| text(t, "reason").as_deref() == Some(b"rejected".as_slice()));
        if seen_here && !any_rejection {
            return None;
        }
    }
    // Routing keys the message was published with (its key plus CC/BCC headers).
    let mut keys = vec![FieldValue::LongStr(m.routing_key.0.clone())];
    if let Some(FieldValue::Array(cc)) = headers.remove("CC") {
        keys.extend(cc);
    }
    headers.remove("BCC");
    let existing = deaths.iter().position(|d| match d {
        FieldValue::Table(t) => {
            text(t, "queue").as_deref() == Some(&qname[..])
                && text(t, "reason").as_deref() == Some(reason.as_str().as_bytes())
        }
        _ => false,
    });
    let entry = match existing.map(|i| deaths.remove(i)) {
        Some(FieldValue::Table(mut t)) => {
            let count = t.get("count").and_then(|v| v.as_i64()).unwrap_or(0);
            // RabbitMQ keeps the time of the first such death.
            t.insert("count", FieldValue::I64(count + 1));
            t
        }
        _ => {
            let mut t = FieldTable::new();
            t.insert("count", FieldValue::I64(1));
            t.insert("reason", FieldValue::string(reason.as_str()));
            t.insert("queue", FieldValue::LongStr(queue.name.0.clone()));
            t.insert("time", FieldValue::Timestamp(now_ms() / 1000));
            t.insert("exchange", FieldValue::LongStr(m.exchange.0.clone()));
            t.insert("routing-keys", FieldValue::Array(keys));
            if let Some(e) = &props.expiration {
                t.insert("original-expiration", FieldValue::LongStr(e.0.clone()));
            }
            t
        }
    };
    deaths.insert(0, FieldValue::Table(entry));
    if headers.get("x-first-death-reason").is_none() {
        headers.insert(
            "x-first-death-exchange",
            FieldValue::LongStr(m.exchange.0.clone()),
        );
        headers.insert(
            "x-first-death-queue",
            FieldValue::LongStr(queue.name.0.clone()),
        );
        headers.insert("x-first-death-reason", FieldValue::string(reason.as_str()));
    }
    headers.insert("x-death", FieldValue::Array(deaths));
    // The per-message TTL does not follow the message (it is kept in x-death).
    props.expiration = None;
    props.headers = Some(headers);
    let routing_key = queue
        .args()
        .dead_letter_routing_key
        .clone()
        .unwrap_or_else(|| m.routing_key.clone());
    Some(Message::new(
        dlx.clone(),
        routing_key,
        props.encode(),
        m.body.clone(),
    ))
}
