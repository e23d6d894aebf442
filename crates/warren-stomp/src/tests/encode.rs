//! Encoding: RabbitMQ's exact bytes.

use super::*;

// ---------------------------------------------------------------------------
// Encoding: RabbitMQ's exact bytes

#[test]
fn encodes_like_rabbitmq_serialize() {
    let enc = StompEncoder::new(Dialect::RabbitMq, true);
    // MESSAGE: headers in order, content-length last, NUL, LF.
    let f = Frame::new(
        Command::Message,
        Headers::from_pairs([
            ("subscription", "sub-0"),
            ("destination", "/queue/a"),
            ("message-id", "T_sub-0@@session-x@@1"),
            ("redelivered", "false"),
        ]),
        Bytes::from_static(b"hello"),
    );
    assert_eq!(
        encode(&enc, &f),
        b"MESSAGE\nsubscription:sub-0\ndestination:/queue/a\nmessage-id:T_sub-0@@session-x@@1\n\
          redelivered:false\ncontent-length:5\n\nhello\0\n"
    );
    // Empty body: no content-length at all.
    assert_eq!(
        encode(&enc, &Frame::receipt(b"77")),
        b"RECEIPT\nreceipt-id:77\n\n\0\n"
    );
    // ERROR as the processor builds it.
    let e = Frame::error(b"Bad CONNECT", &[], "Access refused for user 'x'\n");
    assert_eq!(
        encode(&enc, &e),
        b"ERROR\nmessage:Bad CONNECT\ncontent-type:text/plain\nversion:1.0,1.1,1.2\n\
          content-length:28\n\nAccess refused for user 'x'\n\0\n"
    );
    // trailing_lf off.
    let enc = StompEncoder::new(Dialect::RabbitMq, false);
    assert_eq!(
        encode(&enc, &Frame::receipt(b"1")),
        b"RECEIPT\nreceipt-id:1\n\n\0"
    );
}

#[test]
fn encoder_drops_content_length_headers_given() {
    let enc = StompEncoder::new(Dialect::RabbitMq, true);
    let f = Frame::new(
        Command::Message,
        Headers::from_pairs([
            ("content-length", "999"),
            ("a", "1"),
            ("content-length", "7"),
        ]),
        Bytes::from_static(b"xy"),
    );
    assert_eq!(
        encode(&enc, &f),
        b"MESSAGE\na:1\ncontent-length:2\n\nxy\0\n"
    );
}

#[test]
fn rabbitmq_escapes_every_outgoing_frame() {
    // Even CONNECTED and even for a 1.0 client: serialize/2 ignores the version.
    for version in Version::ALL {
        let mut enc = StompEncoder::new(Dialect::RabbitMq, true);
        enc.set_version(version);
        let f = Frame::new(
            Command::Connected,
            Headers::from_pairs([("a:b", "c\\d\ne\rf")]),
            Bytes::new(),
        );
        assert_eq!(encode(&enc, &f), b"CONNECTED\na\\cb:c\\\\d\\ne\\rf\n\n\0\n");
    }
}

#[test]
fn spec_escaping_on_output() {
    let mut enc = StompEncoder::new(Dialect::Spec, true);
    let hs = Headers::from_pairs([("k", "a:b")]);
    let msg = Frame::new(Command::Message, hs.clone(), Bytes::new());
    let connected = Frame::new(Command::Connected, hs, Bytes::new());
    assert_eq!(encode(&enc, &msg), b"MESSAGE\nk:a:b\n\n\0\n");
    enc.set_version(Version::V1_2);
    assert_eq!(encode(&enc, &msg), b"MESSAGE\nk:a\\cb\n\n\0\n");
    assert_eq!(encode(&enc, &connected), b"CONNECTED\nk:a:b\n\n\0\n");
}

#[test]
fn frame_writer_writes_deliveries_directly() {
    let enc = StompEncoder::new(Dialect::RabbitMq, true);
    let body = Bytes::from(vec![7u8; 1000]);
    let mut out = BytesMut::new();
    let mut w = enc.writer(&mut out, &Command::Message, 64 + body.len());
    w.header(b"subscription", b"0")
        .header(b"destination", b"/queue/a:b")
        .header_u64(b"priority", 4);
    w.finish(&body);
    let cap = out.capacity();
    let mut expect =
        b"MESSAGE\nsubscription:0\ndestination:/queue/a\\cb\npriority:4\ncontent-length:1000\n\n"
            .to_vec();
    expect.extend_from_slice(&body);
    expect.extend_from_slice(b"\0\n");
    assert_eq!(&out[..], &expect[..]);
    assert!(cap >= out.len());
}

#[test]
fn encoder_trait_impls_and_heartbeat() {
    let mut c = StompCodec::default();
    let mut out = BytesMut::new();
    c.encode(Item::Heartbeat, &mut out).unwrap();
    c.encode(Frame::receipt(b"r"), &mut out).unwrap();
    c.encode(&Frame::receipt(b"s"), &mut out).unwrap();
    assert_eq!(
        &out[..],
        b"\nRECEIPT\nreceipt-id:r\n\n\0\nRECEIPT\nreceipt-id:s\n\n\0\n"
    );
}

#[test]
fn connected_frame_like_rabbitmq() {
    // parsing.py's connect decorator expects exactly this shape.
    let enc = StompEncoder::new(Dialect::RabbitMq, true);
    let f = Frame::connected(
        Some(b"RabbitMQ/3.10.8"),
        b"session-abc",
        (0, 0),
        Version::V1_0,
    );
    assert_eq!(
        encode(&enc, &f),
        &b"CONNECTED\nserver:RabbitMQ/3.10.8\nsession:session-abc\nheart-beat:0,0\nversion:1.0\n\n\0\n"[..]
    );
    let f = Frame::connected(None, b"s", (10000, 5000), Version::V1_2);
    assert_eq!(
        encode(&enc, &f),
        &b"CONNECTED\nsession:s\nheart-beat:10000,5000\nversion:1.2\n\n\0\n"[..]
    );
}

/// `Config::client()`: a client's SEND reaches the server codec intact, and a
/// server MESSAGE whose body holds NULs reaches the client whole (the client
/// honours `content-length` on every frame; no LF after its own frames).
#[test]
fn client_config_talks_to_the_server_codec() {
    let (mut client_dec, mut client_enc) = StompCodec::new(Config::client()).into_parts();
    client_dec.set_version(Version::V1_2);
    client_enc.set_version(Version::V1_2);
    let mut server = StompCodec::default();
    server.set_version(Version::V1_2);

    let mut wire = BytesMut::new();
    let mut w = client_enc.writer(&mut wire, &Command::Send, 64);
    w.header(b"destination", b"/queue/a:b");
    w.finish(b"x\0y");
    assert_eq!(wire.last(), Some(&0), "no trailing LF from a client");
    let f = one_frame(&wire);
    assert_eq!(f.header("destination"), Some(&b"/queue/a:b"[..]));
    assert_eq!(&f.body[..], b"x\0y");

    let msg = Frame::new(
        Command::Message,
        Headers::from_pairs([("destination", "/queue/q"), ("ack", "T_1@@s@@7")]),
        Bytes::from_static(b"\0\0stamp\0"),
    );
    let mut wire = BytesMut::new();
    server.encode(&msg, &mut wire).unwrap();
    let Some(Item::Frame(got)) = client_dec.decode(&mut wire).unwrap() else {
        panic!("no MESSAGE decoded")
    };
    assert_eq!(&got.body[..], b"\0\0stamp\0");
    assert_eq!(got.header("ack"), Some(&b"T_1@@s@@7"[..]));
}
