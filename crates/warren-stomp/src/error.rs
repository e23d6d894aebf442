//! Decoding errors, and what RabbitMQ does about each.
//!
//! RabbitMQ 3.10's reader (`rabbit_stomp_reader:process_received_bytes/2`) treats
//! every parse failure the same way: it logs `STOMP detected network error: Reason`
//! and stops the connection process with reason `normal`, which closes the socket.
//! **No ERROR frame is sent.** Failures that crash the parser instead of returning
//! `{error, _}` (an unparsable `content-length`, a body not followed by NUL) end the
//! same way, only with a crash report in the log. So every [`DecodeError`] means:
//! close the connection, send nothing. [`DecodeError::error_frame`] spells that out
//! so the adapter has one place to ask.
//!
//! The size limits are Warren's own: RabbitMQ 3.10 has none. RabbitMQ 3.12 added
//! `stomp.max_frame_size` (4 MiB by default), and exceeding it also closes the
//! socket without an ERROR frame (`frame_too_big`), so the limits behave alike.
//!
//! The one frame-level condition RabbitMQ *does* answer with an ERROR frame is an
//! unknown command, which is not a decoding error at all (see [`bad_command_error`]).

use bytes::Bytes;
use std::fmt;

use crate::command::Command;
use crate::frame::Frame;

/// Where in a frame a syntax error was found (RabbitMQ's `unexpected_chars_*` atoms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    BetweenFrames,
    Command,
    Header,
}

/// Why the byte stream could not be decoded. Every variant ends the connection.
#[derive(Debug)]
pub enum DecodeError {
    /// A CR not followed by LF (`{unexpected_chars_between_frames |
    /// unexpected_chars_in_command | unexpected_chars_in_header, [CR, Found]}`).
    UnexpectedCr { part: Part, found: u8 },
    /// A header line without a colon (`{header_no_value, Name}`).
    HeaderWithoutValue,
    /// A backslash followed by something that is not an escape code in force
    /// (`{bad_escape, [$\\, Code]}`).
    BadEscape { code: u8 },
    /// A SEND's `content-length` is not a non-negative integer (RabbitMQ's parser
    /// crashes in `list_to_integer/1` or on a negative length).
    InvalidContentLength,
    /// The `content-length` octets of body are followed by something other than NUL
    /// (RabbitMQ's parser crashes with `badmatch`).
    MissingNul { found: u8 },
    /// The command line and headers exceed [`Limits::max_header_section`](crate::Limits).
    HeaderSectionTooLarge { limit: usize },
    /// More than [`Limits::max_headers`](crate::Limits) headers.
    TooManyHeaders { limit: usize },
    /// The body is, or is declared by `content-length` to be, longer than
    /// [`Limits::max_body`](crate::Limits).
    BodyTooLarge { limit: usize, declared: Option<u64> },
    /// Reading from the socket failed (tokio-util's `Decoder` requires this variant).
    Io(std::io::Error),
}

impl DecodeError {
    /// Whether RabbitMQ closes the connection: always, for a decoding error.
    pub fn closes_connection(&self) -> bool {
        true
    }

    /// The ERROR frame to send before closing: none, as RabbitMQ sends none (the
    /// socket is just closed; see the module documentation).
    pub fn error_frame(&self) -> Option<Frame> {
        None
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::UnexpectedCr { part, found } => {
                let at = match part {
                    Part::BetweenFrames => "between frames",
                    Part::Command => "in command",
                    Part::Header => "in header",
                };
                write!(f, "unexpected chars {at}: CR followed by 0x{found:02x}")
            }
            DecodeError::HeaderWithoutValue => f.write_str("header without value"),
            DecodeError::BadEscape { code } => write!(f, "bad escape \\{}", code.escape_ascii()),
            DecodeError::InvalidContentLength => f.write_str("invalid content-length"),
            DecodeError::MissingNul { found } => {
                write!(f, "body not followed by NUL (found 0x{found:02x})")
            }
            DecodeError::HeaderSectionTooLarge { limit } => {
                write!(f, "frame headers longer than {limit} bytes")
            }
            DecodeError::TooManyHeaders { limit } => write!(f, "more than {limit} headers"),
            DecodeError::BodyTooLarge { limit, declared } => match declared {
                Some(n) => write!(f, "content-length {n} exceeds the body limit of {limit}"),
                None => write!(f, "frame body longer than {limit} bytes"),
            },
            DecodeError::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for DecodeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DecodeError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for DecodeError {
    fn from(e: std::io::Error) -> DecodeError {
        DecodeError::Io(e)
    }
}

/// The ERROR frame RabbitMQ sends for a command it does not know, once the client is
/// connected (`rabbit_stomp_processor:handle_frame/3`, last clause): `message:Bad
/// command`, body `Could not interpret command ~p~n`. The connection stays open, and
/// no RECEIPT is sent even if the frame asked for one.
///
/// (Before CONNECT, RabbitMQ answers *any* non-CONNECT frame with
/// `Illegal command` / `You must log in using CONNECT first`; that is the adapter's
/// business.)
pub fn bad_command_error(command: &Command) -> Frame {
    let mut detail = b"Could not interpret command ".to_vec();
    erlang_p_string(command.as_bytes(), &mut detail);
    detail.push(b'\n');
    Frame::error(b"Bad command", &[], Bytes::from(detail))
}

/// Appends how Erlang's `io_lib:format("~p", [Bytes])` prints a list of octets
/// (with the default latin1 printable range): a quoted string with `"` and `\`
/// and the control characters Erlang considers printable escaped, or, if any octet
/// is not printable, a list of integers.
///
/// Not reproduced: `~p` folds terms wider than its 80-column line, so an integer
/// list longer than about 50 characters would come out over several lines in
/// RabbitMQ.
pub fn erlang_p_string(s: &[u8], out: &mut Vec<u8>) {
    fn printable(b: u8) -> bool {
        matches!(b, 0x20..=0x7e | 0xa0..=0xff | b'\n' | b'\r' | b'\t' | 0x0b | 0x08 | 0x0c | 0x1b)
    }
    if s.is_empty() {
        out.extend_from_slice(b"[]");
    } else if s.iter().all(|&b| printable(b)) {
        out.push(b'"');
        for &b in s {
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x0b => out.extend_from_slice(b"\\v"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                0x1b => out.extend_from_slice(b"\\e"),
                _ => out.push(b),
            }
        }
        out.push(b'"');
    } else {
        out.push(b'[');
        for (i, b) in s.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b.to_string().as_bytes());
        }
        out.push(b']');
    }
}
