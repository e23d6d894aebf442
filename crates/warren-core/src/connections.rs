//! The broker's list of open client connections, so that management operations
//! can force some of them closed (deleting a vhost or a user closes its
//! connections with 320 CONNECTION_FORCED, as RabbitMQ does).
//!
//! Protocol-agnostic: an adapter registers each connection once it is open and
//! watches the returned receiver; when it turns `Some(error)`, the adapter closes
//! the connection with that error in its own protocol. Dropping the
//! [`Registration`] removes the entry.

use crate::error::BrokerError;
use crate::queue::ConnectionId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::watch;

struct Entry {
    user: String,
    vhost: String,
    close: watch::Sender<Option<BrokerError>>,
}

#[derive(Default)]
pub struct Connections {
    open: Mutex<HashMap<ConnectionId, Entry>>,
}

/// A registered connection; unregisters on drop.
pub struct Registration {
    registry: Arc<Connections>,
    id: ConnectionId,
    /// Becomes `Some(error)` when the broker wants the connection closed.
    pub closed: watch::Receiver<Option<BrokerError>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.registry.open.lock().remove(&self.id);
    }
}

impl Connections {
    /// Register an open connection of `user` on `vhost`.
    pub fn register(self: &Arc<Self>, id: ConnectionId, user: &str, vhost: &str) -> Registration {
        let (close, closed) = watch::channel(None);
        self.open.lock().insert(
            id,
            Entry {
                user: user.into(),
                vhost: vhost.into(),
                close,
            },
        );
        Registration {
            registry: self.clone(),
            id,
            closed,
        }
    }

    /// Ask every connection on `vhost` to close with `error`; returns how many.
    pub fn close_vhost(&self, vhost: &str, error: &BrokerError) -> usize {
        self.close_where(|e| e.vhost == vhost, error)
    }

    /// Ask every connection of `user` to close with `error`; returns how many.
    pub fn close_user(&self, user: &str, error: &BrokerError) -> usize {
        self.close_where(|e| e.user == user, error)
    }

    fn close_where(&self, pred: impl Fn(&Entry) -> bool, error: &BrokerError) -> usize {
        let open = self.open.lock();
        let mut n = 0;
        for e in open.values().filter(|e| pred(e)) {
            let _ = e.close.send(Some(error.clone()));
            n += 1;
        }
        n
    }

    /// Number of open (registered) connections.
    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
