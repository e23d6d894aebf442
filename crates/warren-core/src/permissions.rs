//! RabbitMQ's per-vhost resource permissions: three regular expressions per
//! (user, vhost) — configure, write, read — matched against queue and exchange
//! names.
//!
//! Having a permission entry for a vhost is what lets a user open it (no entry:
//! connection.open fails with 530). Each AMQP operation then needs one or two of
//! the three rights, exactly as RabbitMQ's "How Permissions Work" table says; a
//! refusal is a 403 ACCESS_REFUSED channel error with RabbitMQ's text.
//!
//! Matching follows RabbitMQ: the expression is searched for anywhere in the name
//! (anchor it with `^…$` to match whole names), the empty expression means "no
//! access" (RabbitMQ turns it into `^$`), and the default exchange is checked
//! under the name `amq.default`. The expressions are compiled once, when the
//! permission is set, never per operation. Rust's `regex` syntax is used, which
//! is PCRE without look-around and back-references.

use crate::error::BrokerError;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// A permission as set with `set_permissions` and as stored in the definitions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionDef {
    pub user: String,
    pub vhost: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// The three rights of RabbitMQ's permission model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Create and delete resources, or change their behaviour.
    Configure,
    /// Inject messages into a resource (publish, be a binding's destination).
    Write,
    /// Take messages out of a resource (consume, get, purge, be a binding's source).
    Read,
}

/// What kind of resource a name refers to (only used in refusal texts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Queue,
    Exchange,
}

impl Resource {
    fn as_str(self) -> &'static str {
        match self {
            Resource::Queue => "queue",
            Resource::Exchange => "exchange",
        }
    }
}

/// A permission with its expressions compiled.
#[derive(Debug)]
pub struct Permission {
    pub def: PermissionDef,
    configure: Regex,
    write: Regex,
    read: Regex,
}

impl Permission {
    /// Compile a permission; an invalid expression is refused with RabbitMQ's text.
    pub fn new(def: PermissionDef) -> Result<Permission, BrokerError> {
        let compile = |re: &str| {
            // RabbitMQ: "" grants nothing; it is matched as "^$".
            let pattern = if re.is_empty() { "^$" } else { re };
            Regex::new(pattern).map_err(|_| {
                BrokerError::precondition_failed(format!("regular expression '{}' is invalid", re))
            })
        };
        Ok(Permission {
            configure: compile(&def.configure)?,
            write: compile(&def.write)?,
            read: compile(&def.read)?,
            def,
        })
    }

    /// Full access (`.*` for all three), as config users and guest get.
    pub fn full(user: &str, vhost: &str) -> Permission {
        let all = Regex::new(".*").expect("'.*' is a valid regex");
        Permission {
            def: PermissionDef {
                user: user.into(),
                vhost: vhost.into(),
                configure: ".*".into(),
                write: ".*".into(),
                read: ".*".into(),
            },
            configure: all.clone(),
            write: all.clone(),
            read: all,
        }
    }

    /// Whether `access` to the resource called `name` is allowed. The empty
    /// (default exchange) name is checked as `amq.default`, as RabbitMQ does.
    pub fn allows(&self, access: Access, name: &[u8]) -> bool {
        let name = if name.is_empty() {
            "amq.default"
        } else {
            match std::str::from_utf8(name) {
                Ok(s) => s,
                // Names are UTF-8 in practice; anything else matches only ".*"-like
                // expressions through a lossy copy (rare, so the allocation is fine).
                Err(_) => return self.regex(access).is_match(&String::from_utf8_lossy(name)),
            }
        };
        self.regex(access).is_match(name)
    }

    fn regex(&self, access: Access) -> &Regex {
        match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        }
    }
}

/// The permissions declaring queue `name` with `args` needs, in the order
/// RabbitMQ checks them: configure on the queue; with `x-dead-letter-exchange`
/// also read on the queue and write on that exchange. Every adapter (AMQP,
/// STOMP, HTTP) checks these before declaring.
pub fn queue_declare_needs<'a>(
    name: &'a [u8],
    args: &'a crate::table::FieldTable,
) -> Vec<(Access, Resource, &'a [u8])> {
    let mut v = vec![(Access::Configure, Resource::Queue, name)];
    if let Some(dlx) = args
        .get("x-dead-letter-exchange")
        .and_then(|v| v.as_bytes())
    {
        v.push((Access::Read, Resource::Queue, name));
        v.push((Access::Write, Resource::Exchange, dlx));
    }
    v
}

/// The permissions declaring exchange `name` with `args` needs: configure on
/// it; naming an `alternate-exchange` routes into it, so also read on this
/// exchange and write on the alternate one.
pub fn exchange_declare_needs<'a>(
    name: &'a [u8],
    args: &'a crate::table::FieldTable,
) -> Vec<(Access, Resource, &'a [u8])> {
    let mut v = vec![(Access::Configure, Resource::Exchange, name)];
    if let Some(ae) = args.get("alternate-exchange").and_then(|v| v.as_bytes()) {
        v.push((Access::Read, Resource::Exchange, name));
        v.push((Access::Write, Resource::Exchange, ae));
    }
    v
}

/// RabbitMQ's refusal: 403 "access to queue 'q' in vhost '/' refused for user 'u'".
pub fn refused(kind: Resource, name: &[u8], vhost: &str, user: &str) -> BrokerError {
    let name = if name.is_empty() {
        std::borrow::Cow::Borrowed("amq.default")
    } else {
        String::from_utf8_lossy(name)
    };
    BrokerError::access_refused(format!(
        "access to {} '{}' in vhost '{}' refused for user '{}'",
        kind.as_str(),
        name,
        vhost,
        user
    ))
}

/// Check `access` to a resource: Ok, or the 403 to close the channel with.
/// `None` (the user's permissions on the vhost were cleared) refuses everything.
pub fn check(
    perm: Option<&Permission>,
    access: Access,
    kind: Resource,
    name: &[u8],
    vhost: &str,
    user: &str,
) -> Result<(), BrokerError> {
    match perm {
        Some(p) if p.allows(access, name) => Ok(()),
        _ => Err(refused(kind, name, vhost, user)),
    }
}

/// A connection's permission on its vhost, cached with the broker's auth
/// generation it was read at: one atomic load tells whether it is still
/// current (users and permissions change rarely, operations are frequent).
/// Every protocol adapter checks access through one of these.
pub struct AccessCache {
    generation: u64,
    permission: Option<std::sync::Arc<Permission>>,
    /// The user's topic permissions on the vhost, compiled with the
    /// connection's variables (usually none: then a topic check is one
    /// `is_empty`).
    topics: Vec<crate::topic_permissions::TopicPermission>,
    /// MQTT's client id, for `{client_id}` in topic permissions.
    client_id: Option<String>,
}

impl AccessCache {
    pub fn new() -> AccessCache {
        AccessCache {
            // Generations start at 1: the first check always loads.
            generation: 0,
            permission: None,
            topics: Vec::new(),
            client_id: None,
        }
    }

    /// A cache whose topic permissions expand `{client_id}` to `id`.
    pub fn with_client_id(id: &str) -> AccessCache {
        AccessCache {
            client_id: Some(id.to_string()),
            ..AccessCache::new()
        }
    }

    fn refresh(&mut self, broker: &crate::Broker, user: &str, vhost: &str) {
        let generation = broker.auth_generation();
        if self.generation != generation {
            self.permission = broker.permission(user, vhost);
            self.topics = broker.topic_permissions_for(&crate::topic_permissions::Variables {
                username: user,
                vhost,
                client_id: self.client_id.as_deref(),
            });
            self.generation = generation;
        }
    }

    /// Check `user`'s topic permission (write: publish with routing key
    /// `key`; read: bind with binding key `key`) on `exchange` (403 with
    /// RabbitMQ's text if refused). Only topic exchanges are concerned.
    pub fn check_topic(
        &mut self,
        broker: &crate::Broker,
        user: &str,
        vhost: &crate::VHost,
        access: Access,
        exchange: &crate::Exchange,
        key: &[u8],
    ) -> Result<(), BrokerError> {
        let vhost_name = vhost.name.to_string_lossy();
        self.refresh(broker, user, &vhost_name);
        crate::topic_permissions::check(
            &self.topics,
            access,
            exchange.name.as_bytes(),
            exchange.kind(),
            key,
            &vhost_name,
            user,
        )
    }

    /// Check `user`'s `access` to the queue or exchange `name` in `vhost` (403
    /// with RabbitMQ's text if refused).
    pub fn check(
        &mut self,
        broker: &crate::Broker,
        user: &str,
        vhost: &crate::VHost,
        access: Access,
        kind: Resource,
        name: &[u8],
    ) -> Result<(), BrokerError> {
        let vhost_name = vhost.name.to_string_lossy();
        self.refresh(broker, user, &vhost_name);
        check(
            self.permission.as_deref(),
            access,
            kind,
            name,
            &vhost_name,
            user,
        )
    }
}

impl Default for AccessCache {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perm(c: &str, w: &str, r: &str) -> Permission {
        Permission::new(PermissionDef {
            user: "u".into(),
            vhost: "/".into(),
            configure: c.into(),
            write: w.into(),
            read: r.into(),
        })
        .expect("valid")
    }

    #[test]
    fn unanchored_search_like_rabbitmq() {
        let p = perm("^feed\\..*", "feed", ".*");
        assert!(p.allows(Access::Configure, b"feed.prices"));
        assert!(!p.allows(Access::Configure, b"other"));
        assert!(!p.allows(Access::Configure, b"x.feed.prices"));
        // Unanchored: "feed" matches anywhere in the name.
        assert!(p.allows(Access::Write, b"my-feed-x"));
        assert!(p.allows(Access::Read, b"anything"));
    }

    #[test]
    fn empty_expression_grants_nothing() {
        let p = perm("", "", "");
        for a in [Access::Configure, Access::Write, Access::Read] {
            assert!(!p.allows(a, b"q"));
            // The default exchange is "amq.default", not "".
            assert!(!p.allows(a, b""));
        }
    }

    #[test]
    fn default_exchange_is_amq_default() {
        let p = perm(".*", "^amq\\.default$", ".*");
        assert!(p.allows(Access::Write, b""));
        assert!(!p.allows(Access::Write, b"amq.topic"));
        let e = refused(Resource::Exchange, b"", "/", "u");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.text,
            "access to exchange 'amq.default' in vhost '/' refused for user 'u'"
        );
    }

    #[test]
    fn invalid_regex_is_refused_with_rabbitmq_text() {
        let e = Permission::new(PermissionDef {
            user: "u".into(),
            vhost: "/".into(),
            configure: "(".into(),
            write: ".*".into(),
            read: ".*".into(),
        })
        .expect_err("invalid");
        assert_eq!(e.text, "regular expression '(' is invalid");
    }

    #[test]
    fn check_without_permission_refuses() {
        let e = check(None, Access::Read, Resource::Queue, b"q", "v", "u").expect_err("refused");
        assert_eq!(
            e.text,
            "access to queue 'q' in vhost 'v' refused for user 'u'"
        );
        let full = Permission::full("u", "v");
        assert!(check(Some(&full), Access::Read, Resource::Queue, b"q", "v", "u").is_ok());
    }
}
