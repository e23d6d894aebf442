//! The broker's list of open client connections, for every protocol: what
//! the management API lists, and how management operations force some of
//! them closed (deleting a vhost or a user, `DELETE /api/connections/NAME`:
//! 320 CONNECTION_FORCED, as RabbitMQ does).
//!
//! Protocol-agnostic: an adapter registers each connection once it is open,
//! with a [`ConnectionInfo`], and watches the returned receiver; when it turns
//! `Some(error)`, the adapter closes the connection with that error in its own
//! protocol. Dropping the [`Registration`] removes the entry. Registering and
//! unregistering emit `connection.created` / `connection.closed` on the event
//! exchange, so every protocol's connections produce them.

mod close_signal;
mod info;

pub use close_signal::{CloseSender, Closed, SenderGone};
pub use info::{ChannelInfo, ChannelSource, ConnectionInfo};

use crate::error::BrokerError;
use crate::queue::ConnectionId;
use crate::stats::{add_into, ChurnField, ChurnStats, ConnectionSnapshot};
use crate::vhost::VHost;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;

/// RabbitMQ's reply text when management closes a connection
/// (`DELETE /api/connections/NAME` without an `X-Reason` header).
pub const CLOSED_VIA_MANAGEMENT: &str = "Closed via management plugin";

struct Entry {
    info: Arc<ConnectionInfo>,
    close: CloseSender,
}

pub struct Connections {
    open: Mutex<HashMap<ConnectionId, Entry>>,
    /// Counts connections registered and unregistered (the broker's churn:
    /// overview `churn_rates`, Prometheus' `rabbitmq_connections_opened_total`).
    churn: Arc<ChurnStats>,
}

/// A registered connection; unregisters on drop.
pub struct Registration {
    registry: Arc<Connections>,
    info: Arc<ConnectionInfo>,
    /// Becomes `Some(error)` when the broker wants the connection closed.
    pub closed: Closed,
}

impl Registration {
    /// What was registered.
    pub fn info(&self) -> &Arc<ConnectionInfo> {
        &self.info
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.open.lock().remove(&self.info.id);
        self.registry.churn.add(ChurnField::ConnectionClosed, 1);
        // Its traffic stays in its vhost's totals.
        let info = &self.info;
        info.vhost.stats.connections.retire(&info.stats.values());
        crate::events::connection_closed(info);
    }
}

impl Connections {
    /// An empty registry counting into `churn`.
    pub fn new(churn: Arc<ChurnStats>) -> Connections {
        Connections {
            open: Mutex::new(HashMap::new()),
            churn,
        }
    }

    /// Register an open connection (and emit `connection.created`).
    pub fn register(self: &Arc<Self>, info: ConnectionInfo) -> Registration {
        let info = Arc::new(info);
        let (close, closed) = close_signal::channel();
        self.churn.add(ChurnField::ConnectionCreated, 1);
        self.open.lock().insert(
            info.id,
            Entry {
                info: info.clone(),
                close,
            },
        );
        crate::events::connection_created(&info);
        Registration {
            registry: self.clone(),
            info,
            closed,
        }
    }

    /// Every open connection, in the order they were opened.
    pub fn list(&self) -> Vec<Arc<ConnectionInfo>> {
        let mut all: Vec<Arc<ConnectionInfo>> =
            self.open.lock().values().map(|e| e.info.clone()).collect();
        all.sort_by_key(|c| c.id);
        all
    }

    /// The open connection with this id (consumers name theirs by id).
    pub fn get(&self, id: ConnectionId) -> Option<Arc<ConnectionInfo>> {
        self.open.lock().get(&id).map(|e| e.info.clone())
    }

    /// The open connection called `name` ("peer -> local").
    pub fn get_by_name(&self, name: &str) -> Option<Arc<ConnectionInfo>> {
        self.open
            .lock()
            .values()
            .find(|e| e.info.name == name)
            .map(|e| e.info.clone())
    }

    /// Ask the connection called `name` to close with `error` (what
    /// `DELETE /api/connections/NAME` does, with
    /// `BrokerError::connection_forced(CLOSED_VIA_MANAGEMENT)`). Returns
    /// whether such a connection was open.
    pub fn close_by_name(&self, name: &str, error: BrokerError) -> bool {
        self.close_where(|e| e.info.name == name, &error) > 0
    }

    /// Ask the connection with this id to close with `error` (an MQTT
    /// session takeover: the client-id registry keeps the id, not the name).
    /// Returns whether it was open.
    pub fn close_by_id(&self, id: ConnectionId, error: BrokerError) -> bool {
        self.close_where(|e| e.info.id == id, &error) > 0
    }

    /// Ask every connection on `vhost` to close with `error`; returns how many.
    pub fn close_vhost(&self, vhost: &str, error: &BrokerError) -> usize {
        self.close_where(|e| e.info.vhost.name.as_bytes() == vhost.as_bytes(), error)
    }

    /// Ask every connection of `user` to close with `error`; returns how many.
    pub fn close_user(&self, user: &str, error: &BrokerError) -> usize {
        self.close_where(|e| e.info.user == user, error)
    }

    fn close_where(&self, pred: impl Fn(&Entry) -> bool, error: &BrokerError) -> usize {
        let open = self.open.lock();
        let mut n = 0;
        for e in open.values().filter(|e| pred(e)) {
            e.close.send(Some(error.clone()));
            n += 1;
        }
        n
    }

    /// Traffic of `vhost`'s connections (`recv_oct`, `send_oct`... with
    /// rates, for /api/vhosts): the open ones' counters plus what closed
    /// ones had counted.
    pub fn vhost_totals(&self, vhost: &VHost) -> ConnectionSnapshot {
        let mut live = [0u64; 4];
        for c in self.list() {
            if std::ptr::eq(Arc::as_ptr(&c.vhost), vhost) {
                add_into(&mut live, &c.stats.values());
            }
        }
        vhost.stats.connections.with_live(&live)
    }

    /// Number of open (registered) connections.
    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
