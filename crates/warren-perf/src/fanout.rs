//! Fanout latency: N queues, each with one consumer, bound to one fanout
//! exchange. One message is published per round; the round's time is from the
//! publish until the last of the N consumers has it (the largest of the N
//! end-to-end latencies). Rounds run one after the other with a short pause, so
//! each starts from an idle broker; the first few are warm-up and not counted
//! ([`crate::rounds`]).
//!
//! Consumers use auto-ack and one channel each, spread over a few connections
//! (`--consumer-connections`): that is how applications with many queues look,
//! and a client reading 1000 sockets on a 2-core machine would measure its own
//! scheduling rather than the broker.

use crate::client::{self, Connection, Error, Result};
use crate::load::{Assembler, PublishTemplate};
use crate::report::{Integrity, Spread};
use crate::rounds::{close_exchange, open_exchange, Arrivals, Rounds, WARMUP_ROUNDS};
use crate::seq::{Seen, SeqTracker};
use crate::uri::AmqpUri;
use crate::{fmt, Names, PerfArgs};
use futures_util::StreamExt;
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use warren_amqp::codec::{Frame, Method};

/// A round that takes longer than this is a failure, not a slow sample.
const ROUND_TIMEOUT: Duration = Duration::from_secs(10);
/// Quiet time between rounds.
const ROUND_PAUSE: Duration = Duration::from_millis(20);

#[derive(Debug, Clone, Serialize)]
pub struct FanoutReport {
    pub uri: String,
    pub queues: usize,
    pub consumer_connections: usize,
    pub repeats: usize,
    pub warmup_rounds: usize,
    /// Time to declare, bind and consume from all queues.
    pub setup_s: f64,
    /// Per measured round: publish until the last queue's consumer had it.
    #[serde(flatten)]
    pub all: Spread,
    pub integrity: Integrity,
}

impl FanoutReport {
    pub fn human(&self) -> String {
        format!(
            "fanout: 1 message to {} queues (one consumer each, over {} connections), {} rounds after {} warm-up, against {}\n  \
             setup      {:.2} s\n  \
             all got it {}\n  \
             integrity  {}\n",
            fmt::int(self.queues as u64),
            self.consumer_connections,
            self.repeats,
            self.warmup_rounds,
            self.uri,
            self.setup_s,
            self.all.human(),
            self.integrity.human()
        )
    }
}

/// Largest latency seen this round (ns).
type RoundMax = AtomicU64;

/// What a consumer connection found, per queue it consumed from.
struct ConnOutcome {
    trackers: Vec<SeqTracker>,
    reordered: u64,
    unexpected: u64,
}

pub async fn run(args: &PerfArgs, uri: &AmqpUri, names: &Names) -> Result<FanoutReport> {
    let n = args.queues.unwrap_or(1000);
    if n == 0 {
        return Err(Error::Other("--queues must be at least 1".into()));
    }
    let nconn = args.consumer_connections.clamp(1, n);
    let exchange = format!("{}-fanout", names.prefix);
    let mut producer = open_exchange(uri, &exchange).await?;
    let result = rounds(args, uri, names, &mut producer, &exchange, n, nconn).await;
    close_exchange(producer, &exchange).await;
    result
}

#[allow(clippy::too_many_arguments)]
async fn rounds(
    args: &PerfArgs,
    uri: &AmqpUri,
    names: &Names,
    producer: &mut Connection,
    exchange: &str,
    n: usize,
    nconn: usize,
) -> Result<FanoutReport> {
    let setup_start = Instant::now();
    // Queue i goes to connection i mod nconn, on channel (i / nconn) + 1.
    let conns = futures_util::future::try_join_all((0..nconn).map(|c| {
        let queues: Vec<String> = (c..n)
            .step_by(nconn)
            .map(|i| format!("{}-f{i}", names.prefix))
            .collect();
        setup_consumers(uri, exchange, queues)
    }))
    .await?;
    let setup_s = setup_start.elapsed().as_secs_f64();

    let arrivals = Arrivals::new(RoundMax::new(0));
    let stop = CancellationToken::new();
    // Whatever way this function ends, the consumer tasks stop.
    let _stop_on_exit = stop.clone().drop_guard();
    let tasks: Vec<_> = conns
        .into_iter()
        .map(|(conn, nq)| tokio::spawn(consume(conn, nq, arrivals.clone(), stop.clone())))
        .collect();

    let template = PublishTemplate::new(1, exchange, "", false, 16, producer.frame_max);
    let mut samples_ns = Vec::with_capacity(args.repeats);
    let plan = Rounds {
        n,
        noun: "queues",
        repeats: args.repeats,
        timeout: ROUND_TIMEOUT,
        pause: ROUND_PAUSE,
    };
    let publish = |producer: &mut Connection, stamp| {
        arrivals.latency.store(0, Ordering::SeqCst);
        template.append(&mut producer.out, stamp);
    };
    let measured = |round| {
        samples_ns.push(arrivals.latency.load(Ordering::SeqCst));
        if !args.quiet {
            eprintln!(
                "round {round:>3}: all {n} queues had it after {}",
                fmt::ns(*samples_ns.last().unwrap_or(&0))
            );
        }
    };
    let sent = plan.run(&arrivals, producer, publish, measured).await?;
    stop.cancel();
    let mut integrity = Integrity {
        checked: true,
        ..Default::default()
    };
    for t in tasks {
        match t.await {
            Ok(Ok(o)) => {
                integrity.reordered += o.reordered;
                integrity.unexpected += o.unexpected;
                for tr in &o.trackers {
                    integrity.add_tracker(tr, sent.rounds);
                }
            }
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(Error::Other(format!("consumer task failed: {e}"))),
        }
    }
    if let Some(e) = sent.failure {
        return Err(e);
    }
    Ok(FanoutReport {
        uri: uri.to_string(),
        queues: n,
        consumer_connections: nconn,
        repeats: args.repeats,
        warmup_rounds: WARMUP_ROUNDS,
        setup_s,
        all: Spread::of_ns(&samples_ns),
        integrity,
    })
}

/// Open a connection with one channel per queue: declare it (exclusive, so the
/// broker removes it when we disconnect), bind it, consume. All of it is
/// pipelined: one write, then the replies.
async fn setup_consumers(
    uri: &AmqpUri,
    exchange: &str,
    queues: Vec<String>,
) -> Result<(Connection, usize)> {
    let mut conn = Connection::open(uri).await?;
    if queues.len() > conn.channel_max as usize {
        return Err(Error::Other(format!(
            "{} queues on one connection exceed the broker's channel_max {}: raise --consumer-connections",
            queues.len(),
            conn.channel_max
        )));
    }
    for (k, q) in queues.iter().enumerate() {
        let ch = k as u16 + 1;
        conn.send(ch, &Method::ChannelOpen(Default::default()));
        conn.send(ch, &client::queue_declare(q, false, true, true));
        conn.send(ch, &client::queue_bind(q, exchange, ""));
        conn.send(ch, &client::basic_consume(q, &format!("fan-{k}"), true));
    }
    conn.flush().await?;
    let mut ok = 0;
    while ok < queues.len() {
        if let Frame::Method(_, Method::BasicConsumeOk(_)) = conn.recv().await? {
            ok += 1;
        }
    }
    Ok((conn, queues.len()))
}

async fn consume(
    mut conn: Connection,
    nq: usize,
    arrivals: Arc<Arrivals<RoundMax>>,
    stop: CancellationToken,
) -> Result<ConnOutcome> {
    let mut assemblers: Vec<Assembler> = (0..nq).map(|_| Assembler::default()).collect();
    let mut out = ConnOutcome {
        trackers: vec![SeqTracker::new(); nq],
        reordered: 0,
        unexpected: 0,
    };
    loop {
        let frame = tokio::select! {
            biased;
            f = conn.reader.next() => f.ok_or_else(|| Error::Other("broker closed the socket".into()))??,
            _ = stop.cancelled() => break,
        };
        let Some(frame) = conn.filter(frame).await? else {
            continue;
        };
        let ch = match &frame {
            Frame::Method(ch, _)
            | Frame::Header(ch, _)
            | Frame::Body(ch, _)
            | Frame::Heartbeat(ch) => *ch,
        };
        let idx = (ch as usize).wrapping_sub(1);
        let Some(asm) = assemblers.get_mut(idx) else {
            return Err(Error::Other(format!("frame on unknown channel {ch}")));
        };
        let Some(d) = asm.feed(frame)? else {
            continue;
        };
        let now = arrivals.now_ns();
        match d.stamp {
            Some(s) if s.producer == 0 => {
                arrivals
                    .latency
                    .fetch_max(now.saturating_sub(s.sent_ns), Ordering::SeqCst);
                match out.trackers[idx].record(s.seq) {
                    Seen::Late => out.reordered += 1,
                    Seen::InOrder | Seen::Ahead | Seen::Duplicate => {}
                }
            }
            _ => out.unexpected += 1,
        }
        arrivals.arrive();
    }
    let _ = conn.close().await;
    Ok(out)
}
