//! Header escaping in both directions, per dialect and version.

use super::*;

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
