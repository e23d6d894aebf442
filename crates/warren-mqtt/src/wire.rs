//! The specification's data types (section 1.5): integers, variable byte
//! integers, UTF-8 strings and binary data. Reading takes from a `Bytes`, so
//! strings and binary data come out as slices of the packet, never copies.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::DecodeError;

/// Largest value of a variable byte integer (four bytes).
pub const VARINT_MAX: u32 = 268_435_455;

pub fn get_u8(b: &mut Bytes) -> Result<u8, DecodeError> {
    if b.remaining() < 1 {
        return Err(DecodeError::Malformed("packet too short"));
    }
    Ok(b.get_u8())
}

pub fn get_u16(b: &mut Bytes) -> Result<u16, DecodeError> {
    if b.remaining() < 2 {
        return Err(DecodeError::Malformed("packet too short"));
    }
    Ok(b.get_u16())
}

pub fn get_u32(b: &mut Bytes) -> Result<u32, DecodeError> {
    if b.remaining() < 4 {
        return Err(DecodeError::Malformed("packet too short"));
    }
    Ok(b.get_u32())
}

/// A variable byte integer: at most four bytes, else malformed.
pub fn get_varint(b: &mut Bytes) -> Result<u32, DecodeError> {
    let mut value = 0u32;
    for i in 0..4 {
        let byte = get_u8(b)?;
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(value);
        }
    }
    Err(DecodeError::Malformed(
        "variable byte integer longer than 4 bytes",
    ))
}

/// Parse a variable byte integer at the start of `buf` without consuming it:
/// `Ok(None)` if more bytes are needed, else (value, bytes used).
pub fn peek_varint(buf: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value = 0u32;
    for i in 0..4 {
        let Some(&byte) = buf.get(i) else {
            return Ok(None);
        };
        value |= u32::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Ok(Some((value, i + 1)));
        }
    }
    Err(DecodeError::Malformed(
        "remaining length longer than 4 bytes",
    ))
}

pub fn varint_len(v: u32) -> usize {
    match v {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

pub fn put_varint(out: &mut BytesMut, mut v: u32) {
    loop {
        let mut byte = (v & 0x7f) as u8;
        v >>= 7;
        if v > 0 {
            byte |= 0x80;
        }
        out.put_u8(byte);
        if v == 0 {
            return;
        }
    }
}

/// Two-byte length, then that many bytes.
pub fn get_binary(b: &mut Bytes) -> Result<Bytes, DecodeError> {
    let len = get_u16(b)? as usize;
    if b.remaining() < len {
        return Err(DecodeError::Malformed(
            "string or binary data exceeds packet",
        ));
    }
    Ok(b.split_to(len))
}

/// A UTF-8 string: well-formed UTF-8 without U+0000 (section 1.5.4).
pub fn get_utf8(b: &mut Bytes) -> Result<Bytes, DecodeError> {
    let s = get_binary(b)?;
    check_utf8(&s)?;
    Ok(s)
}

pub fn check_utf8(s: &[u8]) -> Result<(), DecodeError> {
    if std::str::from_utf8(s).is_err() || s.contains(&0) {
        return Err(DecodeError::Malformed("invalid UTF-8 string"));
    }
    Ok(())
}

pub fn put_binary(out: &mut BytesMut, s: &[u8]) {
    out.put_u16(s.len() as u16);
    out.put_slice(s);
}
