//! End to end: start the real broker binary and run short perf scenarios
//! against it, asserting that every message is accounted for.
//!
//! The binary is `$WARREN_BIN` or `<workspace>/target/debug/warren`; when it
//! does not exist the test says so and passes (build it with
//! `cargo build -p warren`, as `scripts/test.sh` does).

use clap::Parser;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use warren_perf::report::Integrity;
use warren_perf::throughput::ThroughputReport;
use warren_perf::{execute, PerfArgs, Report};

struct Broker {
    child: Child,
    dir: PathBuf,
    uri: String,
    stomp_uri: String,
    /// ws://127.0.0.1:PORT/ws (port 0 when the web listener is off).
    web_url: String,
    /// http://guest:guest@127.0.0.1:PORT (port 0 when the management API is off).
    http_url: String,
    /// mqtt://guest:guest@127.0.0.1:PORT/ (port 0 when the MQTT listener is off).
    mqtt_uri: String,
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn broker_binary() -> PathBuf {
    match std::env::var_os("WARREN_BIN") {
        Some(p) => PathBuf::from(p),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/warren"),
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn start_broker() -> Option<Broker> {
    start_broker_with(false, false)
}

/// Start the broker on a free AMQP port and, with `stomp`, a free STOMP port
/// (`Broker::stomp_uri`), with `web` a free Web-STOMP/SSE port
/// (`Broker::web_url`); else those are off. A port found free can be taken
/// by someone else before the broker binds it: then the broker exits and we
/// try again with new ports.
fn start_broker_with(stomp: bool, web: bool) -> Option<Broker> {
    start_broker_opts(stomp, web, false, false)
}

/// As [`start_broker_with`], with `http` also the management API on a free
/// port (`Broker::http_url`), with `mqtt` MQTT (`Broker::mqtt_uri`).
fn start_broker_opts(stomp: bool, web: bool, http: bool, mqtt: bool) -> Option<Broker> {
    let bin = broker_binary();
    if !bin.exists() {
        eprintln!(
            "skipping: broker binary {} not found (cargo build -p warren, or set WARREN_BIN)",
            bin.display()
        );
        return None;
    }
    for attempt in 0..5 {
        let port = free_port();
        let stomp_port = if stomp { free_port() } else { 0 };
        let web_port = if web { free_port() } else { 0 };
        let http_port = if http { free_port() } else { 0 };
        let mqtt_port = if mqtt { free_port() } else { 0 };
        let dir = std::env::temp_dir().join(format!(
            "warren-perf-test-{}-{port}-{attempt}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let child = Command::new(&bin)
            .args(["server", "--bind", "127.0.0.1", "--amqp-port"])
            .arg(port.to_string())
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(["--log", "warn", "--prometheus-port", "0"])
            .arg("--http-port")
            .arg(http_port.to_string())
            .arg("--web-stomp-port")
            .arg(web_port.to_string())
            .arg("--stomp-port")
            .arg(stomp_port.to_string())
            .arg("--mqtt-port")
            .arg(mqtt_port.to_string())
            .args(["--web-mqtt-port", "0"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start broker");
        let mut broker = Broker {
            child,
            dir,
            uri: format!("amqp://guest:guest@127.0.0.1:{port}/%2F"),
            stomp_uri: format!("stomp://guest:guest@127.0.0.1:{stomp_port}/"),
            web_url: format!("ws://127.0.0.1:{web_port}/ws"),
            http_url: format!("http://guest:guest@127.0.0.1:{http_port}"),
            mqtt_uri: format!("mqtt://guest:guest@127.0.0.1:{mqtt_port}/"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        let ready = |p: u16| p == 0 || TcpStream::connect(("127.0.0.1", p)).is_ok();
        loop {
            let all = [port, stomp_port, web_port, http_port, mqtt_port];
            if all.into_iter().all(ready) {
                return Some(broker);
            }
            if let Ok(Some(status)) = broker.child.try_wait() {
                eprintln!("broker exited ({status}), probably a port race; retrying");
                break;
            }
            assert!(Instant::now() < deadline, "broker did not start listening");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("broker did not start in 5 attempts");
}

/// `warren perf --uri URI --quiet EXTRA...`; the report, or a panic.
async fn perf(uri: &str, extra: &[&str]) -> Report {
    let mut v = vec!["perf", "--uri", uri, "--quiet"];
    v.extend_from_slice(extra);
    let args = PerfArgs::try_parse_from(v).expect("valid arguments");
    execute(&args)
        .await
        .unwrap_or_else(|e| panic!("warren perf {extra:?}: {e}"))
}

/// The report of the expected scenario, e.g. `expect!(report, Fanout)`.
macro_rules! expect {
    ($report:expr, $scenario:ident) => {
        match $report {
            Report::$scenario(r) => r,
            other => panic!("expected a {} report, got {other:?}", stringify!($scenario)),
        }
    };
}

/// Nothing lost, duplicated, reordered or unexpected.
fn assert_clean(i: &Integrity, what: &str) {
    assert_eq!(
        (i.lost, i.duplicated, i.reordered, i.unexpected),
        (0, 0, 0, 0),
        "{what}: {i:?}"
    );
}

/// Messages were published, and every one was checked and confirmed.
fn assert_all_confirmed_and_checked(r: &ThroughputReport) {
    let i = &r.integrity;
    assert!(i.checked);
    assert!(r.published > 0, "nothing published");
    assert_clean(i, "throughput");
    assert_eq!(i.messages, r.published, "every published message checked");
    assert_eq!(r.confirmed, r.published, "every publish confirmed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_second_runs_lose_nothing() {
    let Some(broker) = start_broker() else {
        return;
    };
    // Manual acks, confirms, two producers on two queues.
    let flags = "-x 2 -y 2 --queues 2 -z 1 --confirm 64 --prefetch 100 --multi-ack-every 10";
    let flags: Vec<&str> = flags.split(' ').collect();
    let r = expect!(perf(&broker.uri, &flags).await, Throughput);
    assert_all_confirmed_and_checked(&r);

    // Auto-ack through a fanout exchange: each queue gets every message.
    let flags = "-x 1 -y 3 --queues 3 -t fanout -a -z 1 -s 1000";
    let flags: Vec<&str> = flags.split(' ').collect();
    let r = expect!(perf(&broker.uri, &flags).await, Throughput);
    assert!(r.integrity.ok(), "{:?}", r.integrity);
    assert_eq!(r.integrity.messages, 3 * r.published);

    // The fanout scenario, small.
    let flags = ["fanout", "--queues", "20", "--repeats", "3"];
    let f = expect!(perf(&broker.uri, &flags).await, Fanout);
    assert!(f.integrity.ok(), "{:?}", f.integrity);
    assert_eq!(f.all.samples_us.len(), 3);
    assert_eq!(f.integrity.messages, 20 * 6);
}

/// `--poll-api`: the management API is polled during a short throughput run,
/// every request answers, and the report has the response times.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_api_reports_response_times() {
    let Some(broker) = start_broker_opts(false, false, true, false) else {
        return;
    };
    let flags = [
        "-x",
        "1",
        "-y",
        "1",
        "-a",
        "-z",
        "1",
        "--poll-api",
        &broker.http_url,
        "--poll-interval",
        "200ms",
    ];
    let r = expect!(perf(&broker.uri, &flags).await, Throughput);
    assert!(r.integrity.ok(), "{:?}", r.integrity);
    let p = r.api_poll.as_ref().expect("api_poll in the report");
    assert_eq!(p.endpoints.len(), 2);
    for e in &p.endpoints {
        assert!(e.requests >= 3, "{e:?}");
        assert_eq!(e.failures, 0, "{e:?}");
        assert!(e.median_ms > 0.0 && e.max_ms >= e.median_ms, "{e:?}");
    }
    assert!(r.human().contains("api poll"));
}

/// `warren perf --protocol stomp` against Warren's STOMP adapter: about two
/// seconds of SEND / SUBSCRIBE / cumulative ACK with receipts, then a short
/// client-individual run; every message must be accounted for.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stomp_runs_lose_nothing() {
    let Some(broker) = start_broker_with(true, false) else {
        return;
    };
    let flags = "--protocol stomp -x 2 -y 2 --queues 2 -z 2 --confirm 100 --prefetch 100 --multi-ack-every 10";
    let flags: Vec<&str> = flags.split(' ').collect();
    let r = expect!(perf(&broker.stomp_uri, &flags).await, Throughput);
    assert_eq!(r.protocol, warren_perf::Protocol::Stomp);
    assert_all_confirmed_and_checked(&r);

    // Every message acked on its own, bodies larger than the stamp.
    let flags = "--stomp-ack client-individual -q 50 -z 0.5 -s 1000 --rate 5000";
    let flags: Vec<&str> = flags.split(' ').collect();
    let r = expect!(perf(&broker.stomp_uri, &flags).await, Throughput);
    assert!(r.integrity.ok(), "{:?}", r.integrity);
    assert!(r.published > 0);
    assert_eq!(r.integrity.messages, r.published);
}

/// The web scenarios, small, against Warren's web listener: idle Web-STOMP
/// and SSE subscribers (all still open at the end), then one message fanned
/// out to SSE and to Web-STOMP subscribers (every one gets every round once,
/// in order). Correctness only: no timing is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn web_scenarios_reach_every_subscriber() {
    let Some(broker) = start_broker_with(false, true) else {
        return;
    };
    let pid = broker.child.id().to_string();
    for transport in ["ws", "sse"] {
        let flags = [
            "web-idle",
            "--web-url",
            &broker.web_url,
            "--subscribers",
            "50",
            "--transport",
            transport,
            "--broker-pid",
            &pid,
        ];
        let r = expect!(perf(&broker.uri, &flags).await, WebIdle);
        assert_eq!((r.subscribers, r.still_open), (50, 50), "{transport}");
        assert!(r.rss_per_subscriber_kib.is_some(), "{transport}");
        assert!(r.open_rate > 0.0);
    }
    // The same listener given as http://: SSE goes to /sse, WebSocket to /ws.
    let http = broker
        .web_url
        .replace("ws://", "http://")
        .replace("/ws", "");
    // SSE is read by the epoll reader (which also times the broker's writes
    // by the kernel's receive stamps), or with --sse-tasks by a task per feed.
    for (transport, url, tasks) in [
        ("sse", &http, false),
        ("ws", &http, false),
        ("sse", &broker.web_url, false),
        ("sse", &http, true),
    ] {
        let mut flags = vec![
            "sse-fanout",
            "--web-url",
            url,
            "--subscribers",
            "50",
            "--repeats",
            "3",
            "--transport",
            transport,
        ];
        if tasks {
            flags.push("--sse-tasks");
        }
        let r = expect!(perf(&broker.uri, &flags).await, SseFanout);
        assert_clean(&r.integrity, transport);
        // 3 warm-up rounds + 3 measured, to each of the 50.
        assert_eq!(r.integrity.messages, 50 * 6, "{transport}");
        assert_eq!(r.all.samples_us.len(), 3);
        assert!(r.subscriber_median_us <= r.all.max_us);
        let stamped = transport == "sse" && !tasks;
        assert_eq!(
            r.written_all.is_some(),
            stamped,
            "{transport} tasks={tasks}"
        );
        if let Some(w) = &r.written_all {
            assert_eq!(w.samples_us.len(), 3);
            // Written before read (or within the clocks' mapping error).
            assert!(
                w.median_us > 0.0 && w.median_us <= r.all.median_us + 1000.0,
                "{w:?}"
            );
        }
    }
}

/// The MQTT modes against Warren's MQTT listener: a second of QoS 0 and of
/// QoS 1 (every PUBLISH PUBACKed, every message checked), a small fan-in at
/// a fixed rate, and 200 idle connections (all still open at the end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_modes_lose_nothing() {
    let Some(broker) = start_broker_opts(false, false, false, true) else {
        return;
    };
    let r = expect!(perf(&broker.mqtt_uri, &["-z", "1"]).await, Throughput);
    assert_eq!(r.protocol, warren_perf::Protocol::Mqtt);
    assert!(r.published > 0 && r.integrity.ok(), "{:?}", r.integrity);
    assert_eq!(r.integrity.messages, r.published);

    let flags: Vec<&str> = "--qos 1 -c 100 -z 1 -s 100".split(' ').collect();
    let r = expect!(perf(&broker.mqtt_uri, &flags).await, Throughput);
    assert_all_confirmed_and_checked(&r);
    assert!(r.human().contains("QoS 1"));

    let flags: Vec<&str> = "-x 50 -y 1 -r 20 -z 1".split(' ').collect();
    let r = expect!(perf(&broker.mqtt_uri, &flags).await, Throughput);
    assert!(r.integrity.ok(), "{:?}", r.integrity);
    assert!(r.published >= 50, "{}", r.published);

    let pid = broker.child.id().to_string();
    let flags = [
        "mqtt-connections",
        "--connections",
        "200",
        "--source-addresses",
        "4",
        "--broker-pid",
        &pid,
    ];
    let r = expect!(perf(&broker.mqtt_uri, &flags).await, MqttConnections);
    assert!(r.ok(), "{}", r.human());
    assert!(r.connect_rate > 0.0 && r.rss_with_connections_kib.is_some());
}
