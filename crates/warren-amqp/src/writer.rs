//! The outbound half of a connection.
//!
//! Everything a connection sends (method replies from its reader task, deliveries
//! pushed by queues on any thread) goes through one FIFO channel to a writer task.
//! One FIFO keeps the protocol's ordering (consume-ok before the first deliver, a
//! channel's deliveries in delivery-tag order); the writer drains everything queued
//! into one buffer and writes it with one syscall, which is where batching comes
//! from under load.

use crate::codec::{write_content, write_heartbeat, write_method, Method};
use bytes::BytesMut;
use parking_lot::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use warren_core::{Message, Queue};

/// Above this many bytes queued for the socket, queues stop delivering to this
/// connection's consumers until the writer catches up (TCP backpressure for
/// consumers, auto-ack ones included).
const HIGH_WATER: usize = 4 * 1024 * 1024;
const LOW_WATER: usize = 1024 * 1024;
/// Largest chunk gathered into one write.
const MAX_BATCH: usize = 512 * 1024;

/// One item for the writer.
pub enum Outbound {
    Method(u16, Method),
    /// A method with content (deliver, get-ok, return) and the message.
    Content(u16, Method, Arc<Message>),
    /// Write what is queued, then close the socket.
    Close,
}

/// The connection state shared with queues and the writer task.
pub struct Outlet {
    tx: mpsc::UnboundedSender<Outbound>,
    /// Approximate bytes queued and not yet written.
    pending: AtomicUsize,
    /// Queues that found this connection over its high-water mark and wait to be
    /// told it has room again.
    parked: Mutex<Vec<Weak<Queue>>>,
    has_parked: AtomicBool,
    pub frame_max: AtomicUsize,
}

impl Outlet {
    pub fn new(frame_max: u32) -> (Arc<Outlet>, mpsc::UnboundedReceiver<Outbound>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (
            Arc::new(Outlet {
                tx,
                pending: AtomicUsize::new(0),
                parked: Mutex::new(Vec::new()),
                has_parked: AtomicBool::new(false),
                frame_max: AtomicUsize::new(frame_max as usize),
            }),
            rx,
        )
    }

    pub fn send_method(&self, channel: u16, method: Method) {
        self.pending.fetch_add(64, Ordering::Relaxed);
        let _ = self.tx.send(Outbound::Method(channel, method));
    }

    pub fn send_content(&self, channel: u16, method: Method, message: Arc<Message>) {
        self.pending.fetch_add(
            128 + message.body.len() + message.properties.len(),
            Ordering::Relaxed,
        );
        let _ = self.tx.send(Outbound::Content(channel, method, message));
    }

    pub fn close(&self) {
        let _ = self.tx.send(Outbound::Close);
    }

    /// Whether consumers on this connection may take more deliveries. If not, the
    /// queue is remembered and woken when the writer drains.
    pub fn has_room(&self, queue: &Arc<Queue>) -> bool {
        if self.pending.load(Ordering::Relaxed) < HIGH_WATER {
            return true;
        }
        let mut parked = self.parked.lock();
        if !parked.iter().any(|w| w.as_ptr() == Arc::as_ptr(queue)) {
            parked.push(Arc::downgrade(queue));
        }
        self.has_parked.store(true, Ordering::Release);
        false
    }

    fn wrote(&self, n: usize) {
        let before = self.pending.fetch_sub(n, Ordering::Relaxed);
        if before.saturating_sub(n) < LOW_WATER && self.has_parked.load(Ordering::Acquire) {
            let queues = {
                let mut parked = self.parked.lock();
                self.has_parked.store(false, Ordering::Release);
                std::mem::take(&mut *parked)
            };
            for q in queues.iter().filter_map(Weak::upgrade) {
                q.deliver();
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.tx.is_closed()
    }
}

fn encode(out: &mut BytesMut, item: &Outbound, frame_max: u32) -> usize {
    match item {
        Outbound::Method(ch, m) => {
            write_method(out, *ch, m);
            64
        }
        Outbound::Content(ch, m, msg) => {
            write_method(out, *ch, m);
            write_content(out, *ch, 60, &msg.properties, &msg.body, frame_max);
            128 + msg.body.len() + msg.properties.len()
        }
        Outbound::Close => 0,
    }
}

/// Run the writer until the connection closes. `heartbeat` is the negotiated
/// interval: a heartbeat frame goes out whenever nothing else was written for half
/// of it (as RabbitMQ does).
pub async fn run_writer<W: AsyncWrite + Unpin>(
    mut socket: W,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    outlet: Arc<Outlet>,
    heartbeat: Duration,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let tick = if heartbeat.is_zero() {
        Duration::from_secs(3600)
    } else {
        (heartbeat / 2).max(Duration::from_millis(500))
    };
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut wrote_since_tick = false;
    loop {
        let first = tokio::select! {
            item = rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
            _ = interval.tick() => {
                if !heartbeat.is_zero() && !wrote_since_tick {
                    write_heartbeat(&mut buf);
                    if socket.write_all(&buf).await.is_err() {
                        break;
                    }
                    buf.clear();
                }
                wrote_since_tick = false;
                continue;
            }
        };
        let frame_max = outlet.frame_max.load(Ordering::Relaxed) as u32;
        let mut closing = matches!(first, Outbound::Close);
        let mut accounted = encode(&mut buf, &first, frame_max);
        while !closing && buf.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(item) => {
                    closing = matches!(item, Outbound::Close);
                    accounted += encode(&mut buf, &item, frame_max);
                }
                Err(_) => break,
            }
        }
        if !buf.is_empty() {
            if socket.write_all(&buf).await.is_err() {
                break;
            }
            wrote_since_tick = true;
            if buf.capacity() > 4 * MAX_BATCH {
                buf = BytesMut::with_capacity(64 * 1024);
            } else {
                buf.clear();
            }
        }
        outlet.wrote(accounted);
        if closing {
            let _ = socket.flush().await;
            let _ = socket.shutdown().await;
            break;
        }
    }
    rx.close();
}
