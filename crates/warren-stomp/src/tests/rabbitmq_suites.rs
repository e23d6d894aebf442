//! Cases from RabbitMQ 3.10's own test suites, re-stated against this API.

use super::*;

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
