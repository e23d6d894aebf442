//! Client identifiers of one MQTT listener: who is connected as which client
//! id (session takeover), and what a persistent session keeps in memory
//! between its connections (QoS 2 packet ids in both directions). What a
//! session keeps durably: subscriptions and queued messages in its queues
//! and their bindings, in the broker core; incoming QoS 2 ids and shared
//! subscriptions in the retained-message file (`session_state.rs`), from
//! which a connection after a restart loads them.

use bytes::Bytes;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tracing::info;
use warren_core::{Broker, BrokerError, ConnectionId};

use crate::config::MqttConfig;
use crate::retained::RetainedStore;
use crate::session_state::Change;

/// How often expired sessions are looked for: the expiry's resolution.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// The text management shows when a client id's connection is replaced.
pub const TAKEN_OVER: &str = "MQTT session taken over by a new connection with the same client id";

/// State a session keeps between connections (in memory; see `session_state`).
#[derive(Debug, Default, Clone)]
pub struct Saved {
    /// Incoming QoS 2 packet ids whose PUBREL has not arrived.
    pub incoming_qos2: HashSet<u16>,
    /// Outgoing QoS 2 packet ids PUBREC'd, awaiting PUBCOMP.
    pub released: Vec<u16>,
    /// Shared subscriptions (full `$share/…` filter, options, identifier):
    /// their queues belong to the group, not the session, so the session
    /// remembers its memberships here (and durably: `session_state.rs`).
    pub shared: Vec<crate::session_state::SharedSub>,
}

struct Slot {
    /// The connection using the client id now (None: disconnected).
    live: Option<Live>,
    /// Boxed, and only when there is something: one slot per connected
    /// client id, and most have nothing saved.
    saved: Option<Box<Saved>>,
    /// Bumped by every new connection: a delayed will checks it is still current.
    generation: u64,
}

struct Live {
    /// Its id, not its name: a takeover closes it by id, and the name would
    /// be one more copy per connection.
    conn: ConnectionId,
    /// Set once the connection has released its queues.
    done: Arc<Done>,
}

/// Whether a connection is done with its client id: an atomic and a
/// `Notify` (~50 bytes), where a `watch` channel was ~400 per connection.
#[derive(Default)]
pub struct Done {
    /// [`RUNNING`], [`RELEASED`] or [`DROPPED`].
    state: AtomicU8,
    notify: Notify,
}

const RUNNING: u8 = 0;
/// [`Node::release`] ran: the queues are free.
const RELEASED: u8 = 1;
/// The claim went without a release (its task ended abnormally).
const DROPPED: u8 = 2;

impl Done {
    fn set(&self, state: u8) {
        if self
            .state
            .compare_exchange(RUNNING, state, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.notify.notify_waiters();
        }
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Wait up to `limit` for the connection to finish; its state then.
    async fn wait(&self, limit: Duration) -> u8 {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the check: a `set` in between is not missed.
        notified.as_mut().enable();
        if self.state() == RUNNING {
            let _ = tokio::time::timeout(limit, notified).await;
        }
        self.state()
    }
}

/// One MQTT listener's shared state.
pub struct Node {
    pub broker: Arc<Broker>,
    pub config: MqttConfig,
    pub retained: RetainedStore,
    clients: Mutex<HashMap<(String, Bytes), Slot>>,
}

/// What a connection holds for its client id; [`Node::release`] gives it back.
pub struct Claim {
    pub key: (String, Bytes),
    pub generation: u64,
    pub done: Arc<Done>,
    pub saved: Option<Box<Saved>>,
}

impl Drop for Claim {
    /// A connection task that ends without [`Node::release`] (a panic, an
    /// abort) must not lock its client id out for good.
    fn drop(&mut self) {
        self.done.set(DROPPED);
    }
}

impl Node {
    pub fn new(broker: Arc<Broker>, config: MqttConfig, retained: RetainedStore) -> Arc<Node> {
        let node = Arc::new(Node {
            broker,
            config,
            retained,
            clients: Mutex::new(HashMap::new()),
        });
        // One task ends every expired session (not a timer per session).
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&node);
            rt.spawn(async move {
                let mut tick = tokio::time::interval(SWEEP_EVERY);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(node) = weak.upgrade() else { return };
                    node.sweep_expired(warren_core::queue::now_ms());
                }
            });
        }
        node
    }

    /// End the sessions whose MQTT 5 session expiry has passed (and that no
    /// connection has claimed since): their queues, their stored state, their
    /// shared-subscription memberships.
    pub fn sweep_expired(&self, now: u64) {
        for (vhost_name, client) in self.retained.expired_sessions(now) {
            let key = (vhost_name, client);
            let state = {
                let mut clients = self.clients.lock();
                if clients.get(&key).is_some_and(|s| s.live.is_some()) {
                    // Reconnected: the connection records its expiry anew.
                    continue;
                }
                clients.remove(&key);
                let state = self.retained.session(&key.0, &key.1);
                self.retained.put_session(&key.0, &key.1, Change::Forget);
                state
            };
            if let Some(vhost) = self.broker.vhost(&key.0) {
                info!(client_id = %String::from_utf8_lossy(&key.1), vhost = %key.0, "MQTT session expired");
                crate::session::Session::expire(&vhost, &key.1);
                let shared: Vec<Bytes> = state
                    .map(|s| s.shared.into_iter().map(|s| s.0).collect())
                    .unwrap_or_default();
                crate::session::release_groups(self, &vhost, &shared);
            }
        }
    }

    /// Take the client id `id` in `vhost` for connection `conn`: a connection
    /// already using it is closed (session takeover) and awaited, so it has
    /// released its queues before this one consumes from them.
    pub async fn claim(&self, vhost: &str, id: &Bytes, conn: ConnectionId) -> Claim {
        let key = (vhost.to_string(), id.clone());
        let done = Arc::new(Done::default());
        loop {
            let previous = {
                let mut clients = self.clients.lock();
                let slot = clients.entry(key.clone()).or_insert_with(|| Slot {
                    live: None,
                    saved: None,
                    generation: 0,
                });
                match &slot.live {
                    Some(l) => Some((l.conn, l.done.clone())),
                    None => {
                        slot.generation += 1;
                        slot.live = Some(Live {
                            conn,
                            done: done.clone(),
                        });
                        return Claim {
                            key,
                            generation: slot.generation,
                            done,
                            saved: slot.saved.take(),
                        };
                    }
                }
            };
            let Some((old, old_done)) = previous else {
                continue;
            };
            let old_name = self.broker.connections.get(old).map(|c| c.name.clone());
            info!(client_id = %String::from_utf8_lossy(id), old = ?old_name, "MQTT session takeover");
            let wait = async {
                // Asked again until it goes: the old connection may not have
                // registered yet when two connects with one client id race.
                while old_done.state() == RUNNING {
                    self.broker
                        .connections
                        .close_by_id(old, BrokerError::connection_forced(TAKEN_OVER));
                    old_done.wait(Duration::from_millis(200)).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(10), wait).await;
            if old_done.state() != RELEASED {
                // Never leave a client locked out: forget a stuck or vanished connection.
                let mut clients = self.clients.lock();
                if let Some(slot) = clients.get_mut(&key) {
                    slot.live = None;
                }
            }
        }
    }

    /// The connection is done with its client id. `keep` is what a persistent
    /// session keeps (None: forget the session).
    pub fn release(&self, claim: &Claim, conn: ConnectionId, keep: Option<Saved>) {
        let mut clients = self.clients.lock();
        if let Some(slot) = clients.get_mut(&claim.key) {
            if slot.live.as_ref().map(|l| l.conn) == Some(conn) {
                slot.live = None;
                match keep {
                    Some(s) => {
                        let empty = s.incoming_qos2.is_empty()
                            && s.released.is_empty()
                            && s.shared.is_empty();
                        slot.saved = (!empty).then(|| Box::new(s));
                    }
                    None => {
                        clients.remove(&claim.key);
                    }
                }
            }
        }
        drop(clients);
        claim.done.set(RELEASED);
    }

    /// Whether no connection has claimed the client id since `generation`
    /// (a delayed will is still due).
    pub fn still_current(&self, key: &(String, Bytes), generation: u64) -> bool {
        match self.clients.lock().get(key) {
            Some(slot) => slot.generation == generation && slot.live.is_none(),
            None => true,
        }
    }
}
