//! Virtual hosts: isolated namespaces of exchanges and queues.
//!
//! The vhost owns the name tables and enforces RabbitMQ's rules for declaring,
//! deleting, binding and unbinding (reserved names, equivalence, exclusivity),
//! with RabbitMQ's reply codes and texts.

use crate::confirm::ConfirmTracker;
use crate::error::{BrokerError, Result};
use crate::events;
use crate::exchange::{Destination, Exchange, ExchangeKind, ExchangeOptions};
use crate::message::{Message, Stored};
use crate::policy::{pick_for_queue, Policy, PolicyDef};
use crate::properties::RawProperties;
use crate::queue::{ConnectionId, Queue, QueueArgs, QueueOptions};
use crate::shortstr::ShortStr;
use crate::stats::{
    add_into, vhost_messages, ChurnField, ChurnStats, ExchangeField, ExchangeSnapshot,
    MessageSnapshot, PublishField, PublishStats, VHostStats, MESSAGE_FIELDS,
};
use crate::store::definitions::{table_to_hex, BindingDef};
use crate::store::Store;
use crate::table::FieldTable;
use crate::table::FieldValue;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

pub struct VHost {
    pub name: ShortStr,
    exchanges: RwLock<HashMap<ShortStr, Arc<Exchange>>>,
    queues: RwLock<HashMap<ShortStr, Arc<Queue>>>,
    me: Weak<VHost>,
    name_counter: AtomicU64,
    store: Arc<Store>,
    policies: RwLock<Vec<Policy>>,
    /// Messages held by `x-delayed-message` exchanges.
    delayed: crate::exchange::delayed::DelayedStore,
    /// Firehose tracing (`amq.rabbitmq.trace`) is on.
    tracing: std::sync::atomic::AtomicBool,
    /// The vhost was deleted: nothing can be declared in it any more (its
    /// connections are being closed).
    deleted: std::sync::atomic::AtomicBool,
    /// What deleted queues and exchanges and closed connections had counted,
    /// and the rates of the totals (see [`crate::stats`]).
    pub(crate) stats: VHostStats,
    /// The broker's churn counters (see [`crate::stats::ChurnStats`]).
    churn: Arc<ChurnStats>,
    /// `max-connections`, `max-queues` (see [`crate::limits`]).
    pub(crate) limits: RwLock<crate::limits::LimitMap>,
    /// Operator policies: their numeric limits cap what policies and
    /// arguments set (lower wins), as RabbitMQ's.
    pub(crate) operator_policies: RwLock<Vec<Policy>>,
    /// The broker's metadata replicator, once it has one (see
    /// [`VHost::retire_queue`]).
    replicator: crate::meta::ReplicatorCell,
}

/// Exchanges every vhost has, as in RabbitMQ.
const PREDECLARED: &[(&str, ExchangeKind)] = &[
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
    ("amq.rabbitmq.event", ExchangeKind::Topic),
    ("amq.rabbitmq.trace", ExchangeKind::Topic),
];

/// Name prefix of the private queues behind direct reply-to consumers.
pub const REPLY_QUEUE_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Declaring, deleting or binding the default exchange: RabbitMQ's 403.
pub fn default_exchange_refused() -> BrokerError {
    BrokerError::access_refused("operation not permitted on the default exchange")
}

impl VHost {
    pub fn new(name: impl Into<ShortStr>, store: Arc<Store>, churn: Arc<ChurnStats>) -> Arc<VHost> {
        Self::new_in_cluster(name, store, churn, Default::default())
    }

    /// A vhost of a broker that may join a cluster: `replicator` is the
    /// broker's (set once the node is clustered).
    pub fn new_in_cluster(
        name: impl Into<ShortStr>,
        store: Arc<Store>,
        churn: Arc<ChurnStats>,
        replicator: crate::meta::ReplicatorCell,
    ) -> Arc<VHost> {
        let name = name.into();
        let vhost = Arc::new_cyclic(|me| VHost {
            store,
            policies: RwLock::new(Vec::new()),
            delayed: Default::default(),
            tracing: std::sync::atomic::AtomicBool::new(false),
            deleted: std::sync::atomic::AtomicBool::new(false),
            stats: VHostStats::default(),
            churn,
            limits: RwLock::new(Default::default()),
            operator_policies: RwLock::new(Vec::new()),
            replicator,
            name,
            exchanges: RwLock::new(HashMap::new()),
            queues: RwLock::new(HashMap::new()),
            me: me.clone(),
            name_counter: AtomicU64::new(seed()),
        });
        {
            let mut ex = vhost.exchanges.write();
            for (n, kind) in PREDECLARED {
                let opts = ExchangeOptions {
                    kind: *kind,
                    durable: true,
                    auto_delete: false,
                    internal: n.starts_with("amq.rabbitmq."),
                    arguments: FieldTable::new(),
                };
                ex.insert(ShortStr::from(*n), Exchange::new(ShortStr::from(*n), opts));
            }
        }
        vhost
    }

    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    fn deleted_error(&self) -> BrokerError {
        BrokerError::not_found(format!("vhost '{}' is deleted", self.name))
    }

    fn check_not_deleted(&self) -> Result<()> {
        if self.is_deleted() {
            return Err(self.deleted_error());
        }
        Ok(())
    }

    /// The vhost is being deleted: delete its queues (with their messages),
    /// exchanges and policies, durable ones from the definitions too, through
    /// the same paths as queue.delete / exchange.delete. Declares fail from now on.
    pub fn delete_contents(&self) {
        self.deleted.store(true, Ordering::Release);
        for q in self.queues() {
            self.remove_queue(&q);
        }
        let names: Vec<ShortStr> = self.exchanges.read().keys().cloned().collect();
        for name in names {
            let Some(e) = self.exchanges.write().remove(&name) else {
                continue;
            };
            if name.is_empty() || name.starts_with("amq.") {
                // Predeclared: never stored, nothing bound to them persists alone.
                e.mark_deleted();
            } else {
                self.remove_exchange_bindings(&e);
            }
        }
        for p in self.policies() {
            let _ = self.clear_policy(&p.name);
        }
    }

    fn not_found(&self, what: &str, name: &ShortStr) -> BrokerError {
        BrokerError::not_found(format!("no {} '{}' in vhost '{}'", what, name, self.name))
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn exchange(&self, name: &[u8]) -> Option<Arc<Exchange>> {
        self.exchanges.read().get(name).cloned()
    }

    pub fn queue(&self, name: &[u8]) -> Option<Arc<Queue>> {
        self.queues.read().get(name).cloned()
    }

    pub fn exchanges(&self) -> Vec<Arc<Exchange>> {
        self.exchanges.read().values().cloned().collect()
    }

    pub fn queues(&self) -> Vec<Arc<Queue>> {
        self.queues.read().values().cloned().collect()
    }

    /// The queues a management listing shows: RabbitMQ never lists the private
    /// queues behind direct reply-to consumers.
    pub fn listed_queues(&self) -> Vec<Arc<Queue>> {
        self.queues
            .read()
            .values()
            .filter(|q| !q.is_reply_to())
            .cloned()
            .collect()
    }

    /// Look up an exchange or fail with 404.
    pub fn get_exchange(&self, name: &ShortStr) -> Result<Arc<Exchange>> {
        self.exchange(name.as_bytes())
            .ok_or_else(|| self.not_found("exchange", name))
    }

    /// A queue clients can address by name (get, consume, bind, purge,
    /// delete). The private queues behind direct reply-to are not: as in
    /// RabbitMQ, where they are no queues at all, only the default exchange
    /// reaches them, so nobody can read, purge or delete someone's replies.
    pub fn named_queue(&self, name: &[u8]) -> Option<Arc<Queue>> {
        self.queue(name).filter(|q| !q.is_reply_to())
    }

    /// Look up a queue (checking exclusive ownership) or fail with 404/405.
    pub fn get_queue(&self, name: &ShortStr, conn: ConnectionId) -> Result<Arc<Queue>> {
        let q = self
            .named_queue(name.as_bytes())
            .ok_or_else(|| self.not_found("queue", name))?;
        q.check_access(conn)?;
        Ok(q)
    }

    /// A declare of a direct reply-to name: RabbitMQ treats every such declare
    /// as passive; it succeeds (0 messages, 1 consumer) while the requester's
    /// reply consumer exists, else 404.
    pub fn declare_reply_to(&self, name: &ShortStr) -> Result<()> {
        match self.queue(name.as_bytes()) {
            Some(q) if q.is_reply_to() => Ok(()),
            _ => Err(self.not_found("queue", name)),
        }
    }

    /// exchange.declare.
    pub fn declare_exchange(
        &self,
        name: ShortStr,
        opts: ExchangeOptions,
        passive: bool,
    ) -> Result<Arc<Exchange>> {
        // Even a passive declare of the default exchange is refused (RabbitMQ).
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if passive {
            return self.get_exchange(&name);
        }
        self.check_not_deleted()?;
        if opts.kind == ExchangeKind::Delayed
            && opts
                .arguments
                .get("x-delayed-type")
                .and_then(|v| v.as_bytes())
                .and_then(ExchangeKind::parse)
                .is_none_or(|k| k == ExchangeKind::Delayed)
        {
            return Err(BrokerError::precondition_failed(
                "Invalid argument, 'x-delayed-type' must be an existing exchange type",
            ));
        }
        if opts.kind == ExchangeKind::ConsistentHash
            && opts.arguments.get("hash-header").is_some()
            && opts.arguments.get("hash-property").is_some()
        {
            return Err(BrokerError::precondition_failed(
                "hash-header and hash-property are mutually exclusive",
            ));
        }
        let mut ex = self.exchanges.write();
        if let Some(e) = ex.get(&name) {
            // Redeclaring an existing exchange (amq.* included) with the same
            // properties is allowed.
            e.check_equivalent(&opts, &self.name.to_string_lossy())?;
            return Ok(e.clone());
        }
        if name.starts_with("amq.") {
            return Err(BrokerError::access_refused(format!(
                "exchange name '{}' contains reserved prefix 'amq.*'",
                name
            )));
        }
        let delay_id = if opts.durable && opts.kind == ExchangeKind::Delayed {
            self.store.next_queue_id()
        } else {
            0
        };
        if opts.durable {
            self.store.definitions.save_exchange(
                &self.name.to_string_lossy(),
                &name.to_string_lossy(),
                &opts,
                delay_id,
            );
        }
        let e = Exchange::with_delay_id(name.clone(), opts, delay_id);
        ex.insert(name, e.clone());
        drop(ex);
        if events::watched(self) {
            let o = &e.options;
            let mut h = FieldTable::new();
            h.insert("name", FieldValue::LongStr(e.name.0.clone()));
            h.insert("type", events::s(o.kind.as_str()));
            h.insert("durable", FieldValue::Bool(o.durable));
            h.insert("auto_delete", FieldValue::Bool(o.auto_delete));
            h.insert("internal", FieldValue::Bool(o.internal));
            h.insert("policy", events::s(""));
            h.insert("arguments", events::erlang_args(&o.arguments, false));
            events::emit(self, "exchange.created", h);
        }
        Ok(e)
    }

    /// Whether messages may be published to `e`: internal exchanges only take
    /// messages from other exchanges (RabbitMQ's 403).
    pub fn check_publishable(&self, e: &Exchange) -> Result<()> {
        if e.options.internal {
            return Err(BrokerError::access_refused(format!(
                "cannot publish to internal exchange '{}' in vhost '{}'",
                e.name, self.name
            )));
        }
        Ok(())
    }

    /// The policy that applies to queue `name`, if any.
    pub fn queue_policy(&self, name: &str) -> Option<PolicyDef> {
        let policies = self.policies.read();
        pick_for_queue(&policies, name).map(|p| p.def.clone())
    }

    /// The policy that applies to exchange `name`, if any.
    pub fn exchange_policy(&self, name: &str) -> Option<PolicyDef> {
        self.policies
            .read()
            .iter()
            .filter(|p| p.applies_to_exchange(name))
            .max_by_key(|p| p.def.priority)
            .map(|p| p.def.clone())
    }

    /// exchange.delete.
    pub fn delete_exchange(&self, name: &ShortStr, if_unused: bool) -> Result<()> {
        self.check_exchange_deletable(name)?;
        let e = {
            let mut ex = self.exchanges.write();
            let Some(e) = ex.get(name) else {
                // RabbitMQ: deleting a missing exchange is not an error.
                return Ok(());
            };
            if if_unused && e.has_bindings() {
                return Err(BrokerError::precondition_failed(format!(
                    "exchange '{}' in vhost '{}' in use",
                    name, self.name
                )));
            }
            let e = e.clone();
            ex.remove(name);
            e
        };
        self.remove_exchange_bindings(&e);
        Ok(())
    }

    /// The default and `amq.*` exchanges cannot be deleted. Checked before
    /// permissions, as RabbitMQ does.
    pub fn check_exchange_deletable(&self, name: &ShortStr) -> Result<()> {
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if name.starts_with("amq.") {
            return Err(BrokerError::access_refused(format!(
                "deletion of system exchange '{}' in vhost '{}' not allowed",
                name, self.name
            )));
        }
        Ok(())
    }

    /// Forget an exchange that is gone: drop bindings to it (and cascade
    /// auto-delete of exchanges that lose their last binding).
    fn remove_exchange_bindings(&self, e: &Arc<Exchange>) {
        e.mark_deleted();
        self.stats.exchanges.retire(&e.stats.values());
        self.named_event("exchange.deleted", &e.name);
        if e.options.durable {
            // The definitions drop the exchange's bindings with it.
            self.store
                .definitions
                .delete_exchange(&self.name.to_string_lossy(), &e.name.to_string_lossy());
        }
        let dest = Destination::Exchange(e.clone());
        for src in self.exchanges() {
            if src.unbind_destination(&dest) > 0 {
                self.maybe_auto_delete_exchange(&src);
            }
        }
    }

    fn maybe_auto_delete_exchange(&self, e: &Arc<Exchange>) {
        if e.options.auto_delete && !e.has_bindings() && !e.is_deleted() {
            let removed = {
                let mut ex = self.exchanges.write();
                match ex.get(&e.name) {
                    Some(cur) if Arc::ptr_eq(cur, e) => ex.remove(&e.name).is_some(),
                    _ => false,
                }
            };
            if removed {
                self.remove_exchange_bindings(e);
            }
        }
    }

    /// A fresh server-generated queue name, `amq.gen-` plus 22 url-safe chars as
    /// RabbitMQ makes them.
    pub fn generate_queue_name(&self) -> ShortStr {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut n = self
            .name_counter
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        let mut s = String::with_capacity(30);
        s.push_str("amq.gen-");
        for _ in 0..22 {
            n = splitmix(n);
            s.push(ALPHABET[(n >> 58) as usize] as char);
        }
        ShortStr::from(s)
    }

    /// queue.declare. Returns the queue and whether it was newly created.
    /// `name` None asks for a server-generated name.
    pub fn declare_queue(
        &self,
        name: Option<ShortStr>,
        opts: QueueOptions,
        passive: bool,
        conn: ConnectionId,
    ) -> Result<(Arc<Queue>, bool)> {
        let name = match name {
            Some(n) if passive => {
                let q = self.get_queue(&n, conn)?;
                q.check_available()?;
                q.touch();
                return Ok((q, false));
            }
            _ if self.is_deleted() => return Err(self.deleted_error()),
            Some(n) if n.starts_with("amq.") => {
                return Err(BrokerError::access_refused(format!(
                    "queue name '{}' contains reserved prefix 'amq.*'",
                    n
                )))
            }
            Some(n) => n,
            None => self.generate_queue_name(),
        };
        self.declare_named_queue(name, opts, conn, "")
    }

    /// queue.declare replicated from a cluster's metadata log: `home` is the
    /// node that holds the queue's messages (recorded in the definitions, so
    /// a restart knows which queues live elsewhere).
    pub fn declare_homed_queue(
        &self,
        name: ShortStr,
        opts: QueueOptions,
        conn: ConnectionId,
        home: &str,
    ) -> Result<(Arc<Queue>, bool)> {
        self.check_not_deleted()?;
        self.declare_named_queue(name, opts, conn, home)
    }

    /// queue.declare of a server-named queue whose name the caller generated
    /// with [`VHost::generate_queue_name`] (so it could check permissions on it
    /// first, as RabbitMQ does).
    pub fn declare_generated_queue(
        &self,
        name: ShortStr,
        opts: QueueOptions,
        conn: ConnectionId,
    ) -> Result<(Arc<Queue>, bool)> {
        self.check_not_deleted()?;
        self.declare_named_queue(name, opts, conn, "")
    }

    fn declare_named_queue(
        &self,
        name: ShortStr,
        opts: QueueOptions,
        conn: ConnectionId,
        home: &str,
    ) -> Result<(Arc<Queue>, bool)> {
        self.churn.add(ChurnField::QueueDeclared, 1);
        let mut qs = self.queues.write();
        if !qs.contains_key(&name) {
            self.check_queue_limit(&name, qs.len())?;
        }
        if let Some(q) = qs.get(&name) {
            // As RabbitMQ (strictly): an exclusive declare must find a queue this
            // connection owns, a non-exclusive one a queue nobody owns, else 405.
            q.check_owner(opts.exclusive.then_some(conn))?;
            check_queue_equivalent(q, &opts, &self.name)?;
            q.check_available()?;
            q.touch();
            return Ok((q.clone(), false));
        }
        let args = QueueArgs::parse(
            &self.effective_args(&name, &opts.arguments),
            &name,
            &self.name.to_string_lossy(),
        )?;
        if args.is_stream() {
            crate::queue::check_stream_declare(
                &opts.arguments,
                opts.durable,
                opts.exclusive,
                opts.auto_delete,
                &name,
                &self.name.to_string_lossy(),
            )?;
        }
        let owner = opts.exclusive.then_some(conn);
        // Exclusive queues never survive their connection, let alone a restart.
        let durable_id = if opts.durable && !opts.exclusive {
            let id = self.store.next_queue_id();
            self.store.definitions.save_queue(
                &self.name.to_string_lossy(),
                &name.to_string_lossy(),
                id,
                &opts,
                home,
            );
            id
        } else {
            0
        };
        let q = Queue::new(
            name.clone(),
            opts,
            args,
            owner,
            self.me.clone(),
            &self.store,
            durable_id,
        );
        q.set_home(home);
        qs.insert(name, q.clone());
        drop(qs);
        self.churn.add(ChurnField::QueueCreated, 1);
        self.queue_created_event(&q);
        Ok((q, true))
    }

    fn queue_created_event(&self, q: &Queue) {
        if !events::watched(self) {
            return;
        }
        let mut h = FieldTable::new();
        h.insert(
            "arguments",
            events::erlang_args(&q.options.arguments, false),
        );
        h.insert("auto_delete", FieldValue::Bool(q.options.auto_delete));
        h.insert("durable", FieldValue::Bool(q.options.durable));
        h.insert("exclusive", FieldValue::Bool(q.options.exclusive));
        h.insert("name", FieldValue::LongStr(q.name.0.clone()));
        let owner = q
            .owner
            .map(|c| format!("<warren.{}.0>", c))
            .unwrap_or_default();
        h.insert("owner_pid", events::s(owner));
        events::emit(self, "queue.created", h);
    }

    fn binding_event(
        &self,
        key: &str,
        source: &ShortStr,
        dest_kind: &str,
        dest: &ShortStr,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) {
        if !events::watched(self) {
            return;
        }
        let mut h = FieldTable::new();
        h.insert("source_name", FieldValue::LongStr(source.0.clone()));
        h.insert("source_kind", events::s("exchange"));
        h.insert("destination_name", FieldValue::LongStr(dest.0.clone()));
        h.insert("destination_kind", events::s(dest_kind));
        h.insert("routing_key", FieldValue::LongStr(routing_key.0.clone()));
        h.insert("arguments", events::erlang_args(arguments, true));
        events::emit(self, key, h);
    }

    fn named_event(&self, key: &str, name: &ShortStr) {
        if !events::watched(self) {
            return;
        }
        let mut h = FieldTable::new();
        h.insert("name", FieldValue::LongStr(name.0.clone()));
        events::emit(self, key, h);
    }

    /// The private queue behind direct reply-to (`amq.rabbitmq.reply-to`): an
    /// exclusive, auto-delete queue with an unguessable name the requester's
    /// replies are routed to through the default exchange.
    pub fn declare_reply_queue(&self) -> Arc<Queue> {
        let suffix = self.generate_queue_name();
        let name = ShortStr::from(format!(
            "{}{}",
            REPLY_QUEUE_PREFIX,
            suffix.to_string_lossy().trim_start_matches("amq.gen-")
        ));
        let opts = QueueOptions {
            durable: false,
            exclusive: true,
            auto_delete: true,
            arguments: FieldTable::new(),
        };
        let q = Queue::new(
            name.clone(),
            opts,
            QueueArgs::default(),
            // Not owner-locked: other connections reply to it (and may passively
            // declare it); the owning connection still deletes it when it closes.
            None,
            self.me.clone(),
            &self.store,
            0,
        );
        self.queues.write().insert(name, q.clone());
        q
    }

    /// queue.delete. Returns the number of messages deleted.
    pub fn delete_queue(
        &self,
        name: &ShortStr,
        if_unused: bool,
        if_empty: bool,
        conn: ConnectionId,
    ) -> Result<u32> {
        let Some(q) = self.named_queue(name.as_bytes()) else {
            // RabbitMQ: deleting a missing queue is not an error.
            return Ok(0);
        };
        q.check_access(conn)?;
        if if_unused && q.consumer_count() > 0 {
            return Err(BrokerError::precondition_failed(format!(
                "queue '{}' in vhost '{}' in use",
                name, self.name
            )));
        }
        if if_empty && q.message_count() > 0 {
            return Err(BrokerError::precondition_failed(format!(
                "queue '{}' in vhost '{}' not empty",
                name, self.name
            )));
        }
        Ok(self.remove_queue(&q))
    }

    /// Remove a queue from the vhost, its bindings and consumers. Returns the
    /// number of ready messages it held. Idempotent.
    pub fn remove_queue(&self, q: &Arc<Queue>) -> u32 {
        {
            let mut qs = self.queues.write();
            match qs.get(&q.name) {
                Some(cur) if Arc::ptr_eq(cur, q) => {
                    qs.remove(&q.name);
                    // Direct reply-to's private queues are Warren's own, not
                    // declared by anyone (RabbitMQ has no queue there).
                    if !q.is_reply_to() {
                        self.churn.add(ChurnField::QueueDeleted, 1);
                    }
                }
                _ => return 0,
            }
        }
        if q.durable_id != 0 {
            self.store
                .definitions
                .delete_queue(&self.name.to_string_lossy(), &q.name.to_string_lossy());
        }
        let count = q.mark_deleted();
        // Late acks of its unacknowledged deliveries are not counted.
        self.stats.queues.retire(&q.stats().values());
        let dest = Destination::Queue(q.clone());
        let sources = std::mem::take(&mut *q.sources.lock());
        if events::watched(self) {
            for src in sources.iter().filter_map(Weak::upgrade) {
                for b in src.bindings() {
                    if b.destination == dest {
                        self.binding_event(
                            "binding.deleted",
                            &src.name,
                            "queue",
                            &q.name,
                            &b.routing_key,
                            &b.arguments,
                        );
                    }
                }
            }
        }
        for src in sources.iter().filter_map(Weak::upgrade) {
            if src.unbind_destination(&dest) > 0 {
                self.maybe_auto_delete_exchange(&src);
            }
        }
        self.named_event("queue.deleted", &q.name);
        count
    }

    /// Delete a queue this node decided to delete by itself: an auto-delete
    /// queue lost its last consumer, its `x-expires` lease ran out, the
    /// protocol session that owned it ended. This node drops it at once (its
    /// clients see it gone, as on a single node); a queue replicated across
    /// a cluster (it has a home) is also deleted on every other node: the
    /// delete is proposed to the metadata group in the background (callers
    /// may hold locks or be synchronous), retried while it fails, so the
    /// others do not keep a ghost of it. Returns the ready messages it held.
    pub fn retire_queue(&self, q: &Arc<Queue>) -> u32 {
        let (n, op) = self.retire(q);
        if let Some(op) = op {
            let Ok(rt) = tokio::runtime::Handle::try_current() else {
                tracing::warn!(queue = %q.name, "no runtime to replicate the queue's deletion");
                return n;
            };
            let (r, me) = (self.replicator.get().cloned(), self.me.clone());
            rt.spawn(async move {
                if let Some(r) = r {
                    propose_retirement(r, me, op).await;
                }
            });
        }
        n
    }

    /// [`VHost::retire_queue`], returning once the deletion is committed
    /// cluster-wide (a client that declares the name again right after must
    /// not find its new queue deleted by this one's late delete).
    /// A failed proposal is retried in the background, as there.
    pub async fn retire_queue_now(&self, q: &Arc<Queue>) -> u32 {
        let (n, op) = self.retire(q);
        if let (Some(op), Some(r)) = (op, self.replicator.get().cloned()) {
            if let Err(e) = r.replicate(op.clone()).await {
                tracing::warn!(queue = %q.name, "replicating the queue's deletion: {}", e.text);
                let me = self.me.clone();
                tokio::spawn(propose_retirement(r, me, op));
            }
        }
        n
    }

    /// Remove `q` here; the delete to replicate when it is a cluster-wide
    /// queue this node just removed.
    fn retire(&self, q: &Arc<Queue>) -> (u32, Option<crate::meta::MetaOp>) {
        let listed = self
            .named_queue(q.name.as_bytes())
            .is_some_and(|cur| Arc::ptr_eq(&cur, q));
        let n = self.remove_queue(q);
        let replicated = listed && q.home().is_some() && self.replicator.get().is_some();
        let op = replicated.then(|| crate::meta::MetaOp::DeleteQueue {
            vhost: self.name.to_string_lossy().into_owned(),
            name: q.name.to_string_lossy().into_owned(),
        });
        (n, op)
    }

    /// queue.purge.
    pub fn purge_queue(&self, name: &ShortStr, conn: ConnectionId) -> Result<u32> {
        let q = self.get_queue(name, conn)?;
        q.check_not_stream("queue.purge")?;
        Ok(q.purge())
    }

    /// queue.bind.
    pub fn bind_queue(
        &self,
        queue: &ShortStr,
        exchange: &ShortStr,
        routing_key: ShortStr,
        arguments: FieldTable,
        conn: ConnectionId,
    ) -> Result<()> {
        if exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        // Source first: with both missing RabbitMQ names the exchange.
        let e = self.get_exchange(exchange)?;
        let q = self.get_queue(queue, conn)?;
        check_binding_args(&e, &routing_key, &arguments)?;
        let def = (e.options.durable && q.durable_id != 0)
            .then(|| self.binding_def(&e.name, "queue", &q.name, &routing_key, &arguments));
        let event = events::watched(self).then(|| (routing_key.clone(), arguments.clone()));
        if e.bind(Destination::Queue(q.clone()), routing_key, arguments) {
            if let Some(def) = def {
                self.store.definitions.save_binding(def);
            }
            if let Some((rk, args)) = &event {
                self.binding_event("binding.created", &e.name, "queue", &q.name, rk, args);
            }
            let mut sources = q.sources.lock();
            if !sources.iter().any(|w| w.as_ptr() == Arc::as_ptr(&e)) {
                sources.push(Arc::downgrade(&e));
            }
        }
        Ok(())
    }

    /// queue.unbind. Unbinding a binding that does not exist is not an error.
    pub fn unbind_queue(
        &self,
        queue: &ShortStr,
        exchange: &ShortStr,
        routing_key: &ShortStr,
        arguments: &FieldTable,
        conn: ConnectionId,
    ) -> Result<()> {
        if exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        // RabbitMQ: unbinding from a missing queue or exchange, or a binding
        // that does not exist, is not an error; another connection's exclusive
        // queue is refused only when there is a binding to remove.
        let Some(q) = self.named_queue(queue.as_bytes()) else {
            return Ok(());
        };
        let Some(e) = self.exchange(exchange.as_bytes()) else {
            return Ok(());
        };
        let dest = Destination::Queue(q.clone());
        if !e.has_binding(&dest, routing_key, arguments) {
            return Ok(());
        }
        q.check_access(conn)?;
        let def = (e.options.durable && q.durable_id != 0)
            .then(|| self.binding_def(&e.name, "queue", &q.name, routing_key, arguments));
        if e.unbind(&dest, routing_key, arguments) {
            if let Some(def) = def {
                self.store.definitions.delete_binding(def);
            }
            self.binding_event(
                "binding.deleted",
                &e.name,
                "queue",
                &q.name,
                routing_key,
                arguments,
            );
            self.maybe_auto_delete_exchange(&e);
        }
        Ok(())
    }

    /// exchange.bind (destination ← source).
    pub fn bind_exchange(
        &self,
        destination: &ShortStr,
        source: &ShortStr,
        routing_key: ShortStr,
        arguments: FieldTable,
    ) -> Result<()> {
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange_refused());
        }
        let d = self.get_exchange(destination)?;
        let s = self.get_exchange(source)?;
        check_binding_args(&s, &routing_key, &arguments)?;
        let def = (s.options.durable && d.options.durable)
            .then(|| self.binding_def(&s.name, "exchange", &d.name, &routing_key, &arguments));
        let event = events::watched(self).then(|| (routing_key.clone(), arguments.clone()));
        if s.bind(Destination::Exchange(d.clone()), routing_key, arguments) {
            if let Some(def) = def {
                self.store.definitions.save_binding(def);
            }
            if let Some((rk, args)) = &event {
                self.binding_event("binding.created", &s.name, "exchange", &d.name, rk, args);
            }
        }
        Ok(())
    }

    /// exchange.unbind.
    pub fn unbind_exchange(
        &self,
        destination: &ShortStr,
        source: &ShortStr,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> Result<()> {
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange_refused());
        }
        // RabbitMQ: unbinding when either exchange is already gone (say an
        // auto-delete one) is not an error.
        let (Some(d), Some(s)) = (
            self.exchange(destination.as_bytes()),
            self.exchange(source.as_bytes()),
        ) else {
            return Ok(());
        };
        let def = (s.options.durable && d.options.durable)
            .then(|| self.binding_def(&s.name, "exchange", &d.name, routing_key, arguments));
        if s.unbind(&Destination::Exchange(d.clone()), routing_key, arguments) {
            if let Some(def) = def {
                self.store.definitions.delete_binding(def);
            }
            self.binding_event(
                "binding.deleted",
                &s.name,
                "exchange",
                &d.name,
                routing_key,
                arguments,
            );
            self.maybe_auto_delete_exchange(&s);
        }
        Ok(())
    }

    fn binding_def(
        &self,
        source: &ShortStr,
        destination_type: &str,
        destination: &ShortStr,
        routing_key: &ShortStr,
        arguments: &FieldTable,
    ) -> BindingDef {
        BindingDef {
            vhost: self.name.to_string(),
            source: source.to_string(),
            destination_type: destination_type.into(),
            destination: destination.to_string(),
            routing_key: routing_key.to_string(),
            arguments: table_to_hex(arguments),
        }
    }

    pub fn delayed(&self) -> &crate::exchange::delayed::DelayedStore {
        &self.delayed
    }

    pub fn set_tracing(&self, on: bool) {
        self.tracing.store(on, Ordering::Relaxed);
    }

    pub fn is_tracing(&self) -> bool {
        self.tracing.load(Ordering::Relaxed)
    }

    /// The alternate exchange of `e`: its `alternate-exchange` argument, else the
    /// one a policy gives it.
    fn alternate_exchange(&self, e: &Exchange) -> Option<Vec<u8>> {
        if let Some(ae) = e
            .options
            .arguments
            .get("alternate-exchange")
            .and_then(|v| v.as_bytes())
        {
            return Some(ae.to_vec());
        }
        let policies = self.policies.read();
        let name = e.name.to_string_lossy();
        policies
            .iter()
            .filter(|p| p.applies_to_exchange(&name))
            .max_by_key(|p| p.def.priority)
            .and_then(|p| p.def.definition.get("alternate-exchange"))
            .and_then(|v| v.as_str())
            .map(|s| s.as_bytes().to_vec())
    }

    /// A queue's declared arguments merged with the policy that applies to it.
    pub fn effective_args(&self, queue: &ShortStr, declared: &FieldTable) -> FieldTable {
        let name = queue.to_string_lossy();
        let policies = self.policies.read();
        let merged = match pick_for_queue(&policies, &name) {
            Some(p) => p.merge_queue_args(declared),
            None => declared.clone(),
        };
        // An operator policy's keys are all numeric limits: merged lower-wins.
        let operator = self.operator_policies.read();
        match pick_for_queue(&operator, &name) {
            Some(p) => p.merge_queue_args(&merged),
            None => merged,
        }
    }

    /// Set (add or replace) a policy and apply it to matching queues now.
    pub fn set_policy(&self, def: PolicyDef, persist: bool) -> Result<()> {
        self.check_not_deleted()?;
        let policy = Policy::new(def.clone()).map_err(BrokerError::precondition_failed)?;
        {
            let mut ps = self.policies.write();
            ps.retain(|p| p.def.name != def.name);
            ps.push(policy);
        }
        if persist {
            self.store.definitions.save_policy(&def);
        }
        self.reapply_policies();
        Ok(())
    }

    /// Remove a policy (404 if there is none by that name).
    pub fn clear_policy(&self, name: &str) -> Result<()> {
        let removed = {
            let mut ps = self.policies.write();
            let before = ps.len();
            ps.retain(|p| p.def.name != name);
            before != ps.len()
        };
        if !removed {
            return Err(BrokerError::not_found(format!(
                "no policy '{}' in vhost '{}'",
                name, self.name
            )));
        }
        self.store
            .definitions
            .delete_policy(&self.name.to_string_lossy(), name);
        self.reapply_policies();
        Ok(())
    }

    pub fn policies(&self) -> Vec<PolicyDef> {
        self.policies.read().iter().map(|p| p.def.clone()).collect()
    }

    pub(crate) fn reapply_policies(&self) {
        let vname = self.name.to_string_lossy().into_owned();
        for q in self.queues() {
            let merged = self.effective_args(&q.name, &q.options.arguments);
            if let Ok(args) = QueueArgs::parse(&merged, &q.name, &vname) {
                if *q.args() != args {
                    q.set_args(args);
                }
            }
        }
    }

    /// Recreate durable definitions and messages found on disk at startup.
    pub fn restore(
        &self,
        defs: &crate::store::definitions::Definitions,
        messages: &mut crate::store::log::RecoveredQueues,
    ) {
        use crate::store::definitions::{exchange_options, queue_options, table_from_hex};
        let vname = self.name.to_string();
        for p in defs.policies.values().filter(|p| p.vhost == vname) {
            if let Ok(policy) = Policy::new(p.clone()) {
                self.policies.write().push(policy);
            }
        }
        for e in defs.exchanges.values().filter(|e| e.vhost == vname) {
            let Some(opts) = exchange_options(e) else {
                continue;
            };
            let name = ShortStr::from(e.name.as_str());
            let exchange = self
                .exchanges
                .write()
                .entry(name.clone())
                .or_insert_with(|| Exchange::with_delay_id(name, opts, e.delay_id))
                .clone();
            if e.delay_id != 0 {
                if let Some(mut held) = messages.remove(&e.delay_id) {
                    // Held messages live in memory (a timer each) anyway.
                    let held = held.pop_many(&self.store.log, usize::MAX);
                    self.delayed.recover(&self.store.log, &exchange, held);
                }
            }
        }
        for qd in defs.queues.values().filter(|q| q.vhost == vname) {
            let name = ShortStr::from(qd.name.as_str());
            let opts = queue_options(qd);
            let args =
                QueueArgs::parse(&self.effective_args(&name, &opts.arguments), &name, &vname)
                    .unwrap_or_default();
            let q = Queue::new(
                name.clone(),
                opts,
                args,
                None,
                self.me.clone(),
                &self.store,
                qd.id,
            );
            q.set_home(&qd.owner);
            if let Some(msgs) = messages.remove(&qd.id) {
                q.recover(msgs);
            }
            self.queues.write().insert(name, q);
        }
        for b in defs.bindings.iter().filter(|b| b.vhost == vname) {
            let Some(src) = self.exchange(b.source.as_bytes()) else {
                continue;
            };
            let dest = if b.destination_type == "queue" {
                self.queue(b.destination.as_bytes()).map(Destination::Queue)
            } else {
                self.exchange(b.destination.as_bytes())
                    .map(Destination::Exchange)
            };
            let Some(dest) = dest else { continue };
            if let Destination::Queue(q) = &dest {
                q.sources.lock().push(Arc::downgrade(&src));
            }
            src.bind(
                dest,
                ShortStr::from(b.routing_key.as_str()),
                table_from_hex(&b.arguments),
            );
        }
    }

    /// Publish a message: route it, write it to the message log once if it is
    /// persistent and reaches durable queues (before any queue can deliver it, so an
    /// ack can never precede it in the log), then enqueue it. `out` is a reusable
    /// buffer. This is the one publish path every protocol adapter uses.
    pub fn publish(
        &self,
        exchange: &Arc<Exchange>,
        msg: Arc<Message>,
        out: &mut Vec<Arc<Queue>>,
    ) -> Published {
        self.publish_with(exchange, msg, out, None)
    }

    /// [`VHost::publish`] for a publisher that wants confirms: a message routed
    /// to queues with a [`crate::queue::QueueBackend`] (replicated queues) gets
    /// a ticket of `confirms` in [`Published::cluster`], done once every such
    /// queue has it safe.
    pub fn publish_with(
        &self,
        exchange: &Arc<Exchange>,
        msg: Arc<Message>,
        out: &mut Vec<Arc<Queue>>,
        confirms: Option<&Arc<ConfirmTracker>>,
    ) -> Published {
        out.clear();
        if exchange.kind() == ExchangeKind::Delayed {
            if let (Some(delay), Some(me)) =
                (crate::exchange::delayed::delay_of(&msg), self.me.upgrade())
            {
                let held = crate::exchange::delayed::released(&msg, delay);
                // Persistent messages held by a durable delayed exchange are
                // logged, so they survive a restart.
                let mut ticket = 0;
                let mut stored = None;
                if exchange.delay_id != 0 && held.persistent {
                    let log = &self.store.log;
                    let msg_id = log.next_msg_id();
                    let (loc, t) = log.append_publish(
                        Some(msg_id),
                        &[exchange.delay_id],
                        1,
                        Some((held.exchange.as_bytes(), held.routing_key.as_bytes())),
                        &held.properties,
                        &held.body,
                    );
                    stored = Some(Stored { msg_id, loc });
                    ticket = t;
                }
                self.delayed
                    .schedule(&me, exchange.clone(), held, stored, now_ms_plus(delay));
                return Published {
                    routed: true,
                    ticket,
                    ..Published::default()
                };
            }
        }
        // Sender-selected distribution: CC and BCC headers add routing keys; BCC
        // is removed before anyone sees the message. Only messages with headers
        // pay for the check.
        let (msg, extra_keys) = if RawProperties::has_headers(&msg.properties) {
            sender_selected(msg)
        } else {
            (msg, Vec::new())
        };
        self.route(exchange, &msg, out);
        for key in &extra_keys {
            if exchange.name.is_empty() {
                if let Some(q) = self.queue(key) {
                    out.push(q);
                }
            } else {
                exchange.route_key(&msg, key, out);
            }
        }
        if !extra_keys.is_empty() && out.len() > 1 {
            out.sort_unstable_by_key(|q| Arc::as_ptr(q) as usize);
            out.dedup_by(|a, b| Arc::ptr_eq(a, b));
        }
        // Here, not above: a delayed exchange's message is counted once, when
        // it is released and comes back through this path.
        exchange.stats.add(ExchangeField::PublishIn, 1);
        if !out.is_empty() {
            exchange
                .stats
                .add(ExchangeField::PublishOut, out.len() as u64);
        }
        if self.is_tracing() {
            let mut keys = vec![msg.routing_key.as_bytes().to_vec()];
            keys.extend(extra_keys.iter().cloned());
            crate::trace::publish(self, exchange, &msg, &keys, out);
        }
        let mut result = Published {
            routed: !out.is_empty(),
            ..Published::default()
        };
        result.ticket = self.log_persistent(&msg, out);
        // Replicated queues confirm on their own: one tracker ticket for all
        // of them (counted first, so the common case allocates nothing).
        let mut parts = match confirms {
            Some(t) => {
                let n = out.iter().filter(|q| q.backend().is_some()).count() as u32;
                if n > 0 {
                    let (ticket, parts) = t.open(n);
                    result.cluster = ticket;
                    parts
                } else {
                    Vec::new()
                }
            }
            None => Vec::new(),
        };
        for q in out.drain(..) {
            if let Some(b) = q.backend() {
                if !b.publish(&q, msg.clone(), parts.pop()) {
                    result.rejected = true;
                }
                continue;
            }
            if q.is_stream() {
                result.ticket = result.ticket.max(q.publish_stream(&msg));
                continue;
            }
            if !q.publish(msg.clone()) {
                result.rejected = true;
            }
        }
        result
    }

    /// Write a persistent message once to the message log for the durable
    /// queues among `out` that keep it in this node's storage; returns the
    /// ticket a confirm waits for (0: nothing written). Streams append their
    /// own records (every message, persistent or not, at the stream's
    /// offset), in the same group commit.
    fn log_persistent(&self, msg: &Arc<Message>, out: &[Arc<Queue>]) -> u64 {
        if !msg.persistent
            || !out
                .iter()
                .any(|q| q.durable_id != 0 && q.is_local_storage())
        {
            return 0;
        }
        let ids: Vec<u64> = out
            .iter()
            .filter(|q| q.is_local_storage())
            .map(|q| q.durable_id)
            .filter(|id| *id != 0)
            .collect();
        let log = &self.store.log;
        let msg_id = log.next_msg_id();
        // Through the default exchange to one queue: the routing key is
        // that queue's name, which recovery knows (not stored; CC/BCC
        // can make it reach a queue of another name, hence the check).
        let key_is_queue = msg.exchange.is_empty()
            && ids.len() == 1
            && out.len() == 1
            && out[0].name == msg.routing_key;
        let key = (!key_is_queue).then(|| (msg.exchange.as_bytes(), msg.routing_key.as_bytes()));
        let (loc, ticket) = log.append_publish(
            Some(msg_id),
            &ids,
            ids.len() as u64,
            key,
            &msg.properties,
            &msg.body,
        );
        let _ = msg.stored.set(Stored { msg_id, loc });
        ticket
    }

    /// Enqueue a message another cluster node routed to `queue` (a classic
    /// queue whose home is this node): logged if persistent and durable, as a
    /// local publish. No re-routing: the origin node already routed it.
    pub fn publish_into(&self, queue: &Arc<Queue>, msg: Arc<Message>) -> Published {
        let out = std::slice::from_ref(queue);
        let ticket = self.log_persistent(&msg, out);
        let rejected = !queue.publish(msg);
        Published {
            routed: true,
            rejected,
            ticket,
            ..Published::default()
        }
    }

    /// Count `n` of `f` on a channel (its own counters, written by its reader
    /// task only) and in the vhost's totals, which outlive the channel. Called
    /// once per confirm batch and per unroutable message, never per routed
    /// publish.
    pub fn count_publishing(&self, channel: &PublishStats, f: PublishField, n: u64) {
        if n > 0 {
            channel.add_serialized(f, n);
            self.stats.publishing.add(f, n);
        }
    }

    /// `n` publishes received on a confirm-mode channel (added per batch).
    pub fn count_received_confirm(&self, n: u64) {
        if n > 0 {
            self.stats.received_confirm.fetch_add(n, Ordering::Relaxed);
        }
    }

    /// The vhost's confirm, unroutable and dead-letter totals.
    pub fn totals(&self) -> &VHostStats {
        &self.stats
    }

    /// The broker's churn counters (queues declared, created, deleted here;
    /// channels opened on this vhost count there too).
    pub fn churn(&self) -> &Arc<ChurnStats> {
        &self.churn
    }

    /// The vhost's `message_stats` (/api/vhosts, summed for /api/overview):
    /// `publish` counts what clients published into its exchanges, the other
    /// figures its queues' deliveries, gets, acks and redeliveries, deleted
    /// queues and exchanges included. Sums over every queue and exchange.
    pub fn message_stats(&self) -> MessageSnapshot {
        let mut queues = [0u64; MESSAGE_FIELDS];
        for q in self.queues() {
            add_into(&mut queues, &q.stats().values());
        }
        vhost_messages(self.stats.queues.with_live(&queues), self.exchange_totals())
    }

    /// `publish_in` / `publish_out` summed over the vhost's exchanges,
    /// deleted ones included.
    pub fn exchange_totals(&self) -> ExchangeSnapshot {
        let mut live = [0u64; 2];
        for e in self.exchanges() {
            add_into(&mut live, &e.stats.values());
        }
        self.stats.exchanges.with_live(&live)
    }

    /// Route a message published to `exchange` into `out` (the distinct queues it
    /// reaches). The default exchange routes to the queue named by the routing key.
    pub fn route(&self, exchange: &Arc<Exchange>, message: &Message, out: &mut Vec<Arc<Queue>>) {
        if exchange.name.is_empty() {
            if let Some(q) = self.queue(message.routing_key.as_bytes()) {
                out.push(q);
            }
        } else {
            exchange.route(message, out);
            // Unroutable: try the alternate exchange chain (cycles stop).
            let mut current = exchange.clone();
            let mut seen: Vec<*const Exchange> = vec![Arc::as_ptr(exchange)];
            while out.is_empty() {
                let Some(ae) = self.alternate_exchange(&current) else {
                    break;
                };
                let Some(next) = self.exchange(&ae) else {
                    break;
                };
                if seen.contains(&Arc::as_ptr(&next)) {
                    break;
                }
                seen.push(Arc::as_ptr(&next));
                next.route(message, out);
                current = next;
            }
        }
    }
}

/// Bindings RabbitMQ refuses with 406: a bad `x-match` on a headers exchange, a
/// binding key that is not a positive weight on a consistent-hash exchange.
fn check_binding_args(e: &Exchange, routing_key: &ShortStr, arguments: &FieldTable) -> Result<()> {
    match e.routing_kind() {
        ExchangeKind::Headers => crate::exchange::headers::validate_binding_args(arguments)
            .map_err(BrokerError::precondition_failed),
        ExchangeKind::ConsistentHash => {
            let key = routing_key.to_string_lossy();
            match key.trim().parse::<i64>() {
                Ok(w) if w > 0 => Ok(()),
                Ok(_) => Err(BrokerError::precondition_failed(
                    "The binding key must be greater than 0",
                )),
                Err(_) => Err(BrokerError::precondition_failed(format!(
                    "The binding key must be an integer: <<{}>>",
                    if key.is_empty() {
                        String::new()
                    } else {
                        format!("\"{}\"", key)
                    }
                ))),
            }
        }
        _ => Ok(()),
    }
}

fn now_ms_plus(delay: u64) -> u64 {
    crate::queue::now_ms().saturating_add(delay)
}

/// The CC/BCC routing keys of a message, and the message without its BCC header.
fn sender_selected(msg: Arc<Message>) -> (Arc<Message>, Vec<Vec<u8>>) {
    let mut props = msg.decode_properties();
    let Some(headers) = props.headers.as_mut() else {
        return (msg, Vec::new());
    };
    let keys_of = |v: Option<&crate::table::FieldValue>| -> Vec<Vec<u8>> {
        match v {
            Some(crate::table::FieldValue::Array(a)) => a
                .iter()
                .filter_map(|k| k.as_bytes().map(|b| b.to_vec()))
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut keys = keys_of(headers.get("CC"));
    if headers.get("BCC").is_none() {
        return (msg, keys);
    }
    keys.extend(keys_of(headers.get("BCC")));
    headers.remove("BCC");
    let stripped = Message::new(
        msg.exchange.clone(),
        msg.routing_key.clone(),
        props.encode(),
        msg.body.clone(),
    );
    (stripped, keys)
}

/// The outcome of [`VHost::publish`].
#[derive(Debug, Default, Clone, Copy)]
pub struct Published {
    /// At least one queue matched.
    pub routed: bool,
    /// A queue refused it (x-overflow = reject-publish): nack the publisher.
    pub rejected: bool,
    /// Message-log ticket to wait for before confirming (0: nothing to wait for).
    pub ticket: u64,
    /// [`ConfirmTracker`] ticket to wait for as well (0: no replicated queue).
    pub cluster: u64,
}

/// A redeclaration must match the queue's durable and auto-delete flags and
/// the arguments RabbitMQ compares (see [`crate::equivalence`]). Exclusivity is
/// checked before this, as ownership (405).
fn check_queue_equivalent(q: &Queue, opts: &QueueOptions, vhost: &ShortStr) -> Result<()> {
    use crate::equivalence::{check_arguments, inequivalent, quoted, QUEUE_ARGUMENTS};
    let cur = &q.options;
    let resource = format!("queue '{}' in vhost '{}'", q.name, vhost);
    if cur.durable != opts.durable {
        return Err(inequivalent(
            "durable",
            &resource,
            &quoted(opts.durable),
            &quoted(cur.durable),
        ));
    }
    if cur.auto_delete != opts.auto_delete {
        return Err(inequivalent(
            "auto_delete",
            &resource,
            &quoted(opts.auto_delete),
            &quoted(cur.auto_delete),
        ));
    }
    check_arguments(&cur.arguments, &opts.arguments, QUEUE_ARGUMENTS, &resource)?;
    if q.is_stream() {
        check_arguments(
            &cur.arguments,
            &opts.arguments,
            crate::equivalence::STREAM_ARGUMENTS,
            &resource,
        )?;
    }
    Ok(())
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Propose a queue's deletion decided by this node (see
/// [`VHost::retire_queue`]) until the metadata group takes it: a node in a
/// minority retries until it is back with the majority (at most about 10
/// minutes). It stops as soon as the name exists here again: a later declare
/// of the same name is a new queue this late delete must not remove.
async fn propose_retirement(
    r: Arc<dyn crate::meta::MetadataReplicator>,
    vhost: Weak<VHost>,
    op: crate::meta::MetaOp,
) {
    let name = match &op {
        crate::meta::MetaOp::DeleteQueue { name, .. } => name.clone(),
        _ => return,
    };
    let mut wait = std::time::Duration::from_millis(500);
    for _ in 0..40 {
        match r.replicate(op.clone()).await {
            Ok(()) => return,
            Err(e) => tracing::warn!(queue = %name, "replicating the queue's deletion: {}", e.text),
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(std::time::Duration::from_secs(15));
        match vhost.upgrade() {
            Some(v) if v.named_queue(name.as_bytes()).is_none() => {}
            _ => return,
        }
    }
}
