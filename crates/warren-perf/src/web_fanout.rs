//! `sse-fanout`: one message fanned out to N web subscribers; per round, the
//! time until the last of them (and the median one) has it.
//!
//! The run declares a fanout exchange over AMQP (`--uri`) and opens N
//! subscribers on `/exchange/<it>`, one connection each: SSE feeds by default,
//! or Web-STOMP subscriptions with `--transport ws` (which RabbitMQ has too;
//! it has no SSE). Each subscriber gets its own exclusive queue bound to the
//! exchange, on RabbitMQ and Warren alike.
//!
//! Each round publishes one message over AMQP whose body is the usual stamp
//! (send time, producer, round number; [`crate::seq`]) as 32 hex digits, text
//! that survives both an SSE `data:` line and a STOMP text frame. Publisher
//! and subscribers are the same process, so the send time is on the same
//! monotonic clock as the arrivals. Rounds run one after the other with a
//! short pause, so each starts from an idle broker; the first few are warm-up
//! ([`crate::rounds`]). Every subscriber checks it got every round once and
//! in order.

use crate::client::{Connection, Error, Result};
use crate::report::{Integrity, Spread};
use crate::rounds::{close_exchange, open_exchange, Arrivals, Rounds, WARMUP_ROUNDS};
use crate::seq::{read_stamp, write_stamp, Seen, SeqTracker, Stamp, STAMP_LEN};
use crate::sse_reader;
use crate::uri::AmqpUri;
use crate::web::{raise_nofile_limit, Subscriber, WebTransport};
use crate::web_idle::{close_all, open_all, SPARE_FDS};
use crate::{fmt, Names, PerfArgs};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use warren_amqp::codec::{BasicPublish, Method};
use warren_core::ShortStr;

/// A round that takes longer than this is a failure, not a slow sample.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
/// Quiet time between rounds.
const ROUND_PAUSE: Duration = Duration::from_millis(50);

#[derive(Debug, Clone, Serialize)]
pub struct WebFanoutReport {
    pub uri: String,
    pub web_url: String,
    pub transport: WebTransport,
    pub subscribers: usize,
    pub repeats: usize,
    pub warmup_rounds: usize,
    /// Time to open all subscribers.
    pub setup_s: f64,
    /// Per measured round: publish until the last subscriber had it.
    #[serde(flatten)]
    pub all: Spread,
    /// Per measured round: publish until the median subscriber had it.
    pub subscriber_median_samples_us: Vec<f64>,
    /// Median over the rounds of the median subscriber's time.
    pub subscriber_median_us: f64,
    /// SSE only: per measured round, publish until the broker had written the
    /// message to the last subscriber (the kernel's receive stamps of the
    /// feeds' sockets, so without the load generator's own reading delay).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_all: Option<Spread>,
    /// SSE only: the same for the median subscriber (median over rounds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub written_subscriber_median_us: Option<f64>,
    pub integrity: Integrity,
}

impl WebFanoutReport {
    pub fn human(&self) -> String {
        let f = |us: f64| fmt::ns((us * 1000.0) as u64);
        let how = match self.transport {
            WebTransport::Sse => "SSE subscribers",
            WebTransport::Ws => "Web-STOMP subscribers",
        };
        format!(
            "sse-fanout: 1 message (published over AMQP to a fanout exchange) to {} {how}, {} rounds after {} warm-up, against {} and {}\n  \
             setup      {:.2} s\n  \
             all got it {}\n  \
             median subscriber got it after {} (median over rounds)\n{}  \
             integrity  {}\n",
            fmt::int(self.subscribers as u64),
            self.repeats,
            self.warmup_rounds,
            self.web_url,
            self.uri,
            self.setup_s,
            self.all.human(),
            f(self.subscriber_median_us),
            match (&self.written_all, self.written_subscriber_median_us) {
                (Some(w), Some(m)) => format!(
                    "  broker had written it to all {} (kernel receive stamps; median subscriber {})\n",
                    w.human(),
                    f(m)
                ),
                _ => String::new(),
            },
            self.integrity.human()
        )
    }
}

/// The stamp as 32 lowercase hex digits.
pub fn stamp_text(stamp: Stamp) -> String {
    let mut raw = [0u8; STAMP_LEN];
    write_stamp(&mut raw, stamp);
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// The stamp of a body written by [`stamp_text`].
pub fn parse_stamp_text(body: &[u8]) -> Option<Stamp> {
    if body.len() != 2 * STAMP_LEN {
        return None;
    }
    let mut raw = [0u8; STAMP_LEN];
    for (i, pair) in body.chunks(2).enumerate() {
        let hex = std::str::from_utf8(pair).ok()?;
        raw[i] = u8::from_str_radix(hex, 16).ok()?;
    }
    read_stamp(&raw)
}

/// Each subscriber's latency (ns) for the latest message it got.
type Latest = Vec<AtomicU64>;

struct Outcome {
    sub: Subscriber,
    tracker: SeqTracker,
    reordered: u64,
    unexpected: u64,
}

pub async fn run(args: &PerfArgs, uri: &AmqpUri, names: &Names) -> Result<WebFanoutReport> {
    let n = args.subscribers;
    if n == 0 {
        return Err(Error::Other("--subscribers must be at least 1".into()));
    }
    raise_nofile_limit(n as u64 + SPARE_FDS)?;
    let exchange = format!("{}-webfan", names.prefix);
    let mut producer = open_exchange(uri, &exchange).await?;
    let result = rounds(args, uri, &mut producer, &exchange, n).await;
    close_exchange(producer, &exchange).await;
    result
}

async fn rounds(
    args: &PerfArgs,
    uri: &AmqpUri,
    producer: &mut Connection,
    exchange: &str,
    n: usize,
) -> Result<WebFanoutReport> {
    let transport = args.transport.unwrap_or(WebTransport::Sse);
    let url = args.web_url()?;
    let setup_start = Instant::now();
    let destination = format!("/exchange/{exchange}");
    let (subs, dropped) = open_all(args, transport, &url, uri, n, |_| destination.clone()).await?;
    if dropped > 0 {
        close_all(subs).await;
        return Err(Error::Other(format!(
            "the broker closed {dropped} of {n} subscribers while they were being opened"
        )));
    }
    let setup_s = setup_start.elapsed().as_secs_f64();
    if !args.quiet {
        eprintln!("opened {n} subscribers in {setup_s:.2} s");
    }

    let plan = Rounds {
        n,
        noun: "subscribers",
        repeats: args.repeats,
        timeout: ROUND_TIMEOUT,
        pause: ROUND_PAUSE,
    };
    let publish = |producer: &mut Connection, stamp| {
        let method = Method::BasicPublish(BasicPublish {
            exchange: ShortStr::from(exchange),
            ..Default::default()
        });
        producer.send_content(1, &method, &[0, 0], stamp_text(stamp).as_bytes());
    };
    let mut samples = Samples::default();
    let (sent, integrity, subs_left, written) = match transport {
        WebTransport::Sse if !args.sse_tasks => {
            let mut feeds = Vec::with_capacity(n);
            for s in subs {
                if let Subscriber::Sse(s) = s {
                    feeds.push(s);
                }
            }
            let arrivals = Arrivals::new(sse_reader::Latest::new(n));
            let stop = Arc::new(AtomicBool::new(false));
            let reader = sse_reader::spawn(feeds, arrivals.clone(), stop.clone())?;
            // The reader stops however this ends (an error below included).
            let _stop_on_exit = StopOnDrop(stop.clone());
            let mut written = Samples::default();
            let sent = plan
                .run(&arrivals, producer, publish, |round| {
                    samples.take(round, &arrivals.latency.read, args.quiet, n);
                    written.take(round, &arrivals.latency.written, true, n);
                })
                .await?;
            stop.store(true, Ordering::Relaxed);
            let outcome = tokio::task::spawn_blocking(move || reader.join())
                .await
                .map_err(|e| Error::Other(format!("SSE reader: {e}")))?
                .map_err(|_| Error::Other("SSE reader thread panicked".into()))??;
            let mut integrity = Integrity {
                checked: true,
                reordered: outcome.reordered,
                unexpected: outcome.unexpected,
                ..Default::default()
            };
            for t in &outcome.trackers {
                integrity.add_tracker(t, sent.rounds);
            }
            if outcome.open < n {
                return Err(Error::Other(format!(
                    "the broker closed {} SSE subscribers during the run",
                    n - outcome.open
                )));
            }
            (sent, integrity, Vec::new(), Some(written))
        }
        WebTransport::Ws | WebTransport::Sse => {
            let (sent, integrity, subs) =
                follow_all(subs, &plan, producer, publish, &mut samples, args.quiet).await?;
            (sent, integrity, subs, None)
        }
    };
    close_all(subs_left).await;
    if let Some(e) = sent.failure {
        return Err(e);
    }
    let mid = Spread::of_ns(&samples.median_ns);
    Ok(WebFanoutReport {
        uri: uri.to_string(),
        web_url: url.display_for(transport),
        transport,
        subscribers: n,
        repeats: args.repeats,
        warmup_rounds: WARMUP_ROUNDS,
        setup_s,
        all: Spread::of_ns(&samples.all_ns),
        subscriber_median_us: mid.median_us,
        subscriber_median_samples_us: mid.samples_us,
        written_all: written.as_ref().map(|w| Spread::of_ns(&w.all_ns)),
        written_subscriber_median_us: written.map(|w| Spread::of_ns(&w.median_ns).median_us),
        integrity,
    })
}

/// Sets the flag when dropped.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Per measured round: the last and the median subscriber's latency.
#[derive(Default)]
struct Samples {
    all_ns: Vec<u64>,
    median_ns: Vec<u64>,
}

impl Samples {
    fn take(&mut self, round: usize, latency: &[AtomicU64], quiet: bool, n: usize) {
        let mut lat: Vec<u64> = latency.iter().map(|l| l.load(Ordering::SeqCst)).collect();
        lat.sort_unstable();
        let all = lat.last().copied().unwrap_or(0);
        let mid = lat.get(lat.len() / 2).copied().unwrap_or(0);
        self.all_ns.push(all);
        self.median_ns.push(mid);
        if !quiet {
            eprintln!(
                "round {round:>3}: all {n} subscribers had it after {} (median subscriber {})",
                fmt::ns(all),
                fmt::ns(mid)
            );
        }
    }
}

/// Web-STOMP: a tokio task per subscriber reads its frames.
async fn follow_all(
    subs: Vec<Subscriber>,
    plan: &Rounds,
    producer: &mut Connection,
    publish: impl FnMut(&mut Connection, Stamp),
    samples: &mut Samples,
    quiet: bool,
) -> Result<(crate::rounds::Sent, Integrity, Vec<Subscriber>)> {
    let n = subs.len();
    let arrivals = Arrivals::new((0..n).map(|_| AtomicU64::new(0)).collect::<Latest>());
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    let tasks: Vec<_> = subs
        .into_iter()
        .enumerate()
        .map(|(i, s)| tokio::spawn(follow(i, s, arrivals.clone(), stop.clone())))
        .collect();
    let sent = plan
        .run(&arrivals, producer, publish, |round| {
            samples.take(round, &arrivals.latency, quiet, n)
        })
        .await?;
    stop.cancel();
    let mut integrity = Integrity {
        checked: true,
        ..Default::default()
    };
    let mut subs = Vec::with_capacity(n);
    let mut task_error = None;
    for t in tasks {
        match t.await {
            Ok(Ok(o)) => {
                integrity.reordered += o.reordered;
                integrity.unexpected += o.unexpected;
                integrity.add_tracker(&o.tracker, sent.rounds);
                subs.push(o.sub);
            }
            Ok(Err(e)) => {
                task_error.get_or_insert(e);
            }
            Err(e) => {
                task_error.get_or_insert(Error::Other(format!("subscriber task failed: {e}")));
            }
        }
    }
    if let Some(e) = task_error {
        close_all(subs).await;
        return Err(e);
    }
    Ok((sent, integrity, subs))
}

/// One subscriber's reader: records the latency of every message it gets.
async fn follow(
    idx: usize,
    mut sub: Subscriber,
    arrivals: Arc<Arrivals<Latest>>,
    stop: CancellationToken,
) -> Result<Outcome> {
    let mut tracker = SeqTracker::new();
    let mut reordered = 0;
    let mut unexpected = 0;
    loop {
        let body = tokio::select! {
            biased;
            b = sub.next_body() => b?,
            _ = stop.cancelled() => break,
        };
        let Some(body) = body else {
            return Err(Error::Other(format!(
                "the broker ended subscriber {idx}'s stream"
            )));
        };
        let now = arrivals.now_ns();
        match parse_stamp_text(&body) {
            Some(s) if s.producer == 0 => {
                arrivals.latency[idx].store(now.saturating_sub(s.sent_ns), Ordering::SeqCst);
                if tracker.record(s.seq) == Seen::Late {
                    reordered += 1;
                }
            }
            _ => unexpected += 1,
        }
        arrivals.arrive();
    }
    Ok(Outcome {
        sub,
        tracker,
        reordered,
        unexpected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips_as_text() {
        let s = Stamp {
            sent_ns: 123_456_789,
            producer: 0,
            seq: 42,
        };
        let t = stamp_text(s);
        assert_eq!(t.len(), 32);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(parse_stamp_text(t.as_bytes()), Some(s));
        assert_eq!(parse_stamp_text(b"xyz"), None);
        assert_eq!(parse_stamp_text(&[b'g'; 32]), None);
    }
}
