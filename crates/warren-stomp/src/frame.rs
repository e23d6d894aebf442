//! The frame: a command, headers and a body.

use bytes::Bytes;

use crate::command::Command;
use crate::headers::{names, Headers, HeadersBuilder};

/// One STOMP frame. The body is a slice of the read buffer when decoded (no copy),
/// and a shared `Bytes` when sent (so a message body fanned out to many
/// subscribers is never duplicated before it reaches each output buffer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    pub headers: Headers,
    pub body: Bytes,
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Frame(Frame),
    /// End-of-line octets (or NULs) arrived between frames and no frame is complete
    /// yet. The adapter counts this as client activity for heart-beat monitoring.
    /// EOLs already buffered right after a frame are consumed with it and are not
    /// reported separately: the frame itself showed the peer is alive.
    Heartbeat,
}

/// RabbitMQ's list of supported versions, sent in every ERROR frame's `version`
/// header (`string:join(?SUPPORTED_VERSIONS, ",")`).
pub const SUPPORTED_VERSIONS: &str = "1.0,1.1,1.2";

impl Frame {
    pub fn new(command: Command, headers: Headers, body: Bytes) -> Frame {
        Frame {
            command,
            headers,
            body,
        }
    }

    /// The first header called `name`.
    pub fn header(&self, name: impl AsRef<[u8]>) -> Option<&[u8]> {
        self.headers.get(name)
    }

    /// An ERROR frame shaped like RabbitMQ's (`rabbit_stomp_processor:send_error_frame/4`):
    /// headers `message`, `content-type:text/plain`, `version:1.0,1.1,1.2`, then
    /// `extra`, and the detail as the body (the encoder adds `content-length`).
    pub fn error(message: &[u8], extra: &[(&[u8], &[u8])], detail: impl Into<Bytes>) -> Frame {
        let mut h = HeadersBuilder::with_capacity(3 + extra.len(), 64 + message.len());
        h.push(names::MESSAGE, message)
            .push(names::CONTENT_TYPE, "text/plain")
            .push(names::VERSION, SUPPORTED_VERSIONS);
        for (n, v) in extra {
            h.push(n, v);
        }
        Frame::new(Command::Error, h.build(), detail.into())
    }

    /// A CONNECTED frame shaped like RabbitMQ's (`rabbit_stomp_processor:do_login/7`):
    /// `server` (left out when RabbitMQ's `hide_server_info` is set), `session`,
    /// `heart-beat:<send>,<receive>` (milliseconds) and `version`, in that order.
    pub fn connected(
        server: Option<&[u8]>,
        session: &[u8],
        heart_beat: (u64, u64),
        version: crate::Version,
    ) -> Frame {
        let mut h = HeadersBuilder::with_capacity(4, 96 + session.len());
        if let Some(server) = server {
            h.push(names::SERVER, server);
        }
        h.push(names::SESSION, session)
            .push(
                names::HEART_BEAT,
                format!("{},{}", heart_beat.0, heart_beat.1),
            )
            .push(names::VERSION, version.as_str());
        Frame::new(Command::Connected, h.build(), Bytes::new())
    }

    /// A RECEIPT frame for `receipt_id` (`rabbit_stomp_processor:do_receipt/3`).
    pub fn receipt(receipt_id: &[u8]) -> Frame {
        let mut h = HeadersBuilder::with_capacity(1, 10 + receipt_id.len());
        h.push(names::RECEIPT_ID, receipt_id);
        Frame::new(Command::Receipt, h.build(), Bytes::new())
    }
}
