//! The consumer side of an MQTT connection: what queues call into.
//!
//! A session consumes from at most two queues of its own (RabbitMQ's
//! `mqtt-subscription-<client>qos0` and `…qos1`) plus one per shared
//! subscription. Each has a [`SessionSink`]; they share one [`Outgoing`]: the
//! packet identifiers, the in-flight window (Receive Maximum) and the
//! subscriptions the delivered QoS, subscription identifiers, no-local and
//! retain-as-published are worked out from.
//!
//! Lock order is queue → `Outgoing::state`, never the reverse: `offer` runs
//! under the queue's lock, so it never calls back into a queue. Deliveries it
//! takes but must not send (a no-local match, a packet over the client's
//! maximum size, QoS 0 from the QoS 1 queue) are settled later by the reader
//! task, which [`Outgoing::settle_ready`] wakes.

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::Notify;
use warren_core::properties::RawProperties;
use warren_core::stats::LazyChannelStats;
use warren_core::trace::Origin;
use warren_core::{
    BasicProperties, ConnectionId, Consumer, ConsumerSink, Queue, QueuedMessage, VHost,
};

use crate::mapping;
use crate::packet::{QoS, SubscriptionOptions, Version};
use crate::props::Props;
use crate::topic;
use crate::writer::{send, Delivery, Outbound, Outlet};

/// Which of the session's queues a sink consumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QueueKind {
    /// QoS 0 subscriptions (consumed without acknowledgements).
    Qos0,
    /// QoS 1 and 2 subscriptions.
    Qos1,
    /// One shared subscription's queue (`$share/group/filter`).
    Shared,
}

/// One subscription as the delivery side needs it.
#[derive(Debug, Clone)]
pub struct Sub {
    /// The MQTT topic filter (without `$share/group/`).
    pub filter: Bytes,
    pub options: SubscriptionOptions,
    pub id: Option<u32>,
    pub kind: QueueKind,
}

/// The session's non-shared subscriptions, replaced as a whole on
/// SUBSCRIBE/UNSUBSCRIBE (readers on the delivery path take no write lock).
#[derive(Debug, Default)]
pub struct SubTable {
    pub subs: Vec<Sub>,
    /// Per queue kind: deliveries must be matched against the filters (some
    /// subscription has an identifier, no-local, retain-as-published, or the
    /// QoS 1 queue serves QoS 1 and QoS 2 subscriptions).
    match_qos0: bool,
    match_qos1: bool,
    /// Highest QoS among the QoS 1 queue's subscriptions.
    qos1_max: u8,
}

impl SubTable {
    pub fn new(subs: Vec<Sub>) -> SubTable {
        let special =
            |s: &Sub| s.id.is_some() || s.options.no_local || s.options.retain_as_published;
        let q1: Vec<&Sub> = subs.iter().filter(|s| s.kind == QueueKind::Qos1).collect();
        let qos1_max = q1.iter().map(|s| s.options.qos as u8).max().unwrap_or(1);
        let mixed = q1.iter().any(|s| s.options.qos as u8 != qos1_max);
        SubTable {
            match_qos0: subs.iter().any(|s| s.kind == QueueKind::Qos0 && special(s)),
            match_qos1: mixed || q1.iter().any(|s| special(s)),
            qos1_max,
            subs,
        }
    }

    /// Whether deliveries from this kind of queue must be matched against
    /// the filters (else the queue's QoS applies as it is).
    pub fn must_match(&self, kind: QueueKind) -> bool {
        match kind {
            QueueKind::Qos0 => self.match_qos0,
            QueueKind::Qos1 => self.match_qos1,
            QueueKind::Shared => false,
        }
    }
}

/// The table of a session without subscriptions: one for all of them (most
/// idle devices never subscribe; ~50 B each otherwise).
fn no_subscriptions() -> Arc<SubTable> {
    static EMPTY: std::sync::OnceLock<Arc<SubTable>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::new(SubTable::default())).clone()
}

/// A delivery a queue handed over: what settling or requeueing it needs.
pub type Taken = (Arc<Queue>, QueuedMessage, Arc<Consumer>);

/// A QoS ≥ 1 delivery the client has not finished acknowledging.
enum Inflight {
    /// Sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2). `queue` is None for
    /// retained messages sent on subscribe (nothing to settle).
    Sent { queue: Option<Taken> },
    /// QoS 2 after PUBREC: settled in its queue, waiting for PUBCOMP. Still
    /// counts against the client's Receive Maximum.
    Released,
}

struct State {
    next_id: u16,
    inflight: HashMap<u16, Inflight>,
    /// Taken by a queue but not sent: settled by the reader task.
    to_settle: Vec<Taken>,
    closed: bool,
}

/// A connection's outgoing deliveries.
pub struct Outgoing {
    pub outlet: Arc<Outlet>,
    pub conn: ConnectionId,
    pub version: Version,
    /// In-flight limit: min(client's Receive Maximum, the server's max_inflight).
    window: usize,
    /// The client's Maximum Packet Size (MQTT 5), else unlimited.
    max_packet: usize,
    pub subs: RwLock<Arc<SubTable>>,
    state: Mutex<State>,
    /// Wakes the reader task to settle `to_settle`.
    pub settle_ready: Notify,
    /// The management API's counters for the connection's channel, made by
    /// the first publish, delivery or ack (an idle connection has none).
    pub stats: LazyChannelStats,
    /// The firehose tracer's view of the connection (`deliver.<queue>`);
    /// `origin.connection` is its name for the management API too.
    vhost: Arc<VHost>,
    pub origin: Arc<Origin>,
}

impl Outgoing {
    pub fn new(
        outlet: Arc<Outlet>,
        conn: ConnectionId,
        version: Version,
        window: u16,
        max_packet: usize,
        vhost: Arc<VHost>,
        origin: Arc<Origin>,
    ) -> Arc<Outgoing> {
        Arc::new(Outgoing {
            outlet,
            conn,
            version,
            window: usize::from(window.max(1)),
            max_packet,
            subs: RwLock::new(no_subscriptions()),
            state: Mutex::new(State {
                next_id: 1,
                inflight: HashMap::new(),
                to_settle: Vec::new(),
                closed: false,
            }),
            settle_ready: Notify::new(),
            stats: LazyChannelStats::new(vhost.churn().clone()),
            vhost,
            origin,
        })
    }

    pub fn window(&self) -> usize {
        self.window
    }

    pub fn inflight_count(&self) -> usize {
        self.state.lock().inflight.len()
    }

    fn next_id(st: &mut State) -> u16 {
        loop {
            let id = st.next_id;
            st.next_id = st.next_id.checked_add(1).unwrap_or(1);
            if id != 0 && !st.inflight.contains_key(&id) {
                return id;
            }
        }
    }

    /// A packet id for a message not from a queue (a retained message sent on
    /// subscribe), or None when the window is full (then it goes as QoS 0).
    pub fn reserve(&self) -> Option<u16> {
        let mut st = self.state.lock();
        if st.inflight.len() >= self.window {
            return None;
        }
        let id = Self::next_id(&mut st);
        st.inflight.insert(id, Inflight::Sent { queue: None });
        Some(id)
    }

    /// QoS 2 packet ids the previous connection had PUBREC'd, awaiting PUBCOMP:
    /// the client gets their PUBREL again.
    pub fn restore_released(&self, ids: &[u16]) {
        let mut st = self.state.lock();
        for &id in ids {
            st.inflight.insert(id, Inflight::Released);
        }
    }

    /// PUBACK: the delivery is done. Returns it (to settle) if it came from a queue.
    pub fn puback(&self, id: u16) -> Option<Taken> {
        let mut st = self.state.lock();
        match st.inflight.get(&id) {
            Some(Inflight::Sent { .. }) => match st.inflight.remove(&id) {
                Some(Inflight::Sent { queue }) => queue,
                _ => None,
            },
            _ => None,
        }
    }

    /// PUBREC: the client owns the message now. Returns whether the id was
    /// known (the PUBREL's reason) and the delivery to settle.
    pub fn pubrec(&self, id: u16) -> (bool, Option<Taken>) {
        let mut st = self.state.lock();
        match st.inflight.insert(id, Inflight::Released) {
            Some(Inflight::Sent { queue }) => (true, queue),
            Some(Inflight::Released) => (true, None),
            None => {
                st.inflight.remove(&id);
                (false, None)
            }
        }
    }

    /// PUBCOMP: the packet id is free again.
    pub fn pubcomp(&self, id: u16) -> bool {
        let mut st = self.state.lock();
        matches!(st.inflight.get(&id), Some(Inflight::Released))
            && st.inflight.remove(&id).is_some()
    }

    pub fn take_to_settle(&self) -> Vec<Taken> {
        std::mem::take(&mut self.state.lock().to_settle)
    }

    /// The connection closes: stop taking deliveries; hand back what is
    /// unacknowledged (to requeue) and the QoS 2 ids awaiting PUBCOMP.
    pub fn close(&self) -> (Vec<Taken>, Vec<u16>) {
        let mut st = self.state.lock();
        st.closed = true;
        let mut unacked = std::mem::take(&mut st.to_settle);
        // to_settle entries are done with: settle, not requeue.
        let settle_now = std::mem::take(&mut unacked);
        let mut released = Vec::new();
        for (id, f) in st.inflight.drain() {
            match f {
                Inflight::Sent { queue: Some(q) } => unacked.push(q),
                Inflight::Sent { queue: None } => {}
                Inflight::Released => released.push(id),
            }
        }
        drop(st);
        for (q, m, c) in settle_now {
            c.sub_unacked(1);
            q.settle(&[m]);
        }
        (unacked, released)
    }
}

/// What a delivery of `msg` to this session comes to.
struct Plan {
    qos: u8,
    retain: bool,
    ids: Vec<u32>,
    /// Nothing to send (no-local): take it and settle it.
    skip: bool,
}

/// One queue's consumer.
pub struct SessionSink {
    pub kind: QueueKind,
    /// For shared subscriptions: the one subscription this queue serves.
    pub shared: Option<Sub>,
    pub out: Arc<Outgoing>,
}

impl SessionSink {
    fn plan(&self, msg: &QueuedMessage, amqp: &mapping::FromAmqp) -> Plan {
        let out = &self.out;
        let m = &msg.message;
        let mine = m.publisher != 0 && m.publisher == out.conn;
        if let Some(s) = &self.shared {
            return Plan {
                qos: (s.options.qos as u8).min(amqp.qos),
                retain: s.options.retain_as_published && amqp.retain,
                ids: s.id.into_iter().collect(),
                skip: false,
            };
        }
        let table = out.subs.read().clone();
        let (must_match, base) = match self.kind {
            QueueKind::Qos0 => (table.match_qos0, 0),
            _ => (table.match_qos1, table.qos1_max),
        };
        if !must_match {
            return Plan {
                qos: base.min(amqp.qos),
                retain: false,
                ids: Vec::new(),
                skip: false,
            };
        }
        let mut t = Vec::new();
        topic::from_amqp(m.routing_key.as_bytes(), &mut t);
        let mut plan = Plan {
            qos: 0,
            retain: false,
            ids: Vec::new(),
            skip: true,
        };
        for s in table.subs.iter().filter(|s| s.kind == self.kind) {
            if !topic::matches(&s.filter, &t) || (mine && s.options.no_local) {
                continue;
            }
            plan.skip = false;
            plan.qos = plan.qos.max(s.options.qos as u8);
            plan.retain |= s.options.retain_as_published && amqp.retain;
            if let Some(id) = s.id {
                plan.ids.push(id);
            }
        }
        plan.qos = plan.qos.min(amqp.qos);
        plan
    }
}

impl ConsumerSink for SessionSink {
    fn offer(&self, consumer: &Arc<Consumer>, queue: &Arc<Queue>, msg: &QueuedMessage) -> bool {
        let out = &self.out;
        if !consumer.is_active() || !out.outlet.has_room(queue) {
            return false;
        }
        let m = &msg.message;
        let v5 = out.version.is_v5();
        // Decode properties only when there are some and they matter.
        let amqp = if RawProperties::flags(&m.properties) != 0
            && (v5 || RawProperties::has_headers(&m.properties))
        {
            mapping::from_amqp(
                &BasicProperties::decode(&m.properties).unwrap_or_default(),
                v5,
            )
        } else {
            mapping::FromAmqp {
                qos: if m.persistent { 1 } else { 0 },
                ..mapping::FromAmqp::default()
            }
        };
        let plan = self.plan(msg, &amqp);
        let mut st = out.state.lock();
        if st.closed {
            return false;
        }
        let too_big = 16 + m.routing_key.len() + m.body.len() + m.properties.len() > out.max_packet;
        if plan.skip || too_big || (plan.qos == 0 && !consumer.no_ack) {
            if !consumer.no_ack {
                consumer.add_unacked();
                st.to_settle
                    .push((queue.clone(), msg.clone(), consumer.clone()));
                drop(st);
                out.settle_ready.notify_one();
            }
            if plan.skip || too_big {
                return true;
            }
            st = out.state.lock();
        }
        let qos = QoS::from_u8(plan.qos).unwrap_or(QoS::AtMostOnce);
        let packet_id = if qos == QoS::AtMostOnce {
            None
        } else {
            if st.inflight.len() >= out.window {
                return false;
            }
            let id = Outgoing::next_id(&mut st);
            consumer.add_unacked();
            st.inflight.insert(
                id,
                Inflight::Sent {
                    queue: Some((queue.clone(), msg.clone(), consumer.clone())),
                },
            );
            Some(id)
        };
        out.stats.get().messages.count_delivery_serialized(
            false,
            packet_id.is_none(),
            msg.redelivered,
        );
        if out.vhost.is_tracing() {
            warren_core::trace::deliver(queue, m, msg.redelivered, &out.origin);
        }
        // Boxed only when there are some (never for 3.1.1).
        let mut properties = Props::from(amqp.properties);
        if !plan.ids.is_empty() {
            properties.subscription_identifiers = plan.ids;
        }
        if v5 {
            // The expiry left in this queue, as MQTT 5 asks.
            if properties.message_expiry_interval.is_some()
                && msg.expires_at != warren_core::message::NEVER
            {
                let left = msg.expires_at.saturating_sub(warren_core::queue::now_ms()) / 1000;
                properties.message_expiry_interval = Some(u32::try_from(left).unwrap_or(u32::MAX));
            }
        }
        send(
            &out.outlet,
            Outbound::Delivery(Delivery {
                message: m.clone(),
                packet_id,
                qos,
                dup: msg.redelivered && packet_id.is_some(),
                retain: plan.retain,
                properties,
            }),
        );
        true
    }

    /// The queue was deleted (by management, or its session expired): MQTT
    /// has no way to tell the client; its subscriptions through it just end.
    fn cancelled(&self, _consumer: &Arc<Consumer>) {}
}

/// Settle deliveries in their queues and let the queues deliver again.
pub fn settle(done: Vec<Taken>) {
    for (q, m, c) in done {
        c.sub_unacked(1);
        q.settle(&[m]);
        q.deliver();
    }
}

/// Settle acknowledged deliveries, one call per run of the same queue (the
/// caller wakes the queues once afterwards).
pub fn settle_batch(done: Vec<Taken>) {
    let mut msgs = Vec::with_capacity(done.len());
    let mut it = done.into_iter().peekable();
    while let Some((q, m, c)) = it.next() {
        c.sub_unacked(1);
        msgs.push(m);
        let same_next = matches!(it.peek(), Some((next, _, _)) if Arc::ptr_eq(next, &q));
        if !same_next {
            q.settle(&msgs);
            msgs.clear();
        }
    }
}

/// Return deliveries to their queues (redelivered).
pub fn requeue(undone: Vec<Taken>) {
    for (q, m, c) in undone {
        c.sub_unacked(1);
        q.requeue([m]);
    }
}
