//! `GET /api/overview`: versions, node, listeners, object and message totals
//! (over the vhosts the caller may see, as RabbitMQ's; connections and
//! channels: those the caller may see, see `connections.rs`), and the
//! visible vhosts' `message_stats` summed (left out without activity).
//!
//! `queue_totals.*_details.rate` are derived from the queues' sampled
//! counter rates (Warren does not sample depths): `messages` changes by
//! publish − ack − deliver_no_ack − get_no_ack, `messages_unacknowledged` by
//! deliver + get − ack, `messages_ready` by the difference. Expiry, drops,
//! purges and requeues are not in those counters, so this is an estimate.

use super::{channel_stats, figures, ok, put_opt, rate, visible_vhosts};
use crate::auth::Caller;
use crate::error::ApiResult;
use axum::response::Response;
use serde_json::{json, Value};
use warren_core::stats::{MessageField as F, MessageSnapshot, PublishSnapshot};

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
    let mut queue_stats = MessageSnapshot::default();
    let mut stats = MessageSnapshot::default();
    let mut publishing = PublishSnapshot::default();
    for v in &vhosts {
        publishing.add(&v.totals().publishing());
        for q in v.listed_queues() {
            let d = q.depth();
            ready += d.messages_ready;
            unacked += d.messages_unacknowledged;
            consumers += d.consumers as u64;
            queues += 1;
            queue_stats.add(&q.message_stats());
        }
        exchanges += v.exchanges().len();
        stats.add(&v.message_stats());
    }
    let r = |f| queue_stats.rate(f);
    let total_rate = r(F::Publish) - r(F::Ack) - r(F::DeliverNoAck) - r(F::GetNoAck);
    let unacked_rate = r(F::Deliver) + r(F::Get) - r(F::Ack);
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
    let conns = super::connections::visible(&c, None);
    let channels: usize = conns.iter().map(|x| x.channel_list().len()).sum();
    let totals = json!({"consumers": consumers, "exchanges": exchanges, "queues": queues,
                        "connections": conns.len(), "channels": channels});
    // Node-wide, as RabbitMQ's (not filtered by the caller's vhosts).
    let mut churn = serde_json::Map::new();
    figures(&mut churn, &http.broker.churn.snapshot());
    let mut j = json!({
        "management_version": warren_core::export::RABBIT_VERSION,
        "rates_mode": "basic",
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
        "churn_rates": churn,
        "queue_totals": {
            "messages": ready + unacked,
            "messages_details": rate(total_rate),
            "messages_ready": ready,
            "messages_ready_details": rate(total_rate - unacked_rate),
            "messages_unacknowledged": unacked,
            "messages_unacknowledged_details": rate(unacked_rate),
        },
        "object_totals": totals,
        "statistics_db_event_queue": 0,
        "node": http.node,
        "listeners": listeners,
        "contexts": contexts,
    });
    put_opt(&mut j, "message_stats", channel_stats(&stats, &publishing));

    Ok(ok(j))
}
