//! Permission checks for AMQP operations (RabbitMQ's "How Permissions Work"
//! table), with the connection's permission cached.
//!
//! The connection keeps its user's compiled permission for its vhost and the
//! broker's auth generation it was read at; one atomic load tells whether it is
//! still current (users and permissions change rarely, operations are
//! frequent). The publish path goes further: the channel remembers the exchange
//! it last checked write access to (see `Channel::on_publish`), so a stream of
//! publishes costs no regex match at all.

use crate::channel::ConnContext;
use std::sync::Arc;
use warren_core::permissions::{self, Access, Permission, Resource};
use warren_core::BrokerError;

/// The user's permission on the connection's vhost, as of `generation`.
pub struct AccessCache {
    generation: u64,
    permission: Option<Arc<Permission>>,
}

impl AccessCache {
    pub fn new() -> AccessCache {
        AccessCache {
            // Generations start at 1: the first check always loads.
            generation: 0,
            permission: None,
        }
    }
}

impl Default for AccessCache {
    fn default() -> Self {
        Self::new()
    }
}

impl ConnContext {
    /// Check `access` to the queue or exchange `name` (403 with RabbitMQ's text
    /// if refused).
    pub fn check(
        &mut self,
        access: Access,
        kind: Resource,
        name: &[u8],
    ) -> Result<(), BrokerError> {
        let generation = self.broker.auth_generation();
        if self.access.generation != generation {
            let vhost = self.vhost.name.to_string_lossy();
            self.access.permission = self.broker.permission(&self.user, &vhost);
            self.access.generation = generation;
        }
        permissions::check(
            self.access.permission.as_deref(),
            access,
            kind,
            name,
            &self.vhost.name.to_string_lossy(),
            &self.user,
        )
    }

    pub fn check_queue(&mut self, access: Access, name: &[u8]) -> Result<(), BrokerError> {
        self.check(access, Resource::Queue, name)
    }

    pub fn check_exchange(&mut self, access: Access, name: &[u8]) -> Result<(), BrokerError> {
        self.check(access, Resource::Exchange, name)
    }
}
