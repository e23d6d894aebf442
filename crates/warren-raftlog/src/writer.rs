//! The WAL's single writer: group commit.
//!
//! Every group's appends, votes and purges go through one channel to this
//! thread. It takes whatever has queued up (up to `max_batch_bytes`),
//! encodes it into one buffer, issues one write and one fdatasync, and only
//! then completes every operation of the batch. While it syncs, new work
//! queues up and becomes the next batch, so under load the cost of a sync is
//! shared by all the groups that wrote meanwhile — this is what makes many
//! quorum queues on one disk cheap. It is an OS thread, not a task: it
//! blocks in write and fdatasync by design.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::index::{GroupIndex, Loc};
use crate::record::{self, Kind, HEADER_LEN};
use crate::wal::{create_segment, Shared};

/// Completion of an operation: called once, with the batch's outcome.
pub(crate) type Done = Box<dyn FnOnce(io::Result<()>) + Send>;

pub(crate) enum Op {
    /// Entries `first..first + payloads.len()` of one group.
    Append {
        group: u64,
        idx: Arc<Mutex<GroupIndex>>,
        first: u64,
        ticket: u64,
        payloads: Vec<Bytes>,
        done: Done,
    },
    Meta {
        group: u64,
        kind: Kind,
        payload: Bytes,
        done: Option<Done>,
    },
    /// Completes once everything before it is synced.
    Barrier(Done),
}

impl Op {
    pub fn fail(self, e: &io::Error) {
        let done = match self {
            Op::Append { done, .. } | Op::Barrier(done) => Some(done),
            Op::Meta { done, .. } => done,
        };
        if let Some(d) = done {
            d(Err(io::Error::new(e.kind(), e.to_string())));
        }
    }

    fn size(&self) -> usize {
        match self {
            Op::Append { payloads, .. } => payloads.iter().map(|p| p.len() + HEADER_LEN).sum(),
            Op::Meta { payload, .. } => payload.len() + HEADER_LEN,
            Op::Barrier(_) => 0,
        }
    }
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    seg: u32,
    file: File,
    /// Where the next write goes in `file`.
    off: u64,
    buf: Vec<u8>,
    /// Where `buf` starts in `file`.
    buf_off: u64,
}

/// An entry written in this batch whose location its group learns once the
/// batch is synced.
struct Placed {
    idx: Arc<Mutex<GroupIndex>>,
    index: u64,
    ticket: u64,
    loc: Loc,
}

impl Writer {
    pub fn new(shared: Arc<Shared>, seg: u32, file: File, off: u64) -> Writer {
        Writer {
            shared,
            seg,
            file,
            off,
            buf: Vec::with_capacity(1 << 20),
            buf_off: off,
        }
    }

    pub fn run(mut self, mut rx: mpsc::UnboundedReceiver<Op>) {
        let max = self.shared.opts.max_batch_bytes;
        let mut batch = Vec::new();
        while let Some(op) = rx.blocking_recv() {
            let mut size = op.size();
            batch.push(op);
            while size < max {
                match rx.try_recv() {
                    Ok(op) => {
                        size += op.size();
                        batch.push(op);
                    }
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
        }
    }

    /// Writes and syncs one batch, then completes its operations.
    fn commit(&mut self, batch: &mut Vec<Op>) {
        if self.shared.failed.load(Ordering::Relaxed) {
            let e = io::Error::other("WAL failed earlier; restart to recover");
            for op in batch.drain(..) {
                op.fail(&e);
            }
            return;
        }
        let mut placed = Vec::new();
        let mut reclaim = false;
        let res = self
            .encode_batch(batch, &mut placed, &mut reclaim)
            .and_then(|()| self.flush());
        if let Err(e) = res {
            tracing::error!(error = %e, "WAL write failed; failing all writes until restart");
            self.shared.failed.store(true, Ordering::Relaxed);
            for op in batch.drain(..) {
                op.fail(&e);
            }
            return;
        }
        let c = &self.shared.counters;
        c.batches.fetch_add(1, Ordering::Relaxed);
        // Tell each group where its entries landed, then let it drop cached
        // copies it no longer needs.
        let max_cache = self.shared.opts.cache_bytes_per_group;
        let mut i = 0;
        while i < placed.len() {
            let idx = placed[i].idx.clone();
            let mut g = idx.lock();
            while i < placed.len() && Arc::ptr_eq(&placed[i].idx, &idx) {
                let p = &placed[i];
                g.written(p.index, p.ticket, p.loc);
                i += 1;
            }
            g.trim_cache(max_cache);
        }
        // Before completing the batch, so a caller that waited for a purge
        // to be written also sees its segments gone.
        if reclaim {
            self.shared.reclaim(self.seg);
        }
        for op in batch.drain(..) {
            match op {
                Op::Append { done, .. } | Op::Barrier(done) => done(Ok(())),
                Op::Meta { done, .. } => {
                    if let Some(d) = done {
                        d(Ok(()))
                    }
                }
            }
        }
    }

    fn encode_batch(
        &mut self,
        batch: &[Op],
        placed: &mut Vec<Placed>,
        reclaim: &mut bool,
    ) -> io::Result<()> {
        for op in batch {
            match op {
                Op::Append {
                    group,
                    idx,
                    first,
                    ticket,
                    payloads,
                    ..
                } => {
                    for (k, p) in payloads.iter().enumerate() {
                        let loc = self.put(*group, Kind::Entry, p, reclaim)?;
                        placed.push(Placed {
                            idx: idx.clone(),
                            index: first + k as u64,
                            ticket: *ticket,
                            loc,
                        });
                    }
                }
                Op::Meta {
                    group,
                    kind,
                    payload,
                    ..
                } => {
                    self.put(*group, *kind, payload, reclaim)?;
                    if matches!(kind, Kind::Purge | Kind::DropGroup) {
                        *reclaim = true;
                    }
                }
                Op::Barrier(_) => {}
            }
        }
        Ok(())
    }

    /// Encodes one record into the batch buffer, rolling to a new segment
    /// first if it would overflow this one.
    fn put(
        &mut self,
        group: u64,
        kind: Kind,
        payload: &[u8],
        reclaim: &mut bool,
    ) -> io::Result<Loc> {
        let len = (HEADER_LEN + payload.len()) as u64;
        let at = self.buf_off + self.buf.len() as u64;
        if at + len > self.shared.opts.segment_size && at > crate::wal::SEGMENT_MAGIC.len() as u64 {
            self.roll()?;
            *reclaim = true;
        }
        let off = self.buf_off + self.buf.len() as u64;
        record::encode(&mut self.buf, group, kind, payload);
        self.shared.counters.records.fetch_add(1, Ordering::Relaxed);
        Ok(Loc {
            seg: self.seg,
            off: off as u32,
            len: len as u32,
        })
    }

    /// Writes the buffer and syncs the file.
    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.file.write_all_at(&self.buf, self.buf_off)?;
            self.shared
                .counters
                .bytes
                .fetch_add(self.buf.len() as u64, Ordering::Relaxed);
            self.off = self.buf_off + self.buf.len() as u64;
            self.buf.clear();
            self.buf_off = self.off;
        }
        if self.shared.opts.sync {
            let t = std::time::Instant::now();
            self.file.sync_data()?;
            let us = t.elapsed().as_micros() as u64;
            let c = &self.shared.counters;
            c.fsyncs.fetch_add(1, Ordering::Relaxed);
            c.sync_total_us.fetch_add(us, Ordering::Relaxed);
            c.sync_max_us.fetch_max(us, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Finishes the current segment and starts the next one. The new segment
    /// opens with a checkpoint of every group's vote, commit and purge
    /// point, so older segments can be deleted once no entry in them is
    /// live without losing those records.
    fn roll(&mut self) -> io::Result<()> {
        self.flush()?;
        let next = self.seg + 1;
        let (file, off) = create_segment(&self.shared.dir, next)?;
        self.shared
            .segs
            .write()
            .insert(next, Arc::new(file.try_clone()?));
        self.shared
            .counters
            .segments_created
            .fetch_add(1, Ordering::Relaxed);
        self.seg = next;
        self.file = file;
        self.off = off;
        self.buf_off = off;
        let groups: Vec<(u64, Arc<Mutex<GroupIndex>>)> = self
            .shared
            .groups
            .lock()
            .iter()
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        for (id, g) in groups {
            let (vote, committed, purged) = {
                let g = g.lock();
                (g.vote.clone(), g.committed.clone(), g.purged.clone())
            };
            if let Some(v) = vote {
                record::encode(&mut self.buf, id, Kind::Vote, &v);
            }
            if let Some(c) = committed {
                record::encode(&mut self.buf, id, Kind::Committed, &c);
            }
            if let Some((i, l)) = purged {
                record::encode(
                    &mut self.buf,
                    id,
                    Kind::Purge,
                    &record::indexed_payload(i, &l),
                );
            }
        }
        Ok(())
    }
}
