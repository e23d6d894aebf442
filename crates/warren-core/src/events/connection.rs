//! connection.created / connection.closed, for every protocol: the core's
//! connection registry emits them when an adapter registers a connection
//! and when the registration is dropped, with the headers RabbitMQ's event
//! exchange plugin sets.

use super::{emit_as, erlang_args, s, watched};
use crate::connections::ConnectionInfo;
use crate::table::{FieldTable, FieldValue};

/// The Erlang-pid-like id events give a connection (`<warren.ID.0>`); its
/// channels are `<warren.ID.N>`.
pub fn connection_pid(id: u64) -> String {
    format!("<warren.{}.0>", id)
}

/// RabbitMQ's `user_provided_name`: the client's `connection_name` property.
fn user_provided_name(props: &FieldTable) -> FieldValue {
    match props.get("connection_name") {
        Some(FieldValue::LongStr(b)) => FieldValue::LongStr(b.clone()),
        _ => s(""),
    }
}

pub(crate) fn connection_created(c: &ConnectionInfo) {
    let vhost = &c.vhost;
    if !watched(vhost) {
        return;
    }
    let mut h = FieldTable::new();
    h.insert(
        "auth_mechanism",
        s(c.auth_mechanism.as_deref().unwrap_or("")),
    );
    h.insert("channel_max", FieldValue::I64(c.channel_max as i64));
    h.insert(
        "client_properties",
        erlang_args(&c.client_properties, false),
    );
    h.insert("connected_at", FieldValue::I64(c.connected_at as i64));
    h.insert("frame_max", FieldValue::I64(c.frame_max as i64));
    h.insert("host", s(c.local.ip().to_string()));
    h.insert("name", s(&c.name));
    h.insert("node", s("warren@localhost"));
    for k in [
        "peer_cert_issuer",
        "peer_cert_subject",
        "peer_cert_validity",
    ] {
        h.insert(k, s(""));
    }
    h.insert("peer_host", s(c.peer.ip().to_string()));
    h.insert("peer_port", FieldValue::I64(c.peer.port() as i64));
    h.insert("pid", s(connection_pid(c.id)));
    h.insert("port", FieldValue::I64(c.local.port() as i64));
    h.insert("protocol", s(c.protocol_term.as_bytes()));
    h.insert("ssl", FieldValue::Bool(c.tls.is_some()));
    for k in ["ssl_cipher", "ssl_hash", "ssl_key_exchange", "ssl_protocol"] {
        h.insert(k, s(""));
    }
    h.insert("timeout", FieldValue::I64(c.heartbeat as i64));
    h.insert("type", s(c.kind));
    h.insert("user", s(&c.user));
    h.insert(
        "user_provided_name",
        user_provided_name(&c.client_properties),
    );
    h.insert("vhost", FieldValue::LongStr(vhost.name.0.clone()));
    // The connecting user performed it.
    emit_as(vhost, "connection.created", h, true, Some(&c.user));
}

pub(crate) fn connection_closed(c: &ConnectionInfo) {
    let vhost = &c.vhost;
    if !watched(vhost) {
        return;
    }
    let mut h = FieldTable::new();
    h.insert(
        "client_properties",
        erlang_args(&c.client_properties, false),
    );
    h.insert("name", s(&c.name));
    h.insert("node", s("warren@localhost"));
    h.insert("pid", s(connection_pid(c.id)));
    h.insert(
        "user_provided_name",
        user_provided_name(&c.client_properties),
    );
    emit_as(vhost, "connection.closed", h, false, None);
}
