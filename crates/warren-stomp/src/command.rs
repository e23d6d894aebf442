//! Frame commands.
//!
//! The command is the first line of a frame. RabbitMQ compares it as an exact,
//! case-sensitive string, and a line it does not know is not a syntax error: the
//! processor answers it with an ERROR frame ("Bad command") and carries on. So an
//! unknown command decodes as [`Command::Other`] carrying the line as received, and
//! the adapter decides what to do with it.

use bytes::Bytes;

/// A frame's command line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Command {
    // Client frames.
    Connect,
    Stomp,
    Send,
    Subscribe,
    Unsubscribe,
    Ack,
    Nack,
    Begin,
    Commit,
    Abort,
    Disconnect,
    // Server frames.
    Connected,
    Message,
    Receipt,
    Error,
    /// Anything else, byte for byte as it arrived (never empty, never contains LF,
    /// may contain NUL or non-UTF-8 octets).
    Other(Bytes),
}

impl Command {
    /// Recognises a command line. `raw` is only cloned (a reference-count bump) for
    /// unknown commands.
    pub fn from_bytes(raw: &Bytes) -> Command {
        match Command::known(raw) {
            Some(c) => c,
            None => Command::Other(raw.clone()),
        }
    }

    /// The known command spelled `raw`, if any.
    pub fn known(raw: &[u8]) -> Option<Command> {
        Some(match raw {
            b"CONNECT" => Command::Connect,
            b"STOMP" => Command::Stomp,
            b"SEND" => Command::Send,
            b"SUBSCRIBE" => Command::Subscribe,
            b"UNSUBSCRIBE" => Command::Unsubscribe,
            b"ACK" => Command::Ack,
            b"NACK" => Command::Nack,
            b"BEGIN" => Command::Begin,
            b"COMMIT" => Command::Commit,
            b"ABORT" => Command::Abort,
            b"DISCONNECT" => Command::Disconnect,
            b"CONNECTED" => Command::Connected,
            b"MESSAGE" => Command::Message,
            b"RECEIPT" => Command::Receipt,
            b"ERROR" => Command::Error,
            _ => return None,
        })
    }

    /// The command line as sent on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Command::Connect => b"CONNECT",
            Command::Stomp => b"STOMP",
            Command::Send => b"SEND",
            Command::Subscribe => b"SUBSCRIBE",
            Command::Unsubscribe => b"UNSUBSCRIBE",
            Command::Ack => b"ACK",
            Command::Nack => b"NACK",
            Command::Begin => b"BEGIN",
            Command::Commit => b"COMMIT",
            Command::Abort => b"ABORT",
            Command::Disconnect => b"DISCONNECT",
            Command::Connected => b"CONNECTED",
            Command::Message => b"MESSAGE",
            Command::Receipt => b"RECEIPT",
            Command::Error => b"ERROR",
            Command::Other(raw) => raw,
        }
    }

    /// True for the frames a client sends (CONNECT … DISCONNECT).
    pub fn is_client_frame(&self) -> bool {
        matches!(
            self,
            Command::Connect
                | Command::Stomp
                | Command::Send
                | Command::Subscribe
                | Command::Unsubscribe
                | Command::Ack
                | Command::Nack
                | Command::Begin
                | Command::Commit
                | Command::Abort
                | Command::Disconnect
        )
    }
}

impl std::fmt::Display for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}
