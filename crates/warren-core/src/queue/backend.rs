//! The seam for queues whose messages live somewhere else than this node's
//! queue storage: a quorum queue (a Raft group) or, later, a classic queue
//! owned by another cluster node.
//!
//! Adapters never see it: they keep calling [`Queue`]'s methods, and each
//! public method looks at the queue's backend first (one `OnceLock` load; a
//! single node never sets one, so nothing else changes there). The core knows
//! nothing of Raft or the cluster transport, as with
//! [`crate::meta::MetadataReplicator`].
//!
//! Methods are synchronous because the callers are (a channel handling a
//! frame, a queue lock held by a delivery). A backend that needs the network
//! starts the work and answers from what it holds: a publish completes its
//! [`Confirm`] later, a consumer receives deliveries through its
//! [`crate::queue::ConsumerSink`] as they arrive, depth is the last known one.

use super::{Consumer, Queue, QueueArgs, QueueDepth};
use crate::confirm::Confirm;
use crate::error::Result;
use crate::message::{Message, QueuedMessage};
use std::sync::Arc;

/// See [`QueueBackend::refresh_depth`].
pub type RefreshFuture = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

pub trait QueueBackend: Send + Sync + 'static {
    /// The queue type the management API shows ("quorum", "classic").
    fn kind(&self) -> &'static str;

    /// Enqueue a routed message. `confirm`, when the publisher wants one, is
    /// completed once the message is safe (true) or refused (false; dropping
    /// it counts as refused). Returns false if the queue refused the message
    /// at once (e.g. a known overflow), like [`Queue::publish`].
    fn publish(&self, queue: &Arc<Queue>, message: Arc<Message>, confirm: Option<Confirm>) -> bool;

    /// Attach a consumer; deliveries go to its sink's `offer` (outside any
    /// backend lock the sink could re-enter).
    fn add_consumer(&self, queue: &Arc<Queue>, consumer: Arc<Consumer>) -> Result<()>;

    /// Detach a consumer (cancel or channel close). Its unacked deliveries
    /// are returned by the caller through [`QueueBackend::requeue`] first.
    fn remove_consumer(&self, queue: &Arc<Queue>, consumer: &Arc<Consumer>);

    /// A consumer got credit back: deliver more.
    fn deliver(&self, queue: &Arc<Queue>);

    /// basic.get: the next message and how many remain ready, from what this
    /// node holds (None: empty, or nothing here yet).
    fn get(&self, queue: &Arc<Queue>, no_ack: bool) -> Option<(QueuedMessage, u32)>;

    /// Acknowledged deliveries.
    fn settle(&self, queue: &Queue, msgs: &[QueuedMessage]);

    /// Rejected without requeue (dead-lettered if configured).
    fn reject(&self, queue: &Arc<Queue>, msgs: Vec<QueuedMessage>);

    /// Returned to the queue, to be delivered again (redelivered).
    fn requeue(&self, queue: &Arc<Queue>, msgs: Vec<QueuedMessage>);

    /// queue.purge: drop the ready messages; returns how many (as known here).
    fn purge(&self, queue: &Queue) -> u32;

    /// Current depth (may be the last known one; never blocks on the network).
    fn depth(&self, queue: &Queue) -> QueueDepth;

    /// Where [`depth`](Self::depth) may be the last known one: a future
    /// that brings it up to date (an adapter awaits it, with a deadline of
    /// its own, before answering a declare with the count). None: depth is
    /// current already.
    fn refresh_depth(&self, _queue: &Queue) -> Option<RefreshFuture> {
        None
    }

    /// Whether the queue can be used from this node now (declare, passive
    /// declare): a classic queue whose home node is down answers RabbitMQ's
    /// 404 "home node ... is down or inaccessible".
    fn check_available(&self, _queue: &Queue) -> Result<()> {
        Ok(())
    }

    /// The effective arguments changed (a policy).
    fn set_args(&self, _queue: &Queue, _args: &QueueArgs) {}

    /// The queue was deleted here: stop, release resources, and tell each
    /// attached consumer (`consumer.sink.cancelled(&consumer)`).
    fn deleted(&self, _queue: &Queue) {}

    /// The consumers attached through this node (None: the queue's own
    /// list, as for a local queue).
    fn consumers_info(&self, _queue: &Queue) -> Option<Vec<super::ConsumerInfo>> {
        None
    }

    /// Fields added to the queue's management API object (`leader`,
    /// `members`, `online`, `node`...).
    fn info(&self, _queue: &Queue) -> serde_json::Map<String, serde_json::Value> {
        serde_json::Map::new()
    }
}
