//! `warren perf`: a load generator for any AMQP 0-9-1 broker, in the spirit of
//! RabbitMQ's PerfTest, plus the footprint scenarios Warren's targets are
//! stated in.
//!
//! Scenarios:
//! * `throughput` (default): producers publish to queues through an exchange,
//!   consumers consume; progress every second, then a summary with rates,
//!   end-to-end latency percentiles and an integrity check.
//! * `fanout`: N queues with a consumer each on one fanout exchange; how long
//!   until every queue's consumer has one message (median and max over repeats).
//! * `connections`: N idle connections; the broker's RSS per connection.
//! * `queues`: declare N queues; declare rate and the broker's RSS per queue.
//! * `backlog`: publish N messages with no consumer, then drain them; rates both
//!   ways and the broker's peak RSS.
//! * `web-idle`: N idle web subscribers (STOMP over WebSocket, or Server-Sent
//!   Events), one connection and one queue each; the broker's RSS per
//!   subscriber ([`web_idle`]).
//! * `stream`: publish N messages with confirms to a stream queue, then
//!   replay it from `first` with N consumers at once; rates and the broker's
//!   RSS growth during the replay ([`stream`]).
//! * `sse-fanout`: one message (published over AMQP) fanned out to N SSE (or
//!   WebSocket) subscribers; how long until all of them have it
//!   ([`web_fanout`]).
//!
//! Every message carries a stamp (send time, producer, sequence number; see
//! [`seq`]), so latency is measured end to end and every message is accounted
//! for: lost, duplicated and reordered messages are counted and reported, and
//! make the command exit with status 1.
//!
//! The client is our own ([`client`]) on Warren's codec: general-purpose
//! clients cost more per message than a fast broker, and a load generator must
//! not be the bottleneck it measures.
//!
//! `--protocol stomp` (or a `stomp://` URI) runs the throughput scenario over
//! STOMP 1.2 instead ([`stomp`]): producers SEND to `/queue/NAME`, consumers
//! SUBSCRIBE with `prefetch-count` and ACK, with the same stamps, report and
//! integrity check.
//!
//! `--protocol mqtt` (or an `mqtt://` URI) runs it over MQTT 3.1.1 ([`mqtt`]):
//! producers PUBLISH to a topic per queue at `--qos` 0 or 1, consumers
//! SUBSCRIBE to it at the same QoS; `mqtt-connections` opens N MQTT
//! connections: connect rate to CONNACK and the broker's RSS per connection
//! ([`mqtt_conns`]).
//!
//! `churn`: connect, AMQP login and close in a loop from --concurrency
//! workers; cycles per second, and whether the broker's RSS and descriptor
//! count come back afterwards ([`churn`]).

pub mod backlog;
pub mod churn;
pub mod client;
mod consume;
pub mod fanout;
pub mod fmt;
pub mod footprint;
pub mod histogram;
pub mod load;
pub mod mqtt;
pub mod mqtt_conns;
mod net;
mod pace;
pub mod poll;
mod produce;
pub mod report;
mod rounds;
pub mod rss;
pub mod seq;
mod sse_reader;
pub mod stomp;
pub mod stream;
pub mod throughput;
pub mod tls;
pub mod uri;
pub mod web;
pub mod web_fanout;
pub mod web_idle;
mod wire;

use clap::{Parser, ValueEnum};
use serde::Serialize;
use std::process::ExitCode;
use std::time::Duration;

pub use report::Report;
pub use uri::Protocol;
pub use web::WebTransport;

/// What to measure.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Producers -> exchange -> queues -> consumers; rates and latency.
    Throughput,
    /// One message to N queues through a fanout exchange; time until all have it.
    Fanout,
    /// N idle connections; broker RSS per connection (needs --broker-pid).
    Connections,
    /// Declare N queues; declare rate and broker RSS per queue.
    Queues,
    /// Publish N messages with no consumer, then drain; rates and peak RSS.
    Backlog,
    /// N idle web subscribers (Web-STOMP or SSE); broker RSS per subscriber.
    #[serde(rename = "web-idle")]
    WebIdle,
    /// One message to N SSE (or Web-STOMP) subscribers; time until all have it.
    #[serde(rename = "sse-fanout")]
    SseFanout,
    /// Publish N messages with confirms to a stream queue, then replay it from
    /// `first` with -y consumers at once; rates and broker RSS growth.
    Stream,
    /// N MQTT connections: connect rate to CONNACK, broker RSS per connection.
    #[serde(rename = "mqtt-connections")]
    MqttConnections,
    /// Connect, log in, close, over and over (--concurrency workers, --rate
    /// cycles/s in all); cycles/s, and the broker's RSS and descriptors
    /// before and after (needs --broker-pid).
    Churn,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ExchangeType {
    Direct,
    Fanout,
    Topic,
}

/// How STOMP consumers acknowledge (the SUBSCRIBE `ack` header).
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum StompAck {
    /// The broker considers a message acknowledged once sent.
    Auto,
    /// Cumulative: an ACK acknowledges its message and every earlier one.
    Client,
    /// Every message is acknowledged on its own.
    ClientIndividual,
}

impl StompAck {
    pub fn as_str(self) -> &'static str {
        match self {
            StompAck::Auto => "auto",
            StompAck::Client => "client",
            StompAck::ClientIndividual => "client-individual",
        }
    }
}

impl ExchangeType {
    pub fn as_str(self) -> &'static str {
        match self {
            ExchangeType::Direct => "direct",
            ExchangeType::Fanout => "fanout",
            ExchangeType::Topic => "topic",
        }
    }
}

/// `warren perf`: load generator for any AMQP 0-9-1 (or STOMP) broker.
///
/// Exit status: 0 when every message was accounted for, 1 if messages were
/// lost, duplicated or reordered, 2 on errors (connection refused, channel
/// closed by the broker, ...).
#[derive(Parser, Debug, Clone)]
#[command(
    about = "Load generator for any AMQP 0-9-1 broker: throughput, latency, fanout, footprint; throughput over STOMP too",
    after_help = "Examples:\n  \
        warren perf --uri amqp://guest:guest@localhost:5672/%2F -x 1 -y 1 -s 16 --auto-ack -z 10\n  \
        warren perf -x 4 -y 4 --queues 4 --confirm 100 --prefetch 200 --multi-ack-every 50\n  \
        warren perf --rate 10000 --auto-ack            # latency at a fixed load\n  \
        warren perf fanout --queues 1000 --repeats 20\n  \
        warren perf connections --connections 1000 --broker-pid 1234\n  \
        warren perf queues --queues 10000 --broker-pid 1234\n  \
        warren perf -x 1 -y 0 --queues 10000 --poll-api http://guest:guest@127.0.0.1:15672\n  \
        warren perf backlog --messages 1000000 --broker-pid 1234\n  \
        warren perf stream --messages 1000000 -s 1024 --confirm 1000 -y 10 --broker-pid 1234\n  \
        warren perf web-idle --web-url ws://127.0.0.1:15674/ws --subscribers 10000 --broker-pid 1234\n  \
        warren perf web-idle --transport sse --subscribers 10000 --broker-pid 1234\n  \
        warren perf sse-fanout --web-url http://127.0.0.1:15674 --subscribers 10000 --repeats 20\n  \
        warren perf --protocol stomp -q 1000 -A 100 -z 10   # STOMP, stomp://guest:guest@127.0.0.1:61613/\n  \
        warren perf --uri stomp://guest:guest@127.0.0.1:61614/ --stomp-ack client-individual -q 100\n  \
        warren perf --protocol mqtt --qos 1 -c 100 -z 10   # MQTT 3.1.1, mqtt://guest:guest@127.0.0.1:1883/\n  \
        warren perf --protocol mqtt -x 10000 -r 1 -z 30     # fan-in: 10,000 publishers at 1 msg/s\n  \
        warren perf mqtt-connections --protocol mqtt --connections 19000 --broker-pid 1234\n  \
        warren perf churn --concurrency 64 --rate 10000 -z 60 --broker-pid 1234"
)]
pub struct PerfArgs {
    /// Scenario to run.
    #[arg(value_enum, default_value_t = Scenario::Throughput)]
    pub scenario: Scenario,

    /// Broker to connect to (amqp://user:pass@host:port/vhost; vhost "/" is %2F;
    /// or stomp://user:pass@host:port/vhost). Default:
    /// amqp://guest:guest@127.0.0.1:5672/%2F, or
    /// stomp://guest:guest@127.0.0.1:61613/ with --protocol stomp.
    #[arg(long, env = "WARREN_PERF_URI")]
    pub uri: Option<String>,

    /// Throughput (AMQP): consumers connect here instead of --uri (another
    /// node of a cluster: cross-node delivery).
    #[arg(long)]
    pub consumer_uri: Option<String>,

    /// Throughput (AMQP): declare (and delete) the queues and exchange
    /// through this node instead of --uri (on a cluster, a classic queue
    /// lives on the node it was declared on).
    #[arg(long)]
    pub declare_uri: Option<String>,

    /// Wire protocol (default: the URI's scheme, else amqp). STOMP supports the
    /// throughput scenario: producers SEND to /queue/NAME, consumers SUBSCRIBE
    /// with prefetch-count = --prefetch; --confirm N asks a receipt for every
    /// SEND with at most N outstanding.
    #[arg(long, value_enum)]
    pub protocol: Option<Protocol>,

    /// STOMP ack mode of consumers (default: client, or auto with --auto-ack).
    /// client acks cumulatively every --multi-ack-every messages;
    /// client-individual acks every message.
    #[arg(long, value_enum)]
    pub stomp_ack: Option<StompAck>,

    /// Producers, one connection each.
    #[arg(short = 'x', long, default_value_t = 1)]
    pub producers: u16,

    /// Consumers, one connection each (throughput: consumer i reads queue i mod
    /// --queues; backlog: all read the one queue).
    #[arg(short = 'y', long, default_value_t = 1)]
    pub consumers: usize,

    /// Queues. Defaults: 1 (throughput, backlog), 1000 (fanout), 10000 (queues).
    #[arg(long)]
    pub queues: Option<usize>,

    /// Exchange type (throughput).
    #[arg(short = 't', long, value_enum, default_value_t = ExchangeType::Direct)]
    pub exchange_type: ExchangeType,

    /// Exchange name (throughput). Default: one created for the run and deleted
    /// after; "" publishes through the default exchange.
    #[arg(short = 'e', long)]
    pub exchange: Option<String>,

    /// Routing key (throughput). Given: every queue is bound with it and every
    /// producer publishes with it, so each queue gets every message. Not given:
    /// producer i publishes to queue i mod --queues.
    #[arg(short = 'k', long)]
    pub routing_key: Option<String>,

    /// Message body size in bytes (at least 16: the stamp).
    #[arg(short = 's', long, default_value_t = 16)]
    pub size: usize,

    /// Persistent messages (delivery_mode 2) on durable queues.
    #[arg(short = 'f', long)]
    pub persistent: bool,

    /// Throughput: declare the queues with this `x-queue-type` (e.g.
    /// `quorum`, on a cluster node; implies durable queues).
    #[arg(long)]
    pub queue_type: Option<String>,

    /// Publisher confirms with at most N unconfirmed messages per producer
    /// (0 = no confirms).
    #[arg(short = 'c', long, default_value_t = 0)]
    pub confirm: u32,

    /// Consumers use no-ack mode (the broker considers a message acknowledged
    /// once sent).
    #[arg(short = 'a', long)]
    pub auto_ack: bool,

    /// basic.qos prefetch count for manual-ack consumers (0 = unlimited).
    #[arg(short = 'q', long, default_value_t = 0)]
    pub prefetch: u16,

    /// Manual ack: acknowledge with multiple=true every N messages (capped at
    /// the prefetch count).
    #[arg(short = 'A', long, default_value_t = 1)]
    pub multi_ack_every: u32,

    /// Publish rate per producer in messages/s (default: as fast as possible).
    /// Use it to measure latency at a given load. Churn: cycles per second,
    /// all workers together.
    #[arg(short = 'r', long)]
    pub rate: Option<f64>,

    /// How long producers publish, in seconds (throughput), or the churn lasts.
    #[arg(
        short = 'z',
        long = "time-limit",
        visible_alias = "duration",
        default_value_t = 10.0
    )]
    pub time_limit: f64,

    /// Stop each producer after N messages (throughput).
    #[arg(short = 'C', long)]
    pub pmessages: Option<u64>,

    /// After producers stop, how long (seconds) to wait without progress for
    /// the messages still in flight before declaring them lost.
    #[arg(long, default_value_t = 5.0)]
    pub drain_timeout: f64,

    /// MQTT: QoS of every PUBLISH and SUBSCRIBE (0 or 1). With 1 a producer
    /// keeps at most --confirm (default 100) PUBLISHes unacknowledged, and
    /// consumers PUBACK every message.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=1))]
    pub qos: u8,

    /// MQTT: connections being opened at once (mqtt-connections, and the
    /// clients of an MQTT throughput run). Churn: workers, each one
    /// connection at a time.
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,

    /// MQTT and churn: spread clients over this many source addresses 127.0.0.1,
    /// 127.0.0.2, ... (a source address has ~28,000 ephemeral ports; loopback
    /// brokers only).
    #[arg(long, default_value_t = 8)]
    pub source_addresses: u8,

    /// Fanout: measured rounds (after 3 warm-up rounds).
    #[arg(long, default_value_t = 20)]
    pub repeats: usize,

    /// Fanout: spread the N consumers (one channel each) over this many connections.
    #[arg(long, default_value_t = 4)]
    pub consumer_connections: usize,

    /// Connections scenario: how many idle connections to open (each with one
    /// open channel, as a typical client keeps).
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,

    /// Web scenarios (web-idle, sse-fanout): the web listener,
    /// ws://HOST:PORT/ws or http://HOST:PORT (either form serves both
    /// transports: WebSocket at the path, default /ws; SSE at /sse). Default
    /// ws://127.0.0.1:15674/ws. User, password and vhost come from --uri.
    #[arg(long)]
    pub web_url: Option<String>,

    /// TLS (amqps://, stomps://, mqtts:// URIs): CA certificates (PEM) the
    /// broker's certificate must chain to.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,

    /// TLS: accept any broker certificate (loopback benchmarks only).
    #[arg(long)]
    pub tls_insecure: bool,

    /// TLS: a client certificate (PEM), for brokers that require one.
    #[arg(long, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// TLS: the client certificate's key (PEM).
    #[arg(long, requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Web scenarios: subscribers, one connection each.
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,

    /// Web scenarios: ws (STOMP over WebSocket, subprotocol v12.stomp, as
    /// RabbitMQ's Web-STOMP) or sse (Server-Sent Events, Warren only).
    /// Default: ws for web-idle, sse for sse-fanout.
    #[arg(long, value_enum)]
    pub transport: Option<WebTransport>,

    /// sse-fanout with SSE: read the feeds with a tokio task each, as
    /// Web-STOMP's are, instead of one epoll thread (to compare the two load
    /// generators; no broker-side timing then).
    #[arg(long)]
    pub sse_tasks: bool,

    /// Backlog: messages to publish before draining.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,

    /// Backlog: the broker's data directory (broker on this machine only), to
    /// report its size before, with the backlog (bytes per message) and after
    /// draining.
    #[arg(long)]
    pub data_dir: Option<std::path::PathBuf>,

    /// The broker's process id, to read its RSS from /proc (broker on this
    /// machine only). Without it the footprint numbers are left out.
    #[arg(long)]
    pub broker_pid: Option<u32>,

    /// Throughput: poll these management HTTP APIs
    /// (http://user:pass@host:port, comma-separated) during the run, as
    /// RabbitMQ's UI does: GET /api/overview and
    /// /api/queues?page=1&page_size=100 every --poll-interval; response times
    /// and failures go into the report.
    #[arg(long, value_delimiter = ',')]
    pub poll_api: Vec<String>,

    /// Throughput: how often --poll-api polls (1s, 500ms, 2.5).
    #[arg(long, default_value = "1s", value_parser = poll::parse_interval)]
    pub poll_interval: Duration,

    /// Print the final report as JSON on stdout (progress lines still go to
    /// stderr unless --quiet).
    #[arg(long)]
    pub json: bool,

    /// No progress lines.
    #[arg(long)]
    pub quiet: bool,
}

impl PerfArgs {
    pub fn time_limit(&self) -> Duration {
        Duration::from_secs_f64(self.time_limit.max(0.0))
    }

    pub fn drain_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.drain_timeout.max(0.0))
    }

    /// The broker URI, its protocol reconciled with --protocol.
    pub fn broker_uri(&self) -> Result<uri::AmqpUri, String> {
        let default = match self.protocol {
            Some(Protocol::Stomp) => "stomp://guest:guest@127.0.0.1:61613/",
            Some(Protocol::Mqtt) => "mqtt://guest:guest@127.0.0.1:1883/",
            _ => "amqp://guest:guest@127.0.0.1:5672/%2F",
        };
        let uri: uri::AmqpUri = self.uri.as_deref().unwrap_or(default).parse()?;
        match self.protocol {
            Some(p) if p != uri.protocol => Err(format!(
                "--protocol {} needs a {}:// URI, got {uri}",
                p.scheme(),
                p.scheme()
            )),
            _ => Ok(uri),
        }
    }

    /// The web listener of the web scenarios (--web-url or its default).
    pub fn web_url(&self) -> Result<web::WebUrl, client::Error> {
        web::WebUrl::parse(self.web_url.as_deref().unwrap_or(web::WebUrl::DEFAULT))
            .map_err(client::Error::Other)
    }

    /// The STOMP ack mode: --stomp-ack, else auto with --auto-ack, else client.
    pub fn stomp_ack(&self) -> Result<StompAck, String> {
        match (self.stomp_ack, self.auto_ack) {
            (None, true) | (Some(StompAck::Auto), _) => Ok(StompAck::Auto),
            (None, false) => Ok(StompAck::Client),
            (Some(_), true) => Err("--auto-ack contradicts --stomp-ack client[-individual]".into()),
            (Some(m), false) => Ok(m),
        }
    }
}

/// Names of what a run creates on the broker: unique per run, so that runs
/// never see each other's (or a crashed run's) messages.
#[derive(Debug, Clone)]
pub struct Names {
    pub prefix: String,
}

impl Names {
    pub fn new() -> Names {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let id = (nanos ^ ((std::process::id() as u64) << 40)) & 0xff_ffff_ffff;
        Names {
            prefix: format!("warren-perf-{id:010x}"),
        }
    }
}

impl Default for Names {
    fn default() -> Self {
        Names::new()
    }
}

/// Run the scenario the arguments ask for.
pub async fn execute(args: &PerfArgs) -> Result<Report, client::Error> {
    let uri = args.broker_uri().map_err(client::Error::Other)?;
    tls::configure(tls::TlsOptions {
        ca: args.tls_ca.clone(),
        insecure: args.tls_insecure,
        cert: args.tls_cert.clone(),
        key: args.tls_key.clone(),
    });
    let names = Names::new();
    Ok(match (args.scenario, uri.protocol) {
        // Only the credentials and vhost of the URI are used.
        (Scenario::WebIdle, _) => Report::WebIdle(web_idle::run(args, &uri, &names).await?),
        (Scenario::SseFanout, Protocol::Amqp) => {
            Report::SseFanout(web_fanout::run(args, &uri, &names).await?)
        }
        (Scenario::SseFanout, Protocol::Stomp) => {
            return Err(client::Error::Other(
                "sse-fanout publishes over AMQP: --uri must be an amqp:// URI".into(),
            ))
        }
        (Scenario::Throughput, Protocol::Mqtt) => {
            Report::Throughput(mqtt::throughput(args, &uri, &names).await?)
        }
        (Scenario::MqttConnections, Protocol::Mqtt) => {
            Report::MqttConnections(mqtt_conns::run(args, &uri).await?)
        }
        (Scenario::MqttConnections, _) | (_, Protocol::Mqtt) => return Err(client::Error::Other(
            "over MQTT (an mqtt:// URI) there are the throughput and mqtt-connections scenarios"
                .into(),
        )),
        (Scenario::Throughput, Protocol::Stomp) => {
            Report::Throughput(stomp::throughput(args, &uri, &names).await?)
        }
        (other, Protocol::Stomp) => {
            return Err(client::Error::Other(format!(
            "the {other:?} scenario speaks AMQP only; over STOMP there is the throughput scenario"
        )))
        }
        (Scenario::Throughput, Protocol::Amqp) => {
            Report::Throughput(throughput::run(args, &uri, &names).await?)
        }
        (Scenario::Fanout, Protocol::Amqp) => {
            Report::Fanout(fanout::run(args, &uri, &names).await?)
        }
        (Scenario::Connections, Protocol::Amqp) => {
            Report::Connections(footprint::connections(args, &uri).await?)
        }
        (Scenario::Queues, Protocol::Amqp) => {
            Report::Queues(footprint::queues(args, &uri, &names).await?)
        }
        (Scenario::Backlog, Protocol::Amqp) => {
            Report::Backlog(backlog::run(args, &uri, &names).await?)
        }
        (Scenario::Stream, Protocol::Amqp) => {
            Report::Stream(stream::run(args, &uri, &names).await?)
        }
        (Scenario::Churn, Protocol::Amqp) => Report::Churn(churn::run(args, &uri).await?),
    })
}

/// Entry point of `warren perf`: runs the scenario on its own runtime, prints
/// the report and turns the integrity verdict into the exit status.
pub fn run(args: PerfArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warren perf: cannot start runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(execute(&args));
    // Don't wait for stray tasks (a hung close) once the report is in.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(report) => {
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("warren perf: cannot encode report: {e}");
                        return ExitCode::from(2);
                    }
                }
            } else {
                print!("{}", report.human());
            }
            if report.integrity_ok() {
                ExitCode::SUCCESS
            } else {
                match report {
                    Report::WebIdle(_) => eprintln!(
                        "warren perf: the broker closed subscribers during the run (see report)"
                    ),
                    Report::Churn(_) => eprintln!(
                        "warren perf: cycles failed, or the broker kept memory or descriptors (see report)"
                    ),
                    _ => eprintln!(
                        "warren perf: messages were lost, duplicated or reordered (see report)"
                    ),
                }
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("warren perf: {e}");
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        PerfArgs::command().debug_assert();
    }

    #[test]
    fn parses_perftest_style_flags() {
        let a = PerfArgs::try_parse_from([
            "perf",
            "-x",
            "4",
            "-y",
            "4",
            "--queues",
            "4",
            "-s",
            "16",
            "-a",
            "--duration",
            "3",
        ])
        .unwrap();
        assert_eq!(a.scenario, Scenario::Throughput);
        assert_eq!((a.producers, a.consumers, a.queues), (4, 4, Some(4)));
        assert!(a.auto_ack);
        assert_eq!(a.time_limit, 3.0);
        let a = PerfArgs::try_parse_from(["perf", "fanout", "--repeats", "5"]).unwrap();
        assert_eq!((a.scenario, a.repeats), (Scenario::Fanout, 5));
    }

    #[test]
    fn protocol_from_flag_or_scheme() {
        let parse = |v: &[&str]| {
            let mut all = vec!["perf"];
            all.extend_from_slice(v);
            PerfArgs::try_parse_from(all).unwrap()
        };
        let a = parse(&["--protocol", "stomp"]);
        let u = a.broker_uri().unwrap();
        assert_eq!((u.protocol, u.port), (Protocol::Stomp, 61613));
        assert_eq!(a.stomp_ack().unwrap(), StompAck::Client);
        let a = parse(&["--uri", "stomp://guest:guest@127.0.0.1:61614/", "-a"]);
        let u = a.broker_uri().unwrap();
        assert_eq!((u.protocol, u.port), (Protocol::Stomp, 61614));
        assert_eq!(a.stomp_ack().unwrap(), StompAck::Auto);
        let a = parse(&["--protocol", "stomp", "--uri", "amqp://localhost"]);
        assert!(a.broker_uri().is_err());
        let a = parse(&["--stomp-ack", "client-individual", "-a"]);
        assert!(a.stomp_ack().is_err());
        let a = parse(&["--stomp-ack", "client-individual"]);
        assert_eq!(a.stomp_ack().unwrap(), StompAck::ClientIndividual);
        assert_eq!(parse(&[]).broker_uri().unwrap().protocol, Protocol::Amqp);
    }
}
