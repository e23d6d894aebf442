//! What a quorum queue's Raft log carries (commands), and what applying one
//! produces (a reply for the proposer and effects for the leader to carry
//! out: deliveries and dead-letters).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// Chosen by the cluster layer, unique per queue: e.g. node id in the high
/// bits and a per-node counter in the low bits.
pub type ConsumerId = u64;
/// Raft node id of the node a consumer's channel lives on.
pub type NodeId = u64;

/// A message as the queue stores it: the encoded properties/headers and the
/// body, both shared buffers (never copied on the way to a consumer).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub header: Bytes,
    pub body: Bytes,
    /// When the message expires (ms since the epoch; [`NEVER`]: no TTL):
    /// the publishing node computes it from the queue's `x-message-ttl` /
    /// `message-ttl` policy and the message's `expiration`, as RabbitMQ's
    /// quorum queues fix the expiry at enqueue.
    pub expires_at: u64,
}

/// `Message::expires_at` of a message without TTL.
pub const NEVER: u64 = u64::MAX;

impl Message {
    /// A message without TTL.
    pub fn new(header: Bytes, body: Bytes) -> Message {
        Message {
            header,
            body,
            expires_at: NEVER,
        }
    }

    pub fn size(&self) -> u64 {
        (self.header.len() + self.body.len()) as u64
    }
}

/// A publisher's resend key: a publisher (channel) id and its sequence
/// number, increasing per publisher. An Enqueue whose seq is at or below
/// the last one applied for that publisher is a resend (e.g. the publisher
/// retried after a leader change) and is not enqueued again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherSeq {
    pub publisher: u64,
    pub seq: u64,
}

/// What happens when the queue is full (`x-overflow`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Overflow {
    #[default]
    DropHead,
    RejectPublish,
}

/// The queue arguments the state machine enforces.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueConfig {
    /// `x-delivery-limit`: a message returned more often than this is
    /// dead-lettered (reason `delivery_limit`).
    pub delivery_limit: Option<u32>,
    /// `x-max-length`: ready messages.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`: bytes of ready messages.
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    /// `x-single-active-consumer`: one consumer gets every delivery; the
    /// next in attach order takes over when it goes.
    pub single_active: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    Enqueue {
        publisher: Option<PublisherSeq>,
        message: Message,
    },
    /// Attach (or update) a consumer: it gets up to `prefetch` unacked
    /// messages at a time (0: no limit).
    Attach {
        consumer: ConsumerId,
        node: NodeId,
        prefetch: u32,
        /// `x-priority`: consumers of a higher priority with credit get the
        /// messages first; equal ones share them round robin.
        priority: i64,
    },
    /// basic.cancel: no more deliveries; its unacked stay with it until
    /// settled, returned or the consumer goes down.
    Cancel {
        consumer: ConsumerId,
    },
    /// basic.ack.
    Settle {
        consumer: ConsumerId,
        ids: Vec<u64>,
    },
    /// basic.nack/reject with requeue: back to the queue, redelivered.
    Return {
        consumer: ConsumerId,
        ids: Vec<u64>,
    },
    /// basic.nack/reject without requeue: dead-lettered (reason `rejected`).
    Discard {
        consumer: ConsumerId,
        ids: Vec<u64>,
    },
    /// The consumer's channel or connection is gone: its unacked messages
    /// return to the queue and will be redelivered.
    ConsumerDown {
        consumer: ConsumerId,
    },
    /// Every consumer on `node` is down.
    NodeDown {
        node: NodeId,
    },
    /// basic.get: one message for `consumer` (created if unknown, with no
    /// prefetch and not taking pushed deliveries); `settled` is no-ack.
    Dequeue {
        consumer: ConsumerId,
        node: NodeId,
        settled: bool,
    },
    /// queue.purge: drops the ready messages (not the unacked ones).
    Purge,
    /// The publisher is gone: forget its last sequence number.
    ForgetPublisher {
        publisher: u64,
    },
    SetConfig(QueueConfig),
    /// Many publishes in one entry (a node's enqueuer drains its channel
    /// into one): one Raft round, one apply for all of them. `publisher`
    /// is the enqueuer and its batch number, so a batch resent after a
    /// leader change is applied once.
    EnqueueBatch {
        publisher: PublisherSeq,
        messages: Vec<Message>,
    },
    /// Several commands in one entry, applied in order (a node's consumer
    /// operations — attach, acks, returns — drained together): one Raft
    /// round for all of them. The reply is `Reply::Batch`, one per command.
    Batch(Vec<Command>),
    /// The proposer's clock (ms since the epoch): messages whose expiry is
    /// at or before it leave the queue (dead-lettered, reason `expired`).
    /// The state machine has no clock of its own (every member must apply
    /// the same): the leader proposes one when the head's expiry is due,
    /// and a basic.get sends one before its `Dequeue`.
    Tick {
        now: u64,
    },
    /// Like `EnqueueBatch`, but a publisher's batches must apply in
    /// sequence: seq `last + 1` is applied, a seq at or below `last` is a
    /// `Duplicate` (that very batch was applied), and a later one (an
    /// earlier batch is missing) changes nothing and answers `OutOfOrder`.
    /// An enqueuer with several batches in flight uses it: batches that
    /// overtake each other on the way to the leader are sent again, never
    /// taken for duplicates of batches that have not been applied.
    EnqueueNext {
        publisher: PublisherSeq,
        messages: Vec<Message>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeadLetterReason {
    Rejected,
    DeliveryLimit,
    MaxLength,
    Expired,
}

impl DeadLetterReason {
    /// The `x-death` reason RabbitMQ uses.
    pub fn as_str(&self) -> &'static str {
        match self {
            DeadLetterReason::Rejected => "rejected",
            DeadLetterReason::DeliveryLimit => "delivery_limit",
            DeadLetterReason::MaxLength => "maxlen",
            DeadLetterReason::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Send `message` to `consumer` on `node` under `delivery_id` (per
    /// consumer, increasing; 0 for a settled basic.get).
    Deliver {
        consumer: ConsumerId,
        node: NodeId,
        delivery_id: u64,
        redelivered: bool,
        delivery_count: u32,
        message: Message,
    },
    /// The message left the queue dead: route it to the queue's
    /// dead-letter exchange if it has one, else it is dropped.
    DeadLetter {
        reason: DeadLetterReason,
        delivery_count: u32,
        message: Message,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    Ok,
    /// Enqueued under this message id (confirm the publish).
    Enqueued {
        msg_id: u64,
    },
    /// A resend of an already enqueued message (confirm it, nothing added).
    Duplicate,
    /// `x-overflow: reject-publish` and the queue is full (nack it).
    Rejected,
    /// basic.get found the queue empty.
    Empty,
    Purged {
        count: u64,
    },
    UnknownConsumer,
    /// An `EnqueueBatch` applied: the positions (in the batch) of the
    /// messages a full queue refused (nack those, confirm the rest).
    EnqueuedBatch {
        rejected: Vec<u32>,
    },
    /// A `Batch` applied: each command's reply, in order.
    Batch(Vec<Reply>),
    /// basic.get took a message: `delivery_id` 0 when settled (no-ack),
    /// else the id to settle or return it under; `remaining` ready after.
    Dequeued {
        delivery_id: u64,
        redelivered: bool,
        message: Message,
        remaining: u64,
    },
    /// An `EnqueueNext` whose predecessor has not been applied: nothing
    /// changed, send it again once the predecessor is in.
    OutOfOrder,
}

/// The result of applying one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    pub reply: Reply,
    pub effects: Vec<Effect>,
}

impl Outcome {
    pub fn reply(reply: Reply) -> Outcome {
        Outcome {
            reply,
            effects: Vec::new(),
        }
    }
}
