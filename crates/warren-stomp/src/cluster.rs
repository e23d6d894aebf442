//! A clustered node's STOMP declares: the shared queues a SEND or SUBSCRIBE
//! makes go through the cluster's metadata replicator
//! (`warren_core::meta`) before the frame is handled, so every node has them.
//!
//! As in the AMQP adapter, the session's own code stays the authority on
//! errors: a declare is only replicated when it would succeed here
//! (permissions granted, arguments valid); the frame handler then runs its
//! usual local declare, which finds the queue already made, and answers as
//! on a single node. Replicated: `/queue/NAME` queues (once per session, as
//! they are declared), and the named queues of durable or `x-queue-name`
//! `/topic` and `/exchange` subscriptions with their binding. Node-local, as
//! server-named AMQP queues: exclusive queues, `/temp-queue` reply queues
//! and the generated queues of plain subscriptions.

use bytes::Bytes;
use warren_core::meta::{queue_declare_op, MetaOp};
use warren_core::permissions::{queue_declare_needs, Access, Resource};
use warren_core::queue::{check_quorum_declare, is_quorum};
use warren_core::store::definitions::table_to_hex;
use warren_core::{FieldTable, ShortStr};

use crate::command::Command;
use crate::destination::Destination;
use crate::failure::Handled;
use crate::frame::Frame;
use crate::session::{self, Session};
use crate::version::Version;

/// The queue a frame would declare, and the binding of a subscription.
struct SharedDeclare {
    queue: ShortStr,
    opts: warren_core::QueueOptions,
    bind: Option<(ShortStr, ShortStr)>,
}

impl Session {
    /// On a clustered node, replicate the queue (and binding) `frame` is
    /// about to declare; a refusal (no majority, no leader) fails the frame
    /// with the replicator's error, an ERROR frame that closes the
    /// connection, and it is not handled. A single node returns at once.
    /// The frames after this one wait (their order matters); deliveries
    /// keep flowing through the writer meanwhile.
    pub async fn replicate_first(&mut self, frame: &mut Frame) -> Handled {
        let Some(r) = self.broker.replicator().cloned() else {
            return Ok(());
        };
        let subscribe = match frame.command {
            Command::Send => false,
            Command::Subscribe => true,
            Command::Unsubscribe => false,
            _ => return Ok(()),
        };
        if self.version == Version::V1_0 {
            // As `handle` does (idempotent): decide on the same headers.
            frame.headers.trim_leading_spaces();
        }
        if frame.command == Command::Unsubscribe {
            return self.replicate_unsubscribe(&r, frame).await;
        }
        let Some(d) = self.shared_declare(frame, subscribe) else {
            return Ok(());
        };
        let vhost = self.vhost.name.to_string_lossy().into_owned();
        if is_quorum(&d.opts.arguments) {
            check_quorum_declare(
                &d.queue.to_string_lossy(),
                &vhost,
                d.opts.durable,
                d.opts.exclusive,
                d.opts.auto_delete,
                &d.opts.arguments,
            )?;
        }
        // A queue this node has needs no round trip (a SEND's common case).
        if d.bind.is_none() && self.vhost.named_queue(d.queue.as_bytes()).is_some() {
            return Ok(());
        }
        for (access, kind, name) in queue_declare_needs(d.queue.as_bytes(), &d.opts.arguments) {
            if self.check(access, kind, name).is_err() {
                return Ok(()); // the local declare refuses it
            }
        }
        // Decide on up-to-date metadata (see `MetadataReplicator::sync`).
        r.sync().await?;
        if let Some(op) = queue_declare_op(&self.vhost, &d.queue, &d.opts, &r.node_name()) {
            r.replicate(op).await?;
        }
        if let Some((exchange, key)) = d.bind {
            if let Some(op) = self.bind_op(vhost, &d.queue, exchange, key) {
                r.replicate(op).await?;
            }
        }
        Ok(())
    }

    /// UNSUBSCRIBE with `durable`/`persistent` ends a durable topic
    /// subscription: its queue is deleted cluster-wide. The consumer is
    /// detached first, so that the delete does not cancel it (the handler
    /// then finds it gone and deletes nothing more).
    async fn replicate_unsubscribe(
        &mut self,
        r: &std::sync::Arc<dyn warren_core::meta::MetadataReplicator>,
        frame: &Frame,
    ) -> Handled {
        let h = &frame.headers;
        if h.boolean("durable") != Some(true) && h.boolean("persistent") != Some(true) {
            return Ok(());
        }
        let (Ok((tag, _)), Some(id)) = (session::consumer_tag(h), h.id()) else {
            return Ok(());
        };
        let Some((dest, consumer, queue)) = self.deliveries.consumer_of(&tag) else {
            return Ok(());
        };
        let Ok(Destination::Topic(key)) = crate::destination::parse(&dest) else {
            return Ok(());
        };
        let name = session::subscription_queue_name(h, &key, id);
        if self
            .check(Access::Configure, Resource::Queue, name.as_bytes())
            .is_err()
        {
            return Ok(()); // the handler refuses it
        }
        r.sync().await?;
        let shared = self
            .vhost
            .named_queue(name.as_bytes())
            .is_some_and(|q| !q.options.exclusive);
        if !shared {
            return Ok(());
        }
        queue.remove_consumer(&consumer);
        r.replicate(MetaOp::DeleteQueue {
            vhost: self.vhost.name.to_string_lossy().into_owned(),
            name: name.to_string_lossy().into_owned(),
        })
        .await?;
        Ok(())
    }

    /// The shared queue `frame` declares, if any (see the module comment).
    /// A frame the handler will refuse (bad destination or headers) has none.
    fn shared_declare(&self, frame: &Frame, subscribe: bool) -> Option<SharedDeclare> {
        let h = &frame.headers;
        let dest = crate::destination::parse(&h.get_bytes("destination")?).ok()?;
        let d = match &dest {
            Destination::Queue(name) if !name.is_empty() && !self.declared.contains(name) => {
                SharedDeclare {
                    queue: ShortStr(name.clone()),
                    opts: session::queue_options(h, session::Defaults::QUEUE).ok()?,
                    bind: None,
                }
            }
            Destination::Topic(_) | Destination::Exchange(..) if subscribe => {
                let durable = session::has_durable_header(h);
                if !durable && !h.contains("x-queue-name") {
                    return None; // a generated, node-local name
                }
                let id = if durable { h.id()? } else { b"" };
                let (exchange, key) = dest.routing();
                SharedDeclare {
                    queue: session::subscription_queue_name(h, key, id),
                    opts: session::queue_options(h, session::Defaults::SUBSCRIPTION).ok()?,
                    bind: Some((
                        ShortStr(Bytes::copy_from_slice(exchange)),
                        ShortStr(Bytes::copy_from_slice(key)),
                    )),
                }
            }
            _ => return None,
        };
        (!d.opts.exclusive).then_some(d)
    }

    /// The binding a subscription makes, when it would succeed here (the
    /// checks `subscribe` makes).
    fn bind_op(
        &mut self,
        vhost: String,
        queue: &ShortStr,
        exchange: ShortStr,
        key: ShortStr,
    ) -> Option<MetaOp> {
        self.vhost.named_queue(queue.as_bytes())?;
        let x = self.vhost.exchange(exchange.as_bytes())?;
        self.check(Access::Write, Resource::Queue, queue.as_bytes())
            .ok()?;
        self.check(Access::Read, Resource::Exchange, exchange.as_bytes())
            .ok()?;
        self.check_topic_read(&x, key.as_bytes()).ok()?;
        Some(MetaOp::BindQueue {
            vhost,
            queue: queue.to_string_lossy().into_owned(),
            exchange: exchange.to_string_lossy().into_owned(),
            routing_key: key.to_string_lossy().into_owned(),
            arguments: table_to_hex(&FieldTable::new()),
        })
    }
}
