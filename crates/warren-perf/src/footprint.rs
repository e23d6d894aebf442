//! Footprint scenarios: what idle connections and empty queues cost the broker.
//!
//! Both read the broker's RSS (`--broker-pid`) before and after, each time after
//! a settling pause, and divide the difference by the count. Without a pid they
//! still report the open/declare rates.

use crate::client::{self, Connection, Error, Result};
use crate::rss::{check_pid, per, rss, rss_lines};
use crate::uri::AmqpUri;
use crate::{fmt, Names, PerfArgs};
use futures_util::StreamExt;
use serde::Serialize;
use std::time::Instant;
use warren_amqp::codec::Method;

/// Connections opened concurrently (a burst of thousands of simultaneous
/// handshakes measures the accept queue, not the footprint).
const OPEN_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Serialize)]
pub struct ConnectionsReport {
    pub uri: String,
    pub connections: usize,
    pub open_s: f64,
    pub open_rate: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_with_connections_kib: Option<u64>,
    pub rss_after_close_kib: Option<u64>,
    /// (with - before) / connections.
    pub rss_per_connection_kib: Option<f64>,
}

impl ConnectionsReport {
    pub fn human(&self) -> String {
        let mut s = format!(
            "connections: {} idle connections (one open channel each) against {}\n  \
             opened in  {:.2} s ({} connections/s)\n",
            fmt::int(self.connections as u64),
            self.uri,
            self.open_s,
            fmt::rate(self.open_rate)
        );
        s += &rss_lines(
            self.rss_before_kib,
            self.rss_with_connections_kib,
            self.rss_after_close_kib,
            self.rss_per_connection_kib,
            "connection",
        );
        s
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct QueuesReport {
    pub uri: String,
    pub queues: usize,
    pub durable: bool,
    pub declare_s: f64,
    /// Sequential declares (each waits for its declare-ok), per second.
    pub declare_rate: f64,
    pub delete_rate: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_with_queues_kib: Option<u64>,
    pub rss_after_delete_kib: Option<u64>,
    pub rss_per_queue_kib: Option<f64>,
}

impl QueuesReport {
    pub fn human(&self) -> String {
        let mut s = format!(
            "queues: declare {} empty {} queues, one at a time, against {}\n  \
             declared in {:.2} s ({} queues/s); deleted at {} queues/s\n",
            fmt::int(self.queues as u64),
            if self.durable { "durable" } else { "transient" },
            self.uri,
            self.declare_s,
            fmt::rate(self.declare_rate),
            fmt::rate(self.delete_rate)
        );
        s += &rss_lines(
            self.rss_before_kib,
            self.rss_with_queues_kib,
            self.rss_after_delete_kib,
            self.rss_per_queue_kib,
            "queue",
        );
        s
    }
}

async fn open_idle(uri: &AmqpUri) -> Result<Connection> {
    let mut c = Connection::open(uri).await?;
    c.open_channel(1).await?;
    Ok(c)
}

pub async fn connections(args: &PerfArgs, uri: &AmqpUri) -> Result<ConnectionsReport> {
    let n = args.connections;
    check_pid(args.broker_pid)?;
    let rss_before = rss(args.broker_pid).await;
    let start = Instant::now();
    let results: Vec<Result<Connection>> = futures_util::stream::iter(0..n)
        .map(|_| open_idle(uri))
        .buffer_unordered(OPEN_CONCURRENCY)
        .collect()
        .await;
    let open_s = start.elapsed().as_secs_f64();
    let mut conns = Vec::with_capacity(n);
    let mut first_error = None;
    for r in results {
        match r {
            Ok(c) => conns.push(c),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    if let Some(e) = first_error {
        close_all(conns).await;
        let hint = if e.to_string().contains("Too many open files") {
            " (raise the file descriptor limit: ulimit -n)"
        } else {
            ""
        };
        return Err(Error::Other(format!("opening {n} connections: {e}{hint}")));
    }
    if !args.quiet {
        eprintln!("opened {n} connections in {open_s:.2} s; measuring");
    }
    let rss_with = rss(args.broker_pid).await;
    close_all(conns).await;
    let rss_after = rss(args.broker_pid).await;
    Ok(ConnectionsReport {
        uri: uri.to_string(),
        connections: n,
        open_s,
        open_rate: n as f64 / open_s.max(1e-9),
        rss_before_kib: rss_before,
        rss_with_connections_kib: rss_with,
        rss_after_close_kib: rss_after,
        rss_per_connection_kib: per(rss_before, rss_with, n),
    })
}

async fn close_all(conns: Vec<Connection>) {
    futures_util::stream::iter(conns)
        .map(|c| c.close())
        .buffer_unordered(64)
        .for_each(|_| async {})
        .await;
}

pub async fn queues(args: &PerfArgs, uri: &AmqpUri, names: &Names) -> Result<QueuesReport> {
    let n = args.queues.unwrap_or(10_000);
    check_pid(args.broker_pid)?;
    let mut conn = Connection::open(uri).await?;
    conn.open_channel(1).await?;
    let rss_before = rss(args.broker_pid).await;
    let start = Instant::now();
    let mut declared = Vec::with_capacity(n);
    let mut failure = None;
    for i in 0..n {
        let name = format!("{}-e{i}", names.prefix);
        // Exclusive: should this run die half way, the broker drops them with
        // the connection instead of keeping thousands of stray queues.
        match conn
            .rpc(
                1,
                client::queue_declare(&name, args.persistent, true, false),
            )
            .await
        {
            Ok(Method::QueueDeclareOk(_)) => declared.push(name),
            Ok(other) => {
                failure = Some(Error::Other(format!(
                    "expected queue.declare-ok, got {other:?}"
                )));
                break;
            }
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    let declare_s = start.elapsed().as_secs_f64();
    if let Some(e) = failure {
        let _ = conn.close().await;
        return Err(Error::Other(format!(
            "declaring queue {} of {n}: {e}",
            declared.len() + 1
        )));
    }
    if !args.quiet {
        eprintln!("declared {n} queues in {declare_s:.2} s; measuring");
    }
    let rss_with = rss(args.broker_pid).await;
    let start = Instant::now();
    for name in &declared {
        conn.rpc(1, client::queue_delete(name)).await?;
    }
    let delete_s = start.elapsed().as_secs_f64();
    let _ = conn.close().await;
    let rss_after = rss(args.broker_pid).await;
    Ok(QueuesReport {
        uri: uri.to_string(),
        queues: n,
        durable: args.persistent,
        declare_s,
        declare_rate: n as f64 / declare_s.max(1e-9),
        delete_rate: n as f64 / delete_s.max(1e-9),
        rss_before_kib: rss_before,
        rss_with_queues_kib: rss_with,
        rss_after_delete_kib: rss_after,
        rss_per_queue_kib: per(rss_before, rss_with, n),
    })
}
