//! Codec tests: round trips, exact wire bytes for bit packing, content splitting,
//! the decoder's error cases (with the reply codes RabbitMQ 3.10 uses), and
//! truncated / garbage input that must produce errors rather than panics.

use super::method::sample_methods;
use super::*;
use bytes::{BufMut, Bytes, BytesMut};
use tokio_util::codec::Decoder;
use warren_core::{FieldTable, ShortStr};

fn method_frame(channel: u16, method: &Method) -> BytesMut {
    let mut out = BytesMut::new();
    write_method(&mut out, channel, method);
    out
}

/// Decode every complete frame in `bytes`; stop at the first error.
fn decode_all(dec: &mut FrameDecoder, bytes: &[u8]) -> Result<Vec<Frame>, FrameError> {
    let mut buf = BytesMut::from(bytes);
    let mut frames = Vec::new();
    while let Some(f) = dec.decode(&mut buf)? {
        frames.push(f);
    }
    Ok(frames)
}

fn decode_one(bytes: &[u8]) -> Result<Frame, FrameError> {
    let mut dec = FrameDecoder::new(0);
    let mut buf = BytesMut::from(bytes);
    let frame = dec.decode(&mut buf)?.expect("a complete frame");
    assert!(buf.is_empty(), "decoder left {} bytes", buf.len());
    Ok(frame)
}

fn raw_frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(&channel.to_be_bytes());
    v.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    v.extend_from_slice(payload);
    v.push(FRAME_END);
    v
}

fn args_of(method: &Method) -> Vec<u8> {
    let mut out = BytesMut::new();
    method.encode(&mut out);
    out[4..].to_vec()
}

#[test]
fn every_method_round_trips() {
    let samples = sample_methods(false);
    // connection 14, channel 6, access 2, exchange 8, queue 10, basic 18, tx 6,
    // confirm 2.
    assert_eq!(samples.len(), 66, "every method of every class");
    let mut seen = std::collections::HashSet::new();
    for m in samples.iter().chain(sample_methods(true).iter()) {
        seen.insert((m.class_id(), m.method_id()));
        // Through Method::encode / Method::decode.
        let mut out = BytesMut::new();
        m.encode(&mut out);
        assert_eq!(&out[..2], &m.class_id().to_be_bytes());
        assert_eq!(&out[2..4], &m.method_id().to_be_bytes());
        let mut args = out.freeze().slice(4..);
        let back = Method::decode(m.class_id(), m.method_id(), &mut args)
            .unwrap_or_else(|e| panic!("{}: {e}", m.name()));
        assert_eq!(&back, m, "{}", m.name());
        // Through the frame layer.
        let frame = decode_one(&method_frame(7, m)).expect("decodes");
        assert_eq!(frame, Frame::Method(7, m.clone()));
        assert_eq!(method_name(m.class_id(), m.method_id()), Some(m.name()));
    }
    assert_eq!(seen.len(), 66);
}

#[test]
fn default_methods_round_trip() {
    for m in sample_methods(false) {
        // Default-valued version of the same method: decode from its minimal
        // encoding (all zero / empty fields).
        let mut out = BytesMut::new();
        m.encode(&mut out);
        let zeroed = match Method::decode(m.class_id(), m.method_id(), &mut Bytes::new()) {
            Ok(z) => z,
            // Methods with fields cannot decode from nothing.
            Err(MethodDecodeError::Malformed { .. }) => continue,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(zeroed.name(), m.name());
        assert_eq!(args_of(&zeroed).len(), 0);
    }
}

#[test]
fn names_and_flags() {
    let publish = Method::BasicPublish(BasicPublish::default());
    assert_eq!(publish.name(), "basic.publish");
    assert_eq!((publish.class_id(), publish.method_id()), (60, 40));
    assert!(publish.has_content());
    assert!(!publish.is_synchronous());
    let with_content: Vec<_> = sample_methods(false)
        .into_iter()
        .filter(Method::has_content)
        .map(|m| m.name())
        .collect();
    assert_eq!(
        with_content,
        [
            "basic.publish",
            "basic.return",
            "basic.deliver",
            "basic.get-ok"
        ]
    );
    let m: Method = ExchangeUnbindOk::default().into();
    assert_eq!((m.class_id(), m.method_id()), (40, 51));
    assert_eq!(
        Method::ConnectionUpdateSecretOk(ConnectionUpdateSecretOk {}).name(),
        "connection.update-secret-ok"
    );
    assert!(Method::QueueDeclare(QueueDeclare::default()).is_synchronous());
    assert_eq!(reply_code::name(501), Some("FRAME_ERROR"));
    assert!(reply_code::is_hard_error(reply_code::UNEXPECTED_FRAME));
    assert!(!reply_code::is_hard_error(reply_code::NOT_FOUND));
}

#[test]
fn basic_publish_wire_bytes() {
    let m = Method::BasicPublish(BasicPublish {
        reserved_1: 0,
        exchange: ShortStr::from("ex"),
        routing_key: ShortStr::from("rk"),
        mandatory: true,
        immediate: false,
    });
    let frame = method_frame(1, &m);
    assert_eq!(
        &frame[..],
        b"\x01\x00\x01\x00\x00\x00\x0d\x00\x3c\x00\x28\x00\x00\x02ex\x02rk\x01\xce"
    );
}

#[test]
fn bits_pack_lsb_first_into_shared_octets() {
    // exchange.declare: passive, durable, auto-delete, internal, nowait share one
    // octet, then the table follows.
    let flags = [
        (0x01, [true, false, false, false, false]),
        (0x02, [false, true, false, false, false]),
        (0x04, [false, false, true, false, false]),
        (0x08, [false, false, false, true, false]),
        (0x10, [false, false, false, false, true]),
        (0x1f, [true, true, true, true, true]),
    ];
    for (octet, [passive, durable, auto_delete, internal, nowait]) in flags {
        let m = Method::ExchangeDeclare(ExchangeDeclare {
            exchange: "x".into(),
            kind: "direct".into(),
            passive,
            durable,
            auto_delete,
            internal,
            nowait,
            ..Default::default()
        });
        let args = args_of(&m);
        // reserved_1 (2) + "x" (2) + "direct" (7), then the bits, then the table.
        assert_eq!(args[11], octet);
        assert_eq!(&args[12..], &[0, 0, 0, 0]);
        let back = Method::decode(40, 10, &mut Bytes::from(args)).expect("decodes");
        assert_eq!(back, m);
    }

    // basic.deliver: a bit between a longlong and a shortstr takes a whole octet.
    let m = Method::BasicDeliver(BasicDeliver {
        consumer_tag: "c".into(),
        delivery_tag: 5,
        redelivered: true,
        exchange: "e".into(),
        routing_key: "r".into(),
    });
    assert_eq!(
        args_of(&m),
        b"\x01c\x00\x00\x00\x00\x00\x00\x00\x05\x01\x01e\x01r"
    );

    // basic.nack: multiple then requeue.
    let m = Method::BasicNack(BasicNack {
        delivery_tag: 1,
        multiple: false,
        requeue: true,
    });
    assert_eq!(args_of(&m), b"\x00\x00\x00\x00\x00\x00\x00\x01\x02");

    // queue.declare: passive durable exclusive auto-delete nowait.
    let m = Method::QueueDeclare(QueueDeclare {
        exclusive: true,
        nowait: true,
        ..Default::default()
    });
    assert_eq!(args_of(&m), b"\x00\x00\x00\x14\x00\x00\x00\x00");

    // Unused high bits are ignored on receipt, as RabbitMQ does.
    let back = Method::decode(60, 120, &mut Bytes::from_static(b"\0\0\0\0\0\0\0\x01\xfe"))
        .expect("decodes");
    assert_eq!(
        back,
        Method::BasicNack(BasicNack {
            delivery_tag: 1,
            multiple: false,
            requeue: true
        })
    );
}

#[test]
fn trailing_bytes_are_rejected_like_rabbitmq() {
    // RabbitMQ: basic.qos with two extra bytes -> 501 "cannot decode".
    let mut args = Bytes::from_static(b"\x00\x00\x00\x00\x00\x0a\x00\x00\x00");
    let err = Method::decode(60, 10, &mut args).expect_err("trailing bytes");
    assert_eq!(err.reply_code(), 501);
    // Even an argument-less method.
    let err = Method::decode(20, 41, &mut Bytes::from_static(b"zz")).expect_err("trailing");
    assert!(matches!(
        err,
        MethodDecodeError::Malformed {
            class_id: 20,
            method_id: 41,
            ..
        }
    ));
    let mut payload = vec![0, 60, 0, 10];
    payload.extend_from_slice(b"\x00\x00\x00\x00\x00\x0a\x00\x00\x00");
    let err = decode_one(&raw_frame(FRAME_METHOD, 1, &payload)).expect_err("trailing");
    assert_eq!((err.code, err.class_id, err.method_id), (501, 60, 10));
    assert!(
        err.text.starts_with("cannot decode basic.qos"),
        "{}",
        err.text
    );
    assert!(err
        .to_string()
        .starts_with("501 FRAME_ERROR - cannot decode basic.qos"));
}

#[test]
fn every_truncation_is_an_error() {
    for m in sample_methods(false) {
        let args = args_of(&m);
        for cut in 0..args.len() {
            let mut b = Bytes::copy_from_slice(&args[..cut]);
            let err = Method::decode(m.class_id(), m.method_id(), &mut b)
                .expect_err("a strict prefix never decodes");
            assert_eq!(err.reply_code(), 501, "{}", m.name());
        }
        // And the decoder, fed a frame one byte short at a time, just waits.
        let frame = method_frame(3, &m);
        let mut dec = FrameDecoder::new(FRAME_MIN_SIZE);
        for cut in 0..frame.len() {
            let mut buf = BytesMut::from(&frame[..cut]);
            assert!(matches!(dec.decode(&mut buf), Ok(None)), "{}", m.name());
        }
    }
}

#[test]
fn byte_at_a_time_stream_decodes() {
    let mut stream = BytesMut::new();
    let methods = sample_methods(false);
    for (i, m) in methods.iter().enumerate() {
        write_method(&mut stream, i as u16, m);
    }
    write_content(&mut stream, 1, 60, b"\x10\x00\x02", &[7u8; 10_000], 4096);
    write_heartbeat(&mut stream);

    let mut dec = FrameDecoder::new(FRAME_MIN_SIZE);
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for &b in stream.iter() {
        buf.put_u8(b);
        while let Some(f) = dec.decode(&mut buf).expect("valid stream") {
            frames.push(f);
        }
    }
    assert!(buf.is_empty());
    assert_eq!(frames.len(), methods.len() + 1 + 3 + 1);
    for (i, m) in methods.iter().enumerate() {
        assert_eq!(frames[i], Frame::Method(i as u16, m.clone()));
    }
    assert_eq!(frames.last(), Some(&Frame::Heartbeat(0)));
}

#[test]
fn content_is_split_at_frame_max() {
    let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let props = [
        0x90, 0x00, 0x0a, b't', b'e', b'x', b't', b'/', b'p', b'l', b'a', b'i', b'n',
    ];
    let mut out = BytesMut::new();
    write_content(&mut out, 5, 60, &props, &body, 4096);
    let frames = decode_all(&mut FrameDecoder::new(4096), &out).expect("decodes");
    let sizes: Vec<usize> = frames
        .iter()
        .map(|f| match f {
            Frame::Body(5, b) => b.len(),
            Frame::Header(5, h) => {
                assert_eq!(h.class_id, 60);
                assert_eq!(h.weight, 0);
                assert_eq!(h.body_size, 10_000);
                assert_eq!(&h.properties[..], &props);
                0
            }
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(sizes, [0, 4088, 4088, 1824]);
    let joined: Vec<u8> = frames
        .iter()
        .filter_map(|f| match f {
            Frame::Body(_, b) => Some(b.to_vec()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(joined, body);
    // Every frame, framing included, fits in frame_max.
    let mut rest = &out[..];
    while !rest.is_empty() {
        let size = u32::from_be_bytes([rest[3], rest[4], rest[5], rest[6]]) as usize;
        assert!(size + 8 <= 4096);
        rest = &rest[size + 8..];
    }

    // Exactly one full frame's worth: no empty trailing frame.
    let mut out = BytesMut::new();
    write_content(&mut out, 1, 60, &[0, 0], &body[..4088], 4096);
    assert_eq!(
        decode_all(&mut FrameDecoder::new(4096), &out)
            .expect("ok")
            .len(),
        2
    );

    // Empty body: header only. Empty properties: a zero flags word.
    let mut out = BytesMut::new();
    write_content(&mut out, 1, 60, &[], &[], 4096);
    let frames = decode_all(&mut FrameDecoder::new(4096), &out).expect("ok");
    assert_eq!(frames.len(), 1);
    match &frames[0] {
        Frame::Header(1, h) => {
            assert_eq!(h.body_size, 0);
            assert_eq!(&h.properties[..], &[0, 0]);
        }
        other => panic!("unexpected {other:?}"),
    }

    // frame_max 0 = unlimited: a single body frame.
    let mut out = BytesMut::new();
    write_content(&mut out, 1, 60, &[0, 0], &body, 0);
    assert_eq!(
        decode_all(&mut FrameDecoder::new(0), &out)
            .expect("ok")
            .len(),
        2
    );
}

#[test]
fn bodies_and_properties_are_zero_copy() {
    let mut out = BytesMut::new();
    write_content(&mut out, 1, 60, &[0x10, 0x00, 0x02], b"hello body", 4096);
    let range = out.as_ptr() as usize..out.as_ptr() as usize + out.len();
    let mut dec = FrameDecoder::new(4096);
    let Some(Frame::Header(_, h)) = dec.decode(&mut out).expect("ok") else {
        panic!("header expected")
    };
    let Some(Frame::Body(_, b)) = dec.decode(&mut out).expect("ok") else {
        panic!("body expected")
    };
    assert_eq!(&b[..], b"hello body");
    assert!(range.contains(&(h.properties.as_ptr() as usize)));
    assert!(range.contains(&(b.as_ptr() as usize)));
}

#[test]
fn oversized_frames_are_rejected_from_the_header_alone() {
    // RabbitMQ tolerates a payload of up to frame_max bytes (8 more than the frame
    // limit strictly allows) and rejects one byte more with 501.
    let mut dec = FrameDecoder::new(4096);
    let ok = raw_frame(FRAME_BODY, 1, &[0u8; 4096]);
    assert_eq!(decode_all(&mut dec, &ok).expect("tolerated").len(), 1);
    let too_big = raw_frame(FRAME_BODY, 1, &[0u8; 4097]);
    let err = decode_all(&mut dec, &too_big[..7]).expect_err("too large");
    assert_eq!(err.code, 501);
    assert!(err.text.contains("exceeds frame_max"), "{}", err.text);

    // Only the header is needed; nothing is buffered or reserved for it.
    let mut buf = BytesMut::from(&b"\x03\x00\x01\xff\xff\xff\xff"[..]);
    assert!(dec.decode(&mut buf).is_err());
    assert!(buf.capacity() < 1024);

    // Raising the limit (after tune-ok) accepts it; 0 means no limit.
    dec.set_max_frame_size(131_072);
    assert_eq!(decode_all(&mut dec, &too_big).expect("ok").len(), 1);
    dec.set_max_frame_size(0);
    assert_eq!(dec.max_frame_size(), 0);
    assert_eq!(decode_all(&mut dec, &too_big).expect("ok").len(), 1);
}

#[test]
fn decoder_reserves_space_for_a_large_frame() {
    let frame = raw_frame(FRAME_BODY, 1, &[1u8; 100_000]);
    let mut dec = FrameDecoder::new(131_072);
    let mut buf = BytesMut::from(&frame[..100]);
    assert!(matches!(dec.decode(&mut buf), Ok(None)));
    assert!(buf.capacity() >= frame.len());
    // Unlimited frame size: a huge announced size does not allocate it all.
    let mut dec = FrameDecoder::new(0);
    let mut buf = BytesMut::from(&b"\x03\x00\x01\xff\xff\xff\xf0"[..]);
    assert!(matches!(dec.decode(&mut buf), Ok(None)));
    assert!(buf.capacity() <= 2 << 20);
}

#[test]
fn framing_errors_use_rabbitmq_codes() {
    let check = |bytes: &[u8], code: u16, ids: (u16, u16)| {
        let err = decode_one(bytes).expect_err("must fail");
        assert_eq!(err.code, code, "{}", err.text);
        assert_eq!((err.class_id, err.method_id), ids, "{}", err.text);
        let name = reply_code::name(code).expect("known code");
        assert!(err.to_string().contains(name), "{err}");
        assert!(!err.text.contains(name), "no prefix in text: {}", err.text);
        assert!(!err.is_io());
    };
    // Bad frame end: 501.
    let mut f = raw_frame(FRAME_METHOD, 1, &[0, 60, 0, 11]);
    *f.last_mut().expect("non-empty") = 0;
    check(&f, 501, (0, 0));
    // Unknown frame type: 501.
    check(&raw_frame(5, 1, b"abc"), 501, (0, 0));
    // Method payload too short for the ids: 501.
    check(&raw_frame(FRAME_METHOD, 1, &[0, 60]), 501, (0, 0));
    check(&raw_frame(FRAME_METHOD, 1, &[]), 501, (0, 0));
    // Unknown class / method: 540 (RabbitMQ 3.10 just drops the connection).
    check(
        &raw_frame(FRAME_METHOD, 1, &[0, 60, 3, 0xe7]),
        540,
        (60, 999),
    );
    check(&raw_frame(FRAME_METHOD, 1, &[0, 99, 0, 10]), 540, (99, 10));
    // Malformed arguments: 501 with the method's ids.
    check(
        &raw_frame(FRAME_METHOD, 1, &[0, 60, 0, 10, 0, 0]),
        501,
        (60, 10),
    );
    check(
        &raw_frame(FRAME_METHOD, 1, &[0, 60, 0, 40, 0, 0, 0xff]),
        501,
        (60, 40),
    );
    // A bad field table inside the arguments: 501.
    let mut args = vec![0, 40, 0, 10, 0, 0, 1, b'x', 6];
    args.extend_from_slice(b"direct");
    args.extend_from_slice(&[0, 0, 0, 0, 3, 1, b'a', b'Z']);
    check(&raw_frame(FRAME_METHOD, 1, &args), 501, (40, 10));
    // Content header shorter than class, weight, size and flags: 501.
    check(&raw_frame(FRAME_HEADER, 1, &[0u8; 10]), 501, (0, 0));
    check(&raw_frame(FRAME_HEADER, 1, &[0u8; 13]), 501, (0, 0));
    assert!(decode_one(&raw_frame(FRAME_HEADER, 1, &[0u8; 14])).is_ok());
    // Heartbeat with a payload: 501. (On a non-zero channel it is the connection's
    // call: RabbitMQ answers 505.)
    check(&raw_frame(FRAME_HEARTBEAT, 0, b"ab"), 501, (0, 0));
    assert_eq!(
        decode_one(&raw_frame(FRAME_HEARTBEAT, 1, b"")).expect("ok"),
        Frame::Heartbeat(1)
    );
}

#[test]
fn io_errors_are_marked() {
    let e = FrameError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionReset,
        "reset",
    ));
    assert!(e.is_io());
    assert_eq!(e.code, 0);
}

/// A small deterministic PRNG, so the garbage tests need no extra dependency and
/// any failure reproduces.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn drain(dec: &mut FrameDecoder, buf: &mut BytesMut) {
    while let Ok(Some(_)) = dec.decode(buf) {}
}

#[test]
fn garbage_never_panics() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let len = (rng.next() % 64) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        // Make plausible headers common so that payload decoding gets exercised.
        if len >= 8 && rng.next() & 1 == 0 {
            bytes[0] = [1, 2, 3, 8][(rng.next() % 4) as usize];
            bytes[3..7].copy_from_slice(&((len - 8) as u32).to_be_bytes());
            bytes[len - 1] = FRAME_END;
        }
        drain(
            &mut FrameDecoder::new(4096),
            &mut BytesMut::from(&bytes[..]),
        );
        let (class, method) = (rng.next() as u16 % 100, rng.next() as u16 % 130);
        let _ = Method::decode(class, method, &mut Bytes::from(bytes));
    }
}

#[test]
fn mutated_valid_frames_never_panic() {
    let mut rng = XorShift(42);
    let frames: Vec<BytesMut> = sample_methods(false)
        .iter()
        .map(|m| method_frame(1, m))
        .collect();
    for _ in 0..20_000 {
        let mut bytes = frames[(rng.next() % frames.len() as u64) as usize].to_vec();
        for _ in 0..1 + rng.next() % 4 {
            let i = (rng.next() % bytes.len() as u64) as usize;
            // Keep the frame header intact most of the time: mutate the arguments.
            if i >= 7 || rng.next() & 7 == 0 {
                bytes[i] = rng.next() as u8;
            }
        }
        drain(
            &mut FrameDecoder::new(4096),
            &mut BytesMut::from(&bytes[..]),
        );
    }
}

/// Writes the seed corpus for the `frame_decoder` fuzz target (see fuzz/README.md):
/// `cargo test -p warren-amqp --lib -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/frame_decoder");
    std::fs::create_dir_all(&dir).expect("create seed dir");
    // First byte: frame_max 4096, 128-byte chunks (see the fuzz target).
    let write = |name: &str, stream: &[u8]| {
        let mut data = vec![0xfe];
        data.extend_from_slice(stream);
        std::fs::write(dir.join(name), data).expect("write seed");
    };
    for m in sample_methods(false) {
        write(&format!("method-{}", m.name()), &method_frame(1, &m));
    }
    let mut publish = method_frame(
        1,
        &Method::BasicPublish(BasicPublish {
            routing_key: "q".into(),
            ..Default::default()
        }),
    );
    let props = warren_core::BasicProperties {
        content_type: Some("text/plain".into()),
        headers: Some(FieldTable(vec![(
            "k".into(),
            warren_core::FieldValue::I32(1),
        )])),
        delivery_mode: Some(2),
        timestamp: Some(1),
        ..Default::default()
    }
    .encode();
    write_content(&mut publish, 1, 60, &props, &[b'x'; 5000], 4096);
    write_heartbeat(&mut publish);
    write("publish-with-content", &publish);
    write("properties", &props);
    let mut table = Vec::new();
    FieldTable(vec![
        (
            "a".into(),
            warren_core::FieldValue::Array(vec![warren_core::FieldValue::F64(1.5)]),
        ),
        (
            "t".into(),
            warren_core::FieldValue::Table(FieldTable::new()),
        ),
        ("s".into(), warren_core::FieldValue::string("v")),
    ])
    .encode(&mut table);
    write("table", &table);
}

/// What RabbitMQ 3.10 actually sent during a scripted session (recorded by
/// `testdata/capture_rabbitmq_session.py`): it must decode, and re-encoding each
/// frame must give back RabbitMQ's exact bytes.
#[test]
fn rabbitmq_session_capture_decodes_and_reencodes_exactly() {
    let capture: &[u8] = include_bytes!("testdata/rabbitmq-3.10-server-session.bin");
    let frames = decode_all(&mut FrameDecoder::new(4096), capture).expect("decodes");
    let mut reencoded = BytesMut::new();
    for f in &frames {
        write_frame(&mut reencoded, f);
    }
    assert_eq!(&reencoded[..], capture);

    let names: Vec<String> = frames
        .iter()
        .map(|f| match f {
            Frame::Method(ch, m) => format!("{ch}:{}", m.name()),
            Frame::Header(ch, h) => format!("{ch}:header({})", h.body_size),
            Frame::Body(ch, b) => format!("{ch}:body({})", b.len()),
            Frame::Heartbeat(ch) => format!("{ch}:heartbeat"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "0:connection.start",
            "0:connection.tune",
            "0:connection.open-ok",
            "1:channel.open-ok",
            "1:confirm.select-ok",
            "1:queue.declare-ok",
            "1:basic.ack",
            "1:basic.get-ok",
            "1:header(9000)",
            "1:body(4088)",
            "1:body(4088)",
            "1:body(824)",
            "1:basic.get-empty",
            "1:basic.return",
            "1:header(2)",
            "1:body(2)",
            "1:basic.ack",
            "1:basic.consume-ok",
            "1:queue.delete-ok",
            "1:channel.close-ok",
            "0:connection.close-ok",
        ]
    );
    let Frame::Method(_, Method::ConnectionStart(start)) = &frames[0] else {
        panic!("connection.start first")
    };
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    assert!(start.server_properties.get("capabilities").is_some());
    assert_eq!(&start.mechanisms[..], b"AMQPLAIN PLAIN");
    let Frame::Method(_, Method::BasicReturn(ret)) = &frames[13] else {
        panic!("basic.return")
    };
    assert_eq!(ret.reply_code, reply_code::NO_ROUTE);
    assert_eq!(ret.routing_key.as_bytes(), b"no-such-queue");
    let Frame::Header(_, header) = &frames[8] else {
        panic!("header")
    };
    let props = warren_core::BasicProperties::decode(&header.properties).expect("props");
    assert_eq!(props.content_type, Some("text/plain".into()));
    assert_eq!(props.delivery_mode, Some(2));
}
