//! The `x-stream-offset` consumer argument, parsed as RabbitMQ 3.10 does.

use crate::error::{BrokerError, Result};
use crate::queue::args::parse_max_age;
use crate::table::FieldValue;

/// Where a new stream consumer starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    First,
    /// The start of the last chunk (write batch).
    Last,
    /// Only messages published from now on (the default).
    Next,
    /// This offset (clamped into what is stored).
    Offset(u64),
    /// The first message appended at or after this time (ms since the epoch).
    Timestamp(u64),
}

impl OffsetSpec {
    /// `first`, `last`, `next`, an interval (`1h`, `30m`: that long ago), a
    /// timestamp (`T`, seconds), or an integer offset (negative: the first).
    /// Anything else fails the consume with 541 INTERNAL_ERROR, as RabbitMQ's
    /// channel crashes on it.
    pub fn parse(v: Option<&FieldValue>, now_ms: u64) -> Result<OffsetSpec> {
        let bad = || BrokerError::new(541, "");
        let Some(v) = v else {
            return Ok(OffsetSpec::Next);
        };
        match v {
            FieldValue::LongStr(s) => match &s[..] {
                b"first" => Ok(OffsetSpec::First),
                b"last" => Ok(OffsetSpec::Last),
                b"next" => Ok(OffsetSpec::Next),
                other => parse_max_age(other)
                    .map(|ago| OffsetSpec::Timestamp(now_ms.saturating_sub(ago)))
                    .ok_or_else(bad),
            },
            FieldValue::Timestamp(secs) => Ok(OffsetSpec::Timestamp(secs.saturating_mul(1000))),
            other => match other.as_i64() {
                Some(n) if n < 0 => Ok(OffsetSpec::First),
                Some(n) => Ok(OffsetSpec::Offset(n as u64)),
                None => Err(bad()),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let p = |v: FieldValue| OffsetSpec::parse(Some(&v), 10_000_000);
        assert_eq!(p(FieldValue::string("first")).ok(), Some(OffsetSpec::First));
        assert_eq!(p(FieldValue::string("last")).ok(), Some(OffsetSpec::Last));
        assert_eq!(OffsetSpec::parse(None, 0).ok(), Some(OffsetSpec::Next));
        assert_eq!(p(FieldValue::I64(5)).ok(), Some(OffsetSpec::Offset(5)));
        assert_eq!(p(FieldValue::I8(-1)).ok(), Some(OffsetSpec::First));
        assert_eq!(
            p(FieldValue::string("1h")).ok(),
            Some(OffsetSpec::Timestamp(10_000_000 - 3_600_000))
        );
        assert_eq!(
            p(FieldValue::Timestamp(7)).ok(),
            Some(OffsetSpec::Timestamp(7000))
        );
        assert!(p(FieldValue::string("foo")).is_err());
        assert!(p(FieldValue::F64(1.5)).is_err());
    }
}
