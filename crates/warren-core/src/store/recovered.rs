//! A durable queue's recovered backlog, read lazily from segment summaries.
//!
//! Recovery hands each durable queue a [`RecoveredQueue`]: per log segment,
//! how many of the queue's persistent messages are live in it (exact: acks
//! already subtracted) and where its index entries are (the segment's
//! summary, see [`super::summary`]). Nothing per message is in memory. The
//! entries of a segment are read when the queue reaches it: the summary's
//! entry bytes (~4 per message) plus the queue's acks from the segment's ack
//! file, filtered as they are decoded. If the summary became unreadable since
//! startup, the segment itself is scanned for the queue's records instead.
//!
//! A priority queue splits its backlog into one `RecoveredQueue` per level
//! ([`RecoveredQueue::split_levels`]): each segment's count per level comes
//! from the summary's priority histogram (or, for a segment with acks of the
//! queue, from the live entries recovery read anyway to count them), so the
//! split reads nothing; only a segment summarized by an earlier binary
//! (no histogram) has its entries read once to count them. Each level then
//! reads the segment's entries as it drains, keeping only its own. So a
//! priority backlog costs RAM per segment and level, not per message, and
//! nothing is written at startup.

use super::log::{acks_path, Loc, MessageLog};
use super::record::Record;
use super::spill::Lost;
use super::summary::{self, EntryReader, LevelCount, Levels, Slot};
use bytes::Bytes;
use std::collections::{HashSet, VecDeque};
use tracing::{error, info};

/// Where a segment's entries for the queue are.
#[derive(Debug, Clone)]
pub(super) enum Source {
    Summary(Slot),
    /// Kept in memory (the summary could not be written).
    Memory(Bytes),
}

#[derive(Debug)]
struct Part {
    segment: u32,
    /// Live messages of the queue in this segment not yet handed out...
    count: u64,
    /// ...and their record bytes.
    bytes: u64,
    source: Source,
    /// The same live messages per priority, when recovery knew them.
    levels: PartLevels,
    reading: Option<Reading>,
}

/// A part's messages per priority, kept without a heap allocation in the
/// usual case (every message of the part has the same priority, e.g. a
/// queue that is not a priority queue).
#[derive(Debug)]
enum PartLevels {
    /// Not known (a summary of an earlier binary): count the entries.
    Unknown,
    /// All of the part's messages have this priority.
    All(u8),
    Many(Box<[LevelCount]>),
}

#[derive(Debug)]
struct Reading {
    entries: EntryReader,
    acked: HashSet<u64>,
}

impl std::fmt::Debug for EntryReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EntryReader")
    }
}

/// One recovered message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecoveredEntry {
    pub msg_id: u64,
    pub loc: Loc,
    pub priority: u8,
}

/// See the module docs.
#[derive(Debug)]
pub struct RecoveredQueue {
    queue: u64,
    parts: VecDeque<Part>,
    len: u64,
    bytes: u64,
    lost: Lost,
    /// Only the entries of this priority level: (level, top level); an
    /// entry's level is `min(priority, top)`.
    level: Option<(u8, u8)>,
}

impl RecoveredQueue {
    pub(super) fn new(queue: u64) -> Self {
        RecoveredQueue {
            queue,
            parts: VecDeque::new(),
            len: 0,
            bytes: 0,
            lost: Lost::default(),
            level: None,
        }
    }

    /// Split into `levels` queues, one per priority level (index = level; a
    /// message's level is `min(priority, levels - 1)`), each in log order.
    /// A segment's count per level is its priority histogram's; a segment
    /// without one has its entries (and the queue's acks there) read once to
    /// count them. The levels read the entries as they drain.
    pub fn split_levels(mut self, log: &MessageLog, levels: usize) -> Vec<RecoveredQueue> {
        let top = (levels.clamp(1, 256) - 1) as u8;
        let mut out: Vec<RecoveredQueue> = (0..=top)
            .map(|l| RecoveredQueue {
                level: Some((l, top)),
                ..RecoveredQueue::new(self.queue)
            })
            .collect();
        let (segments, mut read) = (self.parts.len(), 0usize);
        while let Some(part) = self.parts.pop_front() {
            let mut counts = vec![(0u64, 0u64); out.len()];
            let known = match &part.levels {
                PartLevels::Unknown => false,
                PartLevels::All(p) => {
                    counts[(*p).min(top) as usize] = (part.count, part.bytes);
                    true
                }
                PartLevels::Many(levels) => {
                    for l in levels.iter() {
                        let c = &mut counts[l.priority.min(top) as usize];
                        c.0 += l.count;
                        c.1 += l.bytes;
                    }
                    true
                }
            };
            if known {
                for (q, (count, bytes)) in out.iter_mut().zip(counts) {
                    q.add(part.segment, count, bytes, part.source.clone(), None);
                }
                continue;
            }
            read += 1;
            let mut left = part.count;
            let reading = open(log, self.queue, &part);
            let acked = &reading.acked;
            for e in reading.entries.filter(|e| !acked.contains(&e.msg_id)) {
                if left == 0 {
                    break;
                }
                left -= 1;
                let c = &mut counts[e.priority.min(top) as usize];
                c.0 += 1;
                c.1 += e.len as u64;
            }
            if left > 0 {
                // Fewer entries than counted: the rest is lost (logged), as
                // `pop` would find.
                error!(
                    segment = part.segment,
                    queue = self.queue,
                    lost = left,
                    "recovered queue: fewer entries than counted; dropping the rest"
                );
            }
            for (q, (count, bytes)) in out.iter_mut().zip(counts) {
                q.add(part.segment, count, bytes, part.source.clone(), None);
            }
        }
        // What the split cost: `entries_read` segments had no histogram
        // (summaries of an earlier binary) and had their entries read.
        if segments > 0 {
            info!(
                queue = self.queue,
                segments,
                entries_read = read,
                "priority backlog split per level"
            );
        }
        out
    }

    /// Add segment `segment`'s live messages (segments in log order), with
    /// their counts per priority if known.
    pub(super) fn add(
        &mut self,
        segment: u32,
        count: u64,
        bytes: u64,
        source: Source,
        levels: Option<Levels>,
    ) {
        if count == 0 {
            return;
        }
        self.len += count;
        self.bytes += bytes;
        // A histogram not matching the count is not used (never expected).
        let levels = match levels.filter(|l| l.count() == count) {
            None => PartLevels::Unknown,
            Some(Levels(l)) if l.len() == 1 => PartLevels::All(l[0].priority),
            Some(Levels(l)) => PartLevels::Many(l.into_boxed_slice()),
        };
        self.parts.push_back(Part {
            segment,
            count,
            bytes,
            source,
            levels,
            reading: None,
        });
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Record bytes of the messages not yet handed out.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// (segment, live messages) of every segment: the references the queue
    /// holds into the log.
    pub fn segments(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.parts.iter().map(|p| (p.segment, p.count))
    }

    /// Messages given up since the last call (their segment's entries could
    /// not be read, or held fewer than counted); already out of `len`.
    pub fn take_lost(&mut self) -> Lost {
        std::mem::take(&mut self.lost)
    }

    /// The next message, in log order.
    pub fn pop(&mut self, log: &MessageLog) -> Option<RecoveredEntry> {
        loop {
            let part = self.parts.front_mut()?;
            if part.reading.is_none() {
                part.reading = Some(open(log, self.queue, part));
            }
            let level = self.level;
            let next = part.reading.as_mut().and_then(|r| {
                let acked = &r.acked;
                r.entries.by_ref().find(|e| {
                    !acked.contains(&e.msg_id)
                        && level.is_none_or(|(l, top)| e.priority.min(top) == l)
                })
            });
            match next {
                Some(e) if part.count > 0 => {
                    let segment = part.segment;
                    part.count -= 1;
                    let len = (e.len as u64).min(part.bytes);
                    part.bytes -= len;
                    self.len -= 1;
                    self.bytes -= len;
                    if part.count == 0 {
                        self.parts.pop_front();
                    }
                    return Some(RecoveredEntry {
                        msg_id: e.msg_id,
                        loc: Loc {
                            segment,
                            offset: e.offset,
                            len: e.len,
                        },
                        priority: e.priority,
                    });
                }
                _ => {
                    // Fewer entries than counted: the rest is lost (logged).
                    if part.count > 0 {
                        error!(
                            segment = part.segment,
                            queue = self.queue,
                            lost = part.count,
                            "recovered queue: fewer entries than counted; dropping the rest"
                        );
                    }
                    self.lost.count += part.count;
                    self.lost.weight += part.bytes;
                    self.len -= part.count;
                    self.bytes -= part.bytes;
                    self.parts.pop_front();
                }
            }
        }
    }

    /// Up to `max` messages from the front.
    pub fn pop_many(&mut self, log: &MessageLog, max: usize) -> Vec<RecoveredEntry> {
        let mut out = Vec::with_capacity(max.min(self.len as usize));
        while out.len() < max {
            match self.pop(log) {
                Some(e) => out.push(e),
                None => break,
            }
        }
        out
    }
}

/// Start reading a segment's entries for `queue`: the summary's (or, if that
/// is unreadable now, a scan of the segment), filtered by the queue's acks.
fn open(log: &MessageLog, queue: u64, part: &Part) -> Reading {
    let n = part.segment;
    let data = match &part.source {
        Source::Memory(b) => Some(b.clone()),
        Source::Summary(slot) => summary::read_entries(&log.dir, n, slot),
    };
    let data = data.unwrap_or_else(|| {
        error!(
            segment = n,
            queue, "segment summary unreadable; scanning the segment"
        );
        match super::log::scan_segment(&log.dir, n, false, |_, _| {}) {
            Ok(mut scan) => scan
                .queues
                .remove(&queue)
                .map(|l| Bytes::from(l.buf))
                .unwrap_or_default(),
            Err(e) => {
                error!(segment = n, error = %e, "cannot scan segment");
                Bytes::new()
            }
        }
    });
    let mut acked = HashSet::new();
    {
        // Not while the writer appends to it (a half-written record would
        // read as a torn tail).
        let _io = log.acks_io.lock();
        let _ = super::log::read_records(&acks_path(&log.dir, n), n, false, |rec, _| {
            if let Record::Ack { queue: q, msg_ids } = rec {
                if q == queue {
                    acked.extend(msg_ids);
                }
            }
        });
    }
    Reading {
        entries: EntryReader::new(data),
        acked,
    }
}
