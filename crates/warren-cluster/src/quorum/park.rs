//! Parking idle quorum queue groups: an idle group's openraft members are
//! shut down on every node and only a small descriptor stays, so 1,000
//! idle quorum queues cost little memory and no heartbeats.
//!
//! * **Why.** A running openraft member is a core task, a state-machine
//!   worker, a timer, replication tasks on the leader, their channels and
//!   metrics, plus this crate's effects task: about 100 KiB a group per
//!   node, and a heartbeat every 250 ms. An idle queue needs none of it:
//!   its log, vote and snapshot are on disk.
//! * **When.** Each node sweeps its members every few seconds. A leader
//!   whose group applied nothing for [`park_after`] (default 30 s,
//!   `WARREN_QQ_PARK_AFTER_MS`, 0 = never), has no consumers and no unacked
//!   messages, and whose followers all match its last log entry, asks each
//!   follower to park ([`PARK_RPC`]); a follower parks only if it follows
//!   that leader in that term and has applied that same last entry. When
//!   every reachable follower agreed, the leader parks too. Parking takes a
//!   snapshot first (nothing to replay on waking, WAL segments unpinned),
//!   keeps a [`Parked`] descriptor (spec, config, last leader, depth) and
//!   registers [`ParkedService`] for the group in place of the Raft service.
//!   Followers park first and the leader last; meanwhile a parked follower
//!   answers its leader's heartbeats itself (same vote, nothing new, the
//!   leader's previous entry is its last one: exactly what its member would
//!   answer), so the leader's heartbeats do not wake it again.
//! * **Elections.** A parked member also answers vote requests itself, by
//!   openraft's rules (the candidate's vote at least its own; a new vote is
//!   saved to the WAL before the answer) but without the leader lease: a
//!   member openraft starts again holds its old leader's lease for an
//!   election timeout and refuses every candidate meanwhile, which would
//!   make a group whose parked leader died take several election rounds to
//!   recover. The lease protects a working leader from disruption; a parked
//!   group has none. A candidate whose log is behind (it was down when the
//!   last entries were written) wakes the member instead, so the group
//!   elects a member that has them and brings the candidate up to date.
//! * **Waking.** Any Raft RPC for the group (append, vote, snapshot,
//!   forwarded write) reaches `ParkedService`, which starts the member from
//!   its WAL and snapshot and hands the RPC over. A client operation on
//!   this node (publish, consume, basic.get, purge, membership change)
//!   wakes the local member through [`Cluster::wake_member`]. A member woken
//!   by a client operation starts an election at once if it was the last
//!   leader or the last leader is not online, so the group needs no
//!   election timeout to get going again (the others wake on its vote
//!   request). If the old leader died while parked, the survivors wake on
//!   the first write that reaches them and elect among themselves.
//! * **Safety.** Parking is a clean stop and waking a restart from durable
//!   state, which Raft tolerates at any time; the agreement above only
//!   avoids needless elections. A follower that parked while its leader
//!   did not is woken by the next heartbeat.

use super::members::{GroupStatus, QUORUM_ADMIN_GROUP};
use super::Member;
use crate::group::{GroupHandler, HandlerFuture};
use crate::node::Cluster;
use crate::raft_net::{Bincode, Codec, RaftService, RPC_APPEND, RPC_FORWARD, RPC_VOTE};
use crate::transport::CallError;
use crate::NodeId;
use bytes::Bytes;
use openraft::error::RaftError;
use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest, VoteResponse};
use openraft::storage::RaftLogStorage;
use openraft::{LogId, ServerState, Vote};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};
use warren_core::meta::QuorumSpec;
use warren_quorum::{QueueConfig, QuorumConfig};

/// The admin RPC a leader sends its followers to park a group.
pub(crate) const PARK_RPC: u8 = 3;
const PARK_TIMEOUT: Duration = Duration::from_secs(2);
/// How long parking waits for the snapshot it asked for.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(5);

/// How long a group must be idle before it parks; None: never.
pub(crate) fn park_after() -> Option<Duration> {
    let ms = std::env::var("WARREN_QQ_PARK_AFTER_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(30_000);
    (ms > 0).then(|| Duration::from_millis(ms))
}

/// What stays of a parked member: enough to start it again and to answer
/// status and depth questions without waking it (nothing changes while
/// it is parked: any change is a Raft write, which wakes it).
pub(crate) struct Parked {
    pub spec: QuorumSpec,
    pub cfg: QueueConfig,
    pub leader: Option<NodeId>,
    pub ready: u64,
    pub unacked: u64,
    pub ready_bytes: u64,
    /// The member's vote and last (applied) log entry when it parked: a
    /// heartbeat from that leader that brings nothing new is answered
    /// without waking it.
    pub vote: Vote<NodeId>,
    pub last: Option<LogId<NodeId>>,
}

#[derive(Serialize, Deserialize)]
struct ParkRequest {
    group: u64,
    leader: NodeId,
    term: u64,
    index: Option<u64>,
}

/// A parked group's RPC handler: wake the member, then serve the RPC.
pub(crate) struct ParkedService {
    pub cluster: Weak<Cluster>,
    pub group: u64,
}

impl GroupHandler for ParkedService {
    fn handle(&self, rpc: u8, payload: Bytes) -> HandlerFuture {
        let c = self.cluster.upgrade();
        let group = self.group;
        Box::pin(async move {
            let c = c.ok_or("node shutting down")?;
            if rpc == RPC_APPEND {
                if let Some(answer) = c.parked_heartbeat(group, &payload) {
                    return Ok(answer);
                }
            }
            if rpc == RPC_VOTE {
                if let Some(answer) = c.parked_vote(group, &payload).await {
                    return Ok(answer);
                }
            }
            let m = c
                .wake_member(group, rpc == RPC_FORWARD)
                .await
                .ok_or("no member of the group here")?;
            RaftService::<QuorumConfig, Bincode>::new(m.raft.clone())
                .handle(rpc, payload)
                .await
        })
    }
}

impl Cluster {
    /// A parked group's status (see `members.rs`' status RPC).
    pub(crate) fn parked_status(&self, group: u64) -> Option<GroupStatus> {
        let ps = self.quorum.parked.lock();
        let p = ps.get(&group)?;
        Some(GroupStatus {
            is_leader: p.leader == Some(self.id),
            leader: p.leader,
            ready: p.ready,
            unacked: p.unacked,
            ready_bytes: p.ready_bytes,
            consumers: 0,
        })
    }

    /// A heartbeat for a parked member: answered here if it carries
    /// nothing the member lacks (see the module doc), else None (wake it).
    fn parked_heartbeat(&self, group: u64, payload: &[u8]) -> Option<Bytes> {
        let req: AppendEntriesRequest<QuorumConfig> = Bincode::decode(payload).ok()?;
        let ps = self.quorum.parked.lock();
        let p = ps.get(&group)?;
        let quiet = req.entries.is_empty()
            && req.vote == p.vote
            && req.prev_log_id == p.last
            && req.leader_commit <= p.last;
        if !quiet {
            return None;
        }
        let r: Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>> =
            Ok(AppendEntriesResponse::Success);
        Bincode::encode(&r).ok().map(Bytes::from)
    }

    /// A vote request for a parked member, answered without waking it (see
    /// the module doc); None: not parked (any more), serve it awake.
    async fn parked_vote(&self, group: u64, payload: &[u8]) -> Option<Bytes> {
        let req: VoteRequest<NodeId> = Bincode::decode(payload).ok()?;
        let _g = self.quorum.lifecycle.lock().await;
        let (vote, last) = {
            let ps = self.quorum.parked.lock();
            let p = ps.get(&group)?;
            (p.vote, p.last)
        };
        if req.last_log_id.as_ref() < last.as_ref() {
            // A candidate that lacks entries (it was down when they were
            // written): wake up, so the group elects a member that has them
            // and brings the candidate up to date, instead of refusing it
            // for ever while parked.
            return None;
        }
        let granted = req.vote >= vote;
        let answer = if granted {
            if req.vote > vote {
                let mut log = self.quorum.wal.group::<QuorumConfig>(group);
                if let Err(e) = log.save_vote(&req.vote).await {
                    warn!("quorum group {group:#x}: saving a vote: {e}");
                    return None;
                }
                if let Some(p) = self.quorum.parked.lock().get_mut(&group) {
                    p.vote = req.vote;
                }
            }
            VoteResponse::new(req.vote, last, true)
        } else {
            VoteResponse::new(vote, last, false)
        };
        let r: Result<VoteResponse<NodeId>, RaftError<NodeId>> = Ok(answer);
        Bincode::encode(&r).ok().map(Bytes::from)
    }

    /// The leader a parked group had, if it is parked here.
    pub(crate) fn parked_leader(&self, group: u64) -> Option<NodeId> {
        self.quorum.parked.lock().get(&group).and_then(|p| p.leader)
    }

    /// This node's member of `group`, started again if it is parked; None
    /// if this node is not a member. `client`: woken for a client
    /// operation, so it campaigns at once if it was the leader or the
    /// leader is gone.
    pub(crate) async fn wake_member(
        self: &Arc<Self>,
        group: u64,
        client: bool,
    ) -> Option<Arc<Member>> {
        if let Some(m) = self.quorum.member(group) {
            return Some(m);
        }
        if !self.quorum.parked.lock().contains_key(&group) {
            return None;
        }
        let _g = self.quorum.lifecycle.lock().await;
        if let Some(m) = self.quorum.member(group) {
            return Some(m);
        }
        let p = self.quorum.parked.lock().remove(&group)?;
        let t0 = Instant::now();
        if let Err(e) = self.start_member_locked(&p.spec, p.cfg.clone()).await {
            warn!("quorum group {group:#x}: cannot wake: {e}");
            self.quorum.parked.lock().insert(group, p);
            return None;
        }
        let m = self.quorum.member(group)?;
        let leader_gone = p
            .leader
            .is_none_or(|l| l == self.id || !self.is_online(l, Duration::from_secs(3)));
        if client && leader_gone {
            let _ = m.raft.trigger().elect().await;
        }
        debug!(
            "quorum group {group:#x}: woken in {:?} (client: {client})",
            t0.elapsed()
        );
        Some(m)
    }

    /// Park this node's member of `group` (see the module doc). False if
    /// it is not here.
    async fn park_member(self: &Arc<Self>, group: u64) -> bool {
        let Some(m) = self.quorum.member(group) else {
            return self.quorum.parked.lock().contains_key(&group);
        };
        // A snapshot first (outside the lifecycle lock: other groups wake
        // meanwhile): waking then replays nothing, and the group's log
        // stops pinning WAL segments.
        let mt = m.raft.metrics().borrow().clone();
        if let Some(applied) = mt.last_applied {
            if mt.snapshot != Some(applied) && m.raft.trigger().snapshot().await.is_ok() {
                let _ = m
                    .raft
                    .wait(Some(SNAPSHOT_WAIT))
                    .snapshot(applied, "park")
                    .await;
            }
        }
        drop(m);
        let _g = self.quorum.lifecycle.lock().await;
        let Some(m) = self.quorum.members.lock().remove(&group) else {
            return false;
        };
        // From here until the descriptor is in, an RPC for the group finds
        // no member here and fails (its sender retries).
        self.registry.register(
            group,
            Arc::new(ParkedService {
                cluster: Arc::downgrade(self),
                group,
            }),
        );
        let _ = m.raft.shutdown().await;
        // Vote and last log id as stored (entries may have come in after
        // the sweep looked): what the parked member answers from.
        let mut log = self.quorum.wal.group::<QuorumConfig>(group);
        let (vote, last) = match (log.read_vote().await, log.get_log_state().await) {
            (Ok(v), Ok(st)) => (v.unwrap_or_default(), st.last_log_id),
            (Err(e), _) | (_, Err(e)) => {
                // Cannot read its own log: start it again instead.
                warn!("quorum group {group:#x}: parking: {e}");
                if let Err(e) = self.start_member_locked(&m.spec, m.cfg.clone()).await {
                    warn!("quorum group {group:#x}: cannot start: {e}");
                }
                return false;
            }
        };
        let leader = m.raft.metrics().borrow().current_leader;
        let p = m.sm.with_state(|s| Parked {
            spec: m.spec.clone(),
            cfg: m.cfg.clone(),
            leader,
            ready: s.ready_count(),
            unacked: s.unacked_count(),
            ready_bytes: s.ready_bytes(),
            vote,
            last,
        });
        self.quorum.parked.lock().insert(group, p);
        true
    }

    /// A follower asked to park: only if it follows that leader in that
    /// term and applied the same last entry (else the leader keeps going
    /// and asks again later).
    async fn park_here(self: &Arc<Self>, req: ParkRequest) -> bool {
        let Some(m) = self.quorum.member(req.group) else {
            return self.quorum.parked.lock().contains_key(&req.group);
        };
        let mt = m.raft.metrics().borrow().clone();
        let applied = mt.last_applied.map(|l| l.index);
        let agrees = mt.current_leader == Some(req.leader)
            && mt.current_term == req.term
            && applied == req.index
            && mt.last_log_index == req.index
            && m.sm
                .with_state(|s| s.consumer_count() == 0 && s.unacked_count() == 0);
        drop(m);
        agrees && self.park_member(req.group).await
    }

    /// The admin RPC's handler side.
    pub(crate) async fn park_rpc(self: &Arc<Self>, payload: &[u8]) -> Result<Bytes, String> {
        let req: ParkRequest = serde_json::from_slice(payload).map_err(|e| e.to_string())?;
        let ok = self.park_here(req).await;
        Ok(Bytes::from_static(if ok { b"1" } else { b"0" }))
    }

    /// The leader's side: park `group` if it is idle and everyone agrees.
    async fn try_park(self: &Arc<Self>, group: u64, m: &Arc<Member>) -> bool {
        let mt = m.raft.metrics().borrow().clone();
        let applied = mt.last_applied.map(|l| l.index);
        if mt.state != ServerState::Leader
            || mt.current_leader != Some(self.id)
            || mt.last_log_index != applied
        {
            return false;
        }
        let caught_up = mt
            .replication
            .as_ref()
            .is_some_and(|r| r.values().all(|l| l.map(|l| l.index) == applied));
        // A message waiting to expire keeps the group awake: its leader's
        // clock tick expires (and dead-letters) it on time, as RabbitMQ does.
        if !caught_up
            || m.sm.with_state(|s| {
                s.consumer_count() > 0 || s.unacked_count() > 0 || s.next_expiry().is_some()
            })
        {
            return false;
        }
        let req = ParkRequest {
            group,
            leader: self.id,
            term: mt.current_term,
            index: applied,
        };
        let Ok(body) = serde_json::to_vec(&req) else {
            return false;
        };
        let peers: Vec<NodeId> = mt
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != self.id)
            .collect();
        for peer in peers {
            let Some(addr) = self.addr_of(peer) else {
                continue;
            };
            match self
                .transport
                .call(&addr, QUORUM_ADMIN_GROUP, PARK_RPC, &body, PARK_TIMEOUT)
                .await
            {
                Ok(b) if &b[..] == b"1" => {}
                // A node that is down parks nothing and loses nothing: when
                // it comes back, its election wakes the group.
                Err(CallError::Unreachable(_)) => {}
                _ => return false,
            }
        }
        self.park_member(group).await
    }
}

/// The node's parking sweep (one task per node; see the module doc).
pub(crate) async fn run(cluster: Weak<Cluster>, after: Duration) {
    let every = (after / 4).clamp(Duration::from_millis(250), Duration::from_secs(5));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Per member: the last applied index seen, and since when.
    let mut seen: HashMap<u64, (Option<u64>, Instant)> = HashMap::new();
    loop {
        tick.tick().await;
        let Some(c) = cluster.upgrade() else { return };
        let members: Vec<(u64, Arc<Member>)> = c
            .quorum
            .members
            .lock()
            .iter()
            .map(|(g, m)| (*g, m.clone()))
            .collect();
        seen.retain(|g, _| members.iter().any(|(m, _)| m == g));
        let now = Instant::now();
        let mut parked = 0usize;
        for (group, m) in members {
            let applied = m.raft.metrics().borrow().last_applied.map(|l| l.index);
            let e = seen.entry(group).or_insert((applied, now));
            if e.0 != applied {
                *e = (applied, now);
                continue;
            }
            if now.duration_since(e.1) < after {
                continue;
            }
            if c.try_park(group, &m).await {
                seen.remove(&group);
                parked += 1;
            }
        }
        if parked > 0 {
            info!("parked {parked} idle quorum queue groups");
        }
    }
}
