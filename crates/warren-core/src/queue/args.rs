//! Queue arguments (`x-message-ttl`, `x-max-length`, `x-dead-letter-exchange`, …)
//! parsed once at declare time, with RabbitMQ's validation.

use crate::error::{BrokerError, Result};
use crate::shortstr::ShortStr;
use crate::table::{FieldTable, FieldValue};

/// What a queue does when it is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest messages.
    #[default]
    DropHead,
    /// Refuse new messages (publishers in confirm mode get basic.nack).
    RejectPublish,
    /// Refuse new messages and dead-letter them.
    RejectPublishDlx,
}

/// The behaviour-changing arguments of a queue.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueArgs {
    /// Per-queue message TTL, ms.
    pub message_ttl: Option<u64>,
    /// Delete the queue after this many ms without use.
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<ShortStr>,
    pub dead_letter_routing_key: Option<ShortStr>,
    /// Priority levels 0..=max (priority queue) if set.
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
}

impl QueueArgs {
    /// Parse and validate declare arguments. Unknown arguments are ignored, as in
    /// RabbitMQ.
    pub fn parse(args: &FieldTable, queue: &ShortStr, vhost: &str) -> Result<QueueArgs> {
        let invalid = |key: &str, why: String| {
            BrokerError::precondition_failed(format!(
                "invalid arg '{}' for queue '{}' in vhost '{}': {}",
                key, queue, vhost, why
            ))
        };
        let int = |key: &str, min: i64| -> Result<Option<u64>> {
            match args.get(key) {
                None => Ok(None),
                Some(v) => match v.as_i64() {
                    Some(n) if n >= min => Ok(Some(n as u64)),
                    Some(n) if n < 0 => Err(invalid(key, format!("{{value_negative,{}}}", n))),
                    Some(n) => Err(invalid(key, format!("{{value_zero,{}}}", n))),
                    None => Err(invalid(
                        key,
                        format!("\"expected integer, got {}\"", v.type_name()),
                    )),
                },
            }
        };
        let string = |key: &str| -> Result<Option<ShortStr>> {
            match args.get(key) {
                None => Ok(None),
                Some(FieldValue::LongStr(b)) => Ok(Some(ShortStr(b.clone()))),
                Some(v) => Err(invalid(
                    key,
                    format!("{{unacceptable_type,{}}}", v.type_name()),
                )),
            }
        };
        let mut a = QueueArgs {
            message_ttl: int("x-message-ttl", 0)?,
            expires: int("x-expires", 1)?,
            max_length: int("x-max-length", 0)?,
            max_length_bytes: int("x-max-length-bytes", 0)?,
            dead_letter_exchange: string("x-dead-letter-exchange")?,
            dead_letter_routing_key: string("x-dead-letter-routing-key")?,
            ..QueueArgs::default()
        };
        if let Some(o) = string("x-overflow")? {
            a.overflow = match o.as_bytes() {
                b"drop-head" => Overflow::DropHead,
                b"reject-publish" => Overflow::RejectPublish,
                b"reject-publish-dlx" => Overflow::RejectPublishDlx,
                _ => return Err(invalid("x-overflow", "invalid_overflow".to_string())),
            };
        }
        if let Some(p) = int("x-max-priority", 0)? {
            if p > 255 {
                return Err(invalid(
                    "x-max-priority",
                    format!("{{max_value_exceeded,{}}}", p),
                ));
            }
            a.max_priority = Some(p as u8);
        }
        match args.get("x-single-active-consumer") {
            None => {}
            Some(FieldValue::Bool(b)) => a.single_active_consumer = *b,
            Some(v) => {
                return Err(invalid(
                    "x-single-active-consumer",
                    format!("{{unacceptable_type,{}}}", v.type_name()),
                ))
            }
        }
        if a.dead_letter_routing_key.is_some() && a.dead_letter_exchange.is_none() {
            return Err(invalid(
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined".into(),
            ));
        }
        Ok(a)
    }

    /// Whether the queue has a length limit at all.
    pub fn is_limited(&self) -> bool {
        self.max_length.is_some() || self.max_length_bytes.is_some()
    }
}

/// Validate the `x-priority` argument of basic.consume.
pub fn check_consumer_args(args: &FieldTable, queue: &ShortStr, vhost: &str) -> Result<()> {
    match args.get("x-priority") {
        Some(v) if v.as_i64().is_none() => Err(BrokerError::precondition_failed(format!(
            "invalid arg 'x-priority' for queue '{}' in vhost '{}': \"expected integer, got {}\"",
            queue,
            vhost,
            v.type_name()
        ))),
        _ => Ok(()),
    }
}

/// Check an `expiration` property the way RabbitMQ does (Erlang's
/// `string:to_integer`), returning its error detail.
pub fn check_expiration(e: &[u8]) -> std::result::Result<u64, String> {
    let s = String::from_utf8_lossy(e);
    let bytes = s.as_bytes();
    let sign_len = usize::from(matches!(bytes.first(), Some(b'+') | Some(b'-')));
    let digits = bytes[sign_len..]
        .iter()
        .take_while(|b| b.is_ascii_digit())
        .count();
    if digits == 0 {
        return Err("no_integer".into());
    }
    let end = sign_len + digits;
    let n: i128 = s[..end].parse().map_err(|_| "no_integer".to_string())?;
    if end < bytes.len() {
        return Err(format!("{{leftover_string,\"{}\"}}", &s[end..]));
    }
    if n < 0 {
        return Err(format!("{{value_negative,{}}}", n));
    }
    Ok(n.min(u64::MAX as i128) as u64)
}
