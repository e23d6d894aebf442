//! Unit tests for the frame layer, one file per concern; shared helpers here.

pub(crate) use crate::*;
pub(crate) use bytes::{Bytes, BytesMut};
pub(crate) use tokio_util::codec::{Decoder, Encoder};

mod decode;
mod encode;
mod escaping;
mod fuzz_seeds;
mod rabbitmq_suites;
mod round_trip;

fn codec(dialect: Dialect) -> StompCodec {
    StompCodec::new(Config {
        dialect,
        ..Config::default()
    })
}

/// Feeds `input` in pieces of `chunk` octets, decoding after each, like FramedRead.
fn decode_chunks(c: &mut StompCodec, input: &[u8], chunk: usize) -> Result<Vec<Item>, DecodeError> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(item) = c.decode(&mut buf)? {
            out.push(item);
        }
    }
    Ok(out)
}

fn decode_all(input: &[u8]) -> Result<Vec<Item>, DecodeError> {
    decode_chunks(&mut StompCodec::default(), input, input.len())
}

fn frames(items: Vec<Item>) -> Vec<Frame> {
    items
        .into_iter()
        .filter_map(|i| match i {
            Item::Frame(f) => Some(f),
            Item::Heartbeat => None,
        })
        .collect()
}

fn one_frame(input: &[u8]) -> Frame {
    let mut f = frames(decode_all(input).expect("decodes"));
    assert_eq!(f.len(), 1, "expected one frame from {input:?}");
    f.remove(0)
}

fn decode_err(input: &[u8]) -> DecodeError {
    decode_all(input).expect_err("should fail")
}

fn hdrs(f: &Frame) -> Vec<(String, String)> {
    f.headers
        .iter()
        .map(|(n, v)| {
            (
                String::from_utf8_lossy(n).into_owned(),
                String::from_utf8_lossy(v).into_owned(),
            )
        })
        .collect()
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

fn encode(enc: &StompEncoder, f: &Frame) -> Vec<u8> {
    let mut out = BytesMut::new();
    enc.encode_frame(f, &mut out);
    assert_eq!(out.len(), enc.encoded_len(f), "encoded_len is exact");
    out.to_vec()
}

/// A stream exercising most of the grammar: CRLF lines, noise, escapes, NUL bodies,
/// an unknown command, repeated headers.
fn sample_stream() -> Vec<u8> {
    let mut s = Vec::new();
    s.extend_from_slice(b"CONNECT\r\naccept-version:1.0,1.1,1.2\r\nhost:/\r\nlogin:guest\r\npasscode:guest\r\n\r\n\0\n");
    s.extend_from_slice(b"\n\r\n\0");
    s.extend_from_slice(
        b"SEND\ndestination:/queue/a\ncontent-length:5\nk:v1\nk:v2\n\na\0b\0c\0\r\n",
    );
    s.extend_from_slice(
        b"SUBSCRIBE\nid:0\ndestination:/queue/a\\cb\\\\c\\nd\\re\nack:client\n\n\0",
    );
    s.extend_from_slice(b"FOO\n\n\0");
    s.extend_from_slice(b"SEND\ndestination:/topic/x\n\nno length here\0\n\n");
    s.extend_from_slice(b"DISCONNECT\nreceipt:77\n\n\0");
    s
}
