//! The metadata group's former Raft log: a file of its own.
//!
//! Earlier versions kept the metadata group's log in `meta-raft.log` in the
//! cluster data dir, an append-only sequence of records (`len: u32`,
//! `crc32: u32`, JSON of [`Record`]), every append, vote and truncation
//! fsynced, replayed (a torn tail record dropped) and rewritten compactly at
//! open. The log now lives on the node's shared WAL (group 0); this file
//! format stays readable so [`super::migrate`] can move an old log there,
//! and writable (`WARREN_CLUSTER_LEGACY_META_LOG=1`, tests only) so a test
//! can make a data dir as an old node left it without an old binary.

use super::MetaConfig;
use crate::NodeId;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{Entry, LogId, OptionalSend, RaftLogId, StorageError, StorageIOError, Vote};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Serialize, Deserialize)]
enum Record {
    Vote(Vote<NodeId>),
    Committed(Option<LogId<NodeId>>),
    Entries(Vec<Entry<MetaConfig>>),
    /// Remove entries from this index on (a conflicting suffix).
    Truncate(u64),
    /// Entries up to and including this id are gone (in a snapshot).
    Purge(LogId<NodeId>),
}

#[derive(Default)]
struct State {
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId<NodeId>>,
    purged: Option<LogId<NodeId>>,
    entries: BTreeMap<u64, Entry<MetaConfig>>,
}

impl State {
    fn apply(&mut self, r: Record) {
        match r {
            Record::Vote(v) => self.vote = Some(v),
            Record::Committed(c) => self.committed = c,
            Record::Entries(es) => {
                for e in es {
                    self.entries.insert(e.log_id.index, e);
                }
            }
            Record::Truncate(i) => {
                self.entries.split_off(&i);
            }
            Record::Purge(id) => {
                self.purged = Some(id);
                let keep = self.entries.split_off(&(id.index + 1));
                self.entries = keep;
            }
        }
    }
}

struct Inner {
    state: State,
    file: File,
}

/// The log store; clones share the same log (openraft asks for a reader).
#[derive(Clone)]
pub struct FileLogStore {
    inner: Arc<Mutex<Inner>>,
}

fn frame(r: &Record) -> io::Result<Vec<u8>> {
    let body = serde_json::to_vec(r).map_err(io::Error::other)?;
    let mut out = Vec::with_capacity(body.len() + 8);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&crc32(&body).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// CRC-32 (IEEE), bitwise: records are small and rare.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= *b as u32;
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

fn replay(path: &Path) -> io::Result<State> {
    let mut st = State::default();
    let mut data = Vec::new();
    match File::open(path) {
        Ok(mut f) => {
            f.read_to_end(&mut data)?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(st),
        Err(e) => return Err(e),
    }
    let mut at = 0;
    while data.len() >= at + 8 {
        let len = u32::from_be_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let crc = u32::from_be_bytes([data[at + 4], data[at + 5], data[at + 6], data[at + 7]]);
        let Some(body) = data.get(at + 8..at + 8 + len) else {
            break;
        };
        if crc32(body) != crc {
            break;
        }
        match serde_json::from_slice::<Record>(body) {
            Ok(r) => st.apply(r),
            Err(_) => break,
        }
        at += 8 + len;
    }
    Ok(st)
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl FileLogStore {
    /// Open (or create) the log in `dir`, compacting it.
    pub fn open(dir: &Path) -> io::Result<FileLogStore> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join("meta-raft.log");
        let st = replay(&path)?;
        // Rewrite: vote, committed, purge point, live entries.
        let tmp: PathBuf = dir.join("meta-raft.log.tmp");
        {
            let mut f = File::create(&tmp)?;
            let mut out = Vec::new();
            if let Some(v) = st.vote {
                out.extend(frame(&Record::Vote(v))?);
            }
            out.extend(frame(&Record::Committed(st.committed))?);
            if let Some(p) = st.purged {
                out.extend(frame(&Record::Purge(p))?);
            }
            let es: Vec<_> = st.entries.values().cloned().collect();
            if !es.is_empty() {
                out.extend(frame(&Record::Entries(es))?);
            }
            f.write_all(&out)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)?;
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok(FileLogStore {
            inner: Arc::new(Mutex::new(Inner { state: st, file })),
        })
    }

    /// Writes a log as an old node would have left it (for tests).
    #[cfg(test)]
    pub(crate) fn write_for_test(
        dir: &Path,
        vote: Vote<NodeId>,
        purged: LogId<NodeId>,
        entries: Vec<Entry<MetaConfig>>,
        committed: Option<LogId<NodeId>>,
    ) {
        let s = FileLogStore::open(dir).expect("open");
        s.write(Record::Entries(entries)).expect("entries");
        s.write(Record::Vote(vote)).expect("vote");
        s.write(Record::Purge(purged)).expect("purge");
        s.write(Record::Committed(committed)).expect("committed");
    }

    fn write(&self, r: Record) -> io::Result<()> {
        let bytes = frame(&r)?;
        let mut inner = self.inner.lock();
        inner.file.write_all(&bytes)?;
        inner.file.sync_data()?;
        inner.state.apply(r);
        Ok(())
    }
}

fn io_err(e: io::Error) -> StorageError<NodeId> {
    StorageIOError::write_logs(&e).into()
}

impl RaftLogReader<MetaConfig> for FileLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<MetaConfig>>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        Ok(inner
            .state
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<MetaConfig> for FileLogStore {
    type LogReader = FileLogStore;

    async fn get_log_state(&mut self) -> Result<LogState<MetaConfig>, StorageError<NodeId>> {
        let inner = self.inner.lock();
        let last = inner
            .state
            .entries
            .values()
            .next_back()
            .map(|e| *e.get_log_id())
            .or(inner.state.purged);
        Ok(LogState {
            last_purged_log_id: inner.state.purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(Record::Vote(*vote))
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().state.vote)
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        // Not fsynced: losing it only means re-applying from the snapshot,
        // which is idempotent.
        let bytes = frame(&Record::Committed(committed)).map_err(io_err)?;
        let mut inner = self.inner.lock();
        inner.file.write_all(&bytes).map_err(io_err)?;
        inner.state.committed = committed;
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.inner.lock().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<MetaConfig>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<MetaConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let es: Vec<_> = entries.into_iter().collect();
        let r = self.write(Record::Entries(es));
        let failed = r
            .as_ref()
            .err()
            .map(|e| io::Error::new(e.kind(), e.to_string()));
        callback.log_io_completed(r);
        match failed {
            Some(e) => Err(io_err(e)),
            None => Ok(()),
        }
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(Record::Truncate(log_id.index)).map_err(io_err)
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.write(Record::Purge(log_id)).map_err(io_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{CommittedLeaderId, EntryPayload};

    fn entry(term: u64, index: u64) -> Entry<MetaConfig> {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(MetaEntry(MetaOp::AddVhost {
                name: format!("v{index}"),
                creator: None,
            })),
        }
    }

    fn indexes(s: &FileLogStore) -> Vec<u64> {
        s.inner.lock().state.entries.keys().copied().collect()
    }

    use super::super::{MetaEntry, MetaOp};

    #[test]
    fn survives_reopen_truncate_purge_and_a_torn_tail() {
        let dir = tempfile::tempdir().unwrap();
        let s = FileLogStore::open(dir.path()).unwrap();
        s.write(Record::Entries((1..=5).map(|i| entry(1, i)).collect()))
            .unwrap();
        s.write(Record::Vote(Vote::new(2, 7))).unwrap();
        s.write(Record::Truncate(4)).unwrap();
        s.write(Record::Entries(vec![entry(2, 4)])).unwrap();
        s.write(Record::Purge(LogId::new(CommittedLeaderId::new(1, 1), 1)))
            .unwrap();
        drop(s);
        // A record cut short by a crash at the end is dropped on open.
        let path = dir.path().join("meta-raft.log");
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&[0, 0, 0, 99, 1, 2, 3]).unwrap();
        drop(f);
        let s = FileLogStore::open(dir.path()).unwrap();
        assert_eq!(indexes(&s), vec![2, 3, 4]);
        let st = &s.inner.lock().state;
        assert_eq!(st.vote, Some(Vote::new(2, 7)));
        assert_eq!(st.entries[&4].log_id.leader_id.term, 2);
        assert_eq!(st.purged.map(|p| p.index), Some(1));
    }
}
