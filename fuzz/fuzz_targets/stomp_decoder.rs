//! Feeds arbitrary bytes to the STOMP decoder.
//!
//! Input layout: the first byte configures the run, the rest is the byte stream.
//!   bit 0:     dialect (RabbitMQ's or the specification's)
//!   bits 1..2: negotiated version (1.0, 1.1, 1.2, 1.2)
//!   bit 3:     tiny limits (to reach the limit errors) or the defaults
//!   bits 4..7: chunk size the stream arrives in: 1, 9, 17, ... 121 octets
//!
//! Besides "never panics", every decoded frame must re-encode and decode (with a
//! fresh decoder of the same dialect and version) to the same frame, except that the
//! encoder replaces any `content-length` headers with the real one (if the body is
//! not empty), and `encoded_len` must match what the encoder writes.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;
use warren_stomp::{Config, Dialect, Frame, Item, Limits, StompCodec, Version};

fn config(ctl: u8) -> (Config, Version) {
    let dialect = if ctl & 1 == 0 {
        Dialect::RabbitMq
    } else {
        Dialect::Spec
    };
    let version = match (ctl >> 1) & 3 {
        0 => Version::V1_0,
        1 => Version::V1_1,
        _ => Version::V1_2,
    };
    let limits = if ctl & 8 == 0 {
        Limits {
            max_header_section: 64,
            max_headers: 4,
            max_body: 64,
        }
    } else {
        Limits::DEFAULT
    };
    let config = Config {
        dialect,
        limits,
        trailing_lf: true,
    };
    (config, version)
}

fn check(frame: &Frame, dialect: Dialect, version: Version) {
    let mut codec = StompCodec::new(Config {
        dialect,
        ..Config::default()
    });
    codec.set_version(version);
    let mut wire = BytesMut::new();
    codec.encoder().encode_frame(frame, &mut wire);
    assert_eq!(wire.len(), codec.encoder().encoded_len(frame), "encoded_len");
    let first = wire.clone();

    let again = match codec.decode(&mut wire) {
        Ok(Some(Item::Frame(f))) => f,
        other => panic!("re-encoded frame did not decode: {other:?}\n{first:?}"),
    };
    assert!(wire.is_empty(), "bytes left after the re-encoded frame");

    let expected: Vec<(&[u8], Vec<u8>)> = frame
        .headers
        .iter()
        .filter(|(n, _)| *n != b"content-length")
        .map(|(n, v)| (n, v.to_vec()))
        .chain((!frame.body.is_empty()).then(|| {
            (&b"content-length"[..], frame.body.len().to_string().into_bytes())
        }))
        .collect();
    let got: Vec<(&[u8], Vec<u8>)> = again.headers.iter().map(|(n, v)| (n, v.to_vec())).collect();
    assert_eq!(again.command, frame.command);
    assert_eq!(got, expected, "headers survive a round trip");
    assert_eq!(again.body, frame.body);
}

fuzz_target!(|data: &[u8]| {
    let Some((&ctl, stream)) = data.split_first() else {
        return;
    };
    let (config, version) = config(ctl);
    let chunk = 1 + 8 * usize::from(ctl >> 4);

    let mut codec = StompCodec::new(config);
    codec.set_version(version);
    let mut buf = BytesMut::new();
    'feed: for piece in stream.chunks(chunk) {
        buf.extend_from_slice(piece);
        loop {
            match codec.decode(&mut buf) {
                Ok(Some(Item::Frame(frame))) => check(&frame, config.dialect, version),
                Ok(Some(Item::Heartbeat)) => {}
                Ok(None) => break,
                // A decoding error ends the connection; so does it end this run.
                Err(_) => break 'feed,
            }
        }
    }
    let _ = codec.decode_eof(&mut buf);
    assert!(codec.decoder().bytes_received() <= stream.len() as u64);
});
