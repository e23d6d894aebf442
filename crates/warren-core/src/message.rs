//! Messages as the broker stores and forwards them.

use crate::properties::{BasicProperties, RawProperties};
use crate::queue::ConnectionId;
use crate::shortstr::ShortStr;
use crate::store::Loc;
use bytes::Bytes;
use std::sync::{Arc, OnceLock};

/// Where a message's durable copy is in the message log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stored {
    pub msg_id: u64,
    pub loc: Loc,
}

/// A published message. Immutable once built and shared by reference count: a
/// fanout to a thousand queues holds one copy of the body.
#[derive(Debug)]
pub struct Message {
    /// The exchange it was published to (the default exchange is "").
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    /// Raw content-header property bytes, starting at the flags word. Forwarded
    /// untouched to consumers.
    pub properties: Bytes,
    pub body: Bytes,
    /// delivery_mode == 2, decoded once at publish time.
    pub persistent: bool,
    /// Set once the message is written to the message log for durable queues.
    pub stored: OnceLock<Stored>,
    /// The `expiration` property in ms, if present and valid.
    expiration: Option<u64>,
    /// The `priority` property (0 if absent).
    priority: u8,
    /// The connection that published it, where an adapter needs to know
    /// (MQTT 5's no-local subscriptions); 0 otherwise. Not stored: a message
    /// read back from the log has none.
    pub publisher: ConnectionId,
}

/// "Never expires".
pub const NEVER: u64 = u64::MAX;

impl Message {
    pub fn new(
        exchange: ShortStr,
        routing_key: ShortStr,
        properties: Bytes,
        body: Bytes,
    ) -> Arc<Message> {
        Self::published_by(0, exchange, routing_key, properties, body)
    }

    /// A message that remembers the connection that published it.
    pub fn published_by(
        publisher: ConnectionId,
        exchange: ShortStr,
        routing_key: ShortStr,
        properties: Bytes,
        body: Bytes,
    ) -> Arc<Message> {
        let persistent = RawProperties::delivery_mode(&properties) == Some(2);
        // Only messages that carry these properties pay for decoding them.
        let (expiration, priority) = if RawProperties::has_expiration(&properties)
            || RawProperties::has_priority(&properties)
        {
            let p = BasicProperties::decode(&properties).unwrap_or_default();
            (
                p.expiration.and_then(|e| parse_expiration(e.as_bytes())),
                p.priority.unwrap_or(0),
            )
        } else {
            (None, 0)
        };
        Arc::new(Message {
            expiration,
            priority,
            exchange,
            routing_key,
            properties,
            body,
            persistent,
            stored: OnceLock::new(),
            publisher,
        })
    }

    /// Decoded properties. Costs a decode: call only where a feature needs them.
    pub fn decode_properties(&self) -> BasicProperties {
        BasicProperties::decode(&self.properties).unwrap_or_default()
    }

    /// Per-message TTL from the `expiration` property, ms.
    pub fn expiration_ms(&self) -> Option<u64> {
        self.expiration
    }

    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Size counted against length limits and reported as the queue's
    /// `message_bytes` (the body, as RabbitMQ counts it).
    pub fn size(&self) -> usize {
        self.body.len()
    }

    /// What holding the message in memory costs: body and properties. A
    /// message can carry its weight in headers (a STOMP SEND with 8 headers
    /// of 64 KiB and no body); counting only the body let queue windows keep
    /// thousands of those in RAM and the broker grow far past its memory
    /// watermark.
    pub fn memory_size(&self) -> usize {
        self.body.len() + self.properties.len()
    }
}

/// A message sitting in a queue: its position (queue sequence number) and whether
/// it has been delivered before.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
    /// When it expires in this queue (ms since the epoch; [`NEVER`]).
    pub expires_at: u64,
    /// Priority level in this queue (0 unless it is a priority queue).
    pub priority: u8,
}

/// Parse an `expiration` property: a non-negative integer of milliseconds, as
/// text. RabbitMQ refuses anything else.
pub fn parse_expiration(s: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(s).ok()?;
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// The checks every adapter applies to a published message's properties, with
/// RabbitMQ's texts (406 PRECONDITION_FAILED): `user_id`, if set, must be the
/// publishing user; `expiration` must be a valid TTL.
pub fn check_publish_properties(
    p: &crate::properties::BasicProperties,
    user: &str,
) -> crate::Result<()> {
    if let Some(claimed) = &p.user_id {
        if claimed.as_bytes() != user.as_bytes() {
            return Err(crate::BrokerError::precondition_failed(format!(
                "user_id property set to '{}' but authenticated user was '{}'",
                claimed, user
            )));
        }
    }
    if let Some(e) = &p.expiration {
        if let Err(detail) = crate::queue::check_expiration(e.as_bytes()) {
            return Err(crate::BrokerError::precondition_failed(format!(
                "invalid expiration '{}': {}",
                e, detail
            )));
        }
    }
    Ok(())
}
