//! How a frame can fail, and what the client is told.
//!
//! RabbitMQ's STOMP processor has two kinds of failure, and clients see the
//! difference:
//!
//! * **Protocol errors** (a missing header, an unknown subscription, a bad
//!   destination): an ERROR frame with a short `message` and a detail body; the
//!   connection stays open and no RECEIPT is sent for the frame.
//! * **Broker errors** (what would close an AMQP channel: a missing queue, a
//!   refused permission, an inequivalent declare, an unknown delivery tag): the
//!   plugin's internal AMQP channel dies, so the ERROR's `message` is the AMQP
//!   error name in lower case (`not_found`, `access_refused`…), the body is
//!   RabbitMQ's reply text (`NOT_FOUND - no queue 'q' in vhost '/'`), and the
//!   connection is closed.
//!
//! A few frames end the connection without any ERROR (a second CONNECT).

use bytes::Bytes;
use warren_core::error::code;
use warren_core::BrokerError;

use crate::frame::Frame;

#[derive(Debug)]
pub enum Failure {
    /// ERROR frame, connection stays open.
    Error {
        message: &'static str,
        detail: String,
    },
    /// ERROR frame for a broker error, then close.
    Fatal(BrokerError),
    /// ERROR frame with this message and detail, then close.
    FatalMessage {
        message: &'static str,
        detail: String,
    },
    /// Close without a word.
    Silent,
}

pub type Handled = Result<(), Failure>;

impl Failure {
    pub fn error(message: &'static str, detail: impl Into<String>) -> Failure {
        Failure::Error {
            message,
            detail: detail.into(),
        }
    }

    /// What RabbitMQ answers when its processor crashes on a malformed value
    /// (an integer header that is not one, an unknown `ack` mode…).
    pub fn processing() -> Failure {
        Failure::error("Processing error", "Processing error")
    }

    /// Whether the connection closes after this failure.
    pub fn closes(&self) -> bool {
        !matches!(self, Failure::Error { .. })
    }

    /// The HTTP status for this failure where a request, not a frame, asked
    /// (Server-Sent Events): a refused permission is 403, a missing queue or
    /// exchange 404, anything else (a bad destination, a bad header) 400.
    pub fn http_status(&self) -> u16 {
        match self {
            Failure::Fatal(e) if e.code == code::ACCESS_REFUSED => 403,
            Failure::Fatal(e) if e.code == code::NOT_FOUND => 404,
            _ => 400,
        }
    }

    /// A one-line text for an HTTP error body: the ERROR frame's `message`
    /// and detail.
    pub fn text(&self) -> String {
        match self {
            Failure::Error { message, detail } | Failure::FatalMessage { message, detail } => {
                format!("{}: {}", message, detail.trim_end())
            }
            Failure::Fatal(e) => e.reply_text(),
            Failure::Silent => "refused".into(),
        }
    }

    /// The ERROR frame to send, if any.
    pub fn frame(&self) -> Option<Frame> {
        match self {
            Failure::Error { message, detail } | Failure::FatalMessage { message, detail } => {
                Some(Frame::error(
                    message.as_bytes(),
                    &[],
                    Bytes::from(detail.clone().into_bytes()),
                ))
            }
            Failure::Fatal(e) => Some(Frame::error(
                error_name(e.code).as_bytes(),
                &[],
                Bytes::from(e.reply_text().into_bytes()),
            )),
            Failure::Silent => None,
        }
    }
}

impl From<BrokerError> for Failure {
    fn from(e: BrokerError) -> Failure {
        Failure::Fatal(e)
    }
}

/// The AMQP error name RabbitMQ uses as the STOMP `message` of a broker error
/// (`amqp_connection:error_atom/1`).
pub fn error_name(reply_code: u16) -> &'static str {
    match reply_code {
        code::CONTENT_TOO_LARGE => "content_too_large",
        code::NO_ROUTE => "no_route",
        code::NO_CONSUMERS => "no_consumers",
        code::CONNECTION_FORCED => "connection_forced",
        code::INVALID_PATH => "invalid_path",
        code::ACCESS_REFUSED => "access_refused",
        code::NOT_FOUND => "not_found",
        code::RESOURCE_LOCKED => "resource_locked",
        code::PRECONDITION_FAILED => "precondition_failed",
        code::FRAME_ERROR => "frame_error",
        code::SYNTAX_ERROR => "syntax_error",
        code::COMMAND_INVALID => "command_invalid",
        code::CHANNEL_ERROR => "channel_error",
        code::UNEXPECTED_FRAME => "unexpected_frame",
        code::RESOURCE_ERROR => "resource_error",
        code::NOT_ALLOWED => "not_allowed",
        code::NOT_IMPLEMENTED => "not_implemented",
        _ => "internal_error",
    }
}

/// `~p` of a string in an error detail, as Erlang prints it.
pub fn quoted(s: &[u8]) -> String {
    let mut out = Vec::with_capacity(s.len() + 2);
    crate::error::erlang_p_string(s, &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_errors_read_like_rabbitmq() {
        let f = Failure::from(BrokerError::not_found("no queue 'q' in vhost '/'"));
        assert!(f.closes());
        let frame = f.frame().expect("an ERROR frame");
        assert_eq!(frame.header("message"), Some(&b"not_found"[..]));
        assert_eq!(&frame.body[..], b"NOT_FOUND - no queue 'q' in vhost '/'");
        assert!(!Failure::processing().closes());
        assert_eq!(quoted(b"ACK"), "\"ACK\"");
    }
}
