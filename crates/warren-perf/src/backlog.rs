//! Backlog: publish N messages to one queue with nobody consuming, then start
//! the consumers and drain it. Reports the rate each way and the broker's peak
//! RSS (sampled every 50 ms throughout), i.e. what holding a backlog costs.
//!
//! The publish phase ends when the broker reports all N messages in the queue
//! (passive queue.declare), not when the client has written them: without
//! confirms the last writes may still sit in socket buffers.

use crate::client::{self, Connection, Error, Result};
use crate::load::{Consumer, ConsumerCfg, Producer, ProducerCfg, Shared};
use crate::report::Integrity;
use crate::rss::{kib_or_unknown, rss_kib, PeakSampler, NOT_MEASURED};
use crate::throughput::{check, Plan};
use crate::uri::AmqpUri;
use crate::{fmt, ExchangeType, Names, PerfArgs};
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use warren_amqp::codec::Method;

/// Give up waiting for the queue to show all messages once its count has not
/// grown for this long (a 100M backlog, or a slow broker's 10M, takes many
/// minutes in all).
const ENQUEUE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Serialize)]
pub struct BacklogReport {
    pub uri: String,
    pub messages: u64,
    pub size: usize,
    pub persistent: bool,
    pub confirm: u32,
    pub producers: u16,
    pub consumers: usize,
    pub publish_s: f64,
    pub publish_rate: f64,
    pub drain_s: f64,
    pub drain_rate: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_full_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    pub rss_after_drain_kib: Option<u64>,
    /// Bytes of files under --data-dir: before, with the backlog, after.
    pub disk_before: Option<u64>,
    pub disk_full: Option<u64>,
    pub disk_after_drain: Option<u64>,
    pub integrity: Integrity,
}

impl BacklogReport {
    pub fn human(&self) -> String {
        let mut s = format!(
            "backlog: {} messages of {} B ({}), {} producer(s), then {} consumer(s), against {}\n  \
             published  {:.2} s  {:>11} msg/s (until all were in the queue)\n  \
             drained    {:.2} s  {:>11} msg/s\n",
            fmt::int(self.messages),
            self.size,
            if self.persistent { "persistent" } else { "transient" },
            self.producers,
            self.consumers,
            self.uri,
            self.publish_s,
            fmt::rate(self.publish_rate),
            self.drain_s,
            fmt::rate(self.drain_rate),
        );
        match (self.rss_before_kib, self.rss_peak_kib) {
            (Some(b), Some(p)) => {
                s += &format!(
                    "  broker RSS {} before, {} with the backlog, peak {}, {} after draining\n",
                    fmt::kib(b as f64),
                    kib_or_unknown(self.rss_full_kib),
                    fmt::kib(p as f64),
                    kib_or_unknown(self.rss_after_drain_kib),
                );
            }
            _ => s += NOT_MEASURED,
        }
        if let (Some(b), Some(f), Some(a)) =
            (self.disk_before, self.disk_full, self.disk_after_drain)
        {
            let per = f.saturating_sub(b) as f64 / self.messages.max(1) as f64;
            s += &format!(
                "  data dir   {} before, {} with the backlog ({per:.1} B/msg), {} after draining\n",
                fmt::kib(b as f64 / 1024.0),
                fmt::kib(f as f64 / 1024.0),
                fmt::kib(a as f64 / 1024.0),
            );
        }
        s += &format!("  integrity  {}\n", self.integrity.human());
        s
    }
}

pub async fn run(args: &PerfArgs, uri: &AmqpUri, names: &Names) -> Result<BacklogReport> {
    if args.producers == 0 || args.consumers == 0 {
        return Err(Error::Other(
            "backlog needs at least one producer and one consumer".into(),
        ));
    }
    let queue = format!("{}-backlog", names.prefix);
    let np = args.producers as usize;
    let plan = Plan {
        exchange: String::new(),
        exchange_type: ExchangeType::Direct,
        own_exchange: false,
        queues: vec![queue.clone()],
        bindings: vec![],
        producer_keys: vec![queue.clone(); np],
        expected: vec![(0..args.producers).collect()],
    };
    let mut admin = Connection::open(uri).await?;
    admin.open_channel(1).await?;
    admin
        .rpc(
            1,
            client::queue_declare(&queue, args.persistent, false, false),
        )
        .await?;
    let result = phases(args, uri, &plan, &mut admin).await;
    crate::throughput::cleanup(&mut admin, &plan).await;
    let _ = admin.close().await;
    result
}

async fn phases(
    args: &PerfArgs,
    uri: &AmqpUri,
    plan: &Plan,
    admin: &mut Connection,
) -> Result<BacklogReport> {
    let queue = &plan.queues[0];
    let np = args.producers as usize;
    let n = args.messages;
    let shared = Shared::new(1, np);
    let rss_before = args.broker_pid.and_then(rss_kib);
    let disk = |d: &std::path::PathBuf| dir_bytes(d);
    let disk_before = args.data_dir.as_ref().map(disk);
    let sampler = args.broker_pid.map(PeakSampler::start);

    // Publish: split N over the producers.
    let producers = futures_util::future::try_join_all((0..np).map(|i| {
        let share = n / np as u64 + u64::from((i as u64) < n % np as u64);
        Producer::connect(
            uri,
            ProducerCfg {
                id: i as u16,
                exchange: String::new(),
                routing_key: queue.clone(),
                persistent: args.persistent,
                size: args.size,
                confirm: args.confirm,
                rate: None,
                limit: share,
            },
        )
    }))
    .await?;
    let stop = CancellationToken::new();
    let start = Instant::now();
    let outcomes = futures_util::future::try_join_all(
        producers
            .into_iter()
            .map(|p| p.run(shared.clone(), start, None, stop.clone())),
    )
    .await?;
    let sent: Vec<u64> = outcomes.iter().map(|o| o.sent).collect();
    let total: u64 = sent.iter().sum();
    // Wait until the broker has them all.
    let mut progress = (0u64, Instant::now());
    loop {
        match admin.rpc(1, client::queue_declare_passive(queue)).await? {
            Method::QueueDeclareOk(ok) if ok.message_count as u64 >= total => break,
            Method::QueueDeclareOk(ok) => {
                if ok.message_count as u64 > progress.0 {
                    progress = (ok.message_count as u64, Instant::now());
                }
            }
            other => {
                return Err(Error::Other(format!(
                    "expected queue.declare-ok, got {other:?}"
                )))
            }
        }
        if progress.1.elapsed() > ENQUEUE_TIMEOUT {
            return Err(Error::Other(format!(
                "the queue stayed at {} of {total} messages for {ENQUEUE_TIMEOUT:?}",
                progress.0
            )));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let publish_s = start.elapsed().as_secs_f64();
    if !args.quiet {
        eprintln!(
            "published {} messages in {publish_s:.2} s ({} msg/s); draining",
            fmt::int(total),
            fmt::rate(total as f64 / publish_s)
        );
    }
    let rss_full = args.broker_pid.and_then(rss_kib);
    let disk_full = args.data_dir.as_ref().map(disk);

    // Drain.
    let drain_start = Instant::now();
    let consumers = futures_util::future::try_join_all((0..args.consumers).map(|i| {
        Consumer::connect(
            uri,
            ConsumerCfg {
                queue: queue.clone(),
                queue_idx: 0,
                tag: format!("perf-backlog-{i}"),
                auto_ack: args.auto_ack,
                prefetch: args.prefetch,
                multi_ack_every: args.multi_ack_every,
            },
        )
    }))
    .await?;
    let stop_consumers = CancellationToken::new();
    let tasks: Vec<_> = consumers
        .into_iter()
        .map(|c| tokio::spawn(c.run(shared.clone(), stop_consumers.clone())))
        .collect();
    let mut last = (0u64, Instant::now());
    loop {
        let d = shared.distinct.load(Ordering::Relaxed);
        if d >= total {
            break;
        }
        if d != last.0 {
            last = (d, Instant::now());
        } else if last.1.elapsed() >= args.drain_timeout() {
            break;
        }
        if tasks.iter().any(|t| t.is_finished()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let drain_s = drain_start.elapsed().as_secs_f64();
    stop_consumers.cancel();
    for t in tasks {
        match t.await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(Error::Other(format!("consumer task failed: {e}"))),
        }
    }
    let rss_after = args.broker_pid.and_then(rss_kib);
    // Space comes back as the log writer deletes or compacts drained
    // segments, which takes a moment after the last ack.
    if args.data_dir.is_some() {
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let disk_after_drain = args.data_dir.as_ref().map(disk);
    let rss_peak = sampler.map(PeakSampler::finish);
    let mut integrity = check(&shared, plan, &sent);
    integrity.nacked = outcomes.iter().map(|o| o.nacked).sum();
    integrity.unconfirmed = outcomes.iter().map(|o| o.unconfirmed).sum();
    Ok(BacklogReport {
        uri: uri.to_string(),
        messages: total,
        size: args.size.max(crate::seq::STAMP_LEN),
        persistent: args.persistent,
        confirm: args.confirm,
        producers: args.producers,
        consumers: args.consumers,
        publish_s,
        publish_rate: total as f64 / publish_s.max(1e-9),
        drain_s,
        drain_rate: shared.distinct.load(Ordering::Relaxed) as f64 / drain_s.max(1e-9),
        rss_before_kib: rss_before,
        rss_full_kib: rss_full,
        rss_peak_kib: rss_peak,
        rss_after_drain_kib: rss_after,
        disk_before,
        disk_full,
        disk_after_drain,
        integrity,
    })
}

/// Total length of the files under `dir` (recursively); 0 if unreadable.
fn dir_bytes(dir: &std::path::PathBuf) -> u64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
