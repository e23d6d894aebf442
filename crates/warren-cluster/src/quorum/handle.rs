//! The core's view of a quorum queue on this node: a
//! `warren_core::queue::QueueBackend` over the queue's Raft group.
//!
//! Publishing hands the message to the queue's enqueuer (see `enqueue.rs`),
//! which completes the publisher's confirm once the group committed it.
//! Depth comes from this node's member state machine; a node without a
//! member asks the group (`members.rs`' status RPC, kept for a second).
//! Consumers, acks, basic.get and purge go through this node's hub
//! (`hub.rs`).

use super::enqueue::{self, Pending};
use super::hub::Hub;
use crate::node::Cluster;
use crate::NodeId;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use warren_core::confirm::Confirm;
use warren_core::error::code;
use warren_core::meta::QuorumSpec;
use warren_core::queue::{QueueBackend, QueueDepth};
use warren_core::{BrokerError, Consumer, Message, Queue, QueuedMessage};
use warren_quorum::{Command, Reply};

/// How long a node without a member reuses the group status it asked for.
const REMOTE_FRESH: Duration = Duration::from_secs(1);
/// How long it waits before asking again after nobody answered.
const REMOTE_RETRY: Duration = Duration::from_secs(5);

pub struct QuorumQueue {
    pub group: u64,
    /// Current members (changed by grow/shrink, see `members.rs`).
    members: parking_lot::RwLock<Vec<String>>,
    /// A node without a member: the group's status as last asked for
    /// (`members.rs`), and when.
    remote: parking_lot::Mutex<Option<(Instant, Option<super::members::GroupStatus>)>>,
    cluster: Weak<Cluster>,
    vhost: String,
    name: String,
    tx: mpsc::UnboundedSender<Pending>,
    pub(crate) hub: Arc<Hub>,
    /// Bytes the enqueuer holds (see [`enqueue::MAX_BACKLOG`]).
    backlog: Arc<enqueue::Backlog>,
}

impl QuorumQueue {
    pub(crate) fn new(c: &Arc<Cluster>, vhost: &str, name: &str, spec: &QuorumSpec) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let member_ids: Vec<NodeId> = spec
            .members
            .iter()
            .map(|m| crate::config::node_id(m))
            .collect();
        let hub = Hub::new(c, spec.group, member_ids.clone());
        let backlog = Arc::new(enqueue::Backlog::default());
        tokio::spawn(enqueue::run(
            Arc::downgrade(c),
            spec.group,
            member_ids,
            rx,
            backlog.clone(),
        ));
        Arc::new(QuorumQueue {
            hub,
            group: spec.group,
            members: parking_lot::RwLock::new(spec.members.clone()),
            remote: parking_lot::Mutex::new(None),
            cluster: Arc::downgrade(c),
            vhost: vhost.to_string(),
            name: name.to_string(),
            tx,
            backlog,
        })
    }

    pub fn members(&self) -> Vec<String> {
        self.members.read().clone()
    }

    pub(crate) fn set_members(&self, members: &[String]) {
        let mut m = self.members.write();
        if *m != members {
            *m = members.to_vec();
        }
    }

    /// The group's status asked from its members, for a node without a
    /// member of its own; kept for [`REMOTE_FRESH`] (a failed ask for
    /// longer, so a listing does not wait on dead members each time).
    /// Only on a multi-threaded runtime (the worker hands its other tasks
    /// over while it waits), else None.
    fn remote_status(&self, c: &Arc<Cluster>) -> Option<super::members::GroupStatus> {
        if let Some((at, s)) = *self.remote.lock() {
            let fresh = if s.is_some() {
                REMOTE_FRESH
            } else {
                REMOTE_RETRY
            };
            if at.elapsed() < fresh {
                return s;
            }
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return None;
        }
        let members = self.members();
        let s =
            tokio::task::block_in_place(|| handle.block_on(c.remote_status(self.group, &members)));
        *self.remote.lock() = Some((Instant::now(), s));
        s
    }

    /// The enqueuer holds more than [`enqueue::MAX_BACKLOG`]: the
    /// publishing connection's task waits (its worker hands its other tasks
    /// over) until half of it is gone, as the message log's
    /// `wait_for_room` pauses a connection. No deadline: while the group has
    /// no majority, its batches fail after `WRITE_TIMEOUT` one at a time and
    /// the publisher goes on at that pace, its memory bounded.
    fn wait_for_room(&self) {
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return;
        }
        let backlog = &self.backlog;
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                while backlog.bytes.load(Ordering::Relaxed) > enqueue::MAX_BACKLOG / 2
                    && !self.tx.is_closed()
                {
                    let _ =
                        tokio::time::timeout(Duration::from_millis(100), backlog.room.notified())
                            .await;
                }
            })
        });
    }

    fn not_yet(&self, what: &str) -> BrokerError {
        BrokerError::new(
            code::NOT_IMPLEMENTED,
            format!(
                "{what} on quorum queue '{}' in vhost '{}' is not supported yet",
                self.name, self.vhost
            ),
        )
    }
}

/// A quorum message's header: exchange and routing key (a length byte and
/// the bytes each), then the raw content-header properties.
pub fn encode_header(m: &Message) -> Bytes {
    let (x, k) = (m.exchange.as_bytes(), m.routing_key.as_bytes());
    let mut b = BytesMut::with_capacity(2 + x.len() + k.len() + m.properties.len());
    b.put_u8(x.len() as u8);
    b.put_slice(x);
    b.put_u8(k.len() as u8);
    b.put_slice(k);
    b.put_slice(&m.properties);
    b.freeze()
}

/// The inverse of [`encode_header`]: (exchange, routing key, properties).
pub fn decode_header(h: &Bytes) -> Option<(Bytes, Bytes, Bytes)> {
    let xl = *h.first()? as usize;
    let x = h.get(1..1 + xl)?;
    let kl = *h.get(1 + xl)? as usize;
    let k = h.get(2 + xl..2 + xl + kl)?;
    let start = 2 + xl + kl;
    Some((
        h.slice_ref(x),
        h.slice_ref(k),
        h.slice(start.min(h.len())..),
    ))
}

impl QueueBackend for QuorumQueue {
    fn kind(&self) -> &'static str {
        "quorum"
    }

    fn publish(
        &self,
        _queue: &Arc<Queue>,
        message: Arc<Message>,
        confirm: Option<Confirm>,
    ) -> bool {
        let m = warren_quorum::Message {
            header: encode_header(&message),
            body: message.body.clone(),
        };
        let bytes = m.size() as usize;
        self.backlog.bytes.fetch_add(bytes, Ordering::Relaxed);
        // A closed enqueuer (node shutting down) drops the confirm: a nack.
        if self
            .tx
            .send(Pending {
                message: m,
                confirm,
            })
            .is_err()
        {
            self.backlog.bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
        if self.backlog.bytes.load(Ordering::Relaxed) > enqueue::MAX_BACKLOG {
            self.wait_for_room();
        }
        true
    }

    fn add_consumer(&self, queue: &Arc<Queue>, consumer: Arc<Consumer>) -> warren_core::Result<()> {
        // What the replicated queue state does not model is refused rather
        // than half-honoured.
        if consumer.exclusive {
            return Err(self.not_yet("exclusive consumers"));
        }
        if consumer.arguments.get("x-priority").is_some() {
            return Err(self.not_yet("consumer priorities"));
        }
        self.hub.add_consumer(queue, consumer);
        Ok(())
    }

    fn remove_consumer(&self, _queue: &Arc<Queue>, consumer: &Arc<Consumer>) {
        self.hub.remove_consumer(consumer);
    }

    fn deliver(&self, queue: &Arc<Queue>) {
        self.hub.deliver(queue);
    }

    fn get(&self, _queue: &Arc<Queue>, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        self.hub.get(no_ack)
    }

    fn settle(&self, _queue: &Queue, msgs: &[QueuedMessage]) {
        self.hub
            .settle_op(msgs, |consumer, ids| Command::Settle { consumer, ids });
    }

    fn reject(&self, _queue: &Arc<Queue>, msgs: Vec<QueuedMessage>) {
        self.hub
            .settle_op(&msgs, |consumer, ids| Command::Discard { consumer, ids });
    }

    fn requeue(&self, _queue: &Arc<Queue>, msgs: Vec<QueuedMessage>) {
        self.hub
            .settle_op(&msgs, |consumer, ids| Command::Return { consumer, ids });
    }

    fn purge(&self, _queue: &Queue) -> u32 {
        match self.hub.ask(Command::Purge) {
            Some(Reply::Purged { count }) => count.min(u32::MAX as u64) as u32,
            _ => 0,
        }
    }

    fn depth(&self, queue: &Queue) -> QueueDepth {
        let Some(c) = self.cluster.upgrade() else {
            return QueueDepth::default();
        };
        match c.quorum.member(self.group) {
            Some(m) => m.sm.with_state(|s| QueueDepth {
                messages_ready: s.ready_count(),
                messages_unacknowledged: s.unacked_count(),
                message_bytes_ready: s.ready_bytes(),
                message_bytes_unacknowledged: 0,
                consumers: s.consumer_count() as u32,
            }),
            // Parked here: as it was when it parked (nothing changed since).
            None if c.parked_status(self.group).is_some() => c
                .parked_status(self.group)
                .map(|s| s.depth())
                .unwrap_or_default(),
            // Not a member: the group's depth as its leader tells it, with
            // the consumers attached here.
            None => {
                let mut d = self
                    .remote_status(&c)
                    .map(|s| s.depth())
                    .unwrap_or_default();
                d.consumers = d.consumers.max(self.hub.consumers_of(queue));
                d
            }
        }
    }

    fn deleted(&self, _queue: &Queue) {
        self.hub.deleted();
    }

    fn info(&self, _queue: &Queue) -> Map<String, Value> {
        let mut j = Map::new();
        let members = self.members();
        j.insert("members".into(), json!(members));
        let Some(c) = self.cluster.upgrade() else {
            return j;
        };
        let leader = match c.quorum.member(self.group) {
            Some(m) => m.raft.metrics().borrow().current_leader,
            None => match c.parked_status(self.group) {
                // Parked: its leader when it parked.
                Some(s) => s.leader,
                // No member here: the leader the members named.
                None => self.remote_status(&c).and_then(|s| s.leader),
            },
        };
        j.insert("leader".into(), json!(leader.map(|l| c.name_of(l))));
        // Warren's own: whether this node's member is parked (idle, its
        // Raft member stopped: see park.rs). Not in RabbitMQ's API.
        if c.quorum.has_member(self.group) {
            j.insert(
                "parked".into(),
                json!(c.parked_status(self.group).is_some()),
            );
        }
        j.insert("node".into(), json!(leader.map(|l| c.name_of(l))));
        let online: Vec<&String> = members
            .iter()
            .filter(|m| c.is_online(crate::config::node_id(m), Duration::from_secs(3)))
            .collect();
        j.insert("online".into(), json!(online));
        j
    }
}

impl Cluster {
    /// Whether node `id` answered a liveness probe within `within` (this
    /// node always counts).
    pub fn is_online(&self, id: NodeId, within: Duration) -> bool {
        id == self.id
            || self
                .seen
                .read()
                .get(&id)
                .is_some_and(|t| t.elapsed() <= within)
    }

    pub(crate) fn mark_seen(&self, id: NodeId) {
        self.seen.write().insert(id, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_core::ShortStr;

    #[test]
    fn header_round_trips() {
        let m = Message::new(
            ShortStr::from("amq.topic"),
            ShortStr::from("a.b"),
            Bytes::from_static(b"\x80\x00props"),
            Bytes::from_static(b"body"),
        );
        let h = encode_header(&m);
        let (x, k, p) = decode_header(&h).expect("decodes");
        assert_eq!(
            (&x[..], &k[..], &p[..]),
            (&b"amq.topic"[..], &b"a.b"[..], &b"\x80\x00props"[..])
        );
        assert!(decode_header(&Bytes::from_static(b"\x05ab")).is_none());
    }
}
