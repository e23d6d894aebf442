//! Corrupts a message log on disk and recovers it.
//!
//! A fixed, valid log is built once: three segments holding persistent and
//! transient publish records for several queues, the records of two stream
//! queues, and ack files (classic acks and a stream truncation). Each input is
//! a list of corruptions applied to a copy of those files: bit flips (at most
//! four: CRC-32C catches every such error in records this small, so anything
//! that still decodes is a record we wrote), truncation, zeroed or
//! pseudo-random garbage ranges, a deleted file, appended garbage, and a range
//! copied over another (a record duplicated somewhere else).
//!
//! Then `MessageLog::open` recovers it, as at startup. It must not panic or
//! fail, and everything it hands back must be what was written:
//! * every recovered message reads back as the publish record written with
//!   that id, persistent, for a queue it was written to, and not acked in the
//!   pristine log's ack files unless an ack file was damaged;
//! * every stream index point reads back as the record written for that
//!   stream at that offset (the stream index is rebuilt from these records).
//!
//! Garbage bytes come from a PRNG seeded by the input rather than from the
//! input itself: CRC-32C is a checksum, not a MAC, and libFuzzer's comparison
//! tracing could otherwise forge a record with a matching checksum, which is
//! no corruption a disk produces.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use warren_core::store::record::{self, Record};
use warren_core::store::{LogOptions, MessageLog};

/// What a publish record was written with.
#[derive(Clone, PartialEq, Debug)]
struct Pub {
    persistent: bool,
    queues: Vec<u64>,
    exchange: Vec<u8>,
    routing_key: Vec<u8>,
    properties: Vec<u8>,
    body: Vec<u8>,
}

/// What a stream record was written with.
#[derive(Clone, PartialEq, Debug)]
struct Str {
    flags: u8,
    timestamp: u64,
    routing_key: Vec<u8>,
    body: Vec<u8>,
}

struct Pristine {
    /// (file name, contents)
    files: Vec<(String, Vec<u8>)>,
    publishes: HashMap<u64, Pub>,
    streams: HashMap<(u64, u64), Str>,
}

const STREAMS: [u64; 2] = [100, 101];

fn pristine() -> &'static Pristine {
    static P: OnceLock<Pristine> = OnceLock::new();
    P.get_or_init(|| {
        let mut publishes = HashMap::new();
        let mut streams = HashMap::new();
        let mut files = Vec::new();
        let mut msg_id = 1u64;
        let mut offsets = [0u64; 2];
        // Segments 1-3 mix publishes and stream records (always scanned);
        // 4 and 5 hold publishes only, so they get summaries.
        for seg in 1..=5u32 {
            let mut out = Vec::new();
            for i in 0..6u64 {
                let queues: Vec<u64> = match i % 3 {
                    0 => vec![1],
                    1 => vec![1, 2],
                    _ => vec![3],
                };
                // Priority 5 on some, to go through the property decoding.
                let properties = if i % 2 == 0 {
                    vec![0x00, 0x00]
                } else {
                    vec![0x08, 0x00, 5]
                };
                let p = Pub {
                    persistent: i != 4,
                    queues,
                    exchange: b"ex".to_vec(),
                    routing_key: format!("rk.{msg_id}").into_bytes(),
                    properties,
                    body: format!("body of message {msg_id} in segment {seg}").into_bytes(),
                };
                record::encode_publish(
                    &mut out,
                    msg_id,
                    if p.persistent {
                        record::FLAG_PERSISTENT
                    } else {
                        0
                    },
                    Some(1_700_000_000_000 + msg_id),
                    &p.queues,
                    Some((&p.exchange, &p.routing_key)),
                    &p.properties,
                    &p.body,
                );
                publishes.insert(msg_id, p);
                msg_id += 1;
                // A stream record after every other publish.
                if i % 2 == 1 && seg <= 3 {
                    let which = (i / 2 % 2) as usize;
                    let sid = STREAMS[which];
                    let off = offsets[which];
                    offsets[which] += 1;
                    let s = Str {
                        flags: if off % 3 == 0 {
                            record::STREAM_SEGMENT_START | record::STREAM_CHUNK_START
                        } else {
                            0
                        },
                        timestamp: 1_700_000_000_000 + off,
                        routing_key: format!("s{sid}").into_bytes(),
                        body: format!("stream {sid} offset {off}").into_bytes(),
                    };
                    record::encode_stream(
                        &mut out,
                        sid,
                        off,
                        s.flags,
                        s.timestamp,
                        b"",
                        &s.routing_key,
                        &[0x00, 0x00],
                        &s.body,
                    );
                    streams.insert((sid, off), s);
                }
            }
            files.push((format!("{seg:08}.seg"), out));
            // Acks of this segment's messages: the first of queue 1's, and a
            // stream truncation in segment 1.
            let mut acks = Vec::new();
            let first = u64::from(seg - 1) * 6 + 1;
            record::encode_ack(&mut acks, 1, &[first]);
            if seg == 1 {
                record::encode_ack(&mut acks, STREAMS[0], &[record::TRUNCATED, 1]);
            }
            files.push((format!("{seg:08}.acks"), acks));
        }
        // The summaries recovery writes for segments 4 and 5, corrupted
        // like the rest: a damaged one must be ignored (the segment scanned),
        // and a good one over a damaged segment must not hand back another
        // record than the one it lists.
        let dir = scratch();
        std::fs::create_dir_all(&dir).expect("scratch dir");
        for (name, data) in &files {
            std::fs::write(dir.join(name), data).expect("write");
        }
        let opts = LogOptions {
            fsync: false,
            segment_size: 4096,
            ..Default::default()
        };
        let (log, _) = MessageLog::open(&dir, &opts).expect("pristine log");
        log.shutdown();
        drop(log);
        for seg in [4u32, 5] {
            let name = format!("{seg:08}.sum");
            let data = std::fs::read(dir.join(&name)).expect("summary written");
            files.push((name, data));
        }
        let _ = std::fs::remove_dir_all(&dir);
        Pristine {
            files,
            publishes,
            streams,
        }
    })
}

/// A small deterministic PRNG (xorshift) for garbage bytes.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 24) as u8
    }
}

fn scratch() -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "warren-fuzz-log-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

fuzz_target!(|data: &[u8]| {
    let p = pristine();
    let mut files: Vec<Option<Vec<u8>>> = p.files.iter().map(|(_, d)| Some(d.clone())).collect();
    let mut flips = 0;
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ data.len() as u64);
    let mut acks_damaged = false;
    let mut damaged_segments = HashSet::new();
    for op in data.chunks_exact(5) {
        let (kind, fi) = (op[0] % 7, op[1] as usize % files.len());
        let pos = u16::from_le_bytes([op[2], op[3]]) as usize;
        let arg = op[4] as usize;
        rng.0 = rng.0.wrapping_add(u64::from_le_bytes([
            op[0], op[1], op[2], op[3], op[4], 1, 2, 3,
        ]));
        if p.files[fi].0.ends_with(".acks") {
            acks_damaged = true;
        }
        if let Some(seg) = p.files[fi].0.strip_suffix(".seg") {
            damaged_segments.insert(seg.parse::<u32>().expect("segment number"));
        }
        let Some(f) = files[fi].as_mut() else {
            continue;
        };
        let at = if f.is_empty() { 0 } else { pos % (f.len() + 1) };
        match kind {
            0 => {
                if flips < 4 && at < f.len() {
                    f[at] ^= 1 << (arg % 8);
                    flips += 1;
                }
            }
            1 => f.truncate(at),
            2 => {
                let end = (at + arg).min(f.len());
                f[at..end].fill(0);
            }
            3 => {
                let end = (at + arg).min(f.len());
                for b in &mut f[at..end] {
                    *b = rng.next();
                }
            }
            4 => files[fi] = None,
            5 => {
                for _ in 0..arg {
                    let b = rng.next();
                    f.push(b);
                }
            }
            _ => {
                // Copy `arg` bytes from another place over `at`.
                let from = (arg * 37 + pos / 7) % (f.len() + 1);
                let n = arg.min(f.len() - from).min(f.len() - at);
                let chunk = f[from..from + n].to_vec();
                f[at..at + n].copy_from_slice(&chunk);
            }
        }
    }
    let dir = scratch();
    std::fs::create_dir_all(&dir).expect("scratch dir");
    for ((name, _), f) in p.files.iter().zip(&files) {
        if let Some(f) = f {
            std::fs::write(dir.join(name), f).expect("write segment");
        }
    }
    let opts = LogOptions {
        fsync: false,
        segment_size: 4096,
        ..Default::default()
    };
    let (log, recovered) = MessageLog::open(&dir, &opts).expect("recovery must not fail");
    // Acked in the pristine ack files: the first message of each segment,
    // of queue 1.
    let acked: HashSet<u64> = [1, 7, 13, 19, 25].into();
    for (queue, mut msgs) in recovered {
        let queue = &queue;
        let mut last = 0;
        while let Some(m) = msgs.pop(&log) {
            assert!(m.msg_id > last, "queue {queue}: ids out of order");
            last = m.msg_id;
            let want = p
                .publishes
                .get(&m.msg_id)
                .unwrap_or_else(|| panic!("recovered unknown message id {}", m.msg_id));
            assert!(want.persistent, "transient message {} recovered", m.msg_id);
            assert!(
                want.queues.contains(queue),
                "message {} for queue {queue}",
                m.msg_id
            );
            if !acks_damaged && *queue == 1 {
                assert!(
                    !acked.contains(&m.msg_id),
                    "acked message {} is back",
                    m.msg_id
                );
            }
            let read = log.read(m.loc);
            if damaged_segments.contains(&m.loc.segment)
                && !matches!(read, Ok(Record::Publish { msg_id, .. }) if msg_id == m.msg_id)
            {
                // Listed by a summary, but the segment was damaged since: the
                // queue finds the record unreadable or not the one listed
                // (`PagedStorage::load` checks the id) and drops it, logged.
                continue;
            }
            match read.expect("recovered message reads back") {
                Record::Publish {
                    msg_id,
                    flags,
                    queues,
                    exchange,
                    routing_key,
                    properties,
                    body,
                    ..
                } => {
                    assert_eq!(msg_id, m.msg_id);
                    assert_eq!(flags & record::FLAG_PERSISTENT, record::FLAG_PERSISTENT);
                    // Read back for one queue: the record's list of queues is
                    // dropped (`store::log::unpin`); recovery listed it above.
                    assert!(queues.is_empty(), "read back with its queue list");
                    assert_eq!(&exchange.0[..], &want.exchange[..]);
                    assert_eq!(&routing_key.0[..], &want.routing_key[..]);
                    assert_eq!(&properties[..], &want.properties[..]);
                    assert_eq!(&body[..], &want.body[..]);
                }
                other => panic!("message {} reads back as {other:?}", m.msg_id),
            }
        }
    }
    assert!(log.max_recovered_stream() <= STREAMS[1]);
    for sid in STREAMS {
        let Some(ix) = log.take_recovered_stream(sid) else {
            continue;
        };
        assert!(ix.first() <= ix.next());
        for off in ix.first()..ix.next() {
            let Some(point) = ix.seek(off) else {
                continue;
            };
            assert!(point.offset <= off);
            let mut buf = vec![0u8; 512];
            let n = log
                .read_segment(point.segment, u64::from(point.pos), &mut buf)
                .expect("index point reads back");
            buf.truncate(n);
            let mut b = Bytes::from(buf);
            match record::read_record(&mut b) {
                Ok(Record::Stream(r)) => {
                    assert_eq!((r.stream, r.offset), (sid, point.offset));
                    let want = p
                        .streams
                        .get(&(sid, r.offset))
                        .expect("a stream record that was written");
                    assert_eq!(r.flags, want.flags);
                    assert_eq!(r.timestamp, want.timestamp);
                    assert_eq!(&r.routing_key.0[..], &want.routing_key[..]);
                    assert_eq!(&r.body[..], &want.body[..]);
                }
                other => panic!("stream {sid} point {point:?} reads as {other:?}"),
            }
        }
    }
    log.shutdown();
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
});
