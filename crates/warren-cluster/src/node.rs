//! A clustered node: the cluster listener, the metadata group, forming the
//! cluster on first start, proposing changes, and the cluster's status.
//!
//! Forming: the seed with the lowest node name initializes the metadata
//! group with every seed as a voter, once, when its own log is empty and no
//! reachable seed already knows a membership (so restarting it after the
//! others formed a cluster, or wiping its data, never forks a second
//! cluster). The others wait to be contacted by the leader.
//!
//! Proposing: the leader writes through its own `Raft`; a follower forwards
//! the op to the leader over the transport, then waits until its own state
//! machine applied that entry, so the client's next command on this node sees
//! the change. No leader or no majority within [`PROPOSE_TIMEOUT`]: the change
//! is refused (see [`no_majority`]).

use crate::classic::{Classic, ClassicService, PeerDirectory, RemoteClassic, CLASSIC_GROUP};
use crate::config::ClusterConfig;
use crate::group::{GroupHandler, HandlerFuture, Registry, META_GROUP, NODE_GROUP};
use crate::meta::state_machine::MetaStateMachine;
use crate::meta::{MetaConfig, MetaEntry, MetaOp, MetaRaft};
use crate::raft_net::{forward, GroupNetworkFactory, RaftService};
use crate::transport::{serve, Transport};
use crate::NodeId;
use bytes::Bytes;
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, ServerState};
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tracing::{info, warn};
use warren_core::error::code;
use warren_core::meta::{MetadataReplicator, ReplicateFuture, StatusFuture};
use warren_core::{Broker, BrokerError};

/// How long a metadata change may wait for a leader and a majority before the
/// client is refused.
pub const PROPOSE_TIMEOUT: Duration = Duration::from_secs(4);
const STATUS_RPC: u8 = 1;
/// A membership change, forwarded to the leader: JSON `(name, Option<addr>)`.
const MEMBER_RPC: u8 = 2;
/// The leader's read index (JSON `Option<u64>`), after confirming it still
/// leads: what a follower must have applied to be up to date.
const READ_INDEX_RPC: u8 = 3;
const PROBE_TIMEOUT: Duration = Duration::from_millis(700);
/// How long a read barrier ([`Cluster::sync`]) may wait for a leader and
/// its answer before the change is refused, as [`PROPOSE_TIMEOUT`].
pub const SYNC_TIMEOUT: Duration = PROPOSE_TIMEOUT;

/// What a node says about itself (the node group's status RPC).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NodeInfo {
    pub name: String,
    pub id: NodeId,
    pub addr: String,
    pub state: String,
    pub leader: Option<NodeId>,
    pub term: u64,
    pub last_applied: Option<u64>,
    pub members: Vec<NodeId>,
    pub uptime_ms: u64,
}

/// One node as `cluster-status` and `/api/nodes` show it.
#[derive(Debug, Clone, Serialize)]
pub struct NodeStatus {
    pub name: String,
    pub running: bool,
    /// RabbitMQ's node type; every Warren node keeps its metadata on disk.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub cluster_addr: String,
    /// leader, follower, candidate, learner ("" when not running).
    pub raft_state: String,
    pub uptime: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub cluster_name: String,
    pub nodes: Vec<NodeStatus>,
    pub metadata_leader: Option<String>,
    pub metadata_term: u64,
}

pub struct Cluster {
    pub name: String,
    pub id: NodeId,
    pub addr: String,
    /// Known nodes: id → (name, address); seeds and whoever answered a probe.
    known: RwLock<BTreeMap<NodeId, (String, String)>>,
    pub raft: MetaRaft,
    pub transport: Arc<Transport>,
    pub registry: Arc<Registry>,
    pub state_machine: MetaStateMachine,
    /// Cross-node classic queues (see [`crate::classic`]).
    pub classic: Arc<Classic>,
    started: Instant,
    pub broker: Arc<Broker>,
    /// Quorum queues: the shared WAL, this node's group members.
    pub quorum: crate::quorum::Quorum,
    /// When each peer last answered a liveness probe.
    pub(crate) seen: RwLock<std::collections::HashMap<NodeId, Instant>>,
    /// Names of nodes added after start (`join`), learned from probes.
    names: crate::names::NodeNames,
    /// Peers whose link just closed, being looked at by [`crate::failover`].
    gone: parking_lot::Mutex<std::collections::HashSet<NodeId>>,
}

/// What a minority node answers to a metadata change. RabbitMQ 3.10's
/// metadata store (Mnesia) under `pause_minority` stops the minority node's
/// listeners altogether; its later Raft-based store (Khepri) refuses the
/// change once its command times out. Warren keeps serving reads and
/// messages on a minority and refuses the change after [`PROPOSE_TIMEOUT`]
/// with a connection error (541 INTERNAL_ERROR) naming the reason.
pub fn no_majority(node: &str, why: &str) -> BrokerError {
    BrokerError::new(
        code::INTERNAL_ERROR,
        format!(
            "metadata change refused: node {node} cannot reach a majority of the cluster ({why})"
        ),
    )
}

struct NodeService {
    cluster: std::sync::Weak<Cluster>,
}

impl GroupHandler for NodeService {
    fn handle(&self, rpc: u8, _payload: Bytes) -> HandlerFuture {
        let c = self.cluster.upgrade();
        Box::pin(async move {
            let c = c.ok_or("node shutting down")?;
            match rpc {
                STATUS_RPC => serde_json::to_vec(&c.info())
                    .map(Bytes::from)
                    .map_err(|e| e.to_string()),
                MEMBER_RPC => {
                    let (name, addr): (String, Option<String>) =
                        serde_json::from_slice(&_payload).map_err(|e| e.to_string())?;
                    c.change_member_here(&name, addr)
                        .await
                        .map(|()| Bytes::new())
                        .map_err(|e| e.text)
                }
                READ_INDEX_RPC => {
                    let read = tokio::time::timeout(SYNC_TIMEOUT, c.raft.ensure_linearizable())
                        .await
                        .map_err(|_| "no majority confirmed the leadership in time".to_string())?
                        .map_err(|e| e.to_string())?;
                    serde_json::to_vec(&read.map(|l| l.index))
                        .map(Bytes::from)
                        .map_err(|e| e.to_string())
                }
                other => Err(format!("unknown node rpc {other}")),
            }
        })
    }
}

impl Cluster {
    /// Start this node's cluster side: bind the cluster port, open the
    /// metadata group, and form the cluster if this node is the one to.
    pub async fn start(cfg: ClusterConfig, broker: Arc<Broker>) -> std::io::Result<Arc<Cluster>> {
        let members = cfg.members().map_err(std::io::Error::other)?;
        let id = crate::config::node_id(&cfg.node_name);
        let listener = TcpListener::bind(&cfg.bind).await?;
        let dir = cfg.data_dir.join("cluster");
        std::fs::create_dir_all(&dir)?;
        let sm = MetaStateMachine::open(&dir, broker.clone())?;
        let quorum = crate::quorum::Quorum::open(&dir)?;
        let config = Config {
            cluster_name: "warren".into(),
            heartbeat_interval: crate::failover::HEARTBEAT_MS,
            election_timeout_min: crate::failover::ELECTION_MIN_MS,
            election_timeout_max: crate::failover::ELECTION_MAX_MS,
            snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_logs()),
            max_in_snapshot_log_to_keep: snapshot_logs(),
            ..Default::default()
        };
        let config = Arc::new(config.validate().map_err(std::io::Error::other)?);
        let auth = crate::auth::LinkAuth::new(&cfg.node_name, &cfg.cookie);
        let transport = Transport::new(auth.clone(), cfg.tls.clone());
        let registry = Arc::new(Registry::default());
        let net = GroupNetworkFactory::<MetaConfig>::new(transport.clone(), META_GROUP);
        let raft = if legacy_meta_log() {
            let log = crate::meta::log_store::FileLogStore::open(&dir)?;
            MetaRaft::new(id, config, net, log, sm.clone()).await
        } else {
            // The metadata log is group 0 of the shared WAL (one fsync per
            // batch with the quorum queues); a log an older version kept in
            // its own file moves there first.
            crate::meta::migrate::from_file_log(&dir, &quorum.wal).await?;
            let log = quorum.wal.group::<MetaConfig>(META_GROUP);
            MetaRaft::new(id, config, net, log, sm.clone()).await
        }
        .map_err(std::io::Error::other)?;
        registry.register(
            META_GROUP,
            Arc::new(RaftService::<MetaConfig>::new(raft.clone())),
        );
        let cluster = Arc::new(Cluster {
            name: cfg.node_name.clone(),
            id,
            addr: cfg.advertise.clone(),
            known: RwLock::new(members),
            raft,
            transport,
            registry: registry.clone(),
            state_machine: sm,
            classic: Classic::new(
                cfg.node_name.clone(),
                broker.clone(),
                Transport::new(auth.clone(), cfg.tls.clone()),
            ),
            started: Instant::now(),
            broker,
            quorum,
            seen: RwLock::new(std::collections::HashMap::new()),
            names: crate::names::NodeNames::open(&dir),
            gone: Default::default(),
        });
        // Quorum queues follow the metadata: started when a declare is
        // applied, stopped when a delete is; restored ones start now.
        // Classic queues homed elsewhere get their backend when their
        // declare is applied (restored ones below).
        let weak = Arc::downgrade(&cluster);
        cluster
            .state_machine
            .set_on_applied(Arc::new(move |op: &MetaOp| {
                if let Some(c) = weak.upgrade() {
                    c.quorum_applied(op);
                    if let MetaOp::DeclareQueue { vhost, name, .. } = op {
                        if let Some(q) =
                            c.broker.vhost(vhost).and_then(|v| v.queue(name.as_bytes()))
                        {
                            c.learn_home(&q);
                            adopt(&c.classic, vhost, &q);
                        }
                    }
                }
            }));
        cluster.restore_quorum_queues();
        cluster.serve_quorum_admin();
        tokio::spawn(liveness(Arc::downgrade(&cluster)));
        tokio::spawn(crate::failover::watch(Arc::downgrade(&cluster)));
        registry.register(
            CLASSIC_GROUP,
            Arc::new(ClassicService(Arc::downgrade(&cluster.classic))),
        );
        let dir: Arc<dyn PeerDirectory> = cluster.clone();
        cluster.classic.start(Arc::downgrade(&dir));
        cluster.adopt_remote_queues(&cluster.broker);
        registry.register(
            NODE_GROUP,
            Arc::new(NodeService {
                cluster: Arc::downgrade(&cluster),
            }),
        );
        tokio::spawn(serve(listener, registry, auth, cfg.tls.clone()));
        info!(
            "cluster node {} (id {id:#x}) listening on {}{}",
            cfg.node_name,
            cfg.bind,
            if cfg.tls.is_some() { " (TLS)" } else { "" }
        );
        let lowest = cfg
            .seeds
            .iter()
            .map(|s| s.name.as_str())
            .all(|n| cfg.node_name.as_str() < n);
        if lowest {
            let c = cluster.clone();
            tokio::spawn(async move { c.form().await });
        }
        Ok(cluster)
    }

    /// Give every restored queue whose home is another node its
    /// [`RemoteClassic`] backend (before listeners serve clients).
    fn adopt_remote_queues(&self, broker: &Broker) {
        for v in broker.vhosts() {
            let vname = v.name.to_string_lossy().into_owned();
            for q in v.queues() {
                self.learn_home(&q);
                adopt(&self.classic, &vname, &q);
            }
        }
    }

    fn info(&self) -> NodeInfo {
        let m = self.raft.metrics().borrow().clone();
        NodeInfo {
            name: self.name.clone(),
            id: self.id,
            addr: self.addr.clone(),
            state: state_name(m.state).to_string(),
            leader: m.current_leader,
            term: m.current_term,
            last_applied: m.last_applied.map(|l| l.index),
            members: m.membership_config.membership().voter_ids().collect(),
            uptime_ms: self.started.elapsed().as_millis() as u64,
        }
    }

    pub(crate) async fn probe(&self, addr: &str) -> Option<NodeInfo> {
        let b = self
            .transport
            .call(addr, NODE_GROUP, STATUS_RPC, &[], PROBE_TIMEOUT)
            .await
            .ok()?;
        serde_json::from_slice(&b).ok()
    }

    /// Initialize the metadata group with every seed, unless some node
    /// already has a membership.
    async fn form(self: Arc<Self>) {
        if self.raft.is_initialized().await.unwrap_or(true) {
            return;
        }
        let members: BTreeMap<NodeId, BasicNode> = self
            .known
            .read()
            .iter()
            .map(|(id, (_, addr))| (*id, BasicNode::new(addr)))
            .collect();
        // Give the other seeds a moment to come up, so one that already
        // belongs to a cluster can say so.
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let mut answered = 0;
            for (id, node) in &members {
                if *id == self.id {
                    continue;
                }
                if let Some(info) = self.probe(&node.addr).await {
                    if !info.members.is_empty() {
                        info!(
                            "not forming a cluster: {} already belongs to one",
                            info.name
                        );
                        return;
                    }
                    answered += 1;
                }
            }
            if answered + 1 == members.len() || Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        match self.raft.initialize(members).await {
            Ok(()) => info!("formed the cluster's metadata group"),
            Err(e) => warn!("forming the cluster: {e}"),
        }
    }

    pub(crate) fn addr_of(&self, id: NodeId) -> Option<String> {
        let m = self.raft.metrics().borrow().clone();
        if let Some(n) = m.membership_config.membership().get_node(&id) {
            return Some(n.addr.clone());
        }
        self.known.read().get(&id).map(|(_, a)| a.clone())
    }

    /// The node at cluster address `addr` (a member's or a known one's).
    pub(crate) fn id_at(&self, addr: &str) -> Option<NodeId> {
        let m = self.raft.metrics().borrow().clone();
        if let Some((id, _)) = m
            .membership_config
            .membership()
            .nodes()
            .find(|(_, n)| n.addr == addr)
        {
            return Some(*id);
        }
        self.known
            .read()
            .iter()
            .find(|(_, (_, a))| a == addr)
            .map(|(id, _)| *id)
    }

    /// Start looking at a peer whose link closed; false if already looking.
    pub(crate) fn mark_gone(&self, id: NodeId) -> bool {
        self.gone.lock().insert(id)
    }

    pub(crate) fn clear_gone(&self, id: NodeId) {
        self.gone.lock().remove(&id);
    }

    pub(crate) fn name_of(&self, id: NodeId) -> String {
        self.known
            .read()
            .get(&id)
            .map(|(n, _)| n.clone())
            .or_else(|| self.names.get(id))
            .unwrap_or_else(|| format!("{id:#x}"))
    }

    /// A queue's home is a node name: remember it, so a node added by `join`
    /// is pinged by name (and found down) as soon as a queue lives there,
    /// not only after the next liveness probe.
    fn learn_home(&self, q: &warren_core::Queue) {
        if let Some(h) = q.home() {
            self.names.learn(crate::config::node_id(h), h);
        }
    }

    /// A member answered a probe: remember its name (see [`crate::names`]).
    fn learn(&self, id: NodeId, info: &NodeInfo) {
        if info.id == id {
            self.names.learn(id, &info.name);
        }
    }

    /// Commit `op` on a majority and apply it here; see the module comment.
    pub async fn propose(&self, mut op: MetaOp) -> Result<(), BrokerError> {
        self.pick_quorum_spec(&mut op);
        let deadline = Instant::now() + PROPOSE_TIMEOUT;
        let mut why = "no leader elected".to_string();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_majority(&self.name, &why));
            }
            let leader = self.raft.current_leader().await;
            let result = match leader {
                None => {
                    tokio::time::sleep(Duration::from_millis(100).min(left)).await;
                    continue;
                }
                Some(l) if l == self.id => {
                    // A leader cut off from the majority does not know it
                    // yet: confirm the leadership first (one heartbeat round),
                    // so a minority does not append a change it will refuse
                    // (it could otherwise commit later, once the others are
                    // back, though its client was told no).
                    let confirm = left.min(Duration::from_millis(1500));
                    match tokio::time::timeout(confirm, self.raft.ensure_linearizable()).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(e)) => {
                            why = e.to_string();
                            tokio::time::sleep(Duration::from_millis(100).min(left)).await;
                            continue;
                        }
                        Err(_) => {
                            why = "no majority acknowledged this node's leadership".into();
                            continue;
                        }
                    }
                    let left = deadline.saturating_duration_since(Instant::now());
                    match tokio::time::timeout(left, self.raft.client_write(MetaEntry(op.clone())))
                        .await
                    {
                        Err(_) => {
                            why = "no majority acknowledged the change".into();
                            continue;
                        }
                        Ok(r) => r,
                    }
                }
                Some(l) => {
                    let Some(addr) = self.addr_of(l) else {
                        why = format!("leader {l:#x} has no known address");
                        tokio::time::sleep(Duration::from_millis(100).min(left)).await;
                        continue;
                    };
                    match forward::<MetaConfig>(
                        &self.transport,
                        &addr,
                        META_GROUP,
                        &MetaEntry(op.clone()),
                        left,
                    )
                    .await
                    {
                        Ok(r) => r,
                        Err(e) => {
                            why = format!("leader {} unreachable: {e}", self.name_of(l));
                            tokio::time::sleep(Duration::from_millis(100).min(left)).await;
                            continue;
                        }
                    }
                }
            };
            match result {
                Ok(resp) => {
                    // Applied on the leader; wait for this node's own apply.
                    let left = deadline.saturating_duration_since(Instant::now());
                    let waited = self
                        .raft
                        .wait(Some(left.max(Duration::from_millis(10))))
                        .applied_index_at_least(Some(resp.log_id.index), "metadata change")
                        .await;
                    if waited.is_err() {
                        return Err(no_majority(
                            &self.name,
                            "committed, but not yet applied on this node",
                        ));
                    }
                    return match resp.data.error {
                        None => Ok(()),
                        Some((code, text)) => Err(BrokerError::new(code, text)),
                    };
                }
                Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                    // Leadership moved while we asked: ask again.
                    why = "leadership changed".into();
                    tokio::time::sleep(Duration::from_millis(50).min(left)).await;
                }
                Err(e) => {
                    why = e.to_string();
                    tokio::time::sleep(Duration::from_millis(100).min(left)).await;
                }
            }
        }
    }

    /// A read barrier: wait until this node applied everything the leader
    /// had committed when asked (the leader first confirms it still leads).
    /// See `MetadataReplicator::sync`.
    pub async fn sync(&self, timeout: Duration) -> Result<(), BrokerError> {
        let deadline = Instant::now() + timeout;
        let mut why = "no leader elected".to_string();
        // As in `propose`: until the deadline, a leader that is not known
        // yet (just restarted), unreachable or no longer leading (killed,
        // an election under way) is asked again.
        let index = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(no_majority(&self.name, &why));
            }
            let pause = Duration::from_millis(100).min(left);
            match self.raft.current_leader().await {
                None => {}
                Some(l) if l == self.id => {
                    // Waits for this node's own apply too.
                    match tokio::time::timeout(left, self.raft.ensure_linearizable()).await {
                        Ok(Ok(_)) => return Ok(()),
                        Ok(Err(e)) => why = e.to_string(),
                        Err(_) => why = "leadership not confirmed in time".into(),
                    }
                }
                Some(l) => match self.addr_of(l) {
                    None => why = "leader address unknown".into(),
                    Some(addr) => {
                        let answer = self
                            .transport
                            .call(&addr, NODE_GROUP, READ_INDEX_RPC, &[], left)
                            .await
                            .map_err(|e| e.to_string())
                            .and_then(|b| {
                                serde_json::from_slice::<Option<u64>>(&b).map_err(|e| e.to_string())
                            });
                        match answer {
                            Ok(index) => break index,
                            Err(e) => why = format!("leader {}: {e}", self.name_of(l)),
                        }
                    }
                },
            }
            tokio::time::sleep(pause).await;
        };
        let left = deadline.saturating_duration_since(Instant::now());
        self.raft
            .wait(Some(left.max(Duration::from_millis(10))))
            .applied_index_at_least(index, "read barrier")
            .await
            .map(|_| ())
            .map_err(|_| no_majority(&self.name, "did not catch up with the leader in time"))
    }

    /// Add (`addr` Some) or remove a voter; on a follower, forwarded to the
    /// leader.
    pub async fn change_member(&self, name: &str, addr: Option<String>) -> Result<(), BrokerError> {
        let leader = self.raft.current_leader().await;
        match leader {
            Some(l) if l == self.id => self.change_member_here(name, addr).await,
            Some(l) => {
                let to = self
                    .addr_of(l)
                    .ok_or_else(|| no_majority(&self.name, "leader address unknown"))?;
                let body = serde_json::to_vec(&(name, addr))
                    .map_err(|e| BrokerError::new(code::INTERNAL_ERROR, e.to_string()))?;
                self.transport
                    .call(&to, NODE_GROUP, MEMBER_RPC, &body, Duration::from_secs(30))
                    .await
                    .map(|_| ())
                    .map_err(|e| match e {
                        crate::transport::CallError::Remote(t) => {
                            BrokerError::precondition_failed(t)
                        }
                        other => no_majority(&self.name, &other.to_string()),
                    })
            }
            None => Err(no_majority(&self.name, "no leader elected")),
        }
    }

    /// A forgotten node's classic queues go from the metadata, as RabbitMQ's
    /// `forget_cluster_node` deletes the node's non-replicated queues: their
    /// messages were only on that node, the other nodes could only answer
    /// "home node is down" for them, and the names become declarable again.
    /// Returns how many were deleted and the failures.
    async fn drop_queues_of(&self, node: &str) -> (usize, Vec<String>) {
        let mut failures = Vec::new();
        let mut dropped = 0;
        for (vhost, name) in self.state_machine.classic_queues_of(node) {
            let op = MetaOp::DeleteQueue {
                vhost: vhost.clone(),
                name: name.clone(),
            };
            match self.propose(op).await {
                Ok(()) => {
                    info!(%vhost, queue = %name, "deleted classic queue of forgotten node {node}");
                    dropped += 1;
                }
                Err(e) => failures.push(format!("'{name}' in vhost '{vhost}': {}", e.text)),
            }
        }
        (dropped, failures)
    }

    async fn change_member_here(
        &self,
        name: &str,
        addr: Option<String>,
    ) -> Result<(), BrokerError> {
        let id = crate::config::node_id(name);
        let m = self.raft.metrics().borrow().clone();
        let mut voters: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        let failed = |e: String| BrokerError::precondition_failed(e);
        match addr {
            Some(addr) => {
                self.names.learn(id, name);
                self.known
                    .write()
                    .insert(id, (name.to_string(), addr.clone()));
                self.raft
                    .add_learner(id, BasicNode::new(&addr), true)
                    .await
                    .map_err(|e| failed(e.to_string()))?;
                voters.insert(id);
            }
            None => {
                if id == self.id {
                    return Err(failed(format!(
                        "{name} is the leader: forget it from another node once it is stopped"
                    )));
                }
                if !voters.remove(&id) {
                    return Err(BrokerError::not_found(format!("no cluster node {name}")));
                }
            }
        }
        self.raft
            .change_membership(voters, false)
            .await
            .map(|_| ())
            .map_err(|e| failed(e.to_string()))
    }

    /// Every member's status, probing the others over the transport.
    pub async fn status(&self) -> ClusterStatus {
        let m = self.raft.metrics().borrow().clone();
        // The members; before the cluster formed, the seeds.
        let mut ids: BTreeSet<NodeId> = m.membership_config.membership().voter_ids().collect();
        if ids.is_empty() {
            ids.extend(self.known.read().keys().copied());
        }
        let mut nodes = Vec::new();
        for id in ids {
            let addr = self.addr_of(id).unwrap_or_default();
            let info = if id == self.id {
                Some(self.info())
            } else {
                self.probe(&addr).await
            };
            if let Some(i) = &info {
                self.learn(id, i);
                self.known
                    .write()
                    .entry(id)
                    .or_insert_with(|| (i.name.clone(), i.addr.clone()));
            }
            nodes.push(NodeStatus {
                name: info
                    .as_ref()
                    .map(|i| i.name.clone())
                    .unwrap_or_else(|| self.name_of(id)),
                running: info.is_some(),
                kind: "disc",
                cluster_addr: addr,
                raft_state: info.as_ref().map(|i| i.state.clone()).unwrap_or_default(),
                uptime: info.as_ref().map(|i| i.uptime_ms).unwrap_or(0),
            });
        }
        nodes.sort_by(|a, b| a.name.cmp(&b.name));
        ClusterStatus {
            cluster_name: "warren".into(),
            nodes,
            metadata_leader: m.current_leader.map(|l| self.name_of(l)),
            metadata_term: m.current_term,
        }
    }

    /// The replicator the broker core calls (see `warren_core::meta`).
    pub fn replicator(self: &Arc<Self>) -> Arc<dyn MetadataReplicator> {
        Arc::new(Replicator(self.clone()))
    }

    /// Stop the metadata group (at broker shutdown).
    pub async fn shutdown(&self) {
        self.stop_quorum().await;
        let _ = self.raft.shutdown().await;
    }
}

/// A classic queue whose recorded home is another node gets a
/// [`RemoteClassic`] backend (exclusive and local queues have no home and
/// stay as they are; quorum queues have their own backend).
fn adopt(classic: &Arc<Classic>, vhost: &str, q: &Arc<warren_core::Queue>) {
    match q.home() {
        Some(h)
            if h != classic.me
                && q.backend().is_none()
                && !q.is_stream()
                && !warren_core::queue::is_quorum(&q.options.arguments) =>
        {
            q.set_backend(RemoteClassic::new(classic, h, vhost, q.name.as_bytes()));
        }
        _ => {}
    }
}

impl PeerDirectory for Cluster {
    fn peer_addr(&self, name: &str) -> Option<String> {
        self.addr_of(crate::config::node_id(name))
    }

    fn peer_names(&self) -> Vec<String> {
        let m = self.raft.metrics().borrow().clone();
        let mut ids: BTreeSet<NodeId> = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect();
        if ids.is_empty() {
            ids.extend(self.known.read().keys().copied());
        }
        let known = self.known.read();
        ids.into_iter()
            .filter_map(|id| {
                known
                    .get(&id)
                    .map(|(n, _)| n.clone())
                    .or_else(|| self.names.get(id))
            })
            .collect()
    }
}

/// Probe every other member once a second, so quorum queues can tell which
/// members are online without a network call, and every node learns the
/// names of members added by `join` (the classic queues' ping set).
async fn liveness(cluster: std::sync::Weak<Cluster>) {
    loop {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let Some(c) = cluster.upgrade() else { return };
        let m = c.raft.metrics().borrow().clone();
        // Learners too: a node being joined is one until it caught up.
        let ids: Vec<NodeId> = m
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .filter(|id| *id != c.id)
            .collect();
        for id in ids {
            if let Some(addr) = c.addr_of(id) {
                if let Some(info) = c.probe(&addr).await {
                    c.learn(id, &info);
                    c.mark_seen(id);
                }
            }
        }
    }
}

/// Metadata entries between snapshots, and kept after one (a node further
/// behind gets the snapshot): 1000; `WARREN_CLUSTER_SNAPSHOT_LOGS` lowers it
/// so tests reach the snapshot path with a few dozen changes.
fn snapshot_logs() -> u64 {
    std::env::var("WARREN_CLUSTER_SNAPSHOT_LOGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1000)
}

/// `WARREN_CLUSTER_LEGACY_META_LOG=1`: keep the metadata log in its former
/// file (`meta-raft.log`) as older versions did. For tests only: they make a
/// data dir in the old format with it, then start without it to check the
/// migration onto the shared WAL.
fn legacy_meta_log() -> bool {
    std::env::var("WARREN_CLUSTER_LEGACY_META_LOG").is_ok_and(|v| v == "1")
}

fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Leader => "leader",
        ServerState::Follower => "follower",
        ServerState::Candidate => "candidate",
        ServerState::Learner => "learner",
        ServerState::Shutdown => "shutdown",
    }
}

struct Replicator(Arc<Cluster>);

impl MetadataReplicator for Replicator {
    fn replicate(&self, op: MetaOp) -> ReplicateFuture {
        let c = self.0.clone();
        Box::pin(async move { c.propose(op).await })
    }

    fn sync(&self) -> ReplicateFuture {
        let c = self.0.clone();
        Box::pin(async move { c.sync(SYNC_TIMEOUT).await })
    }

    fn node_name(&self) -> String {
        self.0.name.clone()
    }

    fn change_member(&self, node: String, addr: Option<String>) -> ReplicateFuture {
        let c = self.0.clone();
        Box::pin(async move {
            if addr.is_some() {
                return c.change_member(&node, addr).await;
            }
            // A forgotten node leaves every quorum queue group too. Run
            // again after a failed shrink, forget finds the node gone from
            // the metadata group and finishes the shrink.
            let forgot = c.change_member(&node, None).await;
            if forgot.as_ref().is_err_and(|e| e.code != code::NOT_FOUND) {
                return forgot;
            }
            let (shrunk, mut failures) = c.shrink_node(&node).await;
            let (dropped, lost) = c.drop_queues_of(&node).await;
            failures.extend(lost);
            if !failures.is_empty() {
                return Err(BrokerError::precondition_failed(format!(
                    "{node} forgotten, but still a member of quorum queue or home of classic queue {}",
                    failures.join("; ")
                )));
            }
            if shrunk > 0 || dropped > 0 {
                return Ok(());
            }
            forgot
        })
    }

    fn queue_member(
        &self,
        vhost: String,
        queue: String,
        node: String,
        add: bool,
    ) -> ReplicateFuture {
        let c = self.0.clone();
        Box::pin(async move { c.queue_member(&vhost, &queue, &node, add).await })
    }

    fn status(&self) -> StatusFuture {
        let c = self.0.clone();
        Box::pin(async move { serde_json::to_value(c.status().await).unwrap_or_default() })
    }
}
