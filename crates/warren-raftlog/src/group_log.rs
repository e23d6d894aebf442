//! `GroupLog<C>`: one Raft group's view of the shared WAL, implementing
//! openraft 0.9's v2 log storage. Entries, votes and log ids are encoded
//! with bincode; the WAL itself never looks inside them.

// openraft's trait methods return its (large) StorageError; the helpers
// here return the same type rather than boxing and unboxing it.
#![allow(clippy::result_large_err)]

use std::fmt::Debug;
use std::io;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use bytes::Bytes;
use openraft::storage::{LogFlushed, LogState, RaftLogReader, RaftLogStorage};
use openraft::{
    AnyError, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId, RaftTypeConfig,
    StorageError, StorageIOError, Vote,
};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::index::{GroupIndex, Loc};
use crate::record::{self, Kind};
use crate::wal::SharedWal;
use crate::writer::Op;

pub struct GroupLog<C> {
    wal: Arc<SharedWal>,
    group: u64,
    idx: Arc<Mutex<GroupIndex>>,
    _c: PhantomData<fn() -> C>,
}

impl<C> Clone for GroupLog<C> {
    fn clone(&self) -> Self {
        GroupLog {
            wal: self.wal.clone(),
            group: self.group,
            idx: self.idx.clone(),
            _c: PhantomData,
        }
    }
}

fn io_err<NID: openraft::NodeId>(
    verb: ErrorVerb,
    subject: ErrorSubject<NID>,
    e: impl ToString,
) -> StorageError<NID> {
    StorageError::IO {
        source: StorageIOError::new(subject, verb, AnyError::error(e.to_string())),
    }
}

pub(crate) fn encode<T: Serialize, NID: openraft::NodeId>(
    v: &T,
) -> Result<Vec<u8>, StorageError<NID>> {
    bincode::serialize(v).map_err(|e| io_err(ErrorVerb::Write, ErrorSubject::Logs, e))
}

fn decode<T: DeserializeOwned, NID: openraft::NodeId>(
    b: &[u8],
    subject: ErrorSubject<NID>,
) -> Result<T, StorageError<NID>> {
    bincode::deserialize(b).map_err(|e| io_err(ErrorVerb::Read, subject, e))
}

enum Src {
    Cached(Bytes),
    Disk(Loc),
}

impl<C> GroupLog<C>
where
    C: RaftTypeConfig,
{
    pub(crate) fn new(wal: Arc<SharedWal>, group: u64, idx: Arc<Mutex<GroupIndex>>) -> Self {
        GroupLog {
            wal,
            group,
            idx,
            _c: PhantomData,
        }
    }

    pub fn group_id(&self) -> u64 {
        self.group
    }

    /// Heap bytes this group's index holds.
    pub fn heap_bytes(&self) -> usize {
        self.idx.lock().heap_bytes()
    }

    /// Where entries `start..end` can be read from (clamped to the log).
    fn sources(&self, start: u64, end: u64) -> Vec<(u64, Src)> {
        let g = self.idx.lock();
        let start = start.max(g.first);
        let end = end.min(g.end());
        let cache_first = g.cache_first();
        (start..end.max(start))
            .map(|i| {
                let src = if i >= cache_first {
                    Src::Cached(g.cache[(i - cache_first) as usize].clone())
                } else {
                    Src::Disk(g.locs[(i - g.first) as usize])
                };
                (i, src)
            })
            .collect()
    }

    fn payload(&self, i: u64, src: Src) -> Result<Bytes, StorageError<C::NodeId>> {
        match src {
            Src::Cached(b) => Ok(b),
            Src::Disk(loc) if loc.is_pending() => Err(io_err(
                ErrorVerb::Read,
                ErrorSubject::LogIndex(i),
                "entry neither written nor cached",
            )),
            Src::Disk(loc) => self
                .wal
                .shared
                .read_payload(loc)
                .map_err(|e| io_err(ErrorVerb::Read, ErrorSubject::LogIndex(i), e)),
        }
    }
}

impl<C> GroupLog<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    fn read_entries(&self, start: u64, end: u64) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let mut out = Vec::new();
        for (i, src) in self.sources(start, end) {
            let p = self.payload(i, src)?;
            if p.len() < 8 {
                return Err(io_err(
                    ErrorVerb::Read,
                    ErrorSubject::LogIndex(i),
                    "short entry record",
                ));
            }
            out.push(decode(&p[8..], ErrorSubject::LogIndex(i))?);
        }
        Ok(out)
    }
}

fn range_to(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let start = match range.start_bound() {
        Bound::Included(&s) => s,
        Bound::Excluded(&s) => s.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let end = match range.end_bound() {
        Bound::Included(&e) => e.saturating_add(1),
        Bound::Excluded(&e) => e,
        Bound::Unbounded => u64::MAX,
    };
    (start, end)
}

impl<C> RaftLogReader<C> for GroupLog<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let (start, end) = range_to(&range);
        self.read_entries(start, end)
    }
}

impl<C> RaftLogStorage<C> for GroupLog<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = GroupLog<C>;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        let (purged, last) = {
            let g = self.idx.lock();
            (g.purged.clone(), (g.end() > g.first).then(|| g.end() - 1))
        };
        let last_purged_log_id: Option<LogId<C::NodeId>> = match purged {
            Some((_, b)) => Some(decode(&b, ErrorSubject::Logs)?),
            None => None,
        };
        let last_log_id = match last {
            Some(i) => self
                .read_entries(i, i + 1)?
                .first()
                .map(|e| e.get_log_id().clone()),
            None => None,
        };
        Ok(LogState {
            last_log_id: last_log_id.or_else(|| last_purged_log_id.clone()),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let b = Bytes::from(encode(vote)?);
        self.idx.lock().vote = Some(b.clone());
        self.wal
            .write_meta(self.group, Kind::Vote, b, true)
            .await
            .map_err(|e| io_err(ErrorVerb::Write, ErrorSubject::Vote, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        let b = self.idx.lock().vote.clone();
        match b {
            Some(b) => Ok(Some(decode(&b, ErrorSubject::Vote)?)),
            None => Ok(None),
        }
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let b = Bytes::from(encode(&committed)?);
        {
            let mut g = self.idx.lock();
            // Entries up to the previous commit have been handed to the state
            // machine by now (openraft reads `prev..=committed` right after
            // this call): their cached copies may go.
            let prev: Option<LogId<C::NodeId>> = match &g.committed {
                Some(p) => decode(p, ErrorSubject::<C::NodeId>::Logs).ok().flatten(),
                None => None,
            };
            if let Some(p) = prev {
                g.evict_upto = g.evict_upto.max(p.index);
            }
            g.committed = Some(b.clone());
            g.trim_cache(self.wal.shared.opts.cache_bytes_per_group);
        }
        // Not waited for: openraft treats the committed index as a hint.
        self.wal
            .write_meta(self.group, Kind::Committed, b, false)
            .await
            .map_err(|e| io_err(ErrorVerb::Write, ErrorSubject::Store, e))
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        let b = self.idx.lock().committed.clone();
        match b {
            Some(b) => decode(&b, ErrorSubject::Store),
            None => Ok(None),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut payloads = Vec::new();
        let mut first = None;
        for e in entries {
            let i = e.get_log_id().index;
            first.get_or_insert(i);
            payloads.push(record::indexed_payload(i, &encode(&e)?));
        }
        let Some(first) = first else {
            callback.log_io_completed(Ok(()));
            return Ok(());
        };
        let ticket = self.wal.next_ticket();
        {
            let mut g = self.idx.lock();
            for (k, p) in payloads.iter().enumerate() {
                g.put(first + k as u64, Loc::pending(ticket), Some(p.clone()));
            }
        }
        self.wal.submit(Op::Append {
            group: self.group,
            idx: self.idx.clone(),
            first,
            ticket,
            payloads,
            done: Box::new(move |r: io::Result<()>| callback.log_io_completed(r)),
        });
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        self.idx.lock().truncate(log_id.index);
        // Not waited for: a later append is ordered after it in the same log,
        // and recovery treats an entry at an existing index as a replacement.
        self.wal
            .write_meta(
                self.group,
                Kind::Truncate,
                record::indexed_payload(log_id.index, &[]),
                false,
            )
            .await
            .map_err(|e| io_err(ErrorVerb::Delete, ErrorSubject::Logs, e))
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let enc = Bytes::from(encode(&log_id)?);
        self.idx.lock().purge(log_id.index, enc.clone());
        self.wal
            .write_meta(
                self.group,
                Kind::Purge,
                record::indexed_payload(log_id.index, &enc),
                false,
            )
            .await
            .map_err(|e| io_err(ErrorVerb::Delete, ErrorSubject::Logs, e))
    }
}

impl<C> GroupLog<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    /// Appends `entries` without openraft (whose flush callback only it can
    /// make): for copying a log from another store into this group before
    /// the group's `Raft` starts. Durable when this returns.
    pub async fn append_durable(&self, entries: Vec<C::Entry>) -> io::Result<()> {
        let Some(first) = entries.first().map(|e| e.get_log_id().index) else {
            return Ok(());
        };
        let mut payloads = Vec::with_capacity(entries.len());
        for e in &entries {
            let body = bincode::serialize(e).map_err(io::Error::other)?;
            payloads.push(record::indexed_payload(e.get_log_id().index, &body));
        }
        let ticket = self.wal.next_ticket();
        {
            let mut g = self.idx.lock();
            for (k, p) in payloads.iter().enumerate() {
                g.put(first + k as u64, Loc::pending(ticket), Some(p.clone()));
            }
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.wal.submit(Op::Append {
            group: self.group,
            idx: self.idx.clone(),
            first,
            ticket,
            payloads,
            done: Box::new(move |r: io::Result<()>| {
                let _ = tx.send(r);
            }),
        });
        rx.await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "WAL writer stopped"))?
    }
}
