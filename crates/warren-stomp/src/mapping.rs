//! STOMP headers ⇄ AMQP message properties, as RabbitMQ maps them
//! (`rabbit_stomp_util:message_properties/1` and `message_headers/1`).
//!
//! Why RabbitMQ's mapping, quirks included? A STOMP message is an AMQP message
//! inside the broker: AMQP consumers of a STOMP sender, and STOMP subscribers
//! of an AMQP publisher, must see exactly what they would see with RabbitMQ.
//!
//! SEND → properties:
//!
//! | header | property |
//! |---|---|
//! | `content-type`, `content-encoding`, `correlation-id`, `reply-to`, `expiration`, `type`, `user-id`, `app-id` | the property of the same name |
//! | `amqp-message-id` | `message_id` |
//! | `persistent:true` | `delivery_mode` 2 |
//! | `priority`, `timestamp` | integers |
//! | anything else but `destination` (`receipt`, `content-length`, `transaction` included) | a long-string entry of `headers` |
//!
//! properties → MESSAGE: the same names back, after the AMQP `headers` entries
//! (long strings as they are, 32- and 64-bit integers in decimal, other types
//! dropped); `delivery_mode` 2 shows as `persistent:true` (another mode as its
//! number); a `reply-to` that is not a destination shows as
//! `/reply-queue/VALUE`, so a STOMP client can SEND its answer to it.

use warren_core::{BasicProperties, FieldTable, FieldValue, ShortStr};

use crate::destination;
use crate::failure::Failure;
use crate::headers::{parse_integer, Headers};

/// Headers that are message properties (or the destination), never copied into
/// the AMQP `headers` table.
const NOT_USER_HEADERS: [&[u8]; 13] = [
    b"content-type",
    b"content-encoding",
    b"persistent",
    b"priority",
    b"correlation-id",
    b"reply-to",
    b"expiration",
    b"amqp-message-id",
    b"timestamp",
    b"type",
    b"user-id",
    b"app-id",
    b"destination",
];

/// The properties of a SEND. `reply_to` replaces the frame's `reply-to` (a
/// temp-queue rewritten to its real queue).
pub fn message_properties(
    headers: &Headers,
    reply_to: Option<&ShortStr>,
) -> Result<BasicProperties, Failure> {
    let short = |name: &str| headers.get_bytes(name).map(ShortStr);
    let persistent = headers.boolean("persistent") == Some(true);
    let priority = match headers.get("priority") {
        None => None,
        Some(v) => match parse_integer(v) {
            Ok(p @ 0..=255) => Some(p as u8),
            _ => return Err(Failure::processing()),
        },
    };
    let timestamp = match headers.get("timestamp") {
        None => None,
        Some(v) => match parse_integer(v) {
            Ok(t) if t >= 0 => Some(t as u64),
            _ => return Err(Failure::processing()),
        },
    };
    // Names and values are slices of the frame's header buffer (no copy). The
    // first occurrence of a name wins; RabbitMQ's parser keeps headers
    // newest-first, and its table lists them so.
    let mut user: Vec<(ShortStr, FieldValue)> = Vec::with_capacity(headers.len());
    for (n, v) in headers.iter_bytes() {
        if NOT_USER_HEADERS.contains(&&n[..]) || user.iter().any(|(k, _)| k.0 == n) {
            continue;
        }
        user.push((ShortStr(n), FieldValue::LongStr(v)));
    }
    user.reverse();
    Ok(BasicProperties {
        content_type: short("content-type"),
        content_encoding: short("content-encoding"),
        headers: Some(FieldTable(user)),
        delivery_mode: persistent.then_some(2),
        priority,
        correlation_id: short("correlation-id"),
        reply_to: match reply_to {
            Some(r) => Some(r.clone()),
            None => short("reply-to"),
        },
        expiration: short("expiration"),
        message_id: short("amqp-message-id"),
        timestamp,
        kind: short("type"),
        user_id: short("user-id"),
        app_id: short("app-id"),
        cluster_id: None,
    })
}

/// Calls `put(name, value)` for each header a MESSAGE carries for these
/// properties, in RabbitMQ's order. `scratch` is reused for values that need
/// formatting.
pub fn message_headers(
    props: &BasicProperties,
    scratch: &mut Vec<u8>,
    mut put: impl FnMut(&[u8], &[u8]),
) {
    if let Some(h) = &props.headers {
        for (k, v) in h.iter() {
            match v {
                FieldValue::LongStr(s) => put(k.as_bytes(), s),
                FieldValue::I32(n) => decimal(k.as_bytes(), *n as i128, scratch, &mut put),
                FieldValue::I64(n) => decimal(k.as_bytes(), *n as i128, scratch, &mut put),
                _ => {}
            }
        }
    }
    let s = |name: &[u8], v: &Option<ShortStr>, put: &mut dyn FnMut(&[u8], &[u8])| {
        if let Some(v) = v {
            put(name, v.as_bytes());
        }
    };
    s(b"app-id", &props.app_id, &mut put);
    s(b"user-id", &props.user_id, &mut put);
    s(b"type", &props.kind, &mut put);
    if let Some(t) = props.timestamp {
        decimal(b"timestamp", t as i128, scratch, &mut put);
    }
    s(b"amqp-message-id", &props.message_id, &mut put);
    s(b"expiration", &props.expiration, &mut put);
    if let Some(r) = &props.reply_to {
        if destination::is_destination(r.as_bytes()) {
            put(b"reply-to", r.as_bytes());
        } else {
            scratch.clear();
            scratch.extend_from_slice(b"/reply-queue/");
            scratch.extend_from_slice(r.as_bytes());
            put(b"reply-to", scratch);
        }
    }
    s(b"correlation-id", &props.correlation_id, &mut put);
    if let Some(p) = props.priority {
        decimal(b"priority", p as i128, scratch, &mut put);
    }
    match props.delivery_mode {
        Some(2) => put(b"persistent", b"true"),
        Some(m) => decimal(b"persistent", m as i128, scratch, &mut put),
        None => {}
    }
    s(b"content-encoding", &props.content_encoding, &mut put);
    s(b"content-type", &props.content_type, &mut put);
}

fn decimal(name: &[u8], n: i128, scratch: &mut Vec<u8>, put: &mut impl FnMut(&[u8], &[u8])) {
    use std::io::Write;
    scratch.clear();
    let _ = write!(scratch, "{n}");
    put(name, scratch);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::from_pairs(pairs.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    fn rendered(p: &BasicProperties) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        message_headers(p, &mut scratch, |n, v| {
            out.push((
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            ))
        });
        out
    }

    #[test]
    fn send_headers_become_properties() {
        let h = headers(&[
            ("destination", "/queue/q"),
            ("persistent", "true"),
            ("content-type", "text/plain"),
            ("foo", "bar"),
            ("reply-to", "/queue/rq"),
            ("priority", "3"),
            ("receipt", "r1"),
            ("foo", "second"),
        ]);
        let p = message_properties(&h, None).expect("valid");
        assert_eq!(p.delivery_mode, Some(2));
        assert_eq!(p.priority, Some(3));
        assert_eq!(
            p.content_type.as_ref().map(|s| s.as_bytes()),
            Some(&b"text/plain"[..])
        );
        let table = p.headers.as_ref().expect("headers");
        let keys: Vec<_> = table.iter().map(|(k, _)| k.to_string()).collect();
        assert_eq!(keys, ["receipt", "foo"]);
        assert_eq!(table.get("foo"), Some(&FieldValue::string("bar")));
        // The same order RabbitMQ 3.10 sends a MESSAGE in.
        let names: Vec<_> = rendered(&p).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "receipt",
                "foo",
                "reply-to",
                "priority",
                "persistent",
                "content-type"
            ]
        );
    }

    #[test]
    fn bad_integers_are_processing_errors() {
        assert!(message_properties(&headers(&[("priority", "x")]), None).is_err());
        assert!(message_properties(&headers(&[("priority", "300")]), None).is_err());
        assert!(message_properties(&headers(&[("timestamp", "-1")]), None).is_err());
        let p = message_properties(&headers(&[("timestamp", " 42 ")]), None).expect("ok");
        assert_eq!(p.timestamp, Some(42));
    }

    #[test]
    fn amqp_properties_render_as_rabbitmq() {
        let mut t = FieldTable::new();
        t.insert("s", FieldValue::string("v"));
        t.insert("i", FieldValue::I32(-7));
        t.insert("l", FieldValue::I64(1 << 40));
        t.insert("b", FieldValue::Bool(true));
        let p = BasicProperties {
            headers: Some(t),
            delivery_mode: Some(1),
            reply_to: Some(ShortStr::from("amq.gen-abc")),
            timestamp: Some(1700000000),
            message_id: Some(ShortStr::from("m1")),
            ..Default::default()
        };
        assert_eq!(
            rendered(&p),
            [
                ("s", "v"),
                ("i", "-7"),
                ("l", "1099511627776"),
                ("timestamp", "1700000000"),
                ("amqp-message-id", "m1"),
                ("reply-to", "/reply-queue/amq.gen-abc"),
                ("persistent", "1"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
    }
}
