//! Routing benchmarks: topic tries with 10k and 100k bindings, headers matching,
//! and a direct exchange's hash lookup as the floor to compare against.
//!
//! Run with `cargo bench -p warren-core --bench routing`. Kept short (small
//! samples, 2 s measurements) so it is usable on a small machine.
//!
//! Before the timings it prints the trie's memory per binding and the number of
//! heap allocations per route, measured with a counting global allocator.

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use std::alloc::{GlobalAlloc, Layout, System};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use warren_core::exchange::headers::headers_match;
use warren_core::exchange::topic::TopicTrie;
use warren_core::{FieldTable, FieldValue, ShortStr};

/// Counts live bytes and allocation calls, to report memory and allocations.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Ordering::Relaxed);
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A mix of realistic patterns: per-host (`server{i}.#`), per-user
/// (`*.user{i}.*`), per-service logs (`logs.{svc}.{i}.#`), and ten queues that
/// take every error (`#.error`).
fn topic_trie(n: u32) -> TopicTrie<u32> {
    let mut t = TopicTrie::new();
    for i in 0..n {
        let p = match i % 3 {
            0 => format!("server{i}.#"),
            1 => format!("*.user{i}.*"),
            _ => format!("logs.svc{}.{i}.#", i % 100),
        };
        t.bind(p.as_bytes(), i);
    }
    for q in 0..10 {
        t.bind(b"#.error", n + q);
    }
    t
}

/// Keys that hit each kind of pattern, and one that matches nothing.
fn topic_keys(n: u32) -> Vec<(&'static str, String)> {
    // Bindings from the middle of the range, one of each kind (i % 3 == 0, 1, 2).
    let h = n / 2 - n / 2 % 3;
    vec![
        ("server_hash", format!("server{h}.cpu.load")),
        ("star_user_star", format!("eu.user{}.login", h + 1)),
        ("hash_error", "app.db.error".to_string()),
        (
            "logs_deep",
            format!("logs.svc{}.{}.a.b.c", (h + 2) % 100, h + 2),
        ),
        ("miss", "nobody.home.today".to_string()),
    ]
}

fn route_count(t: &TopicTrie<u32>, key: &[u8]) -> usize {
    let mut n = 0;
    t.route(key, |d| {
        black_box(d);
        n += 1;
    });
    n
}

/// A linear scan over parsed patterns: what routing costs without a trie.
fn linear_matches(p: &[Vec<u8>], k: &[&[u8]]) -> bool {
    match p.split_first() {
        None => k.is_empty(),
        Some((w, rest)) if w == b"#" => (0..=k.len()).any(|i| linear_matches(rest, &k[i..])),
        Some((w, rest)) => {
            !k.is_empty() && (w == b"*" || w == k[0]) && linear_matches(rest, &k[1..])
        }
    }
}

fn report_memory_and_allocations() {
    for n in [10_000u32, 100_000] {
        let before = LIVE.load(Ordering::Relaxed);
        let t = topic_trie(n);
        let bytes = LIVE.load(Ordering::Relaxed) - before;
        eprintln!(
            "topic trie, {} bindings: {} bytes live, {:.0} bytes per binding",
            t.len(),
            bytes,
            bytes as f64 / t.len() as f64
        );
        let keys = topic_keys(n);
        let allocs = ALLOCS.load(Ordering::Relaxed);
        let mut matched = 0;
        for _ in 0..1000 {
            for (_, k) in &keys {
                matched += route_count(&t, k.as_bytes());
            }
        }
        eprintln!(
            "  {} routes ({} deliveries): {} heap allocations",
            1000 * keys.len(),
            matched,
            ALLOCS.load(Ordering::Relaxed) - allocs
        );
    }
}

fn topic(c: &mut Criterion) {
    report_memory_and_allocations();
    let mut g = c.benchmark_group("topic");
    for n in [10_000u32, 100_000] {
        let t = topic_trie(n);
        for (name, key) in topic_keys(n) {
            assert_eq!(
                route_count(&t, key.as_bytes()) > 0,
                name != "miss",
                "{name}"
            );
            g.bench_with_input(BenchmarkId::new(name, n), key.as_bytes(), |b, key| {
                b.iter(|| route_count(&t, black_box(key)))
            });
        }
    }
    // Baseline: the same 10k patterns scanned one by one.
    let patterns: Vec<(Vec<Vec<u8>>, u32)> = (0..10_000u32)
        .map(|i| match i % 3 {
            0 => format!("server{i}.#"),
            1 => format!("*.user{i}.*"),
            _ => format!("logs.svc{}.{i}.#", i % 100),
        })
        .chain(std::iter::repeat_n("#.error".to_string(), 10))
        .enumerate()
        .map(|(i, p)| {
            (
                p.split('.').map(|w| w.as_bytes().to_vec()).collect(),
                i as u32,
            )
        })
        .collect();
    g.bench_function("linear_scan_server_hash/10000", |b| {
        b.iter(|| {
            let key = black_box(b"server4998.cpu.load".as_slice());
            let words: Vec<&[u8]> = key.split(|b| *b == b'.').collect();
            let mut n = 0;
            for (p, d) in &patterns {
                if linear_matches(p, &words) {
                    black_box(d);
                    n += 1;
                }
            }
            n
        })
    });
    g.finish();
}

fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
    FieldTable(
        entries
            .iter()
            .map(|(k, v)| (ShortStr::from(*k), v.clone()))
            .collect(),
    )
}

fn headers(c: &mut Criterion) {
    let mut g = c.benchmark_group("headers");
    let msg = table(&[
        ("content-type", FieldValue::string("application/pdf")),
        ("department", FieldValue::string("finance")),
        ("priority", FieldValue::I32(3)),
        ("size", FieldValue::I64(123_456)),
        ("user", FieldValue::string("alice")),
        (
            "trace-id",
            FieldValue::string("0af7651916cd43dd8448eb211c80319c"),
        ),
    ]);
    let cases = [
        (
            "all_match",
            table(&[
                ("x-match", FieldValue::string("all")),
                ("department", FieldValue::string("finance")),
                ("priority", FieldValue::I64(3)),
            ]),
            true,
        ),
        (
            "all_miss",
            table(&[
                ("x-match", FieldValue::string("all")),
                ("department", FieldValue::string("finance")),
                ("priority", FieldValue::I32(1)),
            ]),
            false,
        ),
        (
            "any_match_last",
            table(&[
                ("x-match", FieldValue::string("any")),
                ("department", FieldValue::string("sales")),
                ("region", FieldValue::string("eu")),
                ("user", FieldValue::string("alice")),
            ]),
            true,
        ),
        (
            "any_miss",
            table(&[
                ("x-match", FieldValue::string("any")),
                ("department", FieldValue::string("sales")),
                ("region", FieldValue::string("eu")),
                ("user", FieldValue::string("bob")),
            ]),
            false,
        ),
    ];
    for (name, args, expect) in &cases {
        assert_eq!(headers_match(args, Some(&msg)), *expect, "{name}");
        g.bench_function(*name, |b| {
            b.iter(|| headers_match(black_box(args), Some(black_box(&msg))))
        });
    }
    g.finish();
}

fn direct(c: &mut Criterion) {
    let mut g = c.benchmark_group("direct");
    for n in [10_000u32, 100_000] {
        let map: HashMap<ShortStr, Vec<u32>> = (0..n)
            .map(|i| (ShortStr::from(format!("queue.{i}").as_str()), vec![i]))
            .collect();
        let key = format!("queue.{}", n / 2);
        g.bench_with_input(
            BenchmarkId::new("hashmap_hit", n),
            key.as_bytes(),
            |b, key| b.iter(|| map.get(black_box(key)).map_or(0, |v| v.len())),
        );
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = topic, headers, direct
}
criterion_main!(benches);
