//! A WebSocket as a byte stream, for a protocol adapter's connection loop.
//!
//! * In: the payload of every text or binary message, in order, as one byte
//!   stream. A protocol frame split over several messages, or several frames
//!   in one message, decode exactly as they would from TCP.
//! * Out: each write is one WebSocket message ([`Framing`] says text or
//!   binary). The adapter writes one frame per write (the core's
//!   `WireEncoder::item_per_write`), so each frame is one message, as
//!   RabbitMQ's Web-STOMP and Web-MQTT send them. The socket's sink buffers
//!   messages and is flushed once per batch.
//!
//! Pings are answered by the WebSocket layer; a close message ends the input
//! like EOF on a socket, and shutting the writer down closes the WebSocket:
//! with the code and reason of the shared [`CloseReason`] when the adapter (a
//! protocol error: 1002) or the reader (a text message on a binary-only
//! socket: 1003; text that is not UTF-8: 1007) recorded one.

#[cfg(doc)]
use axum::extract::ws::WebSocket;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{future, Sink, SinkExt, Stream, StreamExt};
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::{CopyToBytes, SinkWriter, StreamReader};
use warren_core::net::CloseReason;

/// How outgoing messages are typed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Text when the bytes are valid UTF-8, binary otherwise (STOMP: RabbitMQ's
    /// default `web_stomp.ws_frame = text`, without mangling binary bodies).
    TextIfUtf8,
    /// Always binary, both ways: a text message from the client is an input
    /// error (MQTT over WebSocket, which the spec requires).
    Binary,
}

/// The socket as (reader, writer) halves for an adapter's connection loop.
/// Generic over the socket (axum's [`WebSocket`] in the server) so that the
/// fuzz target `ws_framing` drives exactly this code with made-up messages.
pub fn byte_stream<S>(
    socket: S,
    framing: Framing,
) -> (
    impl AsyncRead + Unpin + Send + 'static,
    impl AsyncWrite + Unpin + Send + 'static,
)
where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Send
        + 'static,
{
    byte_stream_closing(socket, framing, Arc::default())
}

/// [`byte_stream`], closing with the code and reason recorded in `why`.
pub fn byte_stream_closing<S>(
    socket: S,
    framing: Framing,
    why: Arc<CloseReason>,
) -> (
    impl AsyncRead + Unpin + Send + 'static,
    impl AsyncWrite + Unpin + Send + 'static,
)
where
    S: Stream<Item = Result<Message, axum::Error>>
        + Sink<Message, Error = axum::Error>
        + Send
        + 'static,
{
    let (sink, stream) = socket.split();
    let reader_why = why.clone();
    let input = stream.filter_map(move |m| {
        future::ready(match m {
            // MQTT over WebSocket is binary only: a text message closes the
            // connection ([MQTT-6.0.0-1]) with 1003, "unsupported data"
            // (RabbitMQ 3.10 ignores such a message; 1003 is RFC 6455's code
            // for a message type the endpoint does not accept).
            Ok(Message::Text(_)) if framing == Framing::Binary => {
                reader_why.set(CloseReason::UNSUPPORTED_DATA, "binary messages only");
                Some(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "text message on a binary-only WebSocket",
                )))
            }
            Ok(Message::Text(t)) => Some(Ok(Bytes::from(t))),
            Ok(Message::Binary(b)) => Some(Ok(b)),
            // Control messages are the WebSocket layer's business.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => None,
            Err(e) => {
                // A text message that is not UTF-8: 1007, as RabbitMQ (its
                // WebSocket library) closes. (The error's text is the only
                // sign axum gives of its kind.)
                if e.to_string().contains("UTF-8") {
                    reader_why.set(CloseReason::INVALID_PAYLOAD, "");
                }
                Some(Err(io::Error::other(e)))
            }
        })
    });
    let output = Closing {
        sink: Box::pin(sink),
        why,
        sent: false,
    }
    .with(move |b: Bytes| future::ready(Ok::<_, io::Error>(message(b, framing))));
    let rd = StreamReader::new(Box::pin(input));
    let wr = SinkWriter::new(CopyToBytes::new(Box::pin(output)));
    (rd, wr)
}

/// The socket's sink, which sends a close frame with the recorded code
/// before closing (without one, the WebSocket layer's close has no code).
struct Closing<K> {
    sink: Pin<Box<K>>,
    why: Arc<CloseReason>,
    sent: bool,
}

impl<K: Sink<Message, Error = axum::Error>> Sink<Message> for Closing<K> {
    type Error = io::Error;

    fn poll_ready(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sink.as_mut().poll_ready(cx).map_err(io::Error::other)
    }

    fn start_send(mut self: Pin<&mut Self>, m: Message) -> io::Result<()> {
        self.sink.as_mut().start_send(m).map_err(io::Error::other)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.sink.as_mut().poll_flush(cx).map_err(io::Error::other)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.sent {
            if let Some((code, reason)) = self.why.get() {
                ready!(self.sink.as_mut().poll_ready(cx)).map_err(io::Error::other)?;
                // A close frame's reason has at most 123 bytes.
                let mut end = reason.len().min(123);
                while !reason.is_char_boundary(end) {
                    end -= 1;
                }
                let frame = CloseFrame {
                    code,
                    reason: Utf8Bytes::from(&reason[..end]),
                };
                self.sink
                    .as_mut()
                    .start_send(Message::Close(Some(frame)))
                    .map_err(io::Error::other)?;
            }
            self.sent = true;
        }
        self.sink.as_mut().poll_close(cx).map_err(io::Error::other)
    }
}

/// One write as one WebSocket message.
fn message(b: Bytes, framing: Framing) -> Message {
    match framing {
        Framing::Binary => Message::Binary(b),
        // (A `Bytes` clone is a reference count, not a copy.)
        Framing::TextIfUtf8 => match Utf8Bytes::try_from(b.clone()) {
            Ok(text) => Message::Text(text),
            Err(_) => Message::Binary(b),
        },
    }
}
