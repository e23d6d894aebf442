//! Test harness for Warren's black-box integration tests.
//!
//! The tests in `tests/*.rs` drive a real broker over TCP, either with the
//! `lapin` client or with the small raw-socket client in [`raw`].
//!
//! Which broker:
//! * `WARREN_TEST_URL` set (e.g. `amqp://guest:guest@127.0.0.1:5672/%2F`):
//!   every test talks to that already-running broker (this is how the suite
//!   is validated against RabbitMQ).
//! * otherwise each test starts its own broker process:
//!   `$WARREN_BIN` or `<workspace>/target/debug/warren`, run as
//!   `warren server --bind 127.0.0.1 --amqp-port 0 --data-dir <tempdir>`: the
//!   kernel picks a free port, which is read from the broker's log (choosing a
//!   free port here and passing it on would race with every other process on
//!   the machine, and the test could end up talking to someone else's broker).
//!   The process is killed when the [`Broker`] is dropped; its stderr goes to
//!   a file in the temp dir and is printed if the test panicked.
//!
//! Every test body is wrapped in [`timeout`], so a hung broker fails a test
//! instead of hanging the run.

use std::{
    fmt::Debug,
    fs::File,
    future::Future,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    str::FromStr,
    time::{Duration, Instant},
};

pub use lapin;
use lapin::{
    options::{ExchangeDeclareOptions, QueueDeclareOptions},
    types::FieldTable,
    uri::AMQPUri,
    Channel, Connection, ConnectionProperties, ErrorKind,
};

pub mod raw;

/// Default per-test time limit.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);

/// AMQP reply codes used by the tests.
pub mod codes {
    pub const REPLY_SUCCESS: u16 = 200;
    pub const CONTENT_TOO_LARGE: u16 = 311;
    pub const NO_ROUTE: u16 = 312;
    pub const NO_CONSUMERS: u16 = 313;
    pub const CONNECTION_FORCED: u16 = 320;
    pub const INVALID_PATH: u16 = 402;
    pub const ACCESS_REFUSED: u16 = 403;
    pub const NOT_FOUND: u16 = 404;
    pub const RESOURCE_LOCKED: u16 = 405;
    pub const PRECONDITION_FAILED: u16 = 406;
    pub const FRAME_ERROR: u16 = 501;
    pub const SYNTAX_ERROR: u16 = 502;
    pub const COMMAND_INVALID: u16 = 503;
    pub const CHANNEL_ERROR: u16 = 504;
    pub const UNEXPECTED_FRAME: u16 = 505;
    pub const RESOURCE_ERROR: u16 = 506;
    pub const NOT_ALLOWED: u16 = 530;
    pub const NOT_IMPLEMENTED: u16 = 540;
    pub const INTERNAL_ERROR: u16 = 541;
}

/// A broker under test: either an external one (`WARREN_TEST_URL`) or a
/// child process owned by this value.
pub struct Broker {
    uri: AMQPUri,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
    bin: Option<PathBuf>,
    starts: u32,
    /// Extra environment variables for the broker process (test knobs).
    env: Vec<(String, String)>,
}

impl Broker {
    /// The broker for an ordinary test: the external one if
    /// `WARREN_TEST_URL` is set, else a freshly spawned private one.
    pub fn start() -> Broker {
        match std::env::var("WARREN_TEST_URL") {
            Ok(url) if !url.is_empty() => Broker::external(&url),
            _ => Broker::spawn_own(),
        }
    }

    /// True when the suite runs against an external broker.
    pub fn external_url() -> Option<String> {
        std::env::var("WARREN_TEST_URL")
            .ok()
            .filter(|u| !u.is_empty())
    }

    fn external(url: &str) -> Broker {
        let uri =
            AMQPUri::from_str(url).unwrap_or_else(|e| panic!("bad WARREN_TEST_URL {url}: {e}"));
        Broker {
            uri,
            child: None,
            dir: None,
            bin: None,
            starts: 0,
            env: Vec::new(),
        }
    }

    /// Always spawn a private broker process (for tests that kill/restart
    /// it).
    pub fn spawn_own() -> Broker {
        Broker::spawn_with_config("")
    }

    /// Spawn a private broker with `config` as its TOML config file (empty:
    /// none).
    pub fn spawn_with_config(config: &str) -> Broker {
        Broker::spawn_with_env(config, &[])
    }

    /// Spawn a private broker with `config` (empty: none) and extra environment
    /// variables (the hidden `WARREN_TEST_*` knobs).
    pub fn spawn_with_env(config: &str, env: &[(&str, &str)]) -> Broker {
        let bin = broker_binary();
        assert!(
            bin.exists(),
            "broker binary {} does not exist (build it with `cargo build -p warren`, or set WARREN_BIN, or WARREN_TEST_URL)",
            bin.display()
        );
        let dir = tempfile::Builder::new()
            .prefix("warren-test-")
            .tempdir()
            .expect("tempdir");
        if !config.is_empty() {
            std::fs::write(dir.path().join("warren.toml"), config).expect("write config");
        }
        // Port 0 until the broker has bound one (see `wait_ready`).
        let uri = AMQPUri::from_str("amqp://guest:guest@127.0.0.1:0/%2F").unwrap();
        let mut broker = Broker {
            uri,
            child: None,
            dir: Some(dir),
            bin: Some(bin),
            starts: 0,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        broker.launch();
        broker
    }

    /// Spawn a private broker with the management HTTP API on a free port
    /// (returned). Port 0 switches the API off, so the port is picked here;
    /// if another process takes it before the broker binds it, the broker
    /// exits ("cannot listen") and another port is tried.
    pub fn spawn_with_http_api() -> (Broker, u16) {
        for attempt in 1..=5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("pick a free port")
                .port();
            let p = port.to_string();
            let started = std::panic::catch_unwind(|| {
                Broker::spawn_with_env("", &[("WARREN_HTTP_PORT", p.as_str())])
            });
            match started {
                Ok(b) => {
                    let deadline = Instant::now() + Duration::from_secs(30);
                    while TcpStream::connect(("127.0.0.1", port)).is_err() {
                        assert!(
                            Instant::now() < deadline,
                            "HTTP API not listening\n{}",
                            b.logs()
                        );
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    return (b, port);
                }
                Err(e) if attempt == 5 => std::panic::resume_unwind(e),
                Err(_) => eprintln!("HTTP port {port} was taken: starting the broker again"),
            }
        }
        unreachable!()
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.as_ref().expect("own broker").path().join("data")
    }

    fn log_path(&self, n: u32) -> PathBuf {
        self.dir
            .as_ref()
            .expect("own broker")
            .path()
            .join(format!("broker-{n}.stderr"))
    }

    /// Start a broker process on `self.port()` (0 = any free port) and wait
    /// until it accepts connections. A restart asks for the port of the
    /// previous run; if something else took it meanwhile, it gets a new one.
    fn launch(&mut self) {
        if !self.spawn_and_wait() {
            self.uri.authority.port = 0;
            assert!(self.spawn_and_wait(), "broker could not listen on any port");
        }
    }

    /// Returns false if the broker exited because its port was taken.
    fn spawn_and_wait(&mut self) -> bool {
        self.starts += 1;
        let log = File::create(self.log_path(self.starts)).expect("create broker log");
        let data_dir = self.data_dir();
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        let bin = self.bin.clone().expect("own broker");
        let mut cmd = Command::new(&bin);
        cmd.arg("server");
        // Tests run many brokers at once: no STOMP listener on the fixed
        // default port unless a test asks for one (WARREN_STOMP_PORT in its env);
        // likewise Web-STOMP/SSE, the management HTTP API and Prometheus.
        cmd.env("WARREN_STOMP_PORT", "0");
        cmd.env("WARREN_WEB_STOMP_PORT", "0");
        // MQTT's default port (1883) may be another broker's.
        cmd.env("WARREN_MQTT_PORT", "0");
        // Web-MQTT's (15675) likewise.
        cmd.env("WARREN_WEB_MQTT_PORT", "0");
        cmd.env("WARREN_HTTP_PORT", "0");
        cmd.env("WARREN_PROMETHEUS_PORT", "0");
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let config = self
            .dir
            .as_ref()
            .expect("own broker")
            .path()
            .join("warren.toml");
        if config.exists() {
            cmd.arg("--config").arg(&config);
        }
        let child = cmd
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--amqp-port")
            .arg(self.port().to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            // `wait_ready` reads the bound port from the info-level log.
            .arg("--log")
            .arg("info")
            .env("NO_COLOR", "1")
            .env_remove("WARREN_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
        self.child = Some(child);
        self.wait_ready()
    }

    /// Wait until this run of the broker logged the port it listens on (so
    /// it is our process that listens there) and accepts TCP connections.
    /// Returns false if it exited because the port it was asked for is taken.
    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut port = None;
        loop {
            let log = std::fs::read_to_string(self.log_path(self.starts)).unwrap_or_default();
            if port.is_none() {
                port = listening_port(&log);
                if let Some(p) = port {
                    self.uri.authority.port = p;
                }
            }
            if port.is_some() && TcpStream::connect(self.addr()).is_ok() {
                return true;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    if self.port() != 0 && log.contains("cannot listen") {
                        return false;
                    }
                    panic!(
                        "broker exited during startup with {status}\n{}",
                        self.logs()
                    );
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "broker did not accept connections within 60s\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Everything the spawned broker(s) wrote to stderr so far.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if self.dir.is_some() {
            for n in 1..=self.starts {
                let text = std::fs::read_to_string(self.log_path(n)).unwrap_or_default();
                out.push_str(&format!("----- broker stderr (start #{n}) -----\n{text}"));
            }
        }
        out
    }

    /// The process id of a private broker (for diagnostics such as a stack dump).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// Whether this broker is a private child process (kill/restart work).
    pub fn is_own(&self) -> bool {
        self.bin.is_some()
    }

    /// Kill the broker process (SIGKILL) and wait for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Start the broker again on the same port and data dir.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    /// `amqp://user:pass@host:port/vhost` for this broker.
    pub fn url(&self) -> String {
        self.url_with("")
    }

    /// The URL with a query string appended, e.g. `heartbeat=1`.
    pub fn url_with(&self, query: &str) -> String {
        let a = &self.uri.authority;
        let vhost = percent_encode(&self.uri.vhost);
        let mut url = format!(
            "amqp://{}:{}@{}:{}/{}",
            a.userinfo.username, a.userinfo.password, a.host, a.port, vhost
        );
        if !query.is_empty() {
            url.push('?');
            url.push_str(query);
        }
        url
    }

    /// The URL with other credentials.
    pub fn url_with_credentials(&self, user: &str, password: &str) -> String {
        let a = &self.uri.authority;
        format!(
            "amqp://{}:{}@{}:{}/{}",
            user,
            password,
            a.host,
            a.port,
            percent_encode(&self.uri.vhost)
        )
    }

    /// The URL with another vhost.
    pub fn url_with_vhost(&self, vhost: &str) -> String {
        let a = &self.uri.authority;
        format!(
            "amqp://{}:{}@{}:{}/{}",
            a.userinfo.username,
            a.userinfo.password,
            a.host,
            a.port,
            percent_encode(vhost)
        )
    }

    pub fn host(&self) -> &str {
        &self.uri.authority.host
    }

    pub fn port(&self) -> u16 {
        self.uri.authority.port
    }

    /// `host:port`, for raw sockets.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host(), self.port())
    }

    pub fn username(&self) -> &str {
        &self.uri.authority.userinfo.username
    }

    pub fn password(&self) -> &str {
        &self.uri.authority.userinfo.password
    }

    pub fn vhost(&self) -> &str {
        &self.uri.vhost
    }

    /// Open a lapin connection.
    pub async fn connect(&self) -> Connection {
        self.connect_url(&self.url()).await
    }

    /// Open a lapin connection to a URL (expects success).
    pub async fn connect_url(&self, url: &str) -> Connection {
        Connection::connect(url, ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| panic!("connect to {url}: {e}\n{}", self.logs()))
    }

    /// Open a connection and one channel on it.
    pub async fn channel(&self) -> (Connection, Channel) {
        let conn = self.connect().await;
        let ch = conn.create_channel().await.expect("create channel");
        (conn, ch)
    }

    /// Open a connection and one channel in confirm mode (so [`publish`]
    /// waits until messages are enqueued).
    pub async fn confirm_channel(&self) -> (Connection, Channel) {
        let (conn, ch) = self.channel().await;
        ch.confirm_select(Default::default())
            .await
            .expect("confirm.select");
        (conn, ch)
    }

    /// Assert that the broker still serves a fresh connection end to end:
    /// connect, declare a queue, publish, get, delete.
    pub async fn assert_alive(&self) {
        let (conn, ch) = self.channel().await;
        let q = unique("alive");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare on fresh connection");
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"ping",
            Default::default(),
        )
        .await
        .expect("publish");
        let got = ch
            .basic_get(
                q.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("get")
            .expect("message");
        assert_eq!(got.delivery.data, b"ping");
        conn.close(200, "bye".into()).await.expect("close");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if std::thread::panicking() && self.is_own() {
            eprintln!("{}", self.logs());
        }
        self.kill();
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The broker binary the tests run (`$WARREN_BIN` or `target/debug/warren`).
pub fn broker_binary() -> PathBuf {
    if let Ok(bin) = std::env::var("WARREN_BIN") {
        if !bin.is_empty() {
            return PathBuf::from(bin);
        }
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    // crates/warren-tests -> workspace root
    let root = manifest
        .parent()
        .and_then(Path::parent)
        .expect("workspace root");
    root.join("target").join("debug").join("warren")
}

/// The port in the broker's "AMQP 0-9-1 listener started addr=HOST:PORT" log
/// line, not the STOMP listener's (a test may ask for one too). Colour codes,
/// should there be any despite NO_COLOR, are skipped.
fn listening_port(log: &str) -> Option<u16> {
    let mut plain = String::with_capacity(log.len());
    let mut in_escape = false;
    for c in log.chars() {
        match (in_escape, c) {
            (false, '\x1b') => in_escape = true,
            (false, c) => plain.push(c),
            (true, 'm') => in_escape = false,
            (true, _) => {}
        }
    }
    plain
        .lines()
        .filter(|l| l.contains("AMQP 0-9-1 listener started"))
        .find_map(|l| {
            let addr = l.split("addr=").nth(1)?.split_whitespace().next()?;
            addr.rsplit(':').next()?.parse().ok()
        })
}

/// A name nobody else uses: `<prefix>-<uuid>`.
pub fn unique(prefix: &str) -> String {
    format!("warren-test-{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Run `fut` with the default test time limit; panics on timeout.
pub async fn timeout<F: Future>(fut: F) -> F::Output {
    timeout_secs(TEST_TIMEOUT.as_secs(), fut).await
}

/// Run `fut` with a time limit of `secs`; panics on timeout.
pub async fn timeout_secs<F: Future>(secs: u64, fut: F) -> F::Output {
    match tokio::time::timeout(Duration::from_secs(secs), fut).await {
        Ok(v) => v,
        Err(_) => panic!("test timed out after {secs}s (broker hung?)"),
    }
}

/// The AMQP reply code carried by a lapin error, if any.
pub fn amqp_code(err: &lapin::Error) -> Option<u16> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_id()),
        _ => None,
    }
}

/// The AMQP reply text carried by a lapin error, if any.
pub fn amqp_text(err: &lapin::Error) -> Option<String> {
    match err.kind() {
        ErrorKind::ProtocolError(e) => Some(e.get_message().to_string()),
        _ => None,
    }
}

/// Assert a lapin result failed with the AMQP reply `code`; returns the
/// reply text.
#[track_caller]
pub fn expect_code<T: Debug>(res: lapin::Result<T>, code: u16) -> String {
    match res {
        Ok(v) => panic!("expected AMQP error {code}, got Ok({v:?})"),
        Err(e) => {
            assert_eq!(
                amqp_code(&e),
                Some(code),
                "expected AMQP error {code}, got {e:?}"
            );
            amqp_text(&e).unwrap_or_default()
        }
    }
}

/// Watches a connection for errors the server reports asynchronously
/// (channel.close after a bad ack/publish). Create it *before* the operation
/// that provokes the error: lapin only reports errors to listeners that
/// already exist.
pub struct ErrorWatch {
    events: std::pin::Pin<Box<dyn futures_lite::Stream<Item = lapin::Event> + Send>>,
}

impl ErrorWatch {
    pub fn new(conn: &Connection) -> ErrorWatch {
        ErrorWatch {
            events: Box::pin(conn.events_listener()),
        }
    }

    /// Wait (15 s max) for the next AMQP error the server reported on this
    /// connection; returns (code, text).
    pub async fn next_error(&mut self) -> (u16, String) {
        use futures_lite::StreamExt;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        loop {
            match tokio::time::timeout_at(deadline, self.events.next()).await {
                Ok(Some(lapin::Event::Error(e))) => {
                    if let Some(code) = amqp_code(&e) {
                        return (code, amqp_text(&e).unwrap_or_default());
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => panic!("connection event stream ended without an AMQP error"),
                Err(_) => panic!("the server reported no error within 15s"),
            }
        }
    }
}

/// Assert that `ch` has been (or is about to be) closed by the server with
/// `code`; `watch` must have been created before the offending operation.
/// Returns the reply text.
pub async fn expect_channel_closed(watch: &mut ErrorWatch, ch: &Channel, code: u16) -> String {
    let (got, text) = watch.next_error().await;
    assert_eq!(
        got, code,
        "expected channel.close {code}, got {got} ({text})"
    );
    assert!(
        !ch.status().connected(),
        "channel should not be usable after a channel error"
    );
    let res = ch.basic_qos(0, Default::default()).await;
    assert!(res.is_err(), "operations on a closed channel must fail");
    text
}

/// Assert that `conn` is (or within 15 s becomes) closed and unusable.
pub async fn assert_connection_closed(conn: &Connection) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while conn.status().connected() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        !conn.status().connected(),
        "connection should be closed after a connection error"
    );
    let again = conn.create_channel().await;
    assert!(
        again.is_err(),
        "creating a channel on a closed connection must fail"
    );
}

/// Assert the connection is fine: a new channel can be opened and used.
pub async fn expect_connection_usable(conn: &Connection) {
    let ch = conn
        .create_channel()
        .await
        .expect("connection still usable: open channel");
    ch.basic_qos(0, Default::default())
        .await
        .expect("connection still usable: qos");
    ch.close(200, "ok".into()).await.expect("close channel");
}

/// Passive-declare a queue; `Some((messages, consumers))` if it exists.
/// Uses a throwaway channel so a 404 doesn't kill the caller's channel.
pub async fn queue_counts(conn: &Connection, queue: &str) -> Option<(u32, u32)> {
    let ch = conn.create_channel().await.expect("open channel");
    let res = ch
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    match res {
        Ok(q) => {
            let _ = ch.close(200, "ok".into()).await;
            Some((q.message_count(), q.consumer_count()))
        }
        Err(e) => {
            assert_eq!(
                amqp_code(&e),
                Some(codes::NOT_FOUND),
                "passive queue.declare: {e:?}"
            );
            None
        }
    }
}

/// Whether an exchange exists (passive declare on a throwaway channel).
pub async fn exchange_exists(conn: &Connection, exchange: &str) -> bool {
    let ch = conn.create_channel().await.expect("open channel");
    let res = ch
        .exchange_declare(
            exchange.into(),
            lapin::ExchangeKind::Direct,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    match res {
        Ok(()) => {
            let _ = ch.close(200, "ok".into()).await;
            true
        }
        Err(e) => {
            assert_eq!(
                amqp_code(&e),
                Some(codes::NOT_FOUND),
                "passive exchange.declare: {e:?}"
            );
            false
        }
    }
}

/// Poll `cond` every 20 ms until true or `secs` pass; returns the last value.
pub async fn eventually<F, Fut>(secs: u64, mut cond: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if cond().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Declare a server-named, exclusive queue; returns its name.
pub async fn exclusive_queue(ch: &Channel) -> String {
    let q = ch
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare exclusive queue");
    q.name().to_string()
}

/// Declare a (non-durable) exchange of `kind`.
pub async fn declare_exchange(ch: &Channel, name: &str, kind: lapin::ExchangeKind) {
    ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("declare exchange {name}: {e}"));
}

/// Bind `queue` to `exchange` with `key`.
pub async fn bind_queue(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange}/{key}: {e}"));
}

/// Publish `body` with default properties. On a channel in confirm mode
/// this waits for the broker's ack (so the message is enqueued before the
/// test looks at queues from anywhere).
pub async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    let confirm = ch
        .basic_publish(
            exchange.into(),
            key.into(),
            Default::default(),
            body,
            Default::default(),
        )
        .await
        .expect("publish");
    if ch.status().confirm() {
        let c = confirm.await.expect("publisher confirm");
        assert!(c.is_ack(), "publish was nacked: {c:?}");
    }
}

/// basic.get with no-ack; returns the body if a message was there.
pub async fn get_body(ch: &Channel, queue: &str) -> Option<Vec<u8>> {
    ch.basic_get(
        queue.into(),
        lapin::options::BasicGetOptions { no_ack: true },
    )
    .await
    .expect("basic.get")
    .map(|m| m.delivery.data)
}

/// Drain a queue with no-ack gets; returns the bodies in order.
pub async fn drain(ch: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(b) = get_body(ch, queue).await {
        out.push(b);
    }
    out
}

/// Delete an exchange (cleanup; errors ignored).
pub async fn delete_exchange(conn: &Connection, name: &str) {
    if let Ok(ch) = conn.create_channel().await {
        let _ = ch.exchange_delete(name.into(), Default::default()).await;
        let _ = ch.close(200, "ok".into()).await;
    }
}

/// Delete a queue (cleanup; errors ignored).
pub async fn delete_queue(conn: &Connection, name: &str) {
    if let Ok(ch) = conn.create_channel().await {
        let _ = ch.queue_delete(name.into(), Default::default()).await;
        let _ = ch.close(200, "ok".into()).await;
    }
}

/// basic.get (no-ack) polled every 20 ms until a message arrives (15 s max).
/// For messages that come back asynchronously (requeue on close/recover).
pub async fn get_eventually(ch: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(m) = ch
            .basic_get(
                queue.into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .expect("basic.get")
        {
            return m;
        }
        assert!(
            Instant::now() < deadline,
            "no message in {queue} within 15s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
