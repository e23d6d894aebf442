//! channel.* events for the event exchange, with the headers RabbitMQ's event
//! exchange plugin sets. (connection.* events are the core's connection
//! registry's, for every protocol.)

use warren_core::events::{connection_pid, emit_with, s, watched};
use warren_core::{FieldTable, FieldValue, VHost};

pub fn channel_pid(conn: u64, ch: u16) -> String {
    format!("<warren.{}.{}>", conn, ch)
}

pub fn channel_created(vhost: &VHost, conn: u64, conn_name: &str, user: &str, ch: u16) {
    if !watched(vhost) {
        return;
    }
    let mut h = FieldTable::new();
    h.insert("connection", s(connection_pid(conn)));
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
