//! A connected MQTT session: the packet handlers.
//!
//! Owned by the connection's reader task (no lock). What queues touch
//! concurrently lives in [`Outgoing`]. Each handler maps a packet onto the
//! broker-core calls RabbitMQ's MQTT plugin makes:
//!
//! | packet | core calls |
//! |---|---|
//! | PUBLISH | retained store; publish to `amq.topic` (write permission) |
//! | SUBSCRIBE | declare `mqtt-subscription-<client>qos0`/`qos1` (configure), consume (read), bind (write on queue, read on exchange) |
//! | UNSUBSCRIBE | unbind |
//! | PUBACK / PUBREC / PUBCOMP | settle deliveries |
//!
//! A subscription is a binding of the session's queue to `amq.topic`; its MQTT
//! filter and options are the binding's arguments, so a persistent session's
//! subscriptions are stored (and recovered after a restart) with the queue's
//! durable bindings, and management lists them.

use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::Notify;
use warren_core::confirm::ConfirmTracker;
use warren_core::exchange::Destination;
use warren_core::permissions::{Access, Resource};
use warren_core::queue::ChannelRef;
use warren_core::stats::MessageField;
use warren_core::{
    BrokerError, ConnectionId, Consumer, FieldTable, FieldValue, Queue, QueueOptions, ShortStr,
    VHost,
};

use crate::delivery::{self, Outgoing, QueueKind, SessionSink, Sub, SubTable};
use crate::packet::*;
use crate::properties::Properties;
use crate::props::Props;
use crate::publish::Publisher;
use crate::reason::ReasonCode;
use crate::registry::{Node, Saved};
use crate::session_state::Change;
use crate::topic;
use crate::writer::send_packet;

#[path = "session_cluster.rs"]
mod cluster;

/// Binding arguments that carry an MQTT subscription.
const ARG_FILTER: &str = "x-mqtt-filter";
const ARG_OPTIONS: &str = "x-mqtt-options";
const ARG_ID: &str = "x-mqtt-subscription-id";

/// A protocol violation or refusal that ends the connection (MQTT 5: with a
/// DISCONNECT carrying `code` and `reason`).
#[derive(Debug)]
pub struct Fail {
    pub code: ReasonCode,
    pub reason: String,
}

impl Fail {
    pub fn new(code: ReasonCode, reason: impl Into<String>) -> Fail {
        Fail {
            code,
            reason: reason.into(),
        }
    }
}

/// What the connection does after a packet.
pub enum Flow {
    Continue,
    /// DISCONNECT from the client; `with_will` for MQTT 5's reason 0x04.
    Disconnect {
        with_will: bool,
    },
}

/// How the session lives on after its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persistence {
    /// Clean session / MQTT 5 session expiry 0: everything goes at disconnect.
    Clean,
    /// Kept for `expiry_ms` after the connection ends (MQTT 5 session
    /// expiry; 3.1.1: `subscription_ttl`), None: forever.
    Kept { expiry_ms: Option<u64> },
}

struct Subscription {
    sub: Sub,
    /// Queue name, binding key and arguments (to unbind exactly this binding).
    queue: ShortStr,
    key: ShortStr,
    args: FieldTable,
}

#[derive(Default)]
struct Rare {
    /// Shared subscriptions (full `$share/…` filter) → queue and consumer.
    shared: HashMap<Bytes, (Arc<Queue>, Arc<Consumer>)>,
    /// Incoming QoS 2 packet ids awaiting PUBREL.
    incoming_qos2: HashSet<u16>,
    /// Topic aliases the client set (MQTT 5).
    aliases: HashMap<u16, Bytes>,
}

pub struct Session {
    pub node: Arc<Node>,
    pub vhost: Arc<VHost>,
    pub conn: ConnectionId,
    pub version: Version,
    pub client_id: Bytes,
    pub out: Arc<Outgoing>,
    pub publisher: Publisher,
    pub persistence: Persistence,
    /// The session's own queues and their consumers.
    queues: HashMap<QueueKind, (Arc<Queue>, Arc<Consumer>)>,
    subs: HashMap<Bytes, Subscription>,
    /// What few sessions use, boxed and made on first use (an idle
    /// connection's future holds the session: three empty hash maps inline
    /// were 144 B of it).
    rare: Option<Box<Rare>>,
    /// PUBACK/PUBREC waiting for their message to be on disk: (message-log
    /// ticket, retained-store ticket, confirm-tracker ticket, packet).
    pending: VecDeque<(u64, u64, u64, Packet)>,
    /// Tickets of QoS 1/2 publishes into replicated queues (quorum queues),
    /// which confirm on their own, and what they wake. Made by the first
    /// QoS 1/2 publish: most connections never publish one.
    confirms: Option<(Arc<ConfirmTracker>, Arc<Notify>)>,
    pub has_published: bool,
    /// Deliveries the client acknowledged in this batch of packets, settled
    /// together by [`Session::settle_acked`].
    acked: Vec<crate::delivery::Taken>,
    /// An ack freed room in the window (queues to wake after the batch).
    need_wake: bool,
    /// Consumers to start once the SUBACK is queued.
    to_activate: Vec<(Arc<Consumer>, Arc<Queue>)>,
}

pub(crate) fn queue_name(client_id: &[u8], kind: QueueKind) -> ShortStr {
    let mut n = b"mqtt-subscription-".to_vec();
    n.extend_from_slice(client_id);
    n.extend_from_slice(if kind == QueueKind::Qos0 {
        b"qos0"
    } else {
        b"qos1"
    });
    ShortStr(n.into())
}

fn shared_queue_name(group: &[u8], filter: &[u8]) -> ShortStr {
    let mut n = b"mqtt-shared-".to_vec();
    n.extend_from_slice(group);
    n.push(b'-');
    n.extend_from_slice(&topic::to_amqp(filter));
    ShortStr(n.into())
}

/// A topic filter with misplaced wildcards (or a malformed `$share/`) is a
/// malformed packet, as mosquitto and RabbitMQ treat it: the connection
/// closes (MQTT 5: DISCONNECT 0x81).
fn check_filter(filter: &[u8], version: Version) -> Result<(), Fail> {
    let ok = if version.is_v5() {
        topic::parse_shared(filter).is_ok()
            && (filter.starts_with(b"$share/") || topic::validate_filter(filter).is_ok())
    } else {
        topic::validate_filter(filter).is_ok()
    };
    if ok {
        Ok(())
    } else {
        Err(Fail::new(
            ReasonCode::MALFORMED_PACKET,
            format!("invalid topic filter '{}'", String::from_utf8_lossy(filter)),
        ))
    }
}

/// The arguments of the binding that carries subscription `sub`.
pub(crate) fn binding_args(sub: &Sub) -> FieldTable {
    let mut args = FieldTable::new();
    args.insert(ARG_FILTER, FieldValue::LongStr(sub.filter.clone()));
    args.insert(ARG_OPTIONS, FieldValue::U8(sub.options.to_byte()));
    if let Some(i) = sub.id {
        args.insert(ARG_ID, FieldValue::U32(i));
    }
    args
}

/// Delete the queues of shared subscriptions (full `$share/…` filters) that
/// have no member left: none connected (no consumer) and no stored session.
/// A group with only disconnected persistent members keeps its queue, so its
/// messages wait for the first member back.
pub fn release_groups(node: &Node, vhost: &VHost, filters: &[Bytes]) {
    if filters.is_empty() {
        return;
    }
    let name = vhost.name.to_string_lossy();
    for filter in filters {
        let Ok(Some((group, f))) = topic::parse_shared(filter) else {
            continue;
        };
        let Some(q) = vhost.named_queue(shared_queue_name(group, f).as_bytes()) else {
            continue;
        };
        if q.consumer_count() == 0 && !node.retained.shared_in_use(&name, filter) {
            vhost.retire_queue(&q);
        }
    }
}

/// A `$share/…` filter (MQTT 5 only treats it as shared; checking 3.1.1
/// filters too costs only a needless, unchanged store).
fn is_shared(filter: &[u8]) -> bool {
    filter.starts_with(b"$share/")
}

fn refused(e: &BrokerError) -> ReasonCode {
    match e.code {
        warren_core::error::code::ACCESS_REFUSED => ReasonCode::NOT_AUTHORIZED,
        warren_core::error::code::PRECONDITION_FAILED => ReasonCode::QUOTA_EXCEEDED,
        _ => ReasonCode::UNSPECIFIED_ERROR,
    }
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        node: Arc<Node>,
        vhost: Arc<VHost>,
        user: String,
        conn: ConnectionId,
        version: Version,
        client_id: Bytes,
        out: Arc<Outgoing>,
        persistence: Persistence,
        saved: Saved,
    ) -> Session {
        Session {
            publisher: Publisher::new(node.clone(), vhost.clone(), user, conn, &client_id),
            node,
            vhost,
            conn,
            version,
            client_id,
            out,
            persistence,
            queues: HashMap::new(),
            subs: HashMap::new(),
            rare: (!saved.incoming_qos2.is_empty()).then(|| {
                Box::new(Rare {
                    incoming_qos2: saved.incoming_qos2,
                    ..Rare::default()
                })
            }),
            pending: VecDeque::new(),
            confirms: None,
            has_published: false,
            acked: Vec::new(),
            need_wake: false,
            to_activate: Vec::new(),
        }
    }

    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The shared subscriptions' queues and consumers.
    fn shared(&self) -> impl Iterator<Item = &(Arc<Queue>, Arc<Consumer>)> {
        self.rare.iter().flat_map(|r| r.shared.values())
    }

    /// What a replicated queue's confirm wakes (None before the first QoS
    /// 1/2 publish).
    pub fn confirm_wake(&self) -> Option<Arc<Notify>> {
        self.confirms.as_ref().map(|(_, n)| n.clone())
    }

    /// Whether a previous connection left a session (its queues) behind.
    pub fn exists(vhost: &VHost, client_id: &[u8]) -> bool {
        [QueueKind::Qos0, QueueKind::Qos1].iter().any(|&k| {
            vhost
                .named_queue(queue_name(client_id, k).as_bytes())
                .is_some()
        })
    }

    /// The queues a previous connection left.
    fn left_queues(vhost: &VHost, client_id: &[u8]) -> Vec<Arc<Queue>> {
        [QueueKind::Qos0, QueueKind::Qos1]
            .iter()
            .filter_map(|&k| vhost.named_queue(queue_name(client_id, k).as_bytes()))
            .collect()
    }

    /// Delete what a session whose expiry passed left. On a cluster, its
    /// queues go from every node, but only those this node is the home of
    /// and nobody consumes from: the device may have connected to another
    /// node since (its session state is per node), and then consumes from
    /// them through their home. Queues homed elsewhere are left to their
    /// home's `x-expires` lease (the longest session expiry), as this node
    /// cannot see who uses them there.
    pub fn expire(vhost: &VHost, client_id: &[u8]) {
        for q in Self::left_queues(vhost, client_id) {
            if q.home().is_some() && (q.backend().is_some() || q.consumer_count() > 0) {
                continue;
            }
            vhost.retire_queue(&q);
        }
    }

    /// Delete what a previous connection left, for a clean start (on a
    /// cluster, from every node): returns once the queues are
    /// gone cluster-wide, so that the new session's own queues (declared
    /// right after, under the same names) are not deleted by it.
    pub async fn discard_now(vhost: &VHost, client_id: &[u8]) {
        for q in Self::left_queues(vhost, client_id) {
            vhost.retire_queue_now(&q).await;
        }
    }

    fn send(&self, p: Packet) {
        send_packet(&self.out.outlet, p);
    }

    /// Resume a persistent session: consume its queues again and rebuild its
    /// subscriptions from their bindings.
    pub fn resume(&mut self) -> Result<(), Fail> {
        let exchange = self.node.config.exchange.clone();
        let x = self.vhost.exchange(exchange.as_bytes());
        for kind in [QueueKind::Qos0, QueueKind::Qos1] {
            let name = queue_name(&self.client_id, kind);
            let Some(q) = self.vhost.named_queue(name.as_bytes()) else {
                continue;
            };
            self.attach(kind, q.clone(), None)
                .map_err(|e| Fail::new(refused(&e), e.text))?;
            let Some(x) = &x else { continue };
            for b in x.bindings_to(&Destination::Queue(q.clone())) {
                let args = b.arguments.clone();
                let filter = match args.get(ARG_FILTER).and_then(|v| v.as_bytes()) {
                    Some(f) => Bytes::copy_from_slice(f),
                    None => {
                        // A binding made elsewhere (RabbitMQ-style, no arguments).
                        let mut t = Vec::new();
                        topic::from_amqp(b.routing_key.as_bytes(), &mut t);
                        t.into()
                    }
                };
                let byte = args
                    .get(ARG_OPTIONS)
                    .and_then(|v| v.as_i64())
                    .unwrap_or(if kind == QueueKind::Qos0 { 0 } else { 1 })
                    as u8;
                let options = crate::session_state::options_from_byte(byte);
                let id = args
                    .get(ARG_ID)
                    .and_then(|v| v.as_i64())
                    .and_then(|i| u32::try_from(i).ok());
                self.subs.insert(
                    filter.clone(),
                    Subscription {
                        sub: Sub {
                            filter,
                            options,
                            id,
                            kind,
                        },
                        queue: name.clone(),
                        key: b.routing_key.clone(),
                        args,
                    },
                );
            }
        }
        self.publish_table();
        self.activate();
        Ok(())
    }

    /// Join again the shared subscriptions a persistent session had.
    pub fn rejoin_shared(&mut self, shared: &[(Bytes, SubscriptionOptions, Option<u32>)]) {
        for (filter, options, id) in shared {
            // A refusal (permissions changed) just leaves it out.
            let _ = self.subscribe(filter, *options, *id);
        }
        self.publish_table();
        self.activate();
    }

    /// Start consumers added by the last packet (after its answer is queued).
    pub fn activate(&mut self) {
        for (c, q) in std::mem::take(&mut self.to_activate) {
            c.activate();
            q.deliver();
        }
    }

    fn publish_table(&self) {
        let subs: Vec<Sub> = self
            .subs
            .values()
            .filter(|s| s.sub.kind != QueueKind::Shared)
            .map(|s| s.sub.clone())
            .collect();
        *self.out.subs.write() = Arc::new(SubTable::new(subs));
    }

    /// Handle one packet.
    pub fn handle(&mut self, packet: Packet) -> Result<Flow, Fail> {
        match packet {
            Packet::Publish(p) => self.on_publish(p)?,
            Packet::Puback(a) => {
                if let Some(d) = self.out.puback(a.packet_id) {
                    self.out
                        .stats
                        .get()
                        .messages
                        .add_serialized(MessageField::Ack, 1);
                    self.acked.push(d);
                }
                self.need_wake = true;
            }
            Packet::Pubrec(a) => {
                let (known, d) = self.out.pubrec(a.packet_id);
                if let Some(d) = d {
                    self.out
                        .stats
                        .get()
                        .messages
                        .add_serialized(MessageField::Ack, 1);
                    self.acked.push(d);
                }
                if a.code.is_error() {
                    // The client refused the message: the exchange is over.
                    self.out.pubcomp(a.packet_id);
                    self.need_wake = true;
                } else if known {
                    // The message is settled in its queue; what is left of
                    // the exchange (PUBREL until PUBCOMP) survives a restart:
                    // the id is on disk before the PUBREL, and so is the
                    // queue's ack (settled now, not with the read batch), or
                    // a crash could bring the message back as a PUBLISH.
                    self.settle_acked();
                    let acked = self.vhost.store().log.last_ticket();
                    let kept = self.persist(Change::OutReceived(a.packet_id));
                    let pubrel = Packet::Pubrel(Ack::new(a.packet_id, ReasonCode::SUCCESS));
                    self.pending.push_back((acked, kept, 0, pubrel));
                } else {
                    let code = ReasonCode::PACKET_IDENTIFIER_NOT_FOUND;
                    self.send(Packet::Pubrel(Ack::new(a.packet_id, code)));
                }
            }
            Packet::Pubcomp(a) => {
                if self.out.pubcomp(a.packet_id) {
                    // Nothing waits for this record: a restart before it is
                    // on disk only resends a PUBREL the client answers again.
                    self.persist(Change::OutCompleted(a.packet_id));
                }
                self.need_wake = true;
            }
            Packet::Pubrel(a) => {
                let code = if self
                    .rare
                    .as_mut()
                    .is_some_and(|r| r.incoming_qos2.remove(&a.packet_id))
                {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::PACKET_IDENTIFIER_NOT_FOUND
                };
                // The id leaves the durable set before PUBCOMP: once the
                // client may reuse it, a restart must not take a new
                // PUBLISH with it for a resend.
                let kept = self.persist(Change::Released(a.packet_id));
                // After the PUBREC it answers, which may still wait for the disk.
                self.pending
                    .push_back((0, kept, 0, Packet::Pubcomp(Ack::new(a.packet_id, code))));
            }
            Packet::Subscribe(s) => self.on_subscribe(s)?,
            Packet::Unsubscribe(u) => self.on_unsubscribe(u)?,
            Packet::Pingreq => self.send(Packet::Pingresp),
            Packet::Disconnect(d) => {
                if let Some(s) = d.properties.session_expiry_interval {
                    self.set_expiry(s)?;
                }
                return Ok(Flow::Disconnect {
                    with_will: d.code == ReasonCode::DISCONNECT_WITH_WILL,
                });
            }
            Packet::Connect(_) => {
                return Err(Fail::new(ReasonCode::PROTOCOL_ERROR, "second CONNECT"));
            }
            Packet::Auth(_) => {
                return Err(Fail::new(
                    ReasonCode::PROTOCOL_ERROR,
                    "AUTH without an authentication method",
                ));
            }
            p @ (Packet::Connack(_)
            | Packet::Suback(_)
            | Packet::Unsuback(_)
            | Packet::Pingresp) => {
                return Err(Fail::new(
                    ReasonCode::PROTOCOL_ERROR,
                    format!("{} from a client", p.name()),
                ));
            }
        }
        Ok(Flow::Continue)
    }

    /// After a batch of packets: settle what the client acknowledged, one
    /// queue call for all of them, and let the queues fill the window again
    /// once (per PUBACK, a settle and two deliver passes each took the
    /// queue's lock and sent one message at a time).
    pub fn settle_acked(&mut self) {
        if !self.acked.is_empty() {
            delivery::settle_batch(std::mem::take(&mut self.acked));
        }
        if std::mem::take(&mut self.need_wake) {
            self.wake();
        }
    }

    /// An ack gave the window room: let the session's queues deliver again.
    fn wake(&self) {
        for (q, _) in self.queues.values().chain(self.shared()) {
            q.deliver();
        }
    }

    // ---- PUBLISH -------------------------------------------------------------

    fn on_publish(&mut self, mut p: Publish) -> Result<(), Fail> {
        // (Checked first: taking it through `DerefMut` would box an absent list.)
        let alias = p.properties.topic_alias;
        if let Some(alias) = alias {
            p.properties.topic_alias = None;
            if alias > self.node.config.topic_alias_maximum {
                return Err(Fail::new(
                    ReasonCode::TOPIC_ALIAS_INVALID,
                    "topic alias out of range",
                ));
            }
            if p.topic.is_empty() {
                match self.rare.as_ref().and_then(|r| r.aliases.get(&alias)) {
                    Some(t) => p.topic = t.clone(),
                    None => {
                        return Err(Fail::new(ReasonCode::PROTOCOL_ERROR, "unknown topic alias"))
                    }
                }
            } else {
                self.rare().aliases.insert(alias, p.topic.clone());
            }
        }
        let id = p.packet_id.unwrap_or(0);
        if p.qos != QoS::AtMostOnce
            && self.pending.len() + self.rare.as_ref().map_or(0, |r| r.incoming_qos2.len())
                >= usize::from(self.node.config.receive_maximum)
        {
            return Err(Fail::new(
                ReasonCode::RECEIVE_MAXIMUM_EXCEEDED,
                "too many unacknowledged QoS 1/2 publishes",
            ));
        }
        if p.qos == QoS::ExactlyOnce
            && self
                .rare
                .as_ref()
                .is_some_and(|r| r.incoming_qos2.contains(&id))
        {
            // A resent QoS 2 PUBLISH: already routed once, only answer again.
            self.pending
                .push_back((0, 0, 0, Packet::Pubrec(Ack::new(id, ReasonCode::SUCCESS))));
            return Ok(());
        }
        self.has_published = true;
        let confirms = (p.qos != QoS::AtMostOnce).then(|| {
            &self
                .confirms
                .get_or_insert_with(|| {
                    let wake = Arc::new(Notify::new());
                    (ConfirmTracker::new(wake.clone()), wake)
                })
                .0
        });
        let result = self.publisher.publish(
            &p.topic,
            p.qos,
            p.retain,
            &p.properties,
            p.payload,
            confirms,
        );
        let cluster = result.as_ref().map_or(0, |(r, _)| r.cluster);
        self.out
            .stats
            .get()
            .messages
            .add_serialized(MessageField::Publish, 1);
        let (ticket, retained, code) = match result {
            Ok((r, t)) if r.rejected => (r.ticket, t, ReasonCode::QUOTA_EXCEEDED),
            // A retained publish is kept even with no subscriber.
            Ok((r, t)) if !r.routed && t == 0 => (r.ticket, t, ReasonCode::NO_MATCHING_SUBSCRIBERS),
            Ok((r, t)) => (r.ticket, t, ReasonCode::SUCCESS),
            Err(e) => {
                // MQTT 3.1.1 cannot refuse a publish: RabbitMQ closes the connection.
                if !self.version.is_v5() || p.qos == QoS::AtMostOnce {
                    return Err(Fail::new(refused(&e), e.text));
                }
                (0, 0, refused(&e))
            }
        };
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.pending.push_back((
                ticket,
                retained,
                cluster,
                Packet::Puback(Ack::new(id, code)),
            )),
            QoS::ExactlyOnce => {
                let mut kept = retained;
                if !code.is_error() {
                    self.rare().incoming_qos2.insert(id);
                    // Exactly once across a restart: the id is on disk
                    // (with the message) before the PUBREC.
                    kept = kept.max(self.persist(Change::Received(id)));
                }
                self.pending
                    .push_back((ticket, kept, cluster, Packet::Pubrec(Ack::new(id, code))));
            }
        }
        Ok(())
    }

    /// Change a persistent session's durable state (QoS 2 ids awaiting
    /// PUBREL, shared subscriptions); returns the retained-store ticket it is
    /// on disk at (0: nothing to wait for).
    fn persist(&self, change: Change) -> u64 {
        if self.persistence == Persistence::Clean {
            return 0;
        }
        let vhost = self.vhost.name.to_string_lossy();
        self.node
            .retained
            .put_session(&vhost, &self.client_id, change)
    }

    /// Store the shared subscriptions if a packet touched one (`touched`).
    fn persist_shared(&self, touched: bool) -> u64 {
        if !touched {
            return 0;
        }
        self.persist(Change::Shared(self.shared_subs()))
    }

    /// Send `p` once the retained-store ticket `kept` is on disk (0: now).
    fn send_after(&mut self, kept: u64, p: Packet) {
        if kept == 0 {
            self.send(p);
        } else {
            self.pending.push_back((0, kept, 0, p));
        }
    }

    /// The shared subscriptions (full `$share/…` filter, options, identifier).
    fn shared_subs(&self) -> Vec<crate::session_state::SharedSub> {
        self.subs
            .iter()
            .filter(|(_, s)| s.sub.kind == QueueKind::Shared)
            .map(|(f, s)| (f.clone(), s.sub.options, s.sub.id))
            .collect()
    }

    /// MQTT 5 DISCONNECT with a Session Expiry Interval: the session now
    /// ends that long after this connection (0: at once). A session its
    /// CONNECT made to end at disconnect cannot be kept this way (section
    /// 3.14.2.2.2: protocol error, and the DISCONNECT is not a normal one).
    fn set_expiry(&mut self, seconds: u32) -> Result<(), Fail> {
        self.persistence = match (self.persistence, seconds) {
            (Persistence::Clean, 0) => Persistence::Clean,
            (Persistence::Clean, _) => {
                return Err(Fail::new(
                    ReasonCode::PROTOCOL_ERROR,
                    "session expiry set by DISCONNECT after a CONNECT with 0",
                ))
            }
            (Persistence::Kept { .. }, 0) => Persistence::Clean,
            (Persistence::Kept { .. }, s) => {
                let s = s.min(self.node.config.max_session_expiry);
                Persistence::Kept {
                    expiry_ms: (s != u32::MAX).then(|| u64::from(s) * 1000),
                }
            }
        };
        Ok(())
    }

    /// Send the acks whose messages are on disk now (`durable`: the message
    /// log's durable ticket; retained messages: the retained store's), in
    /// order. Returns whether some still wait.
    pub fn flush_acks(&mut self, durable: u64) -> bool {
        let retained = self.node.retained.durable_ticket();
        while let Some((ticket, kept, cluster, _)) = self.pending.front() {
            if *ticket > durable || *kept > retained {
                return true;
            }
            // A replicated queue's confirm (quorum queue committed it).
            // (No tracker: nothing was published to one, `cluster` is 0.)
            let taken = match &self.confirms {
                Some((c, _)) => c.take(*cluster),
                None => Some(true),
            };
            let Some(ok) = taken else {
                return true;
            };
            if let Some((_, _, _, mut p)) = self.pending.pop_front() {
                if !ok {
                    // Refused or lost: MQTT 5 says so in the ack's reason
                    // code (3.1.1 has no negative ack).
                    if let Packet::Puback(a) | Packet::Pubrec(a) = &mut p {
                        a.code = ReasonCode::IMPLEMENTATION_SPECIFIC_ERROR;
                    }
                }
                self.send(p);
            }
        }
        false
    }

    /// The highest (message-log, retained-store) tickets pending acks wait for.
    pub fn pending_tickets(&self) -> Option<(u64, u64)> {
        let log = self.pending.iter().map(|(t, _, _, _)| *t).max()?;
        let kept = self.pending.iter().map(|(_, k, _, _)| *k).max()?;
        Some((log, kept))
    }

    /// Settle what queues handed over but the client was not sent.
    pub fn settle_skipped(&self) {
        delivery::settle(self.out.take_to_settle());
    }

    // ---- SUBSCRIBE / UNSUBSCRIBE -----------------------------------------------

    /// Declare (or find) one of the session's queues and consume from it.
    fn ensure_queue(&mut self, kind: QueueKind) -> Result<Arc<Queue>, BrokerError> {
        if let Some((q, _)) = self.queues.get(&kind) {
            if !q.is_deleted() {
                return Ok(q.clone());
            }
        }
        let name = queue_name(&self.client_id, kind);
        let q = match self.vhost.named_queue(name.as_bytes()) {
            Some(q) => q,
            None => {
                self.publisher
                    .check(Access::Configure, Resource::Queue, name.as_bytes())?;
                self.vhost
                    .declare_queue(Some(name), self.queue_options(), false, self.conn)?
                    .0
            }
        };
        self.attach(kind, q.clone(), None)?;
        Ok(q)
    }

    /// The options of the session's own queues.
    pub(crate) fn queue_options(&self) -> QueueOptions {
        let mut arguments = FieldTable::new();
        let durable = match self.persistence {
            Persistence::Clean => false,
            Persistence::Kept { expiry_ms } => {
                // The session sweeper ends the session at its own
                // expiry; `x-expires` is the longest any session may
                // get (as RabbitMQ 3.10's subscription_ttl), so a
                // later CONNECT or DISCONNECT may lengthen it.
                let longest = self.node.config.session_queue_expires();
                if let (Some(_), Some(ms)) = (expiry_ms, longest) {
                    arguments.insert("x-expires", FieldValue::I64(ms.max(1) as i64));
                }
                true
            }
        };
        QueueOptions {
            durable,
            exclusive: false,
            auto_delete: false,
            arguments,
        }
    }

    fn attach(
        &mut self,
        kind: QueueKind,
        q: Arc<Queue>,
        shared: Option<Sub>,
    ) -> Result<Arc<Consumer>, BrokerError> {
        self.publisher
            .check(Access::Read, Resource::Queue, q.name.as_bytes())?;
        let sink = Arc::new(SessionSink {
            kind,
            shared,
            out: self.out.clone(),
        });
        let mut tag = b"mqtt-".to_vec();
        tag.extend_from_slice(&self.client_id);
        let consumer = Consumer::new(
            ShortStr(tag.into()),
            kind == QueueKind::Qos0,
            false,
            FieldTable::new(),
            ChannelRef {
                connection: self.conn,
                number: 1,
            },
            0,
            sink,
        );
        q.add_consumer(consumer.clone())?;
        if kind != QueueKind::Shared {
            self.queues.insert(kind, (q.clone(), consumer.clone()));
        }
        self.to_activate.push((consumer.clone(), q));
        Ok(consumer)
    }

    fn on_subscribe(&mut self, s: Subscribe) -> Result<(), Fail> {
        let id = s.properties.subscription_identifiers.first().copied();
        let mut codes = Vec::with_capacity(s.filters.len());
        let mut retained = Vec::new();
        let shared = s.filters.iter().any(|(f, _)| is_shared(f));
        for (filter, options) in &s.filters {
            check_filter(filter, self.version)?;
            if options.no_local && self.version.is_v5() && filter.starts_with(b"$share/") {
                // Section 3.8.3.1.
                return Err(Fail::new(
                    ReasonCode::PROTOCOL_ERROR,
                    "no-local on a shared subscription",
                ));
            }
        }
        for (filter, options) in s.filters {
            match self.subscribe(&filter, options, id) {
                Ok((qos, new)) => {
                    codes.push(ReasonCode(qos as u8));
                    if options.retain_handling == 0 || (options.retain_handling == 1 && new) {
                        retained.push((filter, options, qos));
                    }
                }
                Err(code) => codes.push(code),
            }
        }
        self.publish_table();
        // Shared subscriptions are durable session state (their queues are
        // the group's): a changed set is on disk before the SUBACK.
        let kept = self.persist_shared(shared);
        self.send_after(
            kept,
            Packet::Suback(Suback {
                packet_id: s.packet_id,
                properties: Props::NONE,
                codes,
            }),
        );
        self.activate();
        for (filter, options, qos) in retained {
            self.send_retained(&filter, options, qos, id);
        }
        Ok(())
    }

    /// One filter of a SUBSCRIBE: (granted QoS, whether it is new) or the
    /// failure reason.
    fn subscribe(
        &mut self,
        filter: &Bytes,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> Result<(QoS, bool), ReasonCode> {
        let v5 = self.version.is_v5();
        let shared = if v5 {
            topic::parse_shared(filter).map_err(|_| ReasonCode::TOPIC_FILTER_INVALID)?
        } else {
            None
        };
        let mqtt_filter: &[u8] = match shared {
            Some((_, f)) => f,
            None => {
                topic::validate_filter(filter).map_err(|_| ReasonCode::TOPIC_FILTER_INVALID)?;
                filter
            }
        };
        if shared.is_some() && options.no_local {
            // Section 3.8.3.1: a protocol error.
            return Err(ReasonCode::PROTOCOL_ERROR);
        }
        let key = ShortStr(topic::to_amqp(mqtt_filter));
        let kind = match (shared, options.qos) {
            (Some(_), _) => QueueKind::Shared,
            (None, QoS::AtMostOnce) => QueueKind::Qos0,
            _ => QueueKind::Qos1,
        };
        let sub = Sub {
            filter: Bytes::copy_from_slice(mqtt_filter),
            options,
            id,
            kind,
        };
        let args = binding_args(&sub);
        let existed = self.subs.contains_key(filter);
        // A repeated SUBSCRIBE replaces the subscription (section 3.8.4).
        if existed {
            self.unsubscribe(filter);
        }
        let err = |e: BrokerError| refused(&e);
        let queue = match shared {
            Some((group, f)) => {
                let name = shared_queue_name(group, f);
                let q = match self.vhost.named_queue(name.as_bytes()) {
                    Some(q) => q,
                    None => {
                        self.publisher
                            .check(Access::Configure, Resource::Queue, name.as_bytes())
                            .map_err(err)?;
                        // The group's queue outlives its connected members:
                        // it keeps the group's messages while no member is
                        // connected, as long as a persistent session is a
                        // member (`release_groups` deletes it after the last).
                        let opts = QueueOptions {
                            durable: self.persistence != Persistence::Clean,
                            exclusive: false,
                            auto_delete: false,
                            arguments: FieldTable::new(),
                        };
                        self.vhost
                            .declare_queue(Some(name), opts, false, self.conn)
                            .map_err(err)?
                            .0
                    }
                };
                let consumer = self
                    .attach(QueueKind::Shared, q.clone(), Some(sub.clone()))
                    .map_err(err)?;
                self.rare()
                    .shared
                    .insert(filter.clone(), (q.clone(), consumer));
                q
            }
            None => self.ensure_queue(kind).map_err(err)?,
        };
        let exchange = self.node.config.exchange.clone();
        self.publisher
            .check(Access::Write, Resource::Queue, queue.name.as_bytes())
            .and_then(|_| {
                self.publisher
                    .check(Access::Read, Resource::Exchange, exchange.as_bytes())
            })
            .and_then(|_| {
                // RabbitMQ checks the subscription's topic (read) too.
                let x = self.publisher.mqtt_exchange()?;
                self.publisher.check_topic(Access::Read, &x, key.as_bytes())
            })
            .and_then(|_| {
                self.vhost.bind_queue(
                    &queue.name,
                    &ShortStr::from(exchange.as_str()),
                    key.clone(),
                    args.clone(),
                    self.conn,
                )
            })
            .map_err(err)?;
        self.subs.insert(
            filter.clone(),
            Subscription {
                sub,
                queue: queue.name.clone(),
                key,
                args,
            },
        );
        Ok((options.qos, !existed))
    }

    /// Remove a subscription; returns whether it existed.
    fn unsubscribe(&mut self, filter: &Bytes) -> bool {
        let Some(s) = self.subs.remove(filter) else {
            return false;
        };
        if let Some((q, c)) = self.rare.as_mut().and_then(|r| r.shared.remove(filter)) {
            // The binding is the group's (other members share it): it goes
            // with the group's queue.
            q.remove_consumer(&c);
        } else if s.sub.kind != QueueKind::Shared {
            let exchange = ShortStr::from(self.node.config.exchange.as_str());
            let _ = self
                .vhost
                .unbind_queue(&s.queue, &exchange, &s.key, &s.args, self.conn);
        }
        true
    }

    fn on_unsubscribe(&mut self, u: Unsubscribe) -> Result<(), Fail> {
        let shared = u.filters.iter().any(|f| is_shared(f));
        let codes = u
            .filters
            .iter()
            .map(|f| {
                if self.unsubscribe(f) {
                    ReasonCode::SUCCESS
                } else {
                    ReasonCode::NO_SUBSCRIPTION_EXISTED
                }
            })
            .collect();
        self.publish_table();
        let kept = self.persist_shared(shared);
        if shared {
            let gone: Vec<Bytes> = u.filters.iter().filter(|f| is_shared(f)).cloned().collect();
            release_groups(&self.node, &self.vhost, &gone);
        }
        self.send_after(
            kept,
            Packet::Unsuback(Unsuback {
                packet_id: u.packet_id,
                properties: Props::NONE,
                codes,
            }),
        );
        Ok(())
    }

    /// Retained messages matching a new subscription, after its SUBACK.
    fn send_retained(
        &self,
        filter: &[u8],
        options: SubscriptionOptions,
        granted: QoS,
        id: Option<u32>,
    ) {
        let filter = match topic::parse_shared(filter) {
            // Shared subscriptions get no retained messages (section 4.8.2).
            Ok(Some(_)) => return,
            _ => filter,
        };
        let vhost = self.vhost.name.to_string_lossy();
        let now = warren_core::queue::now_ms();
        for m in self.node.retained.matching(&vhost, filter) {
            let mut qos = granted.min(m.qos);
            let packet_id = if qos == QoS::AtMostOnce {
                None
            } else {
                let id = self.out.reserve();
                if id.is_none() {
                    qos = QoS::AtMostOnce;
                }
                id
            };
            let mut properties = if self.version.is_v5() {
                m.properties.clone()
            } else {
                Properties::default()
            };
            if let Some(s) = properties.message_expiry_interval {
                let left = (m.stored_at + u64::from(s) * 1000).saturating_sub(now) / 1000;
                properties.message_expiry_interval = Some(left as u32);
            }
            if self.version.is_v5() {
                properties.subscription_identifiers = id.into_iter().collect();
            }
            let _ = options;
            self.send(Packet::Publish(Publish {
                dup: false,
                qos,
                retain: true,
                topic: m.topic.clone(),
                packet_id,
                properties: properties.into(),
                payload: m.payload.clone(),
            }));
        }
    }

    // ---- closing ---------------------------------------------------------------

    /// The connection is going: stop consuming, requeue what the client did
    /// not acknowledge, delete a clean session's queues. Returns what a
    /// persistent session keeps in memory.
    pub fn close(&mut self) -> Option<Saved> {
        if !self.acked.is_empty() {
            delivery::settle_batch(std::mem::take(&mut self.acked));
        }
        let (unacked, released) = self.out.close();
        for (q, c) in self.queues.values().chain(self.shared()) {
            q.remove_consumer(c);
        }
        delivery::requeue(unacked);
        if let Some(r) = &mut self.rare {
            r.shared.clear();
        }
        match self.persistence {
            Persistence::Clean => {
                // (A session that was persistent until its DISCONNECT has
                // cluster-wide queues: they go from every node.)
                for (q, _) in self.queues.values() {
                    self.vhost.retire_queue(q);
                }
                let groups: Vec<Bytes> = self.shared_subs().into_iter().map(|s| s.0).collect();
                release_groups(&self.node, &self.vhost, &groups);
                None
            }
            Persistence::Kept { .. } => Some(Saved {
                incoming_qos2: self
                    .rare
                    .as_mut()
                    .map(|r| std::mem::take(&mut r.incoming_qos2))
                    .unwrap_or_default(),
                released,
                shared: self.shared_subs(),
            }),
        }
    }
}
