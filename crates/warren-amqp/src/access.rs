//! Permission checks for AMQP operations (RabbitMQ's "How Permissions Work"
//! table), through the connection's `AccessCache` (shared with every adapter,
//! in the core). The publish path goes further: the channel remembers the
//! exchange it last checked write access to (see `Channel::on_publish`), so a
//! stream of publishes costs no regex match at all.

use crate::channel::ConnContext;
use warren_core::permissions::{Access, Resource};
use warren_core::{BrokerError, Exchange};

impl ConnContext {
    /// Check `access` to the queue or exchange `name` (403 with RabbitMQ's text
    /// if refused).
    pub fn check(
        &mut self,
        access: Access,
        kind: Resource,
        name: &[u8],
    ) -> Result<(), BrokerError> {
        self.access
            .check(&self.broker, &self.user, &self.vhost, access, kind, name)
    }

    pub fn check_queue(&mut self, access: Access, name: &[u8]) -> Result<(), BrokerError> {
        self.check(access, Resource::Queue, name)
    }

    pub fn check_exchange(&mut self, access: Access, name: &[u8]) -> Result<(), BrokerError> {
        self.check(access, Resource::Exchange, name)
    }

    /// The topic permission check (write: publish with routing key `key`,
    /// read: bind with binding key `key`); only topic exchanges concerned.
    pub fn check_topic(
        &mut self,
        access: Access,
        exchange: &Exchange,
        key: &[u8],
    ) -> Result<(), BrokerError> {
        self.access
            .check_topic(&self.broker, &self.user, &self.vhost, access, exchange, key)
    }

    /// Binding to or unbinding from exchange `source` with `key` needs read
    /// on the topic (a missing exchange is the bind's own 404, as RabbitMQ).
    pub fn check_bind_topic(&mut self, source: &[u8], key: &[u8]) -> Result<(), BrokerError> {
        match self.vhost.exchange(source) {
            Some(x) => self.check_topic(Access::Read, &x, key),
            None => Ok(()),
        }
    }
}
