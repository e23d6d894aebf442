//! Quorum queues on a cluster node: one Raft group per queue (openraft, the
//! warren-quorum state machine, its log in the node's shared WAL).
//!
//! * The declare goes through the metadata group like any queue, with a
//!   [`QuorumSpec`] the proposing node picked (group id, members). Every node
//!   that applies it installs a [`handle::QuorumQueue`] as the core queue's
//!   backend; each member node also starts its Raft member ([`Member`]),
//!   and the first member initializes the group.
//! * A restart starts the members again from the materialized metadata
//!   (the log and snapshot bring each back to where it was).
//! * Publishing: `handle.rs` hands messages to the queue's enqueuer task
//!   (`enqueue.rs`), which writes them as batches to the group's leader.
//! * Consuming: each node's consumers of the queue live in its hub
//!   (`hub.rs`: attach, acks, basic.get through the group); the group's
//!   leader carries out the deliveries the state machine picks
//!   (`consume.rs`), to the consumers' nodes.
//! * Idle groups park (`park.rs`): their openraft members stop on every
//!   node until a client operation or a peer's RPC wakes them.

pub mod consume;
mod dead_letter;
pub mod enqueue;
pub mod handle;
pub mod hub;
pub mod members;
pub mod park;

use crate::node::Cluster;
use crate::raft_net::{Bincode, GroupNetworkFactory, RaftService};
use crate::NodeId;
use handle::QuorumQueue;
use openraft::{BasicNode, Config, Raft};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use tracing::{info, warn};
use warren_core::meta::{MetaOp, QuorumSpec};
use warren_core::queue::{Overflow as CoreOverflow, QueueArgs};
use warren_core::store::definitions::table_from_hex;
use warren_core::ShortStr;
use warren_quorum::{QueueConfig, QueueState, QuorumConfig, QuorumStateMachine};
use warren_raftlog::{SharedWal, WalOptions};

/// How long a member other than the first waits for the group to reach it
/// before initializing it itself.
const INIT_GRACE: std::time::Duration = std::time::Duration::from_secs(5);

/// This node's Raft member of one quorum queue group.
pub struct Member {
    pub raft: Raft<QuorumConfig>,
    pub sm: QuorumStateMachine,
    /// What it was started with (parking keeps them to start it again).
    spec: QuorumSpec,
    cfg: QueueConfig,
}

/// The quorum queues of a node.
pub struct Quorum {
    /// One write-ahead log for every group on the node (group commit).
    pub wal: Arc<SharedWal>,
    /// Snapshots, one file per group.
    dir: PathBuf,
    members: Mutex<HashMap<u64, Arc<Member>>>,
    /// Members parked while idle (`park.rs`).
    parked: Mutex<HashMap<u64, park::Parked>>,
    /// Held while a member starts, parks, wakes or stops, so two of those
    /// never run at once for a group (two `Raft`s on one log).
    lifecycle: tokio::sync::Mutex<()>,
    /// Backends by (vhost, queue name).
    queues: Mutex<HashMap<(String, String), Arc<QuorumQueue>>>,
    config: Arc<Config>,
    /// Deliveries this node (as a group leader) sends to other nodes.
    outboxes: consume::Outboxes,
}

impl Quorum {
    pub fn open(cluster_dir: &std::path::Path) -> std::io::Result<Quorum> {
        let wal = SharedWal::open(cluster_dir.join("raft-wal"), WalOptions::default())?;
        let dir = cluster_dir.join("qq");
        std::fs::create_dir_all(&dir)?;
        let config = Config {
            cluster_name: "warren-qq".into(),
            heartbeat_interval: crate::failover::HEARTBEAT_MS,
            election_timeout_min: crate::failover::ELECTION_MIN_MS,
            election_timeout_max: crate::failover::ELECTION_MAX_MS,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(4096),
            max_in_snapshot_log_to_keep: 0,
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(std::io::Error::other)?);
        Ok(Quorum {
            wal,
            dir,
            members: Mutex::new(HashMap::new()),
            parked: Mutex::new(HashMap::new()),
            lifecycle: tokio::sync::Mutex::new(()),
            queues: Mutex::new(HashMap::new()),
            config,
            outboxes: consume::Outboxes::default(),
        })
    }

    pub fn member(&self, group: u64) -> Option<Arc<Member>> {
        self.members.lock().get(&group).cloned()
    }

    /// Every running member on this node (parked ones are not in it: they
    /// answer votes themselves, see `park.rs`).
    pub fn all_members(&self) -> Vec<Arc<Member>> {
        self.members.lock().values().cloned().collect()
    }

    /// Whether this node has a member of `group`, running or parked.
    pub fn has_member(&self, group: u64) -> bool {
        self.members.lock().contains_key(&group) || self.parked.lock().contains_key(&group)
    }

    pub fn queue(&self, vhost: &str, name: &str) -> Option<Arc<QuorumQueue>> {
        self.queues
            .lock()
            .get(&(vhost.to_string(), name.to_string()))
            .cloned()
    }
}

/// The state machine's config from the queue's effective arguments
/// (declared, merged with its policy).
pub(crate) fn config_from(args: &QueueArgs) -> QueueConfig {
    QueueConfig {
        delivery_limit: args.delivery_limit.map(|n| n.min(u32::MAX as u64) as u32),
        max_length: args.max_length,
        max_length_bytes: args.max_length_bytes,
        overflow: match args.overflow {
            CoreOverflow::DropHead => warren_quorum::Overflow::DropHead,
            CoreOverflow::RejectPublish | CoreOverflow::RejectPublishDlx => {
                warren_quorum::Overflow::RejectPublish
            }
        },
        single_active: args.single_active_consumer,
    }
}

/// The state machine's config from the declared arguments (hex-encoded
/// table, as the metadata holds it); a queue's policy is applied once its
/// leader syncs (`sync_quorum_config`).
fn queue_config(arguments: &str) -> QueueConfig {
    let table = table_from_hex(arguments);
    // Declares were validated before they were replicated.
    let args = QueueArgs::parse(&table, &ShortStr::from(""), "").unwrap_or_default();
    config_from(&args)
}

impl Cluster {
    /// Fill in a quorum queue declare's group and members (the proposing
    /// node picks them, so every node applies the same).
    pub(crate) fn pick_quorum_spec(&self, op: &mut MetaOp) {
        let MetaOp::DeclareQueue {
            arguments, quorum, ..
        } = op
        else {
            return;
        };
        if quorum.is_some() || !warren_core::queue::is_quorum(&table_from_hex(arguments)) {
            return;
        }
        let m = self.raft.metrics().borrow().clone();
        let mut voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
        voters.sort_unstable();
        let mut group = warren_core::random::random_u64();
        while group == crate::META_GROUP
            // The node-level RPC groups live at the top of the id space
            // (NODE_GROUP, CLASSIC_GROUP, QQ_DELIVER_GROUP, QUORUM_ADMIN_GROUP).
            || group >= members::QUORUM_ADMIN_GROUP
        {
            group = warren_core::random::random_u64();
        }
        // Leaders spread over the nodes: the first member initializes the
        // group and usually leads it; rotate who is first.
        if !voters.is_empty() {
            let k = (group % voters.len() as u64) as usize;
            voters.rotate_left(k);
        }
        let size = table_from_hex(arguments)
            .get("x-quorum-initial-group-size")
            .and_then(|v| v.as_i64())
            .filter(|n| *n > 0)
            .map_or(voters.len(), |n| (n as usize).min(voters.len()));
        voters.truncate(size.max(1));
        *quorum = Some(QuorumSpec {
            group,
            members: voters.iter().map(|id| self.name_of(*id)).collect(),
            grown: Vec::new(),
        });
    }

    /// A metadata op was applied here: start or stop quorum queues.
    pub(crate) fn quorum_applied(self: &Arc<Self>, op: &MetaOp) {
        match op {
            MetaOp::DeclareQueue {
                vhost,
                name,
                arguments,
                quorum: Some(spec),
                ..
            } => self.attach_quorum(vhost, name, spec, arguments),
            // The declare as materialized carries the new members.
            MetaOp::SetQueueMembers { vhost, name, .. } => {
                if let Some(MetaOp::DeclareQueue {
                    quorum: Some(spec),
                    arguments,
                    ..
                }) = self.state_machine.quorum_declare(vhost, name)
                {
                    self.attach_quorum(vhost, name, &spec, &arguments);
                }
            }
            MetaOp::DeleteQueue { vhost, name } => {
                let removed = self
                    .quorum
                    .queues
                    .lock()
                    .remove(&(vhost.clone(), name.clone()));
                if let Some(q) = removed {
                    let c = self.clone();
                    tokio::spawn(async move { c.stop_member(q.group, true).await });
                }
            }
            _ => {}
        }
    }

    /// Install the backend on the core queue and, on a member, start the
    /// group member. Idempotent (a replayed declare finds it done).
    pub(crate) fn attach_quorum(
        self: &Arc<Self>,
        vhost: &str,
        name: &str,
        spec: &QuorumSpec,
        arguments: &str,
    ) {
        let key = (vhost.to_string(), name.to_string());
        let handle = {
            let mut qs = self.quorum.queues.lock();
            match qs.get(&key) {
                Some(h) if h.group == spec.group => {
                    h.set_members(&spec.members);
                    h.clone()
                }
                _ => {
                    let h = QuorumQueue::new(self, spec);
                    qs.insert(key, h.clone());
                    h
                }
            }
        };
        let mut cfg = None;
        if let Some(q) = self
            .broker
            .vhost(vhost)
            .and_then(|v| v.named_queue(ShortStr::from(name).as_bytes()))
        {
            if q.backend().is_none() {
                q.set_backend(handle);
            }
            // Its effective arguments: a policy applies from the start.
            cfg = Some(config_from(&q.args()));
        }
        if spec.members.iter().any(|m| *m == self.name) {
            let c = self.clone();
            let spec = spec.clone();
            let cfg = cfg.unwrap_or_else(|| queue_config(arguments));
            tokio::spawn(async move {
                if let Err(e) = c.start_member(&spec, cfg).await {
                    warn!("quorum group {:#x}: cannot start: {e}", spec.group);
                }
            });
        } else if self.quorum.has_member(spec.group)
            || self.quorum.wal.group_ids().contains(&spec.group)
        {
            // Removed from the group (shrink), maybe while it was down:
            // its member, log and snapshot go.
            let c = self.clone();
            let group = spec.group;
            tokio::spawn(async move { c.stop_member(group, true).await });
        }
    }

    async fn start_member(
        self: &Arc<Self>,
        spec: &QuorumSpec,
        cfg: QueueConfig,
    ) -> std::io::Result<()> {
        let _g = self.quorum.lifecycle.lock().await;
        if let Some(p) = self.quorum.parked.lock().get_mut(&spec.group) {
            // Parked: it starts with this spec when it wakes.
            p.spec = spec.clone();
            p.cfg = cfg;
            return Ok(());
        }
        self.start_member_locked(spec, cfg).await
    }

    /// [`Self::start_member`] with `quorum.lifecycle` held.
    async fn start_member_locked(
        self: &Arc<Self>,
        spec: &QuorumSpec,
        cfg: QueueConfig,
    ) -> std::io::Result<()> {
        let group = spec.group;
        if self.quorum.member(group).is_some() {
            return Ok(());
        }
        let log = self.quorum.wal.group::<QuorumConfig>(group);
        let sm = QuorumStateMachine::open(
            self.quorum.dir.join(format!("{group:016x}.snapshot")),
            QueueState::new(cfg.clone()),
        )?;
        let (effects_tx, effects_rx) = tokio::sync::mpsc::unbounded_channel();
        sm.set_effect_sink(Arc::new(move |e| {
            let _ = effects_tx.send(e);
        }));
        let raft = Raft::new(
            self.id,
            self.quorum.config.clone(),
            GroupNetworkFactory::<QuorumConfig, Bincode>::new(self.transport.clone(), group),
            log,
            sm.clone(),
        )
        .await
        .map_err(std::io::Error::other)?;
        let raced = {
            let mut ms = self.quorum.members.lock();
            let raced = ms.contains_key(&group);
            if !raced {
                ms.insert(
                    group,
                    Arc::new(Member {
                        raft: raft.clone(),
                        sm,
                        spec: spec.clone(),
                        cfg,
                    }),
                );
            }
            raced
        };
        if raced {
            let _ = raft.shutdown().await;
            return Ok(());
        }
        let sm = self.quorum.member(group).map(|m| m.sm.clone());
        if let Some(sm) = sm {
            tokio::spawn(consume::run_effects(
                Arc::downgrade(self),
                group,
                raft.clone(),
                sm,
                effects_rx,
            ));
        }
        self.registry.register(
            group,
            Arc::new(RaftService::<QuorumConfig, Bincode>::new(raft.clone())),
        );
        // The first member initializes the group at once (it usually wins
        // the first election: leaders spread with the members' rotation);
        // the others do the same with the same membership if nothing reached
        // them after a while (the first member is down), which openraft
        // allows: initializing several nodes with one config is safe.
        let mut nodes = BTreeMap::new();
        for m in &spec.members {
            let id = crate::config::node_id(m);
            let addr = self.addr_of(id).unwrap_or_else(|| self.addr.clone());
            nodes.insert(id, BasicNode::new(&addr));
        }
        let first = spec.members.first().is_some_and(|m| *m == self.name);
        if spec.grown.contains(&self.name) {
            // Added later: the leader brings it in (see members.rs).
            return Ok(());
        }
        // Already initialized (a restart, or a parked member woken): done.
        if raft.is_initialized().await.unwrap_or(true) {
            return Ok(());
        }
        tokio::spawn(async move {
            if !first {
                tokio::time::sleep(INIT_GRACE).await;
            }
            if raft.is_initialized().await.unwrap_or(true) {
                return;
            }
            match raft.initialize(nodes).await {
                Ok(()) => info!("quorum group {group:#x} initialized"),
                Err(e) => warn!("quorum group {group:#x}: initialize: {e}"),
            }
        });
        Ok(())
    }

    /// Stop this node's member of `group`; `drop` also forgets its log and
    /// snapshot (the queue was deleted).
    async fn stop_member(&self, group: u64, drop: bool) {
        let _g = self.quorum.lifecycle.lock().await;
        let m = self.quorum.members.lock().remove(&group);
        self.quorum.parked.lock().remove(&group);
        self.registry.unregister(group);
        if let Some(m) = m {
            let _ = m.raft.shutdown().await;
        }
        if drop {
            if let Err(e) = self.quorum.wal.drop_group(group).await {
                warn!("quorum group {group:#x}: dropping its log: {e}");
            }
            let _ = std::fs::remove_file(self.quorum.dir.join(format!("{group:016x}.snapshot")));
        }
    }

    /// At start: every quorum queue the metadata knows gets its backend, and
    /// this node's members start again.
    pub(crate) fn restore_quorum_queues(self: &Arc<Self>) {
        self.registry.register(
            consume::QQ_DELIVER_GROUP,
            Arc::new(consume::DeliverService(Arc::downgrade(self))),
        );
        for op in self.state_machine.quorum_declares() {
            self.quorum_applied(&op);
        }
        if let Some(after) = park::park_after() {
            tokio::spawn(park::run(Arc::downgrade(self), after));
        }
    }

    /// The config `group`'s queue should run with, from the core queue's
    /// effective arguments (its policy included), if the queue is here.
    pub(crate) fn wanted_quorum_config(&self, group: u64) -> Option<QueueConfig> {
        let (vhost, name) = self
            .quorum
            .queues
            .lock()
            .iter()
            .find(|(_, q)| q.group == group)
            .map(|(k, _)| k.clone())?;
        let q = self
            .broker
            .vhost(&vhost)?
            .named_queue(ShortStr::from(name.as_str()).as_bytes())?;
        Some(config_from(&q.args()))
    }

    /// If this node leads `group` and its state machine runs another
    /// config, propose `want` (a policy changed, or a new leader found the
    /// policy changed while the group had none).
    pub(crate) fn sync_quorum_config(&self, group: u64, want: QueueConfig) {
        let Some(m) = self.quorum.member(group) else {
            return;
        };
        let leading = {
            let metrics = m.raft.metrics();
            let mm = metrics.borrow();
            mm.state == openraft::ServerState::Leader && mm.current_leader == Some(self.id)
        };
        if !leading || m.sm.with_state(|s| *s.config() == want) {
            return;
        }
        let raft = m.raft.clone();
        // Policies may be applied outside the runtime (start-up): then the
        // leader's next take-over syncs.
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        rt.spawn(async move {
            let r = tokio::time::timeout(
                std::time::Duration::from_secs(10),
                raft.client_write(warren_quorum::Command::SetConfig(want)),
            )
            .await;
            if !matches!(r, Ok(Ok(_))) {
                warn!("quorum group {group:#x}: config change not committed");
            }
        });
    }

    /// Stop every member (broker shutdown).
    pub(crate) async fn stop_quorum(&self) {
        let groups: Vec<u64> = self.quorum.members.lock().keys().copied().collect();
        for g in groups {
            self.stop_member(g, false).await;
        }
    }
}
