//! `/api/consumers[/VHOST]`: the consumers of the queues of the vhosts the
//! caller may see (RabbitMQ filters consumers by vhost, not by user), read
//! from each queue (`Queue::consumers_info`), their channel named through
//! the connection registry. A queue's `consumer_details` uses the same
//! rendering.

use super::{ok, visible_vhosts};
use crate::auth::Caller;
use crate::body::{Names, Params};
use crate::error::ApiResult;
use axum::response::Response;
use serde_json::{json, Value};
use warren_core::connections::Connections;
use warren_core::queue::ConsumerInfo;
use warren_core::{Queue, VHost};

/// One consumer as RabbitMQ shows it. A consumer whose connection is not in
/// the registry (an internal one, e.g. a shovel-like consumer of the core)
/// has empty `channel_details`.
pub fn consumer_json(
    node: &str,
    conns: &Connections,
    v: &VHost,
    q: &Queue,
    c: &ConsumerInfo,
) -> Value {
    let channel = match conns.get(c.channel.connection) {
        Some(x) => json!({
            "name": x.channel_name(c.channel.number),
            "number": c.channel.number,
            "connection_name": x.name,
            "peer_host": x.peer.ip().to_string(),
            "peer_port": x.peer.port(),
            "user": x.user,
            "node": node,
        }),
        None => json!({}),
    };
    json!({
        "consumer_tag": c.consumer_tag.to_string_lossy(),
        "channel_details": channel,
        "queue": {"name": q.name.to_string_lossy(), "vhost": v.name.to_string_lossy()},
        "ack_required": c.ack_required,
        "exclusive": c.exclusive,
        "prefetch_count": c.prefetch_count,
        "arguments": warren_core::json::table_to_json(&c.arguments),
        "active": c.active,
        "activity_status": c.activity_status,
    })
}

/// A queue's consumers, rendered.
pub fn of_queue(c: &Caller, v: &VHost, q: &Queue) -> Vec<Value> {
    q.consumers_info()
        .iter()
        .map(|x| consumer_json(&c.http.node, &c.http.broker.connections, v, q, x))
        .collect()
}

/// The consumers of `vhost` (every visible vhost if None), by queue name.
pub fn of_vhosts(c: &Caller, only: Option<&str>) -> ApiResult<Vec<Value>> {
    let mut items = Vec::new();
    for v in visible_vhosts(c, only)? {
        let mut qs = v.listed_queues();
        qs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        for q in qs.iter().filter(|q| q.consumer_count() > 0) {
            items.extend(of_queue(c, &v, q));
        }
    }
    Ok(items)
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    Ok(ok(p.list.apply(of_vhosts(&c, None)?)?))
}

pub async fn list_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    Ok(ok(p.list.apply(of_vhosts(&c, Some(&vhost))?)?))
}
