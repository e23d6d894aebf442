//! Consumers: a subscription of a protocol-level session (an AMQP channel, a STOMP
//! subscription, an MQTT session) to one queue.

use crate::message::QueuedMessage;
use crate::queue::Queue;
use crate::shortstr::ShortStr;
use crate::table::FieldTable;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

/// Identifies a client connection, for exclusive queues and consumer bookkeeping.
pub type ConnectionId = u64;

/// The channel a consumer belongs to: its connection and channel number
/// (STOMP: 1, the one channel RabbitMQ's STOMP plugin opens per connection),
/// for the management API's `channel_details`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ChannelRef {
    pub connection: ConnectionId,
    pub number: u16,
}

/// A consumer as the management API lists it (`/api/consumers`, a queue's
/// `consumer_details`).
#[derive(Clone, Debug)]
pub struct ConsumerInfo {
    pub consumer_tag: ShortStr,
    pub ack_required: bool,
    pub exclusive: bool,
    pub prefetch_count: u32,
    pub arguments: FieldTable,
    /// RabbitMQ's `active`: false only for the waiting consumers of a
    /// single-active-consumer queue.
    pub active: bool,
    /// RabbitMQ's `activity_status`: "up", or "single_active" / "waiting" on a
    /// single-active-consumer queue.
    pub activity_status: &'static str,
    /// Look the connection up with `Connections::get` for its name, peer and
    /// user; the channel's name is "<connection name> (<number>)".
    pub channel: ChannelRef,
}

/// The protocol side of a consumer. The queue offers messages to it; the adapter
/// decides (under its own lock) whether the consumer has room (prefetch, flow),
/// records the delivery and queues it for the socket writer.
///
/// Lock order: the queue calls `offer` while holding its own lock, so an
/// implementation must never call back into a queue from `offer`, and must not hold
/// its own lock while calling into a queue.
pub trait ConsumerSink: Send + Sync {
    /// Offer `msg` from `queue` to `consumer`. Return true if it was taken: the
    /// queue then removes it from its ready list.
    fn offer(&self, consumer: &Arc<Consumer>, queue: &Arc<Queue>, msg: &QueuedMessage) -> bool;

    /// The broker cancelled the consumer (its queue was deleted). Called without the
    /// queue lock held.
    fn cancelled(&self, consumer: &Arc<Consumer>);
}

/// A consumer attached to a queue.
pub struct Consumer {
    pub tag: ShortStr,
    /// Messages are considered acknowledged once sent.
    pub no_ack: bool,
    /// Only consumer of its queue (basic.consume exclusive flag).
    pub exclusive: bool,
    pub arguments: FieldTable,
    /// `x-priority`: higher-priority consumers get messages first.
    pub priority: i64,
    pub channel: ChannelRef,
    /// Per-consumer prefetch limit (0 = unlimited), fixed at consume time as in
    /// RabbitMQ (basic.qos with global=false applies to later consumers).
    prefetch: AtomicU32,
    /// Deliveries not yet acknowledged. Changed only under the sink's lock.
    unacked: AtomicU32,
    /// Deliveries start only once the adapter has told the client the consumer
    /// exists (AMQP: after consume-ok is queued), so no delivery overtakes it.
    active: AtomicBool,
    pub sink: Arc<dyn ConsumerSink>,
}

impl Consumer {
    pub fn new(
        tag: ShortStr,
        no_ack: bool,
        exclusive: bool,
        arguments: FieldTable,
        channel: ChannelRef,
        prefetch: u32,
        sink: Arc<dyn ConsumerSink>,
    ) -> Arc<Consumer> {
        let priority = arguments
            .get("x-priority")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        Arc::new(Consumer {
            priority,
            tag,
            no_ack,
            exclusive,
            arguments,
            channel,
            prefetch: AtomicU32::new(prefetch),
            unacked: AtomicU32::new(0),
            active: AtomicBool::new(false),
            sink,
        })
    }

    pub fn activate(&self) {
        self.active.store(true, Ordering::Release);
    }

    pub fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Change the per-consumer prefetch limit (0 = unlimited).
    pub fn set_prefetch(&self, n: u32) {
        self.prefetch.store(n, Ordering::Relaxed);
    }

    /// The per-consumer prefetch limit (0 = unlimited).
    pub fn prefetch(&self) -> u32 {
        self.prefetch.load(Ordering::Relaxed)
    }

    /// Whether the per-consumer prefetch allows one more delivery.
    pub fn has_credit(&self) -> bool {
        let prefetch = self.prefetch.load(Ordering::Relaxed);
        self.no_ack || prefetch == 0 || self.unacked.load(Ordering::Relaxed) < prefetch
    }

    pub fn unacked(&self) -> u32 {
        self.unacked.load(Ordering::Relaxed)
    }

    pub fn add_unacked(&self) {
        self.unacked.fetch_add(1, Ordering::Relaxed);
    }

    pub fn sub_unacked(&self, n: u32) {
        let _ = self
            .unacked
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                Some(v.saturating_sub(n))
            });
    }
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("tag", &self.tag)
            .field("no_ack", &self.no_ack)
            .field("prefetch", &self.prefetch.load(Ordering::Relaxed))
            .finish()
    }
}
