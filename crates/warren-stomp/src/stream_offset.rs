//! SUBSCRIBE's `x-stream-offset` header, as RabbitMQ's STOMP plugin turns it
//! into the consumer argument: `first`, `last`, `next`, `offset=N` (a long),
//! `timestamp=S` (seconds, an AMQP timestamp). Anything else is ignored (the
//! consumer starts at `next`), as in RabbitMQ.
//!
//! Stream filtering (RabbitMQ 3.13's STOMP plugin): `x-stream-filter` (values
//! separated by commas) and `x-stream-match-unfiltered: true` become the
//! consumer arguments of the same names.

use crate::headers::Headers;
use warren_core::table::{FieldTable, FieldValue};

pub const HEADER: &str = "x-stream-offset";
const FILTER: &str = "x-stream-filter";
const MATCH_UNFILTERED: &str = "x-stream-match-unfiltered";

/// The consumer arguments for a SUBSCRIBE's headers.
pub fn consumer_arguments(h: &Headers) -> FieldTable {
    let mut args = FieldTable::new();
    if let Some(v) = h.get(FILTER) {
        let values = v
            .split(|&b| b == b',')
            .filter(|s| !s.is_empty())
            .map(FieldValue::string)
            .collect();
        args.insert(FILTER, FieldValue::Array(values));
    }
    if let Some(v) = h.get(MATCH_UNFILTERED) {
        args.insert(MATCH_UNFILTERED, FieldValue::Bool(v == b"true"));
    }
    let value = match h.get(HEADER) {
        Some(v @ (b"first" | b"last" | b"next")) => FieldValue::string(v),
        Some(v) => match parse(v) {
            Some(v) => v,
            None => return args,
        },
        None => return args,
    };
    args.insert(HEADER, value);
    args
}

fn parse(v: &[u8]) -> Option<FieldValue> {
    let number = |s: &[u8]| std::str::from_utf8(s).ok()?.parse::<i64>().ok();
    if let Some(n) = v.strip_prefix(b"offset=") {
        return number(n).map(FieldValue::I64);
    }
    if let Some(n) = v.strip_prefix(b"timestamp=") {
        return number(n).map(|s| FieldValue::Timestamp(s.max(0) as u64));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values() {
        assert_eq!(parse(b"offset=42"), Some(FieldValue::I64(42)));
        assert_eq!(parse(b"timestamp=7"), Some(FieldValue::Timestamp(7)));
        assert_eq!(parse(b"offset=x"), None);
        assert_eq!(parse(b"1h"), None);
    }
}
