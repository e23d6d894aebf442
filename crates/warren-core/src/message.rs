//! Messages as the broker stores and forwards them.

use crate::properties::{BasicProperties, RawProperties};
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
}

impl Message {
    pub fn new(
        exchange: ShortStr,
        routing_key: ShortStr,
        properties: Bytes,
        body: Bytes,
    ) -> Arc<Message> {
        let persistent = RawProperties::delivery_mode(&properties) == Some(2);
        Arc::new(Message {
            exchange,
            routing_key,
            properties,
            body,
            persistent,
            stored: OnceLock::new(),
        })
    }

    /// Decoded properties. Costs a decode: call only where a feature needs them.
    pub fn decode_properties(&self) -> BasicProperties {
        BasicProperties::decode(&self.properties).unwrap_or_default()
    }

    /// Size counted against memory and length limits.
    pub fn size(&self) -> usize {
        self.body.len()
    }
}

/// A message sitting in a queue: its position (queue sequence number) and whether
/// it has been delivered before.
#[derive(Debug, Clone)]
pub struct QueuedMessage {
    pub seq: u64,
    pub message: Arc<Message>,
    pub redelivered: bool,
}
