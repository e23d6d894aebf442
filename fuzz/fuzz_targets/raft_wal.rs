//! The shared Raft WAL's record decoder and recovery
//! (`warren_raftlog::record::scan`, `replay_segment`, `SharedWal::open`).
//!
//! Byte 0 picks the mode:
//! - even: the rest is a segment body after the magic, as found on disk.
//!   Recovery must not panic, its valid prefix must be whole records that
//!   re-encode to the same bytes, and every location the rebuilt indexes
//!   hold must lie inside that prefix.
//! - odd: the rest is a list of 4-byte operations `[kind, group, index,
//!   len]` encoded as valid records, then damaged: byte 1 and 2 give a cut
//!   point, byte 3 a bit to flip past it. Every record wholly before the
//!   damage must survive recovery, and the real `SharedWal::open` on that
//!   file must succeed, cut the tail, and take an append afterwards.

#![no_main]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use libfuzzer_sys::fuzz_target;
use warren_raftlog::record::{self, Kind};
use warren_raftlog::{replay_segment, GroupIndex, SharedWal, WalOptions, SEGMENT_MAGIC};

static N: AtomicU64 = AtomicU64::new(0);

fn check_raw(body: &[u8]) {
    let mut data = SEGMENT_MAGIC.to_vec();
    data.extend_from_slice(body);
    let mut groups: HashMap<u64, GroupIndex> = HashMap::new();
    let scan = replay_segment(&mut groups, 1, &data);
    assert!(scan.has_magic);
    assert!(scan.valid_len <= data.len());
    let (recs, valid) = record::scan(&data[SEGMENT_MAGIC.len()..]);
    assert_eq!(valid + SEGMENT_MAGIC.len(), scan.valid_len);
    let mut again = Vec::new();
    for (_, r) in &recs {
        record::encode(&mut again, r.group, r.kind, r.payload);
    }
    assert_eq!(&again[..], &data[SEGMENT_MAGIC.len()..scan.valid_len]);
    for g in groups.values() {
        assert!(g.cache.is_empty());
        for l in &g.locs {
            assert_eq!(l.seg, 1);
            assert!(l.off as usize + l.len as usize <= scan.valid_len);
        }
    }
}

fn check_damaged(ctl: &[u8], ops: &[u8]) {
    let mut body = Vec::new();
    let mut ends = Vec::new();
    for op in ops.chunks_exact(4) {
        let kind = match op[0] % 6 {
            0 => Kind::Entry,
            1 => Kind::Vote,
            2 => Kind::Truncate,
            3 => Kind::Purge,
            4 => Kind::Committed,
            _ => Kind::DropGroup,
        };
        let payload =
            record::indexed_payload(u64::from(op[2]), &vec![op[3]; usize::from(op[3] % 64)]);
        record::encode(&mut body, u64::from(op[1] % 4), kind, &payload);
        ends.push(body.len());
    }
    let mut data = SEGMENT_MAGIC.to_vec();
    data.extend_from_slice(&body);
    let cut =
        SEGMENT_MAGIC.len() + (usize::from(ctl[0]) << 8 | usize::from(ctl[1])) % (body.len() + 1);
    data.truncate(cut);
    let flip = usize::from(ctl[2]);
    if cut > SEGMENT_MAGIC.len() && flip % 2 == 1 {
        let at = cut - 1 - (flip / 2) % (cut - SEGMENT_MAGIC.len());
        data[at] ^= 1 << (flip % 8);
    }
    let original = [SEGMENT_MAGIC.as_slice(), &body].concat();
    let damage = (SEGMENT_MAGIC.len()..data.len())
        .find(|i| data[*i] != original[*i])
        .unwrap_or(data.len());
    let must_keep = ends
        .iter()
        .map(|e| e + SEGMENT_MAGIC.len())
        .filter(|e| *e <= damage)
        .max()
        .unwrap_or(SEGMENT_MAGIC.len());
    let mut groups: HashMap<u64, GroupIndex> = HashMap::new();
    let scan = replay_segment(&mut groups, 1, &data);
    assert!(
        scan.valid_len >= must_keep,
        "kept {} < {must_keep}",
        scan.valid_len
    );

    // The real open on that file: cuts the tail, then takes writes.
    let dir = std::env::temp_dir().join(format!(
        "warren-fuzz-raft-wal-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("tmp dir");
    std::fs::write(dir.join("0000000001.wal"), &data).expect("write segment");
    {
        let wal = SharedWal::open(&dir, WalOptions::default()).expect("open recovers");
        let len = std::fs::metadata(dir.join("0000000001.wal"))
            .expect("meta")
            .len() as usize;
        assert_eq!(len, scan.valid_len);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("rt");
        rt.block_on(wal.flush()).expect("flush");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

fuzz_target!(|data: &[u8]| {
    let [mode, rest @ ..] = data else {
        return;
    };
    if mode % 2 == 0 {
        check_raw(rest);
    } else if let [a, b, c, ops @ ..] = rest {
        check_damaged(&[*a, *b, *c], ops);
    }
});
