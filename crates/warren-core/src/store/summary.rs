//! Segment summaries: what recovery needs of a sealed segment, without reading it.
//!
//! # Why (issue 16: listening within seconds with 100M messages on disk)
//!
//! Recovery used to read and checksum every record of every segment before the
//! broker listened: ~2 s per million messages. A *summary* (`NNNNNNNN.sum`
//! next to `NNNNNNNN.seg`) is written once a segment is sealed (the writer
//! moved past it) by a background thread, and by recovery for every segment
//! it had to scan. It holds, per durable queue, how many persistent messages
//! of the segment list that queue, their byte total, and the queue's *index
//! entries* for them (message id, location, priority: ~4 bytes each,
//! delta-encoded). Startup reads only the summaries' tables, the ack files,
//! and the unsealed tail segment; queues start with their exact lengths and
//! read their entries lazily, a segment at a time, as they drain (see
//! [`super::recovered`]).
//!
//! # Format
//!
//! ```text
//! "WSM2" segment:u32 seg_len:u64 max_msg_id:u64 total_refs:u64 nqueues:u32
//! levels_len:u32
//! nqueues × (queue:u64 count:u64 bytes:u64 off:u64 len:u64 crc:u32)
//! levels_len bytes: per slot, in slot order, its priority histogram:
//!   n (varint), n × (priority u8, count varint, bytes varint), by priority
//! crc32c(all of the above):u32
//! entries of each queue at its (off, len), crc32c'd separately:
//!   per message: zigzag(id - previous id), offset - previous record's end,
//!   record length (LEB128 varints), priority (u8)
//! ```
//!
//! Why the histogram (issue 16): a priority queue's recovered backlog is
//! split per level, and a message's priority is only in its entry. Without
//! per-priority counts, the split read every entry of every segment (a few
//! bytes per message: 100M messages, ~400 MB read before the queue was
//! usable); with them it is O(segments), and only segments with acks of the
//! queue (whose live entries recovery reads anyway to count them) are
//! counted from their entries. `WSM1` summaries (earlier binaries: the same
//! without `levels_len` and the histograms) are still read; their queues
//! have no histogram and a priority queue counts those segments' entries.
//!
//! The summary describes the segment *before* acks (acks keep going to the ack
//! file; a queue filters its entries through it when it reads them). It is a
//! cache, never the only copy: the segment number and file length it was made
//! for, and the checksums, are checked, and a summary that is missing, torn or
//! stale (the segment was compacted since) is ignored: the segment is scanned
//! as before and the summary written again. Hence no fsync: whatever a crash
//! leaves of it, recovery either trusts a complete one or rebuilds it.
//!
//! Streams' records get slots of their own (queue id `stream | STREAM_SLOT`)
//! holding the stream's index blocks in the segment, not an entry per record
//! (see [`super::stream_summary`]). Summaries of earlier binaries were never
//! written for segments holding stream records, so those are scanned once.

use bytes::Bytes;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 4] = b"WSM2";
/// Summaries of earlier binaries: no priority histograms.
const MAGIC_V1: &[u8; 4] = b"WSM1";
const FIXED: usize = 4 + 4 + 8 + 8 + 8 + 4;
/// `levels_len`, after the fixed part (`WSM2` only).
const LEVELS_LEN: usize = 4;
/// A histogram section longer than this is garbage (256 levels per slot).
const MAX_LEVELS_LEN: usize = 64 << 20;
const SLOT: usize = 8 * 5 + 4;
/// A summary claiming more queues than this is garbage.
const MAX_QUEUES: usize = 1 << 20;

pub(super) fn summary_path(dir: &Path, n: u32) -> PathBuf {
    dir.join(format!("{:08}.sum", n))
}

/// One persistent message of a queue in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub msg_id: u64,
    pub offset: u32,
    pub len: u32,
    pub priority: u8,
}

/// Messages of one priority (as published, not yet capped to a queue's
/// top level) among a queue's messages in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelCount {
    pub priority: u8,
    pub count: u64,
    pub bytes: u64,
}

/// A queue's messages in a segment per priority, ascending by priority
/// (one element for a queue whose messages carry no priority).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Levels(pub Vec<LevelCount>);

impl Levels {
    pub fn add(&mut self, priority: u8, bytes: u64) {
        // Usually one or a few priorities: the last one hit, else a search.
        let i = match self.0.last() {
            Some(l) if l.priority == priority => self.0.len() - 1,
            _ => match self.0.binary_search_by_key(&priority, |l| l.priority) {
                Ok(i) => i,
                Err(i) => {
                    self.0.insert(
                        i,
                        LevelCount {
                            priority,
                            count: 0,
                            bytes: 0,
                        },
                    );
                    i
                }
            },
        };
        self.0[i].count += 1;
        self.0[i].bytes += bytes;
    }

    fn encode(&self, out: &mut Vec<u8>) {
        put_varint(out, self.0.len() as u64);
        for l in &self.0 {
            out.push(l.priority);
            put_varint(out, l.count);
            put_varint(out, l.bytes);
        }
    }

    fn decode(b: &[u8], pos: &mut usize) -> Option<Levels> {
        let n = get_varint(b, pos)?;
        if n > 256 {
            return None;
        }
        let mut out = Vec::with_capacity(n as usize);
        for _ in 0..n {
            let priority = *b.get(*pos)?;
            *pos += 1;
            let count = get_varint(b, pos)?;
            let bytes = get_varint(b, pos)?;
            out.push(LevelCount {
                priority,
                count,
                bytes,
            });
        }
        Some(Levels(out))
    }

    pub fn count(&self) -> u64 {
        self.0.iter().map(|l| l.count).sum()
    }
}

/// The entries of one queue in one segment, being encoded.
#[derive(Debug, Default, Clone)]
pub struct EntryList {
    pub buf: Vec<u8>,
    pub count: u64,
    pub bytes: u64,
    /// The same messages per priority.
    pub levels: Levels,
    prev_id: u64,
    prev_end: u32,
}

impl EntryList {
    pub fn push(&mut self, e: Entry) {
        let delta = e.msg_id.wrapping_sub(self.prev_id) as i64;
        put_varint(&mut self.buf, ((delta << 1) ^ (delta >> 63)) as u64);
        put_varint(&mut self.buf, e.offset.wrapping_sub(self.prev_end) as u64);
        put_varint(&mut self.buf, e.len as u64);
        self.buf.push(e.priority);
        self.prev_id = e.msg_id;
        self.prev_end = e.offset.wrapping_add(e.len);
        self.count += 1;
        self.bytes += e.len as u64;
        self.levels.add(e.priority, e.len as u64);
    }
}

/// Decodes an [`EntryList`]'s bytes.
pub struct EntryReader {
    data: Bytes,
    pos: usize,
    prev_id: u64,
    prev_end: u32,
}

impl EntryReader {
    pub fn new(data: Bytes) -> Self {
        EntryReader {
            data,
            pos: 0,
            prev_id: 0,
            prev_end: 0,
        }
    }
}

impl Iterator for EntryReader {
    type Item = Entry;

    /// The next entry; `None` at the end (or at bytes that do not decode).
    fn next(&mut self) -> Option<Entry> {
        let z = get_varint(&self.data, &mut self.pos)?;
        let delta = ((z >> 1) as i64) ^ -((z & 1) as i64);
        let gap = get_varint(&self.data, &mut self.pos)?;
        let len = u32::try_from(get_varint(&self.data, &mut self.pos)?).ok()?;
        let priority = *self.data.get(self.pos)?;
        self.pos += 1;
        let msg_id = self.prev_id.wrapping_add(delta as u64);
        let offset = self.prev_end.wrapping_add(u32::try_from(gap).ok()?);
        self.prev_id = msg_id;
        self.prev_end = offset.wrapping_add(len);
        Some(Entry {
            msg_id,
            offset,
            len,
            priority,
        })
    }
}

/// Where a queue's entries are in a summary file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub queue: u64,
    pub count: u64,
    pub bytes: u64,
    pub off: u64,
    pub len: u64,
    pub crc: u32,
}

/// A summary's table (what startup reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    pub max_msg_id: u64,
    pub total_refs: u64,
    pub slots: Vec<Slot>,
    /// Per slot (same index), its messages per priority: `None` in a `WSM1`
    /// summary, empty for a stream's slot.
    pub levels: Vec<Option<Levels>>,
}

/// What a scan of a segment found, summary-wise.
#[derive(Debug, Default)]
pub struct Scan {
    pub max_msg_id: u64,
    pub total_refs: u64,
    /// Per queue, its persistent messages in the segment, in file order.
    pub queues: BTreeMap<u64, EntryList>,
    /// Per stream, its index blocks in the segment (see
    /// [`super::stream_summary`]).
    pub streams: BTreeMap<u64, super::stream_summary::StreamFrag>,
}

/// Write `scan` as segment `n`'s summary (for a segment file `seg_len` long).
/// Temporary file + rename: a reader sees the old file or the whole new one.
pub fn write(dir: &Path, n: u32, seg_len: u64, scan: &Scan) -> io::Result<Summary> {
    use super::stream_summary::STREAM_SLOT;
    // Queues' entries first (their slots in `scan.queues` order), then
    // streams' blocks under `stream | STREAM_SLOT`.
    let streams: Vec<(u64, Vec<u8>, u64, u64)> = scan
        .streams
        .iter()
        .map(|(&s, f)| (s | STREAM_SLOT, f.encode(), f.count, f.bytes))
        .collect();
    let no_levels = Levels::default();
    let lists = scan
        .queues
        .iter()
        .map(|(&q, l)| (q, l.buf.as_slice(), l.count, l.bytes, &l.levels))
        .chain(
            streams
                .iter()
                .map(|(s, b, c, n)| (*s, b.as_slice(), *c, *n, &no_levels)),
        );
    let nslots = scan.queues.len() + streams.len();
    let mut levels_buf = Vec::new();
    let mut levels = Vec::with_capacity(nslots);
    for (_, _, _, _, l) in lists.clone() {
        l.encode(&mut levels_buf);
        levels.push(Some(l.clone()));
    }
    let head_len = FIXED + LEVELS_LEN + SLOT * nslots + levels_buf.len() + 4;
    let mut head = Vec::with_capacity(head_len);
    head.extend_from_slice(MAGIC);
    head.extend_from_slice(&n.to_le_bytes());
    head.extend_from_slice(&seg_len.to_le_bytes());
    head.extend_from_slice(&scan.max_msg_id.to_le_bytes());
    head.extend_from_slice(&scan.total_refs.to_le_bytes());
    head.extend_from_slice(&(nslots as u32).to_le_bytes());
    head.extend_from_slice(&(levels_buf.len() as u32).to_le_bytes());
    let mut off = head_len as u64;
    let mut slots = Vec::with_capacity(nslots);
    let mut bodies = Vec::with_capacity(nslots);
    for (queue, buf, count, bytes, _) in lists {
        let slot = Slot {
            queue,
            count,
            bytes,
            off,
            len: buf.len() as u64,
            crc: crc32c::crc32c(buf),
        };
        off += slot.len;
        for v in [slot.queue, slot.count, slot.bytes, slot.off, slot.len] {
            head.extend_from_slice(&v.to_le_bytes());
        }
        head.extend_from_slice(&slot.crc.to_le_bytes());
        slots.push(slot);
        bodies.push(buf);
    }
    head.extend_from_slice(&levels_buf);
    let crc = crc32c::crc32c(&head);
    head.extend_from_slice(&crc.to_le_bytes());
    let path = summary_path(dir, n);
    let tmp = path.with_extension("sum.tmp");
    {
        let mut f = io::BufWriter::new(File::create(&tmp)?);
        f.write_all(&head)?;
        for buf in bodies {
            f.write_all(buf)?;
        }
        f.flush()?;
    }
    fs::rename(&tmp, &path)?;
    Ok(Summary {
        max_msg_id: scan.max_msg_id,
        total_refs: scan.total_refs,
        slots,
        levels,
    })
}

/// Segment `n`'s summary table, if there is a complete one made for a
/// segment file `seg_len` long (anything else: `None`, scan the segment).
pub fn read(dir: &Path, n: u32, seg_len: u64) -> Option<Summary> {
    let mut f = File::open(summary_path(dir, n)).ok()?;
    let mut fixed = [0u8; FIXED];
    f.read_exact(&mut fixed).ok()?;
    let u64_at = |b: &[u8], i: usize| super::spill::u64_at(b, i);
    let v2 = match &fixed[..4] {
        m if m == MAGIC => true,
        m if m == MAGIC_V1 => false,
        _ => return None,
    };
    if super::spill::u32_at(&fixed, 4) != n || u64_at(&fixed, 8) != seg_len {
        return None;
    }
    let nq = super::spill::u32_at(&fixed, 32) as usize;
    if nq > MAX_QUEUES {
        return None;
    }
    let mut crc = crc32c::crc32c(&fixed);
    let mut levels_len = 0usize;
    if v2 {
        let mut b = [0u8; LEVELS_LEN];
        f.read_exact(&mut b).ok()?;
        crc = crc32c::crc32c_append(crc, &b);
        levels_len = u32::from_le_bytes(b) as usize;
        if levels_len > MAX_LEVELS_LEN {
            return None;
        }
    }
    let body = SLOT * nq + levels_len;
    let mut table = vec![0u8; body + 4];
    f.read_exact(&mut table).ok()?;
    crc = crc32c::crc32c_append(crc, &table[..body]);
    if super::spill::u32_at(&table, body) != crc {
        return None;
    }
    let levels = match v2 {
        true => {
            let b = &table[SLOT * nq..body];
            let mut pos = 0;
            let mut out = Vec::with_capacity(nq);
            for _ in 0..nq {
                out.push(Some(Levels::decode(b, &mut pos)?));
            }
            out
        }
        false => vec![None; nq],
    };
    let file_len = f.metadata().ok()?.len();
    let mut slots = Vec::with_capacity(nq);
    for s in table[..SLOT * nq].chunks_exact(SLOT) {
        let slot = Slot {
            queue: u64_at(s, 0),
            count: u64_at(s, 8),
            bytes: u64_at(s, 16),
            off: u64_at(s, 24),
            len: u64_at(s, 32),
            crc: super::spill::u32_at(s, 40),
        };
        if slot.off.checked_add(slot.len)? > file_len {
            return None;
        }
        slots.push(slot);
    }
    Some(Summary {
        max_msg_id: u64_at(&fixed, 16),
        total_refs: u64_at(&fixed, 24),
        slots,
        levels,
    })
}

/// A queue's entries from segment `n`'s summary (`None`: gone or damaged).
pub fn read_entries(dir: &Path, n: u32, slot: &Slot) -> Option<Bytes> {
    let f = File::open(summary_path(dir, n)).ok()?;
    let mut buf = vec![0u8; usize::try_from(slot.len).ok()?];
    f.read_exact_at(&mut buf, slot.off).ok()?;
    (crc32c::crc32c(&buf) == slot.crc).then(|| Bytes::from(buf))
}

pub(super) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub(super) fn get_varint(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Zigzag: small negative and positive deltas both as small varints.
pub(super) fn put_signed(out: &mut Vec<u8>, v: i64) {
    put_varint(out, ((v << 1) ^ (v >> 63)) as u64);
}

pub(super) fn get_signed(b: &[u8], pos: &mut usize) -> Option<i64> {
    let z = get_varint(b, pos)?;
    Some(((z >> 1) as i64) ^ -((z & 1) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_and_summary_checks() {
        let mut list = EntryList::default();
        let entries = [
            Entry {
                msg_id: 10,
                offset: 0,
                len: 60,
                priority: 0,
            },
            Entry {
                msg_id: 9,
                offset: 60,
                len: 61,
                priority: 3,
            },
            Entry {
                msg_id: 12,
                offset: 500,
                len: 70_000,
                priority: 0,
            },
        ];
        for e in entries {
            list.push(e);
        }
        assert_eq!(list.count, 3);
        let back: Vec<Entry> = EntryReader::new(Bytes::from(list.buf.clone())).collect();
        assert_eq!(back, entries);

        let dir = std::env::temp_dir().join(format!("warren-summary-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let mut scan = Scan {
            max_msg_id: 12,
            total_refs: 4,
            ..Scan::default()
        };
        scan.queues.insert(7, list);
        let written = write(&dir, 3, 1234, &scan).expect("write");
        assert_eq!(read(&dir, 3, 1234), Some(written.clone()));
        // Stale (other length), wrong segment, torn: ignored.
        assert_eq!(read(&dir, 3, 1235), None);
        fs::copy(summary_path(&dir, 3), summary_path(&dir, 4)).expect("copy");
        assert_eq!(read(&dir, 4, 1234), None);
        let slot = written.slots[0];
        let data = read_entries(&dir, 3, &slot).expect("entries");
        assert_eq!(EntryReader::new(data).count(), 3);
        let f = fs::OpenOptions::new()
            .write(true)
            .open(summary_path(&dir, 3))
            .expect("open");
        f.write_at(&[0xee], slot.off + 1).expect("corrupt");
        assert_eq!(read_entries(&dir, 3, &slot), None);
        f.set_len(20).expect("truncate");
        assert_eq!(read(&dir, 3, 1234), None);
        let _ = fs::remove_dir_all(&dir);
    }
}
