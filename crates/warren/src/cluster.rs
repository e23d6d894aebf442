//! `warren server`'s clustering flags: `--node-name`, `--cluster-port`,
//! `--seed-nodes` (and `[cluster]` in the config file). Without a cluster
//! port the broker is a single node exactly as before: no replicator, no
//! cluster listener.

use crate::config::FileConfig;
use std::path::Path;
use warren_cluster::config::parse_seeds;
use warren_cluster::ClusterConfig;

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
}

/// Flags over the file; `None` for a single node.
pub fn resolve(
    args: &ClusterArgs,
    file: &FileConfig,
    bind: &str,
    data_dir: &Path,
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
    if node_name.is_empty() || node_name.contains(['@', ',']) {
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
    let cfg = ClusterConfig {
        node_name,
        advertise,
        bind: bind_addr,
        seeds,
        data_dir: data_dir.to_path_buf(),
    };
    cfg.members()?;
    Ok(Some(cfg))
}
