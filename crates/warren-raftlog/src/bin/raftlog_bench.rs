//! Benchmark of the shared WAL (numbers go to docs/BENCHMARKS.md, "Raft log").
//!
//! `cargo run --release -p warren-raftlog --bin raftlog-bench -- [groups] [entries-per-group] [payload-bytes] [dir]`
//!
//! 1. `groups` tasks append concurrently, each one entry at a time waiting
//!    for its fsync (a quorum queue with one write in flight): entries/s and
//!    fsyncs/s show how group commit shares syncs across groups.
//! 2. Then every group is left idle the way an idle quorum queue is (vote,
//!    commit point, log purged after a snapshot) and the process RSS is
//!    compared with before the groups existed: RSS per idle group.

use std::io::Cursor;
use std::sync::Arc;
use std::time::Instant;

use openraft::storage::{RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use warren_raftlog::{GroupLog, SharedWal, WalOptions};

openraft::declare_raft_types!(pub Tc: D = bytes::Bytes, R = ());

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// `raftlog-bench idle GROUPS DIR`: opens the WAL in DIR and reports the RSS
/// it and GROUPS open group handles add.
fn idle(groups: u64, dir: &std::path::Path) -> std::io::Result<()> {
    let before = rss_kib();
    let wal = SharedWal::open(dir, WalOptions::default())?;
    let logs: Vec<GroupLog<Tc>> = (0..groups).map(|g| wal.group(g)).collect();
    let after = rss_kib();
    println!(
        "idle: {groups} groups after purge + reopen in a fresh process: index heap {} B/group; RSS {before} KiB -> {after} KiB = {:.2} KiB/group; segments on disk {:?}",
        wal.index_heap_bytes() / groups.max(1) as usize,
        after.saturating_sub(before) as f64 / groups.max(1) as f64,
        wal.segments(),
    );
    drop(logs);
    Ok(())
}

fn main() -> std::io::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("idle") {
        let dir = std::path::PathBuf::from(std::env::args().nth(3).unwrap_or_default());
        return idle(arg(2, 1000), &dir);
    }
    let groups = arg(1, 1000);
    let per = arg(2, 100);
    let size = arg(3, 1024) as usize;
    let dir = std::env::args()
        .nth(4)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            std::env::temp_dir().join(format!("raftlog-bench-{}", std::process::id()))
        });
    let _ = std::fs::remove_dir_all(&dir);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let wal = SharedWal::open(&dir, WalOptions::default())?;
        let payload = bytes::Bytes::from(vec![7u8; size]);
        let lid = |i: u64| LogId::new(CommittedLeaderId::new(1, 1), i);

        let t0 = Instant::now();
        let mut tasks = Vec::new();
        for g in 0..groups {
            let wal: Arc<SharedWal> = wal.clone();
            let payload = payload.clone();
            tasks.push(tokio::spawn(async move {
                let mut log: GroupLog<Tc> = wal.group(g);
                log.save_vote(&Vote::new(1, 1)).await.expect("vote");
                for i in 1..=per {
                    let e = Entry::<Tc> {
                        log_id: lid(i),
                        payload: EntryPayload::Normal(payload.clone()),
                    };
                    log.blocking_append([e]).await.expect("append");
                }
            }));
        }
        for t in tasks {
            t.await.expect("task");
        }
        let secs = t0.elapsed().as_secs_f64();
        let st = wal.stats();
        let n = groups * per;
        println!(
            "append: {groups} groups x {per} entries of {size} B, 1 in flight per group: {n} entries in {secs:.2} s = {:.0} entries/s, {} fsyncs = {:.0} fsyncs/s, {:.1} entries per fsync, {:.1} MB/s",
            n as f64 / secs,
            st.fsyncs,
            st.fsyncs as f64 / secs,
            n as f64 / st.fsyncs.max(1) as f64,
            st.bytes as f64 / secs / 1e6,
        );

        // Idle: commit, snapshot (purge), nothing cached.
        for g in 0..groups {
            let mut log: GroupLog<Tc> = wal.group(g);
            log.save_committed(Some(lid(per))).await.expect("commit");
            log.purge(lid(per)).await.expect("purge");
        }
        wal.flush().await?;
        drop(wal);
        // Reopen in a fresh process: the state an idle node has after a
        // restart, without this process's freed buffers hiding the growth.
        let out = std::process::Command::new(std::env::current_exe()?)
            .arg("idle")
            .arg(groups.to_string())
            .arg(&dir)
            .output()?;
        print!("{}", String::from_utf8_lossy(&out.stdout));
        let _ = std::fs::remove_dir_all(&dir);
        Ok(())
    })
}
