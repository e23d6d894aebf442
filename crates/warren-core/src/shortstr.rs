//! `ShortStr`: the name type used for exchanges, queues, routing keys and tags.
//!
//! AMQP short strings are up to 255 bytes and are not required to be UTF-8, so we
//! keep them as raw bytes. Backing them with [`Bytes`] lets a routing key or exchange
//! name decoded from a frame be shared with the queue and the outgoing delivery
//! without copying.

use bytes::Bytes;
use std::borrow::Borrow;
use std::fmt;

/// An immutable, cheaply clonable byte string of at most 255 bytes (not enforced
/// here; the codec enforces it on the wire).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShortStr(pub Bytes);

impl ShortStr {
    /// The empty string (the default exchange's name).
    pub const fn empty() -> Self {
        ShortStr(Bytes::new())
    }

    /// A string from a static literal, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Lossy UTF-8 view, for logs and error texts.
    pub fn to_string_lossy(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.0)
    }

    pub fn starts_with(&self, prefix: &str) -> bool {
        self.0.starts_with(prefix.as_bytes())
    }
}

impl Borrow<[u8]> for ShortStr {
    fn borrow(&self) -> &[u8] {
        &self.0
    }
}

impl AsRef<[u8]> for ShortStr {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&str> for ShortStr {
    fn from(s: &str) -> Self {
        ShortStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ShortStr {
    fn from(s: String) -> Self {
        ShortStr(Bytes::from(s))
    }
}

impl From<Bytes> for ShortStr {
    fn from(b: Bytes) -> Self {
        ShortStr(b)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_lossy())
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string_lossy())
    }
}
