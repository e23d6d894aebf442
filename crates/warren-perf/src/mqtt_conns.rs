//! `mqtt-connections`: open N MQTT 3.1.1 connections (CONNECT, clean
//! session, no keep-alive, until CONNACK), --concurrency at a time, spread
//! over --source-addresses loopback addresses; the connect rate, and with
//! --broker-pid the broker's RSS per idle connection.
//!
//! Held connections cost the load generator one socket each and no buffer
//! (the handshake is 4 bytes back): a hundred thousand of them must not
//! need gigabytes here. At the end every connection is checked still open
//! (a read that would block, not end of stream) before DISCONNECT.
//!
//! A broker that stops accepting (out of descriptors) must not hang the run:
//! each handshake has [`HANDSHAKE_TIMEOUT`], and connections that failed are
//! counted (`failed`, the run then fails) while the RSS per connection is
//! over those that opened.

use crate::client::{Error, Result};
use crate::histogram::Histogram;
use crate::mqtt::connect_packet;
use crate::net::connect_from;
use crate::net::{with_timeout, HANDSHAKE_TIMEOUT};
use crate::report::LatencySummary;
use crate::rss::{check_pid, per, rss, rss_lines};
use crate::uri::AmqpUri;
use crate::web::raise_nofile_limit;
use crate::web_idle::SPARE_FDS;
use crate::{fmt, PerfArgs};
use bytes::BytesMut;
use futures_util::StreamExt;
use serde::Serialize;
use std::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::codec::Encoder;
use warren_mqtt::MqttCodec;

#[derive(Debug, Clone, Serialize)]
pub struct MqttConnectionsReport {
    pub uri: String,
    pub connections: usize,
    pub concurrency: usize,
    pub source_addresses: u8,
    pub open_s: f64,
    /// Connections per second, TCP connect to CONNACK, --concurrency at once.
    pub connect_rate: f64,
    /// TCP connect to CONNACK of one connection.
    pub connect_latency: LatencySummary,
    pub rss_before_kib: Option<u64>,
    pub rss_with_connections_kib: Option<u64>,
    pub rss_after_close_kib: Option<u64>,
    /// (with - before) / connections.
    pub rss_per_connection_kib: Option<f64>,
    /// Connections that did not get their CONNACK (the run fails).
    pub failed: usize,
    /// The first failure, if any.
    pub first_error: Option<String>,
    /// Connections the broker still had open at the end (all, or the run fails).
    pub still_open: usize,
}

impl MqttConnectionsReport {
    pub fn human(&self) -> String {
        let l = &self.connect_latency;
        let mut s = format!(
            "mqtt-connections: {} MQTT 3.1.1 connections against {} ({} at a time, from {} source addresses)\n  \
             opened in  {:.2} s ({} connections/s to CONNACK)\n  \
             connect to CONNACK  p50 {} µs  p99 {} µs  max {} µs\n",
            fmt::int(self.connections as u64),
            self.uri,
            self.concurrency,
            self.source_addresses,
            self.open_s,
            fmt::rate(self.connect_rate),
            l.p50_us.round(),
            l.p99_us.round(),
            l.max_us.round(),
        );
        s += &rss_lines(
            self.rss_before_kib,
            self.rss_with_connections_kib,
            self.rss_after_close_kib,
            self.rss_per_connection_kib,
            "connection",
        );
        s += &format!(
            "  still open at the end: {} of {}\n",
            fmt::int(self.still_open as u64),
            fmt::int(self.connections as u64)
        );
        if let Some(e) = &self.first_error {
            s += &format!("  failed: {} (first: {e})\n", fmt::int(self.failed as u64));
        }
        s
    }

    pub fn ok(&self) -> bool {
        self.still_open == self.connections && self.failed == 0
    }
}

/// Connect, CONNECT, CONNACK; the socket, and how long it took.
async fn open(uri: &AmqpUri, connect: &[u8], slot: usize, spread: u8) -> Result<(TcpStream, u64)> {
    let t = Instant::now();
    let mut s = connect_from(uri, slot, spread).await?;
    s.write_all(connect).await?;
    let mut connack = [0u8; 4];
    s.read_exact(&mut connack).await?;
    if connack[0] != 0x20 || connack[1] != 2 || connack[3] != 0 {
        return Err(Error::Other(format!(
            "connection {slot}: no accepting CONNACK: {connack:02x?}"
        )));
    }
    Ok((s, t.elapsed().as_nanos() as u64))
}

pub async fn run(args: &PerfArgs, uri: &AmqpUri) -> Result<MqttConnectionsReport> {
    let n = args.connections;
    let conc = args.concurrency.max(1);
    raise_nofile_limit(n as u64 + SPARE_FDS)?;
    check_pid(args.broker_pid)?;
    let rss_before = rss(args.broker_pid).await;
    let prefix = crate::Names::new().prefix;
    let mut codec = MqttCodec::new(1 << 16);
    let start = Instant::now();
    let mut opening = futures_util::stream::iter(0..n)
        .map(|i| {
            let mut connect = BytesMut::new();
            let p = connect_packet(uri, &format!("{prefix}-{i}"));
            let encoded = codec.encode(&p, &mut connect).map(|_| connect);
            let what = format!("connection {i}");
            let open = async move { open(uri, &encoded?, i, args.source_addresses).await };
            with_timeout(what, HANDSHAKE_TIMEOUT, open)
        })
        .buffer_unordered(conc);
    let mut held = Vec::with_capacity(n);
    let mut latency = Histogram::new();
    let mut last_report = Instant::now();
    let (mut failed, mut first_error) = (0, None);
    while let Some(r) = opening.next().await {
        match r {
            Ok((s, ns)) => {
                latency.record(ns);
                held.push(s);
            }
            Err(e) => {
                failed += 1;
                first_error.get_or_insert_with(|| format!("after {} open: {e}", held.len()));
            }
        }
        if !args.quiet && last_report.elapsed().as_secs() >= 2 {
            last_report = Instant::now();
            eprintln!("  {} of {n} connections open", held.len());
        }
    }
    let open_s = start.elapsed().as_secs_f64();
    let opened = held.len();
    if !args.quiet {
        eprintln!("opened {n} connections in {open_s:.2} s; measuring");
    }
    let rss_with = rss(args.broker_pid).await;
    let mut still_open = 0;
    let mut buf = [0u8; 64];
    for s in &held {
        match s.try_read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => {}
            _ => still_open += 1,
        }
    }
    futures_util::stream::iter(held)
        .for_each_concurrent(256, |mut s| async move {
            let _ = s.write_all(&[0xe0, 0]).await;
        })
        .await;
    let rss_after = rss(args.broker_pid).await;
    Ok(MqttConnectionsReport {
        uri: uri.to_string(),
        connections: n,
        concurrency: conc,
        source_addresses: args.source_addresses,
        open_s,
        connect_rate: opened as f64 / open_s.max(1e-9),
        connect_latency: LatencySummary::from_histogram(&latency),
        rss_before_kib: rss_before,
        rss_with_connections_kib: rss_with,
        rss_after_close_kib: rss_after,
        rss_per_connection_kib: per(rss_before, rss_with, opened),
        failed,
        first_error,
        still_open,
    })
}
