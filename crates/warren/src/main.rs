//! The `warren` command: runs the broker (`warren server`).

/// jemalloc: payloads are freed on other threads than the one that allocated
/// them, and it returns freed memory to the OS, which the memory alarm relies on.
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Return freed memory to the OS within about a second (jemalloc's default is 10 s),
/// so RSS follows the broker's real use after a backlog drains.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
pub static malloc_conf: &[u8] = b"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:1000\0";

mod cluster;
mod config;
mod ctl;
mod resources;
mod tls;

use clap::{Parser, Subcommand};
use config::FileConfig;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use tracing::{error, info, warn};
use warren_core::auth::User;
use warren_core::permissions::{Permission, PermissionDef};
use warren_core::{Broker, Limits};

#[derive(Parser)]
#[command(
    name = "warren",
    version,
    about = "Warren: a fast message broker that speaks RabbitMQ's protocols (AMQP 0-9-1, STOMP, STOMP over WebSocket, Server-Sent Events, MQTT 3.1/3.1.1/5.0)."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker. With no flags it behaves like a fresh RabbitMQ: AMQP on port
    /// 5672, STOMP on 61613, Web-STOMP/SSE on 15674 and MQTT on 1883 on all interfaces, vhost "/", user guest/guest allowed from loopback only,
    /// data in ./warren-data.
    Server(ServerArgs),
    /// Load generator for any AMQP 0-9-1 broker (throughput, latency, fanout,
    /// connection/queue footprint, backlog). See `warren perf --help`.
    Perf(warren_perf::PerfArgs),
    /// Manage a running broker through its management HTTP API (or --amqp-url):
    /// vhosts, users, permissions, policies, firehose tracing, queues, exchanges,
    /// bindings, definitions.
    Ctl(ctl::CtlArgs),
}

#[derive(Parser)]
struct ServerArgs {
    /// TOML config file (listeners, limits, vhosts, users). Flags and environment
    /// variables override it.
    #[arg(long, env = "WARREN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "WARREN_BIND")]
    bind: Option<String>,
    /// AMQP 0-9-1 port.
    #[arg(long, env = "WARREN_AMQP_PORT")]
    amqp_port: Option<u16>,
    /// STOMP 1.0/1.1/1.2 port (default 61613); 0 disables STOMP.
    #[arg(long, env = "WARREN_STOMP_PORT")]
    stomp_port: Option<u16>,
    /// STOMP over WebSocket (ws://HOST:PORT/ws) and Server-Sent Events
    /// (/sse?destination=...) port (default 15674); 0 disables both.
    #[arg(long, env = "WARREN_WEB_STOMP_PORT")]
    web_stomp_port: Option<u16>,
    /// MQTT 3.1/3.1.1/5.0 port (default 1883); 0 disables MQTT.
    #[arg(long, env = "WARREN_MQTT_PORT")]
    mqtt_port: Option<u16>,
    /// MQTT over WebSocket port (ws://HOST:PORT/ws, subprotocol `mqtt`;
    /// default 15675, RabbitMQ's Web-MQTT); 0 disables it.
    #[arg(long, env = "WARREN_WEB_MQTT_PORT")]
    web_mqtt_port: Option<u16>,
    /// Management HTTP API port, RabbitMQ's (default 15672); 0 disables it.
    #[arg(long, env = "WARREN_HTTP_PORT")]
    http_port: Option<u16>,
    /// Prometheus metrics port (/metrics, /metrics/per-object), RabbitMQ's
    /// (default 15692); 0 disables it.
    #[arg(long, env = "WARREN_PROMETHEUS_PORT")]
    prometheus_port: Option<u16>,
    /// Pages allowed to use the Web-STOMP, SSE and Web-MQTT listeners: their
    /// origins (`https://app.example`), comma-separated; requests from other
    /// pages' scripts get 403. Default: any origin, as RabbitMQ. The HTTP
    /// API lets these pages (and only these, never "any") make cross-origin
    /// state-changing calls; others get 403.
    #[arg(long, env = "WARREN_WEB_ALLOWED_ORIGINS", value_delimiter = ',')]
    web_allowed_origins: Option<Vec<String>>,
    /// Directory for durable state.
    #[arg(long, env = "WARREN_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    cluster: cluster::ClusterArgs,
    #[command(flatten)]
    tls: tls::TlsArgs,
    /// Log filter, RUST_LOG syntax (e.g. "info", "warren_amqp=debug").
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server(args),
        Command::Perf(args) => warren_perf::run(args),
        Command::Ctl(args) => ctl::run(args),
    }
}

fn server(args: ServerArgs) -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(&args.log))
        .with_writer(std::io::stderr)
        .init();
    if let Some((soft, hard)) = resources::raise_nofile_limit() {
        tracing::debug!(soft, hard, "open-file limit");
    }
    let file = match &args.config {
        Some(p) => match FileConfig::load(p) {
            Ok(c) => c,
            Err(e) => {
                error!("{}", e);
                return ExitCode::from(2);
            }
        },
        None => FileConfig::default(),
    };
    let listeners = file.listeners.as_ref();
    let bind = args
        .bind
        .clone()
        .or_else(|| listeners.and_then(|l| l.bind.clone()))
        .unwrap_or_else(|| "0.0.0.0".into());
    let port = args
        .amqp_port
        .or_else(|| listeners.and_then(|l| l.amqp_port))
        .unwrap_or(5672);
    let stomp_port = args
        .stomp_port
        .or_else(|| listeners.and_then(|l| l.stomp_port))
        .unwrap_or(61613);
    let web_stomp_port = args
        .web_stomp_port
        .or_else(|| listeners.and_then(|l| l.web_stomp_port))
        .unwrap_or(15674);
    let mqtt_port = args
        .mqtt_port
        .or_else(|| listeners.and_then(|l| l.mqtt_port))
        .unwrap_or(1883);
    let web_mqtt_port = args
        .web_mqtt_port
        .or_else(|| listeners.and_then(|l| l.web_mqtt_port))
        .unwrap_or(15675);
    let mut mqtt_config = warren_mqtt::MqttConfig::default();
    if let Some(m) = &file.mqtt {
        m.apply(&mut mqtt_config);
    }
    let http_port = args
        .http_port
        .or_else(|| listeners.and_then(|l| l.http_port))
        .unwrap_or(15672);
    let prometheus_port = args
        .prometheus_port
        .or_else(|| listeners.and_then(|l| l.prometheus_port))
        .unwrap_or(15692);
    let data_dir = args
        .data_dir
        .clone()
        .or_else(|| file.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("warren-data"));
    let mut limits = Limits::default();
    if let Some(l) = &file.limits {
        limits.frame_max = l.frame_max.unwrap_or(limits.frame_max);
        limits.channel_max = l.channel_max.unwrap_or(limits.channel_max);
        limits.heartbeat = l.heartbeat.unwrap_or(limits.heartbeat);
        limits.max_message_size = l.max_message_size.unwrap_or(limits.max_message_size);
        if let Some(ms) = l.handshake_timeout {
            limits.handshake_timeout = std::time::Duration::from_millis(ms.max(1));
        }
        limits.connection_max = l.connection_max.or(limits.connection_max);
    }
    if let Err(e) = std::fs::create_dir_all(&data_dir) {
        error!("cannot create data dir {}: {}", data_dir.display(), e);
        return ExitCode::from(2);
    }
    let alarms = resources::AlarmConfig::from_file(file.resources.as_ref());
    let mut storage = warren_core::store::LogOptions {
        // What the store holds for speed scales with the memory watermark
        // (see store/budget.rs).
        memory: warren_core::store::budget::MemoryBudget::for_watermark(alarms.memory_limit),
        ..Default::default()
    };
    if let Some(s) = &file.storage {
        storage.fsync = s.fsync.unwrap_or(storage.fsync);
        storage.segment_size = s.segment_size_bytes.unwrap_or(storage.segment_size);
        if let Some(w) = s.queue_window_bytes {
            storage.memory = storage.memory.with_window_bytes(w);
        }
    }
    tracing::info!(
        memory_watermark = alarms.memory_limit,
        window_bytes = storage.memory.window_bytes,
        pending_write_bytes = storage.memory.max_pending,
        "message store memory budget"
    );
    if !storage.fsync {
        tracing::warn!("storage.fsync = false: confirmed messages can be lost in a power failure");
    }
    let tls = match tls::resolve(&args.tls, &file) {
        Ok(t) => t,
        Err(e) => {
            error!("{}", e);
            return ExitCode::from(2);
        }
    };
    let cluster_cfg = match cluster::resolve(
        &args.cluster,
        &file,
        &bind,
        &data_dir,
        tls.as_ref().map(|t| t.tls.settings()),
    ) {
        Ok(c) => c,
        Err(e) => {
            error!("{}", e);
            return ExitCode::from(2);
        }
    };
    let broker = match build_broker(&file, limits, &data_dir, &storage) {
        Ok(b) => b,
        Err(e) => {
            error!("{}", e);
            return ExitCode::from(2);
        }
    };
    let probe = resources::prometheus_probe(&alarms, &data_dir);
    let Some(addr) = socket_addr(&bind, port) else {
        error!("invalid bind address {}", bind);
        return ExitCode::from(2);
    };
    // The other protocols share the bind address, users, vhosts and
    // permissions; port 0 switches one off.
    // TLS listeners only when a certificate is configured.
    let tls_ports = tls
        .as_ref()
        .map(|t| {
            vec![
                (Adapter::Amqps, t.amqps_port),
                (Adapter::Stomps, t.stomps_port),
                (Adapter::Mqtts, t.mqtts_port),
            ]
        })
        .unwrap_or_default();
    let http_tls = tls.as_ref().filter(|t| t.http).map(|t| t.tls.clone());
    let origins = warren_web_stomp::Origins::new(
        args.web_allowed_origins
            .clone()
            .or_else(|| listeners.and_then(|l| l.web_allowed_origins.clone()))
            .unwrap_or_default(),
    );
    if let warren_web_stomp::Origins::Only(list) = &origins {
        tracing::info!(origins = ?list, "web listeners accept these origins only");
    }
    let tls = tls.map(|t| t.tls);
    let adapters: Vec<(Adapter, SocketAddr)> = [
        (Adapter::Stomp, stomp_port),
        (Adapter::WebStomp, web_stomp_port),
        (Adapter::Mqtt, mqtt_port),
        (Adapter::WebMqtt, web_mqtt_port),
        (Adapter::Http, http_port),
        (Adapter::Prometheus, prometheus_port),
    ]
    .into_iter()
    .chain(tls_ports)
    .filter(|(_, p)| *p != 0)
    .filter_map(|(a, p)| Some((a, socket_addr(&bind, p)?)))
    .collect();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            error!("cannot start runtime: {}", e);
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let listener = match listen(addr).await {
            Ok(l) => l,
            Err(e) => {
                error!("cannot listen on {}: {}", addr, e);
                return ExitCode::FAILURE;
            }
        };
        let mut bound = Vec::new();
        for (adapter, a) in adapters {
            match tokio::net::TcpListener::bind(a).await {
                Ok(l) => bound.push((adapter, l)),
                Err(e) => {
                    error!("cannot listen on {} ({}): {}", a, adapter.name(), e);
                    return ExitCode::FAILURE;
                }
            }
        }
        info!(data_dir = %data_dir.display(), "Warren {} starting", env!("CARGO_PKG_VERSION"));
        resources::spawn_monitor(broker.clone(), alarms, data_dir.clone());
        if let Some(t) = &tls {
            // SIGHUP (or a changed file): new connections get the new
            // certificate, open ones keep theirs.
            tokio::spawn(warren_tls::watch(t.clone()));
        }
        broker.start_background();
        // Clustered: the metadata group starts (and the cluster forms) before
        // any client is served, so every metadata change goes through it.
        let cluster = match cluster_cfg {
            Some(cfg) => match warren_cluster::Cluster::start(cfg, broker.clone()).await {
                Ok(c) => {
                    broker.set_replicator(c.replicator());
                    Some(c)
                }
                Err(e) => {
                    error!("cannot start the cluster node: {}", e);
                    return ExitCode::FAILURE;
                }
            },
            None => None,
        };
        // What the management API reports in /api/overview and checks in
        // /api/health/checks/port-listener.
        let mut announced: Vec<warren_http::Listener> = Vec::new();
        if let Ok(a) = listener.local_addr() {
            announced.push(warren_http::Listener::new("amqp", a));
        }
        for (adapter, l) in &bound {
            if let Ok(a) = l.local_addr() {
                let https = http_tls.is_some() && adapter.is_web();
                announced.push(warren_http::Listener::new(adapter.protocol(https), a));
            }
        }
        let mut mqtt_node: Option<std::sync::Arc<warren_mqtt::Node>> = None;
        for (adapter, l) in bound {
            match adapter {
                Adapter::Stomp => tokio::spawn(warren_stomp::serve(l, broker.clone())),
                Adapter::WebStomp => tokio::spawn(warren_web_stomp::serve_with(
                    l,
                    broker.clone(),
                    http_tls.clone(),
                    origins.clone(),
                )),
                Adapter::Amqps | Adapter::Stomps => {
                    // TLS adapters are only bound when a certificate is.
                    let Some(t) = tls.clone() else { continue };
                    match adapter {
                        Adapter::Amqps => {
                            tokio::spawn(warren_amqp::serve_tls(l, broker.clone(), t))
                        }
                        _ => tokio::spawn(warren_stomp::serve_tls(l, broker.clone(), t)),
                    }
                }
                Adapter::Mqtt | Adapter::WebMqtt | Adapter::Mqtts => {
                    // One MQTT node for both transports: client ids, sessions
                    // and retained messages are shared, as in RabbitMQ.
                    let node = match &mqtt_node {
                        Some(n) => n.clone(),
                        None => match warren_mqtt::retained::RetainedStore::open(&data_dir) {
                            Ok(retained) => mqtt_node
                                .insert(warren_mqtt::Node::new(
                                    broker.clone(),
                                    mqtt_config.clone(),
                                    retained,
                                ))
                                .clone(),
                            Err(e) => {
                                error!("cannot open MQTT retained messages: {}", e);
                                return ExitCode::FAILURE;
                            }
                        },
                    };
                    match (adapter, tls.clone()) {
                        (Adapter::Mqtt, _) => tokio::spawn(warren_mqtt::serve(l, node)),
                        (Adapter::WebMqtt, _) => tokio::spawn(warren_web_mqtt::serve_with(
                            l,
                            node,
                            http_tls.clone(),
                            origins.clone(),
                        )),
                        (_, Some(t)) => tokio::spawn(warren_mqtt::serve_tls(l, node, t)),
                        (_, None) => continue,
                    }
                }
                Adapter::Http => tokio::spawn(warren_http::serve_with(
                    l,
                    broker.clone(),
                    announced.clone(),
                    http_tls.clone(),
                    origins.clone(),
                )),
                Adapter::Prometheus => tokio::spawn(warren_http::prometheus::serve(
                    l,
                    broker.clone(),
                    probe.clone(),
                )),
            };
        }
        tokio::select! {
            _ = warren_amqp::serve(listener, broker) => ExitCode::SUCCESS,
            _ = shutdown_signal() => {
                info!("shutting down");
                if let Some(c) = &cluster {
                    c.shutdown().await;
                }
                ExitCode::SUCCESS
            }
        }
    })
}

/// A protocol listener besides AMQP's.
#[derive(Clone, Copy)]
enum Adapter {
    Amqps,
    Stomps,
    Mqtts,
    Stomp,
    WebStomp,
    Mqtt,
    WebMqtt,
    Http,
    Prometheus,
}

impl Adapter {
    fn name(self) -> &'static str {
        match self {
            Adapter::Amqps => "AMQPS",
            Adapter::Stomps => "STOMPS",
            Adapter::Mqtts => "MQTTS",
            Adapter::Stomp => "STOMP",
            Adapter::WebStomp => "Web-STOMP",
            Adapter::Mqtt => "MQTT",
            Adapter::WebMqtt => "Web-MQTT",
            Adapter::Http => "HTTP API",
            Adapter::Prometheus => "Prometheus",
        }
    }

    /// The protocol name RabbitMQ lists the listener under (`https` for
    /// the web listeners when `--http-tls` is on).
    fn protocol(self, https: bool) -> &'static str {
        match (self, https) {
            (Adapter::Amqps, _) => "amqp/ssl",
            (Adapter::Stomps, _) => "stomp/ssl",
            (Adapter::Mqtts, _) => "mqtt/ssl",
            (Adapter::Stomp, _) => "stomp",
            (Adapter::WebStomp, false) => "http/web-stomp",
            (Adapter::WebStomp, true) => "https/web-stomp",
            (Adapter::Mqtt, _) => "mqtt",
            (Adapter::WebMqtt, false) => "http/web-mqtt",
            (Adapter::WebMqtt, true) => "https/web-mqtt",
            (Adapter::Http, false) => "http",
            (Adapter::Http, true) => "https",
            (Adapter::Prometheus, _) => "http/prometheus",
        }
    }

    /// Served over HTTPS/WSS with `--http-tls`.
    fn is_web(self) -> bool {
        matches!(self, Adapter::WebStomp | Adapter::WebMqtt | Adapter::Http)
    }
}

/// `bind:port` as a socket address (IPv6 literals with or without brackets).
fn socket_addr(bind: &str, port: u16) -> Option<SocketAddr> {
    format!("{}:{}", bind, port)
        .parse()
        .or_else(|_| format!("[{}]:{}", bind, port).parse::<SocketAddr>())
        .ok()
}

/// Bind the AMQP listener.
///
/// Hidden test knob: `WARREN_TEST_SOCKET_BUFFER=<bytes>` sets SO_SNDBUF and
/// SO_RCVBUF on the listening socket, which accepted sockets inherit (Linux), so
/// that stress tests (`warren-tests/tests/stall.rs`) see the connection writer's
/// socket fill up after a few KiB instead of the megabytes loopback autotuning
/// allows. Read once at startup; not a configuration option.
async fn listen(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let size = std::env::var("WARREN_TEST_SOCKET_BUFFER")
        .ok()
        .and_then(|v| v.trim().parse::<u32>().ok());
    let Some(size) = size else {
        return tokio::net::TcpListener::bind(addr).await;
    };
    warn!(
        bytes = size,
        "WARREN_TEST_SOCKET_BUFFER: small socket buffers (test knob)"
    );
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(size)?;
    socket.set_recv_buffer_size(size)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// SIGINT or SIGTERM: stop gracefully (everything confirmed is already on disk).
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

fn build_broker(
    file: &FileConfig,
    limits: Limits,
    data_dir: &std::path::Path,
    storage: &warren_core::store::LogOptions,
) -> Result<std::sync::Arc<Broker>, String> {
    let broker = Broker::open(data_dir, limits, storage)
        .map_err(|e| format!("cannot open data dir {}: {}", data_dir.display(), e))?;
    // First start with this data dir: vhost "/" and guest, as RabbitMQ does.
    broker.create_defaults_once(file.default_user.unwrap_or(true));
    for v in &file.vhosts {
        broker
            .add_vhost(&v.name)
            .map_err(|e| format!("vhost '{}': {}", v.name, e.text))?;
    }
    let all_vhosts = broker.list_vhosts();
    for u in &file.users {
        let mut user = match (&u.password, &u.password_hash) {
            (Some(p), None) => User::new(&u.name, p),
            (None, Some(h)) => User {
                password_hash: h.clone(),
                ..User::new(&u.name, "")
            },
            _ => {
                return Err(format!(
                    "user '{}': set exactly one of password, password_hash",
                    u.name
                ))
            }
        };
        user.tags = u.tags.clone();
        user.loopback_only = u.loopback_only;
        broker.put_user(user);
        let full_access = u.vhosts.clone().unwrap_or_else(|| {
            if u.permissions.is_empty() {
                all_vhosts.clone()
            } else {
                Vec::new()
            }
        });
        for v in full_access {
            if broker.vhost(&v).is_none() {
                return Err(format!("user '{}': unknown vhost '{}'", u.name, v));
            }
            broker.put_permission(Permission::full(&u.name, &v));
        }
        for p in &u.permissions {
            if broker.vhost(&p.vhost).is_none() {
                return Err(format!("user '{}': unknown vhost '{}'", u.name, p.vhost));
            }
            let perm = Permission::new(PermissionDef {
                user: u.name.clone(),
                vhost: p.vhost.clone(),
                configure: p.configure.clone(),
                write: p.write.clone(),
                read: p.read.clone(),
            })
            .map_err(|e| format!("user '{}': {}", u.name, e.text))?;
            broker.put_permission(perm);
        }
    }
    broker.prune_orphan_permissions();
    for p in &file.policies {
        let vhost = broker
            .vhost(&p.vhost)
            .ok_or_else(|| format!("policy '{}': unknown vhost '{}'", p.name, p.vhost))?;
        let definition = serde_json::to_value(&p.definition)
            .ok()
            .and_then(|v| v.as_object().cloned())
            .unwrap_or_default();
        let def = warren_core::policy::PolicyDef {
            vhost: p.vhost.clone(),
            name: p.name.clone(),
            pattern: p.pattern.clone(),
            apply_to: p.apply_to.clone(),
            priority: p.priority,
            definition,
        };
        vhost
            .set_policy(def, false)
            .map_err(|e| format!("policy '{}': {}", p.name, e.text))?;
    }
    Ok(broker)
}
