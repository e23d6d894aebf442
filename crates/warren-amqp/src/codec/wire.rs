//! Checked big-endian integer reads for the generated method decoders.
//!
//! `bytes::Buf::get_u16` and friends panic when the buffer is too short. Input comes
//! from the network, so every read is length-checked first and turns a short buffer
//! into an error instead (a panic would take the connection task down and, worse,
//! be a trivial way for a client to make the broker log stack traces). Strings and
//! tables use the checked decoders in `warren_core::table`.

use bytes::{Buf, Bytes};
use warren_core::table::DecodeError;

const TRUNCATED: DecodeError = DecodeError("truncated method arguments");

#[inline]
pub(crate) fn get_u8(buf: &mut Bytes) -> Result<u8, DecodeError> {
    if buf.remaining() < 1 {
        return Err(TRUNCATED);
    }
    Ok(buf.get_u8())
}

#[inline]
pub(crate) fn get_u16(buf: &mut Bytes) -> Result<u16, DecodeError> {
    if buf.remaining() < 2 {
        return Err(TRUNCATED);
    }
    Ok(buf.get_u16())
}

#[inline]
pub(crate) fn get_u32(buf: &mut Bytes) -> Result<u32, DecodeError> {
    if buf.remaining() < 4 {
        return Err(TRUNCATED);
    }
    Ok(buf.get_u32())
}

#[inline]
pub(crate) fn get_u64(buf: &mut Bytes) -> Result<u64, DecodeError> {
    if buf.remaining() < 8 {
        return Err(TRUNCATED);
    }
    Ok(buf.get_u64())
}
