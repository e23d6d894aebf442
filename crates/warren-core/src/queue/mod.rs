//! Queues: ordered message buffers that hand messages to consumers.
//!
//! Each queue has its own lock; there is no broker-wide lock on the publish path.
//! Publishing, delivering and acknowledging run on the caller's thread (the
//! publisher's or consumer's connection task) under that lock, so a message goes
//! from the publisher's socket to the consumer's outbound buffer with no extra task
//! hop.
//!
//! Expiry (message TTL, queue expiry) costs one timer per queue, never one per
//! message: only the head of a queue can expire next, so the queue arms a single
//! timer for the head's deadline, as RabbitMQ does.

mod args;
pub mod backend;
mod consumer;
mod dead_letter;
mod info;
pub mod stream;

pub use args::{
    check_consumer_args, check_expiration, check_quorum_declare, check_stream_declare, is_quorum,
    parse_max_age, Overflow, QueueArgs, StreamArgs,
};
pub use backend::{QueueBackend, RefreshFuture};
pub use consumer::{ChannelRef, ConnectionId, Consumer, ConsumerInfo, ConsumerSink};
pub use dead_letter::{dead_letter_messages, Reason};
pub use info::QueueDepth;

use crate::error::{BrokerError, Result};
use crate::exchange::Exchange;
use crate::message::{Message, QueuedMessage, NEVER};
use crate::shortstr::ShortStr;
use crate::stats::{GaugeRate, MessageField, MessageStats};
use crate::store::{PagedStorage, PriorityStorage, QueueStorage, RecoveredQueue, Store};
use crate::table::FieldTable;
use crate::vhost::VHost;
use parking_lot::{Mutex, MutexGuard};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};

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
    /// Effective `x-` arguments: the declared ones merged with the matching
    /// policy. Replaced (not mutated) when policies change.
    args: parking_lot::RwLock<Arc<QueueArgs>>,
    /// The `x-expires` timer is running.
    expiry_armed: AtomicBool,
    /// The connection that owns an exclusive queue.
    pub owner: Option<ConnectionId>,
    /// On a cluster node: the node that holds the queue's messages (unset:
    /// this node, as on a single node).
    home: std::sync::OnceLock<String>,
    /// Id of a durable queue in the message log and definitions; 0 if transient.
    pub durable_id: u64,
    vhost: Weak<VHost>,
    deleted: AtomicBool,
    inner: Mutex<QueueInner>,
    /// Exchanges this queue has been bound from, so deleting the queue removes its
    /// bindings without scanning every exchange of the vhost.
    pub(crate) sources: Mutex<Vec<Weak<Exchange>>>,
    /// Last time (ms) the queue was used, for `x-expires`.
    last_used: AtomicU64,
    /// Message counters for the management API. Written only under `inner`'s
    /// lock, so with plain loads and stores ([`MessageStats::add_serialized`]).
    stats: MessageStats,
    /// Rates of change of the depth (`messages`, `messages_ready`,
    /// `messages_unacknowledged`), set by the statistics sampler.
    depth_rates: [GaugeRate; 3],
    /// `x-queue-type: stream`: the log that replaces `inner.storage`.
    stream: Option<stream::Stream>,
    /// Set on a cluster node for a queue whose messages live elsewhere (a
    /// quorum queue's Raft group, another node's classic queue): every public
    /// method hands over to it. Never set on a single node.
    backend: OnceLock<Arc<dyn QueueBackend>>,
}

struct QueueInner {
    storage: Box<dyn QueueStorage>,
    next_seq: u64,
    /// Consumers, highest `x-priority` first (stable: equal priorities keep their
    /// arrival order).
    consumers: Vec<Arc<Consumer>>,
    /// Round-robin position among consumers.
    next_consumer: usize,
    /// Delivered to a consumer that acknowledges, not yet settled.
    unacked: usize,
    /// Body bytes of those (the storage knows the ready ones' total).
    unacked_bytes: usize,
    /// An auto-delete queue is deleted when its last consumer goes, but only once
    /// it has had one.
    had_consumer: bool,
    /// Deadline of the armed expiry timer (NEVER: none armed).
    timer_due: u64,
    /// Messages removed under the lock that go to the dead-letter exchange once
    /// the lock is released.
    dead: Vec<(QueuedMessage, Reason)>,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Queue {
    /// A new queue. `args` must already be validated ([`QueueArgs::parse`]).
    pub(crate) fn new(
        name: ShortStr,
        options: QueueOptions,
        args: QueueArgs,
        owner: Option<ConnectionId>,
        vhost: Weak<VHost>,
        store: &Store,
        durable_id: u64,
    ) -> Arc<Queue> {
        let storage: Box<dyn QueueStorage> = match args.max_priority {
            Some(max) => Box::new(PriorityStorage::new(
                store.log.clone(),
                durable_id,
                name.clone(),
                max,
            )),
            None => Box::new(PagedStorage::new(
                store.log.clone(),
                durable_id,
                name.clone(),
            )),
        };
        let stream = args.stream.as_ref().map(|a| {
            stream::Stream::new(
                durable_id,
                store.log.clone(),
                retention(&args),
                a.filter_size,
            )
        });
        let q = Arc::new(Queue {
            backend: OnceLock::new(),
            stream,
            name,
            options,
            args: parking_lot::RwLock::new(Arc::new(args)),
            expiry_armed: AtomicBool::new(false),
            owner,
            home: std::sync::OnceLock::new(),
            durable_id,
            vhost,
            deleted: AtomicBool::new(false),
            sources: Mutex::new(Vec::new()),
            last_used: AtomicU64::new(now_ms()),
            stats: MessageStats::default(),
            depth_rates: Default::default(),
            inner: Mutex::new(QueueInner {
                storage,
                next_seq: 1,
                consumers: Vec::new(),
                next_consumer: 0,
                unacked: 0,
                unacked_bytes: 0,
                had_consumer: false,
                timer_due: NEVER,
                dead: Vec::new(),
            }),
        });
        q.arm_queue_expiry();
        q
    }

    /// The backend that holds this queue's messages, if not this node's
    /// storage (see [`QueueBackend`]).
    #[inline]
    pub fn backend(&self) -> Option<&Arc<dyn QueueBackend>> {
        self.backend.get()
    }

    /// Install the backend (once; false if one was already set). Set before
    /// the queue is used: when it is declared or restored.
    pub fn set_backend(&self, backend: Arc<dyn QueueBackend>) -> bool {
        self.backend.set(backend).is_ok()
    }

    /// Whether the queue can be used from this node (its backend may say its
    /// home is unreachable); always true on a single node.
    pub fn check_available(&self) -> Result<()> {
        match self.backend() {
            Some(b) => b.check_available(self),
            None => Ok(()),
        }
    }

    /// The cluster node that holds this queue's messages, if recorded.
    pub fn home(&self) -> Option<&str> {
        self.home.get().map(String::as_str)
    }

    /// Record the queue's home node (once, when declared or restored; ""
    /// records nothing).
    pub(crate) fn set_home(&self, home: &str) {
        if !home.is_empty() {
            let _ = self.home.set(home.to_string());
        }
    }

    /// The effective queue arguments.
    pub fn args(&self) -> Arc<QueueArgs> {
        self.args.read().clone()
    }

    /// Apply new effective arguments (a policy changed). `x-max-priority` only
    /// takes effect at declare time, as in RabbitMQ.
    pub(crate) fn set_args(self: &Arc<Self>, mut args: QueueArgs) {
        if let Some(b) = self.backend() {
            b.set_args(self, &args);
            *self.args.write() = Arc::new(args);
            return;
        }
        if let Some(s) = &self.stream {
            s.set_retention(retention(&args));
            *self.args.write() = Arc::new(args);
            return;
        }
        args.max_priority = self.args().max_priority;
        *self.args.write() = Arc::new(args);
        self.arm_queue_expiry();
        // New limits or TTLs apply to what is queued now.
        let mut inner = self.inner.lock();
        Self::drop_head(&self.args(), &mut inner);
        self.deliver_locked(&mut inner, now_ms());
        self.finish(inner);
    }

    /// The stream, if this is a stream queue.
    pub fn stream(&self) -> Option<&stream::Stream> {
        self.stream.as_ref()
    }

    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Messages live in this node's message log and queue storage (not a
    /// stream, no backend): what a persistent publish logs for.
    pub fn is_local_storage(&self) -> bool {
        self.stream.is_none() && self.backend.get().is_none()
    }

    /// Append to a stream queue; returns the log ticket a confirm waits for
    /// (0 for other queues, which [`Queue::publish`] takes).
    pub fn publish_stream(self: &Arc<Self>, message: &Message) -> u64 {
        match &self.stream {
            Some(s) if !self.is_deleted() => s.publish(self, message),
            _ => 0,
        }
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// RabbitMQ's check for exclusive queues: only the owning connection may use it.
    pub fn check_access(&self, conn: ConnectionId) -> Result<()> {
        match self.owner {
            Some(owner) if owner != conn => Err(self.locked()),
            _ => Ok(()),
        }
    }

    /// The private queue behind a direct reply-to consumer (only
    /// `VHost::declare_reply_queue` makes names with this prefix: declaring
    /// `amq.*` names is refused).
    pub fn is_reply_to(&self) -> bool {
        self.name.starts_with(crate::vhost::REPLY_QUEUE_PREFIX)
    }

    /// Redeclaring: the queue's owner must be exactly `owner` (the declaring
    /// connection for an exclusive declare, nobody otherwise).
    pub fn check_owner(&self, owner: Option<ConnectionId>) -> Result<()> {
        if self.owner == owner {
            Ok(())
        } else {
            Err(self.locked())
        }
    }

    fn locked(&self) -> BrokerError {
        BrokerError::resource_locked(format!(
            "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be \
             originally declared on another connection or the exclusive property value does \
             not match that of the original declaration.",
            self.name,
            self.vhost_name()
        ))
    }

    pub fn vhost_name(&self) -> String {
        self.vhost
            .upgrade()
            .map(|v| v.name.to_string())
            .unwrap_or_default()
    }

    /// Mark the queue as used (declare, consume, get): resets `x-expires`.
    pub fn touch(&self) {
        self.last_used.store(now_ms(), Ordering::Relaxed);
    }

    /// Number of ready messages (what queue.declare-ok reports).
    pub fn message_count(&self) -> u32 {
        if let Some(b) = self.backend() {
            return b.depth(self).messages_ready as u32;
        }
        self.inner.lock().storage.len() as u32
    }

    pub fn consumer_count(&self) -> u32 {
        if let Some(b) = self.backend() {
            return b.depth(self).consumers;
        }
        self.inner.lock().consumers.len() as u32
    }

    pub fn unacked_count(&self) -> usize {
        if let Some(b) = self.backend() {
            return b.depth(self).messages_unacknowledged as usize;
        }
        self.inner.lock().unacked
    }

    /// Release the lock, then dead-letter what was removed under it. Every public
    /// operation ends here, so dead letters (which may route back into this very
    /// queue) are never published while the lock is held.
    fn finish(self: &Arc<Self>, mut inner: MutexGuard<'_, QueueInner>) {
        self.arm_expiry(&mut inner);
        let dead = std::mem::take(&mut inner.dead);
        drop(inner);
        crate::trace::flush();
        if !dead.is_empty() {
            dead_letter::dead_letter(self, dead);
        }
    }

    /// When the message expires: the lower of the queue's TTL and the message's
    /// `expiration`.
    /// When `message`, enqueued at `now`, expires under the queue's
    /// effective `x-message-ttl` (policy included) and its own
    /// `expiration` (the lower wins); `NEVER` without either. A quorum
    /// queue's backend fixes it at publish, as RabbitMQ at enqueue.
    pub fn expiry_of(&self, message: &Message, now: u64) -> u64 {
        Self::expiry_for(&self.args(), message, now)
    }

    fn expiry_for(args: &QueueArgs, message: &Message, now: u64) -> u64 {
        let mut ttl = args.message_ttl;
        if let Some(e) = message.expiration_ms() {
            ttl = Some(ttl.map_or(e, |t| t.min(e)));
        }
        ttl.map_or(NEVER, |t| now.saturating_add(t))
    }

    fn over_limit(
        a: &QueueArgs,
        inner: &QueueInner,
        extra_count: usize,
        extra_bytes: usize,
    ) -> bool {
        a.max_length
            .is_some_and(|m| (inner.storage.len() + extra_count) as u64 > m)
            || a.max_length_bytes
                .is_some_and(|m| (inner.storage.bytes() + extra_bytes) as u64 > m)
    }

    /// drop-head: while over a length limit, the oldest messages make room (and
    /// are dead-lettered with reason `maxlen`).
    fn drop_head(args: &QueueArgs, inner: &mut QueueInner) {
        if !args.is_limited() {
            return;
        }
        while Self::over_limit(args, inner, 0, 0) {
            let Some(old) = inner.storage.pop_front() else {
                break;
            };
            inner.storage.settle(std::slice::from_ref(&old));
            inner.dead.push((old, Reason::Maxlen));
        }
    }

    /// Enqueue a message and deliver whatever can be delivered.
    /// Returns false if the queue refused the message (full, reject-publish).
    pub fn publish(self: &Arc<Self>, message: Arc<Message>) -> bool {
        if let Some(b) = self.backend() {
            return b.publish(self, message, None);
        }
        if self.stream.is_some() {
            self.publish_stream(&message);
            return true;
        }
        let now = now_ms();
        let mut inner = self.inner.lock();
        if self.is_deleted() {
            return true;
        }
        // One read of the (policy-dependent) arguments per publish.
        let args = self.args();
        let size = message.size();
        let expires_at = Self::expiry_for(&args, &message, now);
        let priority = match args.max_priority {
            Some(max) => message.priority().min(max),
            None => 0,
        };
        let qm = QueuedMessage {
            seq: inner.next_seq,
            message,
            redelivered: false,
            expires_at,
            priority,
        };
        if args.overflow != Overflow::DropHead && Self::over_limit(&args, &inner, 1, size) {
            inner.storage.settle(std::slice::from_ref(&qm));
            if args.overflow == Overflow::RejectPublishDlx {
                inner.dead.push((qm, Reason::Maxlen));
            }
            self.finish(inner);
            return false;
        }
        inner.next_seq += 1;
        inner.storage.push(qm);
        self.stats.add_serialized(MessageField::Publish, 1);
        Self::drop_head(&args, &mut inner);
        self.deliver_locked(&mut inner, now);
        // What expires now and no consumer took on arrival is gone: a TTL-0
        // message is never left for a later basic.get (RabbitMQ's rule).
        self.expire_head_at(&mut inner, now, true);
        self.finish(inner);
        true
    }

    /// Try to deliver ready messages, e.g. after a consumer got prefetch credit back.
    pub fn deliver(self: &Arc<Self>) {
        if let Some(b) = self.backend() {
            return b.deliver(self);
        }
        if let Some(s) = &self.stream {
            s.drive_all(self);
            return;
        }
        let mut inner = self.inner.lock();
        self.deliver_locked(&mut inner, now_ms());
        self.finish(inner);
    }

    /// Drop expired messages at the head (dead-lettering them).
    fn expire_head(&self, inner: &mut QueueInner, now: u64) {
        // Strictly past: a TTL-0 message can still go to a consumer that is
        // ready at the moment it arrives, as in RabbitMQ.
        self.expire_head_at(inner, now, false)
    }

    /// Drop messages at the head that expired before `now` (or at `now` too,
    /// when `inclusive`), dead-lettering them.
    fn expire_head_at(&self, inner: &mut QueueInner, now: u64, inclusive: bool) {
        loop {
            match inner.storage.front() {
                Some(m) if m.expires_at < now || (inclusive && m.expires_at == now) => {}
                _ => return,
            }
            if let Some(m) = inner.storage.pop_front() {
                inner.storage.settle(std::slice::from_ref(&m));
                inner.dead.push((m, Reason::Expired));
            }
        }
    }

    fn deliver_locked(self: &Arc<Self>, inner: &mut QueueInner, now: u64) {
        let single_active = self.args().single_active_consumer;
        loop {
            self.expire_head(inner, now);
            let n = inner.consumers.len();
            if n == 0 {
                return;
            }
            let Some(front) = inner.storage.front() else {
                return;
            };
            // Single active consumer: only the first may receive. Otherwise the
            // highest-priority consumers with room get it, round-robin among equals.
            let candidates = if single_active { 1 } else { n };
            let mut taken = None;
            let mut group_start = 0;
            while group_start < candidates && taken.is_none() {
                let prio = inner.consumers[group_start].priority;
                let group_end = inner.consumers[group_start..candidates]
                    .iter()
                    .position(|c| c.priority != prio)
                    .map_or(candidates, |p| group_start + p);
                let len = group_end - group_start;
                let start = inner.next_consumer.clamp(group_start, group_end - 1) - group_start;
                for i in 0..len {
                    let idx = group_start + (start + i) % len;
                    let c = &inner.consumers[idx];
                    if c.sink.offer(c, self, front) {
                        taken = Some((idx, c.no_ack, group_start, group_end));
                        break;
                    }
                }
                group_start = group_end;
            }
            let Some((idx, no_ack, gs, ge)) = taken else {
                return;
            };
            inner.next_consumer = if idx + 1 >= ge { gs } else { idx + 1 };
            if let Some(m) = inner.storage.pop_front() {
                self.stats
                    .count_delivery_serialized(false, no_ack, m.redelivered);
                if no_ack {
                    inner.storage.settle(std::slice::from_ref(&m));
                } else {
                    inner.unacked += 1;
                    inner.unacked_bytes += m.message.size();
                }
            }
        }
    }

    /// basic.get: take the next message. Returns it and the number still ready.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        self.touch();
        if let Some(b) = self.backend() {
            return b.get(self, no_ack);
        }
        let mut inner = self.inner.lock();
        // A get is never a message's arrival: what expires now is gone.
        self.expire_head_at(&mut inner, now_ms(), true);
        let got = inner.storage.pop_front().map(|m| {
            self.stats
                .count_delivery_serialized(true, no_ack, m.redelivered);
            if no_ack {
                inner.storage.settle(std::slice::from_ref(&m));
            } else {
                inner.unacked += 1;
                inner.unacked_bytes += m.message.size();
            }
            let remaining = inner.storage.len() as u32;
            (m, remaining)
        });
        if got.is_none() {
            self.stats.add_serialized(MessageField::GetEmpty, 1);
        }
        self.finish(inner);
        got
    }

    /// Acknowledged: forget the messages.
    pub fn settle(&self, msgs: &[QueuedMessage]) {
        if let Some(b) = self.backend() {
            return b.settle(self, msgs);
        }
        if self.stream.is_some() {
            // A stream keeps its messages: an ack only gives credit back.
            self.stats.add(MessageField::Ack, msgs.len() as u64);
            return;
        }
        let mut inner = self.inner.lock();
        inner.storage.settle(msgs);
        Self::forget_unacked(&mut inner, msgs);
        self.stats
            .add_serialized(MessageField::Ack, msgs.len() as u64);
    }

    /// Settled or requeued deliveries are no longer unacknowledged.
    fn forget_unacked(inner: &mut QueueInner, msgs: &[QueuedMessage]) {
        let bytes: usize = msgs.iter().map(|m| m.message.size()).sum();
        inner.unacked = inner.unacked.saturating_sub(msgs.len());
        inner.unacked_bytes = inner.unacked_bytes.saturating_sub(bytes);
    }

    /// Rejected without requeue: forget them, dead-lettering if configured.
    pub fn reject(self: &Arc<Self>, msgs: Vec<QueuedMessage>) {
        if let Some(b) = self.backend() {
            return b.reject(self, msgs);
        }
        if self.stream.is_some() {
            return;
        }
        let mut inner = self.inner.lock();
        inner.storage.settle(&msgs);
        Self::forget_unacked(&mut inner, &msgs);
        inner
            .dead
            .extend(msgs.into_iter().map(|m| (m, Reason::Rejected)));
        self.finish(inner);
    }

    /// Attach the backlog recovered from the message log at startup: counts
    /// per log segment; the queue reads the messages as it gets to them.
    pub(crate) fn recover(&self, recovered: RecoveredQueue) {
        let ttl = self.args().message_ttl;
        let mut inner = self.inner.lock();
        let first = inner.next_seq;
        inner.next_seq = inner.storage.recover(recovered, first, ttl);
    }

    /// Start the timers of a queue restored at startup (its head message's TTL and
    /// its `x-expires` lease), which otherwise would only be armed at first use.
    /// Call inside the runtime.
    pub(crate) fn start_timers(self: &Arc<Self>) {
        let mut inner = self.inner.lock();
        self.deliver_locked(&mut inner, now_ms());
        self.finish(inner);
        self.arm_queue_expiry();
    }

    /// Return delivered messages to the queue at their original positions, marked
    /// redelivered, and deliver again.
    pub fn requeue(self: &Arc<Self>, msgs: impl IntoIterator<Item = QueuedMessage>) {
        if let Some(b) = self.backend() {
            return b.requeue(self, msgs.into_iter().collect());
        }
        if self.stream.is_some() {
            // Nothing to put back: the messages never left the stream.
            return;
        }
        let mut inner = self.inner.lock();
        if self.is_deleted() {
            return;
        }
        for mut m in msgs {
            m.redelivered = true;
            Self::forget_unacked(&mut inner, std::slice::from_ref(&m));
            inner.storage.requeue(m);
        }
        self.deliver_locked(&mut inner, now_ms());
        self.finish(inner);
    }

    /// queue.purge: drop ready messages, returning how many.
    pub fn purge(&self) -> u32 {
        if let Some(b) = self.backend() {
            return b.purge(self);
        }
        self.inner.lock().storage.purge() as u32
    }

    /// Attach a consumer, enforcing exclusive-consumer rules. Nothing is delivered
    /// to it until it is activated and [`Queue::deliver`] is called.
    pub fn add_consumer(self: &Arc<Self>, consumer: Arc<Consumer>) -> Result<()> {
        self.touch();
        if let Some(b) = self.backend() {
            if self.is_deleted() {
                return Err(BrokerError::not_found(format!(
                    "no queue '{}' in vhost '{}'",
                    self.name,
                    self.vhost_name()
                )));
            }
            return b.add_consumer(self, consumer);
        }
        let spec = match &self.stream {
            Some(_) => Some(stream::OffsetSpec::parse(
                consumer.arguments.get(stream::OFFSET_HEADER),
                now_ms(),
            )?),
            None => None,
        };
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
        let pos = inner
            .consumers
            .partition_point(|c| c.priority >= consumer.priority);
        inner.consumers.insert(pos, consumer.clone());
        inner.had_consumer = true;
        drop(inner);
        if let (Some(s), Some(spec)) = (&self.stream, spec) {
            s.add_consumer(consumer, spec);
        }
        Ok(())
    }

    /// Detach a consumer. Deletes an auto-delete queue that lost its last one.
    pub fn remove_consumer(self: &Arc<Self>, consumer: &Arc<Consumer>) {
        self.touch();
        if let Some(b) = self.backend() {
            return b.remove_consumer(self, consumer);
        }
        let now_empty = {
            let mut inner = self.inner.lock();
            let before = inner.consumers.len();
            inner.consumers.retain(|c| !Arc::ptr_eq(c, consumer));
            if let Some(s) = &self.stream {
                s.remove_consumer(consumer);
            }
            if inner.next_consumer >= inner.consumers.len() {
                inner.next_consumer = 0;
            }
            let empty =
                before != inner.consumers.len() && inner.consumers.is_empty() && inner.had_consumer;
            // Single active consumer: the next one takes over.
            if !empty {
                self.deliver_locked(&mut inner, now_ms());
            }
            self.finish(inner);
            empty
        };
        if now_empty && self.options.auto_delete {
            if let Some(vhost) = self.vhost.upgrade() {
                vhost.retire_queue(self);
            }
        }
    }

    /// Mark deleted, drop messages and detach consumers, telling each one.
    /// Called by the vhost after it removed the queue from its tables.
    pub(crate) fn mark_deleted(&self) -> u32 {
        if let Some(b) = self.backend() {
            let n = b.depth(self).messages_ready as u32;
            self.deleted.store(true, Ordering::Release);
            b.deleted(self);
            let consumers = std::mem::take(&mut self.inner.lock().consumers);
            for c in consumers {
                c.sink.cancelled(&c);
            }
            return n;
        }
        let (count, consumers) = {
            let mut inner = self.inner.lock();
            self.deleted.store(true, Ordering::Release);
            let mut n = inner.storage.purge() as u32;
            if let Some(s) = &self.stream {
                // RabbitMQ's delete-ok for a stream says 0.
                s.delete();
                n = 0;
            }
            (n, std::mem::take(&mut inner.consumers))
        };
        for c in consumers {
            c.sink.cancelled(&c);
        }
        count
    }

    /// Arm the expiry timer for the head message if it expires before the timer
    /// already armed (one timer per queue, whatever the number of messages).
    fn arm_expiry(self: &Arc<Self>, inner: &mut QueueInner) {
        if self.args().message_ttl.is_none() && inner.storage.is_empty() {
            return;
        }
        let due = match inner.storage.front() {
            Some(m) if m.expires_at != NEVER => m.expires_at,
            _ => return,
        };
        if due >= inner.timer_due {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        inner.timer_due = due;
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            // One past the deadline: a message expires once its time has passed.
            let wait = (due + 1).saturating_sub(now_ms());
            tokio::time::sleep(std::time::Duration::from_millis(wait)).await;
            if let Some(q) = weak.upgrade() {
                let mut inner = q.inner.lock();
                if inner.timer_due == due {
                    inner.timer_due = NEVER;
                }
                q.deliver_locked(&mut inner, now_ms());
                q.finish(inner);
            }
        });
    }

    /// `x-expires`: delete the queue once unused (no consumers, no get, no
    /// redeclare) for that long.
    fn arm_queue_expiry(self: &Arc<Self>) {
        if self.args().expires.is_none() || self.expiry_armed.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            self.expiry_armed.store(false, Ordering::Release);
            return;
        };
        let weak = Arc::downgrade(self);
        rt.spawn(async move {
            loop {
                let (last, expires) = match weak.upgrade() {
                    // A queue homed on another node: its home decides (it
                    // sees the queue's use from every node).
                    Some(q) if q.backend().is_some() => {
                        q.expiry_armed.store(false, Ordering::Release);
                        return;
                    }
                    Some(q) if !q.is_deleted() => match q.args().expires {
                        Some(e) => (q.last_used.load(Ordering::Relaxed), e),
                        None => {
                            // A policy removed x-expires.
                            q.expiry_armed.store(false, Ordering::Release);
                            return;
                        }
                    },
                    _ => return,
                };
                let due = last.saturating_add(expires);
                let now = now_ms();
                if now < due {
                    tokio::time::sleep(std::time::Duration::from_millis(due - now)).await;
                    continue;
                }
                let Some(q) = weak.upgrade() else { return };
                if q.consumer_count() > 0 {
                    q.touch();
                    continue;
                }
                if let Some(v) = q.vhost.upgrade() {
                    v.retire_queue(&q);
                }
                return;
            }
        });
    }

    pub(crate) fn vhost(&self) -> Option<Arc<VHost>> {
        self.vhost.upgrade()
    }
}

/// A stream's retention from its effective arguments.
fn retention(args: &QueueArgs) -> stream::Retention {
    let s = args.stream.as_ref();
    stream::Retention {
        max_bytes: args.max_length_bytes,
        max_age: s.and_then(|s| s.max_age),
        max_segment_size: s.map_or(crate::store::stream_index::DEFAULT_SEGMENT_SIZE, |s| {
            s.max_segment_size
        }),
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).finish()
    }
}
