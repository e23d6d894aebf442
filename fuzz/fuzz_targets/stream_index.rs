//! A stream's sparse index (`warren_core::store::stream_index`) against a
//! model: every record's offset and location kept in a list.
//!
//! Input layout: byte 0 sets the stream segment size (retention unit,
//! 1..256 KiB), byte 1 the first offset (recovery after retention starts
//! past 0); then one operation per two bytes `[op, arg]`:
//!   0: append a record of `arg * 256 + 1` bytes (rolling the stream segment
//!      when `should_roll` says so, as appends do; chunk start on odd `arg`)
//!   1: the next record goes to a new log segment (the log rolled over)
//!   2: retention by size: keep at most `arg * 64 KiB` (0: drop all it may)
//!   3: retention by age: `arg` ms, at time "last timestamp + 128"
//!
//! After every operation the index must agree with the model: first/next
//! offsets, byte count, references per log segment; every `seek` must give a
//! point at or before the offset that is a record's real location, at most
//! `POINT_EVERY` bytes plus one record before it; `after_log_segment` must
//! give the first record of a later log segment; retention drops whole
//! stream segments from the head, never the one being appended to.

#![no_main]

use libfuzzer_sys::fuzz_target;
use std::collections::BTreeMap;
use warren_core::store::stream_index::{StreamIndex, POINT_EVERY};
use warren_core::store::Loc;

#[derive(Clone, Copy, Debug)]
struct Rec {
    offset: u64,
    loc: Loc,
    ts: u64,
}

fuzz_target!(|data: &[u8]| {
    let [size, start, ops @ ..] = data else {
        return;
    };
    let max_segment = (u64::from(*size) + 1) * 1024;
    let mut ix = StreamIndex::new(max_segment);
    let mut model: Vec<Rec> = Vec::new();
    let mut next = u64::from(*start);
    let (mut seg, mut pos) = (1u32, 0u32);
    let mut ts = 1_000u64;
    for op in ops.chunks_exact(2) {
        let arg = op[1];
        match op[0] % 4 {
            0 => {
                let len = u32::from(arg) * 256 + 1;
                let loc = Loc {
                    segment: seg,
                    offset: pos,
                    len,
                };
                let roll = ix.should_roll();
                let value = (arg % 3 == 0).then_some(u64::from(arg));
                ix.push(next, loc, ts, roll, arg % 2 == 1, value);
                model.push(Rec {
                    offset: next,
                    loc,
                    ts,
                });
                next += 1;
                pos += len;
                ts += u64::from(arg % 4);
            }
            1 => {
                seg += 1;
                pos = 0;
            }
            2 => {
                let before = ix.segment_count();
                let max = u64::from(arg) * 64 * 1024;
                let dropped = ix.retain(Some(max), None, 0);
                assert!(ix.segment_count() >= before.min(1));
                assert!(ix.bytes() <= max || ix.segment_count() <= 1);
                drop_head(&mut model, &dropped);
            }
            _ => {
                let dropped = ix.retain(None, Some(u64::from(arg)), ts + 128);
                assert!(ix.segment_count() >= 1 || model.is_empty());
                drop_head(&mut model, &dropped);
            }
        }
        check(&ix, &model, next);
    }
});

/// Retention dropped these stream segments: they must be the model's head.
fn drop_head(model: &mut Vec<Rec>, dropped: &[warren_core::store::stream_index::StreamSegment]) {
    for s in dropped {
        let n = (s.end - s.first) as usize;
        assert!(n <= model.len());
        assert_eq!(model.first().map(|r| r.offset), Some(s.first));
        let bytes: u64 = model[..n].iter().map(|r| u64::from(r.loc.len)).sum();
        assert_eq!(bytes, s.bytes);
        let refs: u64 = s.log_refs.iter().map(|&(_, n)| n).sum();
        assert_eq!(refs, n as u64);
        model.drain(..n);
    }
}

fn check(ix: &StreamIndex, model: &[Rec], next: u64) {
    if model.is_empty() {
        // Nothing appended yet (retention never drops the last segment):
        // a new stream, whose offsets start at 0 until its first record.
        assert!(ix.is_empty() && ix.segment_count() == 0);
        return;
    }
    let first = model.first().map_or(next, |r| r.offset);
    assert_eq!(ix.first(), first);
    assert_eq!(ix.next(), next);
    assert_eq!(ix.len(), next - first);
    assert_eq!(ix.is_empty(), model.is_empty());
    let bytes: u64 = model.iter().map(|r| u64::from(r.loc.len)).sum();
    assert_eq!(ix.bytes(), bytes);
    let mut refs: BTreeMap<u32, u64> = BTreeMap::new();
    for r in model {
        *refs.entry(r.loc.segment).or_default() += 1;
    }
    let mut got: BTreeMap<u32, u64> = BTreeMap::new();
    for (s, n) in ix.log_refs() {
        *got.entry(s).or_default() += n;
    }
    assert_eq!(got, refs);
    assert!(ix.last_chunk() >= first && ix.last_chunk() <= next);
    if first > 0 {
        assert_eq!(ix.seek(first - 1), None);
    }
    let max_len = model
        .iter()
        .map(|r| u64::from(r.loc.len))
        .max()
        .unwrap_or(0);
    for (i, r) in model.iter().enumerate() {
        let p = ix.seek(r.offset).expect("a stored offset has a point");
        assert!(p.offset <= r.offset);
        let at = (p.offset - first) as usize;
        let rec = model[at];
        assert_eq!(
            (p.segment, p.pos, p.timestamp),
            (rec.loc.segment, rec.loc.offset, rec.ts)
        );
        let between: u64 = model[at..i].iter().map(|r| u64::from(r.loc.len)).sum();
        assert!(
            between <= POINT_EVERY + max_len,
            "seek({}) is {between} bytes away",
            r.offset
        );
    }
    let segs: Vec<u32> = refs.keys().copied().collect();
    for s in segs.iter().copied().chain([0, u32::MAX - 1]) {
        let want = model.iter().find(|r| r.loc.segment > s);
        let got = ix.after_log_segment(s);
        match (want, got) {
            (None, None) => {}
            (Some(w), Some(p)) => {
                assert_eq!(
                    (p.offset, p.segment, p.pos),
                    (w.offset, w.loc.segment, w.loc.offset)
                )
            }
            other => panic!("after_log_segment({s}): {other:?}"),
        }
    }
}
