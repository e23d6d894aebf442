//! A clustered node's MQTT subscriptions: a persistent session's queues
//! (`mqtt-subscription-<client>qos0|qos1`) and their bindings go through the
//! cluster's metadata replicator (`warren_core::meta`) before the packet is
//! handled, so every node has them: a device that reconnects to another
//! node finds its subscriptions there, and the messages queued for it on
//! the queue's home node are delivered through it (classic queues across
//! nodes).
//!
//! As in the AMQP and STOMP adapters, the session's own code stays the
//! authority on errors: only what would succeed here is replicated, and the
//! handler then runs its usual local calls, which find the queue and binding
//! made. Node-local, as exclusive queues are: a clean session's queues (they
//! live and die with their connection) and shared subscriptions' group
//! queues. Deletions (clean start, session expiry, DISCONNECT with expiry
//! 0) go through `VHost::retire_queue`.

use std::collections::HashSet;
use std::sync::Arc;
use warren_core::meta::{queue_declare_op, MetaOp, MetadataReplicator};
use warren_core::permissions::{Access, Resource};
use warren_core::store::definitions::table_to_hex;
use warren_core::ShortStr;

use super::{binding_args, queue_name, Fail, Persistence, Session};
use crate::delivery::{QueueKind, Sub};
use crate::packet::{Packet, QoS, Subscribe, Unsubscribe};
use crate::reason::ReasonCode;
use crate::topic;

impl Session {
    /// On a clustered node, replicate what a SUBSCRIBE or UNSUBSCRIBE of a
    /// persistent session is about to change; a refusal (no majority, no
    /// leader) ends the connection with the replicator's reason, and the
    /// packet is not handled. Other packets, a single node and clean
    /// sessions return at once.
    pub async fn replicate_first(&mut self, packet: &Packet) -> Result<(), Fail> {
        if !matches!(packet, Packet::Subscribe(_) | Packet::Unsubscribe(_))
            || self.persistence == Persistence::Clean
        {
            return Ok(());
        }
        let Some(r) = self.node.broker.replicator().cloned() else {
            return Ok(());
        };
        let refused =
            |e: warren_core::BrokerError| Fail::new(ReasonCode::UNSPECIFIED_ERROR, e.text);
        // Decide on up-to-date metadata (see `MetadataReplicator::sync`).
        r.sync().await.map_err(refused)?;
        let ops = match packet {
            Packet::Subscribe(s) => self.subscribe_ops(s, &r),
            Packet::Unsubscribe(u) => self.unsubscribe_ops(u),
            _ => Vec::new(),
        };
        for op in ops {
            r.replicate(op).await.map_err(refused)?;
        }
        Ok(())
    }

    fn exchange(&self) -> ShortStr {
        ShortStr::from(self.node.config.exchange.as_str())
    }

    fn vhost_name(&self) -> String {
        self.vhost.name.to_string_lossy().into_owned()
    }

    /// The declares and bindings a SUBSCRIBE's valid, permitted, non-shared
    /// filters make (a repeated filter's old binding unbound first, as the
    /// handler replaces it).
    fn subscribe_ops(&mut self, s: &Subscribe, r: &Arc<dyn MetadataReplicator>) -> Vec<MetaOp> {
        let mut ops = Vec::new();
        let mut declared = HashSet::new();
        // The queues (by kind) that are cluster-wide: only their bindings
        // are replicated.
        let mut shared = HashSet::new();
        let id = s.properties.subscription_identifiers.first().copied();
        let exchange = self.exchange();
        let node = r.node_name();
        for (filter, options) in &s.filters {
            if self.version.is_v5() && filter.starts_with(b"$share/") {
                continue; // a group's queue: node-local
            }
            if topic::validate_filter(filter).is_err() {
                continue; // the handler refuses it
            }
            let kind = match options.qos {
                QoS::AtMostOnce => QueueKind::Qos0,
                _ => QueueKind::Qos1,
            };
            let queue = queue_name(&self.client_id, kind);
            // (As the handler: configure is needed to create the queue only.)
            let exists = self.vhost.named_queue(queue.as_bytes()).is_some();
            if !exists
                && self
                    .publisher
                    .check(Access::Configure, Resource::Queue, queue.as_bytes())
                    .is_err()
            {
                continue;
            }
            if declared.insert(kind) {
                let opts = self.queue_options();
                match queue_declare_op(&self.vhost, &queue, &opts, &node) {
                    Some(op) => {
                        ops.push(op);
                        shared.insert(kind);
                    }
                    // Already here: cluster-wide if it has a home (a queue
                    // made before this node was clustered stays local).
                    None => {
                        let q = self.vhost.named_queue(queue.as_bytes());
                        if q.is_some_and(|q| q.home().is_some()) {
                            shared.insert(kind);
                        }
                    }
                }
            }
            if !shared.contains(&kind) {
                continue;
            }
            let key = ShortStr(topic::to_amqp(filter));
            let permitted = self
                .publisher
                .check(Access::Write, Resource::Queue, queue.as_bytes())
                .and_then(|_| {
                    self.publisher
                        .check(Access::Read, Resource::Exchange, exchange.as_bytes())
                })
                .and_then(|_| {
                    let x = self.publisher.mqtt_exchange()?;
                    self.publisher.check_topic(Access::Read, &x, key.as_bytes())
                });
            if permitted.is_err() || self.vhost.exchange(exchange.as_bytes()).is_none() {
                continue;
            }
            ops.extend(self.unbind_op(filter));
            let sub = Sub {
                filter: filter.clone(),
                options: *options,
                id,
                kind,
            };
            ops.push(MetaOp::BindQueue {
                vhost: self.vhost_name(),
                queue: queue.to_string_lossy().into_owned(),
                exchange: exchange.to_string_lossy().into_owned(),
                routing_key: key.to_string_lossy().into_owned(),
                arguments: table_to_hex(&binding_args(&sub)),
            });
        }
        ops
    }

    /// The unbinds an UNSUBSCRIBE makes.
    fn unsubscribe_ops(&self, u: &Unsubscribe) -> Vec<MetaOp> {
        u.filters.iter().filter_map(|f| self.unbind_op(f)).collect()
    }

    /// Unbinding the session's (non-shared) subscription `filter`, if it
    /// has one whose queue is cluster-wide.
    fn unbind_op(&self, filter: &[u8]) -> Option<MetaOp> {
        let s = self.subs.get(filter)?;
        if s.sub.kind == QueueKind::Shared {
            return None;
        }
        self.vhost
            .named_queue(s.queue.as_bytes())
            .filter(|q| q.home().is_some())?;
        Some(MetaOp::UnbindQueue {
            vhost: self.vhost_name(),
            queue: s.queue.to_string_lossy().into_owned(),
            exchange: self.exchange().to_string_lossy().into_owned(),
            routing_key: s.key.to_string_lossy().into_owned(),
            arguments: table_to_hex(&s.args),
        })
    }
}
