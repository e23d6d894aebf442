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
//! like EOF on a socket, and dropping the writer closes the WebSocket.

#[cfg(doc)]
use axum::extract::ws::WebSocket;
use axum::extract::ws::{Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{future, Sink, SinkExt, Stream, StreamExt};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::io::{CopyToBytes, SinkWriter, StreamReader};

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
    let (sink, stream) = socket.split();
    let input = stream.filter_map(move |m| {
        future::ready(match m {
            // MQTT over WebSocket is binary only: a text message closes the
            // connection ([MQTT-6.0.0-1]; RabbitMQ closes with 1007).
            Ok(Message::Text(_)) if framing == Framing::Binary => Some(Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "text message on a binary-only WebSocket",
            ))),
            Ok(Message::Text(t)) => Some(Ok(Bytes::from(t))),
            Ok(Message::Binary(b)) => Some(Ok(b)),
            // Control messages are the WebSocket layer's business.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => None,
            Err(e) => Some(Err(io::Error::other(e))),
        })
    });
    let output = sink
        .with(move |b: Bytes| future::ready(Ok::<_, axum::Error>(message(b, framing))))
        .sink_map_err(io::Error::other);
    let rd = StreamReader::new(Box::pin(input));
    let wr = SinkWriter::new(CopyToBytes::new(Box::pin(output)));
    (rd, wr)
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
