//! The binary encoding of the classic-queue RPCs: length-prefixed strings and
//! byte strings, big-endian integers. Decoding slices the frame's `Bytes`, so
//! a message body received from a peer shares the frame's buffer (no copy).

use bytes::{Buf, BufMut, Bytes, BytesMut};

pub(crate) struct W(pub BytesMut);

impl W {
    pub fn new() -> W {
        W(BytesMut::with_capacity(256))
    }
    pub fn u8(&mut self, v: u8) {
        self.0.put_u8(v);
    }
    pub fn u32(&mut self, v: u32) {
        self.0.put_u32(v);
    }
    pub fn u64(&mut self, v: u64) {
        self.0.put_u64(v);
    }
    pub fn bytes(&mut self, b: &[u8]) {
        self.0.put_u32(b.len() as u32);
        self.0.put_slice(b);
    }
    pub fn freeze(self) -> Bytes {
        self.0.freeze()
    }
}

pub(crate) struct R(pub Bytes);

fn short() -> String {
    "truncated classic queue frame".to_string()
}

impl R {
    pub fn u8(&mut self) -> Result<u8, String> {
        (self.0.remaining() >= 1)
            .then(|| self.0.get_u8())
            .ok_or_else(short)
    }
    pub fn u32(&mut self) -> Result<u32, String> {
        (self.0.remaining() >= 4)
            .then(|| self.0.get_u32())
            .ok_or_else(short)
    }
    pub fn u64(&mut self) -> Result<u64, String> {
        (self.0.remaining() >= 8)
            .then(|| self.0.get_u64())
            .ok_or_else(short)
    }
    pub fn bytes(&mut self) -> Result<Bytes, String> {
        let n = self.u32()? as usize;
        if self.0.remaining() < n {
            return Err(short());
        }
        Ok(self.0.split_to(n))
    }
    pub fn string(&mut self) -> Result<String, String> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| "classic queue frame: bad utf-8".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_truncation() {
        let mut w = W::new();
        w.u8(7);
        w.u64(42);
        w.bytes(b"body");
        let b = w.freeze();
        let mut r = R(b.clone());
        assert_eq!(r.u8().unwrap(), 7);
        assert_eq!(r.u64().unwrap(), 42);
        assert_eq!(&r.bytes().unwrap()[..], b"body");
        assert!(r.u8().is_err());
        let mut r = R(b.slice(..b.len() - 1));
        r.u8().unwrap();
        r.u64().unwrap();
        assert!(r.bytes().is_err());
    }
}
