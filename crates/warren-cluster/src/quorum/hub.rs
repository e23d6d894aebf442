//! A quorum queue's consumers on this node (the "hub"), whatever node leads
//! the group.
//!
//! * Consumers attach through the group (`Command::Attach`); the leader's
//!   state machine picks deliveries and the leader sends them here (locally or
//!   by `consume.rs`'s RPC). Each is offered to the adapter's
//!   `ConsumerSink` as a `QueuedMessage` whose `seq` says which consumer and
//!   delivery it is ([`seq_of`]): the channel's ack/reject/requeue come back
//!   as `Settle`/`Discard`/`Return` with no per-message map.
//! * Every consumer operation of the node goes through one ordered pipeline
//!   per queue ([`run_ops`]): what queued up while one entry commits becomes
//!   the next `Command::Batch`, one entry for many acks.
//! * A new leader re-sends every consumer's unacked deliveries (it cannot
//!   tell which the old leader sent): the hub drops every copy of a delivery
//!   it got before (ids come in order per consumer: `Local::max_seen`).
//! * The hub's first command after a start is `NodeDown` for this node, so
//!   consumers of a previous life (killed node) give their messages back.
//!
//! Lock order: [`Hub::state`], then a consumer's sink (as a queue offers
//! under its lock). Raft is never called under it: commands go to the
//! pipeline's channel.

use super::enqueue::write;
use super::handle::decode_header;
use crate::node::Cluster;
use crate::NodeId;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::debug;
use warren_core::message::{QueuedMessage, NEVER};
use warren_core::queue::{Consumer, ConsumerInfo, Queue};
use warren_core::table::FieldValue;
use warren_core::{Message, ShortStr};
use warren_quorum::{Command, ConsumerId, Reply};

/// Unacked deliveries the group hands a consumer with no prefetch limit
/// (or no-ack) at a time: the leader never pushes a whole backlog at once.
pub const WINDOW: u32 = 1000;
/// Most commands in one `Batch` entry.
const MAX_OPS: usize = 1024;
/// Delivery ids live in the low bits of a `QueuedMessage.seq`, the hub's
/// slot for the consumer above them.
const ID_BITS: u32 = 40;

/// One delivery the leader sends to a consumer's node.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct Delivery {
    pub consumer: ConsumerId,
    pub delivery_id: u64,
    pub redelivered: bool,
    /// Times the message came back to the queue (see [`with_delivery_count`]).
    pub delivery_count: u32,
    pub message: warren_quorum::Message,
}

struct Local {
    slot: u32,
    queue: Arc<Queue>,
    consumer: Arc<Consumer>,
    /// basic.cancel'd: takes no new deliveries; kept while the channel
    /// still holds some of its unacked ones.
    cancelled: bool,
    attached_at: Instant,
    /// The prefetch at basic.consume: a quorum queue consumer keeps it (a
    /// later basic.qos applies to later consumers only, as RabbitMQ's
    /// quorum queues), though the channel changes its consumers' limit.
    prefetch: u32,
    /// Offered when the consumer has room again (not active yet, prefetch,
    /// channel flow).
    pending: VecDeque<QueuedMessage>,
    /// Delivery ids received and not settled/returned here.
    held: HashSet<u64>,
    /// The highest delivery id received. The group numbers a consumer's
    /// deliveries in order and a leader sends them in order, so one at or
    /// below it is a copy: a new leader's re-send, or the same entry's
    /// effect carried out by both the old leader and a new one that applied
    /// it after taking over. Dropping those keeps a message from reaching
    /// the same consumer twice without the redelivered flag.
    max_seen: u64,
}

#[derive(Default)]
struct State {
    /// slot → consumer id (kept after a cancel: late acks still map).
    slots: HashMap<u32, ConsumerId>,
    locals: HashMap<ConsumerId, Local>,
}

pub(crate) struct Op {
    pub cmd: Command,
    pub reply: Option<oneshot::Sender<Option<Reply>>>,
}

pub struct Hub {
    me: NodeId,
    /// The basic.get "consumer" of this node (slot 0).
    get_consumer: ConsumerId,
    next_slot: AtomicU32,
    state: Mutex<State>,
    ops: mpsc::UnboundedSender<Op>,
}

pub fn seq_of(slot: u32, delivery_id: u64) -> u64 {
    ((slot as u64) << ID_BITS) | (delivery_id & ((1 << ID_BITS) - 1))
}

fn split(seq: u64) -> (u32, u64) {
    ((seq >> ID_BITS) as u32, seq & ((1 << ID_BITS) - 1))
}

fn new_consumer_id() -> ConsumerId {
    loop {
        let id = warren_core::random::random_u64();
        if id != 0 {
            return id;
        }
    }
}

/// The core message a quorum message stands for.
pub fn to_core(m: &warren_quorum::Message) -> Arc<Message> {
    let (x, k, p) = decode_header(&m.header).unwrap_or_default();
    Message::new(ShortStr::from(x), ShortStr::from(k), p, m.body.clone())
}

/// RabbitMQ 3.10's quorum queues tell a consumer how often a message came
/// back (returned, or its consumer went away): an `x-delivery-count` header
/// (signed 32-bit) on every delivery after the first return, what poison
/// message handling in clients reads. Only redeliveries pay the re-encode.
fn with_delivery_count(m: Arc<Message>, count: u32) -> Arc<Message> {
    if count == 0 {
        return m;
    }
    let mut props = m.decode_properties();
    let mut headers = props.headers.take().unwrap_or_default();
    headers.insert(
        "x-delivery-count",
        FieldValue::I32(count.min(i32::MAX as u32) as i32),
    );
    props.headers = Some(headers);
    Message::new(
        m.exchange.clone(),
        m.routing_key.clone(),
        props.encode(),
        m.body.clone(),
    )
}

impl Hub {
    pub(crate) fn new(cluster: &Arc<Cluster>, group: u64, members: Vec<NodeId>) -> Arc<Hub> {
        let (tx, rx) = mpsc::unbounded_channel();
        let hub = Arc::new(Hub {
            me: cluster.id,
            get_consumer: new_consumer_id(),
            next_slot: AtomicU32::new(1),
            state: Mutex::new(State::default()),
            ops: tx,
        });
        hub.state.lock().slots.insert(0, hub.get_consumer);
        // Consumers this node had before it (re)started are gone.
        hub.send(Command::NodeDown { node: cluster.id });
        tokio::spawn(run_ops(
            Arc::downgrade(cluster),
            Arc::downgrade(&hub),
            group,
            members,
            rx,
        ));
        hub
    }

    fn send(&self, cmd: Command) {
        let _ = self.ops.send(Op { cmd, reply: None });
    }

    /// Send `cmd` through the pipeline and wait for its reply (the
    /// channel's frame handler is synchronous: its worker thread blocks,
    /// other tasks move to other workers). None: no answer in time.
    pub(crate) fn ask(&self, cmd: Command) -> Option<Reply> {
        let handle = tokio::runtime::Handle::try_current().ok()?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        self.ops
            .send(Op {
                cmd,
                reply: Some(tx),
            })
            .ok()?;
        tokio::task::block_in_place(|| {
            handle.block_on(async {
                tokio::time::timeout(super::enqueue::WRITE_TIMEOUT + Duration::from_secs(1), rx)
                    .await
            })
        })
        .ok()?
        .ok()
        .flatten()
    }

    /// `wait`: until the group committed the attach (basic.consume).
    pub(crate) fn add_consumer(&self, queue: &Arc<Queue>, consumer: Arc<Consumer>, wait: bool) {
        let slot = self.next_slot.fetch_add(1, Ordering::Relaxed);
        let id = new_consumer_id();
        let fixed = consumer.prefetch();
        let priority = consumer.priority;
        let prefetch = match fixed {
            0 => WINDOW,
            _ if consumer.no_ack => WINDOW,
            n => n.min(WINDOW),
        };
        {
            let mut st = self.state.lock();
            st.slots.insert(slot, id);
            st.locals.insert(
                id,
                Local {
                    slot,
                    queue: queue.clone(),
                    consumer,
                    cancelled: false,
                    attached_at: Instant::now(),
                    prefetch: fixed,
                    pending: VecDeque::new(),
                    held: HashSet::new(),
                    max_seen: 0,
                },
            );
        }
        let attach = Command::Attach {
            consumer: id,
            node: self.me,
            prefetch,
            priority,
        };
        // basic.consume answers once the group has the consumer, as
        // RabbitMQ's checkout: what the client publishes after consume-ok
        // sees it (its priority, its place in single-active-consumer
        // order). The pipeline's own re-attach cannot wait on itself.
        let can_wait = wait
            && tokio::runtime::Handle::try_current()
                .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if can_wait {
            let _ = self.ask(attach);
        } else {
            self.send(attach);
        }
    }

    pub(crate) fn remove_consumer(&self, consumer: &Arc<Consumer>) {
        let (id, pending) = {
            let mut st = self.state.lock();
            let Some((&id, l)) = st
                .locals
                .iter_mut()
                .find(|(_, l)| !l.cancelled && Arc::ptr_eq(&l.consumer, consumer))
            else {
                return;
            };
            l.cancelled = true;
            let pending: Vec<u64> = l.pending.drain(..).map(|m| split(m.seq).1).collect();
            for p in &pending {
                l.held.remove(p);
            }
            if l.held.is_empty() {
                // Nothing left to ack: forget the consumer and its slot.
                let slot = l.slot;
                st.locals.remove(&id);
                st.slots.remove(&slot);
            }
            (id, pending)
        };
        self.send(Command::Cancel { consumer: id });
        if !pending.is_empty() {
            self.send(Command::Return {
                consumer: id,
                ids: pending,
            });
        }
    }

    /// Credit came back: offer what waits.
    pub(crate) fn deliver(&self, queue: &Arc<Queue>) {
        let mut acked = Vec::new();
        {
            let mut st = self.state.lock();
            for (id, l) in st.locals.iter_mut() {
                if l.cancelled || !Arc::ptr_eq(&l.queue, queue) || !l.consumer.is_active() {
                    continue;
                }
                if l.consumer.prefetch() != l.prefetch {
                    // basic.qos changed it (see `Local::prefetch`).
                    l.consumer.set_prefetch(l.prefetch);
                }
                while let Some(m) = l.pending.front() {
                    if !l.consumer.sink.offer(&l.consumer, &l.queue, m) {
                        break;
                    }
                    if l.consumer.no_ack {
                        let d = split(m.seq).1;
                        l.held.remove(&d);
                        acked.push((*id, d));
                    }
                    l.pending.pop_front();
                }
            }
        }
        self.settle_ids(acked);
    }

    fn settle_ids(&self, acked: Vec<(ConsumerId, u64)>) {
        for (c, ids) in group_by_consumer(acked) {
            self.send(Command::Settle { consumer: c, ids });
        }
    }

    /// The channel's acks (`Settle`), rejects (`Discard`), requeues
    /// (`Return`): by the consumers the deliveries' seqs name.
    pub(crate) fn settle_op(
        &self,
        msgs: &[QueuedMessage],
        make: fn(ConsumerId, Vec<u64>) -> Command,
    ) {
        let mut by: Vec<(ConsumerId, u64)> = Vec::with_capacity(msgs.len());
        {
            let mut st = self.state.lock();
            for m in msgs {
                let (slot, d) = split(m.seq);
                let Some(&id) = st.slots.get(&slot) else {
                    continue;
                };
                by.push((id, d));
                let gone = match st.locals.get_mut(&id) {
                    Some(l) => {
                        l.held.remove(&d);
                        l.cancelled && l.held.is_empty()
                    }
                    None => false,
                };
                if gone {
                    st.locals.remove(&id);
                    st.slots.remove(&slot);
                }
            }
        }
        for (c, ids) in group_by_consumer(by) {
            self.send(make(c, ids));
        }
    }

    /// basic.get through the group.
    /// The clock goes first, so a message whose TTL passed is not taken.
    pub(crate) fn get(&self, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        let reply = self.ask(Command::Batch(vec![
            Command::Tick {
                now: warren_core::queue::now_ms(),
            },
            Command::Dequeue {
                consumer: self.get_consumer,
                node: self.me,
                settled: no_ack,
            },
        ]))?;
        let Reply::Batch(mut replies) = reply else {
            return None;
        };
        match replies.pop()? {
            Reply::Dequeued {
                delivery_id,
                redelivered,
                message,
                remaining,
            } => Some((
                QueuedMessage {
                    seq: seq_of(0, delivery_id),
                    message: to_core(&message),
                    redelivered,
                    expires_at: NEVER,
                    priority: 0,
                },
                remaining.min(u32::MAX as u64) as u32,
            )),
            _ => None,
        }
    }

    pub(crate) fn consumers_of(&self, queue: &Queue) -> u32 {
        self.state
            .lock()
            .locals
            .values()
            .filter(|l| !l.cancelled && std::ptr::eq(Arc::as_ptr(&l.queue), queue))
            .count() as u32
    }

    /// This node's consumers of `queue` for the management API. With
    /// single-active-consumer, `active` is the group's active consumer as
    /// this node's member knows it (Some(None): none); None (no member
    /// here): shown as "up".
    pub(crate) fn consumers_info(
        &self,
        queue: &Queue,
        single_active: bool,
        active: Option<Option<ConsumerId>>,
    ) -> Vec<ConsumerInfo> {
        let st = self.state.lock();
        let mut out: Vec<(u32, ConsumerInfo)> = st
            .locals
            .iter()
            .filter(|(_, l)| !l.cancelled && std::ptr::eq(Arc::as_ptr(&l.queue), queue))
            .map(|(id, l)| {
                let (active, activity_status) = match (single_active, active) {
                    (true, Some(a)) if a == Some(*id) => (true, "single_active"),
                    (true, Some(_)) => (false, "waiting"),
                    _ => (true, "up"),
                };
                let c = &l.consumer;
                (
                    l.slot,
                    ConsumerInfo {
                        consumer_tag: c.tag.clone(),
                        ack_required: !c.no_ack,
                        exclusive: c.exclusive,
                        prefetch_count: l.prefetch,
                        arguments: c.arguments.clone(),
                        active,
                        activity_status,
                        channel: c.channel,
                    },
                )
            })
            .collect();
        // In consume order.
        out.sort_by_key(|(slot, _)| *slot);
        out.into_iter().map(|(_, c)| c).collect()
    }

    /// The queue was deleted: tell the consumers.
    pub(crate) fn deleted(&self) {
        let gone: Vec<Local> = self.state.lock().locals.drain().map(|(_, l)| l).collect();
        for l in gone {
            if !l.cancelled {
                l.consumer.sink.cancelled(&l.consumer);
            }
        }
    }

    /// Deliveries from the group's leader.
    pub(crate) fn incoming(&self, deliveries: Vec<Delivery>) {
        let mut acked = Vec::new();
        let mut returns = Vec::new();
        let mut down = HashSet::new();
        {
            let mut st = self.state.lock();
            for d in deliveries {
                if d.consumer == self.get_consumer {
                    // A new leader's re-send of a basic.get's unacked
                    // message: the channel holds it already.
                    continue;
                }
                let Some(l) = st.locals.get_mut(&d.consumer) else {
                    // A consumer this hub no longer knows (its channel
                    // is gone): whatever it holds goes back.
                    down.insert(d.consumer);
                    continue;
                };
                if d.delivery_id <= l.max_seen {
                    continue; // a copy of one it has (or had)
                }
                l.max_seen = d.delivery_id;
                l.held.insert(d.delivery_id);
                if l.cancelled {
                    l.held.remove(&d.delivery_id);
                    returns.push((d.consumer, d.delivery_id));
                    continue;
                }
                let qm = QueuedMessage {
                    seq: seq_of(l.slot, d.delivery_id),
                    message: with_delivery_count(to_core(&d.message), d.delivery_count),
                    redelivered: d.redelivered,
                    expires_at: NEVER,
                    priority: 0,
                };
                if !l.pending.is_empty()
                    || !l.consumer.is_active()
                    || !l.consumer.sink.offer(&l.consumer, &l.queue, &qm)
                {
                    l.pending.push_back(qm);
                } else if l.consumer.no_ack {
                    l.held.remove(&d.delivery_id);
                    acked.push((d.consumer, d.delivery_id));
                }
            }
        }
        self.settle_ids(acked);
        for (c, ids) in group_by_consumer(returns) {
            self.send(Command::Return { consumer: c, ids });
        }
        for c in down {
            self.send(Command::ConsumerDown { consumer: c });
        }
    }

    /// The group lost this consumer (e.g. the leader declared this node
    /// down while it was cut off): attach it again under a new id. What it
    /// held was returned to the queue; acks of those are lost (they will be
    /// delivered again: at least once).
    fn reattach(&self, old: ConsumerId) {
        let again = {
            let mut st = self.state.lock();
            match st.locals.remove(&old) {
                Some(l) if !l.cancelled => Some(l),
                _ => None,
            }
        };
        if let Some(l) = again {
            debug!("quorum consumer {old:#x} unknown to its group: attached again");
            let queue = l.queue.clone();
            self.add_consumer(&queue, l.consumer, false);
        }
    }

    /// Consumers attached a while ago that this node's member (if any) does
    /// not know: the group dropped them.
    fn stale(&self, known: &HashSet<ConsumerId>) -> Vec<ConsumerId> {
        let st = self.state.lock();
        st.locals
            .iter()
            .filter(|(id, l)| {
                !l.cancelled
                    && l.attached_at.elapsed() > Duration::from_secs(10)
                    && !known.contains(id)
            })
            .map(|(id, _)| *id)
            .collect()
    }
}

fn group_by_consumer(items: Vec<(ConsumerId, u64)>) -> Vec<(ConsumerId, Vec<u64>)> {
    let mut out: Vec<(ConsumerId, Vec<u64>)> = Vec::new();
    for (c, d) in items {
        match out.iter_mut().find(|(k, _)| *k == c) {
            Some((_, v)) => v.push(d),
            None => out.push((c, vec![d])),
        }
    }
    out
}

/// The queue's consumer pipeline on this node: one entry in flight, what
/// queued meanwhile goes as one `Batch`. The first command (`NodeDown` for
/// this node) is retried until the group takes it.
async fn run_ops(
    cluster: Weak<Cluster>,
    hub: Weak<Hub>,
    group: u64,
    members: Vec<NodeId>,
    mut rx: mpsc::UnboundedReceiver<Op>,
) {
    let mut target = None;
    let mut first = true;
    let mut check = tokio::time::interval(Duration::from_secs(5));
    check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let op = tokio::select! {
            op = rx.recv() => match op { Some(op) => op, None => return },
            _ = check.tick() => {
                reattach_stale(&cluster, &hub, group);
                continue;
            }
        };
        let mut ops = vec![op];
        while ops.len() < MAX_OPS {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let cmd = if ops.len() == 1 {
            ops[0].cmd.clone()
        } else {
            Command::Batch(ops.iter().map(|o| o.cmd.clone()).collect())
        };
        let mut reply = write(&cluster, group, &members, &mut target, cmd.clone()).await;
        while first && reply.is_none() && cluster.strong_count() > 0 && hub.strong_count() > 0 {
            reply = write(&cluster, group, &members, &mut target, cmd.clone()).await;
        }
        first = false;
        let replies: Vec<Option<Reply>> = match reply {
            Some(Reply::Batch(rs)) if ops.len() > 1 => rs.into_iter().map(Some).collect(),
            r => vec![r],
        };
        let mut unknown = Vec::new();
        for (i, op) in ops.into_iter().enumerate() {
            let r = replies.get(i).cloned().flatten();
            if r == Some(Reply::UnknownConsumer) {
                if let Command::Settle { consumer, .. }
                | Command::Return { consumer, .. }
                | Command::Discard { consumer, .. } = &op.cmd
                {
                    unknown.push(*consumer);
                }
            }
            if let Some(tx) = op.reply {
                let _ = tx.send(r);
            }
        }
        if let Some(h) = hub.upgrade() {
            for c in unknown {
                h.reattach(c);
            }
        }
        if cluster.strong_count() == 0 {
            return;
        }
    }
}

/// See [`Hub::stale`]: checked against this node's member, if it is one.
fn reattach_stale(cluster: &Weak<Cluster>, hub: &Weak<Hub>, group: u64) {
    let (Some(c), Some(h)) = (cluster.upgrade(), hub.upgrade()) else {
        return;
    };
    let Some(m) = c.quorum.member(group) else {
        return;
    };
    // Only a member that follows a live leader knows the group's present.
    if m.raft.metrics().borrow().current_leader.is_none() {
        return;
    }
    let known: HashSet<ConsumerId> =
        m.sm.with_state(|s| s.consumers().into_iter().map(|(id, _)| id).collect());
    for id in h.stale(&known) {
        h.reattach(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_names_slot_and_delivery() {
        let s = seq_of(7, 123_456);
        assert_eq!(split(s), (7, 123_456));
        assert_eq!(split(seq_of(0, 1)), (0, 1));
        // Slots of different consumers never give the same seq.
        assert_ne!(seq_of(1, 5), seq_of(2, 5));
    }

    #[test]
    fn grouped_by_consumer_in_first_seen_order() {
        let g = group_by_consumer(vec![(2, 1), (1, 4), (2, 3)]);
        assert_eq!(g, vec![(2, vec![1, 3]), (1, vec![4])]);
    }
}
