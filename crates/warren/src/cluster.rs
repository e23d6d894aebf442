//! `warren server`'s clustering flags: `--node-name`, `--cluster-port`,
//! `--seed-nodes` (and `[cluster]` in the config file). Without a cluster
//! port the broker is a single node exactly as before: no replicator, no
//! cluster listener.

use crate::config::{ClusterFile, FileConfig};
use std::path::Path;
use warren_cluster::auth::Cookie;
use warren_cluster::config::parse_seeds;
use warren_cluster::ClusterConfig;
use warren_tls::{PeerTls, TlsSettings};

#[derive(clap::Args, Debug, Default)]
pub struct ClusterArgs {
    /// This node's name in the cluster (e.g. n1; default "warren").
    #[arg(long, env = "WARREN_NODE_NAME")]
    node_name: Option<String>,
    /// Port for the other cluster nodes (Raft and forwarding; RabbitMQ uses
    /// 25672). Unset or 0: a single node.
    #[arg(long, env = "WARREN_CLUSTER_PORT")]
    cluster_port: Option<u16>,
    /// The other nodes, NAME@HOST:PORT,... (their cluster ports). The first
    /// start of the seed nodes forms the cluster.
    #[arg(long, env = "WARREN_SEED_NODES")]
    seed_nodes: Option<String>,
    /// The file holding the cluster cookie, the secret every node of the
    /// cluster shares (default $HOME/.warren.cookie, created with a random
    /// value if missing). The value itself may be given in the environment
    /// instead, WARREN_CLUSTER_COOKIE.
    #[arg(long, env = "WARREN_CLUSTER_COOKIE_FILE")]
    cluster_cookie_file: Option<std::path::PathBuf>,
    /// TLS on the cluster port (RabbitMQ's inter-node TLS): links to and
    /// from other nodes use this node's --tls-cert/--tls-key and must chain
    /// to --tls-ca, both ways. Every node of the cluster must set it.
    #[arg(long, env = "WARREN_CLUSTER_TLS", num_args = 0..=1, default_missing_value = "true")]
    cluster_tls: Option<bool>,
}

/// The cookie: `WARREN_CLUSTER_COOKIE` (a value), `--cluster-cookie-file` /
/// `WARREN_CLUSTER_COOKIE_FILE`, `[cluster] cookie_file`, or the default
/// file, which alone is created when missing (as Erlang creates
/// `$HOME/.erlang.cookie`): a file named on purpose but absent is a mistake
/// worth stopping for.
fn cookie(args: &ClusterArgs, file: Option<&ClusterFile>) -> Result<Cookie, String> {
    let value = std::env::var("WARREN_CLUSTER_COOKIE")
        .ok()
        .filter(|v| !v.is_empty());
    match (value, &args.cluster_cookie_file) {
        (Some(_), Some(_)) => {
            Err("both WARREN_CLUSTER_COOKIE and a cluster cookie file are given: set one".into())
        }
        (Some(v), None) => Cookie::from_value(&v),
        (None, Some(p)) => Cookie::load(p, false),
        (None, None) => match file.and_then(|c| c.cookie_file.as_ref()) {
            Some(p) => Cookie::load(p, false),
            None => {
                let p = Cookie::default_path().ok_or(
                    "no cluster cookie: HOME is not set (use --cluster-cookie-file or WARREN_CLUSTER_COOKIE)",
                )?;
                Cookie::load(&p, true)
            }
        },
    }
}

/// Flags over the file; `None` for a single node. `tls`: the node's TLS
/// settings (`--tls-cert` ...), which `--cluster-tls` uses.
pub fn resolve(
    args: &ClusterArgs,
    file: &FileConfig,
    bind: &str,
    data_dir: &Path,
    tls: Option<&TlsSettings>,
) -> Result<Option<ClusterConfig>, String> {
    let f = file.cluster.as_ref();
    let port = args.cluster_port.or_else(|| f.and_then(|c| c.port));
    let seeds = match &args.seed_nodes {
        Some(s) => parse_seeds(s)?,
        None => parse_seeds(&f.map(|c| c.seed_nodes.join(",")).unwrap_or_default())?,
    };
    let port = match port {
        Some(p) if p != 0 => p,
        _ if !seeds.is_empty() => {
            return Err("--seed-nodes needs --cluster-port (this node's own cluster port)".into())
        }
        _ => return Ok(None),
    };
    let node_name = args
        .node_name
        .clone()
        .or_else(|| f.and_then(|c| c.node_name.clone()))
        .unwrap_or_else(|| "warren".into());
    if node_name.is_empty() || node_name.contains(['@', ',']) || node_name.len() > 255 {
        return Err(format!("invalid node name '{node_name}'"));
    }
    if seeds.iter().any(|s| s.name == node_name) {
        return Err(format!("node {node_name} lists itself as a seed"));
    }
    // Peers need an address they can dial: a wildcard bind advertises the
    // host name.
    let host = match bind {
        "0.0.0.0" | "::" | "[::]" => warren_core::net::hostname(),
        b => b.to_string(),
    };
    let bind_addr = if bind.contains(':') && !bind.starts_with('[') {
        format!("[{bind}]:{port}")
    } else {
        format!("{bind}:{port}")
    };
    let advertise = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let cookie = cookie(args, f)?;
    let tls = match args.cluster_tls.or_else(|| f.and_then(|c| c.tls)) {
        Some(true) => {
            let Some(settings) = tls else {
                return Err("--cluster-tls needs --tls-cert, --tls-key and --tls-ca".into());
            };
            if settings.ca.is_none() {
                return Err(
                    "--cluster-tls needs --tls-ca (the CA every node's certificate chains to)"
                        .into(),
                );
            }
            Some(PeerTls::new(settings.clone())?)
        }
        _ => None,
    };
    let cfg = ClusterConfig {
        cookie,
        tls,
        node_name,
        advertise,
        bind: bind_addr,
        seeds,
        data_dir: data_dir.to_path_buf(),
    };
    cfg.members()?;
    Ok(Some(cfg))
}
