//! The broker: the set of vhosts and users one server process serves.
//!
//! Management of vhosts, users and permissions (what `rabbitmqctl` does) is in
//! [`crate::admin`]; this file holds the state and what connections need.

use crate::auth::User;
use crate::connections::Connections;
use crate::error::{BrokerError, Result};
use crate::permissions::Permission;
use crate::queue::ConnectionId;
use crate::stats::{ChurnStats, MessageSnapshot};
use crate::store::Store;
use crate::vhost::VHost;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Limits a client negotiates within (connection.tune).
#[derive(Debug, Clone)]
pub struct Limits {
    pub frame_max: u32,
    pub channel_max: u16,
    /// Heartbeat interval the server proposes, seconds (0 = off).
    pub heartbeat: u16,
    /// Largest message body accepted (RabbitMQ's max_message_size, default 128 MiB).
    pub max_message_size: u64,
    /// How long a client has from TCP accept to being logged in, on every
    /// protocol (RabbitMQ's `handshake_timeout`, 10 s). One deadline from
    /// accept: neither a protocol header nor a trickle of bytes extends it,
    /// so slowloris clients cannot hold sockets open.
    pub handshake_timeout: std::time::Duration,
    /// Most client connections the node keeps open, all protocols together
    /// (RabbitMQ's `connection_max`; `None`: no limit, its `infinity`).
    pub connection_max: Option<usize>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            max_message_size: 128 * 1024 * 1024,
            handshake_timeout: std::time::Duration::from_secs(10),
            connection_max: None,
        }
    }
}

pub struct Broker {
    pub store: Arc<Store>,
    pub(crate) vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    pub(crate) users: RwLock<HashMap<String, User>>,
    /// user → vhost → compiled permission. Having an entry is what lets the
    /// user open the vhost.
    pub(crate) permissions: RwLock<HashMap<String, HashMap<String, Arc<Permission>>>>,
    /// Topic permissions by (user, vhost, exchange), as set; connections
    /// compile their own (see [`crate::topic_permissions`]).
    pub(crate) topic_permissions: RwLock<
        std::collections::BTreeMap<
            (String, String, String),
            crate::topic_permissions::TopicPermissionDef,
        >,
    >,
    /// Global runtime parameters (`/api/global-parameters`).
    pub(crate) global_parameters: RwLock<std::collections::BTreeMap<String, serde_json::Value>>,
    /// Bumped on every change of users or permissions: connections cache their
    /// permission (and what they already checked against it) and compare this
    /// one atomic to know the cache is still good.
    auth_generation: AtomicU64,
    /// Open client connections (so deleting a vhost or user can close them).
    pub connections: Arc<Connections>,
    /// Connections, channels and queues opened and closed since start
    /// (overview `churn_rates`, Prometheus `rabbitmq_*_opened_total`...).
    pub churn: Arc<ChurnStats>,
    /// What deleted vhosts had counted (for the node's Prometheus counters).
    pub(crate) retired: crate::stats::RetiredVHosts,
    /// Whether the first boot's defaults (vhost "/", guest) were created.
    pub(crate) initialized: std::sync::atomic::AtomicBool,
    /// Serializes management changes, so memory and the definitions file agree
    /// on their order.
    pub(crate) admin_lock: parking_lot::Mutex<()>,
    pub limits: Limits,
    next_connection: AtomicU64,
    /// A raised resource alarm (memory, disk) and its reason. Publishing
    /// connections stop being read while it is set (connection.blocked).
    alarm: tokio::sync::watch::Sender<Option<String>>,
    /// Refused logins, logged at a bounded rate (a password-guessing flood
    /// must not flood the log or the disk).
    refusals: crate::auth::RefusalLog,
    /// A cluster's metadata replicator (see [`crate::meta`]); unset on a
    /// single node.
    /// Shared with every vhost, so that a queue a node deletes on its own
    /// (auto-delete, `x-expires`) is deleted cluster-wide.
    pub(crate) replicator: crate::meta::ReplicatorCell,
}

impl Broker {
    /// Open the broker's data directory: vhosts, users and permissions stored
    /// there are restored, then durable definitions and messages. A vhost that
    /// only appears in older definitions (from before vhosts were stored) is
    /// recorded as a vhost now. The default user is not added here (see
    /// [`Broker::create_defaults_once`]).
    pub fn open(
        data_dir: &Path,
        limits: Limits,
        storage: &crate::store::LogOptions,
    ) -> std::io::Result<Arc<Broker>> {
        let (store, mut recovered) = Store::open(data_dir, storage)?;
        let broker = Broker::new(limits, store);
        broker.restore_access(&recovered.definitions);
        broker.restore_runtime(&recovered.definitions);
        let mut names: Vec<String> = recovered
            .definitions
            .exchanges
            .values()
            .map(|e| e.vhost.clone())
            .collect();
        names.extend(
            recovered
                .definitions
                .queues
                .values()
                .map(|q| q.vhost.clone()),
        );
        names.extend(
            recovered
                .definitions
                .policies
                .values()
                .map(|p| p.vhost.clone()),
        );
        names.sort();
        names.dedup();
        for name in &names {
            if !recovered.definitions.vhosts.contains(name) {
                broker.store.definitions.save_vhost(name);
            }
        }
        names.extend(recovered.definitions.vhosts.iter().cloned());
        names.sort();
        names.dedup();
        for name in names {
            let v = broker.ensure_vhost(&name);
            v.restore(&recovered.definitions, &mut recovered.messages);
            v.restore_runtime(&recovered.definitions);
        }
        // Messages of queues that no longer exist (deleted, with the acks of
        // the deletion lost in a crash) are acked now, so that compaction
        // drops them; unreferenced, their segments are reclaimed.
        for (queue, mut msgs) in recovered.messages {
            loop {
                let chunk = msgs.pop_many(&broker.store.log, 64 * 1024);
                if chunk.is_empty() {
                    break;
                }
                let acked: Vec<(u64, u32)> =
                    chunk.iter().map(|m| (m.msg_id, m.loc.segment)).collect();
                broker.store.log.append_ack(queue, &acked);
            }
        }
        broker.store.log.release_unclaimed_streams();
        Ok(broker)
    }

    /// An empty broker over `store`: no vhosts, no users.
    pub fn new(limits: Limits, store: Arc<Store>) -> Arc<Broker> {
        let churn = Arc::new(ChurnStats::default());
        Arc::new(Broker {
            store,
            connections: Arc::new(Connections::new(churn.clone())),
            churn,
            retired: Default::default(),
            vhosts: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            permissions: RwLock::new(HashMap::new()),
            topic_permissions: RwLock::new(Default::default()),
            global_parameters: RwLock::new(Default::default()),
            auth_generation: AtomicU64::new(1),
            initialized: std::sync::atomic::AtomicBool::new(false),
            admin_lock: parking_lot::Mutex::new(()),
            limits,
            next_connection: AtomicU64::new(1),
            alarm: tokio::sync::watch::channel(None).0,
            refusals: Default::default(),
            replicator: Default::default(),
        })
    }

    /// The vhost called `name`, created in memory if missing (not stored: for
    /// restoring, embedding and tests; management uses [`Broker::add_vhost`]).
    pub fn ensure_vhost(&self, name: &str) -> Arc<VHost> {
        self.vhosts
            .write()
            .entry(name.to_string())
            .or_insert_with(|| {
                VHost::new_in_cluster(
                    name,
                    self.store.clone(),
                    self.churn.clone(),
                    self.replicator.clone(),
                )
            })
            .clone()
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts.read().values().cloned().collect()
    }

    /// Add or replace a user in memory only (config-file users, which are
    /// re-applied at every start; management uses [`Broker::add_user`]).
    pub fn put_user(&self, user: User) {
        self.users.write().insert(user.name.clone(), user);
        self.bump_auth_generation();
    }

    /// Give `user` permission on `vhost` in memory only (config-file users).
    pub fn put_permission(&self, p: Permission) {
        let p = Arc::new(p);
        self.permissions
            .write()
            .entry(p.def.user.clone())
            .or_default()
            .insert(p.def.vhost.clone(), p);
        self.bump_auth_generation();
    }

    pub fn user(&self, name: &str) -> Option<User> {
        self.users.read().get(name).cloned()
    }

    /// The permission of `user` on `vhost` (None: no access).
    pub fn permission(&self, user: &str, vhost: &str) -> Option<Arc<Permission>> {
        self.permissions.read().get(user)?.get(vhost).cloned()
    }

    /// Changes whenever users or permissions change (see the field).
    pub fn auth_generation(&self) -> u64 {
        self.auth_generation.load(Ordering::Acquire)
    }

    pub(crate) fn bump_auth_generation(&self) {
        self.auth_generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Raise (Some(reason)) or clear (None) the resource alarm.
    pub fn set_alarm(&self, reason: Option<String>) {
        self.alarm.send_if_modified(|cur| {
            let changed = *cur != reason;
            *cur = reason;
            changed
        });
    }

    /// Watch the resource alarm.
    pub fn alarm(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.alarm.subscribe()
    }

    /// Start the broker's background timers (delayed messages recovered from
    /// disk) and the statistics sampler (rates, every 5 s); call once inside
    /// the runtime.
    pub fn start_background(self: &Arc<Self>) {
        for v in self.vhosts() {
            if !v.delayed().is_empty() {
                v.delayed().start(&v);
            }
            for q in v.queues() {
                q.start_timers();
            }
        }
        crate::stats::sampler::spawn(self);
    }

    /// The broker's `message_stats` (/api/overview): every vhost's
    /// [`VHost::message_stats`] summed.
    pub fn message_stats(&self) -> MessageSnapshot {
        let mut total = MessageSnapshot::default();
        for v in self.vhosts() {
            total.add(&v.message_stats());
        }
        total
    }

    /// The node's totals for Prometheus' `rabbitmq_global_*` counters: live
    /// vhosts' and deleted ones', so they never go backwards.
    pub fn global_totals(&self) -> crate::stats::GlobalTotals {
        let mut t = self.retired.get();
        for v in self.vhosts() {
            t.add(&crate::stats::GlobalTotals::of(&v));
        }
        t
    }

    /// A fresh id for a client connection.
    pub fn next_connection_id(&self) -> ConnectionId {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    /// Check a username/password login from `peer`. Errors carry 403 with
    /// RabbitMQ's texts.
    pub fn authenticate(
        &self,
        username: &str,
        password: &[u8],
        peer: Option<IpAddr>,
    ) -> Result<User> {
        let refused = || {
            BrokerError::access_refused(
                "Login was refused using authentication mechanism PLAIN. For details see the broker logfile.",
            )
        };
        let Some(user) = self.user(username) else {
            crate::auth::check_unknown_user(password);
            self.refusals.refused(username, peer, "no such user");
            return Err(refused());
        };
        if !user.check_password(password) {
            self.refusals.refused(username, peer, "wrong password");
            return Err(refused());
        }
        if user.loopback_only && !peer.is_some_and(is_loopback) {
            return Err(BrokerError::access_refused(format!(
                "User '{}' can only connect via localhost",
                username
            )));
        }
        Ok(user)
    }

    /// Log in the user a verified client certificate names (AMQP's EXTERNAL,
    /// STOMP and MQTT certificate logins): the user must exist, as with
    /// RabbitMQ's internal backend, and no password is checked (the TLS
    /// handshake checked the certificate). The loopback rule still applies.
    pub fn authenticate_certificate(&self, username: &str, peer: Option<IpAddr>) -> Result<User> {
        let user = self.user(username).ok_or_else(|| {
            BrokerError::access_refused(
                "Login was refused using authentication mechanism EXTERNAL. For details see the broker logfile.",
            )
        })?;
        if user.loopback_only && !peer.map(|p| p.is_loopback()).unwrap_or(false) {
            return Err(BrokerError::access_refused(format!(
                "User '{}' can only connect via localhost",
                username
            )));
        }
        Ok(user)
    }

    /// Open a vhost for a user (connection.open): 530 NOT_ALLOWED if it does not
    /// exist or the user has no access, as RabbitMQ answers.
    pub fn open_vhost(&self, user: &User, vhost: &str) -> Result<Arc<VHost>> {
        let v = self
            .vhost(vhost)
            .ok_or_else(|| BrokerError::not_allowed(format!("vhost {} not found", vhost)))?;
        if self.permission(&user.name, vhost).is_none() {
            return Err(BrokerError::not_allowed(format!(
                "access to vhost '{}' refused for user '{}'",
                vhost, user.name
            )));
        }
        self.check_connection_limits(user, &v)?;
        Ok(v)
    }
}

/// Whether a client address is the local host: 127.0.0.0/8, ::1, and IPv4
/// loopback as a dual-stack (`::`) listener reports it, `::ffff:127.x.y.z`
/// (`Ipv6Addr::is_loopback` alone says no to that one).
pub fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// guest logs in from 127.0.0.1, ::1 and ::ffff:127.0.0.1 (a dual-stack
    /// listener's IPv4 loopback client), and from nowhere else.
    #[test]
    fn guest_is_loopback_only_on_every_address_family() {
        let (b, _dir) = crate::testing::scratch_broker("broker", "loopback");
        b.create_defaults_once(true);
        for ok in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
            let ip: IpAddr = ok.parse().expect("ip");
            assert!(b.authenticate("guest", b"guest", Some(ip)).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.1",
            "192.168.1.2",
            "::ffff:10.0.0.1",
            "fe80::1",
            "2001:db8::1",
            "::",
        ] {
            let ip: IpAddr = bad.parse().expect("ip");
            let e = b.authenticate("guest", b"guest", Some(ip)).expect_err(bad);
            assert_eq!(e.code, 403);
            assert_eq!(e.text, "User 'guest' can only connect via localhost");
        }
        assert!(b.authenticate("guest", b"guest", None).is_err());
    }
}
