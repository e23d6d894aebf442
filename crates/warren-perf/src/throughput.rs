//! The default scenario: producers publish through an exchange to queues that
//! consumers drain, for a fixed time (or message count); rates every second,
//! then end-to-end latency percentiles and the delivery check.
//!
//! Rates are measured over the publishing window only (start to time limit);
//! afterwards consumers get up to `--drain-timeout` without progress to receive
//! what is still in flight, so that nothing in flight is mistaken for lost.

use crate::client::{self, Connection, Error, Result};
use crate::load::{
    Consumer, ConsumerCfg, ConsumerOutcome, Latency, Producer, ProducerCfg, ProducerOutcome, Shared,
};
use crate::report::{Integrity, LatencySummary};
use crate::uri::{AmqpUri, Protocol};
use crate::{fmt, ExchangeType, Names, PerfArgs, StompAck};
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use serde::Serialize;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// A connected producer of either protocol, ready to run: publish from the
/// start instant until the deadline (or its message limit, or the token).
pub(crate) type ProducerTask = Box<
    dyn FnOnce(
            Arc<Shared>,
            Instant,
            Option<Instant>,
            CancellationToken,
        ) -> BoxFuture<'static, Result<ProducerOutcome>>
        + Send,
>;

/// A connected consumer of either protocol, ready to run until the token.
pub(crate) type ConsumerTask = Box<
    dyn FnOnce(Arc<Shared>, CancellationToken) -> BoxFuture<'static, Result<ConsumerOutcome>>
        + Send,
>;

/// How queues, bindings and producers' routing keys fit together.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// "" = the default exchange (no declare, no bindings).
    pub exchange: String,
    pub exchange_type: ExchangeType,
    /// Whether the run created the exchange (and so deletes it).
    pub own_exchange: bool,
    pub queues: Vec<String>,
    /// (queue index, binding key).
    pub bindings: Vec<(usize, String)>,
    /// Routing key of each producer.
    pub producer_keys: Vec<String>,
    /// For each queue, the producers whose messages it must receive.
    pub expected: Vec<Vec<u16>>,
}

/// Work out the topology. Without a routing key producer i feeds queue
/// i mod Q; with one (or a fanout exchange) every queue gets every message.
pub fn plan(args: &PerfArgs, names: &Names) -> std::result::Result<Plan, String> {
    let nq = args.queues.unwrap_or(1);
    if nq == 0 {
        return Err("--queues must be at least 1".into());
    }
    let np = args.producers;
    let queues: Vec<String> = (0..nq).map(|i| format!("{}-q{i}", names.prefix)).collect();
    let (exchange, own_exchange) = match &args.exchange {
        Some(e) => (e.clone(), false),
        None => (
            format!("{}-{}", names.prefix, args.exchange_type.as_str()),
            true,
        ),
    };
    let everyone: Vec<u16> = (0..np).collect();
    let per_queue = |q: usize| -> Vec<u16> { (0..np).filter(|&p| p as usize % nq == q).collect() };
    let mut plan = Plan {
        exchange: exchange.clone(),
        exchange_type: args.exchange_type,
        own_exchange,
        queues: queues.clone(),
        bindings: Vec::new(),
        producer_keys: Vec::new(),
        expected: Vec::new(),
    };
    if exchange.is_empty() {
        if args.routing_key.is_some() {
            return Err(
                "--routing-key needs an exchange: the default exchange routes by queue name".into(),
            );
        }
        plan.own_exchange = false;
        plan.producer_keys = (0..np).map(|p| queues[p as usize % nq].clone()).collect();
        plan.expected = (0..nq).map(per_queue).collect();
        return Ok(plan);
    }
    match (&args.routing_key, args.exchange_type) {
        (Some(k), _) => {
            plan.bindings = (0..nq).map(|q| (q, k.clone())).collect();
            plan.producer_keys = vec![k.clone(); np as usize];
            plan.expected = vec![everyone; nq];
        }
        (None, ExchangeType::Fanout) => {
            plan.bindings = (0..nq).map(|q| (q, String::new())).collect();
            plan.producer_keys = vec![String::new(); np as usize];
            plan.expected = vec![everyone; nq];
        }
        (None, ExchangeType::Direct | ExchangeType::Topic) => {
            plan.bindings = (0..nq).map(|q| (q, queues[q].clone())).collect();
            plan.producer_keys = (0..np).map(|p| queues[p as usize % nq].clone()).collect();
            plan.expected = (0..nq).map(per_queue).collect();
        }
    }
    Ok(plan)
}

/// The run's settings, echoed in the report.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    pub producers: u16,
    pub consumers: usize,
    pub queues: usize,
    pub exchange_type: ExchangeType,
    pub routing_key: Option<String>,
    pub size: usize,
    pub persistent: bool,
    pub confirm: u32,
    pub auto_ack: bool,
    pub prefetch: u16,
    pub multi_ack_every: u32,
    pub rate_per_producer: Option<f64>,
    pub time_limit_s: f64,
    pub pmessages: Option<u64>,
    /// STOMP runs only: the consumers' ack mode.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stomp_ack: Option<StompAck>,
    /// MQTT runs: the QoS of publishes and subscriptions.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mqtt_qos: Option<u8>,
}

/// One progress line.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub t_s: f64,
    pub published_per_s: f64,
    pub confirmed_per_s: f64,
    pub consumed_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputReport {
    pub protocol: Protocol,
    pub uri: String,
    pub config: Config,
    /// The publishing window the rates are computed over.
    pub duration_s: f64,
    pub published: u64,
    pub confirmed: u64,
    /// Deliveries in total, including those drained after the window.
    pub consumed: u64,
    pub publish_rate: f64,
    pub confirm_rate: f64,
    /// Deliveries per second during the window.
    pub consume_rate: f64,
    pub latency: LatencySummary,
    /// Publish-to-confirm (or receipt, PUBACK) times of acked messages, over the
    /// whole run; None without confirms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confirm_latency: Option<LatencySummary>,
    pub integrity: Integrity,
    pub timeline: Vec<Tick>,
    /// `--poll-api`: the management API's response times during the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_poll: Option<crate::poll::ApiPollReport>,
}

impl ThroughputReport {
    pub fn human(&self) -> String {
        let c = &self.config;
        let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
        let stomp = self.protocol == Protocol::Stomp;
        let route = match (self.protocol, c.mqtt_qos) {
            (Protocol::Stomp, _) => "STOMP SEND /queue".to_string(),
            (Protocol::Mqtt, q) => format!("MQTT 3.1.1 PUBLISH QoS {}", q.unwrap_or(0)),
            (Protocol::Amqp, _) => format!("{} exchange", c.exchange_type.as_str()),
        };
        let acks = match (c.stomp_ack, c.auto_ack) {
            _ if c.mqtt_qos == Some(1) => "PUBACK every message".to_string(),
            _ if c.mqtt_qos == Some(0) => "no acks".to_string(),
            (Some(StompAck::ClientIndividual), _) => {
                format!("ack client-individual (prefetch {})", c.prefetch)
            }
            (Some(StompAck::Client), _) => format!(
                "ack client every {} (prefetch {})",
                c.multi_ack_every, c.prefetch
            ),
            (_, true) => "auto-ack".to_string(),
            (_, false) => format!(
                "manual ack every {} (prefetch {})",
                c.multi_ack_every, c.prefetch
            ),
        };
        let mut s = format!(
            "throughput: {} -> {} -> {} -> {}; {} B {}, {}, {}, {}; {:.1} s against {}\n",
            plural(c.producers as usize, "producer"),
            route,
            plural(c.queues, "queue"),
            plural(c.consumers, "consumer"),
            c.size,
            if c.persistent {
                "persistent"
            } else {
                "transient"
            },
            acks,
            match (c.confirm, stomp) {
                _ if c.mqtt_qos == Some(1) => format!("PUBACKs (window {})", c.confirm),
                (0, _) => "no confirms".to_string(),
                (n, true) => format!("receipts (window {n})"),
                (n, false) => format!("confirms (window {n})"),
            },
            match c.rate_per_producer {
                Some(r) => format!("{} msg/s per producer", fmt::rate(r)),
                None => "unthrottled".to_string(),
            },
            self.duration_s,
            self.uri,
        );
        s += &format!(
            "  published  {:>13}  {:>11} msg/s\n",
            fmt::int(self.published),
            fmt::rate(self.publish_rate)
        );
        if c.confirm > 0 {
            s += &format!(
                "  confirmed  {:>13}  {:>11} msg/s\n",
                fmt::int(self.confirmed),
                fmt::rate(self.confirm_rate)
            );
        }
        s += &format!(
            "  consumed   {:>13}  {:>11} msg/s\n",
            fmt::int(self.consumed),
            fmt::rate(self.consume_rate)
        );
        s += &format!("  latency    {}\n", self.latency.human());
        if let Some(l) = &self.confirm_latency {
            s += &format!("  confirm    {}\n", l.human());
        }
        s += &format!("  integrity  {}\n", self.integrity.human());
        if let Some(p) = &self.api_poll {
            s += &p.human();
        }
        s
    }
}

/// Counter values at one instant, for rates.
#[derive(Clone, Copy)]
struct Snapshot {
    at: Instant,
    published: u64,
    confirmed: u64,
    consumed: u64,
}

impl Snapshot {
    fn take(shared: &Shared) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            published: shared.published.load(Ordering::Relaxed),
            confirmed: shared.confirmed.load(Ordering::Relaxed),
            consumed: shared.consumed.load(Ordering::Relaxed),
        }
    }
}

/// Prints progress once a second and keeps the timeline.
struct Progress {
    start: Instant,
    prev: Snapshot,
    quiet: bool,
    timeline: Vec<Tick>,
}

impl Progress {
    fn tick(&mut self, shared: &Shared, draining: bool) {
        let now = Snapshot::take(shared);
        let dt = now.at.duration_since(self.prev.at).as_secs_f64().max(1e-9);
        let (p50, p99) = {
            let mut l = shared.latency.lock();
            let Latency { interval, total } = &mut *l;
            let r = (interval.percentile(50.0), interval.percentile(99.0));
            total.merge(interval);
            interval.clear();
            r
        };
        let tick = Tick {
            t_s: now.at.duration_since(self.start).as_secs_f64(),
            published_per_s: (now.published - self.prev.published) as f64 / dt,
            confirmed_per_s: (now.confirmed - self.prev.confirmed) as f64 / dt,
            consumed_per_s: (now.consumed - self.prev.consumed) as f64 / dt,
            p50_us: p50 as f64 / 1000.0,
            p99_us: p99 as f64 / 1000.0,
        };
        if !self.quiet {
            eprintln!(
                "[{:>5.1}s] published {:>10}/s  confirmed {:>10}/s  consumed {:>10}/s  latency p50 {:>9}  p99 {:>9}{}",
                tick.t_s,
                fmt::rate(tick.published_per_s),
                fmt::rate(tick.confirmed_per_s),
                fmt::rate(tick.consumed_per_s),
                fmt::ns(p50),
                fmt::ns(p99),
                if draining { "  (draining)" } else { "" }
            );
        }
        self.timeline.push(tick);
        self.prev = now;
    }
}

pub async fn run(args: &PerfArgs, uri: &AmqpUri, names: &Names) -> Result<ThroughputReport> {
    let plan = plan(args, names)?;
    validate(args, &plan)?;
    let admin_uri = match &args.declare_uri {
        Some(u) => parse_uri(u)?,
        None => uri.clone(),
    };
    let mut admin = Connection::open(&admin_uri).await?;
    admin.open_channel(1).await?;
    let result = match setup(
        &mut admin,
        &plan,
        args.persistent,
        args.queue_type.as_deref(),
    )
    .await
    {
        Ok(()) => measure(args, uri, &plan).await,
        Err(e) => Err(e),
    };
    cleanup(&mut admin, &plan).await;
    let _ = admin.close().await;
    result
}

fn parse_uri(u: &str) -> Result<AmqpUri> {
    u.parse()
        .map_err(|e: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, e).into())
}

/// Checks of the run's shape that do not depend on the protocol.
pub(crate) fn validate(args: &PerfArgs, plan: &Plan) -> Result<()> {
    if args.producers == 0 && args.consumers == 0 {
        return Err(Error::Other(
            "nothing to do: no producers and no consumers".into(),
        ));
    }
    if args.consumers > 0 && args.consumers < plan.queues.len() {
        return Err(Error::Other(format!(
            "{} queues but {} consumers: every queue needs a consumer (consumer i reads queue i mod --queues)",
            plan.queues.len(),
            args.consumers
        )));
    }
    Ok(())
}

async fn setup(
    admin: &mut Connection,
    plan: &Plan,
    durable: bool,
    queue_type: Option<&str>,
) -> Result<()> {
    if plan.own_exchange {
        admin
            .rpc(
                1,
                client::exchange_declare(
                    &plan.exchange,
                    plan.exchange_type.as_str(),
                    durable,
                    false,
                ),
            )
            .await?;
    }
    for q in &plan.queues {
        let declare = match queue_type {
            Some(t) => client::queue_declare_typed(q, t),
            None => client::queue_declare(q, durable, false, false),
        };
        admin.rpc(1, declare).await?;
    }
    for (q, key) in &plan.bindings {
        admin
            .rpc(1, client::queue_bind(&plan.queues[*q], &plan.exchange, key))
            .await?;
    }
    Ok(())
}

/// Delete what the run declared. Uses a fresh channel: the first may have been
/// closed by the error that ended the run.
pub(crate) async fn cleanup(admin: &mut Connection, plan: &Plan) {
    if admin.open_channel(2).await.is_err() {
        return;
    }
    for q in &plan.queues {
        let _ = admin.rpc(2, client::queue_delete(q)).await;
    }
    if plan.own_exchange {
        let _ = admin.rpc(2, client::exchange_delete(&plan.exchange)).await;
    }
}

fn consumer_ended(
    r: Option<std::result::Result<Result<crate::load::ConsumerOutcome>, tokio::task::JoinError>>,
) -> Error {
    match r {
        Some(Ok(Err(e))) => e,
        Some(Err(e)) => Error::Other(format!("consumer task failed: {e}")),
        _ => Error::Other("a consumer stopped before the end of the run".into()),
    }
}

async fn measure(args: &PerfArgs, uri: &AmqpUri, plan: &Plan) -> Result<ThroughputReport> {
    let np = args.producers as usize;
    let consumer_uri = match &args.consumer_uri {
        Some(u) => parse_uri(u)?,
        None => uri.clone(),
    };
    let consumer_cfgs: Vec<ConsumerCfg> = (0..args.consumers)
        .map(|i| ConsumerCfg {
            queue: plan.queues[i % plan.queues.len()].clone(),
            queue_idx: i % plan.queues.len(),
            tag: format!("perf-c{i}"),
            auto_ack: args.auto_ack,
            prefetch: args.prefetch,
            multi_ack_every: args.multi_ack_every,
        })
        .collect();
    let consumers: Vec<ConsumerTask> = futures_util::future::try_join_all(
        consumer_cfgs
            .into_iter()
            .map(|cfg| Consumer::connect(&consumer_uri, cfg)),
    )
    .await?
    .into_iter()
    .map(|c| -> ConsumerTask { Box::new(move |shared, stop| c.run(shared, stop).boxed()) })
    .collect();
    let producer_cfgs: Vec<ProducerCfg> = (0..np)
        .map(|i| ProducerCfg {
            id: i as u16,
            exchange: plan.exchange.clone(),
            routing_key: plan.producer_keys[i].clone(),
            persistent: args.persistent,
            size: args.size,
            confirm: args.confirm,
            rate: args.rate.filter(|r| *r > 0.0),
            limit: args.pmessages.unwrap_or(u64::MAX),
        })
        .collect();
    let producers: Vec<ProducerTask> = futures_util::future::try_join_all(
        producer_cfgs
            .into_iter()
            .map(|cfg| Producer::connect(uri, cfg)),
    )
    .await?
    .into_iter()
    .map(|p| -> ProducerTask {
        Box::new(move |shared, start, deadline, stop| p.run(shared, start, deadline, stop).boxed())
    })
    .collect();
    drive(args, uri, plan, consumers, producers).await
}

/// Run connected producers and consumers through the publishing window and the
/// drain, then check and report. Protocol-independent.
pub(crate) async fn drive(
    args: &PerfArgs,
    uri: &AmqpUri,
    plan: &Plan,
    consumers: Vec<ConsumerTask>,
    producers: Vec<ProducerTask>,
) -> Result<ThroughputReport> {
    let np = producers.len();
    let targets = args
        .poll_api
        .iter()
        .filter(|u| !u.trim().is_empty())
        .map(|u| crate::poll::ApiTarget::parse(u))
        .collect::<std::result::Result<Vec<_>, String>>()
        .map_err(Error::Other)?;
    let stop_poll = CancellationToken::new();
    let poller = (!targets.is_empty()).then(|| {
        tokio::spawn(crate::poll::run(
            targets,
            args.poll_interval,
            stop_poll.clone(),
        ))
    });
    // Stops the poller however this function returns.
    let _stop_poll_guard = stop_poll.clone().drop_guard();
    let shared = Shared::new(plan.queues.len(), np);
    let stop_producers = CancellationToken::new();
    let stop_consumers = CancellationToken::new();
    let start = Instant::now();
    let deadline = start + args.time_limit();
    let mut cset = JoinSet::new();
    for c in consumers {
        cset.spawn(c(shared.clone(), stop_consumers.clone()));
    }
    let mut pset = JoinSet::new();
    for (i, p) in producers.into_iter().enumerate() {
        let (shared, stop) = (shared.clone(), stop_producers.clone());
        pset.spawn(async move { (i, p(shared, start, Some(deadline), stop).await) });
    }

    let mut progress = Progress {
        start,
        prev: Snapshot::take(&shared),
        quiet: args.quiet,
        timeline: Vec::new(),
    };
    let mut ticker = tokio::time::interval_at(
        (start + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut outcomes = vec![ProducerOutcome::default(); np];
    let mut window_end: Option<Snapshot> = None;
    let mut failure: Option<Error> = None;

    // Phase 1: publishing.
    while !pset.is_empty() {
        tokio::select! {
            r = pset.join_next() => match r {
                Some(Ok((i, Ok(o)))) => outcomes[i] = o,
                Some(Ok((_, Err(e)))) => { failure = Some(e); break; }
                Some(Err(e)) => { failure = Some(Error::Other(format!("producer task failed: {e}"))); break; }
                None => {}
            },
            r = cset.join_next(), if !cset.is_empty() => { failure = Some(consumer_ended(r)); break; }
            _ = ticker.tick() => progress.tick(&shared, false),
            _ = tokio::time::sleep_until(deadline.into()), if window_end.is_none() => {
                window_end = Some(Snapshot::take(&shared));
            }
        }
    }
    let window_end = window_end.unwrap_or_else(|| Snapshot::take(&shared));
    // Polling covers the publishing window.
    stop_poll.cancel();
    let api_poll = match poller {
        Some(h) => h.await.ok(),
        None => None,
    };
    if let Some(e) = failure {
        stop_producers.cancel();
        stop_consumers.cancel();
        pset.shutdown().await;
        cset.shutdown().await;
        return Err(e);
    }

    // Phase 2: let in-flight messages arrive.
    let sent: Vec<u64> = outcomes.iter().map(|o| o.sent).collect();
    if args.consumers > 0 {
        let expected_total: u64 = plan
            .expected
            .iter()
            .map(|ps| ps.iter().map(|&p| sent[p as usize]).sum::<u64>())
            .sum();
        let mut last = (shared.distinct.load(Ordering::Relaxed), Instant::now());
        loop {
            let d = shared.distinct.load(Ordering::Relaxed);
            if d >= expected_total {
                break;
            }
            if d != last.0 {
                last = (d, Instant::now());
            } else if last.1.elapsed() >= args.drain_timeout() {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(10)) => {}
                _ = ticker.tick() => progress.tick(&shared, true),
                r = cset.join_next(), if !cset.is_empty() => {
                    stop_consumers.cancel();
                    cset.shutdown().await;
                    return Err(consumer_ended(r));
                }
            }
        }
    }
    stop_consumers.cancel();
    while let Some(r) = cset.join_next().await {
        match r {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(Error::Other(format!("consumer task failed: {e}"))),
        }
    }

    let latency = {
        let mut l = shared.latency.lock();
        let Latency { interval, total } = &mut *l;
        total.merge(interval);
        interval.clear();
        LatencySummary::from_histogram(total)
    };
    let mut integrity = check(&shared, plan, &sent);
    integrity.checked = args.consumers > 0;
    integrity.nacked = outcomes.iter().map(|o| o.nacked).sum();
    integrity.unconfirmed = outcomes.iter().map(|o| o.unconfirmed).sum();
    if !integrity.checked {
        integrity.lost = 0;
    }
    let window = window_end.at.duration_since(start).as_secs_f64().max(1e-9);
    let stomp_ack = match uri.protocol {
        Protocol::Stomp => Some(args.stomp_ack()?),
        Protocol::Amqp | Protocol::Mqtt => None,
    };
    Ok(ThroughputReport {
        protocol: uri.protocol,
        uri: uri.to_string(),
        config: Config {
            producers: args.producers,
            consumers: args.consumers,
            queues: plan.queues.len(),
            exchange_type: args.exchange_type,
            routing_key: args.routing_key.clone(),
            size: args.size.max(crate::seq::STAMP_LEN),
            persistent: args.persistent,
            confirm: args.confirm,
            auto_ack: stomp_ack.map_or(args.auto_ack, |a| a == StompAck::Auto),
            prefetch: args.prefetch,
            multi_ack_every: args.multi_ack_every,
            rate_per_producer: args.rate,
            time_limit_s: args.time_limit,
            pmessages: args.pmessages,
            stomp_ack,
            mqtt_qos: (uri.protocol == Protocol::Mqtt).then_some(args.qos),
        },
        duration_s: window,
        published: shared.published.load(Ordering::Relaxed),
        confirmed: shared.confirmed.load(Ordering::Relaxed),
        consumed: shared.consumed.load(Ordering::Relaxed),
        publish_rate: window_end.published as f64 / window,
        confirm_rate: window_end.confirmed as f64 / window,
        consume_rate: window_end.consumed as f64 / window,
        latency,
        confirm_latency: (args.confirm > 0)
            .then(|| LatencySummary::from_histogram(&shared.confirm_latency.lock())),
        integrity,
        timeline: progress.timeline,
        api_poll,
    })
}

/// The delivery check over all queues, given what each producer sent.
pub(crate) fn check(shared: &Shared, plan: &Plan, sent: &[u64]) -> Integrity {
    let mut i = Integrity {
        checked: true,
        redelivered: shared.redelivered.load(Ordering::Relaxed),
        reordered: shared.reordered.load(Ordering::Relaxed),
        ..Default::default()
    };
    for (qi, q) in shared.queues.iter().enumerate() {
        let q = q.lock();
        i.unexpected += q.unexpected;
        for (p, t) in q.trackers.iter().enumerate() {
            i.duplicated += t.duplicates();
            i.messages += t.distinct();
            if plan.expected[qi].contains(&(p as u16)) {
                i.lost += t.missing(sent[p]);
                i.unexpected += t.beyond(sent[p]);
            } else {
                i.unexpected += t.distinct();
            }
        }
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(extra: &[&str]) -> PerfArgs {
        let mut v = vec!["perf"];
        v.extend_from_slice(extra);
        PerfArgs::try_parse_from(v).unwrap()
    }

    #[test]
    fn direct_without_key_maps_producers_to_queues() {
        let names = Names { prefix: "p".into() };
        let p = plan(&args(&["-x", "3", "--queues", "2"]), &names).unwrap();
        assert_eq!(p.producer_keys, vec!["p-q0", "p-q1", "p-q0"]);
        assert_eq!(p.expected, vec![vec![0, 2], vec![1]]);
        assert_eq!(p.bindings, vec![(0, "p-q0".into()), (1, "p-q1".into())]);
        assert!(p.own_exchange);
    }

    #[test]
    fn fanout_and_routing_key_deliver_everything_everywhere() {
        let names = Names { prefix: "p".into() };
        let p = plan(&args(&["-x", "2", "--queues", "3", "-t", "fanout"]), &names).unwrap();
        assert_eq!(p.expected, vec![vec![0, 1]; 3]);
        let p = plan(&args(&["-x", "2", "--queues", "2", "-k", "rk"]), &names).unwrap();
        assert_eq!(p.producer_keys, vec!["rk", "rk"]);
        assert_eq!(p.expected, vec![vec![0, 1]; 2]);
    }

    #[test]
    fn default_exchange_routes_by_queue_name() {
        let names = Names { prefix: "p".into() };
        let p = plan(&args(&["-e", "", "--queues", "2", "-x", "2"]), &names).unwrap();
        assert!(p.bindings.is_empty() && !p.own_exchange);
        assert_eq!(p.producer_keys, vec!["p-q0", "p-q1"]);
        assert!(plan(&args(&["-e", "", "-k", "x"]), &names).is_err());
    }
}
