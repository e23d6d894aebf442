//! Decoding: commands, streaming, heart-beats, line syntax, bodies, limits, headers.

use super::*;

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
