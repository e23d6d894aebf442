//! Queues: ordered message buffers that hand messages to consumers.
//!
//! Each queue has its own lock; there is no broker-wide lock on the publish path.
//! Publishing, delivering and acknowledging run on the caller's thread (the
//! publisher's or consumer's connection task) under that lock, so a message goes
//! from the publisher's socket to the consumer's outbound buffer with no extra task
//! hop.

mod consumer;

pub use consumer::{ConnectionId, Consumer, ConsumerSink};

use crate::error::{BrokerError, Result};
use crate::exchange::Exchange;
use crate::message::{Message, QueuedMessage};
use crate::shortstr::ShortStr;
use crate::store::{PagedStorage, QueueStorage, RecoveredMessage, Store};
use crate::table::FieldTable;
use crate::vhost::VHost;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

/// The declared properties of a queue; a redeclare must match them.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueOptions {
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

pub struct Queue {
    pub name: ShortStr,
    pub options: QueueOptions,
    /// The connection that owns an exclusive queue.
    pub owner: Option<ConnectionId>,
    /// Id of a durable queue in the message log and definitions; 0 if transient.
    pub durable_id: u64,
    vhost: Weak<VHost>,
    deleted: AtomicBool,
    inner: Mutex<QueueInner>,
    /// Exchanges this queue has been bound from, so deleting the queue removes its
    /// bindings without scanning every exchange of the vhost.
    pub(crate) sources: Mutex<Vec<Weak<Exchange>>>,
}

struct QueueInner {
    storage: Box<dyn QueueStorage>,
    next_seq: u64,
    consumers: Vec<Arc<Consumer>>,
    /// Round-robin position among consumers.
    next_consumer: usize,
    /// Delivered to a consumer that acknowledges, not yet settled.
    unacked: usize,
    /// An auto-delete queue is deleted when its last consumer goes, but only once
    /// it has had one.
    had_consumer: bool,
}

impl Queue {
    pub(crate) fn new(
        name: ShortStr,
        options: QueueOptions,
        owner: Option<ConnectionId>,
        vhost: Weak<VHost>,
        store: &Store,
        durable_id: u64,
    ) -> Arc<Queue> {
        Arc::new(Queue {
            name,
            options,
            owner,
            durable_id,
            vhost,
            deleted: AtomicBool::new(false),
            sources: Mutex::new(Vec::new()),
            inner: Mutex::new(QueueInner {
                storage: Box::new(PagedStorage::new(store.log.clone(), durable_id)),
                next_seq: 1,
                consumers: Vec::new(),
                next_consumer: 0,
                unacked: 0,
                had_consumer: false,
            }),
        })
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// RabbitMQ's check for exclusive queues: only the owning connection may use it.
    pub fn check_access(&self, conn: ConnectionId) -> Result<()> {
        match self.owner {
            Some(owner) if owner != conn => Err(BrokerError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be \
                 originally declared on another connection or the exclusive property value does \
                 not match that of the original declaration.",
                self.name,
                self.vhost_name()
            ))),
            _ => Ok(()),
        }
    }

    pub fn vhost_name(&self) -> String {
        self.vhost
            .upgrade()
            .map(|v| v.name.to_string())
            .unwrap_or_default()
    }

    /// Number of ready messages (what queue.declare-ok reports).
    pub fn message_count(&self) -> u32 {
        self.inner.lock().storage.len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        self.inner.lock().consumers.len() as u32
    }

    pub fn unacked_count(&self) -> usize {
        self.inner.lock().unacked
    }

    /// Enqueue a message and deliver whatever can be delivered.
    /// Returns false if the queue refused the message (full, reject-publish).
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> bool {
        let mut inner = self.inner.lock();
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.storage.push(QueuedMessage {
            seq,
            message,
            redelivered: false,
        });
        self.deliver_locked(&mut inner);
        true
    }

    /// Try to deliver ready messages, e.g. after a consumer got prefetch credit back.
    pub fn deliver(self: &Arc<Self>) {
        let mut inner = self.inner.lock();
        self.deliver_locked(&mut inner);
    }

    fn deliver_locked(self: &Arc<Self>, inner: &mut QueueInner) {
        loop {
            let n = inner.consumers.len();
            if n == 0 {
                return;
            }
            let Some(front) = inner.storage.front() else {
                return;
            };
            let mut taken = None;
            for i in 0..n {
                let idx = (inner.next_consumer + i) % n;
                let c = &inner.consumers[idx];
                if c.sink.offer(c, self, front) {
                    taken = Some((idx, c.no_ack));
                    break;
                }
            }
            let Some((idx, no_ack)) = taken else {
                return;
            };
            inner.next_consumer = (idx + 1) % n;
            if let Some(m) = inner.storage.pop_front() {
                if no_ack {
                    inner.storage.settle(std::slice::from_ref(&m));
                } else {
                    inner.unacked += 1;
                }
            }
        }
    }

    /// basic.get: take the next message. Returns it and the number still ready.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let mut inner = self.inner.lock();
        let m = inner.storage.pop_front()?;
        if no_ack {
            inner.storage.settle(std::slice::from_ref(&m));
        } else {
            inner.unacked += 1;
        }
        let remaining = inner.storage.len() as u32;
        Some((m, remaining))
    }

    /// Acknowledged (or rejected without requeue): forget the messages.
    pub fn settle(&self, msgs: &[QueuedMessage]) {
        let mut inner = self.inner.lock();
        inner.storage.settle(msgs);
        inner.unacked = inner.unacked.saturating_sub(msgs.len());
    }

    /// Attach messages recovered from the message log at startup.
    pub(crate) fn recover(&self, msgs: Vec<RecoveredMessage>) {
        let mut inner = self.inner.lock();
        let first = inner.next_seq;
        inner.next_seq = inner.storage.recover(msgs, first);
    }

    /// Return delivered messages to the queue at their original positions, marked
    /// redelivered, and deliver again.
    pub fn requeue(self: &Arc<Self>, msgs: impl IntoIterator<Item = QueuedMessage>) {
        let mut inner = self.inner.lock();
        if self.is_deleted() {
            return;
        }
        for mut m in msgs {
            m.redelivered = true;
            inner.unacked = inner.unacked.saturating_sub(1);
            inner.storage.requeue(m);
        }
        self.deliver_locked(&mut inner);
    }

    /// queue.purge: drop ready messages, returning how many.
    pub fn purge(&self) -> u32 {
        self.inner.lock().storage.purge() as u32
    }

    /// Attach a consumer, enforcing exclusive-consumer rules. Nothing is delivered
    /// to it until it is activated and [`Queue::deliver`] is called.
    pub fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) -> Result<()> {
        let mut inner = self.inner.lock();
        if self.is_deleted() {
            return Err(BrokerError::not_found(format!(
                "no queue '{}' in vhost '{}'",
                self.name,
                self.vhost_name()
            )));
        }
        let locked = inner.consumers.iter().any(|c| c.exclusive);
        if locked || (consumer.exclusive && !inner.consumers.is_empty()) {
            return Err(BrokerError::access_refused(format!(
                "queue '{}' in vhost '{}' in exclusive use",
                self.name,
                self.vhost_name()
            )));
        }
        inner.consumers.push(consumer);
        inner.had_consumer = true;
        Ok(())
    }

    /// Detach a consumer. Deletes an auto-delete queue that lost its last one.
    pub fn remove_consumer(self: &Arc<Self>, consumer: &Arc<Consumer>) {
        let now_empty = {
            let mut inner = self.inner.lock();
            let before = inner.consumers.len();
            inner.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
            if inner.next_consumer >= inner.consumers.len() {
                inner.next_consumer = 0;
            }
            before != inner.consumers.len() && inner.consumers.is_empty() && inner.had_consumer
        };
        if now_empty && self.options.auto_delete {
            if let Some(vhost) = self.vhost.upgrade() {
                vhost.remove_queue(self);
            }
        }
    }

    /// Mark deleted, drop messages and detach consumers, telling each one.
    /// Called by the vhost after it removed the queue from its tables.
    pub(crate) fn mark_deleted(&self) -> u32 {
        let (count, consumers) = {
            let mut inner = self.inner.lock();
            self.deleted.store(true, Ordering::Release);
            let n = inner.storage.purge() as u32;
            (n, std::mem::take(&mut inner.consumers))
        };
        for c in consumers {
            c.sink.cancelled(&c);
        }
        count
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).finish()
    }
}
