//! The leader's side of consuming: every member applies every entry, and
//! its state machine hands the entries' effects (deliveries) to this
//! member's [`run_effects`] task; only the group's current leader carries
//! them out, whoever proposed the entry (deliveries here, dead letters in
//! `dead_letter.rs`).
//!
//! * A member that becomes leader first re-sends every consumer's unacked
//!   deliveries (`QueueState::checked_out`, marked redelivered): it cannot
//!   know which the old leader sent. Consumers' hubs drop those they hold.
//! * Deliveries for this node go straight to the local hub; others go into
//!   one outbox per node, sent as batched `DELIVER` RPCs (bincode) on the
//!   bulk transport, one batch in flight per node.
//! * A consumer node not seen for [`NODE_DOWN_AFTER`] is declared down
//!   (`NodeDown`): its consumers' messages return to the queue.
//! * TTL: the state machine has no clock; when the first expiry at a head
//!   of the queue is due the leader proposes its own (`Tick`), and the
//!   expired messages leave (dead-lettered, reason `expired`).
//! * On taking over, the leader also proposes the queue's config if its
//!   policy changed meanwhile (`SetConfig`; see `sync_quorum_config`).

use super::hub::Delivery;
use crate::group::{GroupHandler, GroupId, HandlerFuture};
use crate::node::Cluster;
use crate::NodeId;
use bytes::Bytes;
use openraft::{Raft, ServerState};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info};
use warren_quorum::{Command, Effect, QuorumConfig, QuorumStateMachine};

/// The transport "group" quorum deliveries are addressed to.
pub const QQ_DELIVER_GROUP: GroupId = u64::MAX - 2;
const RPC_DELIVER: u8 = 1;
/// A consumer's node unseen this long is down (its messages go back).
pub const NODE_DOWN_AFTER: Duration = Duration::from_secs(6);
const DELIVER_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_DELIVER_BATCH: usize = 512;
/// Least time between two clock proposals (`Command::Tick`) of a leader.
const EXPIRY_TICK_GAP: Duration = Duration::from_millis(20);

/// One outbox per consumer node (shared by every group this node leads).
#[derive(Default)]
pub struct Outboxes {
    boxes: Mutex<HashMap<NodeId, mpsc::UnboundedSender<(u64, Delivery)>>>,
}

impl Outboxes {
    fn send(&self, cluster: &Arc<Cluster>, node: NodeId, group: u64, d: Delivery) {
        let mut boxes = self.boxes.lock();
        let tx = boxes.entry(node).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(outbox(Arc::downgrade(cluster), node, rx));
            tx
        });
        let _ = tx.send((group, d));
    }
}

async fn outbox(
    cluster: Weak<Cluster>,
    node: NodeId,
    mut rx: mpsc::UnboundedReceiver<(u64, Delivery)>,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_DELIVER_BATCH {
            match rx.try_recv() {
                Ok(d) => batch.push(d),
                Err(_) => break,
            }
        }
        let Some(c) = cluster.upgrade() else { return };
        let payload = match bincode::serialize(&batch) {
            Ok(p) => p,
            Err(e) => {
                debug!("quorum deliveries: encode: {e}");
                continue;
            }
        };
        // A node that cannot be reached loses these deliveries: once it is
        // declared down (or restarts) they go back to the queue.
        for attempt in 0..3 {
            let Some(addr) = c.addr_of(node) else { break };
            match c
                .classic
                .transport
                .call(
                    &addr,
                    QQ_DELIVER_GROUP,
                    RPC_DELIVER,
                    &payload,
                    DELIVER_TIMEOUT,
                )
                .await
            {
                Ok(_) => break,
                Err(e) => {
                    debug!("quorum deliveries to {addr} (attempt {attempt}): {e}");
                    if !c.is_online(node, Duration::from_secs(3)) {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// Serves deliveries from group leaders to this node's hubs.
pub(crate) struct DeliverService(pub Weak<Cluster>);

impl GroupHandler for DeliverService {
    fn handle(&self, rpc: u8, payload: Bytes) -> HandlerFuture {
        let c = self.0.upgrade();
        Box::pin(async move {
            if rpc != RPC_DELIVER {
                return Err(format!("unknown quorum rpc {rpc}"));
            }
            let batch: Vec<(u64, Delivery)> =
                bincode::deserialize(&payload).map_err(|e| format!("decode: {e}"))?;
            if let Some(c) = c {
                c.hand_to_hubs(batch);
            }
            Ok(Bytes::new())
        })
    }
}

impl Cluster {
    /// Give deliveries to this node's hubs, by group.
    fn hand_to_hubs(&self, batch: Vec<(u64, Delivery)>) {
        let mut by_group: Vec<(u64, Vec<Delivery>)> = Vec::new();
        for (g, d) in batch {
            match by_group.iter_mut().find(|(k, _)| *k == g) {
                Some((_, v)) => v.push(d),
                None => by_group.push((g, vec![d])),
            }
        }
        for (g, ds) in by_group {
            let hub = self
                .quorum
                .queues
                .lock()
                .values()
                .find(|q| q.group == g)
                .map(|q| q.hub.clone());
            match hub {
                Some(h) => h.incoming(ds),
                None => debug!("quorum deliveries for unknown group {g:#x} dropped"),
            }
        }
    }
}

fn dispatch(c: &Arc<Cluster>, group: u64, effects: Vec<Effect>) {
    let mut local = Vec::new();
    let mut dead = Vec::new();
    for e in effects {
        match e {
            Effect::Deliver {
                consumer,
                node,
                delivery_id,
                redelivered,
                delivery_count,
                message,
            } => {
                let d = Delivery {
                    consumer,
                    delivery_id,
                    redelivered,
                    delivery_count,
                    message,
                };
                if node == c.id {
                    local.push((group, d));
                } else {
                    c.quorum.outboxes.send(c, node, group, d);
                }
            }
            // See dead_letter.rs.
            Effect::DeadLetter {
                reason, message, ..
            } => dead.push((reason, message)),
        }
    }
    if !local.is_empty() {
        c.hand_to_hubs(local);
    }
    if !dead.is_empty() {
        c.dead_letter(group, dead);
    }
}

/// Carry out the effects this member's state machine produces while it
/// leads the group; see the module comment.
pub(crate) async fn run_effects(
    cluster: Weak<Cluster>,
    group: u64,
    raft: Raft<QuorumConfig>,
    sm: QuorumStateMachine,
    mut rx: mpsc::UnboundedReceiver<Vec<Effect>>,
) {
    let mut metrics = raft.metrics();
    let mut leading = false;
    let mut leader_since = Instant::now();
    let mut down_asked: HashMap<NodeId, Instant> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // TTL: when the head's expiry is due, the leader proposes its clock.
    let mut expiry_due: Option<tokio::time::Instant> = None;
    let mut last_clock = Instant::now() - EXPIRY_TICK_GAP;
    let clock_in_flight = Arc::new(std::sync::atomic::AtomicBool::new(false));
    loop {
        let expiry_timer = async {
            match expiry_due {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        let effects = tokio::select! {
            e = rx.recv() => match e { Some(e) => e, None => return },
            r = metrics.changed() => {
                if r.is_err() { return; }
                Vec::new()
            }
            _ = tick.tick() => Vec::new(),
            _ = expiry_timer => {
                if leading && !clock_in_flight.swap(true, std::sync::atomic::Ordering::AcqRel) {
                    last_clock = Instant::now();
                    let (raft, flag) = (raft.clone(), clock_in_flight.clone());
                    tokio::spawn(async move {
                        let now = warren_core::queue::now_ms();
                        let _ = tokio::time::timeout(
                            Duration::from_secs(10),
                            raft.client_write(Command::Tick { now }),
                        )
                        .await;
                        flag.store(false, std::sync::atomic::Ordering::Release);
                    });
                }
                Vec::new()
            }
        };
        let Some(c) = cluster.upgrade() else { return };
        let now_leading = {
            let m = raft.metrics().borrow().clone();
            m.state == ServerState::Leader && m.current_leader == Some(c.id)
        };
        if now_leading && !leading {
            // Entries applied before this moment had their effects dropped
            // here (not leader); everything they handed out is in the
            // state: send it all again.
            leader_since = Instant::now();
            let resend: Vec<Effect> = sm.with_state(|s| {
                s.consumers()
                    .into_iter()
                    .flat_map(|(id, _)| s.checked_out(id))
                    .collect()
            });
            info!(
                "quorum group {group:#x}: leading; {} unacked deliveries re-sent",
                resend.len()
            );
            dispatch(&c, group, resend);
            // A policy may have changed while the group had no leader.
            if let Some(want) = c.wanted_quorum_config(group) {
                c.sync_quorum_config(group, want);
            }
        }
        leading = now_leading;
        if !leading {
            expiry_due = None;
            continue;
        }
        if !effects.is_empty() {
            dispatch(&c, group, effects);
        }
        // Arm the expiry timer for the head that expires first (at most one
        // clock proposal per EXPIRY_TICK_GAP: clocks of nodes may differ).
        expiry_due = sm.with_state(|s| s.next_expiry()).map(|at| {
            let wait = Duration::from_millis(at.saturating_sub(warren_core::queue::now_ms()));
            let at = Instant::now() + wait;
            tokio::time::Instant::from_std(at.max(last_clock + EXPIRY_TICK_GAP))
        });
        if leader_since.elapsed() >= NODE_DOWN_AFTER {
            let nodes: Vec<NodeId> = sm.with_state(|s| {
                let mut ns: Vec<NodeId> = s.consumers().into_iter().map(|(_, n)| n).collect();
                ns.sort_unstable();
                ns.dedup();
                ns
            });
            for node in nodes {
                if c.is_online(node, NODE_DOWN_AFTER)
                    || down_asked
                        .get(&node)
                        .is_some_and(|t| t.elapsed() < NODE_DOWN_AFTER)
                {
                    continue;
                }
                down_asked.insert(node, Instant::now());
                info!(
                    "quorum group {group:#x}: node {} unseen, its consumers are down",
                    c.name_of(node)
                );
                let raft = raft.clone();
                tokio::spawn(async move {
                    let _ = tokio::time::timeout(
                        Duration::from_secs(10),
                        raft.client_write(Command::NodeDown { node }),
                    )
                    .await;
                });
            }
        }
    }
}
