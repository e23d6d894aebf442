//! Message properties (AMQP 0-9-1 `basic` class content-header properties).
//!
//! A message carries its properties as the raw bytes a publisher sent (flags word and
//! property list). The broker forwards those bytes untouched to consumers, and only
//! decodes them when a feature needs a value: the headers exchange, TTL, priority,
//! persistence. [`BasicProperties`] is that decoded view.

use crate::shortstr::ShortStr;
use crate::table::{decode_shortstr, encode_shortstr, DecodeError, FieldTable};
use bytes::{Buf, BufMut, Bytes, BytesMut};

const CONTENT_TYPE: u16 = 1 << 15;
const CONTENT_ENCODING: u16 = 1 << 14;
const HEADERS: u16 = 1 << 13;
const DELIVERY_MODE: u16 = 1 << 12;
const PRIORITY: u16 = 1 << 11;
const CORRELATION_ID: u16 = 1 << 10;
const REPLY_TO: u16 = 1 << 9;
const EXPIRATION: u16 = 1 << 8;
const MESSAGE_ID: u16 = 1 << 7;
const TIMESTAMP: u16 = 1 << 6;
const TYPE: u16 = 1 << 5;
const USER_ID: u16 = 1 << 4;
const APP_ID: u16 = 1 << 3;
const CLUSTER_ID: u16 = 1 << 2;
/// Bit 0 of a flags word says another flags word follows.
const CONTINUATION: u16 = 1;

/// The decoded basic properties. `None` means "absent" (flag bit clear).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BasicProperties {
    pub content_type: Option<ShortStr>,
    pub content_encoding: Option<ShortStr>,
    pub headers: Option<FieldTable>,
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr>,
    pub reply_to: Option<ShortStr>,
    pub expiration: Option<ShortStr>,
    pub message_id: Option<ShortStr>,
    pub timestamp: Option<u64>,
    pub kind: Option<ShortStr>,
    pub user_id: Option<ShortStr>,
    pub app_id: Option<ShortStr>,
    pub cluster_id: Option<ShortStr>,
}

impl BasicProperties {
    /// Decode from raw content-header property bytes (starting at the flags word).
    pub fn decode(raw: &Bytes) -> Result<BasicProperties, DecodeError> {
        let mut buf = raw.clone();
        let mut flags_words = Vec::with_capacity(1);
        loop {
            if buf.remaining() < 2 {
                return Err(DecodeError("truncated property flags"));
            }
            let w = buf.get_u16();
            flags_words.push(w);
            if w & CONTINUATION == 0 {
                break;
            }
        }
        let flags = flags_words[0];
        let mut p = BasicProperties::default();
        let short = |buf: &mut Bytes, bit: u16| -> Result<Option<ShortStr>, DecodeError> {
            if flags & bit != 0 {
                decode_shortstr(buf).map(Some)
            } else {
                Ok(None)
            }
        };
        p.content_type = short(&mut buf, CONTENT_TYPE)?;
        p.content_encoding = short(&mut buf, CONTENT_ENCODING)?;
        if flags & HEADERS != 0 {
            p.headers = Some(FieldTable::decode(&mut buf)?);
        }
        if flags & DELIVERY_MODE != 0 {
            p.delivery_mode = Some(take_u8(&mut buf)?);
        }
        if flags & PRIORITY != 0 {
            p.priority = Some(take_u8(&mut buf)?);
        }
        p.correlation_id = short(&mut buf, CORRELATION_ID)?;
        p.reply_to = short(&mut buf, REPLY_TO)?;
        p.expiration = short(&mut buf, EXPIRATION)?;
        p.message_id = short(&mut buf, MESSAGE_ID)?;
        if flags & TIMESTAMP != 0 {
            if buf.remaining() < 8 {
                return Err(DecodeError("truncated timestamp"));
            }
            p.timestamp = Some(buf.get_u64());
        }
        p.kind = short(&mut buf, TYPE)?;
        p.user_id = short(&mut buf, USER_ID)?;
        p.app_id = short(&mut buf, APP_ID)?;
        p.cluster_id = short(&mut buf, CLUSTER_ID)?;
        Ok(p)
    }

    /// Encode to raw content-header property bytes (flags word first).
    pub fn encode(&self) -> Bytes {
        let mut flags = 0u16;
        let mut body = BytesMut::with_capacity(64);
        let short = |flags: &mut u16, bit: u16, v: &Option<ShortStr>, body: &mut BytesMut| {
            if let Some(s) = v {
                *flags |= bit;
                encode_shortstr(body, s.as_bytes());
            }
        };
        short(&mut flags, CONTENT_TYPE, &self.content_type, &mut body);
        short(
            &mut flags,
            CONTENT_ENCODING,
            &self.content_encoding,
            &mut body,
        );
        if let Some(h) = &self.headers {
            flags |= HEADERS;
            h.encode(&mut body);
        }
        if let Some(d) = self.delivery_mode {
            flags |= DELIVERY_MODE;
            body.put_u8(d);
        }
        if let Some(pr) = self.priority {
            flags |= PRIORITY;
            body.put_u8(pr);
        }
        short(&mut flags, CORRELATION_ID, &self.correlation_id, &mut body);
        short(&mut flags, REPLY_TO, &self.reply_to, &mut body);
        short(&mut flags, EXPIRATION, &self.expiration, &mut body);
        short(&mut flags, MESSAGE_ID, &self.message_id, &mut body);
        if let Some(t) = self.timestamp {
            flags |= TIMESTAMP;
            body.put_u64(t);
        }
        short(&mut flags, TYPE, &self.kind, &mut body);
        short(&mut flags, USER_ID, &self.user_id, &mut body);
        short(&mut flags, APP_ID, &self.app_id, &mut body);
        short(&mut flags, CLUSTER_ID, &self.cluster_id, &mut body);
        let mut out = BytesMut::with_capacity(2 + body.len());
        out.put_u16(flags);
        out.put_slice(&body);
        out.freeze()
    }
}

fn take_u8(buf: &mut Bytes) -> Result<u8, DecodeError> {
    if !buf.has_remaining() {
        return Err(DecodeError("truncated property"));
    }
    Ok(buf.get_u8())
}

/// Cheap peeks at single properties without decoding the whole list. The publish
/// path uses these: most messages need only `delivery_mode` (and maybe `expiration`
/// or `priority`), and skipping over the earlier fields is cheaper than decoding.
pub struct RawProperties;

impl RawProperties {
    /// The flags word (0 if the property bytes are empty).
    pub fn flags(raw: &[u8]) -> u16 {
        if raw.len() < 2 {
            0
        } else {
            u16::from_be_bytes([raw[0], raw[1]])
        }
    }

    /// delivery_mode, if present. Returns `None` for malformed input too.
    pub fn delivery_mode(raw: &Bytes) -> Option<u8> {
        let flags = Self::flags(raw);
        if flags & DELIVERY_MODE == 0 {
            return None;
        }
        if flags & (CONTENT_TYPE | CONTENT_ENCODING | HEADERS) == 0 && flags & CONTINUATION == 0 {
            return raw.get(2).copied();
        }
        BasicProperties::decode(raw).ok()?.delivery_mode
    }

    /// Whether the message has any of the properties that the broker acts on beyond
    /// persistence (headers, priority, expiration): if not, routing never needs to
    /// decode them.
    pub fn has_headers(raw: &[u8]) -> bool {
        Self::flags(raw) & HEADERS != 0
    }

    pub fn has_priority(raw: &[u8]) -> bool {
        Self::flags(raw) & PRIORITY != 0
    }

    pub fn has_reply_to(raw: &[u8]) -> bool {
        Self::flags(raw) & REPLY_TO != 0
    }

    pub fn has_user_id(raw: &[u8]) -> bool {
        Self::flags(raw) & USER_ID != 0
    }

    pub fn has_expiration(raw: &[u8]) -> bool {
        Self::flags(raw) & EXPIRATION != 0
    }

    /// The properties with a signed 64-bit (`l`) header appended, as a stream
    /// adds `x-stream-offset` to each message: one copy of the bytes, no
    /// decode of the other properties. Malformed input is returned unchanged.
    pub fn with_long_header(raw: &[u8], key: &str, value: i64) -> Bytes {
        let mut entry = Vec::with_capacity(key.len() + 10);
        entry.push(key.len() as u8);
        entry.extend_from_slice(key.as_bytes());
        entry.push(b'l');
        entry.extend_from_slice(&value.to_be_bytes());
        let flags = Self::flags(raw);
        // Skip the flags words, then content-type and content-encoding.
        let mut at = 0;
        loop {
            if raw.len() < at + 2 {
                return Bytes::copy_from_slice(raw);
            }
            let w = u16::from_be_bytes([raw[at], raw[at + 1]]);
            at += 2;
            if w & CONTINUATION == 0 {
                break;
            }
        }
        for bit in [CONTENT_TYPE, CONTENT_ENCODING] {
            if flags & bit != 0 {
                match raw.get(at) {
                    Some(&n) => at += 1 + n as usize,
                    None => return Bytes::copy_from_slice(raw),
                }
            }
        }
        if at > raw.len() {
            return Bytes::copy_from_slice(raw);
        }
        let mut out = BytesMut::with_capacity(raw.len() + entry.len() + 4);
        if flags & HEADERS != 0 {
            let Some(len) = raw
                .get(at..at + 4)
                .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
            else {
                return Bytes::copy_from_slice(raw);
            };
            let end = at + 4 + len;
            if end > raw.len() {
                return Bytes::copy_from_slice(raw);
            }
            out.put_slice(&raw[..at]);
            out.put_u32((len + entry.len()) as u32);
            out.put_slice(&raw[at + 4..end]);
            out.put_slice(&entry);
            out.put_slice(&raw[end..]);
        } else {
            out.put_u16(flags | HEADERS);
            out.put_slice(&raw[2..at]);
            out.put_u32(entry.len() as u32);
            out.put_slice(&entry);
            out.put_slice(&raw[at..]);
        }
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::FieldValue;

    #[test]
    fn long_header_added_with_or_without_headers() {
        let mut headers = FieldTable::new();
        headers.insert("a", FieldValue::I32(1));
        for p in [
            BasicProperties {
                content_type: Some("t".into()),
                headers: Some(headers),
                delivery_mode: Some(2),
                ..Default::default()
            },
            BasicProperties {
                content_type: Some("t".into()),
                priority: Some(3),
                ..Default::default()
            },
            BasicProperties::default(),
        ] {
            let raw = RawProperties::with_long_header(&p.encode(), "x-stream-offset", 7);
            let d = BasicProperties::decode(&raw).expect("decodes");
            let h = d.headers.clone().expect("headers");
            assert_eq!(h.get("x-stream-offset"), Some(&FieldValue::I64(7)));
            assert_eq!((d.content_type, d.priority), (p.content_type, p.priority));
            assert_eq!(h.len(), p.headers.map_or(0, |h| h.len()) + 1);
        }
    }

    #[test]
    fn round_trip_all_properties() {
        let mut headers = FieldTable::new();
        headers.insert("x", FieldValue::I32(1));
        let p = BasicProperties {
            content_type: Some("text/plain".into()),
            content_encoding: Some("utf-8".into()),
            headers: Some(headers),
            delivery_mode: Some(2),
            priority: Some(5),
            correlation_id: Some("c".into()),
            reply_to: Some("r".into()),
            expiration: Some("1000".into()),
            message_id: Some("m".into()),
            timestamp: Some(42),
            kind: Some("t".into()),
            user_id: Some("guest".into()),
            app_id: Some("app".into()),
            cluster_id: Some("cl".into()),
        };
        let raw = p.encode();
        assert_eq!(BasicProperties::decode(&raw).expect("decodes"), p);
        assert_eq!(RawProperties::delivery_mode(&raw), Some(2));
        let only_dm = BasicProperties {
            delivery_mode: Some(2),
            ..Default::default()
        }
        .encode();
        assert_eq!(RawProperties::delivery_mode(&only_dm), Some(2));
        assert_eq!(
            BasicProperties::decode(&only_dm)
                .expect("decodes")
                .delivery_mode,
            Some(2)
        );
    }
}
