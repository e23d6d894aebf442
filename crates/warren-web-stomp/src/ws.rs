//! STOMP over WebSocket (`/ws`), as RabbitMQ's Web-STOMP plugin.
//!
//! No second STOMP implementation: the WebSocket becomes the two halves the
//! STOMP adapter's connection loop takes ([`serve_transport`]).
//!
//! * In: the payload of every text or binary message, in order, as one byte
//!   stream. A frame split over several messages, or several frames in one
//!   message, decode exactly as they would from TCP.
//! * Out: each frame (and heart-beat) is one WebSocket message, as RabbitMQ
//!   sends them; text when it is valid UTF-8 (RabbitMQ's default
//!   `web_stomp.ws_frame = text`), binary otherwise, so a binary body is never
//!   mangled. The sink buffers messages and is flushed once per batch.
//!
//! Pings are answered by the WebSocket layer; a close message ends the input
//! like EOF on a socket, and closing our side sends a close message.

use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::ConnectInfo;
use axum::response::Response;
use bytes::Bytes;
use futures_util::{future, SinkExt, StreamExt};
use std::io;
use std::sync::Arc;
use tokio_util::io::{CopyToBytes, SinkWriter, StreamReader};
use warren_core::net::Endpoints;
use warren_stomp::connection::{serve_transport, Transport};

use crate::{ClientEnds, State, Web};

/// The subprotocols of RabbitMQ's Web-STOMP, best first: a client offering
/// several gets the newest (the STOMP version itself is negotiated by CONNECT,
/// as on TCP).
pub const SUBPROTOCOLS: [&str; 3] = ["v12.stomp", "v11.stomp", "v10.stomp"];

/// The read buffer a connection starts with. tungstenite's default is 128 KiB
/// per connection, allocated up front; browsers' STOMP frames are small and
/// idle subscribers many. It only has to hold frame headers: once a header
/// announces a bigger payload, tungstenite reserves room for all of it.
/// (4 KiB -> 1 KiB: 3 KiB less RSS per idle Web-STOMP subscriber.)
const READ_BUFFER: usize = 1024;

/// Messages are gathered up to this many bytes before the socket is written
/// (and always on flush, once per batch).
const WRITE_BUFFER: usize = 64 * 1024;

/// The largest WebSocket message accepted: STOMP's own frame limits apply
/// inside it, this only bounds what one message can make us buffer.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

const WEB_STOMP: Transport = Transport {
    name: "Web-STOMP",
    protocol: "Web STOMP",
    frame_per_write: true,
    // The STOMP decoder copies from whole WebSocket messages; it grows when a
    // frame is bigger (3.5 KiB less RSS per idle subscriber than TCP's 4 KiB).
    read_buffer: 512,
};

pub async fn upgrade(
    state: State,
    ConnectInfo(ClientEnds(ends)): ConnectInfo<ClientEnds>,
    ws: WebSocketUpgrade,
) -> Response {
    let web = state.0;
    ws.protocols(SUBPROTOCOLS)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve_socket(web, socket, ends))
}

async fn serve_socket(web: Arc<Web>, socket: WebSocket, ends: Endpoints) {
    let (sink, stream) = socket.split();
    let input = stream.filter_map(|m| {
        future::ready(match m {
            Ok(Message::Text(t)) => Some(Ok(Bytes::from(t))),
            Ok(Message::Binary(b)) => Some(Ok(b)),
            // Control messages are the WebSocket layer's business.
            Ok(Message::Ping(_) | Message::Pong(_) | Message::Close(_)) => None,
            Err(e) => Some(Err(io::Error::other(e))),
        })
    });
    let output = sink
        .with(|b: Bytes| future::ready(Ok::<_, axum::Error>(message(b))))
        .sink_map_err(io::Error::other);
    let rd = StreamReader::new(Box::pin(input));
    let wr = SinkWriter::new(CopyToBytes::new(Box::pin(output)));
    serve_transport(web.broker.clone(), rd, wr, ends, WEB_STOMP).await;
}

/// One frame as one WebSocket message.
fn message(b: Bytes) -> Message {
    // (A `Bytes` clone is a reference count, not a copy.)
    match Utf8Bytes::try_from(b.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(b),
    }
}
