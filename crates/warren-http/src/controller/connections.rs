//! `/api/connections[/NAME]` (GET; DELETE closes it with 320
//! CONNECTION_FORCED, text "Closed via management plugin" or the `X-Reason`
//! header), `/api/vhosts/V/connections`, `/api/connections/NAME/channels`.
//!
//! Read from the core's connection registry (`broker.connections`): every
//! protocol's connections (AMQP, STOMP, Web-STOMP, SSE) with their client
//! properties, endpoints and `recv_oct`/`send_oct`... counters and rates.
//!
//! Visibility is RabbitMQ's: `monitoring` and `administrator` users see every
//! connection, other management users only their own (listings filter them
//! out; a single one answers 401 "User not authorised to access object").
//! Closing one takes `administrator` or being its user.

use super::channels::channel_json;
use super::{figures, ok};
use crate::auth::Caller;
use crate::body::{Names, Params};
use crate::error::{ApiError, ApiResult};
use axum::http::HeaderMap;
use axum::response::Response;
use serde_json::{json, Value};
use std::sync::Arc;
use warren_core::connections::{ConnectionInfo, CLOSED_VIA_MANAGEMENT};
use warren_core::error::BrokerError;
use warren_core::FieldValue;

/// One connection as RabbitMQ 3.10's `/api/connections` shows it (without
/// the Erlang process figures: `reductions`, `garbage_collection`).
pub fn connection_json(node: &str, c: &ConnectionInfo) -> Value {
    let mut j = json!({
        "name": c.name,
        "node": node,
        "vhost": c.vhost.name.to_string_lossy(),
        "user": c.user,
        "user_who_performed_action": c.user,
        "protocol": c.protocol,
        "type": c.kind,
        "state": "running",
        "host": c.local.ip().to_string(),
        "port": c.local.port(),
        "peer_host": c.peer.ip().to_string(),
        "peer_port": c.peer.port(),
        "connected_at": c.connected_at,
        "client_properties": warren_core::json::table_to_json(&c.client_properties),
        "channels": c.channel_list().len(),
        "channel_max": c.channel_max,
        "frame_max": c.frame_max,
        "timeout": c.heartbeat,
        "ssl": c.tls.is_some(),
        "send_pend": 0,
    });
    let o = j.as_object_mut().expect("object");
    if let Some(m) = &c.auth_mechanism {
        o.insert("auth_mechanism".into(), json!(m));
    }
    if let Some(tls) = &c.tls {
        // RabbitMQ's names and Erlang's spellings ("tlsv1.3", "aes_256_gcm").
        let cert = tls.peer_cert.as_ref();
        o.insert("ssl_protocol".into(), json!(tls.protocol));
        o.insert("ssl_cipher".into(), json!(tls.cipher));
        o.insert("ssl_key_exchange".into(), json!(tls.key_exchange));
        o.insert("ssl_hash".into(), json!(tls.hash));
        o.insert("peer_cert_subject".into(), json!(cert.map(|c| &c.subject)));
        o.insert("peer_cert_issuer".into(), json!(cert.map(|c| &c.issuer)));
        o.insert(
            "peer_cert_validity".into(),
            json!(cert.map(|c| &c.validity)),
        );
    } else if c.kind == "network" {
        for k in [
            "peer_cert_issuer",
            "peer_cert_subject",
            "peer_cert_validity",
            "ssl_cipher",
            "ssl_hash",
            "ssl_key_exchange",
            "ssl_protocol",
        ] {
            o.insert(k.into(), Value::Null);
        }
    }
    if let Some(FieldValue::LongStr(name)) = c.client_properties.get("connection_name") {
        o.insert(
            "user_provided_name".into(),
            json!(String::from_utf8_lossy(name)),
        );
    }
    figures(o, &c.stats.snapshot());
    // RabbitMQ prints rates for the octet counts only.
    o.remove("recv_cnt_details");
    o.remove("send_cnt_details");
    j
}

/// Whether the caller may see objects of `user`'s connections.
pub fn sees_user(c: &Caller, user: &str) -> bool {
    c.is_monitor() || c.user.name == user
}

/// The connections the caller may see (all of `vhost`'s if given), in the
/// order they were opened.
pub fn visible(c: &Caller, vhost: Option<&str>) -> Vec<Arc<ConnectionInfo>> {
    c.http
        .broker
        .connections
        .list()
        .into_iter()
        .filter(|x| sees_user(c, &x.user))
        .filter(|x| vhost.is_none_or(|v| x.vhost.name.as_bytes() == v.as_bytes()))
        .collect()
}

pub async fn list(c: Caller, p: Params) -> ApiResult<Response> {
    let items = visible(&c, None)
        .iter()
        .map(|x| connection_json(&c.http.node, x))
        .collect();
    Ok(ok(p.list.apply(items)?))
}

pub async fn list_vhost(c: Caller, Names(vhost): Names<String>, p: Params) -> ApiResult<Response> {
    c.read_vhost(&vhost)?;
    let items = visible(&c, Some(&vhost))
        .iter()
        .map(|x| connection_json(&c.http.node, x))
        .collect();
    Ok(ok(p.list.apply(items)?))
}

/// The connection called `name`: 404 if none, 401 if the caller may not
/// see it (`admin_only`: may not close it).
fn find(c: &Caller, name: &str, admin_only: bool) -> ApiResult<Arc<ConnectionInfo>> {
    let x = c
        .http
        .broker
        .connections
        .get_by_name(name)
        .ok_or_else(ApiError::object_not_found)?;
    let allowed = if admin_only {
        c.is_admin() || c.user.name == x.user
    } else {
        sees_user(c, &x.user)
    };
    if !allowed {
        return Err(ApiError::not_authorised(
            "User not authorised to access object",
        ));
    }
    Ok(x)
}

pub async fn show(c: Caller, Names(name): Names<String>, p: Params) -> ApiResult<Response> {
    let x = find(&c, &name, false)?;
    Ok(ok(p.list.project_single(connection_json(&c.http.node, &x))))
}

/// Closes the connection with 320 CONNECTION_FORCED and RabbitMQ's text, or
/// the `X-Reason` header's.
pub async fn delete(
    c: Caller,
    Names(name): Names<String>,
    headers: HeaderMap,
) -> ApiResult<Response> {
    find(&c, &name, true)?;
    let reason = headers
        .get("x-reason")
        .and_then(|v| v.to_str().ok())
        .filter(|r| !r.is_empty())
        .unwrap_or(CLOSED_VIA_MANAGEMENT);
    if !c
        .http
        .broker
        .connections
        .close_by_name(&name, BrokerError::connection_forced(reason.to_string()))
    {
        return Err(ApiError::object_not_found());
    }
    Ok(super::no_content())
}

pub async fn channels(c: Caller, Names(name): Names<String>, p: Params) -> ApiResult<Response> {
    let x = find(&c, &name, false)?;
    let items = x
        .channel_list()
        .iter()
        .map(|ch| channel_json(&c.http.node, &x, ch))
        .collect();
    Ok(ok(p.list.apply(items)?))
}
