//! Three openraft members of one quorum queue in one process, each with its
//! own SharedWal and snapshot file in a temp dir, connected by an in-memory
//! network: confirms survive the leader being killed, unacked messages are
//! redelivered, publisher resends are not duplicated, the delivery limit
//! dead-letters, and a restarted member recovers from its WAL.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft};
use parking_lot::Mutex;
use warren_quorum::{
    Command, DeadLetterReason, Effect, Message, Outcome, PublisherSeq, QueueConfig, QueueState,
    QuorumConfig, QuorumStateMachine, Reply,
};
use warren_raftlog::{SharedWal, WalOptions};

type R = Raft<QuorumConfig>;

/// The queue's Raft group id in each node's shared WAL.
const GROUP: u64 = 42;

#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<u64, R>>>,
}

impl Router {
    fn get(&self, id: u64) -> Result<R, Unreachable> {
        self.nodes.lock().get(&id).cloned().ok_or_else(|| {
            Unreachable::new(&io::Error::new(io::ErrorKind::NotConnected, "node down"))
        })
    }
}

struct Net {
    router: Router,
    target: u64,
}

impl RaftNetworkFactory<QuorumConfig> for Router {
    type Network = Net;
    async fn new_client(&mut self, target: u64, _node: &BasicNode) -> Net {
        Net {
            router: self.clone(),
            target,
        }
    }
}

impl RaftNetwork<QuorumConfig> for Net {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<QuorumConfig>,
        _o: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self
            .router
            .get(self.target)
            .map_err(RPCError::Unreachable)?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<QuorumConfig>,
        _o: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let raft = self
            .router
            .get(self.target)
            .map_err(RPCError::Unreachable)?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _o: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let raft = self
            .router
            .get(self.target)
            .map_err(RPCError::Unreachable)?;
        raft.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
    }
}

struct Member {
    raft: R,
    sm: QuorumStateMachine,
    wal: Arc<SharedWal>,
}

fn raft_config(snapshot_every: u64) -> Arc<Config> {
    let c = Config {
        // Roomy for a loaded 2-core CI machine running debug builds: a
        // starved heartbeat must not depose the leader mid-test.
        heartbeat_interval: 100,
        election_timeout_min: 750,
        election_timeout_max: 1500,
        // Snapshot often so the test crosses snapshot + purge + restart.
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(snapshot_every),
        max_in_snapshot_log_to_keep: 0,
        ..Config::default()
    };
    Arc::new(c.validate().expect("raft config"))
}

async fn start(router: &Router, id: u64, dir: &Path, cfg: QueueConfig) -> Member {
    start_with(router, id, dir, cfg, 300).await
}

async fn start_with(
    router: &Router,
    id: u64,
    dir: &Path,
    cfg: QueueConfig,
    snapshot_every: u64,
) -> Member {
    let wal = SharedWal::open(dir.join("wal"), WalOptions::default()).expect("wal");
    let log = wal.group::<QuorumConfig>(GROUP);
    let sm = QuorumStateMachine::open(dir.join("q42.snapshot"), QueueState::new(cfg)).expect("sm");
    let raft = Raft::new(
        id,
        raft_config(snapshot_every),
        router.clone(),
        log,
        sm.clone(),
    )
    .await
    .expect("raft");
    router.nodes.lock().insert(id, raft.clone());
    Member { raft, sm, wal }
}

async fn leader_of(r: &R) -> u64 {
    let m = r
        .wait(Some(Duration::from_secs(10)))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .expect("leader elected");
    m.current_leader.expect("leader")
}

async fn write(r: &R, cmd: Command) -> Outcome {
    r.client_write(cmd).await.expect("client_write").data
}

/// 32 publishers: publisher `seq % 32` sends its seqs one at a time, in
/// order (a publisher's enqueues must be proposed in seq order).
/// A client that follows the leader: on ForwardToLeader it resends to the
/// new leader (an Enqueue resend is deduplicated by its publisher seq).
async fn write_retrying(router: &Router, cmd: Command) -> Outcome {
    let mut target = router.nodes.lock().keys().next().copied().unwrap_or(1);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let Ok(r) = router.get(target) else {
            target = target % 3 + 1;
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        match r.client_write(cmd.clone()).await {
            Ok(resp) => return resp.data,
            Err(e) => {
                assert!(Instant::now() < deadline, "no leader for 60 s: {e}");
                match e.forward_to_leader() {
                    Some(f) if f.leader_id.is_some() => target = f.leader_id.unwrap_or(target),
                    _ => {
                        target = target % 3 + 1;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }
}

fn publish(seq: u64) -> Command {
    Command::Enqueue {
        publisher: Some(PublisherSeq {
            publisher: seq % 32,
            seq,
        }),
        message: Message {
            header: Bytes::from_static(b"h"),
            body: Bytes::from(seq.to_be_bytes().to_vec()),
            expires_at: warren_quorum::NEVER,
        },
    }
}

fn seq_of(m: &Message) -> u64 {
    u64::from_be_bytes(m.body[..8].try_into().expect("8 bytes"))
}

fn delivered(o: &Outcome) -> Vec<(u64, u64, bool)> {
    o.effects
        .iter()
        .filter_map(|e| match e {
            Effect::Deliver {
                delivery_id,
                message,
                redelivered,
                ..
            } => Some((*delivery_id, seq_of(message), *redelivered)),
            _ => None,
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_messages_survive_leader_loss() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dirs: Vec<PathBuf> = (1..=3).map(|i| tmp.path().join(format!("n{i}"))).collect();
    let router = Router::default();
    let cfg = QueueConfig::default();
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        members.insert(
            id,
            start(&router, id, &dirs[id as usize - 1], cfg.clone()).await,
        );
    }
    let nodes: BTreeMap<u64, BasicNode> = (1..=3)
        .map(|i| (i, BasicNode::new(format!("n{i}"))))
        .collect();
    members[&1]
        .raft
        .initialize(nodes)
        .await
        .expect("initialize");
    let leader = leader_of(&members[&1].raft).await;

    // 500 confirmed publishes, 32 in flight at a time (batched by openraft
    // and by the shared WAL's group commit).
    let total = 500u64;
    let mut confirmed = BTreeSet::new();
    for chunk in (1..=total).collect::<Vec<_>>().chunks(32) {
        let mut tasks = Vec::new();
        for &seq in chunk {
            let r = members[&leader].raft.clone();
            tasks.push(tokio::spawn(
                async move { (seq, write(&r, publish(seq)).await) },
            ));
        }
        for t in tasks {
            let (seq, o) = t.await.expect("task");
            assert!(matches!(o.reply, Reply::Enqueued { .. }), "{o:?}");
            confirmed.insert(seq);
        }
    }

    // A consumer on another node takes 10 and acks 5 of them.
    let other = (1..=3).find(|n| *n != leader).expect("other");
    let o = write(
        &members[&leader].raft,
        Command::Attach {
            consumer: 7,
            node: other,
            prefetch: 10,
            priority: 0,
        },
    )
    .await;
    let first = delivered(&o);
    assert_eq!(first.len(), 10);
    let acked: Vec<u64> = first.iter().take(5).map(|d| d.0).collect();
    let acked_seqs: BTreeSet<u64> = first.iter().take(5).map(|d| d.1).collect();
    // The freed prefetch slots take 5 more.
    let refill = write(
        &members[&leader].raft,
        Command::Settle {
            consumer: 7,
            ids: acked,
        },
    )
    .await;
    let refill = delivered(&refill);
    assert_eq!(refill.len(), 5);

    // Kill the leader (no shutdown handshake with the others).
    let t0 = Instant::now();
    let dead = members.remove(&leader).expect("leader member");
    router.nodes.lock().remove(&leader);
    dead.raft.shutdown().await.expect("shutdown");
    drop(dead);
    let survivor = members.keys().next().copied().expect("survivor");
    let new_leader = {
        let m = members[&survivor]
            .raft
            .wait(Some(Duration::from_secs(10)))
            .metrics(
                |m| m.current_leader.is_some_and(|l| l != leader),
                "a new leader",
            )
            .await
            .expect("new leader");
        m.current_leader.expect("leader")
    };
    let failover = t0.elapsed();
    eprintln!("failover: new leader n{new_leader} after {failover:?}");
    assert!(failover < Duration::from_secs(5));
    let lr = members[&new_leader].raft.clone();

    // The publisher resends everything after the leader change: nothing
    // is enqueued twice.
    for seq in [1, 250, total] {
        assert_eq!(write(&lr, publish(seq)).await.reply, Reply::Duplicate);
    }

    // The consumer's channel died with the old leader's connection: its 10
    // unacked come back, marked redelivered, to a new consumer, along with
    // every other confirmed message.
    write(&lr, Command::ConsumerDown { consumer: 7 }).await;
    let o = write(
        &lr,
        Command::Attach {
            consumer: 8,
            node: new_leader,
            prefetch: 0,
            priority: 0,
        },
    )
    .await;
    let got = delivered(&o);
    let redelivered: BTreeSet<u64> = got.iter().filter(|d| d.2).map(|d| d.1).collect();
    let want_redelivered: BTreeSet<u64> =
        first.iter().skip(5).chain(&refill).map(|d| d.1).collect();
    assert_eq!(redelivered, want_redelivered);
    let mut all: BTreeSet<u64> = got.iter().map(|d| d.1).collect();
    assert_eq!(all.len(), got.len(), "no duplicates");
    all.extend(acked_seqs);
    assert_eq!(all, confirmed, "every confirmed message delivered");
    let ids: Vec<u64> = got.iter().map(|d| d.0).collect();
    write(&lr, Command::Settle { consumer: 8, ids }).await;

    // Poison message: delivery limit 1 → the second return dead-letters it.
    write(
        &lr,
        Command::SetConfig(QueueConfig {
            delivery_limit: Some(1),
            ..QueueConfig::default()
        }),
    )
    .await;
    let o = write(&lr, publish(total + 1)).await;
    let d = delivered(&o);
    assert_eq!(d.len(), 1);
    let o = write(
        &lr,
        Command::Return {
            consumer: 8,
            ids: vec![d[0].0],
        },
    )
    .await;
    let d = delivered(&o);
    assert_eq!(d.len(), 1);
    assert!(d[0].2, "redelivered");
    let o = write(
        &lr,
        Command::Return {
            consumer: 8,
            ids: vec![d[0].0],
        },
    )
    .await;
    assert!(matches!(
        o.effects.as_slice(),
        [Effect::DeadLetter {
            reason: DeadLetterReason::DeliveryLimit,
            delivery_count: 2,
            ..
        }]
    ));

    // The killed member restarts from its WAL (and snapshot) and catches up.
    let back = start(&router, leader, &dirs[leader as usize - 1], cfg.clone()).await;
    let target = lr.metrics().borrow().last_applied.map(|l| l.index);
    back.raft
        .wait(Some(Duration::from_secs(10)))
        .applied_index_at_least(target, "restarted member caught up")
        .await
        .expect("caught up");
    let (ready, unacked) = back.sm.with_state(|q| (q.ready_count(), q.unacked_count()));
    assert_eq!((ready, unacked), (0, 0));
    assert!(back.wal.stats().fsyncs > 0);
    let snaps: u64 = members.values().map(|m| m.sm.snapshots_built()).sum();
    eprintln!("snapshots built by survivors: {snaps}");
    for m in members.values() {
        m.raft.shutdown().await.expect("shutdown");
    }
    back.raft.shutdown().await.expect("shutdown");
}

/// Commit rate of one quorum queue, 3 in-process members, 1 KiB messages:
/// `cargo test --release -p warren-quorum --test cluster -- --ignored --nocapture`.
/// Numbers go to docs/BENCHMARKS.md, never asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_commit_rate() {
    let publishers: u64 = std::env::var("BENCH_PUBLISHERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64);
    let per: u64 = std::env::var("BENCH_PER_PUBLISHER")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(100);
    let tmp = tempfile::tempdir().expect("tmp");
    let router = Router::default();
    let mut members = BTreeMap::new();
    for id in 1..=3u64 {
        let dir = tmp.path().join(format!("n{id}"));
        // Snapshots every 5,000 entries: a snapshot carries the queue's
        // messages (see docs/CLUSTERING-STORAGE.md).
        members.insert(
            id,
            start_with(&router, id, &dir, QueueConfig::default(), 5000).await,
        );
    }
    let nodes: BTreeMap<u64, BasicNode> = (1..=3).map(|i| (i, BasicNode::new(""))).collect();
    members[&1].raft.initialize(nodes).await.expect("init");
    let leader = leader_of(&members[&1].raft).await;
    let _ = leader;
    let body = Bytes::from(vec![b'x'; 1024]);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..publishers {
        let router = router.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per as usize);
            for seq in 1..=per {
                let t = Instant::now();
                let cmd = Command::Enqueue {
                    publisher: Some(PublisherSeq { publisher: p, seq }),
                    message: Message {
                        header: Bytes::new(),
                        body: body.clone(),
                        expires_at: warren_quorum::NEVER,
                    },
                };
                let o = write_retrying(&router, cmd).await;
                assert!(matches!(o.reply, Reply::Enqueued { .. } | Reply::Duplicate));
                lat.push(t.elapsed());
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.expect("task"));
    }
    let secs = t0.elapsed().as_secs_f64();
    lat.sort();
    let n = publishers * per;
    let fsyncs: u64 = members.values().map(|m| m.wal.stats().fsyncs).sum();
    let sync_max = members.values().map(|m| m.wal.stats().sync_max_us).max();
    let sync_us: u64 = members.values().map(|m| m.wal.stats().sync_total_us).sum();
    eprintln!(
        "fsync: mean {} us, max {sync_max:?} us; leader changes seen: {}",
        sync_us / fsyncs.max(1),
        members
            .values()
            .map(|m| m.raft.metrics().borrow().current_term)
            .max()
            .unwrap_or(0)
            - 1
    );
    eprintln!(
        "quorum commit: 3 members, {publishers} publishers x {per} x 1 KiB, 1 in flight each: {n} msgs in {secs:.2} s = {:.0} msg/s; confirm latency p50 {:?} p99 {:?}; fsyncs (all members) {fsyncs} = {:.1} msgs per member-fsync",
        n as f64 / secs,
        lat[lat.len() / 2],
        lat[lat.len() * 99 / 100],
        (n * 3) as f64 / fsyncs.max(1) as f64,
    );
    for m in members.values() {
        m.raft.shutdown().await.expect("shutdown");
    }
}
