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
    /// Create guest/guest (loopback only) as RabbitMQ does. Default true.
    pub default_user: Option<bool>,
    #[serde(default)]
    pub vhosts: Vec<VhostConfig>,
    #[serde(default)]
    pub users: Vec<UserConfig>,
    pub resources: Option<Resources>,
    pub storage: Option<Storage>,
    /// Policies applied at startup (and changeable at runtime with `warren ctl`).
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
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
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listeners {
    pub bind: Option<String>,
    pub amqp_port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileLimits {
    pub frame_max: Option<u32>,
    pub channel_max: Option<u16>,
    pub heartbeat: Option<u16>,
    pub max_message_size: Option<u64>,
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
    /// Vhosts the user may open. Default: all configured vhosts.
    pub vhosts: Option<Vec<String>>,
    #[serde(default)]
    pub loopback_only: bool,
}

impl FileConfig {
    pub fn load(path: &Path) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {}", path.display(), e))?;
        toml::from_str(&text).map_err(|e| format!("invalid config {}: {}", path.display(), e))
    }
}
