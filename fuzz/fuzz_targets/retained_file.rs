//! Corrupts MQTT's retained-message file (`<data dir>/mqtt/retained.log`,
//! records `[len][crc32c][payload]`) and loads it, as at startup.
//!
//! The pristine file is written once by a real `RetainedStore` (sets,
//! an overwrite, a deletion, two vhosts, MQTT 5 properties). Each input is a
//! list of corruptions of a copy: bit flips (at most four, which CRC-32C
//! always catches in records this small), truncation, zeroed or
//! pseudo-random ranges (from a PRNG, so that libFuzzer cannot forge a
//! checksum), appended garbage, a range copied over another.
//!
//! Checks: opening never panics or fails; every retained message it then
//! serves is one that was written (same vhost, topic, QoS, payload,
//! properties, time); and the file it rewrote at startup (compaction) loads
//! again to the same messages.

#![no_main]

#[path = "common/mod.rs"]
mod common;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;
use warren_mqtt::properties::Properties;
use warren_mqtt::retained::{Retained, RetainedStore};
use warren_mqtt::QoS;

const VHOSTS: [&str; 2] = ["/", "v2"];

struct Pristine {
    file: Vec<u8>,
    written: Vec<(String, Retained)>,
}

fn msg(topic: &str, payload: &str, n: u64) -> Retained {
    let mut properties = Properties::default();
    if n % 2 == 0 {
        properties.content_type = Some(Bytes::from_static(b"text/plain"));
        properties.user_properties = vec![(Bytes::from_static(b"k"), Bytes::from(format!("v{n}")))];
    }
    Retained {
        topic: Bytes::copy_from_slice(topic.as_bytes()),
        qos: if n % 3 == 0 {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        },
        payload: Bytes::copy_from_slice(payload.as_bytes()),
        properties,
        stored_at: 1_700_000_000_000 + n,
    }
}

fn pristine() -> &'static Pristine {
    static P: OnceLock<Pristine> = OnceLock::new();
    P.get_or_init(|| {
        let dir = common::scratch("retained-pristine");
        let puts = [
            ("/", msg("a/b", "first", 1)),
            ("/", msg("a/c", "second", 2)),
            ("/", msg("a/c", "", 3)),
            ("v2", msg("q", "in v2", 4)),
            ("/", msg("a/b", "overwritten", 5)),
            ("/", msg("x/y/z", "deep topic with a longer payload", 6)),
            ("v2", msg("r/s", "another", 7)),
        ];
        {
            let s = RetainedStore::open(&dir).expect("open");
            let mut last = 0;
            for (v, m) in &puts {
                last = s.put(v, m.clone());
            }
            let mut durable = s.durable();
            while *durable.borrow_and_update() < last {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let file = std::fs::read(dir.join("mqtt").join("retained.log")).expect("read file");
        let _ = std::fs::remove_dir_all(&dir);
        Pristine {
            file,
            written: puts
                .iter()
                .map(|(v, m)| (v.to_string(), m.clone()))
                .collect(),
        }
    })
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u8 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 24) as u8
    }
}

fn served(s: &RetainedStore) -> Vec<(String, Retained)> {
    let mut out: Vec<(String, Retained)> = VHOSTS
        .iter()
        .flat_map(|v| {
            s.matching(v, b"#")
                .into_iter()
                .map(move |m| (v.to_string(), (*m).clone()))
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1.topic).cmp(&(&b.0, &b.1.topic)));
    out
}

fuzz_target!(|data: &[u8]| {
    let p = pristine();
    let mut f = p.file.clone();
    let mut flips = 0;
    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ data.len() as u64);
    for op in data.chunks_exact(4) {
        let pos = u16::from_le_bytes([op[1], op[2]]) as usize;
        let arg = op[3] as usize;
        rng.0 = rng
            .0
            .wrapping_add(u64::from_le_bytes([op[0], op[1], op[2], op[3], 9, 8, 7, 6]));
        let at = pos % (f.len() + 1);
        match op[0] % 6 {
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
            4 => {
                for _ in 0..arg {
                    let b = rng.next();
                    f.push(b);
                }
            }
            _ => {
                let from = (arg * 31 + pos / 5) % (f.len() + 1);
                let n = arg.min(f.len() - from).min(f.len() - at);
                let chunk = f[from..from + n].to_vec();
                f[at..at + n].copy_from_slice(&chunk);
            }
        }
    }
    let dir = common::scratch("retained");
    std::fs::create_dir_all(dir.join("mqtt")).expect("scratch dir");
    std::fs::write(dir.join("mqtt").join("retained.log"), &f).expect("write file");
    let first = {
        let s = RetainedStore::open(&dir).expect("loading never fails");
        let got = served(&s);
        for (v, m) in &got {
            assert!(!m.payload.is_empty(), "a deletion is served");
            assert!(
                p.written.iter().any(|(wv, w)| wv == v && w == m),
                "served a message that was never written: {v} {m:?}"
            );
        }
        got
    };
    let s = RetainedStore::open(&dir).expect("reopen");
    assert_eq!(
        served(&s),
        first,
        "the compacted file loads to the same messages"
    );
    drop(s);
    let _ = std::fs::remove_dir_all(&dir);
});
