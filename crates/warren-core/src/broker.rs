//! The broker: the set of vhosts and users one server process serves.

use crate::auth::User;
use crate::error::{BrokerError, Result};
use crate::queue::ConnectionId;
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
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            max_message_size: 128 * 1024 * 1024,
        }
    }
}

pub struct Broker {
    pub store: Arc<Store>,
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    users: RwLock<HashMap<String, User>>,
    pub limits: Limits,
    next_connection: AtomicU64,
    /// A raised resource alarm (memory, disk) and its reason. Publishing
    /// connections stop being read while it is set (connection.blocked).
    alarm: tokio::sync::watch::Sender<Option<String>>,
}

impl Broker {
    /// Open the broker's data directory: durable definitions and messages found
    /// there are restored (their vhosts created). No users are added.
    pub fn open(
        data_dir: &Path,
        limits: Limits,
        storage: &crate::store::LogOptions,
    ) -> std::io::Result<Arc<Broker>> {
        let (store, mut recovered) = Store::open(data_dir, storage)?;
        let broker = Broker::new(limits, store);
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
        for name in names {
            let v = broker.add_vhost(&name);
            v.restore(&recovered.definitions, &mut recovered.messages);
        }
        // Messages of queues that no longer exist stay unreferenced; their
        // segments are reclaimed.
        Ok(broker)
    }

    /// An empty broker over `store`: no vhosts, no users.
    pub fn new(limits: Limits, store: Arc<Store>) -> Arc<Broker> {
        Arc::new(Broker {
            store,
            vhosts: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            limits,
            next_connection: AtomicU64::new(1),
            alarm: tokio::sync::watch::channel(None).0,
        })
    }

    /// RabbitMQ's out-of-the-box user: guest/guest, administrator, access to
    /// vhost `/`, allowed from loopback only.
    pub fn add_default_user(&self) {
        let mut guest = User::new("guest", "guest");
        guest.tags.push("administrator".into());
        guest.vhosts.insert("/".into());
        guest.loopback_only = true;
        self.add_user(guest);
    }

    pub fn add_vhost(&self, name: &str) -> Arc<VHost> {
        self.vhosts
            .write()
            .entry(name.to_string())
            .or_insert_with(|| VHost::new(name, self.store.clone()))
            .clone()
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts.read().get(name).cloned()
    }

    pub fn vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts.read().values().cloned().collect()
    }

    pub fn add_user(&self, user: User) {
        self.users.write().insert(user.name.clone(), user);
    }

    pub fn user(&self, name: &str) -> Option<User> {
        self.users.read().get(name).cloned()
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
    /// disk); call once inside the runtime.
    pub fn start_background(&self) {
        for v in self.vhosts() {
            if !v.delayed().is_empty() {
                v.delayed().start(&v);
            }
            for q in v.queues() {
                q.start_timers();
            }
        }
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
        let user = self.user(username).ok_or_else(refused)?;
        if !user.check_password(password) {
            return Err(refused());
        }
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
        if !user.vhosts.contains(vhost) {
            return Err(BrokerError::not_allowed(format!(
                "access to vhost '{}' refused for user '{}'",
                vhost, user.name
            )));
        }
        Ok(v)
    }
}
