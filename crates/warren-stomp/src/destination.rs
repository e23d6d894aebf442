//! Destinations: what `destination` (and `reply-to`) headers name, parsed and
//! formatted exactly as RabbitMQ's `rabbit_routing_util` does.
//!
//! | destination | SEND publishes to | SUBSCRIBE consumes from |
//! |---|---|---|
//! | `/queue/Q` (or just `Q`) | default exchange, key `Q` | queue `Q`, declared (durable) |
//! | `/topic/K` | `amq.topic`, key `K` | a `stomp-subscription-…` queue bound to `amq.topic` with `K` |
//! | `/exchange/X[/K]` | `X`, key `K` (or empty) | a `stomp-subscription-…` queue bound to `X` with `K` |
//! | `/amq/queue/Q` | default exchange, key `Q` | queue `Q`, which must exist (never declared) |
//! | `/temp-queue/T` | only in `reply-to`: a private reply queue | not allowed |
//! | `/reply-queue/Q` | default exchange, key `Q` | queue `Q` (a reply queue) |
//!
//! Names are unescaped (`%2F` → `/`) after splitting on `/`, so `/topic/a%2Fb`
//! has key `a/b`. The reverse, for the `destination` header of a MESSAGE, is
//! [`format()`].

use bytes::Bytes;

/// A parsed destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    Queue(Bytes),
    Topic(Bytes),
    /// Exchange and optional routing key (pattern).
    Exchange(Bytes, Option<Bytes>),
    AmqQueue(Bytes),
    TempQueue(Bytes),
    ReplyQueue(Bytes),
}

/// Why a destination did not parse, with RabbitMQ's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// A known type with a malformed rest: `'CONTENT' is not a valid KIND destination`.
    Invalid {
        kind: &'static str,
        content: Vec<u8>,
    },
    /// No known prefix.
    Unknown,
}

/// The prefixes RabbitMQ lists in its "Unknown destination" error, in its order.
pub const ALL_PREFIXES: &str = "/temp-queue, /exchange, /topic, /queue, /amq/queue, /reply-queue/";

/// Prefixes that make a `reply-to` a destination already (others get `/reply-queue/`).
const DEST_PREFIXES: [&[u8]; 5] = [
    b"/exchange",
    b"/topic",
    b"/queue",
    b"/amq/queue",
    b"/reply-queue/",
];

#[derive(Clone, Copy)]
enum Kind {
    Exchange,
    Queue,
    Topic,
    TempQueue,
    AmqQueue,
    ReplyQueue,
}

impl Kind {
    /// As Erlang prints the atom (`~p`) in error texts.
    fn name(self) -> &'static str {
        match self {
            Kind::Exchange => "exchange",
            Kind::Queue => "queue",
            Kind::Topic => "topic",
            Kind::TempQueue => "temp_queue",
            Kind::AmqQueue => "amqqueue",
            Kind::ReplyQueue => "reply_queue",
        }
    }
}

/// Parses a destination header value. Names are slices of `dest` unless they
/// needed unescaping.
pub fn parse(dest: &Bytes) -> Result<Destination, ParseError> {
    let unescape = |s: &[u8]| unescape(dest, s);
    // `re:split(Dest, "/")`: every part, empty ones included.
    let parts: Vec<&[u8]> = dest.split(|&b| b == b'/').collect();
    match parts.as_slice() {
        [name] => Ok(Destination::Queue(unescape(name))),
        [b"", kind, rest @ ..] if matches!(*kind, b"exchange" | b"queue" | b"topic") => {
            let kind = match *kind {
                b"exchange" => Kind::Exchange,
                b"queue" => Kind::Queue,
                _ => Kind::Topic,
            };
            parse_rest(dest, kind, rest)
        }
        [b"", b"temp-queue", rest @ ..] => parse_rest(dest, Kind::TempQueue, rest),
        [b"", b"amq", b"queue", rest @ ..] => parse_rest(dest, Kind::AmqQueue, rest),
        [b"", b"reply-queue", _, ..] => {
            // Everything after the prefix is the name, slashes included.
            let name = &dest[b"/reply-queue/".len()..];
            parse_rest(dest, Kind::ReplyQueue, &[name])
        }
        _ => Err(ParseError::Unknown),
    }
}

fn parse_rest(dest: &Bytes, kind: Kind, rest: &[&[u8]]) -> Result<Destination, ParseError> {
    let unescape = |s: &[u8]| unescape(dest, s);
    let invalid = || ParseError::Invalid {
        kind: kind.name(),
        content: to_url(rest),
    };
    match (kind, rest) {
        (Kind::Exchange, [b"", ..]) => Err(invalid()),
        (Kind::Exchange, [name]) => Ok(Destination::Exchange(unescape(name), None)),
        (Kind::Exchange, [name, pattern]) => Ok(Destination::Exchange(
            unescape(name),
            Some(unescape(pattern)),
        )),
        (_, [name]) if !name.is_empty() => {
            let name = unescape(name);
            Ok(match kind {
                Kind::Queue => Destination::Queue(name),
                Kind::Topic => Destination::Topic(name),
                Kind::TempQueue => Destination::TempQueue(name),
                Kind::AmqQueue => Destination::AmqQueue(name),
                Kind::ReplyQueue => Destination::ReplyQueue(name),
                Kind::Exchange => unreachable!("handled above"),
            })
        }
        _ => Err(invalid()),
    }
}

/// `""` for no parts, else `/` before each part.
fn to_url(rest: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in rest {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    out
}

/// `%2F` → `/` (only that escape, only upper case, as RabbitMQ). `s` is a part
/// of `whole`, returned as a slice of it when there is nothing to unescape.
fn unescape(whole: &Bytes, s: &[u8]) -> Bytes {
    if !s.windows(3).any(|w| w == b"%2F") {
        return whole.slice_ref(s);
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i..].starts_with(b"%2F") {
            out.push(b'/');
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Bytes::from(out)
}

impl Destination {
    /// [`Destination::routing`] as shared bytes (no copy).
    pub fn routing_bytes(&self) -> (Bytes, Bytes) {
        match self {
            Destination::Queue(n)
            | Destination::AmqQueue(n)
            | Destination::ReplyQueue(n)
            | Destination::TempQueue(n) => (Bytes::new(), n.clone()),
            Destination::Topic(k) => (Bytes::from_static(b"amq.topic"), k.clone()),
            Destination::Exchange(x, k) => (x.clone(), k.clone().unwrap_or_default()),
        }
    }

    /// The exchange and routing key a SEND to this destination publishes with
    /// (`rabbit_routing_util:parse_routing/1`).
    pub fn routing(&self) -> (&[u8], &[u8]) {
        match self {
            Destination::Queue(n)
            | Destination::AmqQueue(n)
            | Destination::ReplyQueue(n)
            | Destination::TempQueue(n) => (b"", n),
            Destination::Topic(k) => (b"amq.topic", k),
            Destination::Exchange(x, k) => (x, k.as_deref().unwrap_or(b"")),
        }
    }
}

/// Whether a `reply-to` value already names a destination (else RabbitMQ shows it
/// to STOMP clients as `/reply-queue/VALUE`).
pub fn is_destination(value: &[u8]) -> bool {
    DEST_PREFIXES.iter().any(|p| value.starts_with(p))
}

/// Appends the destination a message published to `exchange` with `key` is shown
/// with (`rabbit_stomp_util:format_destination/2`).
pub fn format(exchange: &[u8], key: &[u8], out: &mut Vec<u8>) {
    match (exchange, key) {
        (b"", _) => {
            out.extend_from_slice(b"/queue/");
            escape(key, out);
        }
        (b"amq.topic", _) => {
            out.extend_from_slice(b"/topic/");
            escape(key, out);
        }
        (_, b"") => {
            out.extend_from_slice(b"/exchange/");
            escape(exchange, out);
        }
        _ => {
            out.extend_from_slice(b"/exchange/");
            escape(exchange, out);
            out.push(b'/');
            escape(key, out);
        }
    }
}

/// `/` → `%2F`, `%` → `%25`, and octets outside 32..=127 as `%XX`.
fn escape(s: &[u8], out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s {
        if b == b'/' || b == b'%' || !(32..=127).contains(&b) {
            out.extend_from_slice(&[b'%', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
        } else {
            out.push(b);
        }
    }
}

/// The `message` and detail of the ERROR for a destination that did not parse.
pub fn parse_error_text(dest: &[u8], e: &ParseError) -> (&'static str, String) {
    match e {
        ParseError::Invalid { kind, content } => (
            "Invalid destination",
            format!(
                "'{}' is not a valid {} destination\n",
                String::from_utf8_lossy(content),
                kind
            ),
        ),
        ParseError::Unknown => (
            "Unknown destination",
            format!(
                "'{}' is not a valid destination.\nValid destination types are: {}.\n",
                String::from_utf8_lossy(dest),
                ALL_PREFIXES
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn invalid(kind: &'static str, content: &str) -> Result<Destination, ParseError> {
        Err(ParseError::Invalid {
            kind,
            content: content.as_bytes().to_vec(),
        })
    }

    fn parse(s: &[u8]) -> Result<Destination, ParseError> {
        super::parse(&Bytes::copy_from_slice(s))
    }

    #[test]
    fn parses_like_rabbitmq() {
        assert_eq!(parse(b"/queue/q"), Ok(Destination::Queue(b("q"))));
        assert_eq!(parse(b"plain"), Ok(Destination::Queue(b("plain"))));
        assert_eq!(parse(b""), Ok(Destination::Queue(b(""))));
        assert_eq!(parse(b"/topic/a%2Fb"), Ok(Destination::Topic(b("a/b"))));
        assert_eq!(
            parse(b"/exchange/amq.direct/k"),
            Ok(Destination::Exchange(b("amq.direct"), Some(b("k"))))
        );
        assert_eq!(
            parse(b"/exchange/x"),
            Ok(Destination::Exchange(b("x"), None))
        );
        assert_eq!(parse(b"/amq/queue/q"), Ok(Destination::AmqQueue(b("q"))));
        assert_eq!(parse(b"/temp-queue/t"), Ok(Destination::TempQueue(b("t"))));
        assert_eq!(
            parse(b"/reply-queue/a/b"),
            Ok(Destination::ReplyQueue(b("a/b")))
        );
        assert_eq!(parse(b"/queue"), invalid("queue", ""));
        assert_eq!(parse(b"/queue/bah/baz"), invalid("queue", "/bah/baz"));
        assert_eq!(parse(b"/topic"), invalid("topic", ""));
        assert_eq!(parse(b"/topic/"), invalid("topic", "/"));
        assert_eq!(parse(b"/exchange"), invalid("exchange", ""));
        assert_eq!(parse(b"/exchange//foo"), invalid("exchange", "//foo"));
        assert_eq!(
            parse(b"/exchange/bah/baz/boo"),
            invalid("exchange", "/bah/baz/boo")
        );
        assert_eq!(parse(b"/reply-queue/"), invalid("reply_queue", "/"));
        assert_eq!(parse(b"/amq/queue"), invalid("amqqueue", ""));
        assert_eq!(parse(b"/something/else"), Err(ParseError::Unknown));
        assert_eq!(parse(b"/"), Err(ParseError::Unknown));
    }

    #[test]
    fn formats_like_rabbitmq() {
        let f = |x: &str, k: &str| {
            let mut out = Vec::new();
            format(x.as_bytes(), k.as_bytes(), &mut out);
            String::from_utf8(out).expect("ascii")
        };
        assert_eq!(f("", "q"), "/queue/q");
        assert_eq!(f("amq.topic", "a.b"), "/topic/a.b");
        assert_eq!(f("x", ""), "/exchange/x");
        assert_eq!(f("x", "a/b%c"), "/exchange/x/a%2Fb%25c");
        assert_eq!(f("", "\u{e9}"), "/queue/%C3%A9");
    }

    #[test]
    fn reply_to_prefixes() {
        assert!(is_destination(b"/queue/x"));
        assert!(is_destination(b"/reply-queue/x"));
        assert!(!is_destination(b"amq.gen-x"));
        assert!(!is_destination(b"/reply-queue"));
    }
}
