//! `/api/exchanges[/VHOST[/NAME]]`: list, show, PUT (declare), DELETE
//! (`if-unused`), the exchange's bindings as source or destination, and
//! `POST .../publish` (answers `{"routed": bool}`). The default exchange is
//! `amq.default` in URLs, as in RabbitMQ.

use super::{bindings_response, created, no_content, ok, put_opt, stats_object, visible_vhosts};
use crate::auth::Caller;
use crate::body::{check_name, exchange_name, Body, Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use serde_json::{json, Value};
use warren_core::permissions::{exchange_declare_needs, Access, Resource};
use warren_core::{Exchange, ExchangeKind, ExchangeOptions, Message, ShortStr, VHost};

pub fn exchange_json(v: &VHost, e: &Exchange) -> Value {
    let name = e.name.to_string_lossy();
    let mut j = json!({
        "name": name,
        "vhost": v.name.to_string_lossy(),
        "type": e.options.kind.as_str(),
        "durable": e.options.durable,
        "auto_delete": e.options.auto_delete,
        "internal": e.options.internal,
        "arguments": warren_core::json::table_to_json(&e.options.arguments),
        "user_who_performed_action": "",
    });
    put_opt(&mut j, "message_stats", stats_object(&e.message_stats()));
    if let Some(p) = v.exchange_policy(&name) {
        j["policy"] = json!(p.name);
    }
    j
}

fn listing(c: &Caller, only: Option<&str>, p: &Params) -> ApiResult<Response> {
    let mut items = Vec::new();
    for v in visible_vhosts(c, only)? {
        let mut es = v.exchanges();
        es.sort_by(|a, b| a.name.as_bytes().cmp(b.name.as_bytes()));
        items.extend(es.iter().map(|e| exchange_json(&v, e)));
    }
    Ok(ok(p.list.apply(items)?))
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    listing(&c, None, &p)
}

pub async fn list_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    listing(&c, Some(&vhost), &p)
}

pub async fn show(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    let v = c.read_vhost(&vhost)?;
    let e = v
        .exchange(exchange_name(&name).as_bytes())
        .ok_or_else(ApiError::object_not_found)?;
    Ok(ok(p.list.project_single(exchange_json(&v, &e))))
}

pub async fn put(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    check_name("exchange", &name)?;
    let v = c.write_vhost(&vhost)?;
    let name = exchange_name(&name);
    let kind = body.str("type")?.unwrap_or("direct");
    let opts = ExchangeOptions {
        kind: ExchangeKind::parse(kind.as_bytes())
            .ok_or_else(|| ApiError::bad_request(format!("invalid exchange type '{}'", kind)))?,
        durable: body.bool("durable", false)?,
        auto_delete: body.bool("auto_delete", false)?,
        internal: body.bool("internal", false)?,
        arguments: body.arguments()?,
    };
    for (access, res, n) in exchange_declare_needs(name.as_bytes(), &opts.arguments) {
        c.check(&vhost, access, res, n)?;
    }
    let existed = v.exchange(name.as_bytes()).is_some();
    if !existed && !name.starts_with("amq.") {
        super::replicate::replicate(&c, |_| {
            warren_core::meta::MetaOp::declare_exchange(&vhost, name, &opts)
        })
        .await?;
    }
    v.declare_exchange(ShortStr::from(name), opts, false)?;
    Ok(created(!existed))
}

pub async fn delete(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    super::replicate::sync(&c).await?;
    let v = c.write_vhost(&vhost)?;
    let name = exchange_name(&name);
    if v.exchange(name.as_bytes()).is_none() {
        return Err(ApiError::object_not_found());
    }
    let name = ShortStr::from(name);
    v.check_exchange_deletable(&name)?;
    c.check(
        &vhost,
        Access::Configure,
        Resource::Exchange,
        name.as_bytes(),
    )?;
    let in_use = v
        .exchange(name.as_bytes())
        .is_some_and(|e| e.has_bindings());
    if !(p.query.flag("if-unused") && in_use) {
        super::replicate::replicate(&c, |_| warren_core::meta::MetaOp::DeleteExchange {
            vhost: vhost.clone(),
            name: name.to_string_lossy().into_owned(),
        })
        .await?;
    }
    v.delete_exchange(&name, p.query.flag("if-unused"))?;
    Ok(no_content())
}

fn bindings_where(
    c: &Caller,
    vhost: &str,
    name: &str,
    p: &Params,
    keep: impl Fn(&super::BindingRow, &str) -> bool,
) -> ApiResult<Response> {
    let v = c.read_vhost(vhost)?;
    let name = exchange_name(name);
    if v.exchange(name.as_bytes()).is_none() {
        return Err(ApiError::object_not_found());
    }
    bindings_response(&v, p, |b| keep(b, name))
}

pub async fn bindings_source(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    bindings_where(&c, &vhost, &name, &p, |b, n| b.source == n)
}

pub async fn bindings_destination(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    p: Params,
) -> ApiResult<Response> {
    bindings_where(&c, &vhost, &name, &p, |b, n| {
        b.destination_type == "exchange" && b.destination == n
    })
}

/// `{"properties": {...}, "routing_key": "...", "payload": "...",
/// "payload_encoding": "string"|"base64"}` → `{"routed": bool}`.
pub async fn publish(
    c: Caller,
    Names((vhost, name)): Names<(String, String)>,
    body: Body,
) -> ApiResult<Response> {
    let v = c.write_vhost(&vhost)?;
    let name = exchange_name(&name).to_string();
    let routing_key = body.required_str("routing_key")?.to_string();
    let payload = match body.get("payload") {
        None => return Err(ApiError::key_missing("payload")),
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(ApiError::bad_request("payload_not_string")),
    };
    let encoding = body.required_str("payload_encoding")?;
    let props = body
        .get("properties")
        .ok_or_else(|| ApiError::key_missing("properties"))?;
    let props = crate::props::from_json(props)?;
    let payload = match encoding {
        "string" => Bytes::copy_from_slice(payload.as_bytes()),
        "base64" => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(payload)
                .map_err(|_| ApiError::bad_request("invalid base64 payload"))?,
        ),
        other => {
            return Err(ApiError::bad_request_term(serde_json::json!([
                "unsupported_encoding",
                other
            ])))
        }
    };
    check_name("routing_key", &routing_key)?;
    // As RabbitMQ (which publishes on an internal channel), failures of the
    // publish itself are 400s carrying the AMQP error.
    let amqp = |e: warren_core::BrokerError| {
        ApiError::bad_request(format!("{} {}", e.code, e.reply_text()))
    };
    c.check(&vhost, Access::Write, Resource::Exchange, name.as_bytes())?;
    let e = v
        .get_exchange(&ShortStr::from(name.as_str()))
        .map_err(amqp)?;
    v.check_publishable(&e).map_err(amqp)?;
    // RabbitMQ refuses it on its internal channel: a 400 carrying the 403.
    c.http
        .broker
        .check_topic(
            &c.user.name,
            &vhost,
            Access::Write,
            &e,
            routing_key.as_bytes(),
        )
        .map_err(amqp)?;
    warren_core::message::check_publish_properties(&props, &c.user.name).map_err(amqp)?;
    if payload.len() as u64 > c.http.broker.limits.max_message_size {
        return Err(ApiError::bad_request("message too large"));
    }
    let msg = Message::new(
        ShortStr::from(name.as_str()),
        ShortStr::from(routing_key.as_str()),
        props.encode(),
        payload,
    );
    let published = v.publish(&e, msg, &mut Vec::new());
    Ok(ok(json!({"routed": published.routed})))
}
