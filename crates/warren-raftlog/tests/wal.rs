//! Behaviour of the shared WAL: recovery after a crash (torn tails),
//! truncate and re-append, purge and segment reclaim, many groups at once.

use std::fs::OpenOptions;
use std::io::Cursor;
use std::sync::Arc;

use openraft::storage::{RaftLogReader, RaftLogStorage, RaftLogStorageExt};
use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
use warren_raftlog::{GroupLog, SharedWal, WalOptions};

openraft::declare_raft_types!(pub Tc: D = String, R = String);

fn lid(term: u64, index: u64) -> LogId<u64> {
    LogId::new(CommittedLeaderId::new(term, 1), index)
}

fn ent(term: u64, index: u64, data: &str) -> Entry<Tc> {
    Entry {
        log_id: lid(term, index),
        payload: EntryPayload::Normal(data.to_string()),
    }
}

fn data(e: &Entry<Tc>) -> String {
    match &e.payload {
        EntryPayload::Normal(s) => s.clone(),
        _ => String::new(),
    }
}

async fn all(g: &mut GroupLog<Tc>) -> Vec<(u64, String)> {
    g.try_get_log_entries(..)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.log_id.index, data(e)))
        .collect()
}

fn small_segments() -> WalOptions {
    WalOptions {
        segment_size: 4096,
        ..WalOptions::default()
    }
}

#[tokio::test]
async fn survives_reopen_with_vote_and_entries() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = SharedWal::open(dir.path(), WalOptions::default()).unwrap();
        let mut g: GroupLog<Tc> = wal.group(1);
        g.save_vote(&Vote::new(3, 2)).await.unwrap();
        g.blocking_append((1..=5).map(|i| ent(1, i, &format!("m{i}"))))
            .await
            .unwrap();
        g.save_committed(Some(lid(1, 4))).await.unwrap();
        wal.flush().await.unwrap();
    }
    let wal = SharedWal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(wal.group_ids(), vec![1]);
    let mut g: GroupLog<Tc> = wal.group(1);
    assert_eq!(g.read_vote().await.unwrap(), Some(Vote::new(3, 2)));
    assert_eq!(g.read_committed().await.unwrap(), Some(lid(1, 4)));
    let st = g.get_log_state().await.unwrap();
    assert_eq!(st.last_log_id, Some(lid(1, 5)));
    assert_eq!(all(&mut g).await.len(), 5);
    assert_eq!(all(&mut g).await[2], (3, "m3".to_string()));
}

/// kill -9 in the middle of a write leaves a torn record at the tail: every
/// cut point keeps exactly the records before it, and the log takes new
/// appends after recovery.
#[tokio::test]
async fn torn_tail_is_cut_at_last_good_record() {
    let src = tempfile::tempdir().unwrap();
    {
        let wal = SharedWal::open(src.path(), WalOptions::default()).unwrap();
        let mut g: GroupLog<Tc> = wal.group(5);
        for i in 1..=4 {
            g.blocking_append([ent(1, i, &"x".repeat(40))])
                .await
                .unwrap();
        }
    }
    let seg = src.path().join("0000000001.wal");
    let full = std::fs::read(&seg).unwrap();
    // Each entry record is the same size; find where the last one starts.
    let rec = (full.len() - 8) / 4;
    for cut in [1usize, 5, 17, 30, rec - 1] {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0000000001.wal");
        std::fs::write(&p, &full[..full.len() - cut]).unwrap();
        let wal = SharedWal::open(dir.path(), WalOptions::default()).unwrap();
        let mut g: GroupLog<Tc> = wal.group(5);
        let got = all(&mut g).await;
        assert_eq!(got.len(), 3, "cut {cut}");
        g.blocking_append([ent(2, 4, "new")]).await.unwrap();
        drop(g);
        drop(wal);
        let wal = SharedWal::open(dir.path(), WalOptions::default()).unwrap();
        let mut g: GroupLog<Tc> = wal.group(5);
        let got = all(&mut g).await;
        assert_eq!(got.last(), Some(&(4, "new".to_string())), "cut {cut}");
    }
    // Garbage after the last record (a torn write of zeros) is cut too.
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = full.clone();
    bytes.extend_from_slice(&[0u8; 100]);
    std::fs::write(dir.path().join("0000000001.wal"), &bytes).unwrap();
    let wal = SharedWal::open(dir.path(), WalOptions::default()).unwrap();
    let mut g: GroupLog<Tc> = wal.group(5);
    assert_eq!(all(&mut g).await.len(), 4);
    drop(g);
    drop(wal);
    assert_eq!(
        std::fs::metadata(dir.path().join("0000000001.wal"))
            .unwrap()
            .len() as usize,
        full.len()
    );
}

#[tokio::test]
async fn corruption_in_an_older_segment_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = SharedWal::open(dir.path(), small_segments()).unwrap();
        let mut g: GroupLog<Tc> = wal.group(1);
        for i in 1..=100 {
            g.blocking_append([ent(1, i, &"y".repeat(100))])
                .await
                .unwrap();
        }
        assert!(wal.segments().len() > 2);
    }
    let p = dir.path().join("0000000001.wal");
    let f = OpenOptions::new().write(true).open(&p).unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"\xff\xff", 40).unwrap();
    let err = SharedWal::open(dir.path(), small_segments())
        .err()
        .expect("must fail");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
}

#[tokio::test]
async fn truncate_then_reappend() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = SharedWal::open(dir.path(), WalOptions::default()).unwrap();
        let mut g: GroupLog<Tc> = wal.group(2);
        g.blocking_append((1..=10).map(|i| ent(1, i, "old")))
            .await
            .unwrap();
        g.truncate(lid(1, 6)).await.unwrap();
        assert_eq!(all(&mut g).await.len(), 5);
        g.blocking_append((6..=8).map(|i| ent(2, i, "new")))
            .await
            .unwrap();
        let got = all(&mut g).await;
        assert_eq!(got.len(), 8);
        assert_eq!(got[5], (6, "new".to_string()));
        // Truncate without re-append must also survive the restart.
        g.truncate(lid(2, 8)).await.unwrap();
        wal.flush().await.unwrap();
    }
    let wal = SharedWal::open(dir.path(), WalOptions::default()).unwrap();
    let mut g: GroupLog<Tc> = wal.group(2);
    let got = all(&mut g).await;
    assert_eq!(got.len(), 7);
    assert_eq!(got[4], (5, "old".to_string()));
    assert_eq!(got[6], (7, "new".to_string()));
    assert_eq!(
        g.get_log_state().await.unwrap().last_log_id,
        Some(lid(2, 7))
    );
}

/// Purging all groups past a segment deletes it; the vote and purge point
/// survive in the newer segments' checkpoints.
#[tokio::test]
async fn purge_reclaims_segments_and_keeps_state() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = SharedWal::open(dir.path(), small_segments()).unwrap();
        let mut a: GroupLog<Tc> = wal.group(1);
        let mut b: GroupLog<Tc> = wal.group(2);
        a.save_vote(&Vote::new(7, 1)).await.unwrap();
        b.save_vote(&Vote::new(9, 3)).await.unwrap();
        for i in 1..=200 {
            a.blocking_append([ent(1, i, &"a".repeat(50))])
                .await
                .unwrap();
            b.blocking_append([ent(1, i, &"b".repeat(50))])
                .await
                .unwrap();
        }
        let before = wal.segments();
        assert!(before.len() > 5, "{before:?}");
        a.purge(lid(1, 190)).await.unwrap();
        wal.flush().await.unwrap();
        // Group b still needs every segment.
        assert_eq!(wal.segments().first(), before.first());
        b.purge(lid(1, 195)).await.unwrap();
        wal.flush().await.unwrap();
        let after = wal.segments();
        assert!(after.len() <= 2, "{after:?}");
        assert!(wal.stats().segments_deleted > 3);
        assert_eq!(all(&mut a).await.len(), 10);
    }
    let wal = SharedWal::open(dir.path(), small_segments()).unwrap();
    let mut a: GroupLog<Tc> = wal.group(1);
    let mut b: GroupLog<Tc> = wal.group(2);
    assert_eq!(a.read_vote().await.unwrap(), Some(Vote::new(7, 1)));
    assert_eq!(b.read_vote().await.unwrap(), Some(Vote::new(9, 3)));
    let st = a.get_log_state().await.unwrap();
    assert_eq!(st.last_purged_log_id, Some(lid(1, 190)));
    assert_eq!(st.last_log_id, Some(lid(1, 200)));
    assert_eq!(all(&mut b).await.first(), Some(&(196, "b".repeat(50))));
    // Purge everything: the log state falls back to the purged id.
    a.purge(lid(1, 200)).await.unwrap();
    let st = a.get_log_state().await.unwrap();
    assert_eq!(st.last_log_id, Some(lid(1, 200)));
    a.blocking_append([ent(2, 201, "c")]).await.unwrap();
    assert_eq!(all(&mut a).await, vec![(201, "c".to_string())]);
}

#[tokio::test]
async fn drop_group_forgets_it() {
    let dir = tempfile::tempdir().unwrap();
    {
        let wal = SharedWal::open(dir.path(), WalOptions::default()).unwrap();
        let mut g: GroupLog<Tc> = wal.group(4);
        g.blocking_append([ent(1, 1, "z")]).await.unwrap();
        let _keep: GroupLog<Tc> = wal.group(5);
        wal.drop_group(4).await.unwrap();
    }
    let wal = SharedWal::open(dir.path(), WalOptions::default()).unwrap();
    assert_eq!(wal.group_ids(), Vec::<u64>::new());
}

/// Many groups appending at once share batches: far fewer syncs than
/// appends, and every group reads back exactly its own entries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_groups_interleaved_share_syncs() {
    let dir = tempfile::tempdir().unwrap();
    let wal = SharedWal::open(dir.path(), small_segments()).unwrap();
    let groups = 64u64;
    let per = 20u64;
    let mut tasks = Vec::new();
    for gid in 0..groups {
        let wal: Arc<SharedWal> = wal.clone();
        tasks.push(tokio::spawn(async move {
            let mut g: GroupLog<Tc> = wal.group(gid);
            for i in 1..=per {
                g.blocking_append([ent(1, i, &format!("g{gid}-{i}"))])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let st = wal.stats();
    assert!(st.records >= groups * per);
    assert!(st.fsyncs < groups * per / 2, "{st:?}");
    drop(wal);
    let wal = SharedWal::open(dir.path(), small_segments()).unwrap();
    for gid in 0..groups {
        let mut g: GroupLog<Tc> = wal.group(gid);
        let got = all(&mut g).await;
        let want: Vec<(u64, String)> = (1..=per).map(|i| (i, format!("g{gid}-{i}"))).collect();
        assert_eq!(got, want);
    }
}
