//! RabbitMQ's vhost limits (`max-connections`, `max-queues`) and user limits
//! (`max-connections`, `max-channels`): set with the management API
//! (`/api/vhost-limits`, `/api/user-limits`) or `warren ctl set-vhost-limits`,
//! stored durably, and checked where the thing is created: connections when
//! they open a vhost ([`crate::Broker::open_vhost`], every protocol), queues
//! when declared ([`crate::VHost`]), channels when opened (AMQP; a STOMP or MQTT
//! connection is one channel, checked at login, as RabbitMQ's plugins hold one). A negative
//! value is no limit, 0 allows none, as in RabbitMQ.

use crate::admin::{no_user, no_vhost};
use crate::broker::Broker;
use crate::error::BrokerError;
use crate::shortstr::ShortStr;
use crate::vhost::VHost;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Limits by name, as RabbitMQ's JSON shows them (`{"max-queues": 10}`).
pub type LimitMap = BTreeMap<String, i64>;

pub const MAX_CONNECTIONS: &str = "max-connections";
pub const MAX_QUEUES: &str = "max-queues";
pub const MAX_CHANNELS: &str = "max-channels";

/// The limits a vhost may have.
pub const VHOST_LIMITS: &[&str] = &[MAX_CONNECTIONS, MAX_QUEUES];
/// The limits a user may have.
pub const USER_LIMITS: &[&str] = &[MAX_CONNECTIONS, MAX_CHANNELS];

/// Whether `current` objects reach `limit` (so one more is refused).
pub fn reached(limits: &LimitMap, name: &str, current: usize) -> Option<i64> {
    match limits.get(name) {
        Some(&n) if n >= 0 && current as i64 >= n => Some(n),
        _ => None,
    }
}

/// Parse one limit's JSON value with RabbitMQ's validation texts: `name`
/// must be one of `known`, the value a whole number.
pub fn parse(known: &[&str], name: &str, value: &serde_json::Value) -> Result<i64, String> {
    if !known.contains(&name) {
        return Err(format!(
            "Unrecognised terms [{{<<\"{}\">>,{}}}] in limits",
            name,
            crate::json::erl_term(value)
        ));
    }
    value.as_i64().ok_or_else(|| {
        format!(
            "{} should be a number, actually was {}",
            name,
            crate::json::erl_term(value)
        )
    })
}

/// Every limit of a JSON object (`{"max-queues": 10, ...}`), validated.
pub fn parse_all(
    known: &[&str],
    value: &serde_json::Map<String, serde_json::Value>,
) -> Result<LimitMap, BrokerError> {
    let mut out = LimitMap::new();
    for (k, v) in value {
        let n = parse(known, k, v).map_err(BrokerError::precondition_failed)?;
        out.insert(k.clone(), n);
    }
    Ok(out)
}

impl VHost {
    /// The vhost's limits.
    pub fn limits(&self) -> LimitMap {
        self.limits.read().clone()
    }

    /// RabbitMQ's 406 when a new queue would pass `max-queues`.
    pub(crate) fn check_queue_limit(&self, name: &ShortStr, queues: usize) -> crate::Result<()> {
        match reached(&self.limits.read(), MAX_QUEUES, queues) {
            None => Ok(()),
            Some(n) => Err(BrokerError::precondition_failed(format!(
                "cannot declare queue '{}': queue limit in vhost '{}' ({}) is reached",
                name, self.name, n
            ))),
        }
    }
}

impl Broker {
    /// Set one vhost limit (validated as RabbitMQ validates it).
    pub fn set_vhost_limit(
        &self,
        vhost: &str,
        name: &str,
        value: &serde_json::Value,
    ) -> crate::Result<()> {
        let v = self.vhost(vhost).ok_or_else(|| no_vhost(vhost))?;
        let n = parse(VHOST_LIMITS, name, value).map_err(|e| {
            BrokerError::precondition_failed(format!("Validation failed\n\n{}\n", e))
        })?;
        self.update_vhost_limits(&v, |l| {
            l.insert(name.to_string(), n);
        });
        Ok(())
    }

    /// Replace all of a vhost's limits (definitions import, the
    /// `vhost-limits` runtime parameter).
    pub fn set_vhost_limits(&self, vhost: &str, limits: LimitMap) -> crate::Result<()> {
        let v = self.vhost(vhost).ok_or_else(|| no_vhost(vhost))?;
        self.update_vhost_limits(&v, |l| *l = limits);
        Ok(())
    }

    /// Clear one vhost limit (None: all of them). Clearing one that is not
    /// set is no error.
    pub fn clear_vhost_limit(&self, vhost: &str, name: Option<&str>) -> crate::Result<()> {
        let v = self.vhost(vhost).ok_or_else(|| no_vhost(vhost))?;
        self.update_vhost_limits(&v, |l| match name {
            Some(n) => {
                l.remove(n);
            }
            None => l.clear(),
        });
        Ok(())
    }

    fn update_vhost_limits(&self, v: &VHost, change: impl FnOnce(&mut LimitMap)) {
        let _g = self.admin_lock.lock();
        let mut l = v.limits.write();
        change(&mut l);
        self.store
            .definitions
            .save_vhost_limits(&v.name.to_string_lossy(), &l);
    }

    /// Set one user limit.
    pub fn set_user_limit(
        &self,
        user: &str,
        name: &str,
        value: &serde_json::Value,
    ) -> crate::Result<()> {
        let n = parse(USER_LIMITS, name, value).map_err(|e| {
            BrokerError::precondition_failed(e.replace("in limits", "in user-limits"))
        })?;
        self.update_user_limits(user, |l| {
            l.insert(name.to_string(), n);
        })
    }

    /// Clear one user limit (None: all); not set is no error.
    pub fn clear_user_limit(&self, user: &str, name: Option<&str>) -> crate::Result<()> {
        self.update_user_limits(user, |l| match name {
            Some(n) => {
                l.remove(n);
            }
            None => l.clear(),
        })
    }

    /// Replace all of a user's limits (definitions import).
    pub fn set_user_limits(&self, user: &str, limits: LimitMap) -> crate::Result<()> {
        self.update_user_limits(user, |l| *l = limits)
    }

    fn update_user_limits(
        &self,
        user: &str,
        change: impl FnOnce(&mut LimitMap),
    ) -> crate::Result<()> {
        let _g = self.admin_lock.lock();
        let updated = {
            let mut users = self.users.write();
            let u = users.get_mut(user).ok_or_else(|| no_user(user))?;
            change(&mut u.limits);
            u.clone()
        };
        self.store.definitions.save_user(&updated);
        Ok(())
    }

    /// RabbitMQ's refusals when `user` opening `vhost` would pass the
    /// vhost's or the user's `max-connections` (530 NOT_ALLOWED texts).
    pub(crate) fn check_connection_limits(
        &self,
        user: &crate::auth::User,
        vhost: &VHost,
    ) -> crate::Result<()> {
        if let Some(max) = self.limits.connection_max {
            if self.connections.len() >= max {
                return Err(BrokerError::not_allowed(format!(
                    "connection refused: node connection limit ({}) is reached",
                    max
                )));
            }
        }
        let vlimit = vhost.limits.read().get(MAX_CONNECTIONS).copied();
        let ulimit = user.limits.get(MAX_CONNECTIONS).copied();
        if vlimit.is_none_or(|n| n < 0) && ulimit.is_none_or(|n| n < 0) {
            return Ok(());
        }
        let conns = self.connections.list();
        let on_vhost = conns
            .iter()
            .filter(|c| std::ptr::eq(Arc::as_ptr(&c.vhost), vhost))
            .count();
        if let Some(n) = reached(&vhost.limits.read(), MAX_CONNECTIONS, on_vhost) {
            return Err(BrokerError::not_allowed(format!(
                "access to vhost '{}' refused for user '{}': connection limit ({}) is reached",
                vhost.name, user.name, n
            )));
        }
        let of_user = conns.iter().filter(|c| c.user == user.name).count();
        if let Some(n) = reached(&user.limits, MAX_CONNECTIONS, of_user) {
            return Err(BrokerError::not_allowed(format!(
                "connection refused for user '{}': user connection limit ({}) is reached",
                user.name, n
            )));
        }
        Ok(())
    }

    /// RabbitMQ's 530 when `user` opening one more channel would pass its
    /// `max-channels` (counted over all its connections). No limit: no cost.
    pub fn check_channel_limit(&self, user: &str) -> crate::Result<()> {
        let Some(limit) = self
            .users
            .read()
            .get(user)
            .and_then(|u| u.limits.get(MAX_CHANNELS).copied())
            .filter(|n| *n >= 0)
        else {
            return Ok(());
        };
        let open: usize = self
            .connections
            .list()
            .iter()
            .filter(|c| c.user == user)
            .map(|c| c.channel_list().len())
            .sum();
        if open as i64 >= limit {
            return Err(BrokerError::not_allowed(format!(
                "number of channels opened for user '{}' has reached the maximum allowed user limit of ({})",
                user, limit
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn negative_is_unlimited_and_zero_allows_none() {
        let mut l = LimitMap::new();
        assert_eq!(reached(&l, MAX_QUEUES, 100), None);
        l.insert(MAX_QUEUES.into(), -1);
        assert_eq!(reached(&l, MAX_QUEUES, 100), None);
        l.insert(MAX_QUEUES.into(), 0);
        assert_eq!(reached(&l, MAX_QUEUES, 0), Some(0));
        l.insert(MAX_QUEUES.into(), 2);
        assert_eq!(reached(&l, MAX_QUEUES, 1), None);
        assert_eq!(reached(&l, MAX_QUEUES, 2), Some(2));
    }

    #[test]
    fn validation_texts_are_rabbitmqs() {
        assert_eq!(
            parse(VHOST_LIMITS, "max-foo", &json!(5)).expect_err("unknown"),
            "Unrecognised terms [{<<\"max-foo\">>,5}] in limits"
        );
        assert_eq!(
            parse(VHOST_LIMITS, "max-queues", &json!("x")).expect_err("type"),
            "max-queues should be a number, actually was <<\"x\">>"
        );
        assert_eq!(parse(USER_LIMITS, "max-channels", &json!(3)), Ok(3));
    }
}
