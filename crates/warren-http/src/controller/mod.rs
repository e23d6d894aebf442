//! One controller per resource, as LavinMQ's `http/controller/`. Shared
//! helpers (visible vhosts, binding rendering and `properties_key`) live here.
//!
//! Figures read from the core's counters (`warren_core::stats`) are printed
//! by [`figures`], [`message_stats`] and [`rate`], as RabbitMQ prints them:
//! `"publish": N, "publish_details": {"rate": R}`.

pub mod aliveness;
pub mod bindings;
pub mod channels;
pub mod connections;
pub mod consumers;
pub mod definitions;
pub mod exchanges;
pub mod health;
pub mod limits;
pub mod nodes;
pub mod operator_policies;
pub mod overview;
pub mod parameters;
pub mod permissions;
pub mod policies;
pub mod queue_members;
pub mod queues;
pub mod replicate;
pub mod topic_permissions;
pub mod topology;
pub mod users;
pub mod vhosts;
pub mod whoami;

use crate::auth::Caller;
use crate::error::ApiResult;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;
use std::sync::Arc;
use warren_core::exchange::Destination;
use warren_core::stats::{Field, MessageSnapshot, PublishSnapshot, Snapshot};
use warren_core::{FieldTable, VHost};

/// A rate as RabbitMQ prints it (`{"rate": R}`), rounded to 0.01/s: the
/// sampler keeps rates as `f32`, whose noise (0.6000000238) is not a figure.
pub fn rate(r: f64) -> Value {
    serde_json::json!({ "rate": (r * 100.0).round() / 100.0 })
}

/// `"name": count, "name_details": {"rate": r}` for every field of `snap`
/// into `out`.
pub fn figures<F: Field, const N: usize>(
    out: &mut serde_json::Map<String, Value>,
    snap: &Snapshot<F, N>,
) {
    for (name, count, r) in snap.iter() {
        out.insert(name.into(), Value::from(count));
        out.insert(format!("{}_details", name), rate(r));
    }
}

/// An object's `message_stats` object, or None when nothing was ever
/// counted (RabbitMQ leaves `message_stats` out of an object without
/// activity). Message figures get RabbitMQ's derived `deliver_get`.
pub fn stats_object<F: Field, const N: usize>(snap: &Snapshot<F, N>) -> Option<Value> {
    if snap.iter().all(|(_, count, _)| count == 0) {
        return None;
    }
    let mut m = serde_json::Map::new();
    figures(&mut m, snap);
    Some(Value::Object(m))
}

/// A queue's `message_stats` (with `deliver_get`), None without activity.
pub fn message_stats(snap: &MessageSnapshot) -> Option<Value> {
    let mut v = stats_object(snap)?;
    if let Value::Object(m) = &mut v {
        m.insert("deliver_get".into(), Value::from(snap.deliver_get()));
        m.insert("deliver_get_details".into(), rate(snap.deliver_get_rate()));
    }
    Some(v)
}

/// A channel's, vhost's or the broker's `message_stats`: the message
/// figures and the publishing ones (`confirm`, `return_unroutable`,
/// `drop_unroutable`), None when neither counted anything.
pub fn channel_stats(snap: &MessageSnapshot, publishing: &PublishSnapshot) -> Option<Value> {
    let quiet = |s: &MessageSnapshot| s.iter().all(|(_, n, _)| n == 0);
    if quiet(snap) && publishing.iter().all(|(_, n, _)| n == 0) {
        return None;
    }
    let mut m = serde_json::Map::new();
    figures(&mut m, snap);
    m.insert("deliver_get".into(), Value::from(snap.deliver_get()));
    m.insert("deliver_get_details".into(), rate(snap.deliver_get_rate()));
    figures(&mut m, publishing);
    Some(Value::Object(m))
}

/// Set `j[key]` to `v` when there is one.
pub fn put_opt(j: &mut Value, key: &str, v: Option<Value>) {
    if let (Value::Object(o), Some(v)) = (j, v) {
        o.insert(key.into(), v);
    }
}

/// The vhosts the caller may see, sorted by name (all of them, or only
/// `only` with the caller's read checks).
pub fn visible_vhosts(c: &Caller, only: Option<&str>) -> ApiResult<Vec<Arc<VHost>>> {
    if let Some(v) = only {
        return Ok(vec![c.read_vhost(v)?]);
    }
    let mut all: Vec<Arc<VHost>> = c
        .http
        .broker
        .vhosts()
        .into_iter()
        .filter(|v| c.sees_vhost(&v.name.to_string_lossy()))
        .collect();
    all.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    Ok(all)
}

/// A JSON answer with 200.
pub fn ok(v: Value) -> Response {
    axum::Json(v).into_response()
}

/// 201 Created (new) or 204 No Content (already there), as RabbitMQ's PUTs.
pub fn created(was_created: bool) -> Response {
    if was_created {
        StatusCode::CREATED.into_response()
    } else {
        StatusCode::NO_CONTENT.into_response()
    }
}

pub fn no_content() -> Response {
    StatusCode::NO_CONTENT.into_response()
}

/// One binding (source → destination) with its `properties_key`.
#[derive(Debug, Clone)]
pub struct BindingRow {
    pub vhost: String,
    pub source: String,
    pub destination: String,
    /// "queue" or "exchange".
    pub destination_type: &'static str,
    pub routing_key: String,
    pub arguments: FieldTable,
}

impl BindingRow {
    pub fn json(&self) -> Value {
        let mut v = warren_core::export::binding_json(
            &self.vhost,
            &self.source,
            self.destination_type,
            &self.destination,
            &self.routing_key,
            &self.arguments,
            true,
        );
        if let Value::Object(o) = &mut v {
            o.insert(
                "properties_key".into(),
                Value::String(props_key(&self.routing_key, &self.arguments)),
            );
        }
        v
    }
}

/// The response listing the bindings of `v` that `keep` selects (paged,
/// sorted and filtered as the request asks): what the per-exchange and
/// per-queue binding endpoints answer.
pub fn bindings_response(
    v: &VHost,
    p: &crate::body::Params,
    keep: impl Fn(&BindingRow) -> bool,
) -> ApiResult<Response> {
    let items = vhost_bindings(v)
        .iter()
        .filter(|b| keep(b))
        .map(BindingRow::json)
        .collect();
    Ok(ok(p.list.apply(items)?))
}

/// Every binding of a vhost, the default exchange's implicit ones (each
/// queue bound by its name) first, as RabbitMQ lists them.
pub fn vhost_bindings(v: &VHost) -> Vec<BindingRow> {
    let vname = v.name.to_string_lossy().into_owned();
    let mut queues = v.listed_queues();
    queues.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut rows: Vec<BindingRow> = queues
        .iter()
        .map(|q| BindingRow {
            vhost: vname.clone(),
            source: String::new(),
            destination: q.name.to_string_lossy().into_owned(),
            destination_type: "queue",
            routing_key: q.name.to_string_lossy().into_owned(),
            arguments: FieldTable::new(),
        })
        .collect();
    let mut exchanges = v.exchanges();
    exchanges.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
    let mut explicit = Vec::new();
    for e in exchanges.iter().filter(|e| !e.name.is_empty()) {
        for b in e.bindings() {
            let (t, d) = match &b.destination {
                Destination::Queue(q) => ("queue", q.name.to_string_lossy().into_owned()),
                Destination::Exchange(x) => ("exchange", x.name.to_string_lossy().into_owned()),
            };
            explicit.push(BindingRow {
                vhost: vname.clone(),
                source: e.name.to_string_lossy().into_owned(),
                destination: d,
                destination_type: t,
                routing_key: b.routing_key.to_string_lossy().into_owned(),
                arguments: b.arguments,
            });
        }
    }
    explicit.sort_by(|a, b| {
        (
            &a.source,
            a.destination_type,
            &a.destination,
            &a.routing_key,
        )
            .cmp(&(
                &b.source,
                b.destination_type,
                &b.destination,
                &b.routing_key,
            ))
    });
    rows.extend(explicit);
    rows
}

/// RabbitMQ's `quote_plus` of a binding key part, with `~` escaped too
/// (it separates the key from the arguments' hash).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => out.push(b as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{:02X}", b)),
        }
    }
    out
}

/// A binding's `properties_key`: the quoted routing key, `~` for an empty key
/// without arguments, and with arguments `KEY~HASH`. RabbitMQ's hash is
/// Erlang's `phash2` of the arguments term; Warren's is a 32-bit FNV-1a of
/// the arguments' AMQP encoding, base64url as RabbitMQ's. Clients take the
/// key from listings, so only its stability matters.
pub fn props_key(routing_key: &str, args: &FieldTable) -> String {
    if args.is_empty() {
        if routing_key.is_empty() {
            return "~".into();
        }
        return quote(routing_key);
    }
    let mut enc = Vec::new();
    args.encode(&mut enc);
    let mut h: u32 = 0x811c_9dc5;
    for b in enc {
        h ^= b as u32;
        h = h.wrapping_mul(0x0100_0193);
    }
    format!(
        "{}~{}",
        quote(routing_key),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(h.to_be_bytes())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_keys_are_rabbitmqs_for_plain_keys() {
        assert_eq!(props_key("", &FieldTable::new()), "~");
        assert_eq!(props_key("k", &FieldTable::new()), "k");
        assert_eq!(props_key("a b~c/d", &FieldTable::new()), "a+b%7Ec%2Fd");
        let mut t = FieldTable::new();
        t.insert("a", warren_core::FieldValue::I64(1));
        let k = props_key("k", &t);
        assert!(k.starts_with("k~") && k.len() == 8, "{}", k);
    }
}
