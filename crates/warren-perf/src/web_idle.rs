//! `web-idle`: N idle web subscribers, one connection each, as N browser pages
//! following a feed each; the broker's RSS per subscriber (`--broker-pid`).
//!
//! Subscriber i subscribes to `/topic/<run prefix>.<i>`: its own auto-delete
//! queue bound to `amq.topic`, on RabbitMQ and Warren alike. Over WebSocket
//! (`--transport ws`, the default) that is an upgrade with subprotocol
//! `v12.stomp`, CONNECT, SUBSCRIBE and its RECEIPT; over SSE a
//! `GET /sse?destination=...` whose response headers have arrived.
//!
//! Subscribers are opened a few at a time (a burst of thousands of
//! simultaneous handshakes measures the accept queue, not the footprint).
//! Each is then held by a task that reads what arrives (heart-beats) and, over
//! WebSocket, sends heart-beats, as a browser page does.
//! RSS is read before, with all of them open and after closing them, each
//! after a settling pause. Closing also checks that the broker kept every
//! subscriber: a WebSocket must still answer a DISCONNECT's receipt, an SSE
//! stream must not have ended; subscribers lost on the way make the run fail.

use crate::client::{Error, Result};
use crate::rss::{check_pid, per, rss, rss_lines};
use crate::uri::AmqpUri;
use crate::web::{raise_nofile_limit, Subscriber, WebTransport, WebUrl};
use crate::{fmt, Names, PerfArgs};
use futures_util::StreamExt;
use serde::Serialize;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// Subscribers opened concurrently.
pub const OPEN_CONCURRENCY: usize = 16;
/// Descriptors besides the subscribers' (runtime, AMQP connection, stdio...).
pub const SPARE_FDS: u64 = 64;

#[derive(Debug, Clone, Serialize)]
pub struct WebIdleReport {
    pub web_url: String,
    pub transport: WebTransport,
    pub subscribers: usize,
    pub open_s: f64,
    /// Subscribers opened per second (connect, upgrade or request, login,
    /// subscribe, confirmation).
    pub open_rate: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_with_subscribers_kib: Option<u64>,
    pub rss_after_close_kib: Option<u64>,
    /// (with - before) / subscribers.
    pub rss_per_subscriber_kib: Option<f64>,
    /// Subscribers the broker still had open at the end (all of them, or the
    /// run fails).
    pub still_open: usize,
}

impl WebIdleReport {
    pub fn human(&self) -> String {
        let what = match self.transport {
            WebTransport::Ws => {
                "STOMP-over-WebSocket subscribers (SUBSCRIBE /topic/..., own queue each)"
            }
            WebTransport::Sse => {
                "SSE subscribers (GET /sse?destination=/topic/..., own queue each)"
            }
        };
        let mut s = format!(
            "web-idle: {} idle {what} against {}\n  \
             opened in  {:.2} s ({} subscribers/s)\n",
            fmt::int(self.subscribers as u64),
            self.web_url,
            self.open_s,
            fmt::rate(self.open_rate)
        );
        s += &rss_lines(
            self.rss_before_kib,
            self.rss_with_subscribers_kib,
            self.rss_after_close_kib,
            self.rss_per_subscriber_kib,
            "subscriber",
        );
        s += &format!(
            "  still open at the end: {} of {}{}\n",
            fmt::int(self.still_open as u64),
            fmt::int(self.subscribers as u64),
            if self.ok() {
                ""
            } else {
                " (the broker dropped some)"
            }
        );
        s
    }

    pub fn ok(&self) -> bool {
        self.still_open == self.subscribers
    }
}

pub async fn run(args: &PerfArgs, creds: &AmqpUri, names: &Names) -> Result<WebIdleReport> {
    let n = args.subscribers;
    if n == 0 {
        return Err(Error::Other("--subscribers must be at least 1".into()));
    }
    let transport = args.transport.unwrap_or(WebTransport::Ws);
    let url = args.web_url()?;
    raise_nofile_limit(n as u64 + SPARE_FDS)?;
    check_pid(args.broker_pid)?;
    let rss_before = rss(args.broker_pid).await;
    let start = Instant::now();
    let (subs, _) = open_all(args, transport, &url, creds, n, |i| {
        format!("/topic/{}.{i}", names.prefix)
    })
    .await?;
    let open_s = start.elapsed().as_secs_f64();
    if !args.quiet {
        eprintln!("opened {n} subscribers in {open_s:.2} s; measuring");
    }
    // (Subscribers the broker closed while the others opened are missing from
    // `subs`, and so from `still_open`.)
    let stop = CancellationToken::new();
    let _stop_on_exit = stop.clone().drop_guard();
    let held: Vec<_> = subs
        .into_iter()
        .map(|s| tokio::spawn(hold(s, stop.clone())))
        .collect();
    let rss_with = rss(args.broker_pid).await;
    stop.cancel();
    let mut subs = Vec::with_capacity(n);
    for h in held {
        if let Ok(Some(s)) = h.await {
            subs.push(s);
        }
    }
    let still_open = close_all(subs).await;
    let rss_after = rss(args.broker_pid).await;
    Ok(WebIdleReport {
        web_url: url.display_for(transport),
        transport,
        subscribers: n,
        open_s,
        open_rate: n as f64 / open_s.max(1e-9),
        rss_before_kib: rss_before,
        rss_with_subscribers_kib: rss_with,
        rss_after_close_kib: rss_after,
        rss_per_subscriber_kib: per(rss_before, rss_with, n),
        still_open,
    })
}

/// Open `n` subscribers, subscriber i to `destination(i)`, [`OPEN_CONCURRENCY`]
/// at a time. Each one opened is held by a task ([`hold`]) until all are: a
/// subscriber left alone while thousands of others open would miss its
/// heart-beats, and RabbitMQ closes it. Returns the subscribers the broker
/// still had open, and how many it closed meanwhile. On the first failure
/// the ones already open are closed and the error names how far it got.
pub async fn open_all(
    args: &PerfArgs,
    transport: WebTransport,
    url: &WebUrl,
    creds: &AmqpUri,
    n: usize,
    destination: impl Fn(usize) -> String,
) -> Result<(Vec<Subscriber>, usize)> {
    let mut opening = futures_util::stream::iter(0..n)
        .map(|i| {
            let d = destination(i);
            async move { Subscriber::open(transport, url, creds, &d).await }
        })
        .buffer_unordered(OPEN_CONCURRENCY);
    let stop = CancellationToken::new();
    let mut held = Vec::with_capacity(n);
    let mut failure = None;
    let mut last_report = Instant::now();
    while let Some(r) = opening.next().await {
        match r {
            Ok(s) => held.push(tokio::spawn(hold(s, stop.clone()))),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        if !args.quiet && last_report.elapsed().as_secs() >= 2 {
            last_report = Instant::now();
            eprintln!("  {} of {n} subscribers open", held.len());
        }
    }
    drop(opening);
    stop.cancel();
    let opened = held.len();
    let mut subs = Vec::with_capacity(opened);
    for h in held {
        if let Ok(Some(s)) = h.await {
            subs.push(s);
        }
    }
    if let Some(e) = failure {
        close_all(subs).await;
        return Err(Error::Other(format!(
            "opening subscriber {} of {n}: {e}",
            opened + 1
        )));
    }
    let dropped = opened - subs.len();
    Ok((subs, dropped))
}

/// Keep a subscriber going until `stop`: read (and drop) what arrives, send
/// heart-beats. None if the broker closed it meanwhile.
async fn hold(mut sub: Subscriber, stop: CancellationToken) -> Option<Subscriber> {
    loop {
        tokio::select! {
            biased;
            _ = stop.cancelled() => return Some(sub),
            r = sub.next_body() => match r {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return None,
            },
        }
    }
}

/// Close every subscriber, a few at a time; how many the broker still had open.
pub async fn close_all(subs: Vec<Subscriber>) -> usize {
    futures_util::stream::iter(subs)
        .map(|s| s.close())
        .buffer_unordered(64)
        .fold(0, |open, alive| async move { open + alive as usize })
        .await
}
