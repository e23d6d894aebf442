//! Subscriptions and the deliveries they are waiting to have acknowledged: the
//! part of a STOMP connection that queues call into.
//!
//! RabbitMQ runs every STOMP connection over one AMQP channel, and clients can
//! tell: delivery tags (the last part of a `message-id`) count up across all the
//! connection's subscriptions, and an `ACK` in `client` mode acknowledges every
//! earlier unacknowledged delivery *of the connection*, as `basic.ack(multiple)`
//! does. So the unacknowledged deliveries are one list per connection,
//! [`Deliveries`], and each subscription's consumer is a small
//! [`SubscriptionSink`] that checks its prefetch and records deliveries there.
//!
//! Under the state lock a delivery gets its tag, is recorded and is queued for
//! the writer, so tags reach the client in order and an ACK can never name a
//! delivery not yet sent. Lock order is queue → connection state, never the
//! reverse: the reader takes deliveries out of the state, drops the lock, then
//! settles or requeues them in their queues.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicU32;
use std::sync::Arc;
use warren_core::stats::ChannelStats;
use warren_core::trace::Origin;
use warren_core::{BrokerError, Consumer, ConsumerSink, Queue, QueuedMessage, VHost};

use crate::failure::quoted;
use crate::frame::Frame;
use crate::writer::{send, Delivery, Outbound, Outlet, SubInfo};

/// How a subscription's deliveries are acknowledged (`ack` header of SUBSCRIBE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckMode {
    /// Acknowledged once sent.
    Auto,
    /// `client`: an ACK acknowledges this delivery and every earlier one.
    Client,
    /// `client-individual`: an ACK acknowledges only its delivery.
    ClientIndividual,
}

impl AckMode {
    /// RabbitMQ accepts exactly these three values (anything else crashes its
    /// processor: "Processing error").
    pub fn parse(v: Option<&[u8]>) -> Option<AckMode> {
        match v {
            None | Some(b"auto") => Some(AckMode::Auto),
            Some(b"client") => Some(AckMode::Client),
            Some(b"client-individual") => Some(AckMode::ClientIndividual),
            _ => None,
        }
    }

    /// ACK/NACK acknowledge every earlier delivery too.
    pub fn multiple(self) -> bool {
        self == AckMode::Client
    }
}

/// A live subscription.
pub struct Subscription {
    pub info: Arc<SubInfo>,
    pub consumer: Arc<Consumer>,
    pub queue: Arc<Queue>,
    /// The SUBSCRIBE's `destination` header (UNSUBSCRIBE of a durable topic
    /// subscription derives the queue name from it).
    pub destination: Bytes,
    pub ack: AckMode,
    /// `id='x'` or `destination='d'`, for error texts.
    pub description: String,
}

/// A delivery the client has not acknowledged yet.
pub struct Unacked {
    pub tag: u64,
    pub queue: Arc<Queue>,
    pub msg: QueuedMessage,
    pub consumer: Arc<Consumer>,
}

struct State {
    next_tag: u64,
    unacked: VecDeque<Unacked>,
    /// By consumer tag (`T_id` / `Q_destination`).
    subscriptions: HashMap<Bytes, Subscription>,
    /// The connection is going: take nothing more.
    closed: bool,
}

/// A connection's subscriptions and unacknowledged deliveries.
pub struct Deliveries {
    pub outlet: Arc<Outlet>,
    vhost: Arc<VHost>,
    origin: Origin,
    state: Mutex<State>,
    /// The connection's one channel's counters, for the management API (see
    /// `listing.rs`): deliveries are counted under the state lock, SENDs and
    /// ACKs by the reader task alone.
    pub stats: ChannelStats,
    /// `prefetch-count` for new subscriptions, mirrored from the session.
    pub prefetch: AtomicU32,
}

impl Deliveries {
    pub fn new(outlet: Arc<Outlet>, vhost: Arc<VHost>, origin: Origin) -> Arc<Deliveries> {
        let stats = ChannelStats::new(vhost.churn().clone());
        Arc::new(Deliveries {
            outlet,
            vhost,
            origin,
            state: Mutex::new(State {
                next_tag: 1,
                unacked: VecDeque::new(),
                subscriptions: HashMap::new(),
                closed: false,
            }),
            stats,
            prefetch: AtomicU32::new(0),
        })
    }

    /// The connection's name ("peer -> local").
    pub fn connection_name(&self) -> &str {
        &self.origin.connection
    }

    /// Unacknowledged deliveries and live subscriptions.
    pub fn counts(&self) -> (usize, usize) {
        let st = self.state.lock();
        (st.unacked.len(), st.subscriptions.len())
    }

    pub fn contains(&self, tag: &[u8]) -> bool {
        self.state.lock().subscriptions.contains_key(tag)
    }

    /// The ack mode of the subscription with this consumer tag.
    pub fn ack_mode(&self, tag: &[u8]) -> Option<AckMode> {
        self.state.lock().subscriptions.get(tag).map(|s| s.ack)
    }

    pub fn insert(&self, sub: Subscription) {
        self.state
            .lock()
            .subscriptions
            .insert(sub.info.tag.clone(), sub);
    }

    /// The destination and queue consumer of the subscription with this tag.
    pub fn consumer_of(&self, tag: &[u8]) -> Option<(Bytes, Arc<Consumer>, Arc<Queue>)> {
        let st = self.state.lock();
        let s = st.subscriptions.get(tag)?;
        Some((s.destination.clone(), s.consumer.clone(), s.queue.clone()))
    }

    pub fn remove(&self, tag: &[u8]) -> Option<Subscription> {
        self.state.lock().subscriptions.remove(tag)
    }

    /// Take the deliveries an ACK/NACK refers to: `tag` alone, or with
    /// `multiple` every delivery up to it. As RabbitMQ, the tag itself must be
    /// outstanding (else 406 "unknown delivery tag", which closes the connection).
    pub fn take(&self, tag: u64, multiple: bool) -> Result<Vec<Unacked>, BrokerError> {
        let mut st = self.state.lock();
        let end = st.unacked.partition_point(|u| u.tag <= tag);
        if end == 0 || st.unacked[end - 1].tag != tag {
            return Err(BrokerError::precondition_failed(format!(
                "unknown delivery tag {}",
                tag
            )));
        }
        let taken: Vec<Unacked> = if multiple {
            st.unacked.drain(..end).collect()
        } else {
            st.unacked.remove(end - 1).into_iter().collect()
        };
        drop(st);
        for u in &taken {
            u.consumer.sub_unacked(1);
        }
        Ok(taken)
    }

    /// Whether `tag` is outstanding (transactions check ACKs when they arrive).
    pub fn is_outstanding(&self, tag: u64) -> bool {
        let st = self.state.lock();
        let end = st.unacked.partition_point(|u| u.tag <= tag);
        end > 0 && st.unacked[end - 1].tag == tag
    }

    /// The connection closes: stop taking deliveries and hand back every
    /// subscription and unacknowledged delivery.
    pub fn close(&self) -> (Vec<Subscription>, Vec<Unacked>) {
        let mut st = self.state.lock();
        st.closed = true;
        let subs = st.subscriptions.drain().map(|(_, s)| s).collect();
        let unacked: Vec<Unacked> = st.unacked.drain(..).collect();
        drop(st);
        for u in &unacked {
            u.consumer.sub_unacked(1);
        }
        (subs, unacked)
    }
}

/// One subscription's consumer: what the queue offers messages to.
pub struct SubscriptionSink {
    pub info: Arc<SubInfo>,
    pub deliveries: Arc<Deliveries>,
}

impl ConsumerSink for SubscriptionSink {
    fn offer(&self, consumer: &Arc<Consumer>, queue: &Arc<Queue>, msg: &QueuedMessage) -> bool {
        let d = &self.deliveries;
        if !consumer.is_active() || !consumer.has_credit() || !d.outlet.has_room(queue) {
            return false;
        }
        let mut st = d.state.lock();
        if st.closed {
            return false;
        }
        let tag = st.next_tag;
        st.next_tag += 1;
        d.stats
            .messages
            .count_delivery_serialized(false, consumer.no_ack, msg.redelivered);
        if !consumer.no_ack {
            consumer.add_unacked();
            st.unacked.push_back(Unacked {
                tag,
                queue: queue.clone(),
                msg: queue.unacked_entry(msg),
                consumer: consumer.clone(),
            });
        }
        if d.vhost.is_tracing() {
            warren_core::trace::deliver(queue, &msg.message, msg.redelivered, &d.origin);
        }
        send(
            &d.outlet,
            Outbound::Message(Delivery {
                sub: self.info.clone(),
                tag,
                redelivered: msg.redelivered,
                message: msg.message.clone(),
            }),
        );
        true
    }

    /// The queue was deleted: RabbitMQ tells the client with an ERROR frame and
    /// forgets the subscription (the connection stays open).
    fn cancelled(&self, consumer: &Arc<Consumer>) {
        let d = &self.deliveries;
        let mut st = d.state.lock();
        let mine = matches!(st.subscriptions.get(&self.info.tag),
            Some(s) if Arc::ptr_eq(&s.consumer, consumer));
        if !mine || st.closed {
            return;
        }
        let Some(sub) = st.subscriptions.remove(&self.info.tag) else {
            return;
        };
        let id = sub
            .info
            .subscription
            .clone()
            .unwrap_or_else(|| sub.info.tag.slice(2..));
        let detail = format!(
            "The server has canceled a subscription.\nNo more messages will be delivered for {}.\n",
            quoted(sub.description.as_bytes())
        );
        send(
            &d.outlet,
            Outbound::Frame(Frame::error(
                b"Server cancelled subscription",
                &[(b"subscription", &id)],
                Bytes::from(detail.into_bytes()),
            )),
        );
    }
}

/// Acknowledge deliveries in their queues, one call per run of the same queue.
pub fn settle(taken: &[Unacked]) {
    let mut i = 0;
    let mut msgs = Vec::new();
    while i < taken.len() {
        let q = &taken[i].queue;
        msgs.clear();
        while i < taken.len() && Arc::ptr_eq(&taken[i].queue, q) {
            msgs.push(taken[i].msg.clone());
            i += 1;
        }
        q.settle(&msgs);
    }
}

/// Group deliveries by queue, keeping their order.
fn by_queue(taken: Vec<Unacked>) -> Vec<(Arc<Queue>, Vec<QueuedMessage>)> {
    let mut out: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
    for u in taken {
        match out.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, v)) => v.push(u.msg),
            None => out.push((u.queue, vec![u.msg])),
        }
    }
    out
}

/// Return deliveries to their queues (marked redelivered).
pub fn requeue(taken: Vec<Unacked>) {
    for (q, msgs) in by_queue(taken) {
        q.requeue(msgs);
    }
}

/// Drop deliveries (dead-lettering them where the queue says so).
pub fn reject(taken: Vec<Unacked>) {
    for (q, msgs) in by_queue(taken) {
        q.reject(msgs);
    }
}

/// Let the queues of these deliveries' consumers deliver again: an ACK gave
/// their prefetch room back.
pub fn wake(taken: &[Unacked]) {
    let mut seen: Vec<*const Queue> = Vec::new();
    for u in taken {
        let p = Arc::as_ptr(&u.queue);
        if !seen.contains(&p) {
            seen.push(p);
            u.queue.deliver();
        }
    }
}
