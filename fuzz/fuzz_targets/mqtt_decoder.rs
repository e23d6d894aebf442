//! Feeds arbitrary bytes to the MQTT decoder.
//!
//! Input layout: the first byte configures the run, the rest is the byte stream.
//!   bits 0..1: version the codec starts with: unknown (CONNECT decides), 3.1, 3.1.1, 5.0
//!   bit 2:     tiny maximum packet size (64 bytes, to reach that error) or 1 MiB
//!   bits 3..7: chunk size the stream arrives in: 1, 5, 9, ... 125 octets
//!
//! Besides "never panics", every decoded packet must re-encode to exactly
//! `encoded_len` bytes and decode again (with a fresh codec of the same version)
//! to the same packet.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use warren_mqtt::encode::{encode, encoded_len};
use warren_mqtt::{MqttCodec, Version};

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let start = match ctl & 3 {
        0 => None,
        1 => Some(Version::V3_1),
        2 => Some(Version::V3_1_1),
        _ => Some(Version::V5),
    };
    let max = if ctl & 4 == 0 { 64 } else { 1 << 20 };
    let chunk = 1 + 4 * usize::from(ctl >> 3);
    let mut codec = MqttCodec::new(max);
    if let Some(v) = start {
        codec.set_version(v);
    }
    let mut buf = BytesMut::new();
    for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(p)) => {
                    let v = codec.version().unwrap_or(Version::V3_1_1);
                    let mut out = BytesMut::new();
                    encode(&p, v, &mut out);
                    assert_eq!(out.len(), encoded_len(&p, v));
                    let mut again = MqttCodec::new(usize::MAX);
                    again.set_version(v);
                    let back = again.decode(&mut out).expect("re-encoded packet decodes");
                    assert_eq!(back.as_ref(), Some(&p));
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
