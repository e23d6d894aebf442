//! The origin node's side: [`RemoteClassic`], the backend of a classic
//! queue whose home is another node, its ordered outbox per home node, and
//! the deliveries the home streams back to local consumers.
//!
//! Lock order: [`OriginSide::consumers`], then a consumer's sink (deliveries
//! are offered under it, like a queue offers under its own lock). Sinks never
//! call back into a queue from `offer`, so never into this side.

use super::home::{
    decode_message, ITEM_CANCELLED, ITEM_DELIVER, OP_ACK, OP_CANCEL, OP_CONSUME, OP_GET,
    OP_PUBLISH, OP_PURGE, OP_REJECT, OP_REQUEUE,
};
use super::wire::{R, W};
use super::{home_down, Classic, CALL_TIMEOUT, MAX_BATCH_BYTES, MAX_BATCH_MSGS, RPC_BATCH};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use tokio::sync::{mpsc, oneshot, Notify};
use warren_core::confirm::Confirm;
use warren_core::message::{QueuedMessage, NEVER};
use warren_core::queue::{Consumer, Queue, QueueBackend, QueueDepth};
use warren_core::store::definitions::table_to_hex;
use warren_core::{BrokerError, Message};

/// A local consumer of a queue whose home is another node.
struct RemoteConsumer {
    home: String,
    queue: Arc<Queue>,
    consumer: Arc<Consumer>,
    /// Deliveries the consumer could not take yet (not activated, channel
    /// flow, global prefetch): offered again on the next `deliver`.
    pending: VecDeque<QueuedMessage>,
}

/// One operation for a home node, in the order the origin made it.
enum Op {
    Publish {
        vhost: Bytes,
        queue: Bytes,
        msg: Arc<Message>,
        confirm: Option<Confirm>,
    },
    Consume {
        vhost: Bytes,
        queue: Bytes,
        proxy: u64,
    },
    Cancel {
        vhost: Bytes,
        queue: Bytes,
        proxy: u64,
    },
    Settle {
        op: u8,
        vhost: Bytes,
        queue: Bytes,
        seqs: Vec<u64>,
    },
    Get {
        vhost: Bytes,
        queue: Bytes,
        no_ack: bool,
        reply: oneshot::Sender<Option<(QueuedMessage, u32)>>,
    },
    Purge {
        vhost: Bytes,
        queue: Bytes,
        reply: oneshot::Sender<u32>,
    },
}

#[derive(Default)]
pub(crate) struct OriginSide {
    consumers: Mutex<HashMap<u64, RemoteConsumer>>,
    next_proxy: AtomicU64,
    outboxes: Mutex<HashMap<String, Outbox>>,
}

/// Publish bytes above which a publisher waits for its home to catch up (a
/// crude credit flow: the publishing connection's reader stalls, as it does
/// for the local message log).
const MAX_BACKLOG: usize = 32 << 20;
/// How long a publisher waits for room before going on regardless.
const BACKLOG_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Bytes of publishes queued for (or in flight to) one home node.
#[derive(Default)]
struct Backlog {
    bytes: AtomicUsize,
    room: Notify,
}

struct Outbox {
    tx: mpsc::UnboundedSender<Op>,
    backlog: Arc<Backlog>,
}

fn publish_bytes(msg: &Message) -> usize {
    msg.body.len() + msg.properties.len() + 64
}

impl OriginSide {
    /// Queue `op` for `home`; returns that home's publish backlog.
    fn send(&self, c: &Arc<Classic>, home: &str, op: Op) -> Arc<Backlog> {
        let mut boxes = self.outboxes.lock();
        let outbox = boxes.entry(home.to_string()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            let backlog = Arc::new(Backlog::default());
            tokio::spawn(outbox_loop(
                Arc::downgrade(c),
                home.to_string(),
                rx,
                backlog.clone(),
            ));
            Outbox { tx, backlog }
        });
        if let Op::Publish { msg, .. } = &op {
            outbox
                .backlog
                .bytes
                .fetch_add(publish_bytes(msg), Ordering::Relaxed);
        }
        if let Err(mpsc::error::SendError(op)) = outbox.tx.send(op) {
            // The loop ended (node shutting down): the op fails; a confirm
            // dropped here is a nack.
            if let Op::Publish { msg, .. } = &op {
                outbox
                    .backlog
                    .bytes
                    .fetch_sub(publish_bytes(msg), Ordering::Relaxed);
            }
            drop(op);
        }
        outbox.backlog.clone()
    }

    /// The home node is gone: cancel every local consumer of its queues
    /// (basic.cancel to AMQP clients that asked for cancel notifications).
    pub(crate) fn home_lost(&self, _c: &Arc<Classic>, home: &str) {
        let lost: Vec<RemoteConsumer> = {
            let mut cs = self.consumers.lock();
            let ids: Vec<u64> = cs
                .iter()
                .filter(|(_, r)| r.home == home)
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| cs.remove(&id)).collect()
        };
        for r in lost {
            r.consumer.sink.cancelled(&r.consumer);
        }
    }

    fn cancel_local(&self, proxy: u64) {
        let r = self.consumers.lock().remove(&proxy);
        if let Some(r) = r {
            r.consumer.sink.cancelled(&r.consumer);
        }
    }
}

/// Deliveries and cancellations from a home node.
pub(super) fn deliver(c: &Arc<Classic>, payload: Bytes) -> Result<Bytes, String> {
    let mut r = R(payload);
    let _home = r.string()?;
    let n = r.u32()? as usize;
    let mut refused: Vec<(u64, u64)> = Vec::new();
    let mut cancelled = Vec::new();
    {
        let mut cs = c.origin.consumers.lock();
        for _ in 0..n {
            match r.u8()? {
                ITEM_DELIVER => {
                    let proxy = r.u64()?;
                    let seq = r.u64()?;
                    let redelivered = r.u8()? != 0;
                    let message = decode_message(&mut r)?;
                    let Some(rc) = cs.get_mut(&proxy) else {
                        refused.push((proxy, seq));
                        continue;
                    };
                    let qm = QueuedMessage {
                        seq,
                        message,
                        redelivered,
                        expires_at: NEVER,
                        priority: 0,
                    };
                    if !rc.pending.is_empty()
                        || !rc.consumer.is_active()
                        || !rc.consumer.sink.offer(&rc.consumer, &rc.queue, &qm)
                    {
                        rc.pending.push_back(qm);
                    }
                }
                ITEM_CANCELLED => {
                    let proxy = r.u64()?;
                    if let Some(rc) = cs.remove(&proxy) {
                        cancelled.push(rc);
                    }
                }
                other => return Err(format!("unknown classic delivery item {other}")),
            }
        }
    }
    for rc in cancelled {
        rc.consumer.sink.cancelled(&rc.consumer);
    }
    let mut w = W::new();
    w.u32(refused.len() as u32);
    for (p, s) in refused {
        w.u64(p);
        w.u64(s);
    }
    Ok(w.freeze())
}

/// Send a home node's operations in ordered batches, one in flight.
async fn outbox_loop(
    classic: Weak<Classic>,
    home: String,
    mut rx: mpsc::UnboundedReceiver<Op>,
    backlog: Arc<Backlog>,
) {
    while let Some(first) = rx.recv().await {
        let size = |op: &Op| match op {
            Op::Publish { msg, .. } => publish_bytes(msg),
            _ => 0,
        };
        let mut bytes = size(&first);
        let mut ops = vec![first];
        while ops.len() < MAX_BATCH_MSGS && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(op) => {
                    bytes += size(&op);
                    ops.push(op);
                }
                Err(_) => break,
            }
        }
        // Whatever happens to this batch, its bytes leave the backlog.
        let _room = MakeRoom(&backlog, bytes);
        let Some(c) = classic.upgrade() else { return };
        if !c.is_up(&home) {
            fail(&c, ops);
            continue;
        }
        let mut w = W::new();
        w.bytes(c.me.as_bytes());
        w.u64(c.boot);
        w.u32(ops.len() as u32);
        for op in &ops {
            match op {
                Op::Publish {
                    vhost, queue, msg, ..
                } => {
                    w.u8(OP_PUBLISH);
                    w.bytes(vhost);
                    w.bytes(queue);
                    w.bytes(msg.exchange.as_bytes());
                    w.bytes(msg.routing_key.as_bytes());
                    w.bytes(&msg.properties);
                    w.bytes(&msg.body);
                }
                Op::Consume {
                    vhost,
                    queue,
                    proxy,
                } => {
                    let cs = c.origin.consumers.lock();
                    let consumer = cs.get(proxy).map(|r| r.consumer.clone());
                    drop(cs);
                    w.u8(OP_CONSUME);
                    w.bytes(vhost);
                    w.bytes(queue);
                    w.u64(*proxy);
                    match consumer {
                        Some(k) => {
                            w.bytes(k.tag.as_bytes());
                            w.u8(k.no_ack as u8);
                            w.u8(k.exclusive as u8);
                            w.u32(k.prefetch());
                            w.bytes(table_to_hex(&k.arguments).as_bytes());
                        }
                        // Cancelled before it was sent: attach and detach.
                        None => {
                            w.bytes(b"");
                            w.u8(1);
                            w.u8(0);
                            w.u32(1);
                            w.bytes(b"");
                        }
                    }
                }
                Op::Cancel {
                    vhost,
                    queue,
                    proxy,
                } => {
                    w.u8(OP_CANCEL);
                    w.bytes(vhost);
                    w.bytes(queue);
                    w.u64(*proxy);
                }
                Op::Settle {
                    op,
                    vhost,
                    queue,
                    seqs,
                } => {
                    w.u8(*op);
                    w.bytes(vhost);
                    w.bytes(queue);
                    w.u32(seqs.len() as u32);
                    for s in seqs {
                        w.u64(*s);
                    }
                }
                Op::Get {
                    vhost,
                    queue,
                    no_ack,
                    ..
                } => {
                    w.u8(OP_GET);
                    w.bytes(vhost);
                    w.bytes(queue);
                    w.u8(*no_ack as u8);
                }
                Op::Purge { vhost, queue, .. } => {
                    w.u8(OP_PURGE);
                    w.bytes(vhost);
                    w.bytes(queue);
                }
            }
        }
        let payload = w.freeze();
        match c.call(&home, RPC_BATCH, &payload, CALL_TIMEOUT).await {
            Ok(reply) => {
                if let Err(e) = answered(&c, ops, reply) {
                    tracing::warn!("classic queues: bad batch answer from {home}: {e}");
                }
            }
            Err(e) => {
                tracing::info!("classic queues: batch to {home} failed: {e}");
                fail(&c, ops);
                c.peer_lost(&home);
            }
        }
    }
}

/// Takes a batch's bytes off the backlog when dropped, waking publishers.
struct MakeRoom<'a>(&'a Backlog, usize);

impl Drop for MakeRoom<'_> {
    fn drop(&mut self) {
        self.0.bytes.fetch_sub(self.1, Ordering::Relaxed);
        self.0.room.notify_waiters();
    }
}

/// The home could not be reached: publishes are nacked (their confirms
/// dropped), consumers being attached are cancelled.
fn fail(c: &Arc<Classic>, ops: Vec<Op>) {
    for op in ops {
        match op {
            Op::Publish {
                confirm: Some(cf), ..
            } => cf.complete(false),
            Op::Consume { proxy, .. } => c.origin.cancel_local(proxy),
            _ => {}
        }
    }
}

fn answered(c: &Arc<Classic>, ops: Vec<Op>, reply: Bytes) -> Result<(), String> {
    let mut r = R(reply);
    let n = r.u32()? as usize;
    if n != ops.len() {
        return Err(format!("{n} answers for {} operations", ops.len()));
    }
    for op in ops {
        let status = r.u8()?;
        match op {
            Op::Publish {
                confirm: Some(cf), ..
            } => cf.complete(status == 0),
            Op::Consume { proxy, .. } if status != 0 => {
                let code = r.u32()?;
                let text = r.string()?;
                tracing::debug!("remote consume refused ({code}): {text}");
                c.origin.cancel_local(proxy);
            }
            Op::Get { reply, .. } => {
                let _ = reply.send(read_got(&mut r)?);
            }
            Op::Purge { reply, .. } => {
                let _ = reply.send(r.u32()?);
            }
            _ => {}
        }
    }
    Ok(())
}

fn read_got(r: &mut R) -> Result<Option<(QueuedMessage, u32)>, String> {
    if r.u8()? == 0 {
        return Ok(None);
    }
    let seq = r.u64()?;
    let redelivered = r.u8()? != 0;
    let remaining = r.u32()?;
    let message = decode_message(r)?;
    Ok(Some((
        QueuedMessage {
            seq,
            message,
            redelivered,
            expires_at: NEVER,
            priority: 0,
        },
        remaining,
    )))
}

/// The backend of a classic queue whose home is another node.
pub struct RemoteClassic {
    classic: Weak<Classic>,
    home: String,
    vhost: Bytes,
    queue: Bytes,
}

impl RemoteClassic {
    pub fn new(classic: &Arc<Classic>, home: &str, vhost: &str, queue: &[u8]) -> Arc<Self> {
        Arc::new(RemoteClassic {
            classic: Arc::downgrade(classic),
            home: home.to_string(),
            vhost: Bytes::copy_from_slice(vhost.as_bytes()),
            queue: Bytes::copy_from_slice(queue),
        })
    }

    fn down_error(&self) -> BrokerError {
        home_down(
            &String::from_utf8_lossy(&self.queue),
            &String::from_utf8_lossy(&self.vhost),
            &self.home,
        )
    }

    fn settle_op(&self, op: u8, msgs: &[QueuedMessage]) {
        let Some(c) = self.classic.upgrade() else {
            return;
        };
        if msgs.is_empty() {
            return;
        }
        c.origin.send(
            &c,
            &self.home,
            Op::Settle {
                op,
                vhost: self.vhost.clone(),
                queue: self.queue.clone(),
                seqs: msgs.iter().map(|m| m.seq).collect(),
            },
        );
    }

    /// Queue `op` (made with its answer's sender) and wait for the answer:
    /// the channel's frame handler is synchronous, so the worker thread
    /// blocks for the round trip (other tasks move to other workers).
    fn ask<T>(&self, op: impl FnOnce(oneshot::Sender<T>) -> Op) -> Option<T> {
        let c = self.classic.upgrade()?;
        if !c.is_up(&self.home) {
            return None;
        }
        let handle = tokio::runtime::Handle::try_current().ok()?;
        if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
            return None;
        }
        let (tx, rx) = oneshot::channel();
        c.origin.send(&c, &self.home, op(tx));
        drop(c);
        tokio::task::block_in_place(|| {
            handle.block_on(async { tokio::time::timeout(CALL_TIMEOUT, rx).await })
        })
        .ok()?
        .ok()
    }
}

/// The home is behind by more than [`MAX_BACKLOG`]: the publishing task waits
/// (its worker thread hands its other tasks over) until half of it is gone,
/// the home is down, or [`BACKLOG_WAIT`] passed.
fn wait_for_room(c: &Arc<Classic>, home: &str, backlog: &Backlog) {
    let Ok(handle) = tokio::runtime::Handle::try_current() else {
        return;
    };
    if handle.runtime_flavor() != tokio::runtime::RuntimeFlavor::MultiThread {
        return;
    }
    let deadline = tokio::time::Instant::now() + BACKLOG_WAIT;
    tokio::task::block_in_place(|| {
        handle.block_on(async {
            while backlog.bytes.load(Ordering::Relaxed) > MAX_BACKLOG / 2
                && c.is_up(home)
                && tokio::time::Instant::now() < deadline
            {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_millis(100),
                    backlog.room.notified(),
                )
                .await;
            }
        })
    });
}

impl QueueBackend for RemoteClassic {
    fn kind(&self) -> &'static str {
        "classic"
    }

    fn publish(
        &self,
        _queue: &Arc<Queue>,
        message: Arc<Message>,
        confirm: Option<Confirm>,
    ) -> bool {
        let Some(c) = self.classic.upgrade() else {
            return true;
        };
        if !c.is_up(&self.home) {
            // RabbitMQ: a message routed to a queue whose node is down is
            // lost; a confirm-mode publisher gets a nack (dropping the
            // confirm refuses it).
            drop(confirm);
            return true;
        }
        let backlog = c.origin.send(
            &c,
            &self.home,
            Op::Publish {
                vhost: self.vhost.clone(),
                queue: self.queue.clone(),
                msg: message,
                confirm,
            },
        );
        if backlog.bytes.load(Ordering::Relaxed) > MAX_BACKLOG {
            wait_for_room(&c, &self.home, &backlog);
        }
        true
    }

    fn add_consumer(&self, queue: &Arc<Queue>, consumer: Arc<Consumer>) -> warren_core::Result<()> {
        let c = match self.classic.upgrade() {
            Some(c) if c.is_up(&self.home) => c,
            _ => return Err(self.down_error()),
        };
        let proxy = c.origin.next_proxy.fetch_add(1, Ordering::Relaxed) + 1;
        c.origin.consumers.lock().insert(
            proxy,
            RemoteConsumer {
                home: self.home.clone(),
                queue: queue.clone(),
                consumer,
                pending: VecDeque::new(),
            },
        );
        c.origin.send(
            &c,
            &self.home,
            Op::Consume {
                vhost: self.vhost.clone(),
                queue: self.queue.clone(),
                proxy,
            },
        );
        Ok(())
    }

    fn remove_consumer(&self, _queue: &Arc<Queue>, consumer: &Arc<Consumer>) {
        let Some(c) = self.classic.upgrade() else {
            return;
        };
        let found = {
            let mut cs = c.origin.consumers.lock();
            let id = cs
                .iter()
                .find(|(_, r)| Arc::ptr_eq(&r.consumer, consumer))
                .map(|(id, _)| *id);
            id.and_then(|id| cs.remove(&id).map(|r| (id, r)))
        };
        let Some((proxy, r)) = found else { return };
        if !r.pending.is_empty() {
            let msgs: Vec<QueuedMessage> = r.pending.into_iter().collect();
            self.settle_op(OP_REQUEUE, &msgs);
        }
        c.origin.send(
            &c,
            &self.home,
            Op::Cancel {
                vhost: self.vhost.clone(),
                queue: self.queue.clone(),
                proxy,
            },
        );
    }

    fn deliver(&self, queue: &Arc<Queue>) {
        let Some(c) = self.classic.upgrade() else {
            return;
        };
        let mut cs = c.origin.consumers.lock();
        for rc in cs.values_mut() {
            if !Arc::ptr_eq(&rc.queue, queue) || !rc.consumer.is_active() {
                continue;
            }
            while let Some(m) = rc.pending.front() {
                if !rc.consumer.sink.offer(&rc.consumer, &rc.queue, m) {
                    break;
                }
                rc.pending.pop_front();
            }
        }
    }

    fn get(&self, _queue: &Arc<Queue>, no_ack: bool) -> Option<(QueuedMessage, u32)> {
        self.ask(|reply| Op::Get {
            vhost: self.vhost.clone(),
            queue: self.queue.clone(),
            no_ack,
            reply,
        })
        .flatten()
    }

    fn settle(&self, _queue: &Queue, msgs: &[QueuedMessage]) {
        self.settle_op(OP_ACK, msgs);
    }

    fn reject(&self, _queue: &Arc<Queue>, msgs: Vec<QueuedMessage>) {
        self.settle_op(OP_REJECT, &msgs);
    }

    fn requeue(&self, _queue: &Arc<Queue>, msgs: Vec<QueuedMessage>) {
        self.settle_op(OP_REQUEUE, &msgs);
    }

    fn purge(&self, _queue: &Queue) -> u32 {
        self.ask(|reply| Op::Purge {
            vhost: self.vhost.clone(),
            queue: self.queue.clone(),
            reply,
        })
        .unwrap_or(0)
    }

    fn depth(&self, queue: &Queue) -> QueueDepth {
        // Never blocks on the network: the consumers attached here (the
        // home's counts are on the home node's API).
        let consumers = self.classic.upgrade().map_or(0, |c| {
            c.origin
                .consumers
                .lock()
                .values()
                .filter(|r| std::ptr::eq(Arc::as_ptr(&r.queue), queue))
                .count() as u32
        });
        QueueDepth {
            consumers,
            ..QueueDepth::default()
        }
    }

    fn deleted(&self, queue: &Queue) {
        let Some(c) = self.classic.upgrade() else {
            return;
        };
        let gone: Vec<RemoteConsumer> = {
            let mut cs = c.origin.consumers.lock();
            let ids: Vec<u64> = cs
                .iter()
                .filter(|(_, r)| std::ptr::eq(Arc::as_ptr(&r.queue), queue))
                .map(|(id, _)| *id)
                .collect();
            ids.into_iter().filter_map(|id| cs.remove(&id)).collect()
        };
        for r in gone {
            r.consumer.sink.cancelled(&r.consumer);
        }
    }

    fn check_available(&self, _queue: &Queue) -> warren_core::Result<()> {
        match self.classic.upgrade() {
            Some(c) if c.is_up(&self.home) => Ok(()),
            _ => Err(self.down_error()),
        }
    }

    fn info(&self, _queue: &Queue) -> serde_json::Map<String, serde_json::Value> {
        let mut m = serde_json::Map::new();
        m.insert("node".into(), serde_json::Value::String(self.home.clone()));
        m
    }
}
