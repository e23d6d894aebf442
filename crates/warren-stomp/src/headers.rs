//! Frame headers: byte strings kept in one shared buffer.
//!
//! A decoded frame's header section is split off the read buffer as one [`Bytes`]
//! (unescaped in place, which only ever shrinks it), and each header is a pair of
//! offsets into it. So decoding allocates one `Vec` of offsets per frame and nothing
//! per header, and a value can be handed on as a zero-copy `Bytes` ([`Headers::get_bytes`]).
//! Outgoing headers are built the same way with [`HeadersBuilder`], which appends into
//! one growing buffer.
//!
//! All headers are kept, in arrival order, duplicates included. Lookups return the
//! *first* occurrence: RabbitMQ's parser (`insert_header`) drops every repeat of a
//! name, and STOMP 1.2 says only the first is significant.

use bytes::{Bytes, BytesMut};
use std::ops::Range;

/// Offsets of one header's name and value in [`Headers`]' buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) name: (usize, usize),
    pub(crate) value: (usize, usize),
}

impl Entry {
    fn name(&self) -> Range<usize> {
        self.name.0..self.name.1
    }
    fn value(&self) -> Range<usize> {
        self.value.0..self.value.1
    }
}

/// The headers of a frame, in order, unescaped.
#[derive(Clone, Default)]
pub struct Headers {
    raw: Bytes,
    entries: Vec<Entry>,
}

impl Headers {
    /// No headers.
    pub fn new() -> Headers {
        Headers::default()
    }

    /// Headers from `(name, value)` pairs (copied into one buffer).
    pub fn from_pairs<N, V>(pairs: impl IntoIterator<Item = (N, V)>) -> Headers
    where
        N: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut b = HeadersBuilder::new();
        for (n, v) in pairs {
            b.push(n.as_ref(), v.as_ref());
        }
        b.build()
    }

    pub(crate) fn from_parts(raw: Bytes, entries: Vec<Entry>) -> Headers {
        debug_assert!(entries
            .iter()
            .all(|e| e.name.1 <= raw.len() && e.value.1 <= raw.len()));
        Headers { raw, entries }
    }

    /// How many headers, duplicates included.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of the first header called `name`.
    pub fn get(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        let name = name.as_ref();
        self.find(name).map(|e| &self.raw[e.value()])
    }

    /// The value of the first header called `name`, as a zero-copy slice of the frame.
    pub fn get_bytes(&self, name: impl AsRef<[u8]>) -> Option<Bytes> {
        let name = name.as_ref();
        self.find(name).map(|e| self.raw.slice(e.value()))
    }

    /// Whether a header called `name` is present.
    pub fn contains(&self, name: impl AsRef<[u8]>) -> bool {
        self.find(name.as_ref()).is_some()
    }

    /// Every value of headers called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.entries
            .iter()
            .filter(move |e| &self.raw[e.name()] == name)
            .map(|e| &self.raw[e.value()])
    }

    /// All headers in order, duplicates included.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.entries
            .iter()
            .map(|e| (&self.raw[e.name()], &self.raw[e.value()]))
    }

    /// All headers in order as zero-copy `Bytes` pairs.
    pub fn iter_bytes(&self) -> impl Iterator<Item = (Bytes, Bytes)> + '_ {
        self.entries
            .iter()
            .map(|e| (self.raw.slice(e.name()), self.raw.slice(e.value())))
    }

    /// The headers as RabbitMQ's processor sees them: each name once, with its first
    /// value, in order of first appearance.
    ///
    /// Quadratic in the number of headers, which the decoder's `max_headers` bounds.
    pub fn first_occurrences(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.entries.iter().enumerate().filter_map(move |(i, e)| {
            let name = &self.raw[e.name()];
            let seen = self.entries[..i]
                .iter()
                .any(|p| &self.raw[p.name()] == name);
            (!seen).then(|| (name, &self.raw[e.value()]))
        })
    }

    fn find(&self, name: &[u8]) -> Option<&Entry> {
        self.entries.iter().find(|e| &self.raw[e.name()] == name)
    }

    /// Drops leading spaces from every value: what RabbitMQ does to every frame of a
    /// connection that negotiated STOMP 1.0 (`rabbit_stomp_util:trim_headers/1`, the
    /// 1.0 "frame transformer"; only `' '`, not tabs, and only on the left).
    ///
    /// It is the adapter's call, not the decoder's, because of CONNECT: RabbitMQ
    /// negotiates the version from the *untrimmed* `accept-version`, then trims the
    /// CONNECT frame with the negotiated version's transformer before reading
    /// `login`, `passcode`, `host` and `heart-beat`; every later frame of a 1.0
    /// connection is trimmed before it is handled.
    pub fn trim_leading_spaces(&mut self) {
        for e in &mut self.entries {
            while e.value.0 < e.value.1 && self.raw[e.value.0] == b' ' {
                e.value.0 += 1;
            }
        }
    }

    /// `content-length` as RabbitMQ reads it: `None` if absent, else the value parsed
    /// with [`parse_integer`] (negative values are an error).
    pub fn content_length(&self) -> Option<Result<u64, IntegerError>> {
        self.get(names::CONTENT_LENGTH)
            .map(|v| match parse_integer(v) {
                Ok(n) if n < 0 => Err(IntegerError::Invalid),
                Ok(n) => Ok(n as u64),
                Err(e) => Err(e),
            })
    }

    /// An integer header as RabbitMQ's `integer_header/2` reads it.
    pub fn integer(&self, name: impl AsRef<[u8]>) -> Option<Result<i64, IntegerError>> {
        self.get(name).map(parse_integer)
    }

    /// A boolean header as RabbitMQ's `boolean_header/2` reads it: `true`/`True` and
    /// `false`/`False`; any other value counts as absent.
    pub fn boolean(&self, name: impl AsRef<[u8]>) -> Option<bool> {
        match self.get(name)? {
            b"true" | b"True" => Some(true),
            b"false" | b"False" => Some(false),
            _ => None,
        }
    }

    pub fn receipt(&self) -> Option<&[u8]> {
        self.get(names::RECEIPT)
    }
    pub fn destination(&self) -> Option<&[u8]> {
        self.get(names::DESTINATION)
    }
    pub fn id(&self) -> Option<&[u8]> {
        self.get(names::ID)
    }
    pub fn ack(&self) -> Option<&[u8]> {
        self.get(names::ACK)
    }
    pub fn transaction(&self) -> Option<&[u8]> {
        self.get(names::TRANSACTION)
    }
    pub fn subscription(&self) -> Option<&[u8]> {
        self.get(names::SUBSCRIPTION)
    }
    pub fn message_id(&self) -> Option<&[u8]> {
        self.get(names::MESSAGE_ID)
    }
    pub fn content_type(&self) -> Option<&[u8]> {
        self.get(names::CONTENT_TYPE)
    }
    pub fn accept_version(&self) -> Option<&[u8]> {
        self.get(names::ACCEPT_VERSION)
    }
    pub fn heart_beat(&self) -> Option<&[u8]> {
        self.get(names::HEART_BEAT)
    }
    pub fn host(&self) -> Option<&[u8]> {
        self.get(names::HOST)
    }
    pub fn login(&self) -> Option<&[u8]> {
        self.get(names::LOGIN)
    }
    pub fn passcode(&self) -> Option<&[u8]> {
        self.get(names::PASSCODE)
    }
}

impl PartialEq for Headers {
    /// Same headers in the same order (how they are stored does not matter).
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl Eq for Headers {}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            }))
            .finish()
    }
}

/// Builds [`Headers`] by appending into one buffer.
#[derive(Debug, Default)]
pub struct HeadersBuilder {
    raw: BytesMut,
    entries: Vec<Entry>,
}

impl HeadersBuilder {
    pub fn new() -> HeadersBuilder {
        HeadersBuilder::default()
    }

    /// Room for `headers` headers totalling `bytes` octets of names and values.
    pub fn with_capacity(headers: usize, bytes: usize) -> HeadersBuilder {
        HeadersBuilder {
            raw: BytesMut::with_capacity(bytes),
            entries: Vec::with_capacity(headers),
        }
    }

    /// Appends a header (after any with the same name: lookups still find the first).
    pub fn push(&mut self, name: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> &mut Self {
        let (name, value) = (name.as_ref(), value.as_ref());
        let n0 = self.raw.len();
        self.raw.extend_from_slice(name);
        let v0 = self.raw.len();
        self.raw.extend_from_slice(value);
        self.entries.push(Entry {
            name: (n0, v0),
            value: (v0, self.raw.len()),
        });
        self
    }

    pub fn build(self) -> Headers {
        Headers {
            raw: self.raw.freeze(),
            entries: self.entries,
        }
    }
}

/// Why an integer header did not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntegerError {
    /// Not an integer (RabbitMQ's `list_to_integer` raises `badarg`).
    Invalid,
    /// An integer, but too big for 64 bits (RabbitMQ has bignums and would accept it).
    Overflow,
}

/// Parses an integer the way RabbitMQ's `integer_header/2` does:
/// `list_to_integer(string:strip(Value))`, i.e. spaces (only `' '`) stripped on both
/// sides, then an optional `+` or `-` and one or more ASCII digits, nothing else.
pub fn parse_integer(value: &[u8]) -> Result<i64, IntegerError> {
    let start = value.iter().position(|&b| b != b' ').unwrap_or(value.len());
    let end = value
        .iter()
        .rposition(|&b| b != b' ')
        .map_or(start, |p| p + 1);
    let s = &value[start..end];
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(IntegerError::Invalid);
    }
    let mut n: i64 = 0;
    for &d in digits {
        let d = i64::from(d - b'0');
        n = n
            .checked_mul(10)
            .and_then(|n| {
                if negative {
                    n.checked_sub(d)
                } else {
                    n.checked_add(d)
                }
            })
            .ok_or(IntegerError::Overflow)?;
    }
    Ok(n)
}

/// Header names the protocol defines (RabbitMQ's `rabbit_stomp_headers.hrl`).
pub mod names {
    pub const ACCEPT_VERSION: &str = "accept-version";
    pub const ACK: &str = "ack";
    pub const CONTENT_LENGTH: &str = "content-length";
    pub const CONTENT_TYPE: &str = "content-type";
    pub const DESTINATION: &str = "destination";
    pub const HEART_BEAT: &str = "heart-beat";
    pub const HOST: &str = "host";
    pub const ID: &str = "id";
    pub const LOGIN: &str = "login";
    pub const MESSAGE: &str = "message";
    pub const MESSAGE_ID: &str = "message-id";
    pub const PASSCODE: &str = "passcode";
    pub const RECEIPT: &str = "receipt";
    pub const RECEIPT_ID: &str = "receipt-id";
    pub const SERVER: &str = "server";
    pub const SESSION: &str = "session";
    pub const SUBSCRIPTION: &str = "subscription";
    pub const TRANSACTION: &str = "transaction";
    pub const VERSION: &str = "version";
}
