//! `GET /api/overview`: versions, node, listeners, object and message totals
//! (over the vhosts the caller may see, as RabbitMQ's). `message_stats`
//! rates come with the core's per-object counters (second phase).

use super::{ok, visible_vhosts};
use crate::auth::Caller;
use crate::error::ApiResult;
use axum::response::Response;
use serde_json::{json, Value};

/// The exchange types Warren implements, as RabbitMQ lists them.
pub fn exchange_types() -> Value {
    json!([
        {"name": "direct", "description": "AMQP direct exchange, as per the AMQP specification", "enabled": true},
        {"name": "fanout", "description": "AMQP fanout exchange, as per the AMQP specification", "enabled": true},
        {"name": "headers", "description": "AMQP headers exchange, as per the AMQP specification", "enabled": true},
        {"name": "topic", "description": "AMQP topic exchange, as per the AMQP specification", "enabled": true},
        {"name": "x-consistent-hash", "description": "Consistent Hashing Exchange", "enabled": true},
        {"name": "x-delayed-message", "description": "Delayed Message Exchange", "enabled": true},
    ])
}

pub async fn show(c: Caller) -> ApiResult<Response> {
    let vhosts = visible_vhosts(&c, None)?;
    let (mut ready, mut unacked, mut queues, mut exchanges, mut consumers) =
        (0u64, 0u64, 0, 0, 0u64);
    for v in &vhosts {
        for q in v.listed_queues() {
            ready += q.message_count() as u64;
            unacked += q.unacked_count() as u64;
            consumers += q.consumer_count() as u64;
            queues += 1;
        }
        exchanges += v.exchanges().len();
    }
    let http = &c.http;
    let listeners: Vec<Value> = http
        .listeners
        .iter()
        .map(|l| {
            json!({"node": http.node, "protocol": l.protocol, "ip_address": l.addr.ip().to_string(),
                   "port": l.addr.port(), "socket_opts": {}})
        })
        .collect();
    let contexts: Vec<Value> = http
        .listeners
        .iter()
        .filter(|l| l.protocol == "http")
        .map(|l| {
            json!({"node": http.node, "description": "RabbitMQ Management", "path": "/",
                   "port": l.addr.port().to_string(), "ssl_opts": []})
        })
        .collect();
    let mut totals = json!({"consumers": consumers, "exchanges": exchanges, "queues": queues});
    if c.is_monitor() {
        totals["connections"] = json!(http.broker.connections.len());
    }
    Ok(ok(json!({
        "management_version": warren_core::export::RABBIT_VERSION,
        "rates_mode": "none",
        "exchange_types": exchange_types(),
        "product_version": env!("CARGO_PKG_VERSION"),
        "product_name": "Warren",
        "rabbitmq_version": warren_core::export::RABBIT_VERSION,
        "cluster_name": http.node,
        "erlang_version": "",
        "erlang_full_version": "",
        "disable_stats": false,
        "enable_queue_totals": false,
        "message_stats": {},
        "queue_totals": {
            "messages": ready + unacked,
            "messages_ready": ready,
            "messages_unacknowledged": unacked,
        },
        "object_totals": totals,
        "statistics_db_event_queue": 0,
        "node": http.node,
        "listeners": listeners,
        "contexts": contexts,
    })))
}
