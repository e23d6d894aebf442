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
    /// `x-delivery-limit` (or the `delivery-limit` policy): a quorum
    /// queue's state machine enforces it; classic queues ignore it, as
    /// RabbitMQ's. As in RabbitMQ 3.10, a negative value acts as 0 and one
    /// that is not an integer is ignored.
    pub delivery_limit: Option<u64>,
    /// `x-queue-type: stream`: its retention settings.
    pub stream: Option<StreamArgs>,
}

/// A stream queue's retention (`x-max-length-bytes` is in [`QueueArgs`]).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamArgs {
    /// `x-max-age`, ms.
    pub max_age: Option<u64>,
    /// `x-stream-max-segment-size-bytes`.
    pub max_segment_size: u64,
    /// `x-stream-filter-size-bytes` (RabbitMQ 3.13): Bloom filter bytes per
    /// index block.
    pub filter_size: usize,
}

/// The largest `x-stream-max-segment-size-bytes` RabbitMQ accepts.
const MAX_SEGMENT_SIZE: i64 = 3_000_000_000;

/// Arguments a stream refuses (RabbitMQ 3.10), in the order they are checked.
const NOT_FOR_STREAMS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-queue-version",
    "x-single-active-consumer",
    "x-queue-master-locator",
];

/// RabbitMQ's `x-max-age` / interval syntax: digits and one unit of
/// `Y M D h m s`. Returns milliseconds.
pub fn parse_max_age(s: &[u8]) -> Option<u64> {
    let (&unit, digits) = s.split_last()?;
    if digits.is_empty() || !digits.iter().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    let secs: u64 = match unit {
        b'Y' => 365 * 86_400,
        b'M' => 30 * 86_400,
        b'D' => 86_400,
        b'h' => 3_600,
        b'm' => 60,
        b's' => 1,
        _ => return None,
    };
    n.checked_mul(secs)?.checked_mul(1000)
}

/// A stream declare's refusals that depend on what the client declared (not
/// on policies): classic-only arguments and properties, RabbitMQ's texts.
pub fn check_stream_declare(
    declared: &FieldTable,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    queue: &ShortStr,
    vhost: &str,
) -> Result<()> {
    if let Some(key) = NOT_FOR_STREAMS.iter().find(|k| declared.get(k).is_some()) {
        return Err(BrokerError::precondition_failed(format!(
            "invalid arg '{}' for queue '{}' in vhost '{}' of queue type rabbit_stream_queue",
            key, queue, vhost
        )));
    }
    let bad = if !durable {
        "non-durable"
    } else if exclusive {
        "exclusive-owner"
    } else if auto_delete {
        "auto-delete"
    } else {
        return Ok(());
    };
    Err(BrokerError::precondition_failed(format!(
        "invalid property '{}' for queue '{}' in vhost '{}'",
        bad, queue, vhost
    )))
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
            delivery_limit: args
                .get("x-delivery-limit")
                .and_then(|v| v.as_i64())
                .map(|n| n.max(0) as u64),
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
        match args.get("x-queue-type") {
            None => {}
            Some(v) => match v.as_bytes() {
                Some(b"classic") | Some(b"quorum") => {}
                Some(b"stream") => return Self::parse_stream(args, a, &invalid),
                _ => {
                    let shown = match v.as_bytes() {
                        Some(b) => String::from_utf8_lossy(b).into_owned(),
                        None => format!("{:?}", v),
                    };
                    return Err(invalid(
                        "x-queue-type",
                        format!("\"unsupported queue type '{}'\"", shown),
                    ));
                }
            },
        }
        if a.dead_letter_routing_key.is_some() && a.dead_letter_exchange.is_none() {
            return Err(invalid(
                "x-dead-letter-routing-key",
                "routing_key_but_no_dlx_defined".into(),
            ));
        }
        Ok(a)
    }

    /// A stream's arguments: its retention; classic-queue arguments a policy
    /// brings do not apply to it (declared ones were refused already).
    fn parse_stream(
        args: &FieldTable,
        classic: QueueArgs,
        invalid: &dyn Fn(&str, String) -> BrokerError,
    ) -> Result<QueueArgs> {
        let max_age = match args.get("x-max-age") {
            None => None,
            Some(v) => Some(
                v.as_bytes()
                    .and_then(parse_max_age)
                    .ok_or_else(|| invalid("x-max-age", "invalid_max_age".into()))?,
            ),
        };
        let max_segment_size = match args.get("x-stream-max-segment-size-bytes") {
            None => crate::store::stream_index::DEFAULT_SEGMENT_SIZE,
            Some(v) => match v.as_i64() {
                Some(n) if n > MAX_SEGMENT_SIZE => {
                    return Err(BrokerError::precondition_failed(
                        "Exceeded max value for x-stream-max-segment-size-bytes",
                    ))
                }
                Some(n) if n > 0 => n as u64,
                _ => {
                    return Err(invalid(
                        "x-stream-max-segment-size-bytes",
                        format!("\"expected integer, got {}\"", v.type_name()),
                    ))
                }
            },
        };
        use crate::queue::stream::filter;
        let filter_size = match args.get(filter::SIZE_ARG) {
            None => filter::DEFAULT_SIZE,
            Some(v) => match v.as_i64() {
                Some(n) if (filter::MIN_SIZE as i64..=filter::MAX_SIZE as i64).contains(&n) => {
                    n as usize
                }
                _ => {
                    return Err(invalid(
                        filter::SIZE_ARG,
                        format!(
                            "\"expected integer between {} and {}\"",
                            filter::MIN_SIZE,
                            filter::MAX_SIZE
                        ),
                    ))
                }
            },
        };
        Ok(QueueArgs {
            max_length_bytes: classic.max_length_bytes,
            stream: Some(StreamArgs {
                max_age,
                max_segment_size,
                filter_size,
            }),
            ..QueueArgs::default()
        })
    }

    pub fn is_stream(&self) -> bool {
        self.stream.is_some()
    }

    /// Whether the queue has a length limit at all.
    pub fn is_limited(&self) -> bool {
        // A stream's x-max-length-bytes is retention, not a queue limit.
        self.stream.is_none() && (self.max_length.is_some() || self.max_length_bytes.is_some())
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

/// `x-queue-type: quorum` in a declare's arguments.
pub fn is_quorum(args: &FieldTable) -> bool {
    args.get("x-queue-type")
        .and_then(|v| v.as_bytes())
        .is_some_and(|b| b == b"quorum")
}

/// What a cluster node refuses in a quorum queue declare, with RabbitMQ 3.10's
/// texts (406): a quorum queue is durable, shared and lives on without
/// consumers. `x-expires`, which the replicated queue does not implement
/// yet, is refused too (RabbitMQ takes it; Warren would otherwise ignore
/// it). `x-message-ttl` and `x-single-active-consumer` are checked as for
/// any queue (`QueueArgs::parse`) and honoured by the state machine.
pub fn check_quorum_declare(
    name: &str,
    vhost: &str,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
    args: &FieldTable,
) -> Result<()> {
    let resource = format!("queue '{name}' in vhost '{vhost}'");
    let property = |p: &str| {
        Err(BrokerError::precondition_failed(format!(
            "invalid property '{p}' for {resource}"
        )))
    };
    if !durable {
        return property("non-durable");
    }
    if exclusive {
        return property("exclusive-owner");
    }
    if auto_delete {
        return property("auto-delete");
    }
    if args.get("x-max-priority").is_some() {
        return Err(BrokerError::precondition_failed(format!(
            "invalid arg 'x-max-priority' for {resource} of queue type rabbit_quorum_queue"
        )));
    }
    if let Some(v) = args.get("x-quorum-initial-group-size") {
        if v.as_i64().is_none() {
            return Err(BrokerError::precondition_failed(format!(
                "invalid arg 'x-quorum-initial-group-size' for {resource}: \"expected integer, got {}\"",
                v.type_name()
            )));
        }
    }
    // x-delivery-limit is not checked: RabbitMQ 3.10 takes any value (a
    // negative one acts as 0, a non-integer is ignored; see
    // `QueueArgs::delivery_limit`).
    // x-delivery-limit, x-message-ttl, x-single-active-consumer and
    // dead-lettering (x-dead-letter-exchange/-routing-key) are the replicated
    // state machine's (warren-quorum).
    for unsupported in ["x-expires"] {
        if args.get(unsupported).is_some() {
            return Err(BrokerError::precondition_failed(format!(
                "invalid arg '{unsupported}' for {resource}: not supported on Warren quorum queues yet"
            )));
        }
    }
    Ok(())
}
