//! Exchanges: named routers from a message's routing key (or headers) to queues
//! and other exchanges, through bindings.

pub mod consistent_hash;
pub mod delayed;
pub mod headers;
pub mod topic;

use crate::error::Result;
use crate::message::Message;
use crate::queue::Queue;
use crate::shortstr::ShortStr;
use crate::stats::{ExchangeSnapshot, ExchangeStats};
use crate::table::FieldTable;
use headers::headers_match;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use topic::TopicTrie;

/// The routing algorithm of an exchange.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
    /// `x-consistent-hash`
    ConsistentHash,
    /// `x-delayed-message`: routes like its `x-delayed-type` after a delay.
    Delayed,
}

impl ExchangeKind {
    pub fn parse(s: &[u8]) -> Option<ExchangeKind> {
        Some(match s {
            b"direct" => ExchangeKind::Direct,
            b"fanout" => ExchangeKind::Fanout,
            b"topic" => ExchangeKind::Topic,
            b"headers" => ExchangeKind::Headers,
            b"x-consistent-hash" => ExchangeKind::ConsistentHash,
            b"x-delayed-message" => ExchangeKind::Delayed,
            _ => return None,
        })
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
            ExchangeKind::Delayed => "x-delayed-message",
        }
    }
}

/// The declared properties of an exchange; a redeclare must match them.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeOptions {
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// Where a binding leads.
#[derive(Clone)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<Exchange>),
}

impl Destination {
    fn id(&self) -> DestId {
        match self {
            Destination::Queue(q) => DestId::Queue(q.name.clone()),
            Destination::Exchange(e) => DestId::Exchange(e.name.clone()),
        }
    }
}

/// Destinations are equal when they are the same object.
impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Destination::Queue(a), Destination::Queue(b)) => Arc::ptr_eq(a, b),
            (Destination::Exchange(a), Destination::Exchange(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Queue(q) => write!(f, "queue {}", q.name),
            Destination::Exchange(e) => write!(f, "exchange {}", e.name),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum DestId {
    Queue(ShortStr),
    Exchange(ShortStr),
}

/// A binding's identity: RabbitMQ treats the same source, destination, key and
/// arguments as one binding (binding twice is a no-op).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BindingKey {
    dest: DestId,
    routing_key: ShortStr,
    arguments: Vec<u8>,
}

/// A binding as listed (for the management API and definitions export).
#[derive(Debug, Clone)]
pub struct BindingInfo {
    pub destination: Destination,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

#[derive(Default)]
struct Bindings {
    all: HashMap<BindingKey, BindingInfo>,
    /// The keys in `all` of each destination, so that deleting a queue removes
    /// its bindings without scanning every binding of the exchange: deleting
    /// N queues bound to one exchange (a fanout's subscribers leaving) stays
    /// linear, not quadratic.
    by_dest: HashMap<DestId, Vec<BindingKey>>,
    direct: HashMap<ShortStr, Vec<Destination>>,
    fanout: Vec<Destination>,
    topic: TopicTrie<Destination>,
    headers: Vec<(FieldTable, Destination)>,
    ring: consistent_hash::HashRing<Destination>,
}

pub struct Exchange {
    pub name: ShortStr,
    pub options: ExchangeOptions,
    /// How bindings route: the declared type, or `x-delayed-type` for delayed
    /// exchanges.
    routing: ExchangeKind,
    /// Log id of a durable delayed exchange's held messages (0: none).
    pub delay_id: u64,
    deleted: AtomicBool,
    bindings: RwLock<Bindings>,
    /// `publish_in` / `publish_out`, counted by `VHost::publish`.
    pub(crate) stats: ExchangeStats,
}

fn encode_args(args: &FieldTable) -> Vec<u8> {
    if args.is_empty() {
        return Vec::new();
    }
    let mut v = Vec::new();
    args.encode(&mut v);
    v
}

impl Exchange {
    pub fn new(name: ShortStr, options: ExchangeOptions) -> Arc<Exchange> {
        Self::with_delay_id(name, options, 0)
    }

    /// An exchange whose held (delayed) persistent messages are logged under
    /// `delay_id`.
    pub fn with_delay_id(name: ShortStr, options: ExchangeOptions, delay_id: u64) -> Arc<Exchange> {
        let routing = if options.kind == ExchangeKind::Delayed {
            options
                .arguments
                .get("x-delayed-type")
                .and_then(|v| v.as_bytes())
                .and_then(ExchangeKind::parse)
                .filter(|k| *k != ExchangeKind::Delayed)
                .unwrap_or(ExchangeKind::Direct)
        } else {
            options.kind
        };
        Arc::new(Exchange {
            name,
            routing,
            delay_id,
            options,
            deleted: AtomicBool::new(false),
            bindings: RwLock::new(Bindings::default()),
            stats: ExchangeStats::default(),
        })
    }

    /// `publish_in` / `publish_out` and their rates.
    pub fn message_stats(&self) -> ExchangeSnapshot {
        self.stats.snapshot()
    }

    pub fn kind(&self) -> ExchangeKind {
        self.options.kind
    }

    /// The type whose rules route this exchange's bindings.
    pub fn routing_kind(&self) -> ExchangeKind {
        self.routing
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    /// Add a binding. Returns false if it already existed.
    pub fn bind(&self, dest: Destination, routing_key: ShortStr, arguments: FieldTable) -> bool {
        let key = binding_key(&dest, &routing_key, &arguments);
        let mut b = self.bindings.write();
        if b.all.contains_key(&key) {
            return false;
        }
        match self.routing {
            // Never: a delayed exchange routes with its x-delayed-type.
            ExchangeKind::Delayed => {}
            ExchangeKind::Direct => b
                .direct
                .entry(routing_key.clone())
                .or_default()
                .push(dest.clone()),
            ExchangeKind::Fanout => b.fanout.push(dest.clone()),
            ExchangeKind::Topic => {
                b.topic.bind(routing_key.as_bytes(), dest.clone());
            }
            ExchangeKind::Headers => b.headers.push((arguments.clone(), dest.clone())),
            ExchangeKind::ConsistentHash => {
                // The binding key is the weight; non-numbers count as 0 points.
                let weight = std::str::from_utf8(routing_key.as_bytes())
                    .ok()
                    .and_then(|w| w.trim().parse::<u32>().ok())
                    .unwrap_or(0)
                    .min(10_000);
                let id = match &dest {
                    Destination::Queue(q) => q.name.clone(),
                    Destination::Exchange(e) => e.name.clone(),
                };
                b.ring.bind(dest.clone(), weight, id.as_bytes());
            }
        }
        b.by_dest
            .entry(key.dest.clone())
            .or_default()
            .push(key.clone());
        b.all.insert(
            key,
            BindingInfo {
                destination: dest,
                routing_key,
                arguments,
            },
        );
        true
    }

    /// Remove a binding. Returns false if there was no such binding.
    /// Whether this exact binding exists.
    pub fn has_binding(
        &self,
        dest: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool {
        let key = binding_key(dest, routing_key, arguments);
        self.bindings.read().all.contains_key(&key)
    }

    pub fn unbind(
        &self,
        dest: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> bool {
        let key = binding_key(dest, routing_key, arguments);
        let mut b = self.bindings.write();
        if b.all.remove(&key).is_none() {
            return false;
        }
        if let Some(keys) = b.by_dest.get_mut(&key.dest) {
            keys.retain(|k| k != &key);
            if keys.is_empty() {
                b.by_dest.remove(&key.dest);
            }
        }
        self.remove_route(&mut b, dest, routing_key, arguments);
        true
    }

    /// Take `dest`'s binding with this key out of the routing structures
    /// (`all` and `by_dest` are the caller's).
    fn remove_route(
        &self,
        b: &mut Bindings,
        dest: &Destination,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) {
        match self.routing {
            // Never: a delayed exchange routes with its x-delayed-type.
            ExchangeKind::Delayed => {}
            ExchangeKind::Direct => {
                if let Some(v) = b.direct.get_mut(routing_key) {
                    if let Some(pos) = v.iter().position(|d| d == dest) {
                        v.swap_remove(pos);
                    }
                    if v.is_empty() {
                        b.direct.remove(routing_key);
                    }
                }
            }
            ExchangeKind::Fanout => {
                if let Some(pos) = b.fanout.iter().position(|d| d == dest) {
                    b.fanout.swap_remove(pos);
                }
            }
            ExchangeKind::Topic => {
                b.topic.unbind(routing_key.as_bytes(), dest);
            }
            ExchangeKind::Headers => {
                if let Some(pos) = b
                    .headers
                    .iter()
                    .position(|(a, d)| d == dest && a == arguments)
                {
                    b.headers.remove(pos);
                }
            }
            ExchangeKind::ConsistentHash => b.ring.unbind(dest),
        }
    }

    /// Remove every binding to `dest` (it is being deleted). Returns the count.
    pub(crate) fn unbind_destination(&self, dest: &Destination) -> usize {
        let mut b = self.bindings.write();
        let Some(keys) = b.by_dest.remove(&dest.id()) else {
            return 0;
        };
        let mut removed = 0;
        for key in keys {
            if let Some(info) = b.all.remove(&key) {
                self.remove_route(&mut b, dest, &info.routing_key, &info.arguments);
                removed += 1;
            }
        }
        removed
    }

    pub fn binding_count(&self) -> usize {
        self.bindings.read().all.len()
    }

    /// Whether the exchange has a binding to a destination (as source).
    pub fn has_bindings(&self) -> bool {
        !self.bindings.read().all.is_empty()
    }

    pub fn bindings(&self) -> Vec<BindingInfo> {
        self.bindings.read().all.values().cloned().collect()
    }

    /// The bindings to one destination, without scanning the others (an MQTT
    /// session finds its subscriptions among a million bindings of amq.topic).
    pub fn bindings_to(&self, dest: &Destination) -> Vec<BindingInfo> {
        let b = self.bindings.read();
        b.by_dest
            .get(&dest.id())
            .map(|keys| keys.iter().filter_map(|k| b.all.get(k).cloned()).collect())
            .unwrap_or_default()
    }

    /// Add the queues `message` routes to (through exchange-to-exchange bindings
    /// too) to `out`. Duplicates are removed by the caller ([`route`]).
    fn route_into(
        &self,
        message: &Message,
        key: &[u8],
        out: &mut Vec<Arc<Queue>>,
        visited: &mut Vec<*const Exchange>,
    ) {
        visited.push(self as *const Exchange);
        let b = self.bindings.read();
        let push =
            |d: &Destination, out: &mut Vec<Arc<Queue>>, next: &mut Vec<Arc<Exchange>>| match d {
                Destination::Queue(q) => out.push(q.clone()),
                Destination::Exchange(e) => next.push(e.clone()),
            };
        let mut next: Vec<Arc<Exchange>> = Vec::new();
        match self.routing {
            // Never: a delayed exchange routes with its x-delayed-type.
            ExchangeKind::Delayed => {}
            ExchangeKind::Direct => {
                if let Some(v) = b.direct.get(key) {
                    for d in v {
                        push(d, out, &mut next);
                    }
                }
            }
            ExchangeKind::Fanout => {
                for d in &b.fanout {
                    push(d, out, &mut next);
                }
            }
            ExchangeKind::Topic => b.topic.route(key, |d| push(d, out, &mut next)),
            ExchangeKind::Headers => {
                if !b.headers.is_empty() {
                    let props = message.decode_properties();
                    for (args, d) in &b.headers {
                        if headers_match(args, props.headers.as_ref()) {
                            push(d, out, &mut next);
                        }
                    }
                }
            }
            ExchangeKind::ConsistentHash => {
                if let Some(d) = self.hash_key(message, key).and_then(|k| b.ring.route(&k)) {
                    push(d, out, &mut next);
                }
            }
        }
        drop(b);
        for e in next {
            if !visited.contains(&Arc::as_ptr(&e)) && !e.is_deleted() {
                e.route_into(message, key, out, visited);
            }
        }
    }

    /// What a consistent-hash exchange hashes: the routing key, or the header or
    /// property named by its `hash-header` / `hash-property` argument.
    fn hash_key(&self, message: &Message, key: &[u8]) -> Option<Vec<u8>> {
        let args = &self.options.arguments;
        if let Some(h) = args.get("hash-header").and_then(|v| v.as_bytes()) {
            let props = message.decode_properties();
            let name = String::from_utf8_lossy(h);
            let v = props.headers.as_ref()?.get(&name)?.clone();
            return Some(match v {
                crate::table::FieldValue::LongStr(b) | crate::table::FieldValue::Bytes(b) => {
                    b.to_vec()
                }
                other => format!("{:?}", other).into_bytes(),
            });
        }
        if let Some(p) = args.get("hash-property").and_then(|v| v.as_bytes()) {
            let props = message.decode_properties();
            let v = match p {
                b"message_id" => props.message_id,
                b"correlation_id" => props.correlation_id,
                b"timestamp" => props.timestamp.map(|t| t.to_string().into()),
                _ => None,
            };
            return v.map(|s| s.as_bytes().to_vec());
        }
        Some(key.to_vec())
    }

    /// Route a message by its routing key: fill `out` with the distinct queues
    /// it goes to.
    pub fn route(&self, message: &Message, out: &mut Vec<Arc<Queue>>) {
        self.route_key(message, message.routing_key.as_bytes(), out);
    }

    /// Route a message as if its routing key were `key` (sender-selected
    /// distribution: CC/BCC keys), adding to `out` and deduplicating.
    pub fn route_key(&self, message: &Message, key: &[u8], out: &mut Vec<Arc<Queue>>) {
        let mut visited = Vec::new();
        self.route_into(message, key, out, &mut visited);
        if out.len() > 1 {
            out.sort_unstable_by_key(|q| Arc::as_ptr(q) as usize);
            out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
    }

    /// Check a redeclare against the existing options (RabbitMQ's 406 text).
    pub fn check_equivalent(&self, opts: &ExchangeOptions, vhost: &str) -> Result<()> {
        use crate::equivalence::{check_arguments, inequivalent, quoted, EXCHANGE_ARGUMENTS};
        let cur = &self.options;
        let resource = format!("exchange '{}' in vhost '{}'", self.name, vhost);
        let flags = [
            (
                "type",
                quoted(opts.kind.as_str()),
                quoted(cur.kind.as_str()),
            ),
            ("durable", quoted(opts.durable), quoted(cur.durable)),
            (
                "auto_delete",
                quoted(opts.auto_delete),
                quoted(cur.auto_delete),
            ),
            ("internal", quoted(opts.internal), quoted(cur.internal)),
        ];
        if let Some((field, got, have)) = flags.iter().find(|(_, got, have)| got != have) {
            return Err(inequivalent(field, &resource, got, have));
        }
        check_arguments(
            &cur.arguments,
            &opts.arguments,
            EXCHANGE_ARGUMENTS,
            &resource,
        )
    }
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("name", &self.name)
            .field("kind", &self.options.kind)
            .finish()
    }
}

fn binding_key(dest: &Destination, routing_key: &ShortStr, arguments: &FieldTable) -> BindingKey {
    BindingKey {
        dest: dest.id(),
        routing_key: routing_key.clone(),
        arguments: encode_args(arguments),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn exchange(name: &str, kind: ExchangeKind) -> Arc<Exchange> {
        Exchange::new(
            ShortStr(Bytes::copy_from_slice(name.as_bytes())),
            ExchangeOptions {
                kind,
                durable: false,
                auto_delete: false,
                internal: false,
                arguments: FieldTable::new(),
            },
        )
    }

    fn key(k: &str) -> ShortStr {
        ShortStr(Bytes::copy_from_slice(k.as_bytes()))
    }

    #[test]
    fn deleting_a_destination_removes_exactly_its_bindings() {
        for kind in [
            ExchangeKind::Direct,
            ExchangeKind::Topic,
            ExchangeKind::Fanout,
        ] {
            let source = exchange("src", kind);
            let dests: Vec<_> = (0..100)
                .map(|i| Destination::Exchange(exchange(&format!("d{i}"), kind)))
                .collect();
            for d in &dests {
                assert!(source.bind(d.clone(), key("a"), FieldTable::new()));
                assert!(source.bind(d.clone(), key("b"), FieldTable::new()));
            }
            assert_eq!(source.binding_count(), 200);
            assert_eq!(source.unbind_destination(&dests[7]), 2);
            assert_eq!(source.unbind_destination(&dests[7]), 0);
            assert_eq!(source.binding_count(), 198);
            // A single unbind keeps the index right for a later delete.
            assert!(source.unbind(&dests[8], &key("a"), &FieldTable::new()));
            assert_eq!(source.unbind_destination(&dests[8]), 1);
            assert_eq!(source.binding_count(), 196);
            let b = source.bindings.read();
            assert_eq!(b.by_dest.len(), 98);
            match kind {
                ExchangeKind::Fanout => assert_eq!(b.fanout.len(), 196),
                ExchangeKind::Direct => {
                    assert_eq!(b.direct.get(&key("a")).map(Vec::len), Some(98));
                    assert_eq!(b.direct.get(&key("b")).map(Vec::len), Some(98));
                }
                _ => assert_eq!(b.topic.len(), 196),
            }
        }
    }
}
