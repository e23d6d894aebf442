//! A logged-in STOMP connection: the frame handlers.
//!
//! A `Session` is owned by its connection's reader task, so it needs no lock;
//! what queues touch concurrently (subscriptions, unacknowledged deliveries)
//! lives in [`Deliveries`]. Each handler maps a frame onto broker-core calls the
//! way RabbitMQ's STOMP plugin maps it onto AMQP methods (it runs every STOMP
//! connection over an internal AMQP channel), so permissions, declare rules and
//! errors are the ones an AMQP client would meet:
//!
//! | frame | core calls |
//! |---|---|
//! | SEND | declare the `/queue` (once per connection), publish |
//! | SUBSCRIBE | declare the queue (`/queue`, `/topic`, `/exchange`), consume, bind |
//! | UNSUBSCRIBE | cancel; a durable topic subscription's queue is deleted |
//! | ACK / NACK | settle / requeue or reject deliveries |
//! | BEGIN / COMMIT / ABORT | hold back, perform or drop SENDs and ACKs |

use bytes::Bytes;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use warren_core::permissions::{Access, AccessCache, Resource};
use warren_core::properties::RawProperties;
use warren_core::queue::{check_expiration, ChannelRef};
use warren_core::stats::{MessageField, PublishField};
use warren_core::trace::Origin;
use warren_core::{
    BasicProperties, Broker, BrokerError, ConnectionId, Consumer, Exchange, FieldTable, FieldValue,
    Message, Queue, QueueOptions, ShortStr, VHost,
};

use crate::command::Command;
use crate::destination::{self, Destination};
use crate::error::bad_command_error;
use crate::failure::{quoted, Failure, Handled};
use crate::frame::Frame;
use crate::headers::{parse_integer, Headers};
use crate::mapping;
use crate::names;
use crate::subscription::{self, AckMode, Deliveries, Subscription, SubscriptionSink};
use crate::transaction::{Action, Transactions};
use crate::version::Version;
use crate::writer::{send, Outbound, Outlet, SubInfo};

/// What the connection does after a frame.
pub enum Flow {
    Continue,
    /// DISCONNECT: answer its receipt (if any) once pending receipts are out, close.
    Disconnect(Option<Bytes>),
    /// Close (an ERROR, if any, is queued).
    Close,
}

/// RabbitMQ's prefix of consumer tags made from a subscription id.
const ID_TAG: &[u8] = b"T_";
/// … and from a destination (1.0 SUBSCRIBE without `id`).
const DEST_TAG: &[u8] = b"Q_";
const TEMP_QUEUE_ID_PREFIX: &[u8] = b"/temp-queue/";

/// `x-` queue arguments SUBSCRIBE (and SEND to `/queue`) may carry, and their types.
const QUEUE_ARGUMENTS: [(&str, bool); 8] = [
    ("x-dead-letter-exchange", false),
    ("x-dead-letter-routing-key", false),
    ("x-expires", true),
    ("x-max-length", true),
    ("x-max-length-bytes", true),
    ("x-max-priority", true),
    ("x-message-ttl", true),
    ("x-queue-type", false),
];

pub struct Session {
    pub id: ConnectionId,
    pub user: String,
    pub broker: Arc<Broker>,
    pub vhost: Arc<VHost>,
    pub version: Version,
    pub outlet: Arc<Outlet>,
    pub deliveries: Arc<Deliveries>,
    access: AccessCache,
    /// `/queue` destinations this connection declared already (RabbitMQ declares
    /// each once per connection).
    pub(crate) declared: HashSet<Bytes>,
    transactions: Transactions,
    /// `/temp-queue/ID` → the private queue behind it.
    reply_queues: HashMap<Bytes, ShortStr>,
    /// `prefetch-count` for subscriptions from now on (RabbitMQ's `basic.qos`).
    prefetch: u32,
    /// Exclusive queues this connection declared, deleted when it closes.
    exclusive_queues: Vec<Arc<Queue>>,
    /// SEND receipts waiting for their message to reach the disk, in order:
    /// (message-log ticket, confirm-tracker ticket, receipt id).
    pending_receipts: VecDeque<(u64, u64, Bytes)>,
    /// Tickets of receipted SENDs into replicated queues (quorum queues),
    /// which confirm on their own; wakes `confirm_wake`.
    confirms: Arc<warren_core::confirm::ConfirmTracker>,
    pub confirm_wake: Arc<tokio::sync::Notify>,
    /// The connection published (resource alarms pause publishers only).
    pub has_published: bool,
    route_buf: Vec<Arc<Queue>>,
    /// The exchange last published to and the auth generation its write access
    /// was checked at: a stream of SENDs costs no lookup and no regex.
    exchange_cache: Option<(Arc<Exchange>, u64)>,
    origin: Origin,
    /// Consumers to start once the frame that made them is answered: RabbitMQ's
    /// RECEIPT for a SUBSCRIBE reaches the client before the first MESSAGE.
    to_activate: Vec<(Arc<Consumer>, Arc<Queue>)>,
    /// An SSE feed's session (Warren-only): its auto-ack subscription may
    /// read a stream, credit being the outlet's room (a browser cannot ack).
    feed: bool,
    /// The feed's subscription reads a stream: events carry stream offsets.
    pub feeds_stream: bool,
}

impl Session {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: ConnectionId,
        user: String,
        name: String,
        broker: Arc<Broker>,
        vhost: Arc<VHost>,
        version: Version,
        outlet: Arc<Outlet>,
    ) -> Session {
        let confirm_wake = Arc::new(tokio::sync::Notify::new());
        let origin = Origin {
            user: user.clone(),
            connection: name,
            channel: 1,
        };
        let deliveries = Deliveries::new(outlet.clone(), vhost.clone(), origin.clone());
        Session {
            id,
            user,
            broker,
            vhost,
            version,
            outlet,
            deliveries,
            access: AccessCache::new(),
            declared: HashSet::new(),
            transactions: Transactions::default(),
            reply_queues: HashMap::new(),
            prefetch: 0,
            exclusive_queues: Vec::new(),
            pending_receipts: VecDeque::new(),
            confirms: warren_core::confirm::ConfirmTracker::new(confirm_wake.clone()),
            confirm_wake,
            has_published: false,
            route_buf: Vec::new(),
            exchange_cache: None,
            origin,
            to_activate: Vec::new(),
            feed: false,
            feeds_stream: false,
        }
    }

    /// Handle one frame.
    pub fn handle(&mut self, frame: Frame) -> Flow {
        self.handle_after(frame, Ok(()))
    }

    /// Handle a frame whose cluster step ([`Session::replicate_first`])
    /// answered `replicated`: a refusal there is the frame's result.
    pub fn handle_after(&mut self, mut frame: Frame, replicated: Handled) -> Flow {
        if self.version == Version::V1_0 {
            // RabbitMQ's 1.0 "frame transformer".
            frame.headers.trim_leading_spaces();
        }
        let result = match &frame.command {
            _ if replicated.is_err() => replicated,
            Command::Send => self.on_send(&frame),
            Command::Subscribe => {
                check_durable_id(&frame.headers).and_then(|_| self.on_subscribe(&frame))
            }
            Command::Unsubscribe => {
                check_durable_id(&frame.headers).and_then(|_| self.on_unsubscribe(&frame))
            }
            Command::Ack => self.on_ack(&frame, false),
            Command::Nack => self.on_ack(&frame, true),
            Command::Begin | Command::Commit | Command::Abort => self.on_transaction(&frame),
            Command::Disconnect => return Flow::Disconnect(frame.headers.get_bytes("receipt")),
            // A second CONNECT crashes RabbitMQ's processor: the socket just closes.
            Command::Connect | Command::Stomp => Err(Failure::Silent),
            other => {
                self.send_frame(bad_command_error(other));
                return Flow::Continue;
            }
        };
        // SEND receipts wait for the message to be stored (see `publish`).
        let receipt = match frame.command {
            Command::Send => None,
            _ => frame.headers.get_bytes("receipt"),
        };
        match result {
            Ok(()) => {
                if let Some(r) = receipt {
                    self.send_frame(Frame::receipt(&r));
                }
                for (consumer, queue) in std::mem::take(&mut self.to_activate) {
                    consumer.activate();
                    queue.deliver();
                }
                Flow::Continue
            }
            Err(f) => {
                // What was subscribed before the failure (a temp queue) starts.
                for (consumer, queue) in std::mem::take(&mut self.to_activate) {
                    consumer.activate();
                    queue.deliver();
                }
                if let Some(e) = f.frame() {
                    self.send_frame(e);
                }
                if !f.closes() {
                    return Flow::Continue;
                }
                // RabbitMQ still runs its receipt step when its channel died.
                if let (Some(r), false) = (receipt, matches!(f, Failure::Silent)) {
                    self.send_frame(Frame::receipt(&r));
                }
                Flow::Close
            }
        }
    }

    /// SUBSCRIBE for a feed that is not a STOMP connection (Server-Sent
    /// Events): the same destinations, permissions and queue declarations as
    /// a SUBSCRIBE frame, but a refusal is returned, not sent as an ERROR.
    /// Nothing is subscribed when it fails.
    pub fn subscribe_feed(&mut self, frame: Frame) -> Handled {
        self.feed = true;
        let result = check_durable_id(&frame.headers).and_then(|_| self.on_subscribe(&frame));
        for (consumer, queue) in std::mem::take(&mut self.to_activate) {
            consumer.activate();
            queue.deliver();
        }
        result
    }

    fn send_frame(&self, frame: Frame) {
        send(&self.outlet, Outbound::Frame(frame));
    }

    pub(crate) fn check(
        &mut self,
        access: Access,
        kind: Resource,
        name: &[u8],
    ) -> Result<(), BrokerError> {
        self.access
            .check(&self.broker, &self.user, &self.vhost, access, kind, name)
    }

    /// The topic permission a subscription's binding needs.
    pub(crate) fn check_topic_read(&mut self, x: &Exchange, key: &[u8]) -> Result<(), BrokerError> {
        self.access
            .check_topic(&self.broker, &self.user, &self.vhost, Access::Read, x, key)
    }

    // ---- SEND --------------------------------------------------------------

    fn on_send(&mut self, frame: &Frame) -> Handled {
        let h = &frame.headers;
        if h.contains("message-id") {
            return Err(Failure::error(
                "Invalid header",
                "'message-id' is not allowed on 'SEND'.\n",
            ));
        }
        let dest = destination_of(frame, "SEND")?;
        self.ensure_endpoint(&dest, frame, false)?;
        let reply_to = self.ensure_reply_to(h)?;
        let props = mapping::message_properties(h, reply_to.as_ref())?;
        let (exchange, key) = dest.routing_bytes();
        let message = Message::new(
            ShortStr(exchange.clone()),
            ShortStr(key),
            props.encode(),
            frame.body.clone(),
        );
        let receipt = h.get_bytes("receipt");
        match h.transaction() {
            Some(tx) => {
                let action = Action::Send {
                    exchange,
                    message,
                    receipt,
                };
                if self.transactions.extend(tx, action) {
                    Ok(())
                } else {
                    Err(bad_transaction(tx))
                }
            }
            None => self.publish(&exchange, message, receipt),
        }
    }

    /// Publish through the core's one publish path; a receipt waits for the
    /// message-log ticket (the fsync of a persistent message on a durable queue).
    fn publish(
        &mut self,
        exchange: &[u8],
        message: Arc<Message>,
        receipt: Option<Bytes>,
    ) -> Handled {
        let generation = self.broker.auth_generation();
        let x = match &self.exchange_cache {
            Some((x, g))
                if x.name.as_bytes() == exchange && *g == generation && !x.is_deleted() =>
            {
                x.clone()
            }
            _ => {
                self.exchange_cache = None;
                self.check(Access::Write, Resource::Exchange, exchange)?;
                let x = self
                    .vhost
                    .get_exchange(&ShortStr(Bytes::copy_from_slice(exchange)))?;
                self.exchange_cache = Some((x.clone(), generation));
                x
            }
        };
        self.vhost.check_publishable(&x)?;
        self.access.check_topic(
            &self.broker,
            &self.user,
            &self.vhost,
            Access::Write,
            &x,
            message.routing_key.as_bytes(),
        )?;
        let max = self.broker.limits.max_message_size;
        if message.body.len() as u64 > max {
            return Err(BrokerError::precondition_failed(format!(
                "message size {} is larger than configured max size {}",
                message.body.len(),
                max
            ))
            .into());
        }
        self.check_properties(&message)?;
        self.has_published = true;
        if self.vhost.is_tracing() {
            warren_core::trace::set_origin(Some(self.origin.clone()));
        }
        let mut out = std::mem::take(&mut self.route_buf);
        let confirms = receipt.as_ref().map(|_| &self.confirms);
        let published = self.vhost.publish_with(&x, message, &mut out, confirms);
        self.route_buf = out;
        // Only the reader task writes the channel's `publish`.
        self.deliveries
            .stats
            .messages
            .add_serialized(MessageField::Publish, 1);
        if !published.routed {
            // A SEND is never mandatory: RabbitMQ's `drop_unroutable`.
            self.vhost.count_publishing(
                &self.deliveries.stats.publishing,
                PublishField::DropUnroutable,
                1,
            );
        }
        if let Some(r) = receipt {
            // A message a full queue refused (x-overflow reject-publish) is not
            // confirmed by RabbitMQ either: no receipt.
            if !published.rejected {
                self.pending_receipts
                    .push_back((published.ticket, published.cluster, r));
            }
        }
        Ok(())
    }

    /// What RabbitMQ's channel checks on every publish: `user-id` must be the
    /// connection's user, `expiration` a valid TTL.
    fn check_properties(&self, message: &Message) -> Handled {
        let raw = &message.properties;
        if !RawProperties::has_user_id(raw) && !RawProperties::has_expiration(raw) {
            return Ok(());
        }
        let p = BasicProperties::decode(raw).unwrap_or_default();
        if let Some(u) = &p.user_id {
            if u.as_bytes() != self.user.as_bytes() {
                return Err(BrokerError::precondition_failed(format!(
                    "user_id property set to '{}' but authenticated user was '{}'",
                    u, self.user
                ))
                .into());
            }
        }
        if let Some(e) = &p.expiration {
            if let Err(detail) = check_expiration(e.as_bytes()) {
                return Err(BrokerError::precondition_failed(format!(
                    "invalid expiration '{}': {}",
                    e, detail
                ))
                .into());
            }
        }
        Ok(())
    }

    /// Answer the SEND receipts whose messages are durable now (`durable` is the
    /// message log's durable ticket). Returns whether some still wait.
    pub fn flush_receipts(&mut self, durable: u64) -> bool {
        while let Some((ticket, cluster, _)) = self.pending_receipts.front() {
            if *ticket > durable {
                return true;
            }
            // A replicated queue that refused the message: no receipt, as
            // for a full queue.
            let Some(ok) = self.confirms.take(*cluster) else {
                return true;
            };
            if let Some((_, _, r)) = self.pending_receipts.pop_front() {
                if ok {
                    self.send_frame(Frame::receipt(&r));
                }
            }
        }
        false
    }

    /// The highest ticket a pending receipt waits for.
    pub fn pending_ticket(&self) -> Option<u64> {
        self.pending_receipts.iter().map(|(t, _, _)| *t).max()
    }

    /// `reply-to: /temp-queue/ID`: the private queue answers come back to,
    /// created (and subscribed to) on first use; the header is rewritten to its
    /// name. Other values pass unchanged.
    fn ensure_reply_to(&mut self, h: &Headers) -> Result<Option<ShortStr>, Failure> {
        let Some(value) = h.get_bytes("reply-to") else {
            return Ok(None);
        };
        // RabbitMQ's processor crashes on a reply-to it cannot parse.
        let id = match destination::parse(&value) {
            Ok(Destination::TempQueue(id)) => id,
            Ok(_) => return Ok(None),
            Err(_) => return Err(Failure::processing()),
        };
        if let Some(q) = self.reply_queues.get(&id) {
            return Ok(Some(q.clone()));
        }
        let name = self.vhost.generate_queue_name();
        self.check(Access::Configure, Resource::Queue, name.as_bytes())?;
        let (queue, _) = self.vhost.declare_generated_queue(
            name.clone(),
            QueueOptions {
                durable: false,
                exclusive: true,
                auto_delete: true,
                arguments: FieldTable::new(),
            },
            self.id,
        )?;
        self.exclusive_queues.push(queue.clone());
        let mut tag = ID_TAG.to_vec();
        tag.extend_from_slice(TEMP_QUEUE_ID_PREFIX);
        tag.extend_from_slice(&id);
        let tag = Bytes::from(tag);
        let info = Arc::new(SubInfo {
            subscription: Some(tag.slice(ID_TAG.len()..)),
            tag,
            ack_header: false,
        });
        self.consume(
            queue,
            info,
            AckMode::Auto,
            name.0.clone(),
            "undefined".into(),
            FieldTable::new(),
        )?;
        self.reply_queues.insert(id, name.clone());
        Ok(Some(name))
    }

    // ---- SUBSCRIBE / UNSUBSCRIBE --------------------------------------------

    fn on_subscribe(&mut self, frame: &Frame) -> Handled {
        let h = &frame.headers;
        let dest = destination_of(frame, "SUBSCRIBE")?;
        let prefetch = match h.integer("prefetch-count") {
            None => None,
            Some(Ok(n)) if (0..=i64::from(u16::MAX)).contains(&n) => Some(n as u32),
            Some(_) => return Err(Failure::processing()),
        };
        let ack = AckMode::parse(h.ack()).ok_or_else(Failure::processing)?;
        let queue_name = self.ensure_endpoint(&dest, frame, true)?;
        let (tag, description) = match consumer_tag(h) {
            Ok(t) => t,
            Err(_) => return Err(Failure::processing()),
        };
        if let Some(p) = prefetch {
            self.prefetch = p;
            self.deliveries.prefetch.store(p, Relaxed);
        }
        let generated = matches!(dest, Destination::Topic(_) | Destination::Exchange(..));
        if self.deliveries.contains(&tag) {
            // A queue made for this SUBSCRIBE alone (a random name) goes again.
            if generated && !has_durable_header(h) {
                if let Some(q) = self.vhost.named_queue(queue_name.as_bytes()) {
                    self.vhost.remove_queue(&q);
                }
            }
            return Err(Failure::FatalMessage {
                message: "Duplicated subscription identifier",
                detail: format!(
                    "A subscription identified by '{}' already exists.",
                    String::from_utf8_lossy(&tag)
                ),
            });
        }
        let result = self.subscribe(&dest, &queue_name, tag, ack, h, description);
        if result.is_err() && generated {
            // As RabbitMQ: the subscription queue was declared for this
            // SUBSCRIBE, so it goes when consuming or binding fails.
            if let Some(q) = self.vhost.named_queue(queue_name.as_bytes()) {
                self.vhost.remove_queue(&q);
            }
        }
        result
    }

    fn subscribe(
        &mut self,
        dest: &Destination,
        queue_name: &ShortStr,
        tag: Bytes,
        ack: AckMode,
        h: &Headers,
        description: String,
    ) -> Handled {
        self.check(Access::Read, Resource::Queue, queue_name.as_bytes())?;
        let queue = self.vhost.get_queue(queue_name, self.id)?;
        let info = Arc::new(SubInfo {
            subscription: tag.starts_with(ID_TAG).then(|| tag.slice(ID_TAG.len()..)),
            tag,
            ack_header: ack != AckMode::Auto && self.version == Version::V1_2,
        });
        let (exchange, key) = dest.routing();
        // What binding needs is checked before consuming: RabbitMQ binds
        // first, so a refused bind never starts (and cancels) a consumer.
        if !exchange.is_empty() {
            self.check(Access::Write, Resource::Queue, queue_name.as_bytes())?;
            self.check(Access::Read, Resource::Exchange, exchange)?;
            if let Some(x) = self.vhost.exchange(exchange) {
                self.access.check_topic(
                    &self.broker,
                    &self.user,
                    &self.vhost,
                    Access::Read,
                    &x,
                    key,
                )?;
            }
        }
        let destination = h.get_bytes("destination").unwrap_or_default();
        let arguments = crate::stream_offset::consumer_arguments(h);
        if self.feed {
            self.feeds_stream = queue.is_stream();
        } else {
            queue.check_stream_consume(&arguments, ack == AckMode::Auto, self.prefetch)?;
        }
        self.consume(queue, info, ack, destination, description, arguments)?;
        if !exchange.is_empty() {
            self.vhost.bind_queue(
                queue_name,
                &ShortStr(Bytes::copy_from_slice(exchange)),
                ShortStr(Bytes::copy_from_slice(key)),
                FieldTable::new(),
                self.id,
            )?;
        }
        Ok(())
    }

    /// Attach a consumer for a subscription and let the queue deliver.
    fn consume(
        &mut self,
        queue: Arc<Queue>,
        info: Arc<SubInfo>,
        ack: AckMode,
        destination: Bytes,
        description: String,
        arguments: FieldTable,
    ) -> Handled {
        let sink = Arc::new(SubscriptionSink {
            info: info.clone(),
            deliveries: self.deliveries.clone(),
        });
        let consumer = Consumer::new(
            ShortStr(info.tag.clone()),
            ack == AckMode::Auto,
            false,
            arguments,
            ChannelRef {
                connection: self.id,
                number: crate::listing::CHANNEL,
            },
            self.prefetch,
            sink,
        );
        queue.add_consumer(consumer.clone())?;
        self.deliveries.insert(Subscription {
            info,
            consumer: consumer.clone(),
            queue: queue.clone(),
            destination,
            ack,
            description,
        });
        self.to_activate.push((consumer, queue));
        Ok(())
    }

    fn on_unsubscribe(&mut self, frame: &Frame) -> Handled {
        let h = &frame.headers;
        let (tag, description) = match consumer_tag(h) {
            Ok(t) => t,
            Err(TagError::TempQueuePrefix) => {
                return Err(Failure::error(
                    "Invalid id",
                    "UNSUBSCRIBE 'id' may not start with /temp-queue/\n",
                ))
            }
            Err(TagError::Missing) => {
                return Err(Failure::error(
                    "Missing destination or id",
                    "UNSUBSCRIBE must include a 'destination' or 'id' header",
                ))
            }
        };
        let Some(sub) = self.deliveries.remove(&tag) else {
            return Err(Failure::error(
                "No subscription found",
                format!(
                    "UNSUBSCRIBE must refer to an existing subscription.\nSubscription to {} not found.\n",
                    quoted(description.as_bytes())
                ),
            ));
        };
        sub.queue.remove_consumer(&sub.consumer);
        // Unsubscribing with `durable`/`persistent` ends a durable topic
        // subscription: its queue goes.
        let durable = h.boolean("durable") == Some(true) || h.boolean("persistent") == Some(true);
        if let (Ok(Destination::Topic(name)), true) =
            (destination::parse(&sub.destination), durable)
        {
            let Some(id) = h.id() else {
                return Err(Failure::processing());
            };
            let queue = subscription_queue_name(h, &name, id);
            self.check(Access::Configure, Resource::Queue, queue.as_bytes())?;
            self.vhost.delete_queue(&queue, false, false, self.id)?;
        }
        Ok(())
    }

    /// What a destination needs before a SEND or SUBSCRIBE: `/queue` queues are
    /// declared, subscriptions to `/topic` and `/exchange` get their own queue.
    /// Returns the queue to consume from (for SUBSCRIBE).
    fn ensure_endpoint(
        &mut self,
        dest: &Destination,
        frame: &Frame,
        subscribe: bool,
    ) -> Result<ShortStr, Failure> {
        let h = &frame.headers;
        match dest {
            Destination::Queue(name) if name.is_empty() => Err(Failure::error(
                "Invalid destination",
                "Destination cannot be blank",
            )),
            Destination::Queue(name) => {
                let queue = ShortStr(name.clone());
                if !self.declared.contains(name) {
                    let opts = queue_options(h, Defaults::QUEUE)?;
                    self.declare(queue.clone(), opts)?;
                    self.declared.insert(name.clone());
                }
                Ok(queue)
            }
            Destination::Topic(_) | Destination::Exchange(..) if subscribe => {
                let opts = queue_options(h, Defaults::SUBSCRIPTION)?;
                // Only the routing key goes into the name, as in RabbitMQ.
                let (_, key) = dest.routing();
                let id: Vec<u8> = match (has_durable_header(h), h.id()) {
                    (true, Some(id)) => id.to_vec(),
                    (true, None) => return Err(Failure::processing()),
                    (false, _) => self.vhost.generate_queue_name().0.to_vec(),
                };
                let queue = subscription_queue_name(h, key, &id);
                self.declare(queue.clone(), opts)?;
                Ok(queue)
            }
            Destination::Topic(_) | Destination::Exchange(..) => Ok(ShortStr::empty()),
            Destination::AmqQueue(name) | Destination::ReplyQueue(name) => {
                Ok(ShortStr(name.clone()))
            }
            Destination::TempQueue(_) => Err(Failure::error(
                "Invalid destination",
                format!(
                    "'{}' is not a valid destination for '{}'\n",
                    String::from_utf8_lossy(h.destination().unwrap_or_default()),
                    frame.command
                ),
            )),
        }
    }

    /// queue.declare with RabbitMQ's permission checks.
    fn declare(&mut self, name: ShortStr, opts: QueueOptions) -> Handled {
        for (access, kind, n) in
            warren_core::permissions::queue_declare_needs(name.as_bytes(), &opts.arguments)
        {
            self.check(access, kind, n)?;
        }
        let (q, created) = self.vhost.declare_queue(Some(name), opts, false, self.id)?;
        if created && q.options.exclusive {
            self.exclusive_queues.push(q);
        }
        Ok(())
    }

    // ---- ACK / NACK --------------------------------------------------------

    fn on_ack(&mut self, frame: &Frame, nack: bool) -> Handled {
        let h = &frame.headers;
        let command = if nack { "NACK" } else { "ACK" };
        let header = if self.version == Version::V1_2 {
            "id"
        } else {
            "message-id"
        };
        let Some(value) = h.get(header) else {
            return Err(Failure::error(
                "Missing header",
                format!("\"{command}\" must include the \"{header}\" header\n"),
            ));
        };
        // `<consumer tag>@@<session>@@<delivery tag>`
        let parts = split_message_id(value);
        let [consumer_tag, _session, tag] = parts.as_slice() else {
            return Err(Failure::error(
                "Invalid header",
                format!("\"{command}\" must include a valid \"{header}\" header\n"),
            ));
        };
        let tag = match parse_integer_strict(tag) {
            Some(t) => t,
            None => return Err(Failure::processing()),
        };
        let Some(mode) = self.deliveries.ack_mode(consumer_tag) else {
            return Err(Failure::error(
                "Subscription not found",
                format!("Message with id {} has no subscription", quoted(value)),
            ));
        };
        // RabbitMQ's default_nack_requeue is true.
        let nack = nack.then(|| h.boolean("requeue").unwrap_or(true));
        let multiple = mode.multiple();
        match h.transaction() {
            Some(tx) => {
                if self.transactions.extend(
                    tx,
                    Action::Ack {
                        tag,
                        multiple,
                        nack,
                    },
                ) {
                    Ok(())
                } else {
                    Err(bad_transaction(tx))
                }
            }
            None => self.apply_ack(tag, multiple, nack),
        }
    }

    fn apply_ack(&mut self, tag: u64, multiple: bool, nack: Option<bool>) -> Handled {
        let taken = self.deliveries.take(tag, multiple)?;
        if let (Some(_), Some(u)) = (nack, taken.iter().find(|u| u.queue.is_stream())) {
            // RabbitMQ's channel closes the connection (540), which its STOMP
            // plugin reports as a dead channel.
            let e = u.queue.stream_refusal("basic.nack and basic.reject");
            return Err(Failure::FatalMessage {
                message: "AMQP channel died",
                detail: format!(
                    "Reason: {{shutdown,\n            {{connection_closing,\n                \
                     {{server_initiated_close,{},\n                    \"{}\"}}}}}}",
                    e.code, e.text
                ),
            });
        }
        match nack {
            None => {
                subscription::settle(&taken);
                self.deliveries
                    .stats
                    .messages
                    .add_serialized(MessageField::Ack, taken.len() as u64);
                subscription::wake(&taken);
            }
            Some(true) => subscription::requeue(taken),
            Some(false) => {
                subscription::wake(&taken);
                subscription::reject(taken);
            }
        }
        Ok(())
    }

    // ---- BEGIN / COMMIT / ABORT --------------------------------------------

    fn on_transaction(&mut self, frame: &Frame) -> Handled {
        let Some(tx) = frame.headers.transaction() else {
            return Err(Failure::error(
                "Missing transaction",
                format!(
                    "\"{}\" must include a 'transaction' header\n",
                    frame.command
                ),
            ));
        };
        match frame.command {
            Command::Begin => {
                self.transactions.begin(Bytes::copy_from_slice(tx));
                Ok(())
            }
            Command::Abort => match self.transactions.end(tx) {
                Some(_) => Ok(()),
                None => Err(bad_transaction(tx)),
            },
            _ => {
                let Some(actions) = self.transactions.end(tx) else {
                    return Err(bad_transaction(tx));
                };
                for action in actions {
                    match action {
                        Action::Send {
                            exchange,
                            message,
                            receipt,
                        } => self.publish(&exchange, message, receipt)?,
                        Action::Ack {
                            tag,
                            multiple,
                            nack,
                        } => self.apply_ack(tag, multiple, nack)?,
                    }
                }
                Ok(())
            }
        }
    }

    // ---- closing -----------------------------------------------------------

    /// The connection is closing: unacknowledged deliveries go back to their
    /// queues (marked redelivered), consumers are cancelled (auto-delete queues
    /// go), exclusive queues are deleted.
    pub fn close(&mut self) {
        let (subs, unacked) = self.deliveries.close();
        // Requeue first, so the messages are back before an auto-delete queue
        // is removed (they go with it either way).
        subscription::requeue(unacked);
        for s in subs {
            s.queue.remove_consumer(&s.consumer);
        }
        for q in std::mem::take(&mut self.exclusive_queues) {
            self.vhost.remove_queue(&q);
        }
        self.pending_receipts.clear();
    }
}

/// Durable subscriptions need an `id` (RabbitMQ checks the exact value `true`).
fn check_durable_id(h: &Headers) -> Handled {
    let durable = h.get("durable") == Some(b"true") || h.get("persistent") == Some(b"true");
    if durable && !h.contains("id") {
        return Err(Failure::error(
            "Missing Header",
            "Header 'id' is required for durable subscriptions",
        ));
    }
    Ok(())
}

pub(crate) fn has_durable_header(h: &Headers) -> bool {
    h.boolean("durable") == Some(true) || h.boolean("persistent") == Some(true)
}

/// The parsed `destination` of a frame, or the ERROR RabbitMQ sends.
fn destination_of(frame: &Frame, command: &str) -> Result<Destination, Failure> {
    let Some(d) = frame.headers.get_bytes("destination") else {
        return Err(Failure::error(
            "Missing destination",
            format!("\"{command}\" must include a 'destination' header\n"),
        ));
    };
    destination::parse(&d).map_err(|e| {
        let (message, detail) = destination::parse_error_text(&d, &e);
        Failure::error(message, detail)
    })
}

fn bad_transaction(tx: &[u8]) -> Failure {
    Failure::error(
        "Bad transaction",
        format!("Invalid transaction identifier: {}\n", quoted(tx)),
    )
}

pub(crate) enum TagError {
    TempQueuePrefix,
    Missing,
}

/// The consumer tag of a SUBSCRIBE/UNSUBSCRIBE and its description for error
/// texts: `T_<id>` / `id='<id>'`, else `Q_<destination>` / `destination='<d>'`.
pub(crate) fn consumer_tag(h: &Headers) -> Result<(Bytes, String), TagError> {
    if let Some(id) = h.id() {
        if id.starts_with(TEMP_QUEUE_ID_PREFIX) {
            return Err(TagError::TempQueuePrefix);
        }
        let mut tag = ID_TAG.to_vec();
        tag.extend_from_slice(id);
        return Ok((
            Bytes::from(tag),
            format!("id='{}'", String::from_utf8_lossy(id)),
        ));
    }
    if let Some(d) = h.destination() {
        let mut tag = DEST_TAG.to_vec();
        tag.extend_from_slice(d);
        return Ok((
            Bytes::from(tag),
            format!("destination='{}'", String::from_utf8_lossy(d)),
        ));
    }
    Err(TagError::Missing)
}

/// The queue of a topic or exchange subscription: `x-queue-name`, or RabbitMQ's
/// `stomp-subscription-…` name.
pub(crate) fn subscription_queue_name(h: &Headers, key: &[u8], id: &[u8]) -> ShortStr {
    match h.get_bytes("x-queue-name") {
        Some(n) => ShortStr(n),
        None => ShortStr::from(names::subscription_queue(key, id)),
    }
}

/// Splits on `@@` the way RabbitMQ's `split/2` does (an empty value has no parts).
fn split_message_id(v: &[u8]) -> Vec<&[u8]> {
    if v.is_empty() {
        return Vec::new();
    }
    let mut parts = Vec::with_capacity(3);
    let mut start = 0;
    let mut i = 0;
    while i + 1 < v.len() {
        if &v[i..i + 2] == b"@@" {
            parts.push(&v[start..i]);
            i += 2;
            start = i;
        } else {
            i += 1;
        }
    }
    parts.push(&v[start..]);
    parts
}

/// `list_to_integer/1` of a delivery tag (no spaces allowed); negative tags are
/// never outstanding, so they are refused here too.
fn parse_integer_strict(s: &[u8]) -> Option<u64> {
    let digits = s.strip_prefix(b"+").unwrap_or(s);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Queue declare defaults per destination kind (RabbitMQ's `default_params`).
#[derive(Clone, Copy)]
pub(crate) struct Defaults {
    durable: bool,
    exclusive: Option<bool>,
    auto_delete: Option<bool>,
}

impl Defaults {
    pub(crate) const QUEUE: Defaults = Defaults {
        durable: true,
        exclusive: None,
        auto_delete: None,
    };
    pub(crate) const SUBSCRIPTION: Defaults = Defaults {
        durable: false,
        exclusive: Some(false),
        auto_delete: Some(true),
    };
}

/// A boolean declare parameter from a header: absent, a boolean, or something
/// else (which RabbitMQ treats as `undefined`).
enum Param {
    Absent,
    Value(bool),
    Invalid,
}

fn param(h: &Headers, names: &[&str]) -> Param {
    // The first of the named headers to arrive decides.
    let found = h
        .iter()
        .find(|(n, _)| names.iter().any(|x| x.as_bytes() == *n))
        .map(|(_, v)| v);
    match found {
        None => Param::Absent,
        Some(b"true" | b"True") => Param::Value(true),
        Some(b"false" | b"False") => Param::Value(false),
        Some(_) => Param::Invalid,
    }
}

/// The queue.declare a SUBSCRIBE or SEND makes (`queue_declare_method/3`):
/// durable queues are neither exclusive nor auto-delete, others are both,
/// unless headers (or the destination's defaults) say otherwise.
pub(crate) fn queue_options(h: &Headers, defaults: Defaults) -> Result<QueueOptions, Failure> {
    let durable = match param(h, &["durable", "persistent"]) {
        Param::Absent => defaults.durable,
        Param::Value(b) => b,
        Param::Invalid => return Err(Failure::processing()),
    };
    let pick = |p: Param, default: Option<bool>| match p {
        Param::Value(b) => b,
        Param::Invalid => !durable,
        Param::Absent => default.unwrap_or(!durable),
    };
    let exclusive = pick(param(h, &["exclusive"]), defaults.exclusive);
    let auto_delete = pick(param(h, &["auto-delete"]), defaults.auto_delete);
    Ok(QueueOptions {
        durable,
        exclusive,
        auto_delete,
        arguments: queue_arguments(h)?,
    })
}

/// The `x-` queue arguments among the headers.
fn queue_arguments(h: &Headers) -> Result<FieldTable, Failure> {
    let mut args = FieldTable::new();
    for (name, value) in h.first_occurrences() {
        let Some((key, integer)) = QUEUE_ARGUMENTS
            .iter()
            .find(|(k, _)| k.as_bytes() == name)
            .copied()
        else {
            continue;
        };
        let v = if integer {
            match parse_integer(value) {
                Ok(n) => FieldValue::I64(n),
                Err(_) => return Err(Failure::processing()),
            }
        } else {
            FieldValue::LongStr(Bytes::copy_from_slice(trim_spaces(value)))
        };
        args.0.push((ShortStr::from(key), v));
    }
    Ok(args)
}

fn trim_spaces(v: &[u8]) -> &[u8] {
    let start = v.iter().position(|&b| b != b' ').unwrap_or(v.len());
    let end = v.iter().rposition(|&b| b != b' ').map_or(start, |p| p + 1);
    &v[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    #[test]
    fn message_ids_split_like_rabbitmq() {
        assert_eq!(split_message_id(b"T_1@@s@@3"), [&b"T_1"[..], b"s", b"3"]);
        assert_eq!(split_message_id(b"a@@@@b").len(), 3);
        assert_eq!(split_message_id(b"foo").len(), 1);
        assert!(split_message_id(b"").is_empty());
        assert_eq!(parse_integer_strict(b"12"), Some(12));
        assert_eq!(parse_integer_strict(b" 12"), None);
        assert_eq!(parse_integer_strict(b"-1"), None);
    }

    #[test]
    fn declare_options_follow_rabbitmq() {
        let o = queue_options(&headers(&[]), Defaults::QUEUE).expect("ok");
        assert!(o.durable && !o.exclusive && !o.auto_delete);
        let o = queue_options(&headers(&[("durable", "false")]), Defaults::QUEUE).expect("ok");
        assert!(!o.durable && o.exclusive && o.auto_delete);
        let o = queue_options(&headers(&[]), Defaults::SUBSCRIPTION).expect("ok");
        assert!(!o.durable && !o.exclusive && o.auto_delete);
        let o = queue_options(
            &headers(&[("persistent", "true"), ("auto-delete", "false")]),
            Defaults::SUBSCRIPTION,
        )
        .expect("ok");
        assert!(o.durable && !o.exclusive && !o.auto_delete);
        assert!(queue_options(&headers(&[("durable", "yes")]), Defaults::QUEUE).is_err());
        let o = queue_options(
            &headers(&[
                ("x-max-length", " 10 "),
                ("x-dead-letter-exchange", " dlx "),
            ]),
            Defaults::QUEUE,
        )
        .expect("ok");
        assert_eq!(o.arguments.get("x-max-length"), Some(&FieldValue::I64(10)));
        assert_eq!(
            o.arguments.get("x-dead-letter-exchange"),
            Some(&FieldValue::string("dlx"))
        );
        assert!(queue_options(&headers(&[("x-max-length", "ten")]), Defaults::QUEUE).is_err());
    }

    #[test]
    fn consumer_tags() {
        let (t, d) = consumer_tag(&headers(&[("id", "7"), ("destination", "/queue/q")]))
            .ok()
            .expect("tag");
        assert_eq!(&t[..], b"T_7");
        assert_eq!(d, "id='7'");
        let (t, _) = consumer_tag(&headers(&[("destination", "/queue/q")]))
            .ok()
            .expect("tag");
        assert_eq!(&t[..], b"Q_/queue/q");
        assert!(consumer_tag(&headers(&[("id", "/temp-queue/x")])).is_err());
        assert!(consumer_tag(&headers(&[])).is_err());
    }
}
