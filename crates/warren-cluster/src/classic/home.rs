//! The home node's side: applying an origin's batches to the real queue,
//! proxy consumers that stream deliveries to the origin, and what the home
//! holds unacknowledged for each origin (requeued if the origin goes away).
//!
//! Lock order: a queue's lock, then [`HomeSide::origins`] (a proxy's sink is
//! offered messages under the queue's lock). Nothing calls into a queue while
//! holding `origins`.

use super::wire::{R, W};
use super::{Classic, CALL_TIMEOUT, MAX_BATCH_BYTES, MAX_BATCH_MSGS, RPC_DELIVER};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;
use warren_core::message::QueuedMessage;
use warren_core::meta::CLUSTER_CONNECTION;
use warren_core::queue::{ChannelRef, Consumer, ConsumerSink, Queue};
use warren_core::store::definitions::table_from_hex;
use warren_core::vhost::VHost;
use warren_core::{Message, ShortStr};

pub(super) const OP_PUBLISH: u8 = 1;
pub(super) const OP_CONSUME: u8 = 2;
pub(super) const OP_CANCEL: u8 = 3;
pub(super) const OP_ACK: u8 = 4;
pub(super) const OP_REJECT: u8 = 5;
pub(super) const OP_REQUEUE: u8 = 6;
pub(super) const OP_GET: u8 = 7;
pub(super) const OP_PURGE: u8 = 8;

/// Items of a `DELIVER` frame.
pub(super) const ITEM_DELIVER: u8 = 0;
pub(super) const ITEM_CANCELLED: u8 = 1;

/// What goes to an origin, in order.
enum Out {
    Deliver { proxy: u64, msg: QueuedMessage },
    Cancelled { proxy: u64 },
}

struct Unacked {
    queue: Arc<Queue>,
    msg: QueuedMessage,
    /// The proxy it went to (None: a basic.get).
    proxy: Option<Arc<Consumer>>,
}

/// One origin node's state on this (home) node.
struct Origin {
    boot: u64,
    tx: mpsc::UnboundedSender<Out>,
    proxies: HashMap<u64, (Arc<Queue>, Arc<Consumer>)>,
    /// Delivered to the origin and not settled yet, by (queue, home seq).
    unacked: HashMap<(usize, u64), Unacked>,
}

#[derive(Default)]
pub(crate) struct HomeSide {
    origins: Mutex<HashMap<String, Origin>>,
}

fn qkey(q: &Arc<Queue>) -> usize {
    Arc::as_ptr(q) as usize
}

impl HomeSide {
    /// Make sure `origin` (at boot `boot`) has its state here; an older boot's
    /// state is released first.
    fn ensure(&self, c: &Arc<Classic>, origin: &str, boot: u64) {
        let stale = {
            let mut origins = self.origins.lock();
            match origins.get(origin) {
                Some(o) if o.boot == boot => return,
                _ => {}
            }
            let (tx, rx) = mpsc::unbounded_channel();
            let stale = origins.insert(
                origin.to_string(),
                Origin {
                    boot,
                    tx,
                    proxies: HashMap::new(),
                    unacked: HashMap::new(),
                },
            );
            tokio::spawn(deliver_loop(
                Arc::downgrade(c),
                origin.to_string(),
                boot,
                rx,
            ));
            stale
        };
        if let Some(o) = stale {
            release(o);
        }
    }

    /// The origin node is gone: requeue what it held, drop its proxies.
    pub(crate) fn origin_lost(&self, origin: &str) {
        let o = self.origins.lock().remove(origin);
        if let Some(o) = o {
            release(o);
        }
    }

    fn lost_if(&self, origin: &str, boot: u64) -> bool {
        let mut origins = self.origins.lock();
        if origins.get(origin).is_some_and(|o| o.boot == boot) {
            if let Some(o) = origins.remove(origin) {
                drop(origins);
                release(o);
            }
            return true;
        }
        false
    }
}

/// Give back everything an origin held: unacked deliveries are requeued
/// (redelivered), its proxy consumers detached.
fn release(o: Origin) {
    let mut by_queue: Vec<(Arc<Queue>, Vec<QueuedMessage>)> = Vec::new();
    for u in o.unacked.into_values() {
        if let Some(p) = &u.proxy {
            p.sub_unacked(1);
        }
        match by_queue.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, v)) => v.push(u.msg),
            None => by_queue.push((u.queue, vec![u.msg])),
        }
    }
    for (q, mut msgs) in by_queue {
        msgs.sort_by_key(|m| m.seq);
        q.requeue(msgs);
    }
    for (q, consumer) in o.proxies.into_values() {
        q.remove_consumer(&consumer);
    }
}

/// A proxy consumer's sink: deliveries are queued for the origin node.
struct RemoteSink {
    classic: Weak<Classic>,
    origin: String,
    proxy: u64,
}

impl ConsumerSink for RemoteSink {
    fn offer(&self, consumer: &Arc<Consumer>, queue: &Arc<Queue>, msg: &QueuedMessage) -> bool {
        if !consumer.is_active() || !consumer.has_credit() {
            return false;
        }
        let Some(c) = self.classic.upgrade() else {
            return false;
        };
        let mut origins = c.home.origins.lock();
        let Some(o) = origins.get_mut(&self.origin) else {
            return false;
        };
        if !o.proxies.contains_key(&self.proxy) {
            return false;
        }
        if o.tx
            .send(Out::Deliver {
                proxy: self.proxy,
                msg: msg.clone(),
            })
            .is_err()
        {
            return false;
        }
        if !consumer.no_ack {
            consumer.add_unacked();
            o.unacked.insert(
                (qkey(queue), msg.seq),
                Unacked {
                    queue: queue.clone(),
                    msg: msg.clone(),
                    proxy: Some(consumer.clone()),
                },
            );
        }
        true
    }

    fn cancelled(&self, _consumer: &Arc<Consumer>) {
        // The queue was deleted here: tell the origin.
        let Some(c) = self.classic.upgrade() else {
            return;
        };
        let mut origins = c.home.origins.lock();
        if let Some(o) = origins.get_mut(&self.origin) {
            if o.proxies.remove(&self.proxy).is_some() {
                let _ = o.tx.send(Out::Cancelled { proxy: self.proxy });
            }
        }
    }
}

fn find(c: &Classic, vhost: &[u8], queue: &[u8]) -> Option<(Arc<VHost>, Arc<Queue>)> {
    let v = c.broker.vhost(std::str::from_utf8(vhost).ok()?)?;
    let q = v.named_queue(queue)?;
    Some((v, q))
}

/// An origin's ordered batch: apply each operation, answer once the
/// persistent messages among them are on disk.
pub(super) async fn batch(c: &Arc<Classic>, payload: Bytes) -> Result<Bytes, String> {
    let mut r = R(payload);
    let origin = r.string()?;
    let boot = r.u64()?;
    let n = r.u32()? as usize;
    c.home.ensure(c, &origin, boot);
    let mut answer = W::new();
    answer.u32(n as u32);
    let mut ticket = 0u64;
    for _ in 0..n {
        let op = r.u8()?;
        let vhost = r.bytes()?;
        let qname = r.bytes()?;
        let found = find(c, &vhost, &qname);
        let q = found.as_ref().map(|(_, q)| q.clone());
        match op {
            OP_PUBLISH => {
                let exchange = r.bytes()?;
                let routing_key = r.bytes()?;
                let properties = r.bytes()?;
                let body = r.bytes()?;
                let ok = match &found {
                    // A queue deleted meanwhile: dropped, as a message routed
                    // to a queue that goes away in RabbitMQ (confirmed).
                    None => true,
                    Some((v, q)) => {
                        let msg = Message::new(
                            ShortStr(exchange),
                            ShortStr(routing_key),
                            properties,
                            body,
                        );
                        let p = v.publish_into(q, msg);
                        ticket = ticket.max(p.ticket);
                        !p.rejected
                    }
                };
                answer.u8(if ok { 0 } else { 1 });
            }
            OP_CONSUME => {
                let proxy = r.u64()?;
                let tag = r.bytes()?;
                let no_ack = r.u8()? != 0;
                let exclusive = r.u8()? != 0;
                let prefetch = r.u32()?;
                let args = r.string()?;
                match &q {
                    None => {
                        let text = format!(
                            "no queue '{}' in vhost '{}'",
                            String::from_utf8_lossy(&qname),
                            String::from_utf8_lossy(&vhost)
                        );
                        answer.u8(1);
                        answer.u32(404);
                        answer.bytes(text.as_bytes());
                    }
                    Some(q) => match attach(
                        c, &origin, q, proxy, tag, no_ack, exclusive, prefetch, &args,
                    ) {
                        Ok(()) => answer.u8(0),
                        Err(e) => {
                            answer.u8(1);
                            answer.u32(e.code as u32);
                            answer.bytes(e.text.as_bytes());
                        }
                    },
                }
            }
            OP_CANCEL => {
                let proxy = r.u64()?;
                let found = {
                    let mut origins = c.home.origins.lock();
                    origins
                        .get_mut(&origin)
                        .and_then(|o| o.proxies.remove(&proxy))
                };
                if let Some((q, consumer)) = found {
                    q.remove_consumer(&consumer);
                }
                answer.u8(0);
            }
            OP_ACK | OP_REJECT | OP_REQUEUE => {
                let count = r.u32()? as usize;
                let mut seqs = Vec::with_capacity(count.min(65536));
                for _ in 0..count {
                    seqs.push(r.u64()?);
                }
                if let Some(q) = &q {
                    settle(c, &origin, q, op, &seqs);
                }
                answer.u8(0);
            }
            OP_GET => {
                let no_ack = r.u8()? != 0;
                answer.u8(0);
                match &q {
                    Some(q) => get(c, &origin, q, no_ack, &mut answer),
                    None => answer.u8(0),
                }
            }
            OP_PURGE => {
                answer.u8(0);
                answer.u32(q.map_or(0, |q| q.purge()));
            }
            other => return Err(format!("unknown classic queue operation {other}")),
        }
    }
    if ticket > 0 {
        let mut durable = c.broker.store.log.durable();
        let _ = durable.wait_for(|d| *d >= ticket).await;
    }
    Ok(answer.freeze())
}

#[allow(clippy::too_many_arguments)]
fn attach(
    c: &Arc<Classic>,
    origin: &str,
    q: &Arc<Queue>,
    proxy: u64,
    tag: Bytes,
    no_ack: bool,
    exclusive: bool,
    prefetch: u32,
    args: &str,
) -> warren_core::Result<()> {
    let sink = Arc::new(RemoteSink {
        classic: Arc::downgrade(c),
        origin: origin.to_string(),
        proxy,
    });
    let consumer = Consumer::new(
        ShortStr(tag),
        no_ack,
        exclusive,
        table_from_hex(args),
        ChannelRef {
            connection: CLUSTER_CONNECTION,
            number: 0,
        },
        prefetch,
        sink,
    );
    {
        let mut origins = c.home.origins.lock();
        let Some(o) = origins.get_mut(origin) else {
            return Err(warren_core::BrokerError::new(
                warren_core::error::code::INTERNAL_ERROR,
                "origin node state lost",
            ));
        };
        o.proxies.insert(proxy, (q.clone(), consumer.clone()));
    }
    if let Err(e) = q.add_consumer(consumer.clone()) {
        if let Some(o) = c.home.origins.lock().get_mut(origin) {
            o.proxies.remove(&proxy);
        }
        return Err(e);
    }
    consumer.activate();
    q.deliver();
    Ok(())
}

/// Ack, reject or requeue deliveries an origin held, by home sequence number.
fn settle(c: &Arc<Classic>, origin: &str, q: &Arc<Queue>, op: u8, seqs: &[u64]) {
    let mut msgs = Vec::with_capacity(seqs.len());
    let mut credit = false;
    {
        let mut origins = c.home.origins.lock();
        let Some(o) = origins.get_mut(origin) else {
            return;
        };
        for s in seqs {
            if let Some(u) = o.unacked.remove(&(qkey(q), *s)) {
                if let Some(p) = &u.proxy {
                    p.sub_unacked(1);
                    credit = true;
                }
                msgs.push(u.msg);
            }
        }
    }
    if !msgs.is_empty() {
        match op {
            OP_ACK => q.settle(&msgs),
            OP_REJECT => q.reject(msgs),
            _ => q.requeue(msgs),
        }
    }
    if credit {
        q.deliver();
    }
}

fn encode_message(w: &mut W, m: &Message) {
    w.bytes(m.exchange.as_bytes());
    w.bytes(m.routing_key.as_bytes());
    w.bytes(&m.properties);
    w.bytes(&m.body);
}

pub(super) fn decode_message(r: &mut R) -> Result<Arc<Message>, String> {
    let exchange = r.bytes()?;
    let routing_key = r.bytes()?;
    let properties = r.bytes()?;
    let body = r.bytes()?;
    Ok(Message::new(
        ShortStr(exchange),
        ShortStr(routing_key),
        properties,
        body,
    ))
}

/// basic.get for an origin: the answer carries the message.
fn get(c: &Arc<Classic>, origin: &str, q: &Arc<Queue>, no_ack: bool, w: &mut W) {
    match q.get(no_ack) {
        None => w.u8(0),
        Some((m, remaining)) => {
            if !no_ack {
                if let Some(o) = c.home.origins.lock().get_mut(origin) {
                    o.unacked.insert(
                        (qkey(q), m.seq),
                        Unacked {
                            queue: q.clone(),
                            msg: m.clone(),
                            proxy: None,
                        },
                    );
                }
            }
            w.u8(1);
            w.u64(m.seq);
            w.u8(m.redelivered as u8);
            w.u32(remaining);
            encode_message(w, &m.message);
        }
    }
}

/// Send an origin's deliveries, batched, one call in flight. A failed call
/// means the link to the origin is lost.
async fn deliver_loop(
    classic: Weak<Classic>,
    origin: String,
    boot: u64,
    mut rx: mpsc::UnboundedReceiver<Out>,
) {
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        let mut bytes = 0usize;
        while items.len() < MAX_BATCH_MSGS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(x) => {
                    if let Out::Deliver { msg, .. } = &x {
                        bytes += msg.message.body.len() + 64;
                    }
                    items.push(x);
                }
                Err(_) => break,
            }
        }
        let Some(c) = classic.upgrade() else { return };
        let mut w = W::new();
        w.bytes(c.me.as_bytes());
        w.u32(items.len() as u32);
        for it in &items {
            match it {
                Out::Deliver { proxy, msg } => {
                    w.u8(ITEM_DELIVER);
                    w.u64(*proxy);
                    w.u64(msg.seq);
                    w.u8(msg.redelivered as u8);
                    encode_message(&mut w, &msg.message);
                }
                Out::Cancelled { proxy } => {
                    w.u8(ITEM_CANCELLED);
                    w.u64(*proxy);
                }
            }
        }
        let payload = w.freeze();
        match c.call(&origin, RPC_DELIVER, &payload, CALL_TIMEOUT).await {
            Ok(reply) => {
                if let Err(e) = not_taken(&c, &origin, reply) {
                    tracing::debug!("classic deliver answer from {origin}: {e}");
                }
            }
            Err(e) => {
                tracing::info!("classic queues: delivering to {origin} failed: {e}");
                if c.home.lost_if(&origin, boot) {
                    c.peer_lost(&origin);
                }
                return;
            }
        }
    }
}

/// The origin did not take these deliveries (their consumer is gone there):
/// requeue them and drop the proxies.
fn not_taken(c: &Arc<Classic>, origin: &str, reply: Bytes) -> Result<(), String> {
    let mut r = R(reply);
    let n = r.u32()? as usize;
    if n == 0 {
        return Ok(());
    }
    let mut back: Vec<Unacked> = Vec::new();
    let mut gone: HashMap<u64, (Arc<Queue>, Arc<Consumer>)> = HashMap::new();
    {
        let mut origins = c.home.origins.lock();
        let Some(o) = origins.get_mut(origin) else {
            return Ok(());
        };
        for _ in 0..n {
            let proxy = r.u64()?;
            let seq = r.u64()?;
            if let Some(p) = o.proxies.remove(&proxy) {
                gone.insert(proxy, p);
            }
            if let Some((q, _)) = gone.get(&proxy) {
                if let Some(u) = o.unacked.remove(&(qkey(q), seq)) {
                    back.push(u);
                }
            }
        }
    }
    for u in back {
        if let Some(p) = &u.proxy {
            p.sub_unacked(1);
        }
        u.queue.requeue(vec![u.msg]);
    }
    for (q, consumer) in gone.into_values() {
        q.remove_consumer(&consumer);
    }
    Ok(())
}
