//! The firehose tracer (`amq.rabbitmq.trace`), as RabbitMQ's: with tracing on for
//! a vhost, every publish is copied to the trace exchange as
//! `publish.<exchange>` and every delivery as `deliver.<queue>`, with headers
//! saying who, where and how (the wire tap pattern).
//!
//! Deliveries happen under a queue's lock, where publishing (routing into other
//! queues) is not allowed, so delivery traces are collected in a thread-local
//! list and published by [`flush`] once the queue lock is released.

use crate::exchange::Exchange;
use crate::message::Message;
use crate::properties::BasicProperties;
use crate::queue::Queue;
use crate::shortstr::ShortStr;
use crate::table::{FieldTable, FieldValue};
use crate::vhost::VHost;
use std::cell::RefCell;
use std::sync::Arc;

pub const TRACE_EXCHANGE: &str = "amq.rabbitmq.trace";

/// Who published or consumed: the user, the connection's name
/// ("peer -> local") and the channel number.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub user: String,
    pub connection: String,
    pub channel: u16,
}

thread_local! {
    static ORIGIN: RefCell<Option<Origin>> = const { RefCell::new(None) };
    static DEFERRED: RefCell<Vec<(Arc<VHost>, Arc<Message>)>> = const { RefCell::new(Vec::new()) };
}

/// Set the origin of the publishes the current thread is about to make.
pub fn set_origin(origin: Option<Origin>) {
    ORIGIN.with(|o| *o.borrow_mut() = origin);
}

fn node() -> FieldValue {
    FieldValue::string("warren@localhost")
}

/// The message properties as a table with RabbitMQ's (pika-style) names.
fn properties_table(m: &Message) -> FieldTable {
    let p = BasicProperties::decode(&m.properties).unwrap_or_default();
    let mut t = FieldTable::new();
    let mut s = |k: &str, v: Option<ShortStr>| {
        if let Some(v) = v {
            t.insert(k, FieldValue::LongStr(v.0));
        }
    };
    s("content_type", p.content_type);
    s("content_encoding", p.content_encoding);
    s("correlation_id", p.correlation_id);
    s("reply_to", p.reply_to);
    s("expiration", p.expiration);
    s("message_id", p.message_id);
    s("type", p.kind);
    s("user_id", p.user_id);
    s("app_id", p.app_id);
    s("cluster_id", p.cluster_id);
    if let Some(h) = p.headers {
        t.insert("headers", FieldValue::Table(h));
    }
    if let Some(d) = p.delivery_mode {
        t.insert("delivery_mode", FieldValue::I32(d as i32));
    }
    if let Some(pr) = p.priority {
        t.insert("priority", FieldValue::I32(pr as i32));
    }
    if let Some(ts) = p.timestamp {
        t.insert("timestamp", FieldValue::I32(ts as i32));
    }
    t
}

fn strings(v: impl IntoIterator<Item = Vec<u8>>) -> FieldValue {
    FieldValue::Array(v.into_iter().map(FieldValue::string).collect())
}

fn common(vhost: &VHost, m: &Message, origin: &Origin, routing_keys: &[Vec<u8>]) -> FieldTable {
    let mut h = FieldTable::new();
    h.insert("channel", FieldValue::I32(origin.channel as i32));
    h.insert("connection", FieldValue::string(&origin.connection));
    h.insert("exchange_name", FieldValue::LongStr(m.exchange.0.clone()));
    h.insert("node", node());
    h.insert("properties", FieldValue::Table(properties_table(m)));
    h.insert("routing_keys", strings(routing_keys.iter().cloned()));
    h.insert("user", FieldValue::string(&origin.user));
    h.insert("vhost", FieldValue::LongStr(vhost.name.0.clone()));
    h
}

fn trace_message(key: String, headers: FieldTable, body: bytes::Bytes) -> Arc<Message> {
    let props = BasicProperties {
        headers: Some(headers),
        ..Default::default()
    };
    Message::new(
        ShortStr::from_static(TRACE_EXCHANGE),
        ShortStr::from(key),
        props.encode(),
        body,
    )
}

fn trace_exchange(vhost: &VHost) -> Option<Arc<Exchange>> {
    vhost
        .exchange(TRACE_EXCHANGE.as_bytes())
        .filter(|e| e.has_bindings())
}

/// Trace a publish (called by the vhost's publish path when tracing is on).
pub fn publish(
    vhost: &VHost,
    exchange: &Exchange,
    m: &Message,
    routing_keys: &[Vec<u8>],
    routed: &[Arc<Queue>],
) {
    if exchange.name.as_bytes() == TRACE_EXCHANGE.as_bytes() {
        return;
    }
    let Some(trace_x) = trace_exchange(vhost) else {
        return;
    };
    let origin = ORIGIN.with(|o| o.borrow().clone()).unwrap_or_default();
    let mut h = common(vhost, m, &origin, routing_keys);
    // For the default exchange RabbitMQ lists the routing keys as the queues.
    let queues: Vec<Vec<u8>> = if exchange.name.is_empty() {
        routing_keys.to_vec()
    } else {
        routed.iter().map(|q| q.name.as_bytes().to_vec()).collect()
    };
    h.insert("routed_queues", strings(queues));
    let msg = trace_message(format!("publish.{}", exchange.name), h, m.body.clone());
    let mut out = Vec::new();
    vhost.publish(&trace_x, msg, &mut out);
}

/// Trace a delivery from `queue` to a consumer or basic.get of `origin`.
/// Deferred until [`flush`]: this runs under the queue's lock.
pub fn deliver(queue: &Queue, m: &Message, redelivered: bool, origin: &Origin) {
    let Some(vhost) = queue.vhost() else { return };
    if !vhost.is_tracing() {
        return;
    }
    let Some(trace_x) = trace_exchange(&vhost) else {
        return;
    };
    // Messages in queues that collect traces are not traced themselves.
    if queue
        .sources
        .lock()
        .iter()
        .any(|w| w.as_ptr() == Arc::as_ptr(&trace_x))
    {
        return;
    }
    let mut keys = vec![m.routing_key.as_bytes().to_vec()];
    if let Some(FieldValue::Array(cc)) = m
        .decode_properties()
        .headers
        .as_ref()
        .and_then(|h| h.get("CC").cloned())
    {
        keys.extend(cc.iter().filter_map(|k| k.as_bytes().map(|b| b.to_vec())));
    }
    let mut h = common(&vhost, m, origin, &keys);
    h.insert("redelivered", FieldValue::I32(redelivered as i32));
    let msg = trace_message(format!("deliver.{}", queue.name), h, m.body.clone());
    DEFERRED.with(|d| d.borrow_mut().push((vhost, msg)));
}

/// Publish the delivery traces collected on this thread.
pub fn flush() {
    // Called after every queue operation: nearly always nothing to do.
    if DEFERRED.with(|d| d.borrow().is_empty()) {
        return;
    }
    let pending = DEFERRED.with(|d| std::mem::take(&mut *d.borrow_mut()));
    for (vhost, msg) in pending {
        if let Some(x) = vhost.exchange(TRACE_EXCHANGE.as_bytes()) {
            let mut out = Vec::new();
            vhost.publish(&x, msg, &mut out);
        }
    }
}
