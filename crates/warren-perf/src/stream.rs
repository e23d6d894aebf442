//! `stream`: a stream queue's two costs, appending and replaying.
//!
//! 1. One producer publishes `--messages` messages of `--size` bytes to a new
//!    stream queue (`x-queue-type: stream`) with at most `--confirm`
//!    unconfirmed (publisher confirms: on disk); rate until the last confirm.
//! 2. `--consumers` consumers, one connection each, replay the whole stream at
//!    once from `x-stream-offset: first` (prefetch `--prefetch`, multiple ack
//!    every `--multi-ack-every`); each one's rate, their sum, and the broker's
//!    RSS before and at its peak during the replay (`--broker-pid`).
//!
//! Every consumer must receive every message exactly once, in offset order
//! (checked on the `x-stream-offset` header of the first and last delivery
//! and the count); the stream is deleted at the end.

use crate::client::{self, Connection, Error, Result};
use crate::report::Integrity;
use crate::rss::{rss_kib, PeakSampler, NOT_MEASURED};
use crate::uri::AmqpUri;
use crate::{fmt, Names, PerfArgs};
use serde::Serialize;
use std::time::Instant;
use warren_amqp::codec::{BasicAck, BasicConsume, BasicPublish, ConfirmSelect, Frame, Method};
use warren_core::properties::BasicProperties;
use warren_core::table::{FieldTable, FieldValue};
use warren_core::ShortStr;

#[derive(Debug, Clone, Serialize)]
pub struct StreamReport {
    pub uri: String,
    pub messages: u64,
    pub size: usize,
    pub confirm: u32,
    pub publish_s: f64,
    pub publish_rate: f64,
    pub consumers: usize,
    pub prefetch: u16,
    pub replay_s: f64,
    /// Messages per second of each consumer.
    pub replay_rates: Vec<f64>,
    pub replay_total_rate: f64,
    pub rss_before_kib: Option<u64>,
    pub rss_peak_kib: Option<u64>,
    pub integrity: Integrity,
}

impl StreamReport {
    pub fn human(&self) -> String {
        let min = self
            .replay_rates
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let mut s = format!(
            "stream: {} messages of {} B, against {}\n  \
             publish (confirm window {})  {:.2} s  {:>11} msg/s\n  \
             replay from first, {} consumer(s), prefetch {}  {:.2} s  {:>11} msg/s per consumer (slowest {}), {} msg/s in all\n",
            fmt::int(self.messages),
            self.size,
            self.uri,
            self.confirm,
            self.publish_s,
            fmt::rate(self.publish_rate),
            self.consumers,
            self.prefetch,
            self.replay_s,
            fmt::rate(self.replay_total_rate / self.consumers.max(1) as f64),
            fmt::rate(if min.is_finite() { min } else { 0.0 }),
            fmt::rate(self.replay_total_rate),
        );
        match (self.rss_before_kib, self.rss_peak_kib) {
            (Some(b), Some(p)) => s.push_str(&format!(
                "  broker RSS before replay {} KiB, peak during replay {} KiB (+{} KiB)\n",
                fmt::int(b),
                fmt::int(p),
                fmt::int(p.saturating_sub(b))
            )),
            _ => s.push_str(NOT_MEASURED),
        }
        s.push_str(&format!(
            "  integrity: {} deliveries, {} lost, {} duplicated, {} reordered\n",
            fmt::int(self.integrity.messages),
            self.integrity.lost,
            self.integrity.duplicated,
            self.integrity.reordered
        ));
        s
    }
}

pub async fn run(args: &PerfArgs, uri: &AmqpUri, names: &Names) -> Result<StreamReport> {
    let queue = format!("{}-stream", names.prefix);
    let n = args.messages;
    let window = u64::from(args.confirm.max(1));
    let mut admin = Connection::open(uri).await?;
    admin.open_channel(1).await?;
    let mut declare = client::queue_declare(&queue, true, false, false);
    if let Method::QueueDeclare(d) = &mut declare {
        d.arguments
            .insert("x-queue-type", FieldValue::string("stream"));
    }
    admin.rpc(1, declare).await?;

    let started = Instant::now();
    publish(uri, &queue, n, args.size, window).await?;
    let publish_s = started.elapsed().as_secs_f64();

    let rss_before = args.broker_pid.and_then(rss_kib);
    let sampler = args.broker_pid.map(PeakSampler::start);
    let prefetch = if args.prefetch == 0 {
        2000
    } else {
        args.prefetch
    };
    let every = u64::from(args.multi_ack_every.max(1)).min(u64::from(prefetch));
    let started = Instant::now();
    let outcomes = futures_util::future::try_join_all(
        (0..args.consumers.max(1)).map(|_| replay(uri, &queue, n, prefetch, every)),
    )
    .await?;
    let replay_s = started.elapsed().as_secs_f64();
    let rss_peak = sampler.map(PeakSampler::finish);
    admin.rpc(1, client::queue_delete(&queue)).await?;
    let _ = admin.close().await;

    let mut integrity = Integrity {
        checked: true,
        ..Integrity::default()
    };
    for o in &outcomes {
        integrity.messages += o.count;
        integrity.lost += n.saturating_sub(o.count);
        integrity.duplicated += o.count.saturating_sub(n);
        integrity.reordered += u64::from(o.out_of_order);
    }
    let rates: Vec<f64> = outcomes
        .iter()
        .map(|o| o.count as f64 / o.seconds.max(1e-9))
        .collect();
    Ok(StreamReport {
        uri: uri.to_string(),
        messages: n,
        size: args.size,
        confirm: args.confirm.max(1),
        publish_s,
        publish_rate: n as f64 / publish_s.max(1e-9),
        consumers: outcomes.len(),
        prefetch,
        replay_s,
        replay_total_rate: rates.iter().sum(),
        replay_rates: rates,
        rss_before_kib: rss_before,
        rss_peak_kib: rss_peak,
        integrity,
    })
}

/// Publish `n` messages with at most `window` unconfirmed.
async fn publish(uri: &AmqpUri, queue: &str, n: u64, size: usize, window: u64) -> Result<()> {
    let mut c = Connection::open(uri).await?;
    c.open_channel(1).await?;
    c.rpc(1, Method::ConfirmSelect(ConfirmSelect { nowait: false }))
        .await?;
    let body = vec![b'x'; size];
    let properties = BasicProperties::default().encode();
    let publish = Method::BasicPublish(BasicPublish {
        routing_key: ShortStr::from(queue),
        ..Default::default()
    });
    let (mut sent, mut confirmed) = (0u64, 0u64);
    while confirmed < n {
        while sent < n && sent - confirmed < window {
            c.send_content(1, &publish, &properties, &body);
            sent += 1;
        }
        c.flush().await?;
        loop {
            match c.recv().await? {
                Frame::Method(_, Method::BasicAck(a)) => confirmed = confirmed.max(a.delivery_tag),
                Frame::Method(_, Method::BasicNack(_)) => {
                    return Err(Error::Other("the broker nacked a publish".into()))
                }
                _ => {}
            }
            // Refill once half the window is confirmed.
            if confirmed >= n || sent - confirmed <= window / 2 {
                break;
            }
        }
    }
    let _ = c.close().await;
    Ok(())
}

struct Replayed {
    count: u64,
    seconds: f64,
    out_of_order: bool,
}

/// Consume the whole stream from `first`.
async fn replay(uri: &AmqpUri, queue: &str, n: u64, prefetch: u16, every: u64) -> Result<Replayed> {
    let mut c = Connection::open(uri).await?;
    c.open_channel(1).await?;
    c.rpc(1, client::basic_qos(prefetch)).await?;
    let mut arguments = FieldTable::new();
    arguments.insert("x-stream-offset", FieldValue::string("first"));
    let started = Instant::now();
    c.rpc(
        1,
        Method::BasicConsume(BasicConsume {
            queue: ShortStr::from(queue),
            arguments,
            ..Default::default()
        }),
    )
    .await?;
    let (mut count, mut headers) = (0u64, 0u64);
    let (mut first_offset, mut last_offset) = (None, None);
    // Until the last message's header, which follows its basic.deliver.
    while headers < n {
        let frame = c.recv().await?;
        match frame {
            Frame::Method(_, Method::BasicDeliver(d)) => {
                count += 1;
                if count.is_multiple_of(every) {
                    c.send(
                        1,
                        &Method::BasicAck(BasicAck {
                            delivery_tag: d.delivery_tag,
                            multiple: true,
                        }),
                    );
                    c.flush().await?;
                }
            }
            // Only the first and last message's offsets are decoded: the
            // replay rate is what is measured, not the client's decoding.
            Frame::Header(_, h) => {
                headers += 1;
                if headers != 1 && headers != n {
                    continue;
                }
                let offset = BasicProperties::decode(&h.properties)
                    .ok()
                    .and_then(|p| p.headers)
                    .and_then(|t| t.get("x-stream-offset").and_then(|v| v.as_i64()));
                if headers == 1 {
                    first_offset = offset;
                } else {
                    last_offset = offset;
                }
            }
            _ => {}
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let out_of_order = match (first_offset, last_offset) {
        (Some(f), Some(l)) => l - f + 1 != n as i64,
        _ => n > 1,
    };
    let _ = c.close().await;
    Ok(Replayed {
        count,
        seconds,
        out_of_order,
    })
}
