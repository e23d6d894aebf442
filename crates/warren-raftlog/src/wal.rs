//! The shared write-ahead log: segment files, recovery and the group
//! registry. The writer thread that appends to it lives in `writer.rs`.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use tokio::sync::{mpsc, oneshot};

use crate::group_log::GroupLog;
use crate::index::{GroupIndex, Loc};
use crate::record::{self, Kind, HEADER_LEN};
use crate::writer::{Done, Op, Writer};

/// First bytes of every segment file (format version 1).
pub const SEGMENT_MAGIC: &[u8; 8] = b"WRNWAL01";

#[derive(Debug, Clone)]
pub struct WalOptions {
    /// A segment file is closed and a new one started past this size.
    pub segment_size: u64,
    /// The writer stops collecting a batch at this many bytes.
    pub max_batch_bytes: usize,
    /// Encoded entries a group keeps in memory beyond its committed index.
    pub cache_bytes_per_group: usize,
    /// fdatasync each batch. Off only for benchmarks of the code path.
    pub sync: bool,
}

impl Default for WalOptions {
    fn default() -> Self {
        WalOptions {
            segment_size: 64 << 20,
            max_batch_bytes: 4 << 20,
            cache_bytes_per_group: 1 << 20,
            sync: true,
        }
    }
}

/// Counters of the writer, for benchmarks and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct WalStats {
    pub batches: u64,
    pub fsyncs: u64,
    pub records: u64,
    pub bytes: u64,
    pub segments_created: u64,
    pub segments_deleted: u64,
    /// Slowest fdatasync so far, in microseconds.
    pub sync_max_us: u64,
    /// Time spent in fdatasync, in microseconds.
    pub sync_total_us: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub batches: AtomicU64,
    pub fsyncs: AtomicU64,
    pub records: AtomicU64,
    pub bytes: AtomicU64,
    pub segments_created: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub sync_max_us: AtomicU64,
    pub sync_total_us: AtomicU64,
}

/// State the writer thread and the group handles share.
pub(crate) struct Shared {
    pub dir: PathBuf,
    pub opts: WalOptions,
    /// Lock order: `groups` before any one group's index.
    pub groups: Mutex<HashMap<u64, Arc<Mutex<GroupIndex>>>>,
    /// Open segment files for reading, by number.
    pub segs: RwLock<BTreeMap<u32, Arc<File>>>,
    pub counters: Counters,
    pub next_ticket: AtomicU64,
    /// Set after a failed write or sync: the file's state is unknown, so
    /// every later operation fails until the node restarts and recovers.
    pub failed: AtomicBool,
}

impl Shared {
    /// Reads the payload of the record at `loc`, checking its CRC.
    pub fn read_payload(&self, loc: Loc) -> io::Result<Bytes> {
        let file = self.segs.read().get(&loc.seg).cloned().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("segment {} is gone", loc.seg),
            )
        })?;
        let mut buf = vec![0u8; loc.len as usize];
        file.read_exact_at(&mut buf, loc.off as u64)?;
        let rec = record::decode(&buf).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("record at {}:{}: {e:?}", loc.seg, loc.off),
            )
        })?;
        let start = HEADER_LEN;
        let end = start + rec.payload.len();
        Ok(Bytes::from(buf).slice(start..end))
    }

    /// Deletes the segments no group needs any more: all before the oldest
    /// one a live entry sits in, never the one being written.
    pub fn reclaim(&self, current: u32) {
        let mut keep_from = current;
        for g in self.groups.lock().values() {
            if let Some(s) = g.lock().min_segment() {
                keep_from = keep_from.min(s);
            }
        }
        let doomed: Vec<u32> = self
            .segs
            .read()
            .range(..keep_from)
            .map(|(n, _)| *n)
            .collect();
        for n in doomed {
            self.segs.write().remove(&n);
            match fs::remove_file(segment_path(&self.dir, n)) {
                Ok(()) => {
                    self.counters
                        .segments_deleted
                        .fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(segment = n, error = %e, "could not delete WAL segment"),
            }
        }
    }
}

pub(crate) fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{n:010}.wal"))
}

/// What recovery found in one segment's bytes.
#[derive(Debug, Default)]
pub struct SegmentScan {
    /// Length of the valid prefix (magic plus whole records).
    pub valid_len: usize,
    pub records: usize,
    /// The file has the magic header.
    pub has_magic: bool,
}

/// Replays one segment's bytes into the group indexes (recovery's pure
/// half; the fuzz target drives it with arbitrary bytes).
pub fn replay_segment(groups: &mut HashMap<u64, GroupIndex>, seg: u32, data: &[u8]) -> SegmentScan {
    if data.len() < SEGMENT_MAGIC.len() || &data[..SEGMENT_MAGIC.len()] != SEGMENT_MAGIC {
        return SegmentScan::default();
    }
    let body = &data[SEGMENT_MAGIC.len()..];
    let (recs, valid) = record::scan(body);
    for (off, r) in &recs {
        let loc = Loc {
            seg,
            off: (SEGMENT_MAGIC.len() + off) as u32,
            len: r.encoded_len() as u32,
        };
        apply_record(groups, loc, r);
    }
    SegmentScan {
        valid_len: SEGMENT_MAGIC.len() + valid,
        records: recs.len(),
        has_magic: true,
    }
}

fn apply_record(groups: &mut HashMap<u64, GroupIndex>, loc: Loc, r: &record::RecordRef<'_>) {
    if r.kind == Kind::DropGroup {
        groups.remove(&r.group);
        return;
    }
    let g = groups.entry(r.group).or_default();
    match r.kind {
        Kind::Entry => {
            if let Some(i) = record::payload_index(r.payload) {
                g.put(i, loc, None);
            }
        }
        Kind::Vote => g.vote = Some(Bytes::copy_from_slice(r.payload)),
        Kind::Committed => g.committed = Some(Bytes::copy_from_slice(r.payload)),
        Kind::Truncate => {
            if let Some(i) = record::payload_index(r.payload) {
                g.truncate(i);
            }
        }
        Kind::Purge => {
            if let Some(i) = record::payload_index(r.payload) {
                g.purge(i, Bytes::copy_from_slice(&r.payload[8..]));
            }
        }
        Kind::DropGroup => {}
    }
}

/// One write-ahead log per node, shared by every Raft group on it.
pub struct SharedWal {
    tx: Option<mpsc::UnboundedSender<Op>>,
    pub(crate) shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

impl SharedWal {
    /// Opens (recovering) or creates the log in `dir`. A torn tail of the
    /// last segment (a crash mid-write) is cut at the last whole record; a
    /// bad record in an older segment is corruption of synced data and an
    /// error.
    pub fn open(dir: impl AsRef<Path>, mut opts: WalOptions) -> io::Result<Arc<SharedWal>> {
        // Locations hold 32-bit offsets.
        opts.segment_size = opts.segment_size.min(1 << 31);
        let dir = dir.as_ref().to_path_buf();
        fs::create_dir_all(&dir)?;
        let mut nums = Vec::new();
        for e in fs::read_dir(&dir)? {
            let name = e?.file_name();
            let name = name.to_string_lossy();
            if let Some(n) = name
                .strip_suffix(".wal")
                .and_then(|s| s.parse::<u32>().ok())
            {
                nums.push(n);
            }
        }
        nums.sort_unstable();
        let mut groups: HashMap<u64, GroupIndex> = HashMap::new();
        let mut segs = BTreeMap::new();
        let mut tail = None;
        for (i, &n) in nums.iter().enumerate() {
            let path = segment_path(&dir, n);
            let data = fs::read(&path)?;
            let scan = replay_segment(&mut groups, n, &data);
            let last = i + 1 == nums.len();
            if scan.valid_len < data.len() || !scan.has_magic {
                if !last {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "WAL segment {} is corrupt at byte {} (not the last segment)",
                            path.display(),
                            scan.valid_len
                        ),
                    ));
                }
                tracing::warn!(
                    segment = %path.display(),
                    kept = scan.valid_len,
                    cut = data.len() - scan.valid_len,
                    "WAL: cutting a torn tail"
                );
                let f = OpenOptions::new().write(true).open(&path)?;
                if scan.has_magic {
                    f.set_len(scan.valid_len as u64)?;
                } else {
                    // Even the magic never made it: start the file afresh.
                    f.set_len(0)?;
                    f.write_all_at(SEGMENT_MAGIC, 0)?;
                }
                f.sync_all()?;
            }
            let f = OpenOptions::new().read(true).write(true).open(&path)?;
            if last {
                let len = f.metadata()?.len();
                tail = Some((n, f.try_clone()?, len));
            }
            segs.insert(n, Arc::new(f));
        }
        let (cur, file, len) = match tail {
            Some(t) => t,
            None => {
                let (f, len) = create_segment(&dir, 1)?;
                segs.insert(1, Arc::new(f.try_clone()?));
                (1, f, len)
            }
        };
        let shared = Arc::new(Shared {
            dir,
            opts,
            groups: Mutex::new(
                groups
                    .into_iter()
                    .map(|(k, v)| (k, Arc::new(Mutex::new(v))))
                    .collect(),
            ),
            segs: RwLock::new(segs),
            counters: Counters::default(),
            next_ticket: AtomicU64::new(1),
            failed: AtomicBool::new(false),
        });
        shared.reclaim(cur);
        let (tx, rx) = mpsc::unbounded_channel();
        let writer = Writer::new(shared.clone(), cur, file, len);
        let handle = std::thread::Builder::new()
            .name("warren-wal".into())
            .spawn(move || writer.run(rx))?;
        Ok(Arc::new(SharedWal {
            tx: Some(tx),
            shared,
            writer: Some(handle),
        }))
    }

    /// The log of one Raft group (created empty if the log has none).
    /// Handles for the same id share one index.
    pub fn group<C>(self: &Arc<Self>, group_id: u64) -> GroupLog<C>
    where
        C: openraft::RaftTypeConfig,
    {
        let idx = self
            .shared
            .groups
            .lock()
            .entry(group_id)
            .or_default()
            .clone();
        GroupLog::new(self.clone(), group_id, idx)
    }

    /// The groups that have any state in the log (after recovery: the
    /// groups this node is a member of).
    pub fn group_ids(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.shared.groups.lock().keys().copied().collect();
        v.sort_unstable();
        v
    }

    /// Forgets a group (its queue was deleted or this node left it); durable
    /// when this returns.
    pub async fn drop_group(&self, group_id: u64) -> io::Result<()> {
        self.shared.groups.lock().remove(&group_id);
        self.write_meta(group_id, Kind::DropGroup, Bytes::new(), true)
            .await
    }

    /// Waits until everything submitted before is on disk.
    pub async fn flush(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.submit(Op::Barrier(Box::new(move |r| {
            let _ = tx.send(r);
        })));
        rx.await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "WAL writer stopped"))?
    }

    pub fn stats(&self) -> WalStats {
        let c = &self.shared.counters;
        WalStats {
            batches: c.batches.load(Ordering::Relaxed),
            fsyncs: c.fsyncs.load(Ordering::Relaxed),
            records: c.records.load(Ordering::Relaxed),
            bytes: c.bytes.load(Ordering::Relaxed),
            segments_created: c.segments_created.load(Ordering::Relaxed),
            segments_deleted: c.segments_deleted.load(Ordering::Relaxed),
            sync_max_us: c.sync_max_us.load(Ordering::Relaxed),
            sync_total_us: c.sync_total_us.load(Ordering::Relaxed),
        }
    }

    /// Segment numbers currently on disk.
    pub fn segments(&self) -> Vec<u32> {
        self.shared.segs.read().keys().copied().collect()
    }

    /// Heap bytes held by all group indexes (not counting the writer).
    pub fn index_heap_bytes(&self) -> usize {
        self.shared
            .groups
            .lock()
            .values()
            .map(|g| g.lock().heap_bytes() + std::mem::size_of::<GroupIndex>() + 64)
            .sum()
    }

    pub(crate) fn next_ticket(&self) -> u64 {
        self.shared.next_ticket.fetch_add(1, Ordering::Relaxed)
    }

    /// Hands an operation to the writer; if it is gone the operation fails.
    pub(crate) fn submit(&self, op: Op) {
        let Some(tx) = &self.tx else {
            op.fail(&io::Error::new(io::ErrorKind::BrokenPipe, "WAL closed"));
            return;
        };
        if let Err(mpsc::error::SendError(op)) = tx.send(op) {
            op.fail(&io::Error::new(
                io::ErrorKind::BrokenPipe,
                "WAL writer stopped",
            ));
        }
    }

    /// Writes a vote/truncate/purge/committed/drop record; with `wait`, the
    /// future resolves once it is synced.
    pub(crate) async fn write_meta(
        &self,
        group: u64,
        kind: Kind,
        payload: Bytes,
        wait: bool,
    ) -> io::Result<()> {
        if !wait {
            self.submit(Op::Meta {
                group,
                kind,
                payload,
                done: None,
            });
            return Ok(());
        }
        let (tx, rx) = oneshot::channel();
        let done: Done = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.submit(Op::Meta {
            group,
            kind,
            payload,
            done: Some(done),
        });
        rx.await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "WAL writer stopped"))?
    }
}

impl Drop for SharedWal {
    fn drop(&mut self) {
        // Closing the channel ends the writer after it has written (and
        // synced) what it was given; wait for it so a reopen sees it all.
        self.tx.take();
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

/// Creates segment `n` with its magic, synced together with the directory.
pub(crate) fn create_segment(dir: &Path, n: u32) -> io::Result<(File, u64)> {
    let path = segment_path(dir, n);
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)?;
    f.write_all(SEGMENT_MAGIC)?;
    f.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok((f, SEGMENT_MAGIC.len() as u64))
}
