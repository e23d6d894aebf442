//! A stream's part of a segment summary: its index blocks, not its records.
//!
//! # Why (issue 16: recovery reads only what it must)
//!
//! A stream's index ([`super::stream_index`]) keeps a point at each log segment
//! the stream enters and one every [`POINT_EVERY`] bytes; between two points
//! (a *block*) it only needs counts, byte totals, times and the block's filter
//! summary. Without summaries every segment holding stream records was read
//! record by record at startup (seconds per million messages). Now the
//! segment's summary holds, per stream, its blocks in that segment (~50 bytes
//! per MiB of stream), and recovery rebuilds the same index from them with
//! [`StreamIndex::push_block`] without reading the segment.
//!
//! The blocks are cut where the index would cut them: a new block at the
//! stream's first record in the segment, at a record that starts a stream
//! segment (retention unit) and once a block holds `POINT_EVERY` bytes. So the
//! rebuilt index is the one a scan builds.
//!
//! # Format (one summary slot per stream, the slot's queue id is
//! `stream | STREAM_SLOT`): per block, LEB128 varints
//!
//! ```text
//! first offset, position in the segment, first record's time, flags
//! (1: starts a stream segment, 2: has a chunk start), records, bytes,
//! newest time, [last chunk start - first offset], summary length, summary
//! ```

use super::log::Loc;
use super::stream_index::{StreamIndex, POINT_EVERY};
use super::summary::{get_varint, put_varint};
use crate::queue::stream::filter::{Summary, DEFAULT_SIZE};

/// Marks a summary slot as a stream's blocks (queue ids never have it).
pub const STREAM_SLOT: u64 = 1 << 63;

const ROLL: u64 = 1;
const CHUNK: u64 = 2;

/// One index block of a stream within one log segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamBlock {
    pub first: u64,
    pub pos: u32,
    pub first_ts: u64,
    /// Its first record starts a stream segment.
    pub roll: bool,
    pub count: u64,
    pub bytes: u64,
    pub last_ts: u64,
    /// The last record in it that starts a chunk.
    pub last_chunk: Option<u64>,
    /// Filter summary (flags byte + Bloom filter of the default size).
    pub summary: Vec<u8>,
}

impl StreamBlock {
    pub fn end(&self) -> u64 {
        self.first + self.count
    }
}

/// A stream's blocks in one segment, built record by record by a scan.
#[derive(Debug, Default, Clone)]
pub struct StreamFrag {
    pub blocks: Vec<StreamBlock>,
    pub count: u64,
    pub bytes: u64,
}

impl StreamFrag {
    /// Add the stream's next record (offsets in increasing order).
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
        let cut = match self.blocks.last() {
            None => true,
            // A gap (never written so): start over rather than misplace it.
            Some(b) => roll || b.bytes >= POINT_EVERY || b.end() != offset,
        };
        if cut {
            self.blocks.push(StreamBlock {
                first: offset,
                pos: loc.offset,
                first_ts: timestamp,
                roll,
                count: 0,
                bytes: 0,
                last_ts: 0,
                last_chunk: None,
                summary: vec![0; 1 + DEFAULT_SIZE],
            });
        }
        let Some(b) = self.blocks.last_mut() else {
            return;
        };
        b.count += 1;
        b.bytes += len;
        b.last_ts = b.last_ts.max(timestamp);
        if chunk {
            b.last_chunk = Some(offset);
        }
        Summary::add(&mut b.summary, value);
        self.count += 1;
        self.bytes += len;
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.blocks.len() * (40 + 1 + DEFAULT_SIZE));
        for b in &self.blocks {
            put_varint(&mut out, b.first);
            put_varint(&mut out, b.pos as u64);
            put_varint(&mut out, b.first_ts);
            let flags =
                if b.roll { ROLL } else { 0 } | if b.last_chunk.is_some() { CHUNK } else { 0 };
            put_varint(&mut out, flags);
            put_varint(&mut out, b.count);
            put_varint(&mut out, b.bytes);
            put_varint(&mut out, b.last_ts);
            if let Some(c) = b.last_chunk {
                put_varint(&mut out, c - b.first);
            }
            put_varint(&mut out, b.summary.len() as u64);
            out.extend_from_slice(&b.summary);
        }
        out
    }

    /// The blocks in `data`; `None` if it does not decode.
    pub fn decode(data: &[u8]) -> Option<Vec<StreamBlock>> {
        let mut pos = 0;
        let mut blocks = Vec::new();
        while pos < data.len() {
            let first = get_varint(data, &mut pos)?;
            let at = u32::try_from(get_varint(data, &mut pos)?).ok()?;
            let first_ts = get_varint(data, &mut pos)?;
            let flags = get_varint(data, &mut pos)?;
            let count = get_varint(data, &mut pos)?;
            let bytes = get_varint(data, &mut pos)?;
            let last_ts = get_varint(data, &mut pos)?;
            let last_chunk = match flags & CHUNK != 0 {
                true => Some(first.checked_add(get_varint(data, &mut pos)?)?),
                false => None,
            };
            let n = usize::try_from(get_varint(data, &mut pos)?).ok()?;
            let summary = data.get(pos..pos.checked_add(n)?)?.to_vec();
            pos += n;
            if count == 0 {
                return None;
            }
            blocks.push(StreamBlock {
                first,
                pos: at,
                first_ts,
                roll: flags & ROLL != 0,
                count,
                bytes,
                last_ts,
                last_chunk,
                summary,
            });
        }
        Some(blocks)
    }
}

/// Add segment `segment`'s blocks of a stream to its index, dropping those
/// below `truncated` (retention). Check [`fits`] first: a block straddling
/// the truncation point cannot be applied (retention cuts at stream segment
/// starts, which always start blocks, so a scan is only the fallback).
pub fn rebuild(
    index: &mut StreamIndex,
    segment: u32,
    blocks: &[StreamBlock],
    truncated: Option<u64>,
) {
    for b in blocks {
        if truncated.is_some_and(|x| b.end() <= x) {
            continue;
        }
        index.push_block(b, segment);
    }
}

/// Whether `blocks` can be applied with truncation point `truncated`.
pub fn fits(blocks: &[StreamBlock], truncated: Option<u64>) -> bool {
    truncated.is_none_or(|x| blocks.iter().all(|b| b.end() <= x || b.first >= x))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index rebuilt from blocks is the index a record-by-record scan
    /// builds: same length, points, segments, chunk and filter summaries.
    #[test]
    fn blocks_rebuild_the_scanned_index() {
        let mut scanned = StreamIndex::new(3 << 20);
        let mut frags: Vec<(u32, StreamFrag)> = Vec::new();
        let mut ix_roll = StreamIndex::new(3 << 20);
        let mut pos = 0u32;
        let mut segment = 1u32;
        for offset in 0..40_000u64 {
            if offset % 9_000 == 0 && offset > 0 {
                segment += 1;
                pos = 0;
            }
            let len = 200u32;
            let loc = Loc {
                segment,
                offset: pos,
                len,
            };
            pos += len + 8;
            let roll = ix_roll.should_roll();
            let chunk = offset % 7 == 0;
            let value = (offset % 3 == 0).then_some(offset % 5);
            ix_roll.push(offset, loc, 1000 + offset / 10, roll, chunk, value);
            scanned.push(offset, loc, 1000 + offset / 10, roll, chunk, value);
            if frags.last().is_none_or(|(s, _)| *s != segment) {
                frags.push((segment, StreamFrag::default()));
            }
            if let Some((_, f)) = frags.last_mut() {
                f.push(offset, loc, 1000 + offset / 10, roll, chunk, value);
            }
        }
        let mut rebuilt = StreamIndex::new(3 << 20);
        for (seg, f) in &frags {
            let blocks = StreamFrag::decode(&f.encode()).expect("decode");
            assert_eq!(blocks, f.blocks);
            rebuild(&mut rebuilt, *seg, &blocks, None);
        }
        assert_eq!(format!("{rebuilt:?}"), format!("{scanned:?}"));
        // Truncated at a stream segment start: the rest is the same.
        let cut = scanned.segment_start(1).expect("a second segment");
        assert!(frags.iter().all(|(_, f)| fits(&f.blocks, Some(cut))));
        let mut truncated = StreamIndex::new(3 << 20);
        for (seg, f) in &frags {
            rebuild(&mut truncated, *seg, &f.blocks, Some(cut));
        }
        assert_eq!(truncated.first(), cut);
        assert_eq!(truncated.next(), 40_000);
        assert!(frags.iter().any(|(_, f)| !fits(&f.blocks, Some(cut + 1))));
    }
}
