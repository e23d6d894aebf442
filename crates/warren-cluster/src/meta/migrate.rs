//! Moving a metadata log from its former file onto the shared WAL.
//!
//! Nodes written by earlier versions keep the metadata group's Raft log in
//! `DATA/cluster/meta-raft.log` ([`super::log_store`]). At start, before the
//! group's `Raft` exists, that log's vote, committed id, purge point and
//! entries are copied into group 0 of the shared WAL, flushed, and the file
//! is renamed to `meta-raft.log.migrated`. The vote must be there before
//! openraft starts: a node that forgot its vote could vote twice in a term.
//!
//! The rename is the commit point. While `meta-raft.log` exists it is the
//! authoritative log, so whatever group 0 holds then is the remains of a copy
//! cut short by a crash: it is dropped and the copy starts again.

use super::log_store::FileLogStore;
use super::MetaConfig;
use crate::group::META_GROUP;
use openraft::storage::{RaftLogReader, RaftLogStorage};
use std::io;
use std::path::Path;
use std::sync::Arc;
use tracing::info;
use warren_raftlog::SharedWal;

pub const OLD_LOG: &str = "meta-raft.log";
pub const MIGRATED: &str = "meta-raft.log.migrated";

fn storage(e: openraft::StorageError<crate::NodeId>) -> io::Error {
    io::Error::other(e.to_string())
}

/// Copy `dir/meta-raft.log` into the WAL's metadata group, if there is one.
pub async fn from_file_log(dir: &Path, wal: &Arc<SharedWal>) -> io::Result<()> {
    let path = dir.join(OLD_LOG);
    if !path.exists() {
        return Ok(());
    }
    let mut old = FileLogStore::open(dir)?;
    let vote = old.read_vote().await.map_err(storage)?;
    let committed = old.read_committed().await.map_err(storage)?;
    let state = old.get_log_state().await.map_err(storage)?;
    let entries = old.try_get_log_entries(..).await.map_err(storage)?;
    drop(old);
    if wal.group_ids().contains(&META_GROUP) {
        wal.drop_group(META_GROUP).await?;
    }
    let mut log = wal.group::<MetaConfig>(META_GROUP);
    if let Some(p) = state.last_purged_log_id {
        log.purge(p).await.map_err(storage)?;
    }
    let n = entries.len();
    log.append_durable(entries).await?;
    if let Some(v) = vote {
        log.save_vote(&v).await.map_err(storage)?;
    }
    log.save_committed(committed).await.map_err(storage)?;
    wal.flush().await?;
    std::fs::rename(&path, dir.join(MIGRATED))?;
    std::fs::File::open(dir)?.sync_all()?;
    info!(
        "metadata log moved from {} onto the shared WAL ({n} entries, purged up to {:?})",
        path.display(),
        state.last_purged_log_id.map(|l| l.index)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meta::{MetaEntry, MetaOp};
    use openraft::{CommittedLeaderId, Entry, EntryPayload, LogId, Vote};
    use warren_raftlog::WalOptions;

    fn entry(term: u64, index: u64) -> Entry<MetaConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(MetaEntry(MetaOp::AddVhost {
                name: format!("v{index}"),
                creator: None,
            })),
        }
    }

    #[tokio::test]
    async fn copies_the_old_log_once_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        FileLogStore::write_for_test(
            dir.path(),
            Vote::new(3, 7),
            LogId::new(CommittedLeaderId::new(1, 1), 2),
            (3..=6).map(|i| entry(1, i)).collect(),
            Some(LogId::new(CommittedLeaderId::new(1, 1), 5)),
        );
        // A half-done earlier copy: group 0 holds something already.
        {
            let wal = SharedWal::open(dir.path().join("raft-wal"), WalOptions::default()).unwrap();
            let mut g = wal.group::<MetaConfig>(META_GROUP);
            g.save_vote(&Vote::new(1, 1)).await.unwrap();
            g.append_durable(vec![entry(9, 1)]).await.unwrap();
        }
        let wal = SharedWal::open(dir.path().join("raft-wal"), WalOptions::default()).unwrap();
        from_file_log(dir.path(), &wal).await.unwrap();
        assert!(!dir.path().join(OLD_LOG).exists());
        assert!(dir.path().join(MIGRATED).exists());
        drop(wal);
        let wal = SharedWal::open(dir.path().join("raft-wal"), WalOptions::default()).unwrap();
        // Nothing left to copy: a second start leaves the group alone.
        from_file_log(dir.path(), &wal).await.unwrap();
        let mut g = wal.group::<MetaConfig>(META_GROUP);
        assert_eq!(g.read_vote().await.unwrap(), Some(Vote::new(3, 7)));
        assert_eq!(g.read_committed().await.unwrap().map(|l| l.index), Some(5));
        let st = g.get_log_state().await.unwrap();
        assert_eq!(st.last_purged_log_id.map(|l| l.index), Some(2));
        assert_eq!(st.last_log_id.map(|l| l.index), Some(6));
        let es = g.try_get_log_entries(..).await.unwrap();
        assert_eq!(es, (3..=6).map(|i| entry(1, i)).collect::<Vec<_>>());
    }
}
