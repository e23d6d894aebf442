//! One AMQP channel: the method handlers.
//!
//! A `Channel` is owned by its connection's reader task, so its fields need no
//! locking; the part that queues touch concurrently lives in [`ChannelShared`].
//! Every handler maps directly onto a broker-core call and translates the result
//! into the reply method (or a channel/connection error).

use crate::codec::*;
use crate::delivery::{ChannelShared, ConsumerEntry, Unacked};
use crate::error::AmqpError;
use crate::writer::{Outlet, SendFrames};
use bytes::{Bytes, BytesMut};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use warren_core::confirm::ConfirmTracker;
use warren_core::control::CONTROL_EXCHANGE;
use warren_core::error::code;
use warren_core::permissions::AccessCache;
use warren_core::permissions::{exchange_declare_needs, queue_declare_needs, Access};
use warren_core::properties::RawProperties;
use warren_core::queue::{check_consumer_args, check_expiration, ChannelRef};
use warren_core::stats::{MessageField, PublishField};
use warren_core::vhost::Published;
use warren_core::{
    BasicProperties, BrokerError, ConnectionId, Consumer, Exchange, ExchangeKind, ExchangeOptions,
    Message, Queue, QueueOptions, ShortStr, VHost,
};
use warren_core::{FieldTable, FieldValue};

/// What the connection knows that channels need.
pub struct ConnContext {
    pub id: ConnectionId,
    /// The authenticated user (publishes may only claim this `user_id`).
    pub user: String,
    /// "peer -> local", as RabbitMQ names connections.
    pub name: String,
    pub broker: Arc<warren_core::Broker>,
    pub vhost: Arc<VHost>,
    pub outlet: Arc<Outlet>,
    pub max_message_size: u64,
    pub cancel_notify: bool,
    /// Exclusive queues this connection declared, deleted when it closes.
    pub exclusive_queues: Vec<Arc<Queue>>,
    /// Set once the connection publishes (resource alarms block publishers only).
    pub has_published: bool,
    /// Consumer-tag generator.
    pub ctag_counter: u64,
    /// The user's permission on the vhost (see `access.rs`).
    pub access: AccessCache,
    /// Woken when a replicated queue completes a confirm ticket of one of
    /// this connection's channels (their [`ConfirmTracker`]s share it).
    pub confirm_wake: Arc<tokio::sync::Notify>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Normal,
    Confirm,
    Tx,
}

/// A publish whose content frames are still arriving.
struct PendingPublish {
    method: BasicPublish,
    /// Published to the control pseudo-exchange: a management command.
    control: bool,
    exchange: Arc<Exchange>,
    properties: Option<Bytes>,
    body_size: u64,
    body: Vec<Bytes>,
    received: u64,
}

/// A reply that waits for the message log.
#[derive(Debug, Clone, Copy)]
enum Awaiting {
    /// basic.ack for publish `seq`, once log `ticket` is durable and the
    /// replicated queues completed tracker ticket `cluster` (0: none); a
    /// basic.nack if one of them refused it.
    Confirm(u64, u64, u64),
    /// tx.commit-ok once `ticket` is durable and the replicated queues
    /// completed tracker tickets `from..=to` (0: none), as RabbitMQ answers
    /// a commit once its quorum queues have the messages.
    CommitOk(u64, u64, u64),
    /// basic.nack for publish `seq` (rejected by a full queue).
    Nack(u64),
}

/// Acks/nacks buffered in a transaction.
enum TxAck {
    Ack(u64, bool),
    Nack(u64, bool, bool),
}

pub struct Channel {
    pub id: u16,
    pub shared: Arc<ChannelShared>,
    mode: Mode,
    /// Next publish sequence number in confirm mode.
    next_publish_seq: u64,
    /// Publishes (confirm mode) or a commit (tx mode) waiting to be answered, with
    /// the message-log ticket each must wait for (0: nothing to wait for). Flushed
    /// once per batch of frames, as one `basic.ack(multiple)` where possible.
    awaiting: VecDeque<Awaiting>,
    /// The last acked seq, so a flush can tell single from multiple.
    confirm_sent: u64,
    /// Publishes in confirm mode already added to the vhost's
    /// `received_confirm` (added once per flush, not per publish).
    received_counted: u64,
    /// Highest log ticket of the publishes handled since the last commit.
    tx_ticket: u64,
    /// Confirm mode: tickets of publishes into replicated queues.
    confirms: Option<Arc<ConfirmTracker>>,
    pending: Option<PendingPublish>,
    /// basic.qos global=false: prefetch for consumers created from now on.
    consumer_prefetch: u32,
    /// Last queue declared on this channel (an empty queue name refers to it).
    last_queue: Option<ShortStr>,
    /// A clustered node's queue.delete, replicated before the channel runs
    /// it: the queue and its ready count, taken before the apply removed it
    /// (delete-ok reports it; see `Connection::replicate_first`).
    pub(crate) replicated_delete: Option<(ShortStr, u32)>,
    tx_publishes: Vec<(Arc<Exchange>, Arc<Message>, bool)>,
    tx_acks: Vec<TxAck>,
    /// Reused routing result buffer (no allocation per publish).
    route_buf: Vec<Arc<Queue>>,
    /// Last exchange published to, and the broker's auth generation at which
    /// write access to it was checked: skips the vhost lookup and the
    /// permission check on the hot path.
    exchange_cache: Option<(Arc<Exchange>, u64)>,
    /// The server closed this channel and waits for close-ok.
    pub closing: bool,
    /// The private queue behind this channel's direct reply-to consumer.
    reply_queue: Option<ShortStr>,
}

/// The direct reply-to pseudo-queue.
const REPLY_TO: &str = "amq.rabbitmq.reply-to";

type R = Result<(), AmqpError>;

fn err(e: BrokerError, m: &Method) -> AmqpError {
    AmqpError::channel(e, m.class_id(), m.method_id())
}

/// Declaring, binding or unbinding the default exchange is refused (403).
fn not_default(exchange: &ShortStr, m: &Method) -> R {
    if exchange.is_empty() {
        return Err(err(warren_core::vhost::default_exchange_refused(), m));
    }
    Ok(())
}

impl Channel {
    pub fn new(
        id: u16,
        outlet: Arc<Outlet>,
        cancel_notify: bool,
        origin: warren_core::trace::Origin,
        vhost: Arc<VHost>,
    ) -> Channel {
        Channel {
            id,
            shared: ChannelShared::new(id, outlet, cancel_notify, origin, vhost),
            mode: Mode::Normal,
            next_publish_seq: 1,
            awaiting: VecDeque::new(),
            confirm_sent: 0,
            received_counted: 0,
            tx_ticket: 0,
            confirms: None,
            pending: None,
            consumer_prefetch: 0,
            last_queue: None,
            replicated_delete: None,
            tx_publishes: Vec::new(),
            tx_acks: Vec::new(),
            route_buf: Vec::new(),
            exchange_cache: None,
            closing: false,
            reply_queue: None,
        }
    }

    fn send(&self, m: Method) {
        self.shared.outlet.send_method(self.id, m);
    }

    /// The content frame a pending publish waits for ("header" or "body"),
    /// if any.
    pub fn expecting_content(&self) -> Option<&'static str> {
        self.pending.as_ref().map(|p| match p.properties {
            None => "header",
            Some(_) => "body",
        })
    }

    /// Handle one method frame for this channel.
    pub fn handle(&mut self, ctx: &mut ConnContext, m: Method) -> R {
        match m {
            Method::BasicPublish(p) => self.on_publish(ctx, p),
            Method::BasicAck(a) => self.on_ack(
                ctx,
                a.delivery_tag,
                a.multiple,
                &Method::BasicAck(a.clone()),
            ),
            Method::BasicNack(ref n) => {
                let (t, mu, rq) = (n.delivery_tag, n.multiple, n.requeue);
                self.on_nack(t, mu, rq, &m)
            }
            Method::BasicReject(ref r) => {
                let (t, rq) = (r.delivery_tag, r.requeue);
                self.on_nack(t, false, rq, &m)
            }
            Method::ExchangeDeclare(ref d) => self.exchange_declare(ctx, d, &m),
            Method::ExchangeDelete(ref d) => {
                ctx.vhost
                    .check_exchange_deletable(&d.exchange)
                    .map_err(|e| err(e, &m))?;
                ctx.check_exchange(Access::Configure, d.exchange.as_bytes())
                    .map_err(|e| err(e, &m))?;
                ctx.vhost
                    .delete_exchange(&d.exchange, d.if_unused)
                    .map_err(|e| err(e, &m))?;
                self.exchange_cache = None;
                if !d.nowait {
                    self.send(Method::ExchangeDeleteOk(ExchangeDeleteOk::default()));
                }
                Ok(())
            }
            Method::ExchangeBind(ref b) => {
                ctx.check_exchange(Access::Write, b.destination.as_bytes())
                    .map_err(|e| err(e, &m))?;
                not_default(&b.destination, &m)?;
                not_default(&b.source, &m)?;
                ctx.check_exchange(Access::Read, b.source.as_bytes())
                    .map_err(|e| err(e, &m))?;
                ctx.check_bind_topic(b.source.as_bytes(), b.routing_key.as_bytes())
                    .map_err(|e| err(e, &m))?;
                ctx.vhost
                    .bind_exchange(
                        &b.destination,
                        &b.source,
                        b.routing_key.clone(),
                        b.arguments.clone(),
                    )
                    .map_err(|e| err(e, &m))?;
                if !b.nowait {
                    self.send(Method::ExchangeBindOk(ExchangeBindOk::default()));
                }
                Ok(())
            }
            Method::ExchangeUnbind(ref b) => {
                ctx.check_exchange(Access::Write, b.destination.as_bytes())
                    .map_err(|e| err(e, &m))?;
                not_default(&b.destination, &m)?;
                not_default(&b.source, &m)?;
                ctx.check_exchange(Access::Read, b.source.as_bytes())
                    .map_err(|e| err(e, &m))?;
                ctx.check_bind_topic(b.source.as_bytes(), b.routing_key.as_bytes())
                    .map_err(|e| err(e, &m))?;
                ctx.vhost
                    .unbind_exchange(&b.destination, &b.source, &b.routing_key, &b.arguments)
                    .map_err(|e| err(e, &m))?;
                if !b.nowait {
                    self.send(Method::ExchangeUnbindOk(ExchangeUnbindOk::default()));
                }
                Ok(())
            }
            Method::QueueDeclare(ref d) => self.queue_declare(ctx, d, &m),
            Method::QueueBind(ref b) => {
                let q = self.queue_name(&b.queue, &m)?;
                let key = self.binding_key(&b.queue, &b.routing_key, &m)?;
                ctx.check_queue(Access::Write, q.as_bytes())
                    .map_err(|e| err(e, &m))?;
                not_default(&b.exchange, &m)?;
                ctx.check_exchange(Access::Read, b.exchange.as_bytes())
                    .map_err(|e| err(e, &m))?;
                ctx.check_bind_topic(b.exchange.as_bytes(), key.as_bytes())
                    .map_err(|e| err(e, &m))?;
                ctx.vhost
                    .bind_queue(&q, &b.exchange, key, b.arguments.clone(), ctx.id)
                    .map_err(|e| err(e, &m))?;
                if !b.nowait {
                    self.send(Method::QueueBindOk(QueueBindOk::default()));
                }
                Ok(())
            }
            Method::QueueUnbind(ref b) => {
                let q = self.queue_name(&b.queue, &m)?;
                let key = self.binding_key(&b.queue, &b.routing_key, &m)?;
                ctx.check_queue(Access::Write, q.as_bytes())
                    .map_err(|e| err(e, &m))?;
                not_default(&b.exchange, &m)?;
                ctx.check_exchange(Access::Read, b.exchange.as_bytes())
                    .map_err(|e| err(e, &m))?;
                ctx.check_bind_topic(b.exchange.as_bytes(), key.as_bytes())
                    .map_err(|e| err(e, &m))?;
                ctx.vhost
                    .unbind_queue(&q, &b.exchange, &key, &b.arguments, ctx.id)
                    .map_err(|e| err(e, &m))?;
                self.send(Method::QueueUnbindOk(QueueUnbindOk::default()));
                Ok(())
            }
            Method::QueuePurge(ref p) => {
                let q = self.queue_name(&p.queue, &m)?;
                ctx.check_queue(Access::Read, q.as_bytes())
                    .map_err(|e| err(e, &m))?;
                let n = ctx.vhost.purge_queue(&q, ctx.id).map_err(|e| err(e, &m))?;
                if !p.nowait {
                    self.send(Method::QueuePurgeOk(QueuePurgeOk { message_count: n }));
                }
                Ok(())
            }
            Method::QueueDelete(ref d) => {
                let q = self.queue_name(&d.queue, &m)?;
                ctx.check_queue(Access::Configure, q.as_bytes())
                    .map_err(|e| err(e, &m))?;
                // This channel's own consumers of the queue hear of it after
                // delete-ok (RabbitMQ's order; py-amqp relies on it).
                self.shared.defer_cancels();
                let deleted = ctx.vhost.delete_queue(&q, d.if_unused, d.if_empty, ctx.id);
                let replicated = self.replicated_delete.take();
                if let Ok(mut n) = deleted {
                    // Clustered: the replicated delete already removed it here.
                    if let Some((name, count)) = replicated {
                        if name == q {
                            n = n.max(count);
                        }
                    }
                    ctx.exclusive_queues.retain(|x| !x.is_deleted());
                    if !d.nowait {
                        self.send(Method::QueueDeleteOk(QueueDeleteOk { message_count: n }));
                    }
                }
                self.shared.send_deferred_cancels();
                deleted.map(|_| ()).map_err(|e| err(e, &m))
            }
            Method::BasicQos(ref q) => self.qos(q, &m),
            Method::BasicConsume(ref c) => self.consume(ctx, c, &m),
            Method::BasicCancel(ref c) => {
                let entry = self.shared.state.lock().consumers.remove(&c.consumer_tag);
                if let Some(e) = entry {
                    e.queue.remove_consumer(&e.consumer);
                    if self.reply_queue.as_ref() == Some(&e.queue.name) {
                        // The reply consumer is gone (and its auto-delete queue
                        // with it): as RabbitMQ, a new one may be started, with
                        // a new reply queue name.
                        self.reply_queue = None;
                    }
                    if warren_core::events::watched(&ctx.vhost) {
                        let mut h = FieldTable::new();
                        h.insert(
                            "channel",
                            FieldValue::string(crate::events::channel_pid(ctx.id, self.id)),
                        );
                        h.insert(
                            "consumer_tag",
                            FieldValue::LongStr(c.consumer_tag.0.clone()),
                        );
                        h.insert("queue", FieldValue::LongStr(e.queue.name.0.clone()));
                        warren_core::events::emit(&ctx.vhost, "consumer.deleted", h);
                    }
                }
                if !c.nowait {
                    self.send(Method::BasicCancelOk(BasicCancelOk {
                        consumer_tag: c.consumer_tag.clone(),
                    }));
                }
                Ok(())
            }
            Method::BasicGet(ref g) => self.get(ctx, g, &m),
            Method::BasicRecover(ref r) => self.recover(r.requeue, true, &m),
            Method::BasicRecoverAsync(ref r) => self.recover(r.requeue, false, &m),
            Method::ChannelFlow(f) => {
                self.shared.state.lock().flow_active = f.active;
                self.send(Method::ChannelFlowOk(ChannelFlowOk { active: f.active }));
                if f.active {
                    for q in self.shared.consumer_queues() {
                        q.deliver();
                    }
                }
                Ok(())
            }
            Method::ConfirmSelect(ref c) => {
                if self.mode == Mode::Tx {
                    return Err(err(
                        BrokerError::precondition_failed("cannot switch from tx to confirm mode"),
                        &m,
                    ));
                }
                self.mode = Mode::Confirm;
                if self.confirms.is_none() {
                    self.confirms = Some(ConfirmTracker::new(ctx.confirm_wake.clone()));
                }
                self.shared.listing.confirm.store(true, Relaxed);
                if !c.nowait {
                    self.send(Method::ConfirmSelectOk(ConfirmSelectOk::default()));
                }
                Ok(())
            }
            Method::TxSelect(_) => {
                if self.mode == Mode::Confirm {
                    return Err(err(
                        BrokerError::precondition_failed("cannot switch from confirm to tx mode"),
                        &m,
                    ));
                }
                self.mode = Mode::Tx;
                if self.confirms.is_none() {
                    self.confirms = Some(ConfirmTracker::new(ctx.confirm_wake.clone()));
                }
                self.shared.listing.transactional.store(true, Relaxed);
                self.send(Method::TxSelectOk(TxSelectOk::default()));
                Ok(())
            }
            Method::TxCommit(_) => {
                if self.mode != Mode::Tx {
                    return Err(err(
                        BrokerError::precondition_failed("channel is not transactional"),
                        &m,
                    ));
                }
                let (from, to) = self.commit(ctx, &m)?;
                // commit-ok only once what the transaction published is on
                // disk (and committed by its replicated queues' groups).
                let ticket = std::mem::take(&mut self.tx_ticket);
                self.awaiting
                    .push_back(Awaiting::CommitOk(ticket, from, to));
                Ok(())
            }
            Method::TxRollback(_) => {
                if self.mode != Mode::Tx {
                    return Err(err(
                        BrokerError::precondition_failed("channel is not transactional"),
                        &m,
                    ));
                }
                self.tx_publishes.clear();
                self.tx_acks.clear();
                self.send(Method::TxRollbackOk(TxRollbackOk::default()));
                Ok(())
            }
            Method::AccessRequest(_) => {
                self.send(Method::AccessRequestOk(AccessRequestOk { ticket: 1 }));
                Ok(())
            }
            other => Err(AmqpError::connection(
                code::COMMAND_INVALID,
                format!("unexpected method in channel: {}", other.name()),
                other.class_id(),
                other.method_id(),
            )),
        }
    }

    /// Resolve an empty queue name to the channel's last declared queue. Without
    /// one, RabbitMQ closes the channel (404), not the connection.
    fn queue_name(&self, name: &ShortStr, m: &Method) -> Result<ShortStr, AmqpError> {
        if !name.is_empty() {
            return Ok(name.clone());
        }
        self.last_queue
            .clone()
            .ok_or_else(|| err(BrokerError::not_found("no previously declared queue"), m))
    }

    /// queue.bind/unbind: with both the queue and the routing key empty, the key
    /// is the last declared queue's name too (AMQP spec, and RabbitMQ).
    fn binding_key(
        &self,
        queue: &ShortStr,
        routing_key: &ShortStr,
        m: &Method,
    ) -> Result<ShortStr, AmqpError> {
        if queue.is_empty() && routing_key.is_empty() {
            self.queue_name(queue, m)
        } else {
            Ok(routing_key.clone())
        }
    }

    fn exchange_declare(&mut self, ctx: &mut ConnContext, d: &ExchangeDeclare, m: &Method) -> R {
        let kind = match ExchangeKind::parse(d.kind.as_bytes()) {
            Some(k) => k,
            None if d.passive => ExchangeKind::Direct,
            None => {
                return Err(AmqpError::connection(
                    code::COMMAND_INVALID,
                    format!("unknown exchange type '{}'", d.kind),
                    m.class_id(),
                    m.method_id(),
                ))
            }
        };
        // Even a passive declare: RabbitMQ refuses the default exchange first.
        not_default(&d.exchange, m)?;
        let opts = ExchangeOptions {
            kind,
            durable: d.durable,
            auto_delete: d.auto_delete,
            internal: d.internal,
            arguments: d.arguments.clone(),
        };
        if !d.passive {
            for (access, kind, name) in exchange_declare_needs(d.exchange.as_bytes(), &d.arguments)
            {
                ctx.check(access, kind, name).map_err(|e| err(e, m))?;
            }
        }
        ctx.vhost
            .declare_exchange(d.exchange.clone(), opts, d.passive)
            .map_err(|e| err(e, m))?;
        if !d.nowait {
            self.send(Method::ExchangeDeclareOk(ExchangeDeclareOk::default()));
        }
        Ok(())
    }

    fn queue_declare(&mut self, ctx: &mut ConnContext, d: &QueueDeclare, m: &Method) -> R {
        if d.queue.starts_with(REPLY_TO) {
            // Every declare of a direct reply-to name is passive (RabbitMQ): the
            // pseudo-queue always "exists", a reply queue while its requester
            // consumes; either has 0 messages and 1 consumer.
            if d.queue.as_bytes() != REPLY_TO.as_bytes() {
                ctx.vhost
                    .declare_reply_to(&d.queue)
                    .map_err(|e| err(e, m))?;
            }
            self.last_queue = Some(d.queue.clone());
            if !d.nowait {
                self.send(Method::QueueDeclareOk(QueueDeclareOk {
                    queue: d.queue.clone(),
                    message_count: 0,
                    consumer_count: 1,
                }));
            }
            return Ok(());
        }
        // A passive declare of "" looks for a queue named "" (RabbitMQ applies the
        // last-declared-queue shortcut to get/consume/bind/purge/delete only);
        // an active one asks for a server-named queue.
        let name = if d.queue.is_empty() && !d.passive {
            None
        } else {
            Some(d.queue.clone())
        };
        let opts = QueueOptions {
            durable: d.durable,
            exclusive: d.exclusive,
            auto_delete: d.auto_delete,
            arguments: d.arguments.clone(),
        };
        // A passive declare needs no permission (as in RabbitMQ); an active one
        // needs configure on the queue, server-named ones included, and with a
        // dead-letter exchange read on the queue and write on that exchange.
        let check = |ctx: &mut ConnContext, queue: &[u8]| -> Result<(), BrokerError> {
            for (access, kind, name) in queue_declare_needs(queue, &d.arguments) {
                ctx.check(access, kind, name)?;
            }
            Ok(())
        };
        let declared = match name {
            None => {
                let generated = ctx.vhost.generate_queue_name();
                check(ctx, generated.as_bytes()).map_err(|e| err(e, m))?;
                ctx.vhost.declare_generated_queue(generated, opts, ctx.id)
            }
            Some(n) => {
                if !d.passive {
                    check(ctx, n.as_bytes()).map_err(|e| err(e, m))?;
                }
                ctx.vhost.declare_queue(Some(n), opts, d.passive, ctx.id)
            }
        };
        let (q, created) = declared.map_err(|e| err(e, m))?;
        if created && q.options.exclusive {
            ctx.exclusive_queues.push(q.clone());
        }
        self.last_queue = Some(q.name.clone());
        if !d.nowait {
            self.send(Method::QueueDeclareOk(QueueDeclareOk {
                queue: q.name.clone(),
                message_count: q.message_count(),
                consumer_count: q.consumer_count(),
            }));
        }
        Ok(())
    }

    fn qos(&mut self, q: &BasicQos, m: &Method) -> R {
        if q.prefetch_size != 0 {
            return Err(AmqpError::connection(
                code::NOT_IMPLEMENTED,
                format!("prefetch_size!=0 ({})", q.prefetch_size),
                m.class_id(),
                m.method_id(),
            ));
        }
        if q.global {
            self.shared.state.lock().global_prefetch = q.prefetch_count as u32;
            for queue in self.shared.consumer_queues() {
                queue.deliver();
            }
        } else {
            // RabbitMQ applies this to consumers created afterwards. Clients that
            // follow the AMQP spec (kombu/Celery against a broker whose product is
            // not "RabbitMQ") expect it to change the channel's existing consumers
            // too, and RabbitMQ clients set qos before consuming, so doing both
            // serves everyone.
            self.consumer_prefetch = q.prefetch_count as u32;
            self.shared
                .listing
                .prefetch
                .store(self.consumer_prefetch, Relaxed);
            let entries: Vec<ConsumerEntry> = self
                .shared
                .state
                .lock()
                .consumers
                .values()
                .cloned()
                .collect();
            for e in entries {
                e.consumer.set_prefetch(self.consumer_prefetch);
                e.queue.deliver();
            }
        }
        self.send(Method::BasicQosOk(BasicQosOk::default()));
        Ok(())
    }

    fn consume(&mut self, ctx: &mut ConnContext, c: &BasicConsume, m: &Method) -> R {
        let queue = if c.queue.as_bytes() == REPLY_TO.as_bytes() {
            // Direct reply-to: consume (no-ack only) from a private queue whose
            // name this channel's requests will carry in `reply_to`.
            if !c.no_ack {
                return Err(err(
                    BrokerError::precondition_failed("reply consumer cannot acknowledge"),
                    m,
                ));
            }
            if self.reply_queue.is_some() {
                return Err(err(
                    BrokerError::precondition_failed("reply consumer already set"),
                    m,
                ));
            }
            let q = ctx.vhost.declare_reply_queue();
            ctx.exclusive_queues.push(q.clone());
            self.reply_queue = Some(q.name.clone());
            q
        } else {
            let qname = self.queue_name(&c.queue, m)?;
            ctx.check_queue(Access::Read, qname.as_bytes())
                .map_err(|e| err(e, m))?;
            ctx.vhost.get_queue(&qname, ctx.id).map_err(|e| err(e, m))?
        };
        check_consumer_args(&c.arguments, &queue.name, &ctx.vhost.name.to_string_lossy())
            .map_err(|e| err(e, m))?;
        queue
            .check_stream_consume(&c.arguments, c.no_ack, self.consumer_prefetch)
            .map_err(|e| err(e, m))?;
        // A quorum queue gives each consumer its own credit: RabbitMQ refuses
        // a channel-wide (global) prefetch there (540, a connection error).
        if warren_core::queue::is_quorum(&queue.options.arguments)
            && self.shared.state.lock().global_prefetch > 0
        {
            return Err(err(
                BrokerError::not_implemented(format!(
                    "queue '{}' in vhost '{}' does not support global qos",
                    queue.name,
                    ctx.vhost.name.to_string_lossy()
                )),
                m,
            ));
        }
        let tag = if c.consumer_tag.is_empty() {
            ctx.ctag_counter += 1;
            ShortStr::from(format!("amq.ctag-warren-{}-{}", ctx.id, ctx.ctag_counter))
        } else {
            c.consumer_tag.clone()
        };
        if self.shared.state.lock().consumers.contains_key(&tag) {
            return Err(AmqpError::connection(
                code::NOT_ALLOWED,
                format!("attempt to reuse consumer tag '{}'", tag),
                m.class_id(),
                m.method_id(),
            ));
        }
        let consumer = Consumer::new(
            tag.clone(),
            c.no_ack,
            c.exclusive,
            c.arguments.clone(),
            ChannelRef {
                connection: ctx.id,
                number: self.id,
            },
            self.consumer_prefetch,
            self.shared.clone(),
        );
        queue
            .add_consumer(consumer.clone())
            .map_err(|e| err(e, m))?;
        self.shared.state.lock().consumers.insert(
            tag.clone(),
            ConsumerEntry {
                consumer: consumer.clone(),
                queue: queue.clone(),
            },
        );
        if warren_core::events::watched(&ctx.vhost) {
            let mut h = FieldTable::new();
            h.insert("ack_required", FieldValue::Bool(!c.no_ack));
            h.insert(
                "arguments",
                warren_core::events::erlang_args(&c.arguments, false),
            );
            h.insert(
                "channel",
                FieldValue::string(crate::events::channel_pid(ctx.id, self.id)),
            );
            h.insert("consumer_tag", FieldValue::LongStr(tag.0.clone()));
            h.insert("exclusive", FieldValue::Bool(c.exclusive));
            h.insert(
                "prefetch_count",
                FieldValue::I64(self.consumer_prefetch as i64),
            );
            h.insert("queue", FieldValue::LongStr(queue.name.0.clone()));
            warren_core::events::emit(&ctx.vhost, "consumer.created", h);
        }
        if !c.nowait {
            self.send(Method::BasicConsumeOk(BasicConsumeOk { consumer_tag: tag }));
        }
        consumer.activate();
        queue.deliver();
        Ok(())
    }

    fn get(&mut self, ctx: &mut ConnContext, g: &BasicGet, m: &Method) -> R {
        let qname = self.queue_name(&g.queue, m)?;
        ctx.check_queue(Access::Read, qname.as_bytes())
            .map_err(|e| err(e, m))?;
        let queue = ctx.vhost.get_queue(&qname, ctx.id).map_err(|e| err(e, m))?;
        queue.check_not_stream("basic.get").map_err(|e| err(e, m))?;
        // A queue whose home node is down: RabbitMQ's 404.
        queue.check_available().map_err(|e| err(e, m))?;
        match queue.get(g.no_ack) {
            Some((msg, remaining)) => {
                let tag = self.shared.record_get(&queue, &msg, g.no_ack);
                if ctx.vhost.is_tracing() {
                    warren_core::trace::deliver(
                        &queue,
                        &msg.message,
                        msg.redelivered,
                        &self.shared.origin,
                    );
                    warren_core::trace::flush();
                }
                let message = msg.message.clone();
                self.shared.outlet.send_content(
                    self.id,
                    Method::BasicGetOk(BasicGetOk {
                        delivery_tag: tag,
                        redelivered: msg.redelivered,
                        exchange: message.exchange.clone(),
                        routing_key: message.routing_key.clone(),
                        message_count: remaining,
                    }),
                    message,
                );
            }
            None => {
                // Only the reader task writes the channel's `get_empty`.
                self.shared
                    .listing
                    .stats
                    .messages
                    .add_serialized(MessageField::GetEmpty, 1);
                self.send(Method::BasicGetEmpty(BasicGetEmpty::default()))
            }
        }
        Ok(())
    }

    fn on_ack(&mut self, _ctx: &mut ConnContext, tag: u64, multiple: bool, m: &Method) -> R {
        if self.mode == Mode::Tx {
            self.check_tags(tag, multiple, m)?;
            self.tx_acks.push(TxAck::Ack(tag, multiple));
            return Ok(());
        }
        let taken = self.shared.take(tag, multiple).map_err(|e| err(e, m))?;
        settle(&taken);
        self.count_acks(&taken);
        self.wake_queues(&taken);
        Ok(())
    }

    /// The channel's `ack` count (only the reader task writes it).
    fn count_acks(&self, taken: &[Unacked]) {
        self.shared
            .listing
            .stats
            .messages
            .add_serialized(MessageField::Ack, taken.len() as u64);
    }

    fn on_nack(&mut self, tag: u64, multiple: bool, requeue: bool, m: &Method) -> R {
        if self.mode == Mode::Tx {
            self.check_tags(tag, multiple, m)?;
            self.tx_acks.push(TxAck::Nack(tag, multiple, requeue));
            return Ok(());
        }
        let taken = self.shared.take(tag, multiple).map_err(|e| err(e, m))?;
        if let Some(u) = taken.iter().find(|u| u.queue.is_stream()) {
            // RabbitMQ closes the connection (540); the deliveries stay taken.
            return Err(err(
                u.queue.stream_refusal("basic.nack and basic.reject"),
                m,
            ));
        }
        if requeue {
            self.requeue_and_wake(taken);
        } else {
            self.wake_queues(&taken);
            reject_all(taken);
        }
        Ok(())
    }

    /// In a transaction, acks are applied at commit, but unknown tags are still an
    /// error right away.
    fn check_tags(&self, tag: u64, multiple: bool, m: &Method) -> R {
        let st = self.shared.state.lock();
        // The tag itself must be outstanding, with `multiple` too (0 = all).
        let known = (multiple && tag == 0) || st.unacked.iter().any(|u| u.tag == tag);
        if known {
            Ok(())
        } else {
            Err(err(
                BrokerError::precondition_failed(format!("unknown delivery tag {}", tag)),
                m,
            ))
        }
    }

    /// Consumers of this channel may have got credit back: let their queues deliver.
    fn wake_queues(&self, taken: &[Unacked]) {
        if taken.iter().any(|u| u.consumer.is_some()) {
            for q in self.shared.consumer_queues() {
                q.deliver();
            }
        }
    }

    /// Requeue deliveries (nack/reject with requeue, basic.recover), then wake
    /// this channel's consumer queues like an ack does. Why both: requeueing
    /// only lets the queues the messages go back to deliver, but the credit they
    /// held may be the channel's (basic.qos global) and another queue consumed on
    /// this channel may be waiting for exactly that; if the requeued messages go
    /// to consumers on other channels, nothing else would wake it (issue 9).
    fn requeue_and_wake(&self, taken: Vec<Unacked>) {
        let credit = taken.iter().any(|u| u.consumer.is_some());
        requeue_all(taken);
        if credit {
            for q in self.shared.consumer_queues() {
                q.deliver();
            }
        }
    }

    fn recover(&mut self, requeue: bool, reply: bool, m: &Method) -> R {
        if !requeue {
            return Err(AmqpError::connection(
                code::NOT_IMPLEMENTED,
                "requeue=false",
                m.class_id(),
                m.method_id(),
            ));
        }
        // recover-ok before the redeliveries (and whatever else the returned
        // credit lets through): clients such as lapin drop every delivery they
        // have buffered for the channel when recover-ok arrives, so a delivery
        // queued ahead of it would be lost to the consumer while the broker
        // counts it as unacked: a stall (issue 9).
        if reply {
            self.send(Method::BasicRecoverOk(BasicRecoverOk::default()));
        }
        let taken = self.shared.take_all();
        self.requeue_and_wake(taken);
        Ok(())
    }

    /// Run the transaction; returns the first and last replicated-queue
    /// tracker tickets its publishes opened (0, 0: none).
    fn commit(&mut self, ctx: &mut ConnContext, m: &Method) -> Result<(u64, u64), AmqpError> {
        let (mut from, mut to) = (0, 0);
        for (exchange, msg, mandatory) in std::mem::take(&mut self.tx_publishes) {
            let r = self.route_and_enqueue(ctx, &exchange, msg, mandatory);
            self.tx_ticket = self.tx_ticket.max(r.ticket);
            if r.cluster != 0 {
                if from == 0 {
                    from = r.cluster;
                }
                to = r.cluster;
            }
        }
        for op in std::mem::take(&mut self.tx_acks) {
            match op {
                TxAck::Ack(tag, multiple) => {
                    let taken = self.shared.take(tag, multiple).map_err(|e| err(e, m))?;
                    settle(&taken);
                    self.count_acks(&taken);
                    self.wake_queues(&taken);
                }
                TxAck::Nack(tag, multiple, requeue) => {
                    let taken = self.shared.take(tag, multiple).map_err(|e| err(e, m))?;
                    if requeue {
                        self.requeue_and_wake(taken);
                    } else {
                        self.wake_queues(&taken);
                        reject_all(taken);
                    }
                }
            }
        }
        Ok((from, to))
    }

    // ----- publishing -----

    fn on_publish(&mut self, ctx: &mut ConnContext, p: BasicPublish) -> R {
        let ids = (60, 40);
        if p.immediate {
            return Err(AmqpError::connection(
                code::NOT_IMPLEMENTED,
                "immediate=true",
                ids.0,
                ids.1,
            ));
        }
        if p.exchange.as_bytes() == CONTROL_EXCHANGE.as_bytes() {
            let exchange = ctx
                .vhost
                .get_exchange(&ShortStr::empty())
                .map_err(|e| AmqpError::channel(e, 60, 40))?;
            self.pending = Some(PendingPublish {
                method: p,
                control: true,
                exchange,
                properties: None,
                body_size: 0,
                body: Vec::new(),
                received: 0,
            });
            return Ok(());
        }
        // Hot path: same exchange as last time, permissions unchanged since its
        // write access was checked: no lookup, no regex.
        let generation = ctx.broker.auth_generation();
        let exchange = match &self.exchange_cache {
            Some((e, g)) if e.name == p.exchange && !e.is_deleted() && *g == generation => {
                e.clone()
            }
            _ => {
                self.exchange_cache = None;
                ctx.check_exchange(Access::Write, p.exchange.as_bytes())
                    .map_err(|e| AmqpError::channel(e, ids.0, ids.1))?;
                let e = ctx
                    .vhost
                    .get_exchange(&p.exchange)
                    .map_err(|e| AmqpError::channel(e, ids.0, ids.1))?;
                self.exchange_cache = Some((e.clone(), generation));
                e
            }
        };
        ctx.vhost
            .check_publishable(&exchange)
            .map_err(|e| AmqpError::channel(e, ids.0, ids.1))?;
        // Per routing key (after the cached exchange check): free unless the
        // user has topic permissions on this vhost.
        ctx.check_topic(Access::Write, &exchange, p.routing_key.as_bytes())
            .map_err(|e| AmqpError::channel(e, ids.0, ids.1))?;
        ctx.has_published = true;
        self.pending = Some(PendingPublish {
            method: p,
            control: false,
            exchange,
            properties: None,
            body_size: 0,
            body: Vec::new(),
            received: 0,
        });
        Ok(())
    }

    /// A content header frame arrived for the pending publish.
    pub fn on_header(&mut self, ctx: &mut ConnContext, h: ContentHeader) -> R {
        let Some(p) = self.pending.as_mut() else {
            return Err(AmqpError::connection(
                code::UNEXPECTED_FRAME,
                format!(
                    "expected method frame, got content header on channel {}",
                    self.id
                ),
                0,
                0,
            ));
        };
        if p.properties.is_some() {
            return Err(AmqpError::connection(
                code::UNEXPECTED_FRAME,
                "expected content body, got content header",
                60,
                40,
            ));
        }
        if h.class_id != 60 {
            return Err(AmqpError::connection(
                code::UNEXPECTED_FRAME,
                format!(
                    "expected content header for class 60, got one for class {}",
                    h.class_id
                ),
                60,
                40,
            ));
        }
        if h.body_size > ctx.max_message_size {
            self.pending = None;
            return Err(AmqpError::channel(
                BrokerError::precondition_failed(format!(
                    "message size {} is larger than configured max size {}",
                    h.body_size, ctx.max_message_size
                )),
                60,
                40,
            ));
        }
        if RawProperties::has_user_id(&h.properties) {
            let claimed = BasicProperties::decode(&h.properties)
                .ok()
                .and_then(|p| p.user_id)
                .unwrap_or_default();
            if claimed.as_bytes() != ctx.user.as_bytes() {
                self.pending = None;
                return Err(AmqpError::channel(
                    BrokerError::precondition_failed(format!(
                        "user_id property set to '{}' but authenticated user was '{}'",
                        claimed, ctx.user
                    )),
                    60,
                    40,
                ));
            }
        }
        let mut properties = h.properties;
        if RawProperties::has_expiration(&properties) {
            let e = BasicProperties::decode(&properties)
                .ok()
                .and_then(|p| p.expiration)
                .unwrap_or_default();
            if let Err(detail) = check_expiration(e.as_bytes()) {
                self.pending = None;
                return Err(AmqpError::channel(
                    BrokerError::precondition_failed(format!(
                        "invalid expiration '{}': {}",
                        e, detail
                    )),
                    60,
                    40,
                ));
            }
        }
        if RawProperties::has_reply_to(&properties) {
            let mut props = BasicProperties::decode(&properties).unwrap_or_default();
            if props
                .reply_to
                .as_ref()
                .is_some_and(|r| r.as_bytes() == REPLY_TO.as_bytes())
            {
                // Direct reply-to: point the reply at this channel's private queue.
                let Some(q) = self.reply_queue.clone() else {
                    self.pending = None;
                    return Err(AmqpError::channel(
                        BrokerError::precondition_failed("fast reply consumer does not exist"),
                        60,
                        40,
                    ));
                };
                props.reply_to = Some(q);
                properties = props.encode();
            }
        }
        p.properties = Some(properties);
        p.body_size = h.body_size;
        if h.body_size == 0 {
            self.finish_publish(ctx);
        }
        Ok(())
    }

    /// A content body frame arrived for the pending publish.
    pub fn on_body(&mut self, ctx: &mut ConnContext, body: Bytes) -> R {
        let Some(p) = self.pending.as_mut().filter(|p| p.properties.is_some()) else {
            return Err(AmqpError::connection(
                code::UNEXPECTED_FRAME,
                format!(
                    "expected method frame, got content body on channel {}",
                    self.id
                ),
                0,
                0,
            ));
        };
        p.received += body.len() as u64;
        if p.received > p.body_size {
            return Err(AmqpError::connection(
                code::FRAME_ERROR,
                format!("content body longer than declared size {}", p.body_size),
                60,
                40,
            ));
        }
        p.body.push(body);
        if p.received == p.body_size {
            self.finish_publish(ctx);
        }
        Ok(())
    }

    fn finish_publish(&mut self, ctx: &mut ConnContext) {
        let Some(p) = self.pending.take() else {
            return;
        };
        let body = match p.body.len() {
            0 => Bytes::new(),
            1 => p.body.into_iter().next().unwrap_or_default(),
            _ => {
                let mut b = BytesMut::with_capacity(p.body_size as usize);
                for part in p.body {
                    b.extend_from_slice(&part);
                }
                b.freeze()
            }
        };
        if p.control {
            self.control(ctx, p.properties.unwrap_or_default(), body);
            return;
        }
        let msg = Message::new(
            p.method.exchange,
            p.method.routing_key,
            p.properties.unwrap_or_default(),
            body,
        );
        if self.mode == Mode::Tx {
            self.tx_publishes
                .push((p.exchange, msg, p.method.mandatory));
            return;
        }
        let r = self.route_and_enqueue(ctx, &p.exchange, msg, p.method.mandatory);
        if self.mode == Mode::Confirm {
            let seq = self.next_publish_seq;
            self.next_publish_seq += 1;
            if r.rejected {
                // A full queue with x-overflow=reject-publish refused it.
                self.awaiting.push_back(Awaiting::Nack(seq));
            } else {
                self.awaiting
                    .push_back(Awaiting::Confirm(seq, r.ticket, r.cluster));
            }
        }
    }

    /// Run a management command (see `warren_core::control`) and publish the
    /// answer to the request's `reply_to`, with its `correlation_id`.
    fn control(&mut self, ctx: &mut ConnContext, properties: Bytes, body: Bytes) {
        // The user's current tags: a tag removed at runtime takes effect at once.
        let tags = ctx
            .broker
            .user(&ctx.user)
            .map(|u| u.tags)
            .unwrap_or_default();
        let req = BasicProperties::decode(&properties).unwrap_or_default();
        // On a cluster node a change goes through the metadata group first,
        // as the management API's do; the answer follows once it committed
        // (the channel goes on meanwhile: answers come through reply_to).
        let replicated = ctx.broker.replicator().cloned().and_then(|r| {
            warren_core::control_ops::replicated_ops(&ctx.broker, &tags, &body).map(|ops| (r, ops))
        });
        if let Some((r, ops)) = replicated {
            let vhost = ctx.vhost.clone();
            tokio::spawn(async move {
                let mut result = r.sync().await;
                for op in ops {
                    if result.is_err() {
                        break;
                    }
                    result = r.replicate(op).await;
                }
                let answer = warren_core::control_ops::answer(result).to_string();
                reply_control(&vhost, req, answer, &mut Vec::new());
            });
        } else {
            let answer = warren_core::control::execute(&ctx.broker, &tags, &body).to_string();
            reply_control(&ctx.vhost, req, answer, &mut self.route_buf);
        }
        if self.mode == Mode::Confirm {
            self.awaiting
                .push_back(Awaiting::Confirm(self.next_publish_seq, 0, 0));
            self.next_publish_seq += 1;
        }
    }

    /// Route and enqueue a message; send basic.return if it was mandatory and
    /// unroutable.
    fn route_and_enqueue(
        &mut self,
        ctx: &mut ConnContext,
        exchange: &Arc<Exchange>,
        msg: Arc<Message>,
        mandatory: bool,
    ) -> Published {
        let mut out = std::mem::take(&mut self.route_buf);
        let confirms = match self.mode {
            Mode::Confirm | Mode::Tx => self.confirms.as_ref(),
            _ => None,
        };
        let result = ctx
            .vhost
            .publish_with(exchange, msg.clone(), &mut out, confirms);
        self.route_buf = out;
        // Only the reader task writes the channel's `publish`.
        self.shared
            .listing
            .stats
            .messages
            .add_serialized(MessageField::Publish, 1);
        if !result.routed {
            let f = if mandatory {
                PublishField::ReturnUnroutable
            } else {
                PublishField::DropUnroutable
            };
            ctx.vhost
                .count_publishing(&self.shared.listing.stats.publishing, f, 1);
        }
        if !result.routed && mandatory {
            self.shared.outlet.send_content(
                self.id,
                Method::BasicReturn(BasicReturn {
                    reply_code: code::NO_ROUTE,
                    reply_text: ShortStr::from_static("NO_ROUTE"),
                    exchange: msg.exchange.clone(),
                    routing_key: msg.routing_key.clone(),
                }),
                msg,
            );
        }
        result
    }

    /// Answer the publishes and commits whose data is durable (`durable` is the
    /// message log's durable ticket). Returns whether some still wait.
    pub fn flush_confirms(&mut self, durable: u64) -> bool {
        let received = self.next_publish_seq - 1;
        if received > self.received_counted {
            self.shared
                .vhost
                .count_received_confirm(received - self.received_counted);
            self.received_counted = received;
        }
        let mut ack_up_to = None;
        while let Some(a) = self.awaiting.front() {
            match *a {
                Awaiting::Confirm(seq, ticket, cluster) if ticket <= durable => {
                    let ok = match &self.confirms {
                        Some(t) if cluster != 0 => match t.take(cluster) {
                            Some(ok) => ok,
                            None => break,
                        },
                        _ => true,
                    };
                    self.awaiting.pop_front();
                    if ok {
                        ack_up_to = Some(seq);
                    } else {
                        // A replicated queue refused it (or was lost): acks
                        // before it first, then the nack.
                        self.send_ack(ack_up_to.take());
                        self.send(Method::BasicNack(BasicNack {
                            delivery_tag: seq,
                            multiple: false,
                            requeue: false,
                        }));
                        self.confirm_sent = seq;
                    }
                }
                Awaiting::CommitOk(ticket, from, to) if ticket <= durable => {
                    // The transaction's replicated tickets, in order (a
                    // done one is forgotten: remember how far we got).
                    let mut next = from;
                    if let Some(t) = &self.confirms {
                        while next != 0 && next <= to && t.take(next).is_some() {
                            next += 1;
                        }
                    }
                    if next != 0 && next <= to {
                        self.awaiting[0] = Awaiting::CommitOk(ticket, next, to);
                        break;
                    }
                    self.awaiting.pop_front();
                    self.send(Method::TxCommitOk(TxCommitOk::default()));
                }
                Awaiting::Nack(seq) => {
                    // Acks before it go first (as one multiple ack), then the nack.
                    self.send_ack(ack_up_to.take());
                    self.awaiting.pop_front();
                    self.send(Method::BasicNack(BasicNack {
                        delivery_tag: seq,
                        multiple: false,
                        requeue: false,
                    }));
                    self.confirm_sent = seq;
                }
                _ => break,
            }
        }
        self.send_ack(ack_up_to);
        if self.mode == Mode::Confirm {
            self.shared
                .listing
                .unconfirmed
                .store(self.awaiting.len() as u64, Relaxed);
        }
        !self.awaiting.is_empty()
    }

    fn send_ack(&mut self, up_to: Option<u64>) {
        if let Some(seq) = up_to {
            // Every publish after the last ack or nack sent is confirmed by
            // this one (nacks go out singly, in order).
            self.shared.vhost.count_publishing(
                &self.shared.listing.stats.publishing,
                PublishField::Confirm,
                seq - self.confirm_sent,
            );
            let multiple = seq > self.confirm_sent + 1;
            self.send(Method::BasicAck(BasicAck {
                delivery_tag: seq,
                multiple,
            }));
            self.confirm_sent = seq;
        }
    }

    /// Release everything the channel holds: cancel consumers (which may delete
    /// auto-delete queues) and requeue unacknowledged deliveries.
    pub fn release(&mut self) {
        let consumers: HashMap<ShortStr, ConsumerEntry> = {
            let mut st = self.shared.state.lock();
            st.closed = true;
            std::mem::take(&mut st.consumers)
        };
        // Requeue first so the messages are back before an auto-delete queue is
        // removed (they go with it either way).
        requeue_all(self.shared.take_all());
        for e in consumers.into_values() {
            e.queue.remove_consumer(&e.consumer);
        }
        self.pending = None;
        self.tx_publishes.clear();
        self.tx_acks.clear();
    }
}

/// Acknowledge deliveries in their queues, one call per queue run.
fn settle(taken: &[Unacked]) {
    let mut i = 0;
    let mut msgs = Vec::new();
    while i < taken.len() {
        let q = &taken[i].queue;
        msgs.clear();
        while i < taken.len() && Arc::ptr_eq(&taken[i].queue, q) {
            msgs.push(taken[i].msg.clone());
            i += 1;
        }
        q.settle(&msgs);
    }
}

/// Rejected without requeue: drop them in their queues (dead-lettering them if
/// the queue has a dead-letter exchange).
fn reject_all(taken: Vec<Unacked>) {
    for (q, msgs) in by_queue(taken) {
        q.reject(msgs);
    }
}

/// Group deliveries by queue, keeping their order.
fn by_queue(taken: Vec<Unacked>) -> Vec<(Arc<Queue>, Vec<warren_core::QueuedMessage>)> {
    let mut out: Vec<(Arc<Queue>, Vec<warren_core::QueuedMessage>)> = Vec::new();
    for u in taken {
        match out.iter_mut().find(|(q, _)| Arc::ptr_eq(q, &u.queue)) {
            Some((_, v)) => v.push(u.msg),
            None => out.push((u.queue, vec![u.msg])),
        }
    }
    out
}

/// Return deliveries to their queues.
fn requeue_all(taken: Vec<Unacked>) {
    for (q, msgs) in by_queue(taken) {
        q.requeue(msgs);
    }
}

/// Publish a control command's answer to its `reply_to`, with its
/// `correlation_id`, through the default exchange.
fn reply_control(
    vhost: &warren_core::VHost,
    req: BasicProperties,
    answer: String,
    route_buf: &mut Vec<Arc<Queue>>,
) {
    let Some(reply_to) = req.reply_to else {
        return;
    };
    let props = BasicProperties {
        content_type: Some(ShortStr::from_static("application/json")),
        correlation_id: req.correlation_id,
        ..Default::default()
    };
    let msg = Message::new(
        ShortStr::empty(),
        reply_to,
        props.encode(),
        Bytes::from(answer),
    );
    if let Ok(default) = vhost.get_exchange(&ShortStr::empty()) {
        vhost.publish(&default, msg, route_buf);
    }
}
