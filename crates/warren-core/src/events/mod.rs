//! The event exchange (`amq.rabbitmq.event`), as RabbitMQ's
//! `rabbitmq_event_exchange` plugin: broker events (queue, exchange, binding,
//! consumer created/deleted) are published as messages whose routing key is the
//! event name and whose headers describe it, so operators can watch the broker
//! over the broker (the control bus pattern).
//!
//! Events are only built when the event exchange has bindings, so an unwatched
//! broker pays one read of a binding count per event. The user who performed the
//! action comes from the protocol adapter through [`set_actor`]: a thread-local
//! set around the handling of one frame, because the core's operations don't take
//! a user parameter and frame handling never awaits.
//!
//! connection.created / connection.closed are the connection registry's
//! ([`connection`]), so every protocol's connections produce them.

mod connection;

pub use connection::connection_pid;
pub(crate) use connection::{connection_closed, connection_created};

use crate::message::Message;
use crate::properties::BasicProperties;
use crate::queue::now_ms;
use crate::shortstr::ShortStr;
use crate::table::{FieldTable, FieldValue};
use crate::vhost::VHost;
use std::cell::RefCell;

pub const EVENT_EXCHANGE: &str = "amq.rabbitmq.event";

thread_local! {
    static ACTOR: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Set (or clear) the user on whose behalf the current thread acts.
pub fn set_actor(user: Option<&str>) {
    ACTOR.with(|a| *a.borrow_mut() = user.map(str::to_string));
}

fn actor() -> String {
    ACTOR
        .with(|a| a.borrow().clone())
        .unwrap_or_else(|| "rmq-internal".into())
}

/// Whether anyone listens (the event exchange has bindings).
pub fn watched(vhost: &VHost) -> bool {
    vhost
        .exchange(EVENT_EXCHANGE.as_bytes())
        .is_some_and(|e| e.has_bindings())
}

/// Publish event `key` with `headers`; `vhost` and `user_who_performed_action`
/// are added (RabbitMQ leaves them out of a few events: see [`emit_with`]).
pub fn emit(vhost: &VHost, key: &str, headers: FieldTable) {
    emit_with(vhost, key, headers, true, true);
}

/// [`emit`], choosing whether the vhost and acting user are added.
pub fn emit_with(vhost: &VHost, key: &str, headers: FieldTable, add_vhost: bool, add_actor: bool) {
    // (Checked first: an unwatched broker does not even read the actor.)
    if !watched(vhost) {
        return;
    }
    let user = add_actor.then(actor);
    emit_as(vhost, key, headers, add_vhost, user.as_deref());
}

/// [`emit_with`], naming the acting user (`None`: no
/// `user_who_performed_action` header).
pub(crate) fn emit_as(
    vhost: &VHost,
    key: &str,
    mut headers: FieldTable,
    add_vhost: bool,
    actor: Option<&str>,
) {
    let Some(exchange) = vhost.exchange(EVENT_EXCHANGE.as_bytes()) else {
        return;
    };
    if !exchange.has_bindings() {
        return;
    }
    let now = now_ms();
    if add_vhost && headers.get("vhost").is_none() {
        headers.insert("vhost", FieldValue::LongStr(vhost.name.0.clone()));
    }
    if let Some(user) = actor {
        headers.insert("user_who_performed_action", FieldValue::string(user));
    }
    headers.insert("timestamp_in_ms", FieldValue::I64(now as i64));
    let props = BasicProperties {
        delivery_mode: Some(2),
        timestamp: Some(now / 1000),
        headers: Some(headers),
        ..Default::default()
    };
    let msg = Message::new(
        ShortStr::from_static(EVENT_EXCHANGE),
        ShortStr::from(key),
        props.encode(),
        bytes::Bytes::new(),
    );
    let mut out = Vec::new();
    vhost.publish(&exchange, msg, &mut out);
}

/// Arguments as RabbitMQ's events show them: Erlang terms such as
/// `{<<"x-message-ttl">>,signedint,1000}`.
pub fn erlang_args(args: &FieldTable, sorted: bool) -> FieldValue {
    let mut items: Vec<(String, String)> = args
        .iter()
        .map(|(k, v)| {
            (
                k.to_string(),
                format!("{{<<\"{}\">>,{}}}", k, erlang_value(v)),
            )
        })
        .collect();
    if sorted {
        items.sort();
    }
    FieldValue::Array(
        items
            .into_iter()
            .map(|(_, s)| FieldValue::string(s))
            .collect(),
    )
}

fn erlang_value(v: &FieldValue) -> String {
    match v {
        FieldValue::Bool(b) => format!("bool,{}", b),
        FieldValue::I8(n) => format!("byte,{}", n),
        FieldValue::U8(n) => format!("unsignedbyte,{}", n),
        FieldValue::I16(n) => format!("short,{}", n),
        FieldValue::U16(n) => format!("unsignedshort,{}", n),
        FieldValue::I32(n) => format!("signedint,{}", n),
        FieldValue::U32(n) => format!("unsignedint,{}", n),
        FieldValue::I64(n) => format!("long,{}", n),
        FieldValue::F32(n) => format!("float,{}", n),
        FieldValue::F64(n) => format!("double,{}", n),
        FieldValue::Decimal(s, n) => format!("decimal,{{{},{}}}", s, n),
        FieldValue::LongStr(b) => format!("longstr,<<\"{}\">>", String::from_utf8_lossy(b)),
        FieldValue::Bytes(b) => format!("binary,<<\"{}\">>", String::from_utf8_lossy(b)),
        FieldValue::Timestamp(t) => format!("timestamp,{}", t),
        FieldValue::Void => "void,undefined".into(),
        FieldValue::Array(_) => "array,[...]".into(),
        FieldValue::Table(_) => "table,[...]".into(),
    }
}

/// Helpers to build header tables tersely.
pub fn s(v: impl AsRef<[u8]>) -> FieldValue {
    FieldValue::string(v)
}
