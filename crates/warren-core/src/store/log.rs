//! The message log: append-only segment files shared by every queue of the broker.
//!
//! Why one shared log: a persistent message fanned out to many durable queues is
//! written once, and one writer thread can batch the writes of every connection
//! into one `write` + one `fdatasync` (group commit), so confirms stay fast under
//! load while meaning "on disk".
//!
//! Appends happen under a short lock that assigns the record's location (segment,
//! offset) and copies it into the pending buffer; the writer thread swaps the
//! buffer out, writes and syncs it, then publishes the *durable ticket* — the
//! number of appends known to be on disk. Publishers wait for their ticket before
//! confirming.
//!
//! Space is reclaimed by deleting whole segments. Acks are not written into the
//! segment being appended to but into a side file of the segment that holds the
//! acked message (`NNNNNNNN.acks` next to `NNNNNNNN.seg`): an ack is only needed as
//! long as its message's segment exists, so a segment and its acks go together as
//! soon as no queue references a message in it any more, and one long-unacked
//! message pins only its own segment.
//!
//! A segment that is mostly acked but still holds a few live messages (a
//! straggler nobody acks for hours) is *compacted*: rewritten with only its live
//! records, see [`super::compact`]. Records keep their message ids, so recovery
//! and acks are unaffected; in-memory locations handed out before the rewrite
//! are translated through a per-segment offset map.

use super::budget::MemoryBudget;
use super::record::StreamRecord;
use super::record::{self, Record};
use super::recovered::{RecoveredQueue, Source};
use super::spill::SpillDir;
use super::stream_index::StreamIndex;
use super::stream_summary::{self, StreamBlock, StreamFrag, STREAM_SLOT};
use super::summary::{self, Entry, Levels, Scan, Summary};
use crate::shortstr::ShortStr;
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{info, warn};

/// Segments roll over at this size by default.
pub const SEGMENT_SIZE: u64 = 32 * 1024 * 1024;

/// How the message log behaves (the `[storage]` section of the config).
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// fsync before publishing the durable ticket (confirms). Off trades
    /// durability against power loss for speed.
    pub fsync: bool,
    /// Size at which segments roll over.
    pub segment_size: u64,
    /// Memory for queue windows and pending writes (from the watermark).
    pub memory: MemoryBudget,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            fsync: true,
            segment_size: SEGMENT_SIZE,
            memory: MemoryBudget::default(),
        }
    }
}

/// Where a record lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub segment: u32,
    pub offset: u32,
    pub len: u32,
}

#[derive(Debug, Default)]
pub(super) struct SegmentInfo {
    /// Live (queue, message) references into this segment.
    pub(super) refs: u64,
    /// References it held in all (since it was written or last compacted):
    /// `refs / total_refs` is the live fraction that triggers compaction.
    pub(super) total_refs: u64,
    /// Being compacted: not to be deleted meanwhile (it is, right after).
    pub(super) compacting: bool,
    /// Of `refs`, those of stream records. A segment holding live stream
    /// records is never compacted: streams find their records by position.
    pub(super) stream_refs: u64,
    /// Since when it has been sparse (see [`super::compact::is_sparse`]).
    pub(super) sparse_since: Option<std::time::Instant>,
}

/// An open segment file for reads, and for a compacted segment the translation
/// of the offsets handed out before the rewrite.
/// The most bytes [`MessageLog::read_many`] reads with one `pread`.
const READ_RUN: u64 = 1 << 20;

#[derive(Clone)]
pub(super) struct SegmentReader {
    pub(super) file: Arc<File>,
    /// (original offset, current offset), sorted by original offset.
    pub(super) remap: Option<Arc<Vec<(u32, u32)>>>,
}

impl SegmentReader {
    /// Where the record handed out at `offset` is in the file now (`None`: a
    /// compaction found it dead).
    fn offset_of(&self, offset: u32) -> Option<u32> {
        match &self.remap {
            None => Some(offset),
            Some(map) => map
                .binary_search_by_key(&offset, |&(orig, _)| orig)
                .ok()
                .map(|i| map[i].1),
        }
    }
}

struct Pending {
    /// Buffers to write, in order, tagged with their segment.
    bufs: Vec<(u32, Vec<u8>)>,
    /// Ack records to append to each segment's ack file.
    acks: Vec<(u32, Vec<u8>)>,
    /// Queues' own transient copies released since the writer's last round,
    /// per segment: one ack record per segment and round instead of one per
    /// message (15 bytes each; a delta-coded id in a shared record is ~1).
    released: Vec<(u32, Vec<u64>)>,
    segment: u32,
    offset: u64,
    next_ticket: u64,
    shutdown: bool,
}

impl Pending {
    /// The pending ack records bound for `segment`'s ack file.
    fn acks_for(&mut self, segment: u32) -> &mut Vec<u8> {
        let i = match self.acks.iter().position(|(s, _)| *s == segment) {
            Some(i) => i,
            None => {
                self.acks.push((segment, Vec::new()));
                self.acks.len() - 1
            }
        };
        &mut self.acks[i].1
    }
}

/// Per durable queue id, its recovered messages in log order: counts per
/// segment, the entries read lazily (see [`super::recovered`]).
pub type RecoveredQueues = HashMap<u64, RecoveredQueue>;

/// Why the writer could not make a batch durable.
enum WriteError {
    /// Not written (disk full...): nothing of it is in the file; retry later.
    Write(io::Error),
    /// fsync failed: what was written may be lost; stop confirming.
    Sync(io::Error),
    /// A write failed and could not be cut off: a torn record stays in the
    /// file, so nothing can be appended after it in this process.
    Torn(io::Error),
}

pub struct MessageLog {
    pub(super) dir: PathBuf,
    pending: Mutex<Pending>,
    wake: Condvar,
    /// (segment, offset) written to the OS so far; reads of later data wait.
    written: Mutex<(u32, u64)>,
    written_cv: Condvar,
    durable: watch::Sender<u64>,
    pub(super) segments: Mutex<BTreeMap<u32, SegmentInfo>>,
    pub(super) readers: Mutex<HashMap<u32, SegmentReader>>,
    next_msg_id: AtomicU64,
    pub(super) fsync: bool,
    pub(super) segment_size: u64,
    /// Above this many bytes appended but not yet written, publishers are
    /// paused (see [`MessageLog::wait_for_room`]): the disk sets the pace,
    /// not the heap.
    max_pending: usize,
    /// Held while an ack file is appended to or rewritten by compaction.
    pub(super) acks_io: Mutex<()>,
    /// A compaction thread is running.
    pub(super) compacting: std::sync::atomic::AtomicBool,
    /// Bytes appended and not yet written.
    pending_bytes: std::sync::atomic::AtomicUsize,
    /// Woken after every write batch.
    room: tokio::sync::Notify,
    /// Write batches taken by the writer so far: a stream starts a new chunk
    /// when this moved since its previous append.
    batches: AtomicU64,
    /// Streams found at startup, until their queues take them.
    recovered_streams: Mutex<HashMap<u64, StreamIndex>>,
    /// Where queues keep the index of their paged-out messages.
    spill: Arc<SpillDir>,
    /// Recovery is not over: queues are still attaching their recovered
    /// messages ([`MessageLog::add_refs`]), so a segment without references
    /// may just not have been claimed yet. No segment is reclaimed (deleted
    /// or compacted) until [`MessageLog::release_unclaimed_streams`] ends it.
    recovering: std::sync::atomic::AtomicBool,
    /// Segments the writer sealed, to the thread that writes their summaries.
    sealed: Mutex<std::sync::mpsc::Sender<u32>>,
}

/// Per stream id, the offset below which retention dropped its records in
/// the segment whose ack records these are.
fn stream_truncations(acks: &[Record]) -> HashMap<u64, u64> {
    let mut out = HashMap::new();
    for rec in acks {
        if let Record::Ack { queue, msg_ids } = rec {
            if let [record::TRUNCATED, x] = msg_ids[..] {
                let e = out.entry(*queue).or_insert(0);
                *e = x.max(*e);
            }
        }
    }
    out
}

/// The priority of a recovered message (decoded only if present).
fn recovered_priority(properties: &Bytes) -> u8 {
    use crate::properties::{BasicProperties, RawProperties};
    if !RawProperties::has_priority(properties) {
        return 0;
    }
    BasicProperties::decode(properties)
        .unwrap_or_default()
        .priority
        .unwrap_or(0)
}

/// A recovered message's per-message TTL (`expiration` property, ms), read
/// when the queue loads it.
pub(super) fn recovered_expiration(properties: &Bytes) -> Option<u64> {
    use crate::properties::{BasicProperties, RawProperties};
    if !RawProperties::has_expiration(properties) {
        return None;
    }
    BasicProperties::decode(properties)
        .unwrap_or_default()
        .expiration
        .and_then(|e| crate::message::parse_expiration(e.as_bytes()))
}

pub(super) fn segment_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{:08}.seg", n))
}

pub(super) fn acks_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{:08}.acks", n))
}

/// Read a file of records, calling `f` for each good one with its location;
/// a torn or corrupt record ends it (logged, and cut off if `truncate`).
///
/// Streams the file a megabyte at a time rather than reading it whole: the
/// summary thread scans every sealed 32 MiB segment, and a whole-file buffer
/// would show in the broker's RSS each time.
pub(super) fn read_records(
    path: &Path,
    n: u32,
    truncate: bool,
    mut f: impl FnMut(Record, Loc),
) -> io::Result<u64> {
    use std::io::Read;
    const CHUNK: usize = 1 << 20;
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    let mut count = 0;
    // Unparsed bytes, starting at file offset `base`.
    let mut pending: Vec<u8> = Vec::new();
    let mut base = 0u64;
    let mut eof = false;
    let mut want = CHUNK;
    loop {
        if !eof {
            let start = pending.len();
            pending.resize(start + want, 0);
            let mut got = 0;
            while got < want {
                match file.read(&mut pending[start + got..]) {
                    Ok(0) => {
                        eof = true;
                        break;
                    }
                    Ok(k) => got += k,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            pending.truncate(start + got);
        }
        let data = Bytes::from(std::mem::take(&mut pending));
        let mut buf = data.clone();
        let mut bad = None;
        while !buf.is_empty() {
            let at = data.len() - buf.len();
            // A record cut by the chunk boundary: read on (not at the end).
            if !eof && buf.len() >= record::HEADER_LEN {
                let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if len != 0 && buf.len() < record::HEADER_LEN + len {
                    want = (record::HEADER_LEN + len - buf.len()).max(CHUNK);
                    break;
                }
            } else if !eof {
                want = CHUNK;
                break;
            }
            match record::read_record(&mut buf) {
                Ok(rec) => {
                    count += 1;
                    let len = (data.len() - buf.len() - at) as u32;
                    f(
                        rec,
                        Loc {
                            segment: n,
                            offset: (base + at as u64) as u32,
                            len,
                        },
                    );
                }
                Err(e) => {
                    bad = Some((base + at as u64, e));
                    break;
                }
            }
        }
        if let Some((offset, e)) = bad {
            warn!(
                file = %path.display(),
                offset,
                error = ?e,
                "message log: unreadable record; dropping the rest of this file"
            );
            if truncate {
                // Cut the torn tail so the file holds only good records.
                let file = OpenOptions::new().write(true).open(path)?;
                file.set_len(offset)?;
                file.sync_all()?;
            }
            return Ok(count);
        }
        if eof && buf.is_empty() {
            return Ok(count);
        }
        base += (data.len() - buf.len()) as u64;
        pending = buf.to_vec();
        if eof {
            // Cannot happen (at the end every byte is parsed or bad), but
            // never loop forever.
            return Ok(count);
        }
    }
}

/// Read segment `n` (cutting a torn tail if `truncate`): the persistent
/// messages of each queue in it, for its summary; stream records go to
/// `on_stream`.
pub(super) fn scan_segment(
    dir: &Path,
    n: u32,
    truncate: bool,
    mut on_stream: impl FnMut(StreamRecord, Loc),
) -> io::Result<Scan> {
    let mut scan = Scan::default();
    read_records(&segment_path(dir, n), n, truncate, |rec, loc| match rec {
        Record::Stream(r) => {
            scan.total_refs += 1;
            scan.streams.entry(r.stream).or_default().push(
                r.offset,
                loc,
                r.timestamp,
                r.flags & record::STREAM_SEGMENT_START != 0,
                r.flags & record::STREAM_CHUNK_START != 0,
                filter_hash(&r),
            );
            on_stream(r, loc);
        }
        Record::Publish {
            msg_id,
            flags,
            queues,
            properties,
            ..
        } => {
            scan.max_msg_id = scan.max_msg_id.max(msg_id);
            scan.total_refs += queues.len().max(1) as u64;
            if flags & record::FLAG_PERSISTENT != 0 {
                let priority = recovered_priority(&properties);
                for q in queues {
                    scan.queues.entry(q).or_default().push(Entry {
                        msg_id,
                        offset: loc.offset,
                        len: loc.len,
                        priority,
                    });
                }
            }
        }
        Record::Ack { .. } => {}
    })?;
    Ok(scan)
}

/// Summarize sealed segment `n` (the writer moved past it), unless it is
/// gone. Runs on the summary thread.
fn summarize(dir: &Path, n: u32) {
    let Ok(seg_len) = fs::metadata(segment_path(dir, n)).map(|m| m.len()) else {
        return;
    };
    match scan_segment(dir, n, false, |_, _| {}) {
        Ok(scan) => {
            if let Err(e) = summary::write(dir, n, seg_len, &scan) {
                warn!(segment = n, error = %e, "message log: cannot write segment summary");
            }
        }
        Err(e) => warn!(segment = n, error = %e, "message log: cannot summarize segment"),
    }
}

/// The hash of a stream record's filter value (None: it has none).
fn filter_hash(r: &StreamRecord) -> Option<u64> {
    match r.flags & record::STREAM_FILTERED != 0 {
        true => crate::queue::stream::filter::value_of(&r.properties)
            .map(|v| crate::queue::stream::filter::hash(&v)),
        false => None,
    }
}

fn stream_index(streams: &mut HashMap<u64, StreamIndex>, stream: u64) -> &mut StreamIndex {
    streams
        .entry(stream)
        .or_insert_with(|| StreamIndex::new(super::stream_index::DEFAULT_SEGMENT_SIZE))
}

fn push_stream_record(streams: &mut HashMap<u64, StreamIndex>, r: StreamRecord, loc: Loc) {
    stream_index(streams, r.stream).push(
        r.offset,
        loc,
        r.timestamp,
        r.flags & record::STREAM_SEGMENT_START != 0,
        r.flags & record::STREAM_CHUNK_START != 0,
        filter_hash(&r),
    );
}

/// Segment `n`'s stream blocks from its summary, each stream's checked
/// against its truncation point; `None` if any is damaged or does not fit
/// (scan the segment instead).
fn streams_from_summary(
    dir: &Path,
    n: u32,
    s: &Summary,
    truncated: &HashMap<u64, u64>,
) -> Option<Vec<(u64, Vec<StreamBlock>)>> {
    let mut out = Vec::new();
    for slot in s.slots.iter().filter(|s| s.queue & STREAM_SLOT != 0) {
        let stream = slot.queue & !STREAM_SLOT;
        let blocks = StreamFrag::decode(&summary::read_entries(dir, n, slot)?)?;
        if !stream_summary::fits(&blocks, truncated.get(&stream).copied()) {
            return None;
        }
        out.push((stream, blocks));
    }
    Some(out)
}

/// A queue's live messages in a segment: (queue, count, bytes, entries,
/// the same per priority if known).
type Part = (u64, u64, u64, Source, Option<Levels>);

/// Count, bytes and priority histogram of the entries in `data` not in
/// `acked`.
fn live_of(data: Bytes, acked: &HashSet<u64>) -> (u64, u64, Levels) {
    let mut levels = Levels::default();
    let (c, b) = super::summary::EntryReader::new(data)
        .filter(|e| !acked.contains(&e.msg_id))
        .fold((0, 0), |(c, b), e| {
            levels.add(e.priority, e.len as u64);
            (c + 1, b + e.len as u64)
        });
    (c, b, levels)
}

/// A publish record read back for a queue (or a delayed exchange): its list
/// of queues dropped, and its body, properties, exchange and routing key
/// copied out of the buffer they were read into when body and properties
/// are less than half of it.
///
/// Why: a reader of one message needs neither the other queues' ids nor the
/// neighbouring records, but holds both while the message sits in its
/// queue's window or read-ahead batch: `Bytes` slices keep their whole
/// buffer alive (a run of neighbouring records, up to [`READ_RUN`]), and a
/// persistent fanout record lists every queue (1,000 queues: 8 KiB of
/// decoded ids, ~1.5 KiB on disk, around a 16 B body). 1,000 such queues
/// restarting, each loading a window and a read-ahead batch, held 1.8 GB.
/// A body that is most of its buffer (a big message read alone) stays a
/// slice.
fn unpin(rec: Record, buf_len: usize) -> Record {
    match rec {
        Record::Publish {
            msg_id,
            flags,
            published_at,
            exchange,
            routing_key,
            key_is_queue,
            properties,
            body,
            ..
        } => {
            let copy = (body.len() + properties.len()) * 2 < buf_len;
            let own = |b: Bytes| if copy { Bytes::copy_from_slice(&b) } else { b };
            Record::Publish {
                msg_id,
                flags,
                published_at,
                queues: Vec::new(),
                exchange: ShortStr(own(exchange.0)),
                routing_key: ShortStr(own(routing_key.0)),
                key_is_queue,
                properties: own(properties),
                body: own(body),
            }
        }
        other => other,
    }
}

/// Segment `n`'s live messages per queue from its summary. Only queues with
/// acks in the segment have their entries read (to count exactly); `None`
/// if those are damaged (scan the segment instead).
fn parts_from_summary(
    dir: &Path,
    n: u32,
    s: &Summary,
    acked: &HashMap<u64, HashSet<u64>>,
) -> Option<Vec<Part>> {
    let mut parts = Vec::with_capacity(s.slots.len());
    for (i, slot) in s.slots.iter().enumerate() {
        if slot.queue & STREAM_SLOT != 0 {
            continue;
        }
        let (count, bytes, levels) = match acked.get(&slot.queue) {
            Some(a) => {
                let (c, b, l) = live_of(summary::read_entries(dir, n, slot)?, a);
                (c, b, Some(l))
            }
            // A histogram that does not add up is not trusted (the split
            // then counts the entries).
            None => {
                let levels = s.levels.get(i).cloned().flatten();
                let levels = levels.filter(|l| l.count() == slot.count);
                (slot.count, slot.bytes, levels)
            }
        };
        parts.push((slot.queue, count, bytes, Source::Summary(*slot), levels));
    }
    Some(parts)
}

/// Segment `n`'s live messages per queue from a scan; writes the summary
/// (the segment is sealed: appends go to a new one after a restart) so the
/// next start need not scan it again.
fn parts_from_scan(
    dir: &Path,
    n: u32,
    scan: Scan,
    acked: &HashMap<u64, HashSet<u64>>,
) -> Vec<Part> {
    let written = fs::metadata(segment_path(dir, n))
        .and_then(|m| summary::write(dir, n, m.len(), &scan))
        .map_err(|e| warn!(segment = n, error = %e, "message log: cannot write segment summary"))
        .ok();
    let mut parts = Vec::with_capacity(scan.queues.len());
    for (i, (q, list)) in scan.queues.into_iter().enumerate() {
        let (count, bytes, levels) = (list.count, list.bytes, list.levels);
        let data = Bytes::from(list.buf);
        let (count, bytes, levels) = match acked.get(&q) {
            Some(a) => live_of(data.clone(), a),
            None => (count, bytes, levels),
        };
        let source = match &written {
            Some(s) => Source::Summary(s.slots[i]),
            None => Source::Memory(data),
        };
        parts.push((q, count, bytes, source, Some(levels)));
    }
    parts
}

impl MessageLog {
    /// Open (creating if needed) the log in `dir`, replaying it. Returns the log and,
    /// per durable queue id, its persistent messages in publish order. Torn or
    /// corrupted records end a segment's readable part; they are logged and dropped.
    pub fn open(
        dir: &Path,
        options: &LogOptions,
    ) -> io::Result<(Arc<MessageLog>, RecoveredQueues)> {
        fs::create_dir_all(dir)?;
        super::compact::remove_leftovers(dir);
        let mut numbers: Vec<u32> = fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        numbers.sort_unstable();
        let started = std::time::Instant::now();
        let spill = SpillDir::open(dir.join("paged"), options.memory)?;
        // Per queue, its live messages: per segment a count and where its
        // index entries are (the segment's summary), never one per message.
        let mut recovered: RecoveredQueues = HashMap::new();
        let mut count = 0u64;
        let mut segments: BTreeMap<u32, SegmentInfo> = BTreeMap::new();
        let mut max_msg_id = 0u64;
        let mut scanned = 0usize;
        let last = numbers.last().copied();
        let mut streams: HashMap<u64, StreamIndex> = HashMap::new();
        for &n in &numbers {
            let is_last = Some(n) == last;
            // The ack file first: it says which stream records retention
            // dropped, and which messages of each queue are gone.
            let mut acks = Vec::new();
            read_records(&acks_path(dir, n), n, true, |rec, _| acks.push(rec))?;
            let truncated = stream_truncations(&acks);
            let mut acked: HashMap<u64, HashSet<u64>> = HashMap::new();
            for rec in acks {
                if let Record::Ack { queue, msg_ids } = rec {
                    acked.entry(queue).or_default().extend(msg_ids);
                }
            }
            let seg_len = fs::metadata(segment_path(dir, n))?.len();
            let from_summary = super::summary::read(dir, n, seg_len).and_then(|s| {
                let parts = parts_from_summary(dir, n, &s, &acked)?;
                let blocks = streams_from_summary(dir, n, &s, &truncated)?;
                Some((s, parts, blocks))
            });
            let (total_refs, parts) = match from_summary {
                Some((s, parts, blocks)) => {
                    max_msg_id = max_msg_id.max(s.max_msg_id);
                    for (stream, blocks) in blocks {
                        let cut = truncated.get(&stream).copied();
                        // As a scan: no index for a stream none of whose
                        // records here survived retention.
                        if blocks.iter().any(|b| cut.is_none_or(|x| b.end() > x)) {
                            let ix = stream_index(&mut streams, stream);
                            stream_summary::rebuild(ix, n, &blocks, cut);
                        }
                    }
                    (s.total_refs, parts)
                }
                None => {
                    scanned += 1;
                    let scan = scan_segment(dir, n, is_last, |r, loc| {
                        if truncated.get(&r.stream).is_some_and(|&x| r.offset < x) {
                            return;
                        }
                        push_stream_record(&mut streams, r, loc);
                    })?;
                    max_msg_id = max_msg_id.max(scan.max_msg_id);
                    (scan.total_refs, parts_from_scan(dir, n, scan, &acked))
                }
            };
            for (q, live, bytes, source, levels) in parts {
                count += live;
                recovered
                    .entry(q)
                    .or_insert_with(|| RecoveredQueue::new(q))
                    .add(n, live, bytes, source, levels);
            }
            segments.insert(
                n,
                SegmentInfo {
                    total_refs,
                    ..SegmentInfo::default()
                },
            );
        }
        // Recovered streams hold their records from the start (until their
        // queue takes them, or they are released as unclaimed), so that no
        // reclaim can delete a segment in between.
        for ix in streams.values() {
            for (seg, n) in ix.log_refs() {
                let info = segments.entry(seg).or_default();
                info.refs += n;
                info.stream_refs += n;
            }
        }
        // Ack files and summaries whose segment is gone are leftovers of a
        // deletion; temporary summaries, of a crash.
        for e in fs::read_dir(dir)?.filter_map(|e| e.ok()) {
            let name = e.file_name();
            let Some(name) = name.to_str() else {
                continue;
            };
            if name.ends_with(".sum.tmp") {
                let _ = fs::remove_file(e.path());
                continue;
            }
            let Some(n) = name
                .strip_suffix(".acks")
                .or_else(|| name.strip_suffix(".sum"))
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if numbers.binary_search(&n).is_err() {
                let _ = fs::remove_file(e.path());
            }
        }
        // New appends go to a fresh segment: never after a possibly torn tail.
        let next_segment = last.map_or(1, |l| l + 1);
        segments.insert(next_segment, SegmentInfo::default());
        if !numbers.is_empty() {
            info!(
                segments = numbers.len(),
                scanned,
                messages = count,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "message log recovered"
            );
        }
        let (durable, _) = watch::channel(0);
        let (sealed, to_summarize) = std::sync::mpsc::channel::<u32>();
        let summary_dir = dir.to_path_buf();
        std::thread::Builder::new()
            .name("warren-log-summary".into())
            .spawn(move || {
                for n in to_summarize {
                    summarize(&summary_dir, n);
                }
            })?;
        let log = Arc::new(MessageLog {
            dir: dir.to_path_buf(),
            pending: Mutex::new(Pending {
                bufs: Vec::new(),
                acks: Vec::new(),
                released: Vec::new(),
                segment: next_segment,
                offset: 0,
                next_ticket: 1,
                shutdown: false,
            }),
            wake: Condvar::new(),
            written: Mutex::new((next_segment, 0)),
            written_cv: Condvar::new(),
            durable,
            segments: Mutex::new(segments),
            readers: Mutex::new(HashMap::new()),
            next_msg_id: AtomicU64::new(max_msg_id + 1),
            fsync: options.fsync,
            segment_size: options.segment_size.max(4096),
            max_pending: options.memory.max_pending,
            acks_io: Mutex::new(()),
            compacting: std::sync::atomic::AtomicBool::new(false),
            pending_bytes: std::sync::atomic::AtomicUsize::new(0),
            room: tokio::sync::Notify::new(),
            batches: AtomicU64::new(0),
            recovered_streams: Mutex::new(streams),
            spill,
            recovering: std::sync::atomic::AtomicBool::new(!numbers.is_empty()),
            sealed: Mutex::new(sealed),
        });
        let writer = log.clone();
        std::thread::Builder::new()
            .name("warren-log-writer".into())
            .spawn(move || writer.run_writer())?;
        Ok((log, recovered))
    }

    /// Where queues keep the on-disk index of their paged-out messages.
    pub fn spill_dir(&self) -> Arc<SpillDir> {
        self.spill.clone()
    }

    /// A fresh message id (ids increase in publish order).
    pub fn next_msg_id(&self) -> u64 {
        self.next_msg_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Watch the durable ticket: every append with a ticket ≤ the value is on disk.
    pub fn durable(&self) -> watch::Receiver<u64> {
        self.durable.subscribe()
    }

    pub fn durable_ticket(&self) -> u64 {
        *self.durable.borrow()
    }

    /// The newest ticket handed out (publish or ack): once the durable
    /// ticket reaches it, everything appended so far is written, acks
    /// included (acks are written, not fsynced: they survive a process
    /// crash, which is what an MQTT PUBREL after PUBREC needs).
    pub fn last_ticket(&self) -> u64 {
        self.pending.lock().next_ticket - 1
    }

    /// Append a publish record referenced by `refs` queues. Returns its location
    /// and the ticket to wait for.
    ///
    /// With `Some(msg_id)` it is a persistent message's record, recovered after
    /// a restart for the durable `queues` listed. With `None` it is a queue's own
    /// transient copy of a message it pages out (one reference, not recovered):
    /// its message id is its offset in the segment, which the queue's in-memory
    /// location keeps (compaction moves records, not locations), so releasing it
    /// needs no read back (see [`MessageLog::release_page_out`]).
    ///
    /// `key`: the exchange and routing key, or `None` when the message went
    /// through the default exchange to the one queue that will read the record
    /// (the routing key is that queue's name; see `record::KEY_IS_QUEUE`).
    pub fn append_publish(
        &self,
        msg_id: Option<u64>,
        queues: &[u64],
        refs: u64,
        key: Option<(&[u8], &[u8])>,
        properties: &[u8],
        body: &[u8],
    ) -> (Loc, u64) {
        let flags = if msg_id.is_some() {
            record::FLAG_PERSISTENT
        } else {
            0
        };
        // A queue's own copy needs no publish time: its expiry is in the
        // queue's index entry, and it is never recovered.
        let published_at = msg_id.map(|_| crate::queue::now_ms());
        let (loc, ticket, new_segment) = self.append(|out, offset| {
            record::encode_publish(
                out,
                msg_id.unwrap_or(offset),
                flags,
                published_at,
                queues,
                key,
                properties,
                body,
            )
        });
        self.count_append(new_segment, loc.segment, refs, false);
        (loc, ticket)
    }

    /// Account for a record just appended to `segment` (`new_segment`: the
    /// append opened it) that `refs` queues reference; `stream`: a stream's.
    fn count_append(&self, new_segment: Option<u32>, segment: u32, refs: u64, stream: bool) {
        let mut segs = self.segments.lock();
        if let Some(s) = new_segment {
            segs.entry(s).or_default();
        }
        let info = segs.entry(segment).or_default();
        info.refs += refs;
        info.total_refs += refs.max(1);
        if stream {
            info.stream_refs += refs;
        }
    }

    /// Record that messages of `queue` are gone for good: `(message id, segment
    /// holding it)`. Each ack goes to its message's segment's ack file. Acks are
    /// not waited for: one lost in a crash only means a redelivery.
    pub fn append_ack(&self, queue: u64, acked: &[(u64, u32)]) {
        let mut by_segment: Vec<(u32, Vec<u64>)> = Vec::new();
        for &(id, seg) in acked {
            match by_segment.iter_mut().find(|(s, _)| *s == seg) {
                Some((_, ids)) => ids.push(id),
                None => by_segment.push((seg, vec![id])),
            }
        }
        let mut p = self.pending.lock();
        for (seg, ids) in by_segment {
            record::encode_ack(p.acks_for(seg), queue, &ids);
        }
        // A ticket of its own, so `last_ticket` covers the ack.
        p.next_ticket += 1;
        drop(p);
        self.wake.notify_one();
    }

    /// A queue is done with its own transient copy of a message (paged back in
    /// or dropped; `loc` as [`MessageLog::append_publish`] returned it for `None`):
    /// release it, and record that under queue id 0 in the segment's ack file
    /// so that compaction knows the record is dead.
    pub fn release_page_out(&self, loc: Loc) {
        let (segment, msg_id) = (loc.segment, loc.offset as u64);
        self.release(segment, 1);
        let mut p = self.pending.lock();
        match p.released.iter_mut().rev().find(|(s, _)| *s == segment) {
            Some((_, ids)) => ids.push(msg_id),
            None => p.released.push((segment, vec![msg_id])),
        }
    }

    fn append(&self, encode: impl FnOnce(&mut Vec<u8>, u64) -> usize) -> (Loc, u64, Option<u32>) {
        let mut p = self.pending.lock();
        let mut new_segment = None;
        if p.offset >= self.segment_size {
            p.segment += 1;
            p.offset = 0;
            new_segment = Some(p.segment);
        }
        let segment = p.segment;
        if p.bufs.last().map(|(s, _)| *s) != Some(segment) {
            p.bufs.push((segment, Vec::with_capacity(64 * 1024)));
        }
        let offset = p.offset;
        let len = match p.bufs.last_mut() {
            Some((_, buf)) => encode(buf, offset),
            None => 0,
        };
        p.offset += len as u64;
        self.pending_bytes.fetch_add(len, Ordering::Relaxed);
        let ticket = p.next_ticket;
        p.next_ticket += 1;
        drop(p);
        self.wake.notify_one();
        (
            Loc {
                segment,
                offset: offset as u32,
                len: len as u32,
            },
            ticket,
            new_segment,
        )
    }

    /// Append a stream queue's record (see [`record::encode_stream`]); the
    /// caller holds the stream's lock, so records of one stream are in offset
    /// order in the log. Shares the group commit with every other append.
    #[allow(clippy::too_many_arguments)]
    pub fn append_stream(
        &self,
        stream: u64,
        offset: u64,
        flags: u8,
        timestamp: u64,
        exchange: &[u8],
        routing_key: &[u8],
        properties: &[u8],
        body: &[u8],
    ) -> (Loc, u64) {
        let (loc, ticket, new_segment) = self.append(|out, _| {
            record::encode_stream(
                out,
                stream,
                offset,
                flags,
                timestamp,
                exchange,
                routing_key,
                properties,
                body,
            )
        });
        self.count_append(new_segment, loc.segment, 1, true);
        (loc, ticket)
    }

    /// Whether `segment` is complete: the writer has moved past it.
    pub fn is_sealed(&self, segment: u32) -> bool {
        self.written.lock().0 > segment
    }

    /// Write batches taken by the writer so far.
    pub fn batch_count(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }

    /// A stream's records found at startup (once; None if it had none).
    pub fn take_recovered_stream(&self, stream: u64) -> Option<StreamIndex> {
        self.recovered_streams.lock().remove(&stream)
    }

    /// Recovery is over (the broker calls this once every queue attached its
    /// recovered messages): release the records of recovered streams no
    /// queue took (deleted, with the deletion's release lost in a crash), and
    /// let segments nothing references be reclaimed from now on.
    pub fn release_unclaimed_streams(&self) {
        let unclaimed: Vec<StreamIndex> = self
            .recovered_streams
            .lock()
            .drain()
            .map(|(_, ix)| ix)
            .collect();
        for ix in unclaimed {
            for (seg, n) in ix.log_refs() {
                self.stream_refs(seg, n, false);
            }
        }
        self.recovering.store(false, Ordering::Release);
    }

    /// The highest stream id with records on disk (0: none).
    pub fn max_recovered_stream(&self) -> u64 {
        self.recovered_streams
            .lock()
            .keys()
            .copied()
            .max()
            .unwrap_or(0)
    }

    /// A stream holds (`add`) or dropped `n` records of `segment`.
    pub fn stream_refs(&self, segment: u32, n: u64, add: bool) {
        let mut segs = self.segments.lock();
        let info = segs.entry(segment).or_default();
        if add {
            info.refs += n;
            info.stream_refs += n;
        } else {
            info.refs = info.refs.saturating_sub(n);
            info.stream_refs = info.stream_refs.saturating_sub(n);
        }
    }

    /// Record that a stream dropped its records below `first` in `segments`
    /// (retention), so a restart does not bring them back while other queues'
    /// records keep the files.
    pub fn append_stream_truncation(&self, stream: u64, first: u64, segments: &[u32]) {
        let mut p = self.pending.lock();
        for &seg in segments {
            record::encode_ack(p.acks_for(seg), stream, &[record::TRUNCATED, first]);
        }
        drop(p);
        self.wake.notify_one();
    }

    /// Read bytes of `segment` from `pos` into `buf` (sequential stream reads;
    /// fewer than `buf.len()` at the end of what is written). Reads only what
    /// the writer has written.
    pub fn read_segment(&self, segment: u32, pos: u64, buf: &mut [u8]) -> io::Result<usize> {
        let limit = {
            let w = self.written.lock();
            if w.0 == segment {
                w.1
            } else if w.0 < segment {
                0
            } else {
                u64::MAX
            }
        };
        let want = (buf.len() as u64).min(limit.saturating_sub(pos)) as usize;
        if want == 0 {
            return Ok(0);
        }
        let reader = self.reader(segment)?;
        let mut done = 0;
        while done < want {
            match reader.file.read_at(&mut buf[done..want], pos + done as u64) {
                Ok(0) => break,
                Ok(k) => done += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(done)
    }

    /// Whether appends are outrunning the disk.
    pub fn is_backlogged(&self) -> bool {
        self.pending_bytes.load(Ordering::Relaxed) > self.max_pending
    }

    /// Wait until the writer has caught up below the pending limit. Publishing
    /// connections call this between batches of frames, which turns a slow disk
    /// into TCP backpressure on publishers instead of unbounded memory.
    pub async fn wait_for_room(&self) {
        while self.is_backlogged() {
            let notified = self.room.notified();
            if !self.is_backlogged() {
                break;
            }
            notified.await;
        }
    }

    /// A queue dropped `n` references into `segment` (message acked, purged,
    /// paged back in, or its queue deleted).
    pub fn release(&self, segment: u32, n: u64) {
        let mut segs = self.segments.lock();
        if let Some(s) = segs.get_mut(&segment) {
            s.refs = s.refs.saturating_sub(n);
        }
    }

    /// References to `segment` were added after the fact (recovery attaching
    /// messages to their queue).
    pub fn add_refs(&self, segment: u32, n: u64) {
        self.segments.lock().entry(segment).or_default().refs += n;
    }

    /// The log's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Read back a publish record.
    pub fn read(&self, loc: Loc) -> io::Result<Record> {
        self.wait_written(loc.segment, loc.offset as u64 + loc.len as u64);
        let reader = self.reader(loc.segment)?;
        let offset = reader.offset_of(loc.offset).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("record {:?} is not in the compacted segment", loc),
            )
        })?;
        let mut buf = vec![0u8; loc.len as usize];
        reader.file.read_exact_at(&mut buf, offset as u64)?;
        let mut b = Bytes::from(buf);
        record::read_record(&mut b)
            .map(|r| unpin(r, loc.len as usize))
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("{:?}", e)))
    }

    /// Read back the publish records at `locs`, in that order. Records next
    /// to each other in a segment (a backlog's, usually) are read with one
    /// `pread` of up to [`READ_RUN`] bytes instead of one each.
    pub fn read_many(&self, locs: &[Loc]) -> Vec<io::Result<Record>> {
        let mut out = Vec::with_capacity(locs.len());
        let mut i = 0;
        while i < locs.len() {
            let segment = locs[i].segment;
            self.wait_written(segment, locs[i].offset as u64 + locs[i].len as u64);
            let reader = match self.reader(segment) {
                Ok(r) => r,
                Err(e) => {
                    out.push(Err(e));
                    i += 1;
                    continue;
                }
            };
            // A run: same segment, each record right after the previous one
            // in the file as it is now (compaction keeps neighbours together).
            let Some(start) = reader.offset_of(locs[i].offset) else {
                out.push(self.read(locs[i]));
                i += 1;
                continue;
            };
            let mut end = start as u64 + locs[i].len as u64;
            let mut j = i + 1;
            while j < locs.len() && locs[j].segment == segment {
                match reader.offset_of(locs[j].offset) {
                    Some(o)
                        if o as u64 == end
                            && end - start as u64 + locs[j].len as u64 <= READ_RUN =>
                    {
                        end += locs[j].len as u64;
                        j += 1;
                    }
                    _ => break,
                }
            }
            if j == i + 1 {
                out.push(self.read(locs[i]));
                i += 1;
                continue;
            }
            self.wait_written(segment, locs[j - 1].offset as u64 + locs[j - 1].len as u64);
            let mut buf = vec![0u8; (end - start as u64) as usize];
            match reader.file.read_exact_at(&mut buf, start as u64) {
                Ok(()) => {
                    let run = buf.len();
                    let mut b = Bytes::from(buf);
                    for loc in &locs[i..j] {
                        let mut rec = b.split_to(loc.len as usize);
                        out.push(
                            record::read_record(&mut rec)
                                .map(|r| unpin(r, run))
                                .map_err(|e| {
                                    io::Error::new(io::ErrorKind::InvalidData, format!("{:?}", e))
                                }),
                        );
                    }
                }
                // One at a time then, so one bad place fails only its record.
                Err(_) => out.extend(locs[i..j].iter().map(|&l| self.read(l))),
            }
            i = j;
        }
        out
    }

    /// The message ids of the publish records at `locs` (`None` where not
    /// readable). Purging or deleting a queue with a paged durable backlog needs
    /// them for its acks; reading them a window of a segment at a time instead
    /// of one `pread` per record takes a 2-million-message purge from seconds
    /// to a fraction of one.
    pub fn read_msg_ids(&self, locs: &[Loc]) -> Vec<Option<u64>> {
        const WINDOW: u64 = 4 * 1024 * 1024;
        let mut ids = vec![None; locs.len()];
        let mut order: Vec<usize> = (0..locs.len()).collect();
        order.sort_unstable_by_key(|&i| (locs[i].segment, locs[i].offset));
        for group in order.chunk_by(|&a, &b| locs[a].segment == locs[b].segment) {
            let segment = locs[group[0]].segment;
            let end = group
                .iter()
                .map(|&i| locs[i].offset as u64 + locs[i].len as u64)
                .max()
                .unwrap_or(0);
            self.wait_written(segment, end);
            let Ok(reader) = self.reader(segment) else {
                continue;
            };
            // (index into locs, offset in the file as it is now)
            let mut at: Vec<(usize, u64)> = group
                .iter()
                .filter_map(|&i| reader.offset_of(locs[i].offset).map(|o| (i, o as u64)))
                .collect();
            at.sort_unstable_by_key(|&(_, o)| o);
            let mut buf = Vec::new();
            let mut k = 0;
            while k < at.len() {
                let start = at[k].1;
                let last = at[k..]
                    .iter()
                    .take_while(|&&(_, o)| o + record::PUBLISH_ID_END as u64 <= start + WINDOW)
                    .count();
                let len = at[k + last - 1].1 + record::PUBLISH_ID_END as u64 - start;
                buf.resize(len as usize, 0);
                // The last record of the file may be shorter than the most an
                // id can take: read what is there.
                let mut got = 0;
                while got < buf.len() {
                    match reader.file.read_at(&mut buf[got..], start + got as u64) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => got += k,
                    }
                }
                buf.truncate(got);
                if got > 0 {
                    for &(i, o) in &at[k..k + last] {
                        ids[i] = buf
                            .get((o - start) as usize..)
                            .and_then(record::peek_publish_id);
                    }
                }
                k += last;
            }
        }
        ids
    }

    /// Wait until the writer has written `segment` up to `end` (a record still
    /// in the pending buffer: rare, only a message paged out the moment it was
    /// appended).
    fn wait_written(&self, segment: u32, end: u64) {
        let mut w = self.written.lock();
        while w.0 < segment || (w.0 == segment && w.1 < end) {
            self.written_cv.wait(&mut w);
        }
    }

    /// The (cached) reader of a segment.
    fn reader(&self, segment: u32) -> io::Result<SegmentReader> {
        let mut readers = self.readers.lock();
        if let Some(r) = readers.get(&segment) {
            return Ok(r.clone());
        }
        let r = SegmentReader {
            file: Arc::new(File::open(segment_path(&self.dir, segment))?),
            remap: None,
        };
        readers.insert(segment, r.clone());
        Ok(r)
    }

    /// Delete the segments nothing needs any more and start compacting the
    /// sparse ones. Returns how many were deleted. Runs on the writer thread.
    fn reclaim(self: &Arc<Self>) -> usize {
        self.roll_idle_segment();
        let current = self.pending.lock().segment;
        let written_seg = self.written.lock().0;
        let mut doomed = Vec::new();
        let mut sparse = Vec::new();
        {
            let mut segs = self.segments.lock();
            let live: Vec<u32> = segs.keys().copied().collect();
            let now = std::time::Instant::now();
            for &n in &live {
                if n >= current || n >= written_seg {
                    break;
                }
                let Some(info) = segs.get_mut(&n) else {
                    continue;
                };
                if info.compacting {
                    continue;
                }
                if info.refs > 0 {
                    if info.stream_refs > 0
                        || !super::compact::is_sparse(info.refs, info.total_refs)
                    {
                        info.sparse_since = None;
                    } else if let Some(since) = info.sparse_since {
                        if now.duration_since(since) >= super::compact::SPARSE_FOR {
                            sparse.push(n);
                        }
                    } else {
                        info.sparse_since = Some(now);
                    }
                    continue;
                }
                segs.remove(&n);
                doomed.push(n);
            }
        }
        if !sparse.is_empty() {
            super::compact::start(self, sparse);
        }
        for n in &doomed {
            self.readers.lock().remove(n);
        }
        if !doomed.is_empty() {
            // Unlinking a 32 MiB file takes ~20 ms here: not on the thread whose
            // fsyncs publishers wait for.
            let dir = self.dir.clone();
            let paths: Vec<(u32, PathBuf, PathBuf)> = doomed
                .iter()
                .map(|n| (*n, segment_path(&dir, *n), acks_path(&dir, *n)))
                .collect();
            let summaries: Vec<PathBuf> = doomed
                .iter()
                .map(|n| summary::summary_path(&dir, *n))
                .collect();
            let _ = std::thread::Builder::new()
                .name("warren-log-reclaim".into())
                .spawn(move || {
                    for (n, seg, acks) in paths {
                        if let Err(e) = fs::remove_file(&seg) {
                            warn!(segment = n, error = %e, "message log: cannot delete segment");
                        }
                        let _ = fs::remove_file(&acks);
                    }
                    for s in summaries {
                        let _ = fs::remove_file(&s);
                    }
                });
        }
        doomed.len()
    }

    /// Close the segment being appended to when nothing is pending and few or
    /// none of its messages are live, so that a drained log can be deleted or
    /// compacted rather than wait for the segment to fill up. Only segments of
    /// at least 1/32 of the segment size roll, so light traffic does not create
    /// a file per pass. Runs on the writer thread: with nothing pending,
    /// everything appended has been written.
    fn roll_idle_segment(&self) {
        let mut p = self.pending.lock();
        if !p.bufs.is_empty() || p.shutdown || p.offset < self.segment_size / 32 {
            return;
        }
        let mut segs = self.segments.lock();
        let idle = segs
            .get(&p.segment)
            .is_none_or(|s| super::compact::is_sparse(s.refs, s.total_refs));
        if !idle {
            return;
        }
        p.segment += 1;
        p.offset = 0;
        segs.entry(p.segment).or_default();
        *self.written.lock() = (p.segment, 0);
    }

    /// Bytes of segment files on disk (for tests and metrics).
    pub fn disk_usage(&self) -> u64 {
        fs::read_dir(&self.dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0)
    }

    /// Stop the writer thread after it wrote everything pending.
    pub fn shutdown(&self) {
        self.pending.lock().shutdown = true;
        self.wake.notify_one();
    }

    fn run_writer(self: Arc<Self>) {
        let mut file: Option<(u32, File, u64)> = None;
        let mut last_reclaim = std::time::Instant::now();
        // Records a failed write left unwritten (disk full): written again,
        // first, on the next round; nothing after them is confirmed until
        // they are on disk (confirms are "every ticket up to N").
        let mut backlog: Vec<(u32, Vec<u8>)> = Vec::new();
        // After a failed fsync the kernel may have dropped the dirty pages
        // and a later fsync can succeed without them (Linux's "fsyncgate"):
        // nothing is ever confirmed again by this process. Records are still
        // written (not fsynced): the queues hold messages by their place in
        // the log (a transient message paged out exists nowhere else), and a
        // read waits until its record is written, so dropping them would
        // lose those messages and hang their readers.
        let mut sync_failed = false;
        // A failed write could not be cut off: the file holds a torn record,
        // and anything written after it would land at the wrong offset. The
        // only case where records are dropped (see `WriteError::Torn`).
        let mut torn = false;
        let mut write_failing = false;
        loop {
            let (new_bufs, mut acks, released, ticket, shutdown) = {
                let mut p = self.pending.lock();
                while p.bufs.is_empty() && p.acks.is_empty() && !p.shutdown {
                    let timed_out = self
                        .wake
                        .wait_for(&mut p, std::time::Duration::from_millis(500))
                        .timed_out();
                    if timed_out {
                        break;
                    }
                }
                if !p.bufs.is_empty() {
                    self.batches.fetch_add(1, Ordering::Relaxed);
                }
                (
                    std::mem::take(&mut p.bufs),
                    std::mem::take(&mut p.acks),
                    std::mem::take(&mut p.released),
                    p.next_ticket - 1,
                    p.shutdown,
                )
            };
            // Outside the lock: encoding thousands of ids must not hold up appends.
            for (segment, ids) in released {
                let i = match acks.iter().position(|(s, _)| *s == segment) {
                    Some(i) => i,
                    None => {
                        acks.push((segment, Vec::new()));
                        acks.len() - 1
                    }
                };
                record::encode_ack(&mut acks[i].1, 0, &ids);
            }
            let mut bufs = std::mem::take(&mut backlog);
            bufs.extend(new_bufs);
            // Whether the durable ticket may move to `ticket`: every publish
            // taken is on disk (or there were none), and the acks are written.
            let mut written = bufs.is_empty() && !sync_failed;
            if !bufs.is_empty() && !torn {
                match self.write_batch(&mut file, &mut bufs, !sync_failed) {
                    Ok(()) => {
                        if std::mem::take(&mut write_failing) {
                            tracing::warn!("message log writes succeed again; confirms resume");
                        }
                        written = !sync_failed;
                        self.room.notify_waiters();
                    }
                    Err(WriteError::Write(e)) => {
                        // Disk full (or another write error): what did not
                        // reach the file is kept and retried; publishers wait
                        // for their confirms (and are blocked by the disk
                        // alarm) until there is room again. Said once, not
                        // at every retry.
                        if !std::mem::replace(&mut write_failing, true) {
                            tracing::error!(error = %e,
                                "message log write failed; confirms wait until it succeeds");
                        } else {
                            tracing::debug!(error = %e, "message log write failed again");
                        }
                        backlog = bufs;
                        std::thread::sleep(std::time::Duration::from_millis(200));
                    }
                    Err(WriteError::Sync(e)) => {
                        if !std::mem::replace(&mut sync_failed, true) {
                            tracing::error!(error = %e,
                                "message log fsync failed: no more confirms until the broker restarts");
                        }
                        // The rest of the batch (an fsync at a segment roll
                        // failed) is written next round, without fsync.
                        backlog = bufs;
                    }
                    Err(WriteError::Torn(e)) => {
                        tracing::error!(error = %e,
                            "message log: a failed write could not be cut off; \
                             nothing more is written or confirmed until the broker restarts");
                        sync_failed = true;
                        torn = true;
                        backlog = bufs;
                    }
                }
            }
            if torn && !backlog.is_empty() {
                // Dropped unconfirmed: their publishers never get a confirm.
                for (_, buf) in backlog.drain(..) {
                    self.pending_bytes.fetch_sub(buf.len(), Ordering::Relaxed);
                }
                self.room.notify_waiters();
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            // After the publishes of the same batch; not synced (a lost ack is a
            // redelivery, and the OS keeps them through a process crash).
            if let Err(e) = self.write_acks(acks) {
                tracing::error!(error = %e, "message log: cannot write acks");
            }
            if written {
                // Only a real move wakes the waiters (an idle round has
                // nothing new).
                self.durable.send_if_modified(|d| {
                    let moved = *d < ticket;
                    if moved {
                        *d = ticket;
                    }
                    moved
                });
            }
            // Not while recovering: the writer runs from `open` on, but the
            // queues attach their recovered messages after it (a large
            // backlog takes longer than one reclaim period), and a segment
            // reclaimed before its queue claimed it would be lost.
            if !self.recovering.load(Ordering::Acquire)
                && last_reclaim.elapsed() > std::time::Duration::from_millis(200)
            {
                self.reclaim();
                last_reclaim = std::time::Instant::now();
            }
            if shutdown {
                return;
            }
        }
    }

    fn write_acks(&self, acks: Vec<(u32, Vec<u8>)>) -> io::Result<()> {
        if acks.is_empty() {
            return Ok(());
        }
        let _io = self.acks_io.lock();
        for (segment, buf) in acks {
            // A segment deleted meanwhile needs no acks.
            if !self.segments.lock().contains_key(&segment) {
                continue;
            }
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(acks_path(&self.dir, segment))?
                .write_all(&buf)?;
        }
        Ok(())
    }

    /// Append `bufs` (removing each one once it is in its file) and fsync.
    /// A write that fails part-way is cut off again (the file truncated to
    /// where it was), so a retry appends whole records and recovery never
    /// finds a torn record in the middle of a segment.
    fn write_batch(
        &self,
        file: &mut Option<(u32, File, u64)>,
        bufs: &mut Vec<(u32, Vec<u8>)>,
        sync: bool,
    ) -> Result<(), WriteError> {
        let mut done = 0;
        let sync = sync && self.fsync;
        let result = self.write_bufs(file, &bufs[..], &mut done, sync);
        bufs.drain(..done);
        result?;
        if sync {
            if let Some((_, f, _)) = file.as_ref() {
                f.sync_data().map_err(WriteError::Sync)?;
            }
        }
        Ok(())
    }

    fn write_bufs(
        &self,
        file: &mut Option<(u32, File, u64)>,
        bufs: &[(u32, Vec<u8>)],
        done: &mut usize,
        sync: bool,
    ) -> Result<(), WriteError> {
        for (segment, buf) in bufs {
            let segment = *segment;
            if file.as_ref().map(|(s, _, _)| *s) != Some(segment) {
                if let Some((old, f, _)) = file.take() {
                    if sync {
                        f.sync_data().map_err(WriteError::Sync)?;
                    }
                    // Complete: summarize it, so a restart need not read it.
                    let _ = self.sealed.lock().send(old);
                }
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(segment_path(&self.dir, segment))
                    .map_err(WriteError::Write)?;
                // Its length, kept from here on: a failed write is cut off
                // back to it without an fstat per record.
                let len = f.metadata().map_err(WriteError::Write)?.len();
                *file = Some((segment, f, len));
            }
            if let Some((_, f, len)) = file.as_mut() {
                if let Err(e) = f.write_all(buf) {
                    if let Err(t) = f.set_len(*len) {
                        // The torn record stays; recovery drops the rest of
                        // this segment from it, so never write after it.
                        tracing::error!(error = %t, "message log: cannot cut off a failed write");
                        return Err(WriteError::Torn(e));
                    }
                    return Err(WriteError::Write(e));
                }
                *len += buf.len() as u64;
            }
            *done += 1;
            self.pending_bytes.fetch_sub(buf.len(), Ordering::Relaxed);
            let mut w = self.written.lock();
            if w.0 != segment {
                *w = (segment, 0);
            }
            w.1 += buf.len() as u64;
            drop(w);
            self.written_cv.notify_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_durable(log: &MessageLog, ticket: u64) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while log.durable_ticket() < ticket {
            assert!(std::time::Instant::now() < deadline, "not durable");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Found by the `log_recovery` fuzz target: the writer thread reclaimed
    /// recovered segments whose queues had not attached their messages yet
    /// (half a second after `open`; a broker restoring a large backlog takes
    /// longer), deleting persistent messages at startup.
    #[test]
    fn recovered_segments_are_not_reclaimed_before_recovery_ends() {
        let dir =
            std::env::temp_dir().join(format!("warren-log-recovering-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let opts = LogOptions {
            fsync: false,
            ..Default::default()
        };
        {
            let (log, _) = MessageLog::open(&dir, &opts).expect("open");
            let id = log.next_msg_id();
            let (_, ticket) =
                log.append_publish(Some(id), &[7], 1, Some((b"", b"q")), b"\x00\x00", b"m");
            wait_durable(&log, ticket);
            log.shutdown();
        }
        let (log, mut recovered) = MessageLog::open(&dir, &opts).expect("reopen");
        let first = recovered
            .get_mut(&7)
            .and_then(|q| q.pop(&log))
            .expect("the message recovered");
        let loc = first.loc;
        // Longer than the writer's idle wait plus a reclaim period.
        std::thread::sleep(std::time::Duration::from_millis(1200));
        assert!(log.read(loc).is_ok(), "segment reclaimed during recovery");
        // The queue claims it, recovery ends: it stays while referenced...
        log.add_refs(loc.segment, 1);
        log.release_unclaimed_streams();
        std::thread::sleep(std::time::Duration::from_millis(1200));
        assert!(log.read(loc).is_ok(), "referenced segment reclaimed");
        // ...and goes once acked and released.
        log.append_ack(7, &[(first.msg_id, loc.segment)]);
        log.release(loc.segment, 1);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while segment_path(&dir, loc.segment).exists() {
            assert!(std::time::Instant::now() < deadline, "never reclaimed");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        log.shutdown();
        let _ = fs::remove_dir_all(&dir);
    }

    /// Sealed segments get summaries; a restart reads them instead of the
    /// segments and finds the same messages (acks applied, counts exact);
    /// a damaged summary is ignored and rebuilt from the segment.
    #[test]
    fn summaries_recover_what_a_scan_does() {
        let dir = std::env::temp_dir().join(format!("warren-log-summary-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let opts = LogOptions {
            fsync: false,
            segment_size: 4096,
            ..Default::default()
        };
        let mut ids = Vec::new();
        {
            let (log, _) = MessageLog::open(&dir, &opts).expect("open");
            let mut ticket = 0;
            for i in 0..500u64 {
                let id = log.next_msg_id();
                let queues: &[u64] = if i % 5 == 0 { &[7, 8] } else { &[7] };
                let (loc, t) = log.append_publish(
                    Some(id),
                    queues,
                    1,
                    Some((b"", b"q")),
                    b"\x00\x00",
                    &i.to_le_bytes(),
                );
                ticket = t;
                ids.push((id, loc));
            }
            wait_durable(&log, ticket);
            // Queue 7 acks its first 100.
            let acked: Vec<(u64, u32)> =
                ids[..100].iter().map(|(id, l)| (*id, l.segment)).collect();
            log.append_ack(7, &acked);
            let last = ids.last().map(|(_, l)| l.segment).unwrap_or(0);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !summary::summary_path(&dir, last - 1).exists() {
                assert!(std::time::Instant::now() < deadline, "no summaries");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::thread::sleep(std::time::Duration::from_millis(700));
            log.shutdown();
        }
        let check = |damage: bool| {
            if damage {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(summary::summary_path(&dir, 2))
                    .expect("summary");
                f.set_len(10).expect("tear");
            }
            let (log, mut rec) = MessageLog::open(&dir, &opts).expect("reopen");
            let q7 = rec.get_mut(&7).expect("queue 7");
            assert_eq!(q7.len(), 400);
            let got: Vec<u64> = std::iter::from_fn(|| q7.pop(&log))
                .map(|e| e.msg_id)
                .collect();
            let want: Vec<u64> = ids[100..].iter().map(|(id, _)| *id).collect();
            assert_eq!(got, want);
            let q8 = rec.get_mut(&8).expect("queue 8");
            assert_eq!(q8.len(), 100);
            let e = q8.pop(&log).expect("first of 8");
            assert!(
                matches!(log.read(e.loc), Ok(Record::Publish { msg_id, .. }) if msg_id == ids[0].0)
            );
            log.shutdown();
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        check(false);
        check(true);
        assert!(
            summary::read(
                &dir,
                2,
                fs::metadata(segment_path(&dir, 2)).expect("seg").len()
            )
            .is_some(),
            "rebuilt"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    /// A priority queue's recovered backlog is split per level from the
    /// summaries' priority histograms (no entry read), and from its entries
    /// when the summaries are of an earlier binary (`WSM1`, no histogram):
    /// the same levels, lengths and order either way.
    #[test]
    fn priority_split_uses_summary_histograms() {
        use crate::properties::BasicProperties;
        let dir = std::env::temp_dir().join(format!("warren-log-prio-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let opts = LogOptions {
            fsync: false,
            segment_size: 4096,
            ..Default::default()
        };
        let mut ids = Vec::new();
        {
            let (log, _) = MessageLog::open(&dir, &opts).expect("open");
            let mut ticket = 0;
            for i in 0..600u64 {
                let id = log.next_msg_id();
                let props = BasicProperties {
                    priority: Some((i % 7) as u8),
                    delivery_mode: Some(2),
                    ..Default::default()
                }
                .encode();
                let (_, t) = log.append_publish(
                    Some(id),
                    &[9],
                    1,
                    Some((b"", b"q")),
                    &props,
                    &i.to_le_bytes(),
                );
                ticket = t;
                ids.push((id, (i % 7) as u8));
            }
            wait_durable(&log, ticket);
            let last = log.pending.lock().segment;
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !summary::summary_path(&dir, last - 1).exists() {
                assert!(std::time::Instant::now() < deadline, "no summaries");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
            log.shutdown();
        }
        // Levels 0..=4: priorities 5 and 6 count as 4.
        let want: Vec<Vec<u64>> = (0..5u8)
            .map(|l| {
                ids.iter()
                    .filter(|(_, p)| (*p).min(4) == l)
                    .map(|(id, _)| *id)
                    .collect()
            })
            .collect();
        let check = || {
            let (log, mut rec) = MessageLog::open(&dir, &opts).expect("reopen");
            let q = rec.remove(&9).expect("queue 9");
            assert_eq!(q.len(), 600);
            let mut levels = q.split_levels(&log, 5);
            for (l, level) in levels.iter_mut().enumerate() {
                assert_eq!(level.len(), want[l].len() as u64, "level {l}");
                let got: Vec<u64> = std::iter::from_fn(|| level.pop(&log))
                    .map(|e| e.msg_id)
                    .collect();
                assert_eq!(got, want[l], "level {l}");
            }
            log.shutdown();
            std::thread::sleep(std::time::Duration::from_millis(100));
        };
        let sums: Vec<PathBuf> = fs::read_dir(&dir)
            .expect("dir")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "sum"))
            .collect();
        assert!(sums.len() >= 5, "{} summaries", sums.len());
        let n0: u32 = sums[0]
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .expect("number");
        let len0 = fs::metadata(segment_path(&dir, n0)).expect("seg").len();
        let s0 = summary::read(&dir, n0, len0).expect("summary");
        assert!(s0.levels[0].as_ref().is_some_and(|l| l.0.len() > 1));
        check();
        // The same summaries as an earlier binary wrote them: no histogram.
        for p in &sums {
            let mut b = fs::read(p).expect("read");
            let n = u32::from_le_bytes(b[4..8].try_into().expect("4"));
            let nq = u32::from_le_bytes(b[32..36].try_into().expect("4")) as usize;
            let levels_len = u32::from_le_bytes(b[36..40].try_into().expect("4")) as usize;
            let head = 36 + 44 * nq;
            let mut v1 = b"WSM1".to_vec();
            v1.extend_from_slice(&b[4..36]);
            v1.extend_from_slice(&b[40..40 + 44 * nq]);
            // Entries move up by the histograms' and `levels_len`'s bytes.
            for i in 0..nq {
                let o = 36 + 44 * i + 24;
                let off = u64::from_le_bytes(v1[o..o + 8].try_into().expect("8"));
                let off = off - (levels_len as u64 + 4);
                v1[o..o + 8].copy_from_slice(&off.to_le_bytes());
            }
            let crc = crc32c::crc32c(&v1[..head]);
            v1.extend_from_slice(&crc.to_le_bytes());
            v1.extend_from_slice(&b.split_off(40 + 44 * nq + levels_len + 4));
            fs::write(p, &v1).expect("write");
            let len = fs::metadata(segment_path(&dir, n)).expect("seg").len();
            let s = summary::read(&dir, n, len).expect("a WSM1 summary is read");
            assert!(s.levels.iter().all(|l| l.is_none()));
        }
        check();
        let _ = fs::remove_dir_all(&dir);
    }

    /// Segments holding stream records get summaries too; a restart rebuilds
    /// each stream's index from their blocks without reading the records, and
    /// gets the index a scan builds (retention's truncation applied).
    #[test]
    fn stream_summaries_rebuild_what_a_scan_does() {
        let dir = std::env::temp_dir().join(format!("warren-log-ssum-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let opts = LogOptions {
            fsync: false,
            segment_size: 8192,
            ..Default::default()
        };
        let cut = {
            let (log, _) = MessageLog::open(&dir, &opts).expect("open");
            let mut ix = StreamIndex::new(20_000);
            let mut ticket = 0;
            let mut locs = Vec::new();
            for offset in 0..2000u64 {
                let mut flags = 0;
                if ix.should_roll() {
                    flags |= record::STREAM_SEGMENT_START;
                }
                if offset % 10 == 0 {
                    flags |= record::STREAM_CHUNK_START;
                }
                let (loc, t) =
                    log.append_stream(3, offset, flags, 5 + offset, b"", b"s", b"", b"body");
                ix.push(
                    offset,
                    loc,
                    5 + offset,
                    flags & record::STREAM_SEGMENT_START != 0,
                    flags & record::STREAM_CHUNK_START != 0,
                    None,
                );
                locs.push(loc);
                // A classic queue's message among them.
                if offset % 50 == 0 {
                    let id = log.next_msg_id();
                    log.append_publish(Some(id), &[7], 1, None, b"", b"m");
                }
                ticket = t;
            }
            wait_durable(&log, ticket);
            // Retention dropped the first stream segment.
            let dropped = ix.retain(Some(1), None, 0);
            let cut = dropped.last().map_or(0, |s| s.end);
            let segs: Vec<u32> = dropped
                .iter()
                .flat_map(|s| s.log_refs.iter().map(|(g, _)| *g))
                .collect();
            log.append_stream_truncation(3, cut, &segs);
            let last = locs.last().map_or(0, |l| l.segment);
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while !summary::summary_path(&dir, last - 1).exists() {
                assert!(std::time::Instant::now() < deadline, "no summaries");
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            std::thread::sleep(std::time::Duration::from_millis(300));
            log.shutdown();
            cut
        };
        assert!(cut > 0);
        let recover = || {
            let (log, rec) = MessageLog::open(&dir, &opts).expect("reopen");
            let ix = log.take_recovered_stream(3).expect("stream 3");
            let q7 = rec.get(&7).map(|q| q.len());
            log.shutdown();
            std::thread::sleep(std::time::Duration::from_millis(100));
            (format!("{ix:?}"), ix.first(), ix.next(), q7)
        };
        let from_summaries = recover();
        assert_eq!((from_summaries.1, from_summaries.2), (cut, 2000));
        assert_eq!(from_summaries.3, Some(40));
        for e in fs::read_dir(&dir).expect("dir").flatten() {
            if e.path().extension().is_some_and(|x| x == "sum") {
                fs::remove_file(e.path()).expect("rm");
            }
        }
        let from_scan = recover();
        assert_eq!(from_summaries, from_scan);
        let _ = fs::remove_dir_all(&dir);
    }
}
