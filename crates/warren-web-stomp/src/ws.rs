//! STOMP over WebSocket (`/ws`), as RabbitMQ's Web-STOMP plugin.
//!
//! No second STOMP implementation: the WebSocket becomes the two halves the
//! STOMP adapter's connection loop takes ([`serve_transport`]).
//!
//! The WebSocket is a byte stream in and one message per frame out
//! ([`warren_web::byte_stream`]): text when the frame is valid UTF-8
//! (RabbitMQ's default `web_stomp.ws_frame = text`), binary otherwise, so a
//! binary body is never mangled.

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::ConnectInfo;
use axum::response::Response;
use std::sync::Arc;
use warren_core::net::Endpoints;
use warren_stomp::connection::{serve_transport, Transport};
use warren_web::{byte_stream, Framing};

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
    let (rd, wr) = byte_stream(socket, Framing::TextIfUtf8);
    serve_transport(web.broker.clone(), rd, wr, ends, WEB_STOMP).await;
}
