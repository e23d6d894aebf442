//! `GET /api/nodes[/NAME]` (monitoring): the one node Warren is, with the
//! figures the process can tell about itself.

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

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    c.require_monitor()?;
    Ok(ok(p.list.apply(vec![node_json(&c)])?))
}

pub async fn show(c: Caller, Names(name): Names<String>, p: Params) -> ApiResult<Response> {
    c.require_monitor()?;
    if name != c.http.node {
        return Err(ApiError::object_not_found());
    }
    let _: &ListParams = &p.list;
    Ok(ok(p.list.project_single(node_json(&c))))
}
