//! RabbitMQ's topic permissions: per (user, vhost, exchange), a `write` and a
//! `read` regular expression matched against routing keys, on topic exchanges
//! only. Publishing to the exchange needs the routing key to match `write`;
//! binding a queue (or exchange) to it needs the binding key to match `read`
//! (STOMP's `/topic` subscriptions bind, so they are checked too). Without a
//! topic permission for the exchange, everything is allowed, as in RabbitMQ.
//!
//! `{username}`, `{vhost}` and `{client_id}` in an expression are replaced by
//! the connection's values before matching (plain text replacement, as
//! RabbitMQ's `expand_topic_permission`): a connection compiles its user's
//! expressions once, with its own values, when its permission cache loads
//! (see [`crate::permissions::AccessCache`]), never per message. The empty
//! expression grants nothing (RabbitMQ matches it as `^$`).

use crate::error::BrokerError;
use crate::exchange::ExchangeKind;
use crate::permissions::Access;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// A topic permission as set (`PUT /api/topic-permissions/V/U`) and stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicPermissionDef {
    pub user: String,
    pub vhost: String,
    pub exchange: String,
    pub write: String,
    pub read: String,
}

/// What the variables of a connection's expressions stand for.
#[derive(Debug, Clone, Default)]
pub struct Variables<'a> {
    pub username: &'a str,
    pub vhost: &'a str,
    /// MQTT's client id; other protocols have none (`{client_id}` stays).
    pub client_id: Option<&'a str>,
}

fn expand(pattern: &str, vars: &Variables) -> String {
    let mut s = pattern
        .replace("{username}", vars.username)
        .replace("{vhost}", vars.vhost);
    if let Some(id) = vars.client_id {
        s = s.replace("{client_id}", id);
    }
    s
}

fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    Regex::new(if pattern.is_empty() { "^$" } else { pattern })
}

/// Refuse an expression that does not compile (checked with the variables
/// replaced by a plain word, since `{username}` is no valid repetition).
pub fn validate(def: &TopicPermissionDef) -> Result<(), BrokerError> {
    let probe = Variables {
        username: "u",
        vhost: "v",
        client_id: Some("c"),
    };
    for re in [&def.write, &def.read] {
        compile(&expand(re, &probe)).map_err(|_| {
            BrokerError::precondition_failed(format!("regular expression '{}' is invalid", re))
        })?;
    }
    Ok(())
}

/// One exchange's expressions, compiled for one connection.
#[derive(Debug)]
pub struct TopicPermission {
    exchange: String,
    /// None: the expanded expression did not compile; nothing is allowed.
    write: Option<Regex>,
    read: Option<Regex>,
}

impl TopicPermission {
    pub fn compile(def: &TopicPermissionDef, vars: &Variables) -> TopicPermission {
        TopicPermission {
            exchange: def.exchange.clone(),
            write: compile(&expand(&def.write, vars)).ok(),
            read: compile(&expand(&def.read, vars)).ok(),
        }
    }
}

/// Check `access` (write: publish, read: bind) with `key` to `exchange` of
/// kind `kind` against a connection's compiled topic permissions: Ok, or
/// RabbitMQ's 403.
pub fn check(
    perms: &[TopicPermission],
    access: Access,
    exchange: &[u8],
    kind: ExchangeKind,
    key: &[u8],
    vhost: &str,
    user: &str,
) -> Result<(), BrokerError> {
    if perms.is_empty() || kind != ExchangeKind::Topic {
        return Ok(());
    }
    let Some(p) = perms.iter().find(|p| p.exchange.as_bytes() == exchange) else {
        return Ok(());
    };
    let re = match access {
        Access::Write => &p.write,
        _ => &p.read,
    };
    let key_text = String::from_utf8_lossy(key);
    if re.as_ref().is_some_and(|re| re.is_match(&key_text)) {
        return Ok(());
    }
    Err(BrokerError::access_refused(format!(
        "access to topic '{}' in exchange '{}' in vhost '{}' refused for user '{}'",
        key_text,
        String::from_utf8_lossy(exchange),
        vhost,
        user
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn def(write: &str, read: &str) -> TopicPermissionDef {
        TopicPermissionDef {
            user: "bob".into(),
            vhost: "/".into(),
            exchange: "amq.topic".into(),
            write: write.into(),
            read: read.into(),
        }
    }

    fn vars() -> Variables<'static> {
        Variables {
            username: "bob",
            vhost: "/",
            client_id: None,
        }
    }

    #[test]
    fn write_and_read_match_routing_keys_on_topic_exchanges_only() {
        let perms = [TopicPermission::compile(&def("^a\\.", "^b"), &vars())];
        let chk = |a, x: &[u8], kind, key: &[u8]| check(&perms, a, x, kind, key, "/", "bob");
        assert!(chk(Access::Write, b"amq.topic", ExchangeKind::Topic, b"a.x").is_ok());
        let e = chk(Access::Write, b"amq.topic", ExchangeKind::Topic, b"b.x").expect_err("no");
        assert_eq!(e.code, 403);
        assert_eq!(
            e.text,
            "access to topic 'b.x' in exchange 'amq.topic' in vhost '/' refused for user 'bob'"
        );
        assert!(chk(Access::Read, b"amq.topic", ExchangeKind::Topic, b"b.#").is_ok());
        // Other exchanges and other kinds are not concerned.
        assert!(chk(Access::Write, b"other", ExchangeKind::Topic, b"z").is_ok());
        assert!(chk(Access::Write, b"amq.topic", ExchangeKind::Direct, b"z").is_ok());
    }

    #[test]
    fn variables_are_expanded_and_empty_grants_nothing() {
        let perms = [TopicPermission::compile(
            &def("^{username}\\.", ""),
            &vars(),
        )];
        let chk = |a, key: &[u8]| {
            check(
                &perms,
                a,
                b"amq.topic",
                ExchangeKind::Topic,
                key,
                "/",
                "bob",
            )
        };
        assert!(chk(Access::Write, b"bob.x").is_ok());
        assert!(chk(Access::Write, b"eve.x").is_err());
        assert!(chk(Access::Read, b"bob.x").is_err());
        assert!(validate(&def("^{username}\\.{vhost}", ".*")).is_ok());
        let e = validate(&def("(", ".*")).expect_err("invalid");
        assert_eq!(e.text, "regular expression '(' is invalid");
    }
}
