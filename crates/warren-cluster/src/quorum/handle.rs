//! The core's view of a quorum queue on this node: a
//! `warren_core::queue::QueueBackend` over the queue's Raft group.
//!
//! Publishing hands the message to the queue's enqueuer (see `enqueue.rs`),
//! which completes the publisher's confirm once the group committed it.
//! Depth comes from this node's member state machine; a node without a
//! member answers from the group's status as last asked for (`members.rs`'
//! status RPC) and asks again in the background when that is over a second
//! old: a listing or declare-ok never waits on the network on its thread.
//! declare-ok's count can be made fresh first through
//! `QueueBackend::refresh_depth` (the AMQP connection awaits it, briefly).
//! Consumers, acks, basic.get and purge go through this node's hub
//! (`hub.rs`).

use super::enqueue::{self, Pending};
use super::hub::Hub;
use super::members::GroupStatus;
use crate::node::Cluster;
use crate::NodeId;
use bytes::{BufMut, Bytes, BytesMut};
use serde_json::{json, Map, Value};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use warren_core::confirm::Confirm;
use warren_core::meta::QuorumSpec;
use warren_core::queue::{ConsumerInfo, QueueArgs, QueueBackend, QueueDepth, RefreshFuture};
use warren_core::{Consumer, Message, Queue, QueuedMessage};
use warren_quorum::{Command, Reply};

/// How long a node without a member reuses the group status it asked for.
const REMOTE_FRESH: Duration = Duration::from_secs(1);
/// How long it waits before asking again after nobody answered.
const REMOTE_RETRY: Duration = Duration::from_secs(2);

pub struct QuorumQueue {
    pub group: u64,
    /// Current members (changed by grow/shrink, see `members.rs`).
    members: parking_lot::RwLock<Vec<String>>,
    /// A node without a member: the group's status as last asked for.
    remote: Arc<Remote>,
    cluster: Weak<Cluster>,
    tx: mpsc::UnboundedSender<Pending>,
    pub(crate) hub: Arc<Hub>,
    /// Bytes the enqueuer holds (see [`enqueue::MAX_BACKLOG`]).
    backlog: Arc<enqueue::Backlog>,
}

impl QuorumQueue {
    pub(crate) fn new(c: &Arc<Cluster>, spec: &QuorumSpec) -> Arc<Self> {
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
            remote: Arc::default(),
            cluster: Arc::downgrade(c),
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

    /// The group's status for a node without a member of its own: the
    /// last answer, at once. When it is older than [`REMOTE_FRESH`] (after
    /// nobody answered: [`REMOTE_RETRY`], so a listing does not ask dead
    /// members each time) the members are asked again in the background.
    fn remote_status(&self, c: &Arc<Cluster>) -> Option<GroupStatus> {
        let (status, stale) = {
            let st = self.remote.state.lock();
            match st.last {
                Some((at, s)) => {
                    let fresh = if s.is_some() {
                        REMOTE_FRESH
                    } else {
                        REMOTE_RETRY
                    };
                    (s, at.elapsed() >= fresh)
                }
                None => (None, true),
            }
        };
        if stale {
            self.remote.ask(c, self.group, self.members());
        }
        status
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

    fn publish(&self, queue: &Arc<Queue>, message: Arc<Message>, confirm: Option<Confirm>) -> bool {
        let m = warren_quorum::Message {
            header: encode_header(&message),
            body: message.body.clone(),
            // TTL: fixed here (this node's view of the queue's policy), so
            // the state machine needs no clock of its own to enqueue.
            expires_at: queue.expiry_of(&message, warren_core::queue::now_ms()),
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
        // `x-priority` goes to the state machine (Attach). The exclusive flag
        // is taken and not enforced: RabbitMQ 3.10's quorum queues do the
        // same (other consumers may still attach, checked on this machine).
        self.hub.add_consumer(queue, consumer, true);
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

    fn refresh_depth(&self, _queue: &Queue) -> Option<RefreshFuture> {
        let c = self.cluster.upgrade()?;
        if c.quorum.member(self.group).is_some() {
            return None; // the local state machine is current
        }
        let (remote, group, members) = (self.remote.clone(), self.group, self.members());
        Some(Box::pin(async move {
            // An answer to an ask started before now: one under way may
            // predate a publish the caller just had confirmed.
            let want = Instant::now();
            for _ in 0..2 {
                let Some(mut done) = remote.ask(&c, group, members.clone()) else {
                    return;
                };
                if done.changed().await.is_err() {
                    return;
                }
                if remote.state.lock().last.is_some_and(|(at, _)| at >= want) {
                    return;
                }
            }
        }))
    }

    fn deleted(&self, _queue: &Queue) {
        self.hub.deleted();
    }

    fn consumers_info(&self, queue: &Queue) -> Option<Vec<ConsumerInfo>> {
        // With single-active-consumer, this node's member (if it is one)
        // knows which consumer is active.
        let single_active = queue.args().single_active_consumer;
        let active = match (single_active, self.cluster.upgrade()) {
            (true, Some(c)) => c
                .quorum
                .member(self.group)
                .map(|m| m.sm.with_state(|s| s.active_consumer())),
            _ => None,
        };
        Some(self.hub.consumers_info(queue, single_active, active))
    }

    fn set_args(&self, _queue: &Queue, args: &QueueArgs) {
        // A policy changed (delivery-limit, max-length, overflow): the
        // group's leader, if here, proposes the new config. Every node gets
        // this call; a leader elected later syncs on taking over.
        if let Some(c) = self.cluster.upgrade() {
            c.sync_quorum_config(self.group, super::config_from(args));
        }
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

/// The group status a node without a member last got, and the ask under way.
#[derive(Default)]
struct Remote {
    state: parking_lot::Mutex<RemoteState>,
    /// Bumped after each ask ends.
    done: tokio::sync::watch::Sender<u64>,
}

#[derive(Default)]
struct RemoteState {
    /// When the last finished ask started, and its answer (None: nobody
    /// answered).
    last: Option<(Instant, Option<GroupStatus>)>,
    asking: bool,
}

impl Remote {
    /// Ask the group's members in the background unless an ask is under
    /// way; the receiver changes when it ends. None without a runtime.
    fn ask(
        self: &Arc<Self>,
        c: &Arc<Cluster>,
        group: u64,
        members: Vec<String>,
    ) -> Option<tokio::sync::watch::Receiver<u64>> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        let done = self.done.subscribe();
        {
            let mut st = self.state.lock();
            if st.asking {
                return Some(done);
            }
            st.asking = true;
        }
        let (me, c) = (self.clone(), c.clone());
        handle.spawn(async move {
            let started = Instant::now();
            let s = c.remote_status(group, &members).await;
            {
                let mut st = me.state.lock();
                st.last = Some((started, s));
                st.asking = false;
            }
            me.done.send_modify(|n| *n += 1);
        });
        Some(done)
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
