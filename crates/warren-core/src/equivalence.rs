//! Redeclaring an existing queue or exchange: which differences are refused,
//! and the 406 texts, as RabbitMQ 3.10 gives them.
//!
//! RabbitMQ compares only the arguments it knows for the resource (for a classic
//! queue the `x-` arguments of its queue type; for an exchange only
//! `alternate-exchange`), so clients that add their own `x-foo` arguments, or
//! spell out `x-queue-type: classic`, can redeclare freely. Values are compared
//! by type class (any integer width equals any other), and the text shows a bare
//! value when only the value differs, `the value 'v' of type 't'` when the types
//! differ, and `none` for a missing argument.

use crate::error::{BrokerError, Result};
use crate::table::{FieldTable, FieldValue};

/// The arguments RabbitMQ compares when a classic queue is redeclared, in the
/// order it compares them (the first difference is the one reported).
pub const QUEUE_ARGUMENTS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-type",
    "x-queue-master-locator",
];

/// Compared as well when the queue is a stream.
pub const STREAM_ARGUMENTS: &[&str] = &["x-max-age", "x-stream-max-segment-size-bytes"];

/// The only argument RabbitMQ compares when an exchange is redeclared.
pub const EXCHANGE_ARGUMENTS: &[&str] = &["alternate-exchange"];

/// Compare the `keys` of a redeclaration's arguments with the current ones.
/// `resource` names the resource as RabbitMQ's texts do: `queue 'q' in vhost '/'`.
pub fn check_arguments(
    current: &FieldTable,
    requested: &FieldTable,
    keys: &[&str],
    resource: &str,
) -> Result<()> {
    for key in keys {
        let (cur, req) = (current.get(key), requested.get(key));
        let same = match (cur, req) {
            (None, None) => true,
            (Some(a), Some(b)) => type_class(a) == type_class(b) && values_equal(a, b) || a == b,
            // A classic queue declared without x-queue-type is a classic queue.
            (None, Some(v)) | (Some(v), None) => {
                *key == "x-queue-type" && v.as_bytes() == Some(b"classic")
            }
        };
        if same {
            continue;
        }
        let (received, was) = match (cur, req) {
            (Some(a), Some(b)) if type_class(a) == type_class(b) => (bare(b), bare(a)),
            _ => (typed(req), typed(cur)),
        };
        return Err(inequivalent(key, resource, &received, &was));
    }
    Ok(())
}

/// The 406 for one differing field or argument; `received` and `current` are
/// already formatted.
pub fn inequivalent(field: &str, resource: &str, received: &str, current: &str) -> BrokerError {
    BrokerError::precondition_failed(format!(
        "inequivalent arg '{}' for {}: received {} but current is {}",
        field, resource, received, current
    ))
}

/// A flag or name as RabbitMQ quotes it: `'true'`, `'topic'`.
pub fn quoted(v: impl std::fmt::Display) -> String {
    format!("'{}'", v)
}

/// RabbitMQ's type classes: every integer width is "int", both floats "float".
fn type_class(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::I8(_)
        | FieldValue::U8(_)
        | FieldValue::I16(_)
        | FieldValue::U16(_)
        | FieldValue::I32(_)
        | FieldValue::U32(_)
        | FieldValue::I64(_)
        | FieldValue::Decimal(..) => "int",
        FieldValue::F32(_) | FieldValue::F64(_) => "float",
        other => other.type_name(),
    }
}

fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => match (a, b) {
            (FieldValue::F32(x), FieldValue::F64(y)) | (FieldValue::F64(y), FieldValue::F32(x)) => {
                *x as f64 == *y
            }
            _ => a == b,
        },
    }
}

/// A value alone: `'2000'`.
fn bare(v: &FieldValue) -> String {
    format!("'{}'", show(v))
}

/// A value with its type: `the value '2000' of type 'signedint'`, or `none`.
fn typed(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".into(),
        Some(v) => format!("the value '{}' of type '{}'", show(v), v.type_name()),
    }
}

/// The value as Erlang prints it (strings as text, numbers as numbers).
fn show(v: &FieldValue) -> String {
    match v {
        FieldValue::LongStr(b) | FieldValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::F32(f) => f.to_string(),
        FieldValue::F64(f) => f.to_string(),
        other => match other.as_i64() {
            Some(i) => i.to_string(),
            None => format!("{:?}", other),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(entries: &[(&str, FieldValue)]) -> FieldTable {
        let mut t = FieldTable::new();
        for (k, v) in entries {
            t.insert(k, v.clone());
        }
        t
    }

    const Q: &str = "queue 'q' in vhost '/'";

    #[test]
    fn unknown_arguments_are_not_compared() {
        let cur = table(&[("x-foo", FieldValue::string("bar"))]);
        let req = table(&[
            ("x-foo", FieldValue::string("baz")),
            ("x-n", FieldValue::I32(1)),
        ]);
        assert!(check_arguments(&cur, &req, QUEUE_ARGUMENTS, Q).is_ok());
    }

    #[test]
    fn classic_queue_type_is_the_default() {
        let req = table(&[("x-queue-type", FieldValue::string("classic"))]);
        assert!(check_arguments(&FieldTable::new(), &req, QUEUE_ARGUMENTS, Q).is_ok());
        assert!(check_arguments(&req, &FieldTable::new(), QUEUE_ARGUMENTS, Q).is_ok());
    }

    #[test]
    fn integer_widths_are_one_class() {
        let cur = table(&[("x-message-ttl", FieldValue::I32(1000))]);
        let req = table(&[("x-message-ttl", FieldValue::I64(1000))]);
        assert!(check_arguments(&cur, &req, QUEUE_ARGUMENTS, Q).is_ok());
    }

    #[test]
    fn texts_match_rabbitmq() {
        let cur = table(&[("x-message-ttl", FieldValue::I32(1000))]);
        let req = table(&[("x-message-ttl", FieldValue::I32(2000))]);
        let e = check_arguments(&cur, &req, QUEUE_ARGUMENTS, Q).unwrap_err();
        assert_eq!(
            e.text,
            "inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received '2000' but current is '1000'"
        );
        let req = table(&[("x-message-ttl", FieldValue::string("2000"))]);
        let e = check_arguments(&cur, &req, QUEUE_ARGUMENTS, Q).unwrap_err();
        assert_eq!(
            e.text,
            "inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received the value '2000' of type 'longstr' but current is the value '1000' of type 'signedint'"
        );
        let e = check_arguments(&cur, &FieldTable::new(), QUEUE_ARGUMENTS, Q).unwrap_err();
        assert_eq!(
            e.text,
            "inequivalent arg 'x-message-ttl' for queue 'q' in vhost '/': received none but current is the value '1000' of type 'signedint'"
        );
    }
}
