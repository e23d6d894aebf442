//! Field tables: the typed key/value maps carried in message headers and in the
//! `arguments` of declares, binds and consumes.
//!
//! The value model (and its binary encoding) is AMQP 0-9-1's, with RabbitMQ's errata
//! type tags, because it is also the broker's internal message format: STOMP and MQTT
//! headers are mapped into it. Order and exact types are preserved so that a table
//! that is decoded and encoded again comes out byte-for-byte the same.

use crate::shortstr::ShortStr;
use bytes::{Buf, BufMut, Bytes};

/// A decoding error: the input ended early or had an unknown type tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub &'static str);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for DecodeError {}

/// One typed value. Tags follow RabbitMQ's errata table.
#[derive(Debug, Clone, PartialEq)]
pub enum FieldValue {
    /// `t`
    Bool(bool),
    /// `b`
    I8(i8),
    /// `B`
    U8(u8),
    /// `s`
    I16(i16),
    /// `u`
    U16(u16),
    /// `I`
    I32(i32),
    /// `i`
    U32(u32),
    /// `l`
    I64(i64),
    /// `f`
    F32(f32),
    /// `d`
    F64(f64),
    /// `D`: scale, unscaled value
    Decimal(u8, u32),
    /// `S`
    LongStr(Bytes),
    /// `x`
    Bytes(Bytes),
    /// `A`
    Array(Vec<FieldValue>),
    /// `T`: seconds since the epoch
    Timestamp(u64),
    /// `F`
    Table(FieldTable),
    /// `V`
    Void,
}

impl FieldValue {
    /// The value as an integer, whatever its integer width.
    pub fn as_i64(&self) -> Option<i64> {
        Some(match *self {
            FieldValue::I8(v) => v as i64,
            FieldValue::U8(v) => v as i64,
            FieldValue::I16(v) => v as i64,
            FieldValue::U16(v) => v as i64,
            FieldValue::I32(v) => v as i64,
            FieldValue::U32(v) => v as i64,
            FieldValue::I64(v) => v,
            FieldValue::Timestamp(v) => v as i64,
            _ => return None,
        })
    }

    /// RabbitMQ's (Erlang) name for the value's type, as its error texts and
    /// event headers show it.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Bool(_) => "bool",
            FieldValue::I8(_) => "byte",
            FieldValue::U8(_) => "unsignedbyte",
            FieldValue::I16(_) => "short",
            FieldValue::U16(_) => "unsignedshort",
            FieldValue::I32(_) => "signedint",
            FieldValue::U32(_) => "unsignedint",
            FieldValue::I64(_) => "long",
            FieldValue::F32(_) => "float",
            FieldValue::F64(_) => "double",
            FieldValue::Decimal(..) => "decimal",
            FieldValue::LongStr(_) => "longstr",
            FieldValue::Bytes(_) => "binary",
            FieldValue::Array(_) => "array",
            FieldValue::Timestamp(_) => "timestamp",
            FieldValue::Table(_) => "table",
            FieldValue::Void => "void",
        }
    }

    /// The value as bytes, if it is a string.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(b) | FieldValue::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            FieldValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Convenience constructor for string values.
    pub fn string(s: impl AsRef<[u8]>) -> Self {
        FieldValue::LongStr(Bytes::copy_from_slice(s.as_ref()))
    }
}

/// An ordered map from short-string keys to values. Kept as a vector: tables are
/// small, order matters for byte-exact re-encoding, and duplicate keys sent by a
/// client are preserved (lookups return the first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }

    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_bytes() == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// Replace the value of `key`, or append it.
    pub fn insert(&mut self, key: &str, value: FieldValue) {
        match self
            .0
            .iter_mut()
            .find(|(k, _)| k.as_bytes() == key.as_bytes())
        {
            Some(slot) => slot.1 = value,
            None => self.0.push((ShortStr::from(key), value)),
        }
    }

    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let pos = self
            .0
            .iter()
            .position(|(k, _)| k.as_bytes() == key.as_bytes())?;
        Some(self.0.remove(pos).1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&ShortStr, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Decode a table including its 4-byte length prefix.
    pub fn decode(buf: &mut Bytes) -> Result<FieldTable, DecodeError> {
        let len = take_u32(buf)? as usize;
        if buf.remaining() < len {
            return Err(DecodeError("table longer than its frame"));
        }
        let mut body = buf.split_to(len);
        let mut entries = Vec::new();
        while body.has_remaining() {
            let key = decode_shortstr(&mut body)?;
            let value = decode_value(&mut body, 0)?;
            entries.push((key, value));
        }
        Ok(FieldTable(entries))
    }

    /// Encode the table including its 4-byte length prefix.
    pub fn encode(&self, out: &mut impl BufMut) {
        let mut body = Vec::with_capacity(64);
        self.encode_entries(&mut body);
        out.put_u32(body.len() as u32);
        out.put_slice(&body);
    }

    fn encode_entries(&self, out: &mut Vec<u8>) {
        for (k, v) in &self.0 {
            encode_shortstr(out, k.as_bytes());
            encode_value(out, v);
        }
    }
}

/// Nesting deeper than this is refused, so a hostile table can't overflow the stack.
const MAX_DEPTH: usize = 64;

fn take_u32(buf: &mut Bytes) -> Result<u32, DecodeError> {
    if buf.remaining() < 4 {
        return Err(DecodeError("truncated integer"));
    }
    Ok(buf.get_u32())
}

/// Decode a short string (1-byte length prefix).
pub fn decode_shortstr(buf: &mut Bytes) -> Result<ShortStr, DecodeError> {
    if !buf.has_remaining() {
        return Err(DecodeError("truncated short string"));
    }
    let len = buf.get_u8() as usize;
    if buf.remaining() < len {
        return Err(DecodeError("truncated short string"));
    }
    Ok(ShortStr(buf.split_to(len)))
}

/// Decode a long string (4-byte length prefix).
pub fn decode_longstr(buf: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = take_u32(buf)? as usize;
    if buf.remaining() < len {
        return Err(DecodeError("truncated long string"));
    }
    Ok(buf.split_to(len))
}

/// Encode a short string; longer input is truncated to 255 bytes.
pub fn encode_shortstr(out: &mut impl BufMut, s: &[u8]) {
    let s = &s[..s.len().min(255)];
    out.put_u8(s.len() as u8);
    out.put_slice(s);
}

pub fn encode_longstr(out: &mut impl BufMut, s: &[u8]) {
    out.put_u32(s.len() as u32);
    out.put_slice(s);
}

fn need(buf: &Bytes, n: usize) -> Result<(), DecodeError> {
    if buf.remaining() < n {
        Err(DecodeError("truncated field value"))
    } else {
        Ok(())
    }
}

fn decode_value(buf: &mut Bytes, depth: usize) -> Result<FieldValue, DecodeError> {
    if depth > MAX_DEPTH {
        return Err(DecodeError("field table nested too deeply"));
    }
    need(buf, 1)?;
    let tag = buf.get_u8();
    Ok(match tag {
        b't' => {
            need(buf, 1)?;
            FieldValue::Bool(buf.get_u8() != 0)
        }
        b'b' => {
            need(buf, 1)?;
            FieldValue::I8(buf.get_i8())
        }
        b'B' => {
            need(buf, 1)?;
            FieldValue::U8(buf.get_u8())
        }
        b's' => {
            need(buf, 2)?;
            FieldValue::I16(buf.get_i16())
        }
        b'u' => {
            need(buf, 2)?;
            FieldValue::U16(buf.get_u16())
        }
        b'I' => {
            need(buf, 4)?;
            FieldValue::I32(buf.get_i32())
        }
        b'i' => {
            need(buf, 4)?;
            FieldValue::U32(buf.get_u32())
        }
        b'l' => {
            need(buf, 8)?;
            FieldValue::I64(buf.get_i64())
        }
        b'f' => {
            need(buf, 4)?;
            FieldValue::F32(buf.get_f32())
        }
        b'd' => {
            need(buf, 8)?;
            FieldValue::F64(buf.get_f64())
        }
        b'D' => {
            need(buf, 5)?;
            let scale = buf.get_u8();
            FieldValue::Decimal(scale, buf.get_u32())
        }
        b'S' => FieldValue::LongStr(decode_longstr(buf)?),
        b'x' => FieldValue::Bytes(decode_longstr(buf)?),
        b'A' => {
            let mut body = decode_longstr(buf)?;
            let mut items = Vec::new();
            while body.has_remaining() {
                items.push(decode_value(&mut body, depth + 1)?);
            }
            FieldValue::Array(items)
        }
        b'T' => {
            need(buf, 8)?;
            FieldValue::Timestamp(buf.get_u64())
        }
        b'F' => {
            let mut body = decode_longstr(buf)?;
            let mut entries = Vec::new();
            while body.has_remaining() {
                let key = decode_shortstr(&mut body)?;
                let value = decode_value(&mut body, depth + 1)?;
                entries.push((key, value));
            }
            FieldValue::Table(FieldTable(entries))
        }
        b'V' => FieldValue::Void,
        _ => return Err(DecodeError("unknown field value type")),
    })
}

fn encode_value(out: &mut Vec<u8>, v: &FieldValue) {
    match v {
        FieldValue::Bool(b) => {
            out.put_u8(b't');
            out.put_u8(*b as u8);
        }
        FieldValue::I8(x) => {
            out.put_u8(b'b');
            out.put_i8(*x);
        }
        FieldValue::U8(x) => {
            out.put_u8(b'B');
            out.put_u8(*x);
        }
        FieldValue::I16(x) => {
            out.put_u8(b's');
            out.put_i16(*x);
        }
        FieldValue::U16(x) => {
            out.put_u8(b'u');
            out.put_u16(*x);
        }
        FieldValue::I32(x) => {
            out.put_u8(b'I');
            out.put_i32(*x);
        }
        FieldValue::U32(x) => {
            out.put_u8(b'i');
            out.put_u32(*x);
        }
        FieldValue::I64(x) => {
            out.put_u8(b'l');
            out.put_i64(*x);
        }
        FieldValue::F32(x) => {
            out.put_u8(b'f');
            out.put_f32(*x);
        }
        FieldValue::F64(x) => {
            out.put_u8(b'd');
            out.put_f64(*x);
        }
        FieldValue::Decimal(s, x) => {
            out.put_u8(b'D');
            out.put_u8(*s);
            out.put_u32(*x);
        }
        FieldValue::LongStr(b) => {
            out.put_u8(b'S');
            encode_longstr(out, b);
        }
        FieldValue::Bytes(b) => {
            out.put_u8(b'x');
            encode_longstr(out, b);
        }
        FieldValue::Array(items) => {
            out.put_u8(b'A');
            let mut body = Vec::new();
            for item in items {
                encode_value(&mut body, item);
            }
            encode_longstr(out, &body);
        }
        FieldValue::Timestamp(t) => {
            out.put_u8(b'T');
            out.put_u64(*t);
        }
        FieldValue::Table(t) => {
            out.put_u8(b'F');
            let mut body = Vec::new();
            t.encode_entries(&mut body);
            encode_longstr(out, &body);
        }
        FieldValue::Void => out.put_u8(b'V'),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_type() {
        let mut inner = FieldTable::new();
        inner.insert("n", FieldValue::I64(-5));
        let t = FieldTable(vec![
            ("a".into(), FieldValue::Bool(true)),
            ("b".into(), FieldValue::I8(-1)),
            ("c".into(), FieldValue::U8(255)),
            ("d".into(), FieldValue::I16(-2)),
            ("e".into(), FieldValue::U16(2)),
            ("f".into(), FieldValue::I32(-3)),
            ("g".into(), FieldValue::U32(3)),
            ("h".into(), FieldValue::I64(-4)),
            ("i".into(), FieldValue::F32(1.5)),
            ("j".into(), FieldValue::F64(2.5)),
            ("k".into(), FieldValue::Decimal(2, 314)),
            ("l".into(), FieldValue::string("hello")),
            (
                "m".into(),
                FieldValue::Bytes(Bytes::from_static(b"\x00\x01")),
            ),
            (
                "n".into(),
                FieldValue::Array(vec![FieldValue::I32(1), FieldValue::Table(inner.clone())]),
            ),
            ("o".into(), FieldValue::Timestamp(1_700_000_000)),
            ("p".into(), FieldValue::Table(inner)),
            ("q".into(), FieldValue::Void),
        ]);
        let mut out = Vec::new();
        t.encode(&mut out);
        let mut bytes = Bytes::from(out.clone());
        let back = FieldTable::decode(&mut bytes).expect("decodes");
        assert_eq!(back, t);
        let mut again = Vec::new();
        back.encode(&mut again);
        assert_eq!(again, out);
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        FieldTable(vec![("k".into(), FieldValue::string("value"))]).encode(&mut out);
        for cut in 0..out.len() {
            let mut b = Bytes::copy_from_slice(&out[..cut]);
            assert!(FieldTable::decode(&mut b).is_err());
        }
    }
}
