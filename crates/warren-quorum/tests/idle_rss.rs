//! RSS per idle quorum-queue member: `groups` queues, each a 3-member
//! openraft group over the three in-process "nodes" (one SharedWal each),
//! elected and then idle. Ignored (a benchmark, numbers go to
//! docs/BENCHMARKS.md):
//! `BENCH_GROUPS=1000 cargo test --release -p warren-quorum --test idle_rss -- --ignored --nocapture`

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft};
use parking_lot::Mutex;
use warren_quorum::{QueueState, QuorumConfig, QuorumStateMachine};
use warren_raftlog::{SharedWal, WalOptions};

type R = Raft<QuorumConfig>;

/// (node, group) -> member.
#[derive(Clone, Default)]
struct Router(Arc<Mutex<BTreeMap<(u64, u64), R>>>);

struct Factory {
    router: Router,
    group: u64,
}

struct Net {
    router: Router,
    key: (u64, u64),
}

impl Net {
    fn get(&self) -> Result<R, Unreachable> {
        self.router
            .0
            .lock()
            .get(&self.key)
            .cloned()
            .ok_or_else(|| Unreachable::new(&io::Error::new(io::ErrorKind::NotConnected, "down")))
    }
}

impl RaftNetworkFactory<QuorumConfig> for Factory {
    type Network = Net;
    async fn new_client(&mut self, target: u64, _n: &BasicNode) -> Net {
        Net {
            router: self.router.clone(),
            key: (target, self.group),
        }
    }
}

impl RaftNetwork<QuorumConfig> for Net {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<QuorumConfig>,
        _o: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let r = self.get().map_err(RPCError::Unreachable)?;
        r.append_entries(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.key.0, e)))
    }
    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<QuorumConfig>,
        _o: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<u64>,
        RPCError<u64, BasicNode, RaftError<u64, InstallSnapshotError>>,
    > {
        let r = self.get().map_err(RPCError::Unreachable)?;
        r.install_snapshot(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.key.0, e)))
    }
    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        _o: RPCOption,
    ) -> Result<VoteResponse<u64>, RPCError<u64, BasicNode, RaftError<u64>>> {
        let r = self.get().map_err(RPCError::Unreachable)?;
        r.vote(rpc)
            .await
            .map_err(|e| RPCError::RemoteError(RemoteError::new(self.key.0, e)))
    }
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn bench_idle_rss_per_member() {
    let groups: u64 = std::env::var("BENCH_GROUPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(200);
    let tmp = tempfile::tempdir().expect("tmp");
    let wals: Vec<Arc<SharedWal>> = (1..=3)
        .map(|n| {
            SharedWal::open(tmp.path().join(format!("n{n}")), WalOptions::default()).expect("wal")
        })
        .collect();
    let config = Arc::new(
        Config {
            heartbeat_interval: 500,
            election_timeout_min: 3000,
            election_timeout_max: 6000,
            ..Config::default()
        }
        .validate()
        .expect("config"),
    );
    let router = Router::default();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = rss_kib();
    for g in 1..=groups {
        for n in 1..=3u64 {
            let log = wals[n as usize - 1].group::<QuorumConfig>(g);
            let sm = QuorumStateMachine::in_memory(QueueState::default());
            let raft = Raft::new(
                n,
                config.clone(),
                Factory {
                    router: router.clone(),
                    group: g,
                },
                log,
                sm,
            )
            .await
            .expect("raft");
            router.0.lock().insert((n, g), raft);
        }
        let first = router.0.lock().get(&(1, g)).cloned().expect("member");
        let nodes: BTreeMap<u64, BasicNode> = (1..=3).map(|i| (i, BasicNode::new(""))).collect();
        first.initialize(nodes).await.expect("init");
    }
    // Wait until every group has a leader, then let it settle.
    for g in 1..=groups {
        let r = router.0.lock().get(&(1, g)).cloned().expect("member");
        r.wait(Some(Duration::from_secs(60)))
            .metrics(|m| m.current_leader.is_some(), "leader")
            .await
            .expect("leader");
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = rss_kib();
    let members = groups * 3;
    eprintln!(
        "idle quorum queues: {groups} groups x 3 members in one process: RSS {before} KiB -> {after} KiB = {:.1} KiB per member ({:.1} KiB per queue per node); WAL index heap {} B per member",
        (after - before) as f64 / members as f64,
        (after - before) as f64 / members as f64,
        wals.iter().map(|w| w.index_heap_bytes()).sum::<usize>() / members as usize,
    );
    let all: Vec<R> = router.0.lock().values().cloned().collect();
    for r in all {
        let _ = r.shutdown().await;
    }
}
