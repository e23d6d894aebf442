//! connection.* and channel.* events for the event exchange, with the headers
//! RabbitMQ's event exchange plugin sets.

use warren_core::events::{emit_with, erlang_args, s, watched};
use warren_core::{FieldTable, FieldValue, VHost};

/// What a connection.created / closed event says about the connection.
pub struct ConnInfo<'a> {
    pub id: u64,
    pub name: &'a str,
    pub user: &'a str,
    pub mechanism: &'a str,
    pub client_properties: &'a FieldTable,
    pub peer: std::net::SocketAddr,
    pub local_port: u16,
    pub channel_max: u16,
    pub frame_max: u32,
    pub heartbeat: u16,
    pub connected_at: u64,
}

fn pid(id: u64) -> String {
    format!("<warren.{}.0>", id)
}

pub fn channel_pid(conn: u64, ch: u16) -> String {
    format!("<warren.{}.{}>", conn, ch)
}

fn user_provided_name(props: &FieldTable) -> FieldValue {
    match props.get("connection_name") {
        Some(FieldValue::LongStr(b)) => FieldValue::LongStr(b.clone()),
        _ => s(""),
    }
}

pub fn connection_created(vhost: &VHost, c: &ConnInfo<'_>) {
    if !watched(vhost) {
        return;
    }
    let mut h = FieldTable::new();
    h.insert("auth_mechanism", s(c.mechanism));
    h.insert("channel_max", FieldValue::I64(c.channel_max as i64));
    h.insert("client_properties", erlang_args(c.client_properties, false));
    h.insert("connected_at", FieldValue::I64(c.connected_at as i64));
    h.insert("frame_max", FieldValue::I64(c.frame_max as i64));
    h.insert("host", s("127.0.0.1"));
    h.insert("name", s(c.name));
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
    h.insert("pid", s(pid(c.id)));
    h.insert("port", FieldValue::I64(c.local_port as i64));
    h.insert("protocol", s("{0,9,1}"));
    h.insert("ssl", FieldValue::Bool(false));
    for k in ["ssl_cipher", "ssl_hash", "ssl_key_exchange", "ssl_protocol"] {
        h.insert(k, s(""));
    }
    h.insert("timeout", FieldValue::I64(c.heartbeat as i64));
    h.insert("type", s("network"));
    h.insert("user", s(c.user));
    h.insert(
        "user_provided_name",
        user_provided_name(c.client_properties),
    );
    h.insert("vhost", FieldValue::LongStr(vhost.name.0.clone()));
    emit_with(vhost, "connection.created", h, true, true);
}

pub fn connection_closed(vhost: &VHost, c: &ConnInfo<'_>) {
    if !watched(vhost) {
        return;
    }
    let mut h = FieldTable::new();
    h.insert("client_properties", erlang_args(c.client_properties, false));
    h.insert("name", s(c.name));
    h.insert("node", s("warren@localhost"));
    h.insert("pid", s(pid(c.id)));
    h.insert(
        "user_provided_name",
        user_provided_name(c.client_properties),
    );
    emit_with(vhost, "connection.closed", h, false, false);
}

pub fn channel_created(vhost: &VHost, conn: u64, conn_name: &str, user: &str, ch: u16) {
    if !watched(vhost) {
        return;
    }
    let mut h = FieldTable::new();
    h.insert("connection", s(pid(conn)));
    h.insert("name", s(format!("{} ({})", conn_name, ch)));
    h.insert("number", FieldValue::I64(ch as i64));
    h.insert("pid", s(channel_pid(conn, ch)));
    h.insert("user", s(user));
    emit_with(vhost, "channel.created", h, true, true);
}

pub fn channel_closed(vhost: &VHost, conn: u64, ch: u16) {
    if !watched(vhost) {
        return;
    }
    let mut h = FieldTable::new();
    h.insert("pid", s(channel_pid(conn, ch)));
    emit_with(vhost, "channel.closed", h, false, true);
}
