//! Protocol versions, and which header escaping applies to a frame.
//!
//! Escaping is the only part of the frame syntax that differs between STOMP versions,
//! and it is also where RabbitMQ departs from the specification, so both rules live
//! here, side by side, behind [`Dialect`].

use crate::command::Command;

/// A STOMP protocol version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Version {
    /// STOMP 1.0: what a connection speaks until CONNECT negotiates something else.
    #[default]
    V1_0,
    V1_1,
    V1_2,
}

impl Version {
    /// Every version, oldest first.
    pub const ALL: [Version; 3] = [Version::V1_0, Version::V1_1, Version::V1_2];

    /// The version as written in `accept-version` / `version` headers.
    pub fn as_str(self) -> &'static str {
        match self {
            Version::V1_0 => "1.0",
            Version::V1_1 => "1.1",
            Version::V1_2 => "1.2",
        }
    }

    /// Parses `1.0`, `1.1` or `1.2` (exactly; RabbitMQ compares version strings).
    pub fn parse(s: &[u8]) -> Option<Version> {
        match s {
            b"1.0" => Some(Version::V1_0),
            b"1.1" => Some(Version::V1_1),
            b"1.2" => Some(Version::V1_2),
            _ => None,
        }
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whose rules the codec follows where RabbitMQ and the STOMP specification disagree.
///
/// | | `RabbitMq` (default) | `Spec` |
/// |---|---|---|
/// | header unescaping on input | always `\n` `\c` `\\` `\r`, every frame and version (CONNECT too) | 1.0: none; 1.1: `\n` `\c` `\\`; 1.2: also `\r`; CONNECT/STOMP: none |
/// | header escaping on output | always the four escapes, every frame (CONNECTED too) | 1.0: none; 1.1/1.2: escapes; CONNECTED: none |
/// | `content-length` on input | only read on SEND; other frames end at the first NUL | read on every frame |
///
/// The `RabbitMq` column is what `rabbit_stomp_frame:parse/2` and `serialize/2` do in
/// RabbitMQ 3.10: the parser runs before the version is known and never looks at it,
/// and the serializer escapes unconditionally. Warren is a RabbitMQ replacement, so
/// that is the default. `Spec` exists for clients of this codec (tests, the load
/// generator) that talk to a server and must read MESSAGE bodies holding NULs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Dialect {
    #[default]
    RabbitMq,
    Spec,
}

/// The set of header escape sequences in force for one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Escaping {
    /// No escapes: a backslash is an ordinary octet (STOMP 1.0, CONNECT/CONNECTED).
    None,
    /// `\n`, `\c` and `\\` (STOMP 1.1).
    V1_1,
    /// `\n`, `\c`, `\\` and `\r` (STOMP 1.2, and RabbitMQ for every frame).
    Full,
}

impl Escaping {
    /// The octet an escape code stands for, or `None` if `code` is not valid here.
    #[inline]
    pub fn unescape(self, code: u8) -> Option<u8> {
        match (self, code) {
            (Escaping::None, _) => None,
            (_, b'n') => Some(b'\n'),
            (_, b'c') => Some(b':'),
            (_, b'\\') => Some(b'\\'),
            (Escaping::Full, b'r') => Some(b'\r'),
            _ => None,
        }
    }

    /// Whether a backslash starts an escape sequence.
    #[inline]
    pub fn active(self) -> bool {
        self != Escaping::None
    }
}

impl Dialect {
    /// Escaping of headers in an *incoming* frame with this command.
    pub fn decode_escaping(self, version: Version, command: &Command) -> Escaping {
        match self {
            Dialect::RabbitMq => Escaping::Full,
            Dialect::Spec => match command {
                Command::Connect | Command::Stomp => Escaping::None,
                // CONNECTED is only ever received by a client, and is not escaped
                // either (STOMP 1.2, "Value Encoding").
                Command::Connected => Escaping::None,
                _ => per_version(version),
            },
        }
    }

    /// Escaping of headers in an *outgoing* frame with this command.
    pub fn encode_escaping(self, version: Version, command: &Command) -> Escaping {
        match self {
            Dialect::RabbitMq => Escaping::Full,
            Dialect::Spec => match command {
                Command::Connect | Command::Stomp | Command::Connected => Escaping::None,
                _ => per_version(version),
            },
        }
    }

    /// Whether an incoming frame with this command has its body length taken from
    /// `content-length`.
    pub fn reads_content_length(self, command: &Command) -> bool {
        match self {
            // rabbit_stomp_frame:parse_body/2 only looks at the header for "SEND".
            Dialect::RabbitMq => *command == Command::Send,
            Dialect::Spec => true,
        }
    }
}

fn per_version(version: Version) -> Escaping {
    match version {
        Version::V1_0 => Escaping::None,
        Version::V1_1 => Escaping::V1_1,
        Version::V1_2 => Escaping::Full,
    }
}
