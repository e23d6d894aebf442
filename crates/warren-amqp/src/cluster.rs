//! A clustered node's metadata methods: which ones go through the cluster's
//! replicator (`warren_core::meta`) before the channel runs them.
//!
//! The channel's own code stays the authority on errors: a method is only
//! proposed when it would succeed here (permissions granted, names valid,
//! the things it refers to exist), so a refused or invalid declare is never
//! replicated; the channel then runs it and answers as on a single node.
//! Not replicated (node-local, as they live and die with a connection):
//! exclusive and server-named queues and their bindings, passive declares,
//! reply-to pseudo queues. Re-declaring something that exists already needs
//! no round trip either.

use crate::channel::ConnContext;
use crate::codec::Method;
use warren_core::exchange::ExchangeKind;
use warren_core::meta::MetaOp;
use warren_core::permissions::{exchange_declare_needs, queue_declare_needs, Access};
use warren_core::queue::{check_quorum_declare, is_quorum};
use warren_core::store::definitions::table_to_hex;
use warren_core::{ExchangeOptions, ShortStr};

fn s(x: &ShortStr) -> String {
    x.to_string_lossy().into_owned()
}

/// A queue this node replicates changes of: it exists and is not exclusive.
fn shared_queue(ctx: &ConnContext, name: &ShortStr) -> bool {
    ctx.vhost
        .named_queue(name.as_bytes())
        .is_some_and(|q| !q.options.exclusive)
}

/// Whether `m` may change metadata (the only methods worth a closer look).
pub(crate) fn is_metadata(m: &Method) -> bool {
    matches!(
        m,
        Method::ExchangeDeclare(_)
            | Method::ExchangeDelete(_)
            | Method::ExchangeBind(_)
            | Method::ExchangeUnbind(_)
            | Method::QueueDeclare(_)
            | Method::QueueDelete(_)
            | Method::QueueBind(_)
            | Method::QueueUnbind(_)
    )
}

/// A quorum queue declare a cluster node refuses (see
/// `warren_core::queue::check_quorum_declare`). A single node takes
/// `x-queue-type: quorum` as a classic queue, as before.
pub(crate) fn check_quorum(ctx: &ConnContext, m: &Method) -> warren_core::Result<()> {
    match m {
        Method::QueueDeclare(d) if !d.passive && is_quorum(&d.arguments) => check_quorum_declare(
            &s(&d.queue),
            &ctx.vhost.name.to_string_lossy(),
            d.durable,
            d.exclusive,
            d.auto_delete,
            &d.arguments,
        ),
        _ => Ok(()),
    }
}

/// Whether `m` must look at up-to-date metadata first: every change that
/// may be replicated. Passive declares read what this node has, as before;
/// exclusive queues, server-named ones and their bindings are node-local.
pub(crate) fn needs_sync(ctx: &ConnContext, m: &Method) -> bool {
    let local = |q: &ShortStr| {
        q.is_empty()
            || ctx
                .vhost
                .named_queue(q.as_bytes())
                .is_some_and(|q| q.options.exclusive)
    };
    match m {
        Method::ExchangeDeclare(d) => !d.passive,
        Method::QueueDeclare(d) => !d.passive && !d.exclusive && !d.queue.is_empty(),
        Method::QueueDelete(d) => !local(&d.queue),
        Method::QueueBind(b) => !local(&b.queue),
        Method::QueueUnbind(b) => !local(&b.queue),
        _ => is_metadata(m),
    }
}

/// The op to replicate before `m` runs, if any.
pub(crate) fn meta_op(ctx: &mut ConnContext, node: &str, m: &Method) -> Option<MetaOp> {
    let vhost = ctx.vhost.name.to_string_lossy().into_owned();
    match m {
        Method::ExchangeDeclare(d) if !d.passive => {
            if d.exchange.is_empty()
                || d.exchange.starts_with("amq.")
                || ctx.vhost.exchange(d.exchange.as_bytes()).is_some()
            {
                return None;
            }
            let kind = ExchangeKind::parse(d.kind.as_bytes())?;
            for (access, kind, name) in exchange_declare_needs(d.exchange.as_bytes(), &d.arguments)
            {
                ctx.check(access, kind, name).ok()?;
            }
            let o = ExchangeOptions {
                kind,
                durable: d.durable,
                auto_delete: d.auto_delete,
                internal: d.internal,
                arguments: d.arguments.clone(),
            };
            Some(MetaOp::declare_exchange(&vhost, &s(&d.exchange), &o))
        }
        Method::ExchangeDelete(d) => {
            ctx.vhost.check_exchange_deletable(&d.exchange).ok()?;
            ctx.check_exchange(Access::Configure, d.exchange.as_bytes())
                .ok()?;
            let e = ctx.vhost.exchange(d.exchange.as_bytes())?;
            if d.if_unused && e.has_bindings() {
                return None;
            }
            Some(MetaOp::DeleteExchange {
                vhost,
                name: s(&d.exchange),
            })
        }
        Method::QueueDeclare(d) if !d.passive && !d.exclusive => {
            let o = warren_core::queue::QueueOptions {
                durable: d.durable,
                exclusive: false,
                auto_delete: d.auto_delete,
                arguments: d.arguments.clone(),
            };
            for (access, kind, name) in queue_declare_needs(d.queue.as_bytes(), &d.arguments) {
                ctx.check(access, kind, name).ok()?;
            }
            warren_core::meta::queue_declare_op(&ctx.vhost, &d.queue, &o, node)
        }
        Method::QueueDelete(d) => {
            if d.queue.is_empty() || !shared_queue(ctx, &d.queue) {
                return None;
            }
            ctx.check_queue(Access::Configure, d.queue.as_bytes())
                .ok()?;
            let q = ctx.vhost.named_queue(d.queue.as_bytes())?;
            if (d.if_unused && q.consumer_count() > 0) || (d.if_empty && q.message_count() > 0) {
                return None;
            }
            Some(MetaOp::DeleteQueue {
                vhost,
                name: s(&d.queue),
            })
        }
        Method::QueueBind(b) => {
            let (q, e, key, args) = (&b.queue, &b.exchange, &b.routing_key, &b.arguments);
            bind_checks(ctx, q, e, key)?;
            Some(MetaOp::BindQueue {
                vhost,
                queue: s(q),
                exchange: s(e),
                routing_key: s(key),
                arguments: table_to_hex(args),
            })
        }
        Method::QueueUnbind(b) => {
            let (q, e, key, args) = (&b.queue, &b.exchange, &b.routing_key, &b.arguments);
            bind_checks(ctx, q, e, key)?;
            Some(MetaOp::UnbindQueue {
                vhost,
                queue: s(q),
                exchange: s(e),
                routing_key: s(key),
                arguments: table_to_hex(args),
            })
        }
        Method::ExchangeBind(b) => {
            exchange_bind_checks(ctx, &b.destination, &b.source, &b.routing_key)?;
            Some(MetaOp::BindExchange {
                vhost,
                destination: s(&b.destination),
                source: s(&b.source),
                routing_key: s(&b.routing_key),
                arguments: table_to_hex(&b.arguments),
            })
        }
        Method::ExchangeUnbind(b) => {
            exchange_bind_checks(ctx, &b.destination, &b.source, &b.routing_key)?;
            Some(MetaOp::UnbindExchange {
                vhost,
                destination: s(&b.destination),
                source: s(&b.source),
                routing_key: s(&b.routing_key),
                arguments: table_to_hex(&b.arguments),
            })
        }
        _ => None,
    }
}

fn bind_checks(ctx: &mut ConnContext, q: &ShortStr, e: &ShortStr, key: &ShortStr) -> Option<()> {
    // An empty queue name means the channel's last queue: a server-named,
    // node-local one in practice.
    if q.is_empty() || e.is_empty() || !shared_queue(ctx, q) {
        return None;
    }
    ctx.vhost.exchange(e.as_bytes())?;
    ctx.check_queue(Access::Write, q.as_bytes()).ok()?;
    ctx.check_exchange(Access::Read, e.as_bytes()).ok()?;
    ctx.check_bind_topic(e.as_bytes(), key.as_bytes()).ok()
}

fn exchange_bind_checks(
    ctx: &mut ConnContext,
    dest: &ShortStr,
    src: &ShortStr,
    key: &ShortStr,
) -> Option<()> {
    if dest.is_empty() || src.is_empty() {
        return None;
    }
    ctx.vhost.exchange(dest.as_bytes())?;
    ctx.vhost.exchange(src.as_bytes())?;
    ctx.check_exchange(Access::Write, dest.as_bytes()).ok()?;
    ctx.check_exchange(Access::Read, src.as_bytes()).ok()?;
    ctx.check_bind_topic(src.as_bytes(), key.as_bytes()).ok()
}
