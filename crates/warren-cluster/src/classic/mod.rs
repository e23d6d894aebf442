//! Classic queues across nodes: a classic queue's messages live on its home
//! node (the node whose client declared it, `MetaOp::DeclareQueue.owner`);
//! every other node reaches it through a [`remote::RemoteClassic`] backend
//! installed on its own instance of the queue (`warren_core::queue::
//! QueueBackend`), so adapters keep calling `Queue` as on one node.
//!
//! * **Origin → home** ([`remote`]): publishes, consumer attach/cancel and
//!   acks/rejects/requeues go into one ordered outbox per home node; a task
//!   sends what queued up as one `BATCH` frame (up to [`MAX_BATCH_MSGS`]
//!   operations / [`MAX_BATCH_BYTES`]), one batch in flight, so the home
//!   applies them in order. The home answers once the persistent messages of
//!   the batch are on its disk; then the publishers' confirms complete.
//!   basic.get and queue.purge travel in the same outbox (a get must not
//!   overtake the reject-with-requeue before it); the channel waits for them.
//! * **Home → origin** ([`home`]): a remote consumer is a proxy consumer on
//!   the home's queue, with the origin consumer's prefetch as its credit. Its
//!   sink queues deliveries for the origin node; a task per origin sends them
//!   in `DELIVER` batches. Deliveries stay unacknowledged on the home until the
//!   origin settles them (by the home's sequence number).
//! * **Links**: bulk traffic uses its own [`Transport`] (its own TCP links),
//!   so a 1 MiB batch never queues ahead of a Raft heartbeat in a socket
//!   buffer. Every node pings its peers ([`PING_EVERY`]); a peer that misses
//!   [`DOWN_AFTER`] pings, whose link broke, or that restarted (new boot id)
//!   is down: the home requeues what the origin's proxies held unacked and
//!   drops the proxies; the origin cancels its consumers of the home's queues
//!   (basic.cancel, as RabbitMQ does when a queue's node goes away), fails
//!   unconfirmed publishes (nack), and refuses declare/consume with RabbitMQ's
//!   404 until the home answers again.

pub(crate) mod home;
pub(crate) mod remote;
pub use remote::RemoteClassic;
mod wire;

use crate::group::{GroupHandler, GroupId, HandlerFuture};
use crate::transport::{CallError, Transport};
use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use warren_core::{Broker, BrokerError};
use wire::{R, W};

/// The transport "group" classic-queue RPCs are addressed to.
pub const CLASSIC_GROUP: GroupId = u64::MAX - 1;

/// Origin → home: an ordered batch of operations.
const RPC_BATCH: u8 = 1;
/// Any → any: liveness, carrying the caller's name and boot id.
const RPC_PING: u8 = 4;
/// Home → origin: deliveries and cancellations for proxies.
const RPC_DELIVER: u8 = 5;

/// Most operations in one batch frame.
pub const MAX_BATCH_MSGS: usize = 512;
/// Most bytes in one batch frame (a bigger single message goes alone).
pub const MAX_BATCH_BYTES: usize = 1 << 20;
const PING_EVERY: Duration = Duration::from_millis(500);
const PING_TIMEOUT: Duration = Duration::from_millis(1500);
/// Consecutive failed pings before a peer counts as down.
const DOWN_AFTER: u32 = 2;
/// How long a batch or a delivery may wait for the peer's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(15);

/// RabbitMQ's answer for a queue whose home node cannot be reached.
pub fn home_down(queue: &str, vhost: &str, home: &str) -> BrokerError {
    BrokerError::not_found(format!(
        "home node '{home}' of durable queue '{queue}' in vhost '{vhost}' is down or inaccessible"
    ))
}

#[derive(Clone, Copy)]
struct Peer {
    /// Answered recently (unknown peers count as up until a ping fails).
    up: bool,
    fails: u32,
    /// The peer's boot id when it last answered (0: never).
    boot: u64,
}

/// Where peers are: the cluster's membership, looked up by name.
pub trait PeerDirectory: Send + Sync + 'static {
    fn peer_addr(&self, name: &str) -> Option<String>;
    fn peer_names(&self) -> Vec<String>;
}

/// This node's side of cross-node classic queues.
pub struct Classic {
    pub(crate) me: String,
    /// Random per process start: a peer that sees it change knows this node
    /// restarted and forgets what it held for the old one.
    pub(crate) boot: u64,
    pub(crate) broker: Arc<Broker>,
    pub(crate) transport: Arc<Transport>,
    dir: OnceLock<Weak<dyn PeerDirectory>>,
    peers: Mutex<HashMap<String, Peer>>,
    pub(crate) home: home::HomeSide,
    pub(crate) origin: remote::OriginSide,
}

impl Classic {
    /// `transport`: its own links (see "Links" in docs/CLUSTERING.md).
    pub fn new(me: String, broker: Arc<Broker>, transport: Arc<Transport>) -> Arc<Classic> {
        let boot = loop {
            let b = warren_core::random::random_u64();
            if b != 0 {
                break b;
            }
        };
        Arc::new(Classic {
            me,
            boot,
            broker,
            transport,
            dir: OnceLock::new(),
            peers: Mutex::new(HashMap::new()),
            home: home::HomeSide::default(),
            origin: remote::OriginSide::default(),
        })
    }

    /// Start pinging peers (call once the directory exists).
    pub fn start(self: &Arc<Self>, dir: Weak<dyn PeerDirectory>) {
        let _ = self.dir.set(dir);
        let me = Arc::downgrade(self);
        tokio::spawn(async move { monitor(me).await });
    }

    pub(crate) fn addr(&self, name: &str) -> Option<String> {
        self.dir.get()?.upgrade()?.peer_addr(name)
    }

    /// Whether `node` is believed reachable (this node always is).
    pub fn is_up(&self, node: &str) -> bool {
        node == self.me || self.peers.lock().get(node).is_none_or(|p| p.up)
    }

    /// Send one RPC to `node` over the bulk transport.
    pub(crate) async fn call(
        &self,
        node: &str,
        rpc: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        let addr = self
            .addr(node)
            .ok_or_else(|| CallError::Unreachable(format!("no address for node {node}")))?;
        self.transport
            .call(&addr, CLASSIC_GROUP, rpc, payload, timeout)
            .await
    }

    /// `node` went away (or restarted): forget what either side held for it.
    pub(crate) fn peer_lost(self: &Arc<Self>, node: &str) {
        {
            let mut peers = self.peers.lock();
            let p = peers.entry(node.to_string()).or_insert(Peer {
                up: false,
                fails: DOWN_AFTER,
                boot: 0,
            });
            p.up = false;
        }
        tracing::info!("classic queues: node {node} is down or restarted");
        self.home.origin_lost(node);
        self.origin.home_lost(self, node);
    }

    /// A ping answer (or a ping received) from `node` with boot id `boot`.
    fn peer_seen(self: &Arc<Self>, node: &str, boot: u64) {
        let restarted = {
            let mut peers = self.peers.lock();
            let p = peers.entry(node.to_string()).or_insert(Peer {
                up: true,
                fails: 0,
                boot,
            });
            let restarted = p.boot != 0 && p.boot != boot;
            p.up = true;
            p.fails = 0;
            p.boot = boot;
            restarted
        };
        if restarted {
            self.home.origin_lost(node);
            self.origin.home_lost(self, node);
        }
    }

    fn ping_failed(self: &Arc<Self>, node: &str) {
        let lost = {
            let mut peers = self.peers.lock();
            let p = peers.entry(node.to_string()).or_insert(Peer {
                up: true,
                fails: 0,
                boot: 0,
            });
            p.fails += 1;
            p.up && p.fails >= DOWN_AFTER
        };
        if lost {
            self.peer_lost(node);
        }
    }

    fn ping_payload(&self) -> Bytes {
        let mut w = W::new();
        w.bytes(self.me.as_bytes());
        w.u64(self.boot);
        w.freeze()
    }
}

async fn monitor(me: Weak<Classic>) {
    let mut tick = tokio::time::interval(PING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(c) = me.upgrade() else { return };
        let Some(dir) = c.dir.get().and_then(|d| d.upgrade()) else {
            return;
        };
        let payload = c.ping_payload();
        let mut pings = Vec::new();
        for name in dir.peer_names() {
            if name == c.me {
                continue;
            }
            let c = c.clone();
            let payload = payload.clone();
            pings.push(tokio::spawn(async move {
                match c.call(&name, RPC_PING, &payload, PING_TIMEOUT).await {
                    Ok(b) => match R(b).u64() {
                        Ok(boot) => c.peer_seen(&name, boot),
                        Err(_) => c.ping_failed(&name),
                    },
                    Err(_) => c.ping_failed(&name),
                }
            }));
        }
        drop(c);
        for p in pings {
            let _ = p.await;
        }
    }
}

/// The transport handler for [`CLASSIC_GROUP`].
pub struct ClassicService(pub Weak<Classic>);

impl GroupHandler for ClassicService {
    fn handle(&self, rpc: u8, payload: Bytes) -> HandlerFuture {
        let c = self.0.upgrade();
        Box::pin(async move {
            let c = c.ok_or("node shutting down")?;
            match rpc {
                RPC_PING => {
                    let mut r = R(payload);
                    let from = r.string()?;
                    let boot = r.u64()?;
                    c.peer_seen(&from, boot);
                    let mut w = W::new();
                    w.u64(c.boot);
                    Ok(w.freeze())
                }
                RPC_BATCH => home::batch(&c, payload).await,
                RPC_DELIVER => remote::deliver(&c, payload),
                other => Err(format!("unknown classic queue rpc {other}")),
            }
        })
    }
}
