//! `GET /api/nodes[/NAME]` (monitoring): this node, with the figures the
//! process can tell about itself, and on a cluster every other member with
//! what it answered to a status probe (or `running: false`).
//! `GET /api/cluster-status` (Warren's; `warren ctl cluster-status`): the
//! members and the metadata group's leader.

use super::ok;
use crate::auth::Caller;
use crate::body::{Names, Params};
use crate::error::{ApiError, ApiResult};
use crate::list::ListParams;
use axum::response::Response;
use serde_json::{json, Value};

fn rss_bytes() -> u64 {
    // /proc/self/statm: size resident ... in pages.
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

fn fd_used() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count())
}

fn node_json(c: &Caller) -> Value {
    let http = &c.http;
    let alarm = http.broker.alarm().borrow().clone();
    let alarm = alarm.unwrap_or_default();
    json!({
        "name": http.node,
        "type": "disc",
        "running": true,
        "os_pid": std::process::id().to_string(),
        "processors": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "uptime": http.started.elapsed().as_millis() as u64,
        "mem_used": rss_bytes(),
        "mem_alarm": alarm.contains("memory"),
        "disk_free_alarm": alarm.contains("disk"),
        "fd_used": fd_used(),
        "exchange_types": super::overview::exchange_types(),
        "rates_mode": "none",
        "applications": [{"name": "warren", "description": "Warren", "version": env!("CARGO_PKG_VERSION")}],
    })
}

/// The cluster's status; a single node's is just itself.
async fn status(c: &Caller) -> Value {
    match c.http.broker.replicator() {
        Some(r) => r.status().await,
        None => json!({
            "cluster_name": c.http.node,
            "nodes": [{"name": c.http.node, "running": true, "type": "disc"}],
            "metadata_leader": c.http.node,
        }),
    }
}

async fn all_nodes(c: &Caller) -> Vec<Value> {
    let Some(r) = c.http.broker.replicator() else {
        return vec![node_json(c)];
    };
    let me = r.node_name();
    let st = r.status().await;
    let mut out = Vec::new();
    for n in st["nodes"].as_array().cloned().unwrap_or_default() {
        if n["name"] == me.as_str() {
            let mut mine = node_json(c);
            mine["name"] = json!(me);
            if let (Some(m), Some(extra)) = (mine.as_object_mut(), n.as_object()) {
                for (k, v) in extra {
                    m.entry(k.clone()).or_insert_with(|| v.clone());
                }
            }
            out.push(mine);
        } else {
            out.push(n);
        }
    }
    out
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    c.require_monitor()?;
    let nodes = all_nodes(&c).await;
    Ok(ok(p.list.apply(nodes)?))
}

pub async fn show(c: Caller, Names(name): Names<String>, p: Params) -> ApiResult<Response> {
    c.require_monitor()?;
    let _: &ListParams = &p.list;
    let node = all_nodes(&c)
        .await
        .into_iter()
        .find(|n| n["name"] == name.as_str())
        .ok_or_else(ApiError::object_not_found)?;
    Ok(ok(p.list.project_single(node)))
}

/// `PUT /api/cluster/nodes/NAME {"addr": "host:port"}` (`warren ctl join`)
/// and `DELETE /api/cluster/nodes/NAME` (`warren ctl forget-node`).
pub async fn join(
    c: Caller,
    Names(name): Names<String>,
    body: crate::body::Body,
) -> ApiResult<Response> {
    c.require_admin()?;
    let addr = body
        .str("addr")?
        .ok_or_else(|| ApiError::key_missing("addr"))?
        .to_string();
    member(&c, name, Some(addr)).await
}

pub async fn forget(c: Caller, Names(name): Names<String>) -> ApiResult<Response> {
    c.require_admin()?;
    member(&c, name, None).await
}

async fn member(c: &Caller, name: String, addr: Option<String>) -> ApiResult<Response> {
    let Some(r) = c.http.broker.replicator().cloned() else {
        return Err(ApiError::bad_request("this node is not clustered"));
    };
    r.change_member(name, addr).await?;
    Ok(super::no_content())
}

pub async fn cluster_status(c: Caller) -> ApiResult<Response> {
    c.require_monitor()?;
    Ok(ok(status(&c).await))
}
