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
use warren_perf::{execute, PerfArgs, Report};

struct Broker {
    child: Child,
    dir: PathBuf,
    uri: String,
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

fn start_broker() -> Option<Broker> {
    let bin = broker_binary();
    if !bin.exists() {
        eprintln!(
            "skipping: broker binary {} not found (cargo build -p warren, or set WARREN_BIN)",
            bin.display()
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let dir = std::env::temp_dir().join(format!("warren-perf-test-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let child = Command::new(&bin)
        .args(["server", "--bind", "127.0.0.1", "--amqp-port"])
        .arg(port.to_string())
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "--log",
            "warn",
            "--stomp-port",
            "0",
            "--web-stomp-port",
            "0",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start broker");
    let broker = Broker {
        child,
        dir,
        uri: format!("amqp://guest:guest@127.0.0.1:{port}/%2F"),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "broker did not start listening");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(broker)
}

fn args(uri: &str, extra: &[&str]) -> PerfArgs {
    let mut v = vec!["perf", "--uri", uri, "--quiet"];
    v.extend_from_slice(extra);
    PerfArgs::try_parse_from(v).expect("valid arguments")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_second_runs_lose_nothing() {
    let Some(broker) = start_broker() else {
        return;
    };
    // Manual acks, confirms, two producers on two queues.
    let report = execute(&args(
        &broker.uri,
        &[
            "-x",
            "2",
            "-y",
            "2",
            "--queues",
            "2",
            "-z",
            "1",
            "--confirm",
            "64",
            "--prefetch",
            "100",
            "--multi-ack-every",
            "10",
        ],
    ))
    .await
    .expect("perf run");
    let Report::Throughput(r) = report else {
        panic!("wrong report kind")
    };
    let i = &r.integrity;
    assert!(i.checked);
    assert!(r.published > 0, "nothing published");
    assert_eq!(
        (i.lost, i.duplicated, i.reordered, i.unexpected),
        (0, 0, 0, 0),
        "{i:?}"
    );
    assert_eq!(i.messages, r.published, "every published message checked");
    assert_eq!(r.confirmed, r.published, "every publish confirmed");

    // Auto-ack through a fanout exchange: each queue gets every message.
    let report = execute(&args(
        &broker.uri,
        &[
            "-x", "1", "-y", "3", "--queues", "3", "-t", "fanout", "-a", "-z", "1", "-s", "1000",
        ],
    ))
    .await
    .expect("fanout-exchange run");
    let Report::Throughput(r) = report else {
        panic!("wrong report kind")
    };
    assert!(r.integrity.ok(), "{:?}", r.integrity);
    assert_eq!(r.integrity.messages, 3 * r.published);

    // The fanout scenario, small.
    let report = execute(&args(
        &broker.uri,
        &["fanout", "--queues", "20", "--repeats", "3"],
    ))
    .await
    .expect("fanout scenario");
    let Report::Fanout(f) = report else {
        panic!("wrong report kind")
    };
    assert!(f.integrity.ok(), "{:?}", f.integrity);
    assert_eq!(f.samples_us.len(), 3);
    assert_eq!(f.integrity.messages, 20 * 6);
}
