//! `/api/queues[/VHOST[/NAME]]`: list, show, PUT (declare), DELETE
//! (`if-empty`, `if-unused`), the queue's bindings, `POST .../get` and
//! `DELETE .../contents` (purge). Figures are read from the queue when asked
//! (`Queue::depth`: one lock; `Queue::message_stats`: no lock); a single
//! queue's answer also lists its `consumer_details`.
//!
//! `memory` is an estimate, not a measurement (Warren has no per-process
//! heap to read as RabbitMQ does): [`QUEUE_BASE_MEMORY`] for the queue, plus
//! [`MESSAGE_OVERHEAD`] per message (its `Arc<Message>`, headers and index
//! entry) plus the bodies' bytes (`message_bytes`, counted in full even
//! where a body is shared with other queues or paged out).

use super::{
    bindings_response, created, message_stats, no_content, ok, put_opt, rate, visible_vhosts,
};
use crate::auth::Caller;
use crate::body::{check_name, Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use base64::Engine;
use serde_json::{json, Value};
use warren_core::permissions::{queue_declare_needs, Access, Resource};
use warren_core::{Queue, QueueOptions, ShortStr, VHost};

/// Estimated bytes of an empty queue (its struct, lock, storage and stats).
pub const QUEUE_BASE_MEMORY: u64 = 2048;
/// Estimated bytes per message besides its body.
pub const MESSAGE_OVERHEAD: u64 = 160;

pub fn queue_json(node: &str, v: &VHost, q: &Queue) -> Value {
    let name = q.name.to_string_lossy();
    let d = q.depth();
    let (ready, unacked) = (d.messages_ready, d.messages_unacknowledged);
    let depth_rates = q.depth_rates();
    let mut j = json!({
        "name": name,
        "vhost": v.name.to_string_lossy(),
        "durable": q.options.durable,
        "auto_delete": q.options.auto_delete,
        "exclusive": q.options.exclusive,
        "arguments": warren_core::json::table_to_json(&q.options.arguments),
        "node": node,
        "type": if q.is_stream() { "stream" } else { "classic" },
        "state": "running",
        "messages": ready + unacked,
        "messages_details": rate(depth_rates[0]),
        "messages_ready": ready,
        "messages_ready_details": rate(depth_rates[1]),
        "messages_unacknowledged": unacked,
        "messages_unacknowledged_details": rate(depth_rates[2]),
        "consumers": d.consumers,
        "message_bytes": d.message_bytes(),
        "message_bytes_ready": d.message_bytes_ready,
        "message_bytes_unacknowledged": d.message_bytes_unacknowledged,
        "memory": QUEUE_BASE_MEMORY + d.messages() * MESSAGE_OVERHEAD + d.message_bytes(),
    });
    put_opt(&mut j, "message_stats", message_stats(&q.message_stats()));
    // A replicated queue (quorum): its type, leader, members, online.
    if let Some(b) = q.backend() {
        j["type"] = json!(b.kind());
        if let Value::Object(o) = &mut j {
            o.extend(b.info(q));
        }
    }
    if let Some(p) = v.queue_policy(&name) {
        j["policy"] = json!(p.name);
        j["effective_policy_definition"] = Value::Object(p.definition);
    }
    j
}

fn listing(c: &Caller, only: Option<&str>, p: &Params) -> ApiResult<Response> {
    // Sorted handles first; JSON only for what the answer shows (a page of
    // 100,000 queues builds 100 objects).
    let vhosts = visible_vhosts(c, only)?;
    let mut items = Vec::new();
    for v in &vhosts {
        let mut qs = v.listed_queues();
        qs.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        items.extend(qs.into_iter().map(|q| (v, q)));
    }
    let by_name = vhosts.len() <= 1;
    Ok(ok(p.list.apply_with(items, by_name, |(v, q)| {
        queue_json(&c.http.node, v, q)
    })?))
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    listing(&c, None, &p)
}

pub async fn list_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    listing(&c, Some(&vhost), &p)
}

fn find(v: &VHost, name: &str) -> ApiResult<std::sync::Arc<Queue>> {
    v.named_queue(name.as_bytes())
        .ok_or_else(ApiError::object_not_found)
}

pub async fn show(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    let v = c.read_vhost(&vhost)?;
    let q = find(&v, &name)?;
    let mut j = queue_json(&c.http.node, &v, &q);
    j["consumer_details"] = Value::Array(super::consumers::of_queue(&c, &v, &q));
    Ok(ok(p.list.project_single(j)))
}

pub async fn put(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    check_name("queue", &name)?;
    let v = c.write_vhost(&vhost)?;
    let opts = QueueOptions {
        durable: body.bool("durable", false)?,
        exclusive: false,
        auto_delete: body.bool("auto_delete", false)?,
        arguments: body.arguments()?,
    };
    if name.is_empty() {
        return Err(ApiError::bad_request("queue name must not be empty"));
    }
    for (access, res, n) in queue_declare_needs(name.as_bytes(), &opts.arguments) {
        c.check(&vhost, access, res, n)?;
    }
    let existed = v.named_queue(name.as_bytes()).is_some();
    if c.http.broker.replicator().is_some() && warren_core::queue::is_quorum(&opts.arguments) {
        warren_core::queue::check_quorum_declare(
            &name,
            &vhost,
            opts.durable,
            false,
            opts.auto_delete,
            &opts.arguments,
        )?;
    }
    if !existed {
        super::replicate::replicate(&c, |node| {
            warren_core::meta::MetaOp::declare_queue(&vhost, &name, &opts, node)
        })
        .await?;
    }
    let conn = c.http.broker.next_connection_id();
    // On a cluster member the replicated change made it already: what
    // counts is whether it existed before this request.
    let (_, was_created) =
        v.declare_queue(Some(ShortStr::from(name.as_str())), opts, false, conn)?;
    Ok(created(was_created || !existed))
}

pub async fn delete(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    let v = c.write_vhost(&vhost)?;
    let q = find(&v, &name)?;
    c.check(&vhost, Access::Configure, Resource::Queue, name.as_bytes())?;
    // Exclusive queues belong to their connection; management may delete
    // them anyway, as RabbitMQ's can.
    let owner = q.owner.unwrap_or(0);
    let (if_unused, if_empty) = (p.query.flag("if-unused"), p.query.flag("if-empty"));
    let refused = (if_unused && q.consumer_count() > 0) || (if_empty && q.message_count() > 0);
    if !q.options.exclusive && !refused {
        super::replicate::replicate(&c, |_| warren_core::meta::MetaOp::DeleteQueue {
            vhost: vhost.clone(),
            name: name.clone(),
        })
        .await?;
    }
    v.delete_queue(
        &q.name,
        p.query.flag("if-unused"),
        p.query.flag("if-empty"),
        owner,
    )?;
    Ok(no_content())
}

pub async fn bindings(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    let v = c.read_vhost(&vhost)?;
    find(&v, &name)?;
    bindings_response(&v, &p, |b| {
        b.destination_type == "queue" && b.destination == name
    })
}

pub async fn purge(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
) -> ApiResult<Response> {
    let v = c.write_vhost(&vhost)?;
    let q = find(&v, &name)?;
    c.check(&vhost, Access::Read, Resource::Queue, name.as_bytes())?;
    q.purge();
    Ok(no_content())
}

/// `{"count": N, "ackmode": "ack_requeue_true"|"ack_requeue_false"|
/// "reject_requeue_true"|"reject_requeue_false", "encoding": "auto"|"base64",
/// "truncate": BYTES}`: take up to N messages, then requeue, ack or reject
/// (dead-letter) them all, as RabbitMQ's basic.get loop does.
pub async fn get_messages(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let v = c.write_vhost(&vhost)?;
    let count = match body.get("count") {
        None => return Err(ApiError::key_missing("count")),
        Some(Value::Number(n)) => n.as_u64().ok_or(n.to_string()),
        Some(Value::String(s)) => s.parse().map_err(|_| s.clone()),
        Some(other) => Err(other.to_string()),
    }
    .map_err(|v| ApiError::bad_request_term(serde_json::json!(["not_integer", v])))?;
    let ackmode = body.required_str("ackmode")?;
    let requeue = match ackmode {
        "ack_requeue_true" | "reject_requeue_true" => true,
        "ack_requeue_false" | "reject_requeue_false" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid ackmode '{}'",
                other
            )))
        }
    };
    let encoding = body.required_str("encoding")?;
    if encoding != "auto" && encoding != "base64" {
        return Err(ApiError::bad_request(format!(
            "invalid encoding '{}'",
            encoding
        )));
    }
    let truncate = match body.get("truncate") {
        None => None,
        Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
        Some(Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    };
    let q = find(&v, &name)?;
    c.check(&vhost, Access::Read, Resource::Queue, name.as_bytes())?;
    let mut taken = Vec::new();
    let mut out = Vec::new();
    for _ in 0..count.min(100_000) {
        let Some((m, remaining)) = q.get(false) else {
            break;
        };
        let msg = &m.message;
        let body = &msg.body;
        let shown = &body[..truncate.map_or(body.len(), |t| t.min(body.len()))];
        let (payload, enc) = match (encoding, std::str::from_utf8(shown)) {
            ("auto", Ok(s)) => (s.to_string(), "string"),
            _ => (
                base64::engine::general_purpose::STANDARD.encode(shown),
                "base64",
            ),
        };
        out.push(json!({
            "payload_bytes": body.len(),
            "redelivered": m.redelivered,
            "exchange": msg.exchange.to_string_lossy(),
            "routing_key": msg.routing_key.to_string_lossy(),
            "message_count": remaining,
            "properties": crate::props::to_json(&msg.decode_properties()),
            "payload": payload,
            "payload_encoding": enc,
        }));
        taken.push(m);
    }
    if requeue {
        q.requeue(taken);
    } else if ackmode == "reject_requeue_false" {
        q.reject(taken);
    } else {
        q.settle(&taken);
    }
    Ok(ok(Value::Array(out)))
}
