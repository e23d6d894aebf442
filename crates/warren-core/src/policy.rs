//! Policies: named patterns that set queue behaviour (TTL, length limits,
//! dead-lettering, expiry) on matching queues without changing application code,
//! as RabbitMQ's `rabbitmqctl set_policy` does.
//!
//! The highest-priority policy whose pattern matches a queue's name applies. A
//! queue's own `x-` arguments win over the policy, except for the numeric limits
//! (`message-ttl`, `max-length`, `max-length-bytes`, `expires`), where the lower
//! value wins — RabbitMQ's rule.

use crate::table::{FieldTable, FieldValue};
use regex::Regex;
use serde::{Deserialize, Serialize};

/// A policy as given by the user (and stored in the definitions file).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct PolicyDef {
    pub vhost: String,
    pub name: String,
    pub pattern: String,
    /// "queues", "exchanges" or "all".
    #[serde(default = "all")]
    pub apply_to: String,
    #[serde(default)]
    pub priority: i64,
    /// Keys as in RabbitMQ: "message-ttl", "max-length", "dead-letter-exchange", …
    pub definition: serde_json::Map<String, serde_json::Value>,
}

fn all() -> String {
    "all".into()
}

/// A policy ready to match.
#[derive(Debug, Clone)]
pub struct Policy {
    pub def: PolicyDef,
    regex: Regex,
}

/// Policy keys that map onto queue arguments, and whether the lower of policy and
/// argument wins (true) or the argument wins (false).
const QUEUE_KEYS: &[(&str, &str, bool)] = &[
    ("message-ttl", "x-message-ttl", true),
    ("expires", "x-expires", true),
    ("max-length", "x-max-length", true),
    ("max-length-bytes", "x-max-length-bytes", true),
    ("overflow", "x-overflow", false),
    // Quorum queues (RabbitMQ takes the lower of argument and policy).
    ("delivery-limit", "x-delivery-limit", true),
    // Stream retention (a stream also takes max-length-bytes).
    ("max-age", "x-max-age", false),
    (
        "stream-max-segment-size-bytes",
        "x-stream-max-segment-size-bytes",
        true,
    ),
    ("dead-letter-exchange", "x-dead-letter-exchange", false),
    (
        "dead-letter-routing-key",
        "x-dead-letter-routing-key",
        false,
    ),
];

/// Stream retention arguments a policy overrides.
const STREAM_POLICY_WINS: &[&str] = &[
    "x-max-length-bytes",
    "x-max-age",
    "x-stream-max-segment-size-bytes",
];

/// What RabbitMQ's validation calls each key's value ("5 is not a valid
/// maximum length").
fn key_description(key: &str) -> &'static str {
    match key {
        "message-ttl" => "message TTL",
        "expires" => "queue expiry",
        "max-length" => "maximum length",
        "max-length-bytes" => "maximum length in bytes",
        "overflow" => "overflow value",
        "delivery-limit" => "delivery limit",
        "dead-letter-exchange" => "dead letter exchange name",
        "dead-letter-routing-key" => "dead letter routing key",
        "max-age" => "max-age",
        "stream-max-segment-size-bytes" => "stream segment size",
        _ => "alternate exchange name",
    }
}

fn valid_value(key: &str, numeric: bool, value: &serde_json::Value) -> bool {
    if numeric {
        // RabbitMQ: a queue expiry must be at least 1 ms.
        let min = if key == "expires" { 1 } else { 0 };
        return value.as_i64().is_some_and(|n| n >= min);
    }
    match (key, value.as_str()) {
        ("overflow", Some(s)) => matches!(s, "drop-head" | "reject-publish" | "reject-publish-dlx"),
        (_, s) => s.is_some(),
    }
}

impl Policy {
    /// Validate and compile a policy; errors are RabbitMQ's validation
    /// texts (the API wraps them in "Validation failed").
    pub fn new(def: PolicyDef) -> Result<Policy, String> {
        let regex = Regex::new(&def.pattern).map_err(|e| {
            let msg = match e {
                regex::Error::Syntax(s) => s.lines().last().unwrap_or("").trim().to_string(),
                other => other.to_string(),
            };
            format!(
                "pattern should be regular expression but is invalid: {{\"{}\",0}}",
                msg.trim_start_matches("error: ")
            )
        })?;
        if !matches!(def.apply_to.as_str(), "queues" | "exchanges" | "all") {
            return Err(format!(
                "apply-to '{}' unrecognised; should be 'queues', 'exchanges' or 'all'",
                def.apply_to
            ));
        }
        let unknown: Vec<String> = def
            .definition
            .iter()
            .filter(|(k, _)| {
                *k != "alternate-exchange" && !QUEUE_KEYS.iter().any(|(q, _, _)| q == k)
            })
            .map(|(k, v)| format!("{{<<\"{}\">>,{}}}", k, crate::json::erl_term(v)))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "[{}] are not recognised policy settings",
                unknown.join(",")
            ));
        }
        for (key, value) in &def.definition {
            let numeric = QUEUE_KEYS
                .iter()
                .find(|(k, _, _)| k == key)
                .is_some_and(|(_, _, n)| *n);
            if !valid_value(key, numeric, value) {
                return Err(format!(
                    "{} is not a valid {}",
                    crate::json::erl_term(value),
                    key_description(key)
                ));
            }
        }
        Ok(Policy { def, regex })
    }

    pub fn applies_to_queue(&self, name: &str) -> bool {
        self.def.apply_to != "exchanges" && self.regex.is_match(name)
    }

    pub fn applies_to_exchange(&self, name: &str) -> bool {
        self.def.apply_to != "queues" && self.regex.is_match(name)
    }

    /// A queue's effective arguments: its own, merged with this policy.
    pub fn merge_queue_args(&self, declared: &FieldTable) -> FieldTable {
        let mut out = declared.clone();
        let stream = declared.get("x-queue-type").and_then(|v| v.as_bytes()) == Some(b"stream");
        for (key, arg, lower_wins) in QUEUE_KEYS {
            let Some(v) = self.def.definition.get(*key).and_then(json_to_field) else {
                continue;
            };
            match declared.get(arg) {
                None => out.insert(arg, v),
                // A stream's retention: the policy wins, as in RabbitMQ.
                Some(_) if stream && STREAM_POLICY_WINS.contains(arg) => out.insert(arg, v),
                Some(existing) if *lower_wins => {
                    if let (Some(a), Some(b)) = (existing.as_i64(), v.as_i64()) {
                        if b < a {
                            out.insert(arg, v);
                        }
                    }
                }
                Some(_) => {}
            }
        }
        out
    }
}

fn json_to_field(v: &serde_json::Value) -> Option<FieldValue> {
    match v {
        serde_json::Value::Number(n) => n.as_i64().map(FieldValue::I64),
        serde_json::Value::String(s) => Some(FieldValue::string(s)),
        serde_json::Value::Bool(b) => Some(FieldValue::Bool(*b)),
        _ => None,
    }
}

/// The policy that applies to a queue: the highest priority match.
pub fn pick_for_queue<'a>(policies: &'a [Policy], name: &str) -> Option<&'a Policy> {
    policies
        .iter()
        .filter(|p| p.applies_to_queue(name))
        .max_by_key(|p| p.def.priority)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(definition: serde_json::Value) -> Policy {
        let serde_json::Value::Object(definition) = definition else {
            panic!("an object");
        };
        Policy::new(PolicyDef {
            vhost: "/".into(),
            name: "p".into(),
            pattern: ".*".into(),
            apply_to: "queues".into(),
            priority: 0,
            definition,
        })
        .expect("valid policy")
    }

    #[test]
    fn stream_retention_policy_wins_classic_limit_lower_wins() {
        let p = policy(serde_json::json!({"max-length-bytes": 5000, "max-age": "1h"}));
        let mut declared = FieldTable::new();
        declared.insert("x-max-length-bytes", FieldValue::I64(100));
        declared.insert("x-max-age", FieldValue::string("7D"));
        // Classic queue: the lower limit wins, the argument's x-max-age stays.
        let classic = p.merge_queue_args(&declared);
        assert_eq!(
            classic.get("x-max-length-bytes"),
            Some(&FieldValue::I64(100))
        );
        assert_eq!(classic.get("x-max-age"), Some(&FieldValue::string("7D")));
        // Stream: the policy wins (RabbitMQ's policy_precedence).
        declared.insert("x-queue-type", FieldValue::string("stream"));
        let stream = p.merge_queue_args(&declared);
        assert_eq!(
            stream.get("x-max-length-bytes"),
            Some(&FieldValue::I64(5000))
        );
        assert_eq!(stream.get("x-max-age"), Some(&FieldValue::string("1h")));
    }

    #[test]
    fn delivery_limit_policy_lower_of_argument_and_policy() {
        let p = policy(serde_json::json!({"delivery-limit": 3}));
        let mut declared = FieldTable::new();
        assert_eq!(
            p.merge_queue_args(&declared).get("x-delivery-limit"),
            Some(&FieldValue::I64(3))
        );
        declared.insert("x-delivery-limit", FieldValue::I64(1));
        assert_eq!(
            p.merge_queue_args(&declared).get("x-delivery-limit"),
            Some(&FieldValue::I64(1))
        );
        let bad = Policy::new(PolicyDef {
            vhost: "/".into(),
            name: "p".into(),
            pattern: ".*".into(),
            apply_to: "queues".into(),
            priority: 0,
            definition: serde_json::json!({"delivery-limit": -1})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        });
        assert_eq!(
            bad.err().as_deref(),
            Some("-1 is not a valid delivery limit")
        );
    }
}
