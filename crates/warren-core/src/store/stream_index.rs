//! Where a stream's messages are in the message log, without keeping a location
//! per message.
//!
//! A stream's records are appended to the shared log in offset order (offsets
//! are assigned and the record appended under the stream's lock), so reading a
//! stream is a sequential scan of the log from a starting point, skipping other
//! queues' records. The index keeps only *points* to start scans from: one at
//! each log segment the stream enters and one every [`POINT_EVERY`] bytes, each
//! 24 bytes — about 240 KiB for a 10 GB stream — however small the messages.
//!
//! Retention works on *stream segments* (RabbitMQ's unit, sized by
//! `x-stream-max-segment-size-bytes`): runs of consecutive offsets; dropping one
//! releases its references into the log segments it used, and the log deletes a
//! file once nothing references it. Offsets are never reassigned.
//!
//! Each point also starts a *block* (the records up to the next point) with a
//! summary for stream filtering ([`crate::queue::stream::filter`]): a flags
//! byte and a Bloom filter of the filter values in the block, so a filtering
//! consumer skips blocks without reading them. Summaries are rebuilt at
//! startup like the rest of the index.

use super::log::Loc;
use crate::queue::stream::filter::{Filter, Summary};
use std::collections::VecDeque;

/// Bytes of stream records between two index points: a seek reads at most this
/// much it then skips.
pub const POINT_EVERY: u64 = 1024 * 1024;

/// RabbitMQ's default `x-stream-max-segment-size-bytes` (500 MB).
pub const DEFAULT_SEGMENT_SIZE: u64 = 500_000_000;

/// A place to start a scan: the record of `offset` begins at `pos` in log
/// segment `segment`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Point {
    pub offset: u64,
    pub segment: u32,
    pub pos: u32,
    /// Append time of that record (ms).
    pub timestamp: u64,
}

/// A retention unit: offsets `first..end`.
#[derive(Debug, Default)]
pub struct StreamSegment {
    pub first: u64,
    pub end: u64,
    pub bytes: u64,
    /// Append time of its last record (ms): `x-max-age` drops it once that is old.
    pub last_ts: u64,
    points: Vec<Point>,
    /// One block summary per point, `summary_len` bytes each.
    summaries: Vec<u8>,
    summary_len: usize,
    /// Records per log segment, to release when the segment is dropped.
    pub log_refs: Vec<(u32, u64)>,
    since_point: u64,
}

/// One stream's index (see the module docs).
#[derive(Debug)]
pub struct StreamIndex {
    segments: VecDeque<StreamSegment>,
    /// The offset the next append gets.
    next: u64,
    bytes: u64,
    max_segment: u64,
    last_chunk: u64,
    /// Bloom filter bytes of new blocks' summaries.
    filter_size: usize,
}

/// Where a filtering reader goes next (see [`StreamIndex::filter_block`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Block {
    /// The block holding the offset may hold wanted messages: read on, up to
    /// offset `end`, where the next block starts.
    Read { end: u64 },
    /// It cannot, but a later block may: go on from its point.
    Jump { point: Point, end: u64 },
    /// No block from here on may: go on from offset `next`.
    Past { next: u64 },
}

impl StreamIndex {
    pub fn new(max_segment: u64) -> StreamIndex {
        StreamIndex {
            segments: VecDeque::new(),
            next: 0,
            bytes: 0,
            max_segment: max_segment.max(1),
            last_chunk: 0,
            filter_size: crate::queue::stream::filter::DEFAULT_SIZE,
        }
    }

    /// The Bloom filter size of blocks started from now on.
    pub fn set_filter_size(&mut self, size: usize) {
        self.filter_size = size;
    }

    pub fn set_max_segment(&mut self, max_segment: u64) {
        self.max_segment = max_segment.max(1);
    }

    /// The first offset still stored (== `next()` when empty).
    pub fn first(&self) -> u64 {
        self.segments.front().map_or(self.next, |s| s.first)
    }

    pub fn next(&self) -> u64 {
        self.next
    }

    /// Bytes of records stored.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Offsets `first..next` stored.
    pub fn len(&self) -> u64 {
        self.next - self.first()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Append time of the newest record (0 if empty).
    pub fn last_ts(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.last_ts)
    }

    /// Whether the next record starts a new stream segment.
    pub fn should_roll(&self) -> bool {
        self.segments
            .back()
            .is_none_or(|s| s.bytes >= self.max_segment)
    }

    /// The offset `x-stream-offset: last` starts at: the start of the last
    /// chunk (write batch), as RabbitMQ.
    pub fn last_chunk(&self) -> u64 {
        self.last_chunk.max(self.first()).min(self.next)
    }

    /// Record that the record of `offset` is at `loc`. Offsets come in
    /// increasing order (at recovery the first may be past 0: retention).
    /// `roll`: it starts a stream segment ([`Self::should_roll`] when
    /// appending, the record's flag at recovery); `chunk`: it starts a chunk;
    /// `value`: the hash of its filter value (None: it has none).
    #[allow(clippy::too_many_arguments)]
    pub fn push(
        &mut self,
        offset: u64,
        loc: Loc,
        timestamp: u64,
        roll: bool,
        chunk: bool,
        value: Option<u64>,
    ) {
        let len = loc.len as u64;
        let roll = roll || self.segments.is_empty();
        if self.segments.is_empty() {
            self.next = offset;
        }
        if chunk || self.segments.is_empty() {
            self.last_chunk = offset;
        }
        if roll {
            self.segments.push_back(StreamSegment {
                first: offset,
                end: offset,
                summary_len: 1 + self.filter_size,
                ..StreamSegment::default()
            });
        }
        let Some(s) = self.segments.back_mut() else {
            return;
        };
        let new_log_segment = s.points.last().is_none_or(|p| p.segment != loc.segment);
        if new_log_segment || s.since_point >= POINT_EVERY {
            s.points.push(Point {
                offset,
                segment: loc.segment,
                pos: loc.offset,
                timestamp,
            });
            s.since_point = 0;
            let len = s.summaries.len() + s.summary_len;
            s.summaries.resize(len, 0);
        }
        let at = s.summaries.len() - s.summary_len;
        Summary::add(&mut s.summaries[at..], value);
        s.since_point += len;
        match s.log_refs.last_mut() {
            Some((seg, n)) if *seg == loc.segment => *n += 1,
            _ => s.log_refs.push((loc.segment, 1)),
        }
        s.end = offset + 1;
        s.bytes += len;
        s.last_ts = s.last_ts.max(timestamp);
        self.bytes += len;
        self.next = offset + 1;
    }

    /// Add a block of records from a segment summary, as pushing its records
    /// one by one would (see [`super::stream_summary`]).
    pub fn push_block(&mut self, b: &super::stream_summary::StreamBlock, segment: u32) {
        let roll = b.roll || self.segments.is_empty();
        if self.segments.is_empty() {
            self.next = b.first;
            self.last_chunk = b.first;
        }
        if let Some(c) = b.last_chunk {
            self.last_chunk = c;
        }
        if roll {
            self.segments.push_back(StreamSegment {
                first: b.first,
                end: b.first,
                summary_len: 1 + self.filter_size,
                ..StreamSegment::default()
            });
        }
        let Some(s) = self.segments.back_mut() else {
            return;
        };
        s.points.push(Point {
            offset: b.first,
            segment,
            pos: b.pos,
            timestamp: b.first_ts,
        });
        s.since_point = b.bytes;
        let at = s.summaries.len();
        s.summaries.resize(at + s.summary_len, 0);
        match b.summary.len() == s.summary_len {
            true => s.summaries[at..].copy_from_slice(&b.summary),
            // Another filter size: a block that may hold anything.
            false => s.summaries[at..].fill(0xff),
        }
        match s.log_refs.last_mut() {
            Some((seg, n)) if *seg == segment => *n += b.count,
            _ => s.log_refs.push((segment, b.count)),
        }
        s.end = b.end();
        s.bytes += b.bytes;
        s.last_ts = s.last_ts.max(b.last_ts);
        self.bytes += b.bytes;
        self.next = b.end();
    }

    /// The first offset of stream segment `i` (tests).
    #[cfg(test)]
    pub fn segment_start(&self, i: usize) -> Option<u64> {
        self.segments.get(i).map(|s| s.first)
    }

    /// The point to scan from to reach `offset`: the last one at or before it.
    pub fn seek(&self, offset: u64) -> Option<Point> {
        let si = self.segments.partition_point(|s| s.first <= offset);
        let s = self.segments.get(si.checked_sub(1)?)?;
        let pi = s.points.partition_point(|p| p.offset <= offset);
        s.points.get(pi.checked_sub(1)?).copied()
    }

    /// For a reader at `offset` with filter `f`: read the block holding it,
    /// or skip to the first later block that may hold what `f` wants.
    pub fn filter_block(&self, offset: u64, f: &Filter) -> Block {
        let mut si = self
            .segments
            .partition_point(|s| s.first <= offset)
            .saturating_sub(1);
        let mut pi = match self.segments.get(si) {
            Some(s) => s
                .points
                .partition_point(|p| p.offset <= offset)
                .saturating_sub(1),
            None => return Block::Past { next: self.next },
        };
        let mut first = true;
        while let Some(s) = self.segments.get(si) {
            while let Some(p) = s.points.get(pi) {
                let end = self.block_end(si, pi);
                let at = pi * s.summary_len;
                let summary = s.summaries.get(at..at + s.summary_len).unwrap_or(&[]);
                if end > offset && f.may_match(summary) {
                    return match first && p.offset <= offset {
                        true => Block::Read { end },
                        false => Block::Jump { point: *p, end },
                    };
                }
                first = false;
                pi += 1;
            }
            si += 1;
            pi = 0;
        }
        Block::Past { next: self.next }
    }

    /// The offset after the block of point `pi` of segment `si`.
    fn block_end(&self, si: usize, pi: usize) -> u64 {
        let Some(s) = self.segments.get(si) else {
            return self.next;
        };
        match s.points.get(pi + 1) {
            Some(p) => p.offset,
            None => s.end,
        }
    }

    /// The first point in a log segment after `segment`: where a scan continues
    /// once it has read all of `segment`.
    pub fn after_log_segment(&self, segment: u32) -> Option<Point> {
        self.segments
            .iter()
            .flat_map(|s| s.points.iter())
            .find(|p| p.segment > segment)
            .copied()
    }

    /// The point to scan from for the first record appended at or after `ts`
    /// (ms), or None if every record is older.
    pub fn seek_time(&self, ts: u64) -> Option<Point> {
        let si = self.segments.iter().position(|s| s.last_ts >= ts)?;
        let s = &self.segments[si];
        let pi = s.points.partition_point(|p| p.timestamp < ts);
        s.points.get(pi.saturating_sub(1)).copied()
    }

    /// Drop whole segments from the head while the stream is over
    /// `max_bytes`, or their newest record is older than `max_age` ms; the
    /// segment being appended to always stays (as RabbitMQ's retention).
    pub fn retain(
        &mut self,
        max_bytes: Option<u64>,
        max_age: Option<u64>,
        now: u64,
    ) -> Vec<StreamSegment> {
        let mut dropped = Vec::new();
        while self.segments.len() > 1 {
            let Some(head) = self.segments.front() else {
                break;
            };
            let too_big = max_bytes.is_some_and(|m| self.bytes > m);
            let too_old = max_age.is_some_and(|a| head.last_ts.saturating_add(a) < now);
            if !too_big && !too_old {
                break;
            }
            if let Some(s) = self.segments.pop_front() {
                self.bytes -= s.bytes;
                dropped.push(s);
            }
        }
        dropped
    }

    /// Everything, for deleting the stream.
    pub fn take_all(&mut self) -> Vec<StreamSegment> {
        self.bytes = 0;
        self.segments.drain(..).collect()
    }

    /// Records per log segment over the whole stream (recovery adds them as
    /// references).
    pub fn log_refs(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.segments
            .iter()
            .flat_map(|s| s.log_refs.iter().copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(segment: u32, offset: u32) -> Loc {
        Loc {
            segment,
            offset,
            len: 100,
        }
    }

    #[test]
    fn seek_and_retention_by_segment() {
        let mut ix = StreamIndex::new(1000);
        for i in 0..35u64 {
            let seg = 1 + (i / 20) as u32;
            let roll = ix.should_roll();
            ix.push(
                i,
                loc(seg, (i as u32 % 20) * 100),
                1000 + i,
                roll,
                i % 5 == 0,
                None,
            );
        }
        assert_eq!((ix.first(), ix.next(), ix.segment_count()), (0, 35, 4));
        assert_eq!(ix.last_chunk(), 30);
        assert_eq!(ix.seek(7).map(|p| p.offset), Some(0));
        // Offset 20 starts log segment 2: a point of its own.
        assert_eq!(ix.seek(25).map(|p| (p.offset, p.segment)), Some((20, 2)));
        assert_eq!(ix.after_log_segment(1).map(|p| p.offset), Some(20));
        assert_eq!(ix.seek_time(1012).map(|p| p.offset), Some(10));
        assert_eq!(ix.seek_time(5000), None);
        let dropped = ix.retain(Some(2000), None, 0);
        assert_eq!(dropped.len(), 2);
        assert_eq!((ix.first(), ix.next()), (20, 35));
        assert_eq!(ix.seek(3), None);
        // Age: everything but the open segment is old.
        let dropped = ix.retain(None, Some(10), 2000);
        assert_eq!(dropped.len(), 1);
        assert_eq!(ix.first(), 30);
    }

    #[test]
    fn filter_blocks_are_skipped() {
        use crate::queue::stream::filter::{hash, Filter};
        use crate::table::{FieldTable, FieldValue};
        let filter = |v: &str| {
            let mut t = FieldTable::new();
            t.insert("x-stream-filter", FieldValue::string(v));
            Filter::from_args(&t).expect("a filter")
        };
        // Blocks of 1 MiB: offsets 0..10 "a", 10..20 "b", 20..30 "a".
        let mut ix = StreamIndex::new(u64::MAX);
        let mut pos = 0u32;
        for i in 0..30u64 {
            let v = if (10..20).contains(&i) { "b" } else { "a" };
            let len = (POINT_EVERY / 10) as u32 + 1;
            let l = Loc {
                segment: 1,
                offset: pos,
                len,
            };
            pos += len;
            ix.push(i, l, 1000, false, false, Some(hash(v.as_bytes())));
        }
        assert_eq!(ix.filter_block(3, &filter("a")), Block::Read { end: 10 });
        match ix.filter_block(3, &filter("b")) {
            Block::Jump { point, end } => assert_eq!((point.offset, end), (10, 20)),
            other => panic!("{other:?}"),
        }
        match ix.filter_block(12, &filter("a")) {
            Block::Jump { point, end } => assert_eq!((point.offset, end), (20, 30)),
            other => panic!("{other:?}"),
        }
        assert_eq!(ix.filter_block(12, &filter("c")), Block::Past { next: 30 });
        assert_eq!(ix.filter_block(25, &filter("b")), Block::Past { next: 30 });
    }
}
