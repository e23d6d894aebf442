//! The producer and consumer engines that the message-moving scenarios
//! (throughput, backlog) are built from.
//!
//! Each producer and each consumer has its own connection and runs as one task
//! that owns both socket halves. Producers pre-encode a publish once
//! ([`PublishTemplate`]) and per message only copy it and patch the stamp, so a
//! batch of 128 publishes costs a few hundred nanoseconds to build; they write
//! with one syscall per batch while reading confirms in the same `select!`
//! ([`crate::produce`]). Consumers handle every frame already read before
//! writing their acks, so acks go out batched too ([`crate::consume`]). The
//! client therefore spends far less per message than either broker, which is
//! the precondition for measuring the broker.

use crate::client::{self, Connection, Error, Result};
use crate::consume::{ack_every, consume, Consume, CONSUME_BATCH};
use crate::histogram::Histogram;
use crate::produce::{publish, Publish, Publishing};
use crate::seq::STAMP_LEN;
use crate::seq::{read_stamp, write_stamp, ConfirmWindow, OrderCheck, Seen, SeqTracker, Stamp};
use bytes::BytesMut;
use parking_lot::Mutex;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;
use warren_amqp::codec::{
    write_content, write_method, BasicAck, BasicPublish, ConfirmSelect, Frame, Method,
};
use warren_core::{BasicProperties, ShortStr};

/// Latency of the current reporting interval; the reporter folds it into the
/// run's total once a second.
#[derive(Default)]
pub struct Latency {
    pub interval: Histogram,
    pub total: Histogram,
}

/// Per-queue delivery checks (see [`crate::seq`]).
pub struct QueueCheck {
    /// One tracker per producer id.
    pub trackers: Vec<SeqTracker>,
    /// Messages with no readable stamp or an unknown producer id.
    pub unexpected: u64,
}

/// State all tasks of a run share. Counters are plain atomics; the two locks are
/// taken once per consumer batch, not per message.
pub struct Shared {
    /// Stamps carry nanoseconds since this instant.
    pub epoch: Instant,
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub nacked: AtomicU64,
    /// Deliveries, duplicates included.
    pub consumed: AtomicU64,
    /// Deliveries that were not duplicates.
    pub distinct: AtomicU64,
    pub redelivered: AtomicU64,
    pub reordered: AtomicU64,
    pub latency: Mutex<Latency>,
    /// Publish-to-confirm times, merged from each producer's window when it ends.
    pub confirm_latency: Mutex<Histogram>,
    pub queues: Vec<Mutex<QueueCheck>>,
}

impl Shared {
    pub fn new(queues: usize, producers: usize) -> Arc<Shared> {
        Arc::new(Shared {
            epoch: Instant::now(),
            published: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            distinct: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            reordered: AtomicU64::new(0),
            latency: Mutex::new(Latency::default()),
            confirm_latency: Mutex::new(Histogram::new()),
            queues: (0..queues)
                .map(|_| {
                    Mutex::new(QueueCheck {
                        trackers: vec![SeqTracker::new(); producers],
                        unexpected: 0,
                    })
                })
                .collect(),
        })
    }

    pub(crate) fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }
}

/// One publish (method, content header and body frames) encoded once; per
/// message only the 16-byte stamp at `stamp_at` changes.
pub struct PublishTemplate {
    bytes: Vec<u8>,
    stamp_at: usize,
}

impl PublishTemplate {
    /// `size` below [`STAMP_LEN`] is raised to it: every message must carry its
    /// stamp.
    pub fn new(
        channel: u16,
        exchange: &str,
        routing_key: &str,
        persistent: bool,
        size: usize,
        frame_max: u32,
    ) -> PublishTemplate {
        let size = size.max(STAMP_LEN);
        let mut out = BytesMut::new();
        write_method(
            &mut out,
            channel,
            &Method::BasicPublish(BasicPublish {
                exchange: ShortStr::from(exchange),
                routing_key: ShortStr::from(routing_key),
                ..Default::default()
            }),
        );
        let props = if persistent {
            BasicProperties {
                delivery_mode: Some(2),
                ..Default::default()
            }
            .encode()
            .to_vec()
        } else {
            vec![0, 0]
        };
        // Padding after the stamp: a recognisable, incompressible-ish pattern.
        let body: Vec<u8> = (0..size).map(|i| (i * 7 + 13) as u8).collect();
        let header_at = out.len();
        write_content(&mut out, channel, 60, &props, &body, frame_max);
        // Header frame: 7-byte frame header, class/weight/size (12), properties,
        // frame end; then the first body frame's 7-byte header.
        let stamp_at = header_at + 7 + 12 + props.len() + 1 + 7;
        PublishTemplate {
            bytes: out.to_vec(),
            stamp_at,
        }
    }

    #[inline]
    pub fn append(&self, out: &mut BytesMut, stamp: Stamp) {
        let at = out.len() + self.stamp_at;
        out.extend_from_slice(&self.bytes);
        write_stamp(&mut out[at..at + STAMP_LEN], stamp);
    }

    /// Bytes on the wire per message.
    pub fn wire_len(&self) -> usize {
        self.bytes.len()
    }
}

/// What a producer publishes and how.
#[derive(Debug, Clone)]
pub struct ProducerCfg {
    pub id: u16,
    pub exchange: String,
    pub routing_key: String,
    pub persistent: bool,
    pub size: usize,
    /// Outstanding-confirm window; 0 = no publisher confirms.
    pub confirm: u32,
    /// Messages per second; None = as fast as the broker takes them.
    pub rate: Option<f64>,
    /// Stop after this many messages.
    pub limit: u64,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ProducerOutcome {
    pub sent: u64,
    pub acked: u64,
    pub nacked: u64,
    /// Confirms still missing when the producer gave up waiting.
    pub unconfirmed: u64,
}

/// A connected producer, ready to run.
pub struct Producer {
    conn: Connection,
    cfg: ProducerCfg,
    template: PublishTemplate,
}

impl Producer {
    pub async fn connect(uri: &crate::uri::AmqpUri, cfg: ProducerCfg) -> Result<Producer> {
        let mut conn = Connection::open(uri).await?;
        conn.open_channel(1).await?;
        if cfg.confirm > 0 {
            match conn
                .rpc(1, Method::ConfirmSelect(ConfirmSelect { nowait: false }))
                .await?
            {
                Method::ConfirmSelectOk(_) => {}
                other => {
                    return Err(Error::Other(format!(
                        "expected confirm.select-ok, got {other:?}"
                    )))
                }
            }
        }
        let template = PublishTemplate::new(
            1,
            &cfg.exchange,
            &cfg.routing_key,
            cfg.persistent,
            cfg.size,
            conn.frame_max,
        );
        Ok(Producer {
            conn,
            cfg,
            template,
        })
    }

    /// Publish from `start` until `deadline`, `cfg.limit` messages, or `stop`,
    /// whichever comes first; then wait for outstanding confirms and close.
    pub async fn run(
        mut self,
        shared: Arc<Shared>,
        start: Instant,
        deadline: Option<Instant>,
        stop: CancellationToken,
    ) -> Result<ProducerOutcome> {
        let plan = Publishing {
            id: self.cfg.id,
            limit: self.cfg.limit,
            confirm: self.cfg.confirm as u64,
            rate: self.cfg.rate,
        };
        let outcome = publish(&mut self, plan, start, deadline, &shared, &stop).await?;
        let _ = self.conn.close().await;
        Ok(outcome)
    }
}

impl Publish for Producer {
    type Conn = Connection;

    fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    fn append(&mut self, stamp: Stamp) {
        self.template.append(&mut self.conn.out, stamp);
    }

    fn on_item(
        &mut self,
        frame: Frame,
        window: &mut ConfirmWindow,
        shared: &Shared,
    ) -> impl Future<Output = Result<()>> + Send {
        on_producer_frame(&mut self.conn, frame, window, shared)
    }
}

async fn on_producer_frame(
    conn: &mut Connection,
    frame: Frame,
    window: &mut ConfirmWindow,
    shared: &Shared,
) -> Result<()> {
    let Some(frame) = conn.filter(frame).await? else {
        return Ok(());
    };
    match frame {
        Frame::Method(_, Method::BasicAck(a)) => {
            let n = window.settle(a.delivery_tag, a.multiple, true);
            shared.confirmed.fetch_add(n, Ordering::Relaxed);
        }
        Frame::Method(_, Method::BasicNack(a)) => {
            let n = window.settle(a.delivery_tag, a.multiple, false);
            shared.nacked.fetch_add(n, Ordering::Relaxed);
        }
        // Returns (not requested: no mandatory flag) and their content: ignore.
        _ => {}
    }
    Ok(())
}

/// What a consumer consumes and how it acknowledges.
#[derive(Debug, Clone)]
pub struct ConsumerCfg {
    pub queue: String,
    /// Index into [`Shared::queues`].
    pub queue_idx: usize,
    pub tag: String,
    pub auto_ack: bool,
    /// basic.qos prefetch count (manual ack only); 0 = unlimited.
    pub prefetch: u16,
    /// Acknowledge with `multiple` every this many messages (manual ack).
    pub multi_ack_every: u32,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct ConsumerOutcome {
    pub received: u64,
}

/// Where a channel is within a delivery (method, header, body frames).
#[derive(Debug, Default)]
enum Expect {
    #[default]
    Method,
    Header {
        tag: u64,
        redelivered: bool,
    },
    Body {
        tag: u64,
        redelivered: bool,
        remaining: u64,
        stamp: [u8; STAMP_LEN],
        have: usize,
    },
}

/// A complete delivery: its tag, flag and stamp (None if the body had none).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Delivered {
    pub tag: u64,
    pub redelivered: bool,
    pub stamp: Option<Stamp>,
}

/// Reassembles one channel's deliveries from deliver, header and body frames,
/// keeping only the stamp of the body (the rest is never copied).
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    expect: Expect,
}

impl Assembler {
    /// Feed the next frame of this channel (connection-level frames already
    /// filtered out). Returns the delivery once its last frame is in.
    pub fn feed(&mut self, frame: Frame) -> Result<Option<Delivered>> {
        match (&mut self.expect, frame) {
            (Expect::Method, Frame::Method(_, Method::BasicDeliver(d))) => {
                self.expect = Expect::Header {
                    tag: d.delivery_tag,
                    redelivered: d.redelivered,
                };
                Ok(None)
            }
            (Expect::Method, Frame::Method(_, Method::BasicCancel(_))) => {
                Err(Error::Other("the broker cancelled our consumer".into()))
            }
            (Expect::Header { tag, redelivered }, Frame::Header(_, h)) => {
                let (tag, redelivered) = (*tag, *redelivered);
                if h.body_size == 0 {
                    self.expect = Expect::Method;
                    return Ok(Some(Delivered {
                        tag,
                        redelivered,
                        stamp: None,
                    }));
                }
                self.expect = Expect::Body {
                    tag,
                    redelivered,
                    remaining: h.body_size,
                    stamp: [0; STAMP_LEN],
                    have: 0,
                };
                Ok(None)
            }
            (
                Expect::Body {
                    tag,
                    redelivered,
                    remaining,
                    stamp,
                    have,
                },
                Frame::Body(_, body),
            ) => {
                if *have < STAMP_LEN {
                    let take = (STAMP_LEN - *have).min(body.len());
                    stamp[*have..*have + take].copy_from_slice(&body[..take]);
                    *have += take;
                }
                *remaining = remaining.saturating_sub(body.len() as u64);
                if *remaining > 0 {
                    return Ok(None);
                }
                let d = Delivered {
                    tag: *tag,
                    redelivered: *redelivered,
                    stamp: if *have == STAMP_LEN {
                        read_stamp(&stamp[..])
                    } else {
                        None
                    },
                };
                self.expect = Expect::Method;
                Ok(Some(d))
            }
            (_, other) => Err(Error::Other(format!(
                "unexpected frame while consuming: {other:?}"
            ))),
        }
    }
}

struct Sample {
    stamp: Option<Stamp>,
    latency_ns: u64,
}

/// A consumer's deliveries since its last [`commit`](Recorder::commit): their
/// stamps and latencies, checked and counted in one go per batch so the shared
/// locks are taken once per batch, not per message.
pub(crate) struct Recorder {
    samples: Vec<Sample>,
    redelivered: u64,
    order: OrderCheck,
}

impl Recorder {
    pub(crate) fn new() -> Recorder {
        Recorder {
            samples: Vec::with_capacity(CONSUME_BATCH),
            redelivered: 0,
            order: OrderCheck::new(),
        }
    }

    /// One delivery, timed now.
    #[inline]
    pub(crate) fn record(&mut self, stamp: Option<Stamp>, redelivered: bool, shared: &Shared) {
        let latency_ns = stamp.map_or(0, |s| shared.now_ns().saturating_sub(s.sent_ns));
        self.samples.push(Sample { stamp, latency_ns });
        if redelivered {
            self.redelivered += 1;
        }
    }

    /// Check and time the batch's messages; returns how many there were.
    pub(crate) fn commit(&mut self, shared: &Shared, queue_idx: usize) -> u64 {
        if self.samples.is_empty() {
            return 0;
        }
        let order = &mut self.order;
        let n = self.samples.len() as u64;
        let mut distinct = 0u64;
        let reordered_before = order.reordered();
        {
            let mut q = shared.queues[queue_idx].lock();
            for s in &self.samples {
                let Some(stamp) = s.stamp else {
                    q.unexpected += 1;
                    continue;
                };
                let Some(tracker) = q.trackers.get_mut(stamp.producer as usize) else {
                    q.unexpected += 1;
                    continue;
                };
                if tracker.record(stamp.seq) != Seen::Duplicate {
                    distinct += 1;
                    order.record(stamp.producer, stamp.seq);
                }
            }
        }
        {
            let mut lat = shared.latency.lock();
            for s in self.samples.iter().filter(|s| s.stamp.is_some()) {
                lat.interval.record(s.latency_ns);
            }
        }
        shared.consumed.fetch_add(n, Ordering::Relaxed);
        shared.distinct.fetch_add(distinct, Ordering::Relaxed);
        shared
            .reordered
            .fetch_add(order.reordered() - reordered_before, Ordering::Relaxed);
        if self.redelivered > 0 {
            shared
                .redelivered
                .fetch_add(std::mem::take(&mut self.redelivered), Ordering::Relaxed);
        }
        self.samples.clear();
        n
    }
}

/// A connected consumer whose basic.consume has been confirmed.
pub struct Consumer {
    conn: Connection,
    cfg: ConsumerCfg,
}

impl Consumer {
    pub async fn connect(uri: &crate::uri::AmqpUri, cfg: ConsumerCfg) -> Result<Consumer> {
        let mut conn = Connection::open(uri).await?;
        conn.open_channel(1).await?;
        if !cfg.auto_ack && cfg.prefetch > 0 {
            conn.rpc(1, client::basic_qos(cfg.prefetch)).await?;
        }
        match conn
            .rpc(1, client::basic_consume(&cfg.queue, &cfg.tag, cfg.auto_ack))
            .await?
        {
            Method::BasicConsumeOk(_) => {}
            other => {
                return Err(Error::Other(format!(
                    "expected basic.consume-ok, got {other:?}"
                )))
            }
        }
        Ok(Consumer { conn, cfg })
    }

    /// Consume until `stop`, checking and timing every message; then close.
    pub async fn run(
        self,
        shared: Arc<Shared>,
        stop: CancellationToken,
    ) -> Result<ConsumerOutcome> {
        let mut st = ConsumeState {
            conn: self.conn,
            assembler: Assembler::default(),
            unacked: 0,
            ack_every: ack_every(self.cfg.prefetch, self.cfg.multi_ack_every),
            auto_ack: self.cfg.auto_ack,
        };
        let received = consume(&mut st, self.cfg.queue_idx, &shared, &stop).await?;
        let _ = st.conn.close().await;
        Ok(ConsumerOutcome { received })
    }
}

/// A running consumer: its connection and where it is in acknowledging.
struct ConsumeState {
    conn: Connection,
    assembler: Assembler,
    unacked: u32,
    ack_every: u32,
    auto_ack: bool,
}

impl Consume for ConsumeState {
    type Conn = Connection;

    fn conn(&mut self) -> &mut Connection {
        &mut self.conn
    }

    async fn on_item(&mut self, frame: Frame, rec: &mut Recorder, shared: &Shared) -> Result<()> {
        let Some(frame) = self.conn.filter(frame).await? else {
            return Ok(());
        };
        if let Some(d) = self.assembler.feed(frame)? {
            rec.record(d.stamp, d.redelivered, shared);
            self.ack(d.tag);
        }
        Ok(())
    }
}

impl ConsumeState {
    fn ack(&mut self, tag: u64) {
        if !self.auto_ack {
            self.unacked += 1;
            if self.unacked >= self.ack_every {
                write_method(
                    &mut self.conn.out,
                    1,
                    &Method::BasicAck(BasicAck {
                        delivery_tag: tag,
                        multiple: self.ack_every > 1,
                    }),
                );
                self.unacked = 0;
            }
        }
    }
}
