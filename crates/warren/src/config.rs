//! Server configuration: embedded defaults, overridden by a TOML file, then by
//! environment variables and command-line flags (clap handles the last two).

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// The TOML config file. Every field is optional; see `docs/CONFIG.md`... and the
/// example in the README.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listeners: Option<Listeners>,
    pub data_dir: Option<PathBuf>,
    pub limits: Option<FileLimits>,
    /// Create guest/guest (loopback only, full access to "/") on the first start
    /// with an empty data dir, as RabbitMQ does. Default true. Once created,
    /// guest is an ordinary stored user: deleting it (`warren ctl delete-user
    /// guest`) is permanent.
    pub default_user: Option<bool>,
    /// Vhosts created at every start if missing (and then stored like vhosts
    /// added with `warren ctl add-vhost`; removing one from this list does not
    /// delete it).
    #[serde(default)]
    pub vhosts: Vec<VhostConfig>,
    /// Users (re)applied in memory at every start; they win over a stored user
    /// of the same name and are not written to the data dir.
    #[serde(default)]
    pub users: Vec<UserConfig>,
    pub resources: Option<Resources>,
    pub storage: Option<Storage>,
    /// The MQTT listener's settings (RabbitMQ's `mqtt.*`).
    pub mqtt: Option<MqttSettings>,
    /// TLS listeners and certificates (see `crate::tls`).
    pub tls: Option<crate::tls::TlsFile>,
    /// Policies applied at startup (and changeable at runtime with `warren ctl`).
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// Clustering (see `crate::cluster` and docs/CLUSTERING.md).
    pub cluster: Option<ClusterFile>,
}

/// `[cluster]`: this node's name, its cluster port and the seed nodes.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterFile {
    pub node_name: Option<String>,
    pub port: Option<u16>,
    /// `["n2@host:25673", "n3@host:25674"]`.
    #[serde(default)]
    pub seed_nodes: Vec<String>,
    /// The cluster cookie's file (default `$HOME/.warren.cookie`).
    pub cookie_file: Option<PathBuf>,
    /// TLS between nodes with the `[tls]` certificate (see `--cluster-tls`).
    pub tls: Option<bool>,
}

/// A policy, as `rabbitmqctl set_policy` takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    #[serde(default = "default_vhost")]
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    #[serde(default = "default_apply_to")]
    pub apply_to: String,
    #[serde(default)]
    pub priority: i64,
    /// e.g. { message-ttl = 60000, dead-letter-exchange = "dlx" }
    pub definition: toml::Table,
}

fn default_vhost() -> String {
    "/".into()
}

fn default_apply_to() -> String {
    "all".into()
}

/// Resource alarms, as RabbitMQ's `vm_memory_high_watermark` and
/// `disk_free_limit`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Fraction of RAM (default 0.4).
    pub memory_high_watermark: Option<f64>,
    /// Absolute limit in bytes; wins over the fraction.
    pub memory_high_watermark_bytes: Option<u64>,
    /// Free disk space below which publishers are blocked (default 50 MB).
    pub disk_free_limit_bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Storage {
    /// fsync the message log before confirming (default true). Turning it off
    /// trades durability on power loss for speed.
    pub fsync: Option<bool>,
    /// Message log segment size in bytes (default 32 MiB). Space is reclaimed a
    /// segment at a time; smaller segments free it sooner but mean more files.
    pub segment_size_bytes: Option<u64>,
    /// Bytes of messages all queues keep in memory at their heads, the rest
    /// being paged to the message log (default: 1/16 of the memory
    /// watermark, between 4 MiB and 256 MiB; see warren-core store/budget.rs).
    pub queue_window_bytes: Option<u64>,
}

/// `[mqtt]`: every field optional (see `warren_mqtt::MqttConfig` for defaults).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MqttSettings {
    /// Vhost of logins without a `vhost:` prefix (RabbitMQ's `mqtt.vhost`, default "/").
    pub default_vhost: Option<String>,
    /// Log in clients without credentials as this user (RabbitMQ's
    /// `mqtt.allow_anonymous` + `mqtt.default_user`); unset: refused.
    pub anonymous_user: Option<String>,
    /// Exchange MQTT topics map onto (default "amq.topic").
    pub exchange: Option<String>,
    pub max_packet_size: Option<usize>,
    /// Unacknowledged QoS 1/2 deliveries per client (RabbitMQ's `mqtt.prefetch`).
    pub max_inflight: Option<u16>,
    /// Unacknowledged QoS 1/2 publishes a client may have (MQTT 5 Receive Maximum).
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    /// Longest keep-alive granted to MQTT 5 clients (0: any).
    pub max_keep_alive: Option<u16>,
    pub max_session_expiry: Option<u32>,
    /// How long a 3.1.1 persistent session outlives its connection, ms
    /// (RabbitMQ 3.10's `mqtt.subscription_ttl`, default 86400000); 0: forever.
    pub subscription_ttl: Option<u64>,
}

impl MqttSettings {
    pub fn apply(&self, c: &mut warren_mqtt::MqttConfig) {
        if let Some(v) = &self.default_vhost {
            c.default_vhost = v.clone();
        }
        if self.anonymous_user.is_some() {
            c.anonymous_user = self.anonymous_user.clone();
        }
        if let Some(v) = &self.exchange {
            c.exchange = v.clone();
        }
        c.max_packet_size = self.max_packet_size.unwrap_or(c.max_packet_size);
        c.max_inflight = self.max_inflight.unwrap_or(c.max_inflight);
        c.receive_maximum = self.receive_maximum.unwrap_or(c.receive_maximum);
        c.topic_alias_maximum = self.topic_alias_maximum.unwrap_or(c.topic_alias_maximum);
        c.max_keep_alive = self.max_keep_alive.unwrap_or(c.max_keep_alive);
        c.max_session_expiry = self.max_session_expiry.unwrap_or(c.max_session_expiry);
        if let Some(ms) = self.subscription_ttl {
            c.subscription_ttl = (ms > 0).then_some(ms);
        }
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    pub bind: Option<String>,
    pub amqp_port: Option<u16>,
    /// STOMP port (default 61613, as RabbitMQ's plugin); 0 disables STOMP.
    pub stomp_port: Option<u16>,
    /// STOMP over WebSocket (`/ws`) and Server-Sent Events (`/sse`) port
    /// (default 15674, as RabbitMQ's Web-STOMP plugin); 0 disables it.
    pub web_stomp_port: Option<u16>,
    /// MQTT port (default 1883, as RabbitMQ's plugin); 0 disables MQTT.
    pub mqtt_port: Option<u16>,
    /// MQTT over WebSocket port (`/ws`, default 15675, as RabbitMQ's
    /// Web-MQTT plugin); 0 disables it.
    pub web_mqtt_port: Option<u16>,
    /// Management HTTP API port (default 15672, as RabbitMQ's management
    /// plugin); 0 disables it.
    pub http_port: Option<u16>,
    /// Prometheus metrics port (`/metrics`, default 15692, as RabbitMQ's
    /// rabbitmq_prometheus plugin); 0 disables it.
    pub prometheus_port: Option<u16>,
    /// Origins (`https://app.example`) whose pages may use the Web-STOMP,
    /// SSE and Web-MQTT listeners; others get 403. Default: any, as RabbitMQ.
    pub web_allowed_origins: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub frame_max: Option<u32>,
    pub channel_max: Option<u16>,
    pub heartbeat: Option<u16>,
    pub max_message_size: Option<u64>,
    /// Milliseconds from accept to login on every protocol (RabbitMQ's
    /// `handshake_timeout`, default 10000).
    pub handshake_timeout: Option<u64>,
    /// Most open client connections, all protocols (RabbitMQ's
    /// `connection_max`; default no limit).
    pub connection_max: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VhostConfig {
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    /// Plain password (hashed at load time)...
    pub password: Option<String>,
    /// ...or a RabbitMQ-format SHA-256 hash, as in RabbitMQ's definitions export.
    pub password_hash: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Vhosts on which the user gets full permissions (configure, write and read
    /// ".*"). Default: every vhost existing at startup, unless `permissions` is
    /// given (then none).
    pub vhosts: Option<Vec<String>>,
    /// RabbitMQ-style permissions, e.g.
    /// `permissions = [{ vhost = "/", configure = "^feed\\.", write = "^feed\\.", read = ".*" }]`.
    #[serde(default)]
    pub permissions: Vec<PermissionConfig>,
    #[serde(default)]
    pub loopback_only: bool,
}

/// One (vhost, configure, write, read) permission of a config user, as
/// `rabbitmqctl set_permissions -p VHOST USER CONF WRITE READ`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PermissionConfig {
    #[serde(default = "default_vhost")]
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {}", path.display(), e))?;
        toml::from_str(&text).map_err(|e| format!("invalid config {}: {}", path.display(), e))
    }
}
