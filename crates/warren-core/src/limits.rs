//! RabbitMQ's vhost limits (`max-connections`, `max-queues`) and user limits
//! (`max-connections`, `max-channels`): set with the management API
//! (`/api/vhost-limits`, `/api/user-limits`) or `warren ctl set-vhost-limits`,
//! stored durably, and checked where the thing is created: connections when
//! they open a vhost ([`crate::Broker::open_vhost`], every protocol), queues
//! when declared ([`crate::VHost`]), channels when opened (AMQP). A negative
//! value is no limit, 0 allows none, as in RabbitMQ.

use crate::error::BrokerError;
use std::collections::BTreeMap;

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
