//! Unit tests for the frame layer: decoding (streaming, noise, escapes, bodies,
//! limits, errors), encoding (RabbitMQ's exact output), and round trips.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use crate::*;

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

// ---------------------------------------------------------------------------
// Commands

#[test]
fn every_known_command_decodes() {
    for name in [
        "CONNECT",
        "STOMP",
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "ACK",
        "NACK",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "DISCONNECT",
        "CONNECTED",
        "MESSAGE",
        "RECEIPT",
        "ERROR",
    ] {
        let f = one_frame(format!("{name}\n\n\0").as_bytes());
        assert!(!matches!(f.command, Command::Other(_)), "{name}");
        assert_eq!(f.command.as_bytes(), name.as_bytes());
        assert_eq!(Command::known(name.as_bytes()), Some(f.command.clone()));
    }
}

#[test]
fn unknown_commands_decode_byte_for_byte() {
    // Case-sensitive, trailing blanks significant, NUL and high octets kept.
    for raw in [
        &b"send"[..],
        b"SEND ",
        b"FOO BAR",
        b"X\0Y",
        b"\xc3\xa9",
        b"a:b\\c",
    ] {
        let mut input = raw.to_vec();
        input.extend_from_slice(b"\nk:v\n\nbody\0");
        let f = one_frame(&input);
        assert_eq!(f.command, Command::Other(Bytes::copy_from_slice(raw)));
        assert_eq!(f.header("k"), Some(&b"v"[..]));
        assert_eq!(&f.body[..], b"body");
    }
}

#[test]
fn bad_command_error_is_rabbitmqs() {
    let f = bad_command_error(&Command::Other(Bytes::from_static(b"FOO")));
    assert_eq!(f.command, Command::Error);
    assert_eq!(
        hdrs(&f),
        h(&[
            ("message", "Bad command"),
            ("content-type", "text/plain"),
            ("version", "1.0,1.1,1.2")
        ])
    );
    assert_eq!(&f.body[..], b"Could not interpret command \"FOO\"\n");

    let p = |s: &[u8]| {
        let mut v = Vec::new();
        error::erlang_p_string(s, &mut v);
        String::from_utf8_lossy(&v).into_owned()
    };
    assert_eq!(p(b"a\"b\\c\td"), r#""a\"b\\c\td""#);
    assert_eq!(p(b"A\0B"), "[65,0,66]");
    assert_eq!(p(b"\x7f"), "[127]");
    assert_eq!(p(b"\xe9t\xe9"), "\"\u{fffd}t\u{fffd}\"");
}

// ---------------------------------------------------------------------------
// Streaming

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

#[test]
fn sample_stream_decodes() {
    let items = decode_all(&sample_stream()).unwrap();
    let f = frames(items);
    assert_eq!(f.len(), 6);
    assert_eq!(f[0].command, Command::Connect);
    assert_eq!(
        hdrs(&f[0]),
        h(&[
            ("accept-version", "1.0,1.1,1.2"),
            ("host", "/"),
            ("login", "guest"),
            ("passcode", "guest")
        ])
    );
    assert_eq!(f[1].command, Command::Send);
    assert_eq!(&f[1].body[..], b"a\0b\0c");
    assert_eq!(f[1].header("k"), Some(&b"v1"[..]));
    assert_eq!(
        f[1].headers.get_all(b"k").collect::<Vec<_>>(),
        vec![b"v1", b"v2"]
    );
    assert_eq!(
        f[2].headers.destination(),
        Some(&b"/queue/a:b\\c\nd\re"[..])
    );
    assert_eq!(f[3].command, Command::Other(Bytes::from_static(b"FOO")));
    assert_eq!(&f[4].body[..], b"no length here");
    assert_eq!(f[5].command, Command::Disconnect);
    assert_eq!(f[5].headers.receipt(), Some(&b"77"[..]));
}

#[test]
fn split_at_every_offset_gives_the_same_frames() {
    let stream = sample_stream();
    let whole = frames(decode_all(&stream).unwrap());
    for cut in 0..=stream.len() {
        let mut c = StompCodec::default();
        let mut buf = BytesMut::from(&stream[..cut]);
        let mut got = Vec::new();
        while let Some(i) = c.decode(&mut buf).unwrap() {
            got.push(i);
        }
        buf.extend_from_slice(&stream[cut..]);
        while let Some(i) = c.decode(&mut buf).unwrap() {
            got.push(i);
        }
        assert_eq!(frames(got), whole, "cut at {cut}");
        assert!(buf.is_empty(), "cut at {cut}: {buf:?} left");
    }
}

#[test]
fn every_chunk_size_gives_the_same_frames() {
    let stream = sample_stream();
    let whole = frames(decode_all(&stream).unwrap());
    for chunk in 1..=stream.len() {
        let got = decode_chunks(&mut StompCodec::default(), &stream, chunk).unwrap();
        assert_eq!(frames(got), whole, "chunk {chunk}");
    }
}

#[test]
fn many_frames_in_one_read() {
    let mut s = Vec::new();
    for i in 0..100 {
        s.extend_from_slice(format!("SEND\ndestination:/queue/q\n\nm{i}\0").as_bytes());
    }
    let f = frames(decode_all(&s).unwrap());
    assert_eq!(f.len(), 100);
    assert_eq!(&f[99].body[..], b"m99");
}

#[test]
fn body_and_headers_are_slices_of_the_read_buffer() {
    let mut buf = BytesMut::from(&b"SEND\ndestination:/queue/q\ncontent-length:3\n\nabc\0"[..]);
    let base = buf.as_ptr() as usize;
    let end = base + buf.len();
    let Some(Item::Frame(f)) = StompCodec::default().decode(&mut buf).unwrap() else {
        panic!("no frame");
    };
    let in_buf = |p: *const u8| (base..end).contains(&(p as usize));
    assert!(in_buf(f.body.as_ptr()));
    assert!(in_buf(f.headers.get_bytes("destination").unwrap().as_ptr()));
}

// ---------------------------------------------------------------------------
// Heart-beats and noise

#[test]
fn heartbeats_between_frames_are_reported() {
    let mut c = StompCodec::default();
    let mut buf = BytesMut::from(&b"\n"[..]);
    assert_eq!(c.decode(&mut buf).unwrap(), Some(Item::Heartbeat));
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\r\n\r\n");
    assert_eq!(c.decode(&mut buf).unwrap(), Some(Item::Heartbeat));
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    // A CR alone waits for its LF; it is not reported yet.
    buf.extend_from_slice(b"\r");
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\n");
    assert_eq!(c.decode(&mut buf).unwrap(), Some(Item::Heartbeat));
    // NULs are noise too (RabbitMQ: noise ::= *(NUL | eol)).
    buf.extend_from_slice(b"\0\0");
    assert_eq!(c.decode(&mut buf).unwrap(), Some(Item::Heartbeat));
    assert!(buf.is_empty());
}

#[test]
fn eols_behind_a_frame_go_with_it() {
    let mut c = StompCodec::default();
    let mut buf = BytesMut::from(&b"SEND\n\nx\0\n\r\n"[..]);
    assert!(matches!(c.decode(&mut buf).unwrap(), Some(Item::Frame(_))));
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    assert!(buf.is_empty());
    // Later ones are heart-beats.
    buf.extend_from_slice(b"\n");
    assert_eq!(c.decode(&mut buf).unwrap(), Some(Item::Heartbeat));
}

#[test]
fn noise_before_a_partial_frame_is_still_reported() {
    let mut c = StompCodec::default();
    let mut buf = BytesMut::from(&b"\nSEN"[..]);
    assert_eq!(c.decode(&mut buf).unwrap(), Some(Item::Heartbeat));
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    assert!(!c.decoder().is_idle());
}

#[test]
fn bytes_received_counts_every_octet_once() {
    let mut c = StompCodec::default();
    let mut buf = BytesMut::new();
    let input = b"\nSEND\ndestination:/q\n\n0123456789\0\n";
    for b in input {
        buf.extend_from_slice(&[*b]);
        while c.decode(&mut buf).unwrap().is_some() {}
    }
    assert_eq!(c.decoder().bytes_received(), input.len() as u64);
}

#[test]
fn partial_frame_at_eof_is_dropped() {
    let mut c = StompCodec::default();
    let mut buf = BytesMut::from(&b"SEND\n\nabc\0SEND\nx"[..]);
    assert!(matches!(
        c.decode_eof(&mut buf).unwrap(),
        Some(Item::Frame(_))
    ));
    assert_eq!(c.decode_eof(&mut buf).unwrap(), None);
}

// ---------------------------------------------------------------------------
// Line syntax

#[test]
fn crlf_everywhere_a_line_ends() {
    let f = one_frame(b"SEND\r\na:1\r\nb:2\r\n\r\nbody\r\n\0");
    assert_eq!(f.command, Command::Send);
    assert_eq!(hdrs(&f), h(&[("a", "1"), ("b", "2")]));
    // The body is opaque: CR LF inside it stays.
    assert_eq!(&f.body[..], b"body\r\n");
}

#[test]
fn header_syntax_edge_cases() {
    // Colons after the first belong to the value; empty names and values are fine;
    // NUL in the header section is an ordinary octet.
    let f = one_frame(b"SEND\nurl:http://x:80/\n:empty-name\nempty-value:\nn\0l:v\0\n\n\0");
    assert_eq!(
        hdrs(&f),
        h(&[
            ("url", "http://x:80/"),
            ("", "empty-name"),
            ("empty-value", ""),
            ("n\0l", "v\0")
        ])
    );
}

#[test]
fn cr_not_before_lf_is_an_error() {
    assert!(matches!(
        decode_err(b"\rX"),
        DecodeError::UnexpectedCr {
            part: Part::BetweenFrames,
            found: b'X'
        }
    ));
    assert!(matches!(
        decode_err(b"SE\rND\n\n\0"),
        DecodeError::UnexpectedCr {
            part: Part::Command,
            found: b'N'
        }
    ));
    assert!(matches!(
        decode_err(b"SEND\nk:a\rb\n\n\0"),
        DecodeError::UnexpectedCr {
            part: Part::Header,
            ..
        }
    ));
    assert!(matches!(
        decode_err(b"SEND\nk\r:v\n\n\0"),
        DecodeError::UnexpectedCr {
            part: Part::Header,
            ..
        }
    ));
    // Reported as soon as the octet after the CR arrives, frame complete or not.
    let mut c = StompCodec::default();
    let mut buf = BytesMut::from(&b"SEND\nk:\r"[..]);
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"x");
    assert!(c.decode(&mut buf).is_err());
}

#[test]
fn header_without_colon_is_an_error() {
    assert!(matches!(
        decode_err(b"SEND\nnocolon\n\n\0"),
        DecodeError::HeaderWithoutValue
    ));
    assert!(matches!(
        decode_err(b"SEND\nnocolon\r\n\r\n\0"),
        DecodeError::HeaderWithoutValue
    ));
}

#[test]
fn repeated_headers_first_wins_all_kept() {
    let f = one_frame(b"SEND\ndestination:/queue/first\nx:1\ndestination:/queue/second\n\n\0");
    assert_eq!(f.headers.destination(), Some(&b"/queue/first"[..]));
    assert_eq!(f.headers.len(), 3);
    assert_eq!(
        f.headers.first_occurrences().collect::<Vec<_>>(),
        vec![(&b"destination"[..], &b"/queue/first"[..]), (b"x", b"1")]
    );
    // content-length too: the first one decides the body.
    let f = one_frame(b"SEND\ncontent-length:2\ncontent-length:5\n\na\0\0");
    assert_eq!(&f.body[..], b"a\0");
}

// ---------------------------------------------------------------------------
// Escaping

#[test]
fn rabbitmq_unescapes_every_frame_in_every_version() {
    for version in Version::ALL {
        for command in ["CONNECT", "STOMP", "SEND", "FOO"] {
            let mut c = codec(Dialect::RabbitMq);
            c.set_version(version);
            let input = format!("{command}\na\\cb:1\\n2\\c3\\\\4\\r5\n\n\0");
            let f = frames(decode_chunks(&mut c, input.as_bytes(), 3).unwrap());
            assert_eq!(
                hdrs(&f[0]),
                h(&[("a:b", "1\n2:3\\4\r5")]),
                "{version} {command}"
            );
        }
    }
}

#[test]
fn rabbitmq_rejects_unknown_escapes_everywhere() {
    for input in [
        &b"CONNECT\nlogin:a\\tb\n\n\0"[..],
        b"SEND\nk:\\x\n\n\0",
        b"SEND\nk\\:v\n\n\0",
        b"SEND\nk:v\\\n\n\0",   // backslash LF
        b"SEND\nk:v\\\r\n\n\0", // backslash CR
    ] {
        assert!(
            matches!(decode_err(input), DecodeError::BadEscape { .. }),
            "{input:?}"
        );
    }
    // In the command line a backslash is an ordinary octet.
    let f = one_frame(b"SE\\ND\n\n\0");
    assert_eq!(f.command, Command::Other(Bytes::from_static(b"SE\\ND")));
}

#[test]
fn spec_escaping_per_version() {
    let decode = |version, input: &[u8]| {
        let mut c = codec(Dialect::Spec);
        c.set_version(version);
        decode_chunks(&mut c, input, input.len()).map(frames)
    };
    let send = b"SEND\nk:a\\cb\\nc\\\\d\n\n\0";
    // 1.0: backslashes are literal.
    assert_eq!(
        hdrs(&decode(Version::V1_0, send).unwrap()[0]),
        h(&[("k", "a\\cb\\nc\\\\d")])
    );
    assert_eq!(
        hdrs(&decode(Version::V1_0, b"SEND\nk:\\t\\r\n\n\0").unwrap()[0]),
        h(&[("k", "\\t\\r")])
    );
    // 1.1 and 1.2 unescape; only 1.2 knows \r.
    for v in [Version::V1_1, Version::V1_2] {
        assert_eq!(hdrs(&decode(v, send).unwrap()[0]), h(&[("k", "a:b\nc\\d")]));
        assert!(matches!(
            decode(v, b"SEND\nk:\\t\n\n\0"),
            Err(DecodeError::BadEscape { code: b't' })
        ));
    }
    assert!(matches!(
        decode(Version::V1_1, b"SEND\nk:\\r\n\n\0"),
        Err(DecodeError::BadEscape { code: b'r' })
    ));
    assert_eq!(
        hdrs(&decode(Version::V1_2, b"SEND\nk:\\r\n\n\0").unwrap()[0]),
        h(&[("k", "\r")])
    );
    // CONNECT and STOMP are never unescaped.
    for v in Version::ALL {
        for cmd in ["CONNECT", "STOMP"] {
            let input = format!("{cmd}\npasscode:a\\cb\\t\n\n\0");
            assert_eq!(
                hdrs(&decode(v, input.as_bytes()).unwrap()[0]),
                h(&[("passcode", "a\\cb\\t")])
            );
        }
    }
}

#[test]
fn set_version_applies_from_the_next_frame() {
    let mut c = codec(Dialect::Spec);
    let mut buf = BytesMut::from(&b"CONNECT\naccept-version:1.2\n\n\0SEND\nk:\\r\n\n\0"[..]);
    let Some(Item::Frame(f)) = c.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(f.command, Command::Connect);
    c.set_version(Version::V1_2);
    let Some(Item::Frame(f)) = c.decode(&mut buf).unwrap() else {
        panic!()
    };
    assert_eq!(f.header("k"), Some(&b"\r"[..]));
}

#[test]
fn escapes_round_trip_per_version_and_dialect() {
    let nasty = [
        "plain",
        "a:b",
        "line\nbreak",
        "back\\slash",
        "cr\rhere",
        "\\n literal",
        ":",
        "",
    ];
    for dialect in [Dialect::RabbitMq, Dialect::Spec] {
        for version in [Version::V1_1, Version::V1_2] {
            for cmd in [
                Command::Message,
                Command::Send,
                Command::Error,
                Command::Receipt,
            ] {
                if dialect == Dialect::Spec && version == Version::V1_1 {
                    // STOMP 1.1 has no \r: a CR cannot be sent to a 1.1 peer.
                    continue;
                }
                let pairs: Vec<(String, String)> = nasty
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (format!("{v}{i}"), v.to_string()))
                    .collect();
                let f = Frame::new(
                    cmd.clone(),
                    Headers::from_pairs(pairs.clone()),
                    Bytes::new(),
                );
                let mut c = codec(dialect);
                c.set_version(version);
                let bytes = encode(c.encoder(), &f);
                let back = frames(decode_chunks(&mut c, &bytes, 1).unwrap());
                assert_eq!(back, vec![f], "{dialect:?} {version} {cmd}");
            }
        }
    }
    // 1.0 (Spec): nothing escaped, so anything without LF/CR and without ':' in names
    // survives as is, backslashes included.
    let f = Frame::new(
        Command::Message,
        Headers::from_pairs([("a\\b", "c:d\\n")]),
        Bytes::from_static(b"x"),
    );
    let mut c = codec(Dialect::Spec);
    let bytes = encode(c.encoder(), &f);
    assert_eq!(bytes, b"MESSAGE\na\\b:c:d\\n\ncontent-length:1\n\nx\0\n");
    let back = frames(decode_chunks(&mut c, &bytes, 2).unwrap());
    assert_eq!(
        hdrs(&back[0]),
        h(&[("a\\b", "c:d\\n"), ("content-length", "1")])
    );
    assert_eq!(back[0].body, f.body);
}

// ---------------------------------------------------------------------------
// Bodies

#[test]
fn content_length_body_may_hold_nuls() {
    let f = one_frame(b"SEND\ncontent-length:4\n\n\0\0\0\0\0");
    assert_eq!(&f.body[..], b"\0\0\0\0");
    let f = one_frame(b"SEND\ncontent-length:0\n\n\0");
    assert!(f.body.is_empty());
}

#[test]
fn content_length_is_parsed_like_rabbitmq() {
    // list_to_integer(string:strip(V)): spaces around, a sign, leading zeros.
    for v in ["3", " 3 ", "+3", "003", "  +0003"] {
        let input = format!("SEND\ncontent-length:{v}\n\nabc\0");
        assert_eq!(&one_frame(input.as_bytes()).body[..], b"abc", "{v:?}");
    }
    assert_eq!(one_frame(b"SEND\ncontent-length:-0\n\n\0").body.len(), 0);
    for v in ["", " ", "abc", "3x", "3 3", "\t3", "-1", "0x10", "+", "-"] {
        let input = format!("SEND\ncontent-length:{v}\n\nabc\0");
        assert!(
            matches!(
                decode_err(input.as_bytes()),
                DecodeError::InvalidContentLength
            ),
            "{v:?}"
        );
    }
    assert_eq!(
        parse_integer(b"99999999999999999999"),
        Err(IntegerError::Overflow)
    );
    assert_eq!(parse_integer(b"-42"), Ok(-42));
}

#[test]
fn content_length_must_be_followed_by_nul() {
    assert!(matches!(
        decode_err(b"SEND\ncontent-length:2\n\nabc\0"),
        DecodeError::MissingNul { found: b'c' }
    ));
    // Waits for the octet after the body before deciding.
    let mut c = StompCodec::default();
    let mut buf = BytesMut::from(&b"SEND\ncontent-length:2\n\nab"[..]);
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"\0");
    assert!(matches!(c.decode(&mut buf).unwrap(), Some(Item::Frame(_))));
}

#[test]
fn rabbitmq_reads_content_length_only_on_send() {
    // Any other frame ends at the first NUL, content-length or not, valid or not.
    let f = frames(decode_all(b"ACK\ncontent-length:3\n\na\0c\0").unwrap_or_default());
    assert_eq!(&f[0].body[..], b"a");
    assert_eq!(f[0].command, Command::Ack);
    // "c" then starts a new (still incomplete) frame.
    let f = one_frame(b"MESSAGE\ncontent-length:bogus\n\nxyz\0");
    assert_eq!(&f.body[..], b"xyz");
    // The Spec dialect reads it everywhere (a client decoding MESSAGE frames).
    let mut c = codec(Dialect::Spec);
    let f = frames(decode_chunks(&mut c, b"MESSAGE\ncontent-length:3\n\na\0c\0", 1).unwrap());
    assert_eq!(&f[0].body[..], b"a\0c");
}

// ---------------------------------------------------------------------------
// Limits

fn limited(limits: Limits) -> StompCodec {
    StompCodec::new(Config {
        limits,
        ..Config::default()
    })
}

#[test]
fn header_section_limit() {
    let frame = b"SEND\nk:v\n\n\0"; // header section: 10 octets
    let lim = |n| Limits {
        max_header_section: n,
        ..Limits::DEFAULT
    };
    assert!(decode_chunks(&mut limited(lim(10)), frame, 1).is_ok());
    for chunk in [1, 4, frame.len()] {
        assert!(matches!(
            decode_chunks(&mut limited(lim(9)), frame, chunk),
            Err(DecodeError::HeaderSectionTooLarge { limit: 9 })
        ));
    }
    // An endless header line is refused once it passes the limit, not buffered.
    let mut c = limited(lim(100));
    let mut buf = BytesMut::from(&b"SEND\nk:"[..]);
    buf.extend_from_slice(&[b'x'; 93]);
    assert_eq!(c.decode(&mut buf).unwrap(), None);
    buf.extend_from_slice(b"x");
    assert!(c.decode(&mut buf).is_err());
}

#[test]
fn header_count_limit() {
    let lim = Limits {
        max_headers: 2,
        ..Limits::DEFAULT
    };
    assert!(decode_chunks(&mut limited(lim), b"SEND\na:1\na:2\n\n\0", 64).is_ok());
    assert!(matches!(
        decode_chunks(&mut limited(lim), b"SEND\na:1\na:2\na:3\n\n\0", 64),
        Err(DecodeError::TooManyHeaders { limit: 2 })
    ));
}

#[test]
fn body_limit() {
    let lim = Limits {
        max_body: 4,
        ..Limits::DEFAULT
    };
    for chunk in [1, 3, 100] {
        assert!(decode_chunks(&mut limited(lim), b"SEND\n\nabcd\0", chunk).is_ok());
        assert!(decode_chunks(
            &mut limited(lim),
            b"SEND\ncontent-length:4\n\nab\0d\0",
            chunk
        )
        .is_ok());
        assert!(matches!(
            decode_chunks(&mut limited(lim), b"SEND\n\nabcde\0", chunk),
            Err(DecodeError::BodyTooLarge {
                limit: 4,
                declared: None
            })
        ));
    }
    // A declared length over the limit is refused before any body arrives.
    assert!(matches!(
        decode_chunks(&mut limited(lim), b"SEND\ncontent-length:5\n\n", 100),
        Err(DecodeError::BodyTooLarge {
            limit: 4,
            declared: Some(5)
        })
    ));
    assert!(matches!(
        decode_all(b"SEND\ncontent-length:999999999999999999999999\n\n"),
        Err(DecodeError::BodyTooLarge { declared: None, .. })
    ));
}

#[test]
fn default_limits_and_errors_close_without_error_frame() {
    assert_eq!(Limits::default().max_body, 512 * 1024 * 1024);
    let e = decode_err(b"SEND\nx\n\n\0");
    assert!(e.closes_connection());
    assert!(e.error_frame().is_none());
    assert!(!e.to_string().is_empty());
}

// ---------------------------------------------------------------------------
// Headers API

#[test]
fn typed_header_accessors() {
    let f = one_frame(
        b"ACK\nreceipt:r1\nid:i\nack:a\ntransaction:t\nsubscription:s\nmessage-id:m\n\
          content-type:text/plain\nb1:true\nb2:False\nb3:yes\nn: -17 \n\n\0",
    );
    let hd = &f.headers;
    assert_eq!(hd.receipt(), Some(&b"r1"[..]));
    assert_eq!(hd.id(), Some(&b"i"[..]));
    assert_eq!(hd.ack(), Some(&b"a"[..]));
    assert_eq!(hd.transaction(), Some(&b"t"[..]));
    assert_eq!(hd.subscription(), Some(&b"s"[..]));
    assert_eq!(hd.message_id(), Some(&b"m"[..]));
    assert_eq!(hd.content_type(), Some(&b"text/plain"[..]));
    assert_eq!(hd.boolean("b1"), Some(true));
    assert_eq!(hd.boolean("b2"), Some(false));
    assert_eq!(hd.boolean("b3"), None);
    assert_eq!(hd.integer("n"), Some(Ok(-17)));
    assert_eq!(hd.content_length(), None);
    assert!(hd.contains("ack") && !hd.contains("nope"));
}

#[test]
fn trim_leading_spaces_like_rabbitmq_1_0() {
    let mut f = one_frame(b"SEND\ndestination:  /queue/a \nk:\t x\ne:   \n\n\0");
    f.headers.trim_leading_spaces();
    assert_eq!(
        hdrs(&f),
        h(&[("destination", "/queue/a "), ("k", "\t x"), ("e", "")])
    );
}

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

// ---------------------------------------------------------------------------
// Randomised round trips (a small deterministic PRNG: no extra dependencies)

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, max: usize, alphabet: &[u8]) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n)
            .map(|_| alphabet[self.below(alphabet.len())])
            .collect()
    }
}

const ANY_OCTET_TASTE: &[u8] = b"abc:\\\n\r\0 \xff-/.";

fn random_frame(rng: &mut Rng, dialect: Dialect) -> Frame {
    let commands = [
        Command::Send,
        Command::Message,
        Command::Subscribe,
        Command::Ack,
        Command::Error,
        Command::Other(Bytes::from_static(b"WHATEVER")),
    ];
    let command = commands[rng.below(commands.len())].clone();
    let mut b = HeadersBuilder::new();
    for _ in 0..rng.below(6) {
        let name = rng.bytes(6, ANY_OCTET_TASTE);
        if name == b"content-length" {
            continue;
        }
        b.push(name, rng.bytes(10, ANY_OCTET_TASTE));
    }
    // Bodies with NULs only where a content-length will be read.
    let with_nuls = match dialect {
        Dialect::RabbitMq => command == Command::Send,
        Dialect::Spec => true,
    };
    let alphabet: &[u8] = if with_nuls { b"\0x\n" } else { b"x\n\r" };
    Frame::new(command, b.build(), Bytes::from(rng.bytes(40, alphabet)))
}

#[test]
fn random_frames_round_trip_in_random_chunks() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    for round in 0..400 {
        let dialect = if round % 2 == 0 {
            Dialect::RabbitMq
        } else {
            Dialect::Spec
        };
        let mut c = codec(dialect);
        c.set_version(Version::V1_2);
        let sent: Vec<Frame> = (0..1 + rng.below(5))
            .map(|_| random_frame(&mut rng, dialect))
            .collect();
        let mut wire = BytesMut::new();
        for f in &sent {
            if rng.below(3) == 0 {
                wire.extend_from_slice(b"\r\n\n");
            }
            c.encode(f, &mut wire).unwrap();
        }
        let mut got = Vec::new();
        let mut buf = BytesMut::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(50));
            buf.extend_from_slice(&rest[..n]);
            rest = &rest[n..];
            while let Some(item) = c.decode(&mut buf).unwrap() {
                got.push(item);
            }
        }
        // The decoder sees the content-length the encoder added.
        let strip = |f: &Frame| {
            let pairs: Vec<(Vec<u8>, Vec<u8>)> = f
                .headers
                .iter()
                .filter(|(n, _)| *n != b"content-length")
                .map(|(n, v)| (n.to_vec(), v.to_vec()))
                .collect();
            (f.command.clone(), pairs, f.body.clone())
        };
        let got: Vec<_> = frames(got).iter().map(strip).collect();
        let sent: Vec<_> = sent.iter().map(strip).collect();
        assert_eq!(got, sent, "round {round}");
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(42);
    let alphabet = b"SEND\nCONECT:\\\r\0content-length:0123456789 ncr";
    for _ in 0..3000 {
        let input = rng.bytes(120, alphabet);
        for dialect in [Dialect::RabbitMq, Dialect::Spec] {
            let mut c = StompCodec::new(Config {
                dialect,
                limits: Limits {
                    max_header_section: 40,
                    max_headers: 3,
                    max_body: 30,
                },
                trailing_lf: true,
            });
            let chunk = 1 + rng.below(16);
            if let Ok(items) = decode_chunks(&mut c, &input, chunk) {
                for f in frames(items) {
                    let mut out = BytesMut::new();
                    c.encoder().encode_frame(&f, &mut out);
                    assert_eq!(out.len(), c.encoder().encoded_len(&f));
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Cases from RabbitMQ 3.10's own test suites (frame_SUITE.erl, parsing.py),
// re-stated against this API.

#[test]
fn rabbitmq_frame_suite_cases() {
    // Command only; leading LF, NULs, CR LF before the command.
    for input in [
        &b"COMMAND\n\n\0"[..],
        b"\nCOMMAND\n\n\0",
        b"\0\0COMMAND\n\n\0",
        b"\r\nCOMMAND\n\n\0",
    ] {
        assert_eq!(one_frame(input).command.as_bytes(), b"COMMAND");
    }
    // CR errors: between frames, mid command, CR CR at the end of the command.
    assert!(matches!(
        decode_err(b"\rCOMMAND\n\n\0"),
        DecodeError::UnexpectedCr {
            part: Part::BetweenFrames,
            found: b'C'
        }
    ));
    assert!(matches!(
        decode_err(b"COMM\rAND\n\n\0"),
        DecodeError::UnexpectedCr {
            part: Part::Command,
            found: b'A'
        }
    ));
    assert!(matches!(
        decode_err(b"COMMAND\r\r\n\n\0"),
        DecodeError::UnexpectedCr {
            part: Part::Command,
            found: b'\r'
        }
    ));
    assert!(matches!(
        decode_err(b"COMMAND\nhead\rer:val\n\n\0"),
        DecodeError::UnexpectedCr {
            part: Part::Header,
            found: b'e'
        }
    ));
    assert!(matches!(
        decode_err(b"COMMAND\nheader:val\rue\n\n\0"),
        DecodeError::UnexpectedCr {
            part: Part::Header,
            found: b'u'
        }
    ));
    // No stripping of values by the parser.
    assert_eq!(
        one_frame(b"COMMAND\nheader: foo \n\n\0").header("header"),
        Some(&b" foo "[..])
    );
    // A header line without a colon, after a good one.
    assert!(matches!(
        decode_err(b"COMMAND\nhdr1:val1\nhdrerror\nhdr2:val2\n\n\0"),
        DecodeError::HeaderWithoutValue
    ));
    // No nested escapes: `\\r` is a backslash and an r; none in the command.
    let f = one_frame(b"COM\\\\rAND\nhdr\\\\rname:hdr\\\\rval\n\n\0");
    assert_eq!(f.command.as_bytes(), b"COM\\\\rAND");
    assert_eq!(hdrs(&f), h(&[("hdr\\rname", "hdr\\rval")]));
    // Escaping round trip, with and without the trailing LF.
    for (trailing_lf, wire) in [
        (true, &b"COMMAND\nhead\\r\\c\\ner:\\c\\n\\r\\\\\n\n\0\n"[..]),
        (false, b"COMMAND\nhead\\r\\c\\ner:\\c\\n\\r\\\\\n\n\0"),
    ] {
        let f = one_frame(wire);
        assert_eq!(f.header("head\r:\ner"), Some(&b":\n\r\\"[..]));
        assert_eq!(
            encode(&StompEncoder::new(Dialect::RabbitMq, trailing_lf), &f),
            wire
        );
    }
}

#[test]
fn rabbitmq_parsing_py_bad_command() {
    // parsing.py test_bad_command: the whole ERROR frame RabbitMQ sends.
    let items = decode_all(b"WRONGCOMMAND\ndestination:a\nexchange:amq.fanout\n\n\0").unwrap();
    let f = frames(items).remove(0);
    let err = bad_command_error(&f.command);
    assert_eq!(
        encode(&StompEncoder::new(Dialect::RabbitMq, true), &err),
        &b"ERROR\nmessage:Bad command\ncontent-type:text/plain\nversion:1.0,1.1,1.2\n\
           content-length:43\n\nCould not interpret command \"WRONGCOMMAND\"\n\0\n"[..]
    );
    // test_newline_after_nul_and_leading_nul: NUL before a command is noise.
    let f = frames(
        decode_all(b"\n\0SUBSCRIBE\ndestination:/exchange/amq.fanout\n\n\0\n\0SEND\ndestination:/exchange/amq.fanout\ncontent-type:text/plain\n\nhello\n\0\n")
            .unwrap(),
    );
    assert_eq!(f.len(), 2);
    assert_eq!(&f[1].body[..], b"hello\n");
}

// ---------------------------------------------------------------------------
// Fuzz seeds

/// Regenerates `fuzz/seeds/stomp_decoder` (see fuzz/README.md):
/// `cargo test -p warren-stomp --lib -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/stomp_decoder");
    std::fs::create_dir_all(&dir).expect("create seed dir");
    // First byte (see the fuzz target): bit 0 dialect, bits 1-2 version, bit 3
    // default limits, bits 4-7 chunk size. 0xf8: RabbitMQ, 1.0, default limits,
    // 121-octet chunks; 0x1d: Spec, 1.2, default limits, 9-octet chunks.
    let write = |name: &str, ctl: u8, stream: &[u8]| {
        let mut data = vec![ctl];
        data.extend_from_slice(stream);
        std::fs::write(dir.join(name), data).expect("write seed");
    };
    write("sample-stream", 0xf8, &sample_stream());
    write("sample-stream-spec-1.2", 0x1d, &sample_stream());
    write("sample-stream-tiny-limits", 0x00, &sample_stream());
    let enc = StompEncoder::new(Dialect::RabbitMq, true);
    for name in [
        "CONNECT",
        "STOMP",
        "SEND",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "ACK",
        "NACK",
        "BEGIN",
        "COMMIT",
        "ABORT",
        "DISCONNECT",
        "CONNECTED",
        "MESSAGE",
        "RECEIPT",
        "ERROR",
    ] {
        let command = Command::known(name.as_bytes()).expect("known");
        let f = Frame::new(
            command,
            Headers::from_pairs([
                ("destination", "/queue/a:b"),
                ("receipt", "r\\1"),
                ("id", "0"),
            ]),
            Bytes::from_static(b"body\0with nul"),
        );
        let mut out = BytesMut::new();
        enc.encode_frame(&f, &mut out);
        write(&format!("frame-{name}"), 0xf8, &out);
    }
    write("heartbeats", 0x18, b"\n\r\n\0\nSEND\n\n\0\n\n");
    write(
        "send-content-length",
        0xf8,
        b"SEND\ncontent-length:+0005\ndestination:/topic/t\n\n\0\0\0\0\0\0\r\n",
    );
    write("escapes-1.1", 0x1b, b"SEND\nk\\c:v\\n\\\\\\c\n\n\0");
    write("unknown-command", 0xf8, b"HELLO WORLD\nk:v\n\n\0");
}
