//! An MQTT publish into the broker core: retained-message store, then the
//! core's one publish path (`VHost::publish`) on the MQTT exchange
//! (`amq.topic`). Used by sessions and by wills (a delayed will outlives its
//! connection, so this holds only what a publish needs).
//!
//! Permissions are the core's one check ([`AccessCache`]), as for AMQP and
//! STOMP: write on the exchange, then the topic permission (write) on the
//! routing key, with `{client_id}` standing for the MQTT client id as in
//! RabbitMQ's MQTT plugin. Subscriptions check the topic permission (read)
//! on their binding key through [`Publisher::check_topic`].

use bytes::Bytes;
use std::sync::Arc;
use warren_core::confirm::ConfirmTracker;
use warren_core::permissions::{Access, AccessCache, Resource};
use warren_core::vhost::Published;
use warren_core::{BrokerError, ConnectionId, Exchange, Message, Queue, ShortStr, VHost};

use crate::mapping;
use crate::packet::QoS;
use crate::properties::Properties;
use crate::registry::Node;
use crate::retained::Retained;
use crate::topic;

pub struct Publisher {
    pub node: Arc<Node>,
    pub vhost: Arc<VHost>,
    pub user: String,
    pub conn: ConnectionId,
    access: AccessCache,
    /// The exchange and the auth generation its write access was checked at:
    /// a stream of publishes costs no lookup and no regex.
    cache: Option<(Arc<Exchange>, u64)>,
    route_buf: Vec<Arc<Queue>>,
    /// Who publishes, for the firehose tracer (`publish.<exchange>`).
    /// (Shared with the connection's delivery side: one copy of the
    /// names per connection.)
    pub origin: Option<Arc<warren_core::trace::Origin>>,
}

impl Publisher {
    pub fn new(
        node: Arc<Node>,
        vhost: Arc<VHost>,
        user: String,
        conn: ConnectionId,
        client_id: &[u8],
    ) -> Publisher {
        Publisher {
            node,
            vhost,
            user,
            conn,
            access: AccessCache::with_client_id(&String::from_utf8_lossy(client_id)),
            cache: None,
            route_buf: Vec::new(),
            origin: None,
        }
    }

    pub fn check(
        &mut self,
        access: Access,
        kind: Resource,
        name: &[u8],
    ) -> Result<(), BrokerError> {
        let broker = self.node.broker.clone();
        self.access
            .check(&broker, &self.user, &self.vhost, access, kind, name)
    }

    /// The topic permission (`Write`: publish, `Read`: subscribe) for the
    /// routing or binding key `key` on `exchange` (no topic permission set:
    /// allowed; refused: ACCESS_REFUSED).
    pub fn check_topic(
        &mut self,
        access: Access,
        exchange: &Exchange,
        key: &[u8],
    ) -> Result<(), BrokerError> {
        let broker = self.node.broker.clone();
        self.access
            .check_topic(&broker, &self.user, &self.vhost, access, exchange, key)
    }

    /// The MQTT exchange, for checks that need it.
    pub fn mqtt_exchange(&mut self) -> Result<Arc<Exchange>, BrokerError> {
        let name = self.node.config.exchange.clone();
        self.vhost.get_exchange(&ShortStr::from(name.as_str()))
    }

    fn exchange(&mut self) -> Result<Arc<Exchange>, BrokerError> {
        let generation = self.node.broker.auth_generation();
        if let Some((x, g)) = &self.cache {
            if *g == generation && !x.is_deleted() {
                return Ok(x.clone());
            }
        }
        self.cache = None;
        let name = self.node.config.exchange.clone();
        self.check(Access::Write, Resource::Exchange, name.as_bytes())?;
        let x = self.vhost.get_exchange(&ShortStr::from(name.as_str()))?;
        self.cache = Some((x.clone(), generation));
        Ok(x)
    }

    /// Publish; returns what the core did (its log ticket is what a PUBACK
    /// waits for) and the retained store's ticket (0: nothing retained).
    pub fn publish(
        &mut self,
        topic_name: &[u8],
        qos: QoS,
        retain: bool,
        properties: &Properties,
        payload: Bytes,
        confirms: Option<&Arc<ConfirmTracker>>,
    ) -> Result<(Published, u64), BrokerError> {
        let x = self.exchange()?;
        self.vhost.check_publishable(&x)?;
        let key = topic::to_amqp(topic_name);
        self.check_topic(Access::Write, &x, &key)?;
        let max = self.node.broker.limits.max_message_size;
        if payload.len() as u64 > max {
            return Err(BrokerError::precondition_failed(format!(
                "message size {} is larger than configured max size {}",
                payload.len(),
                max
            )));
        }
        let mut retained = 0;
        if retain {
            let mut kept = properties.clone();
            kept.topic_alias = None;
            kept.subscription_identifiers.clear();
            retained = self.node.retained.put(
                &self.vhost.name.to_string_lossy(),
                Retained {
                    topic: Bytes::copy_from_slice(topic_name),
                    qos,
                    payload: payload.clone(),
                    properties: kept,
                    stored_at: warren_core::queue::now_ms(),
                },
            );
        }
        let props = mapping::encoded(qos, retain, properties);
        let message =
            Message::published_by(self.conn, x.name.clone(), ShortStr(key), props, payload);
        if self.vhost.is_tracing() {
            warren_core::trace::set_origin(self.origin.as_deref().cloned());
        }
        let mut out = std::mem::take(&mut self.route_buf);
        let published = self.vhost.publish_with(&x, message, &mut out, confirms);
        out.clear();
        self.route_buf = out;
        Ok((published, retained))
    }
}
