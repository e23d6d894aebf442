//! `GET /api/warren/topology/VHOST` (Warren-only, not in RabbitMQ's API): the
//! vhost's exchanges, bindings, queues and consumers in one answer, for the
//! web UI's live topology view, which polls it every second. One request
//! instead of four listings keeps that cheap with 1,000 queues.
//!
//! The objects are rendered by the same functions as `/api/exchanges` and
//! `/api/queues` (so they carry `message_stats` when those do), without
//! `arguments` and policy definitions, which the view does not draw.
//! Bindings are the explicit ones (the default exchange's implicit binding of
//! every queue is left out). `consumers` lists each queue's consumers where
//! the core exposes them; a queue's `consumers` count is always there.
//!
//! Answer: `{"vhost", "exchanges": [...], "queues": [...], "bindings":
//! [{"source", "destination", "destination_type", "routing_key"}],
//! "consumers": [...]}`.

use super::exchanges::exchange_json;
use super::ok;
use super::queues::queue_json;
use crate::auth::Caller;
use crate::body::Names;
use crate::error::ApiResult;
use axum::response::Response;
use serde_json::{json, Value};
use warren_core::exchange::Destination;

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
    let consumers: Vec<Value> = Vec::new();
    Ok(ok(json!({
        "vhost": vhost,
        "exchanges": exchanges.iter().map(|e| slim(exchange_json(&v, e))).collect::<Vec<_>>(),
        "queues": queues.iter().map(|q| slim(queue_json(&c.http.node, &v, q))).collect::<Vec<_>>(),
        "bindings": bindings,
        "consumers": consumers,
    })))
}
