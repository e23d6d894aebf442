//! `churn`: connection churn. --concurrency workers each loop over connect,
//! AMQP login (header, start-ok PLAIN, tune-ok, open), connection.close and
//! close-ok, for --time-limit seconds, as fast as they can or at --rate
//! cycles per second in all; cycles/s, errors, and with --broker-pid the
//! broker's RSS and open descriptors before, at peak and after.
//!
//! The question is the one of rabbitmq-server#4871: does a storm of short
//! connections leave anything behind? So "after" is read once the broker
//! has settled: its descriptor count back to the baseline (or
//! [`FD_WAIT`] passed), then [`crate::rss`]'s settle time. The baseline is
//! read after a short warm-up churn ([`WARM_UP`]): the first connections
//! grow the allocator's arenas and the runtime's threads once, and that is
//! not a leak. The run fails (exit status 1) if a cycle failed, the broker
//! kept descriptors, or its RSS stayed more than [`RSS_SLACK_KIB`] above the
//! baseline.
//!
//! With --rate, cycle k is due at start + k/rate (one shared counter), so
//! the workers together keep the rate even when one cycle stalls; if they
//! cannot, the achieved rate says so. Sources are spread over
//! --source-addresses loopback addresses: 10,000 cycles a second for a
//! minute is 600,000 four-tuples, and each closed one waits in TIME_WAIT.

use crate::client::{Connection, Result};
use crate::histogram::Histogram;
use crate::report::LatencySummary;
use crate::rss::{fd_count, kib_or_unknown, rss_kib, settled_rss_kib};
use crate::uri::AmqpUri;
use crate::web::raise_nofile_limit;
use crate::web_idle::SPARE_FDS;
use crate::{fmt, PerfArgs};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Churn before the baseline is read (not counted).
const WARM_UP: Duration = Duration::from_secs(1);
/// Longest wait for the broker's descriptors to come back to the baseline.
const FD_WAIT: Duration = Duration::from_secs(10);
/// Settle time before an RSS reading.
const SETTLE: Duration = Duration::from_secs(2);
/// RSS above the baseline afterwards that still passes (issue 14: ±10 MiB).
pub const RSS_SLACK_KIB: u64 = 10 * 1024;

#[derive(Debug, Clone, Serialize)]
pub struct ChurnReport {
    pub uri: String,
    pub workers: usize,
    pub source_addresses: u8,
    pub seconds: f64,
    /// --rate, cycles per second in all (None: as fast as possible).
    pub target_rate: Option<f64>,
    /// Completed connect/login/close cycles.
    pub cycles: u64,
    pub rate: f64,
    /// Cycles that failed (refused, timed out, closed by the broker).
    pub errors: u64,
    pub first_error: Option<String>,
    /// TCP connect to close-ok of one cycle.
    pub cycle_latency: LatencySummary,
    pub rss_before_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    pub fds_before: Option<u64>,
    pub fds_peak: Option<u64>,
    pub fds_after: Option<u64>,
}

impl ChurnReport {
    pub fn human(&self) -> String {
        let l = &self.cycle_latency;
        let target = self
            .target_rate
            .map_or("as fast as possible".to_string(), |r| {
                format!("target {}/s", fmt::rate(r))
            });
        let mut s = format!(
            "churn: connect, AMQP login, close against {} ({} workers, {target}, from {} source addresses)\n  \
             {} cycles in {:.1} s: {} cycles/s, {} errors\n  \
             cycle (connect to close-ok)  p50 {} µs  p99 {} µs  max {} µs\n",
            self.uri,
            self.workers,
            self.source_addresses,
            fmt::int(self.cycles),
            self.seconds,
            fmt::rate(self.rate),
            fmt::int(self.errors),
            l.p50_us.round(),
            l.p99_us.round(),
            l.max_us.round(),
        );
        match (self.rss_before_kib, self.fds_before) {
            (Some(_), Some(_)) => {
                s += &format!(
                    "  broker RSS {} before, {} peak, {} after; descriptors {} before, {} peak, {} after\n",
                    kib_or_unknown(self.rss_before_kib),
                    kib_or_unknown(self.rss_peak_kib),
                    kib_or_unknown(self.rss_after_kib),
                    opt(self.fds_before),
                    opt(self.fds_peak),
                    opt(self.fds_after),
                );
                s += &format!(
                    "  leak check (RSS within {} of before, no descriptor kept): {}\n",
                    fmt::kib(RSS_SLACK_KIB as f64),
                    if self.leak_free() { "ok" } else { "FAILED" }
                );
            }
            _ => s += crate::rss::NOT_MEASURED,
        }
        if let Some(e) = &self.first_error {
            s += &format!("  first error: {e}\n");
        }
        s
    }

    /// Descriptors back to the baseline and RSS within the slack (true when
    /// not measured).
    pub fn leak_free(&self) -> bool {
        let fds = match (self.fds_before, self.fds_after) {
            (Some(b), Some(a)) => a <= b,
            _ => true,
        };
        let rss = match (self.rss_before_kib, self.rss_after_kib) {
            (Some(b), Some(a)) => a <= b + RSS_SLACK_KIB,
            _ => true,
        };
        fds && rss
    }

    pub fn ok(&self) -> bool {
        self.errors == 0 && self.cycles > 0 && self.leak_free()
    }
}

fn opt(v: Option<u64>) -> String {
    v.map_or("?".into(), fmt::int)
}

/// What the workers share: the cycle counter (tickets, for --rate) and when
/// to stop.
struct Plan {
    start: Instant,
    deadline: Instant,
    rate: Option<f64>,
    next: AtomicU64,
    done: AtomicU64,
}

#[derive(Default)]
struct Outcome {
    latency: Histogram,
    cycles: u64,
    errors: u64,
    first_error: Option<String>,
}

async fn cycle(uri: &AmqpUri, slot: usize, spread: u8) -> Result<()> {
    Connection::open_from(uri, slot, spread)
        .await?
        .close()
        .await
}

async fn worker(uri: Arc<AmqpUri>, spread: u8, plan: Arc<Plan>) -> Outcome {
    let mut out = Outcome::default();
    loop {
        // Behind schedule or not, the run ends at the deadline.
        if Instant::now() >= plan.deadline {
            break;
        }
        let k = plan.next.fetch_add(1, Ordering::Relaxed);
        if let Some(rate) = plan.rate {
            let due = plan.start + Duration::from_secs_f64(k as f64 / rate);
            if due >= plan.deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
        }
        let t = Instant::now();
        match cycle(&uri, k as usize, spread).await {
            Ok(()) => {
                out.latency.record(t.elapsed().as_nanos() as u64);
                out.cycles += 1;
            }
            Err(e) => {
                out.errors += 1;
                out.first_error.get_or_insert_with(|| e.to_string());
            }
        }
        plan.done.fetch_add(1, Ordering::Relaxed);
    }
    out
}

/// Churn for `length` with `workers` workers; the merged outcome and the
/// time it took.
async fn churn(
    uri: &AmqpUri,
    workers: usize,
    spread: u8,
    rate: Option<f64>,
    length: Duration,
    quiet: bool,
) -> (Outcome, f64) {
    let start = Instant::now();
    let plan = Arc::new(Plan {
        start,
        deadline: start + length,
        rate,
        next: AtomicU64::new(0),
        done: AtomicU64::new(0),
    });
    let uri = Arc::new(uri.clone());
    let tasks: Vec<_> = (0..workers)
        .map(|_| tokio::spawn(worker(uri.clone(), spread, plan.clone())))
        .collect();
    let progress = (!quiet).then(|| {
        let plan = plan.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let done = plan.done.load(Ordering::Relaxed);
                eprintln!("  {} cycles/s ({done} in all)", done - last);
                last = done;
            }
        })
    });
    let mut all = Outcome::default();
    for t in tasks {
        if let Ok(o) = t.await {
            all.latency.merge(&o.latency);
            all.cycles += o.cycles;
            all.errors += o.errors;
            if all.first_error.is_none() {
                all.first_error = o.first_error;
            }
        }
    }
    if let Some(p) = progress {
        p.abort();
    }
    (all, start.elapsed().as_secs_f64())
}

/// Peak RSS and descriptor count, sampled every 50 ms on a thread of its own:
/// busy workers must not delay the samples.
struct Sampler {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, u64)>,
}

impl Sampler {
    fn start(pid: u32) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            let (mut rss, mut fds) = (0, 0);
            while !s.load(Ordering::Relaxed) {
                rss = rss_kib(pid).unwrap_or(0).max(rss);
                fds = fd_count(pid).unwrap_or(0).max(fds);
                std::thread::sleep(Duration::from_millis(50));
            }
            (rss, fds)
        });
        Sampler { stop, thread }
    }

    fn finish(self) -> (u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap_or((0, 0))
    }
}

/// Wait until the broker holds no more descriptors than `baseline` (closing
/// connections linger briefly), at most [`FD_WAIT`].
async fn fds_settled(pid: u32, baseline: u64) -> Option<u64> {
    let until = Instant::now() + FD_WAIT;
    loop {
        let n = fd_count(pid)?;
        if n <= baseline || Instant::now() >= until {
            return Some(n);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub async fn run(args: &PerfArgs, uri: &AmqpUri) -> Result<ChurnReport> {
    let workers = args.concurrency.max(1);
    let spread = args.source_addresses;
    let rate = args.rate.filter(|r| *r > 0.0);
    raise_nofile_limit(workers as u64 + SPARE_FDS)?;
    crate::rss::check_pid(args.broker_pid)?;
    let pid = args.broker_pid;
    let (mut rss_before, mut fds_before) = (None, None);
    if let Some(pid) = pid {
        if !args.quiet {
            eprintln!("warming up for {WARM_UP:?}");
        }
        churn(uri, workers, spread, rate, WARM_UP, true).await;
        rss_before = settled_rss_kib(pid, SETTLE).await;
        fds_before = fd_count(pid);
    }
    let sampler = pid.map(Sampler::start);
    let (outcome, seconds) = churn(uri, workers, spread, rate, args.time_limit(), args.quiet).await;
    let peak = sampler.map(Sampler::finish);
    let (mut rss_after, mut fds_after) = (None, None);
    if let (Some(pid), Some(before)) = (pid, fds_before) {
        fds_after = fds_settled(pid, before).await;
        rss_after = settled_rss_kib(pid, SETTLE).await;
    }
    Ok(ChurnReport {
        uri: uri.to_string(),
        workers,
        source_addresses: spread,
        seconds,
        target_rate: rate,
        cycles: outcome.cycles,
        rate: outcome.cycles as f64 / seconds.max(1e-9),
        errors: outcome.errors,
        first_error: outcome.first_error,
        cycle_latency: LatencySummary::from_histogram(&outcome.latency),
        rss_before_kib: rss_before,
        rss_peak_kib: peak.map(|p| p.0.max(rss_before.unwrap_or(0))),
        rss_after_kib: rss_after,
        fds_before,
        fds_peak: peak.map(|p| p.1.max(fds_before.unwrap_or(0))),
        fds_after,
    })
}
