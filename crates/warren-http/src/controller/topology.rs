//! `GET /api/warren/topology/VHOST` (Warren-only, not in RabbitMQ's API): the
//! vhost's exchanges, bindings, queues and consumers in one answer, for the
//! web UI's live topology view, which polls it every second. One request
//! instead of four listings keeps that cheap with 1,000 queues.
//!
//! The objects are rendered by the same functions as `/api/exchanges` and
//! `/api/queues` (so they carry `message_stats` when those do), without
//! `arguments` and policy definitions, which the view does not draw.
//! Bindings are the explicit ones (the default exchange's implicit binding of
//! every queue is left out). `consumers` are the vhost's consumers as
//! `/api/consumers/V` renders them. `publishers` are the vhost's connections
//! whose channels published (summed over the channels, with the rate): one
//! per connection, `{"name", "connection_name", "peer_host", "message_stats":
//! {"publish", "publish_details"}, "exchanges": [{"name"}]}`. The core does
//! not count publishes per (channel, exchange), so `exchanges` names the
//! one exchange receiving messages (`publish_in` rate > 0, not fed by an
//! exchange-to-exchange binding) when there is exactly one, and is empty
//! otherwise (the UI then draws inflow stubs on the busy exchanges).
//!
//! Answer: `{"vhost", "exchanges": [...], "queues": [...], "bindings":
//! [{"source", "destination", "destination_type", "routing_key"}],
//! "consumers": [...], "publishers": [...]}`.

use super::exchanges::exchange_json;
use super::queues::queue_json;
use super::{ok, rate};
use crate::auth::Caller;
use crate::body::Names;
use crate::error::ApiResult;
use axum::response::Response;
use serde_json::{json, Value};
use std::collections::HashSet;
use warren_core::exchange::Destination;
use warren_core::stats::{ExchangeField, MessageField};

/// Drop what the view does not draw (arguments, policy definitions).
fn slim(mut v: Value) -> Value {
    if let Value::Object(o) = &mut v {
        o.remove("arguments");
        o.remove("effective_policy_definition");
        o.remove("user_who_performed_action");
        o.remove("vhost");
    }
    v
}

pub async fn show(c: Caller, Names(vhost): Names<String>) -> ApiResult<Response> {
    let v = c.read_vhost(&vhost)?;
    let mut exchanges = v.exchanges();
    exchanges.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut queues = v.listed_queues();
    queues.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut bindings = Vec::new();
    for e in &exchanges {
        if e.name.is_empty() {
            continue;
        }
        let source = e.name.to_string_lossy();
        for b in e.bindings() {
            let (t, d) = match &b.destination {
                Destination::Queue(q) => ("queue", q.name.to_string_lossy().into_owned()),
                Destination::Exchange(x) => ("exchange", x.name.to_string_lossy().into_owned()),
            };
            bindings.push(json!({
                "source": source,
                "destination": d,
                "destination_type": t,
                "routing_key": b.routing_key.to_string_lossy(),
            }));
        }
    }
    let consumers = super::consumers::of_vhosts(&c, Some(&vhost))?;
    // The exchanges publishers publish into (see the module's comment).
    let fed: HashSet<&str> = bindings
        .iter()
        .filter(|b| b["destination_type"] == "exchange")
        .filter_map(|b| b["destination"].as_str())
        .collect();
    let busy: Vec<String> = exchanges
        .iter()
        .filter(|e| e.message_stats().rate(ExchangeField::PublishIn) > 0.0)
        .map(|e| e.name.to_string_lossy().into_owned())
        .filter(|n| !fed.contains(n.as_str()))
        .collect();
    let targets: Vec<Value> = match busy.as_slice() {
        [one] => vec![json!({"name": one})],
        _ => vec![],
    };
    let mut publishers = Vec::new();
    for x in super::connections::visible(&c, Some(&vhost)) {
        let (mut count, mut r) = (0u64, 0f64);
        for ch in x.channel_list() {
            count += ch.message_stats.get(MessageField::Publish);
            r += ch.message_stats.rate(MessageField::Publish);
        }
        if count == 0 {
            continue;
        }
        publishers.push(json!({
            "name": x.name,
            "connection_name": x.name,
            "peer_host": x.peer.ip().to_string(),
            "protocol": x.protocol,
            "message_stats": {"publish": count, "publish_details": rate(r)},
            "exchanges": targets,
        }));
    }
    Ok(ok(json!({
        "vhost": vhost,
        "exchanges": exchanges.iter().map(|e| slim(exchange_json(&v, e))).collect::<Vec<_>>(),
        "queues": queues.iter().map(|q| slim(queue_json(&c.http.node, &v, q))).collect::<Vec<_>>(),
        "bindings": bindings,
        "consumers": consumers,
        "publishers": publishers,
    })))
}
