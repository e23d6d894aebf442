//! MQTT over WebSocket, as RabbitMQ's Web-MQTT plugin: `GET /ws` on port
//! 15675, subprotocol `mqtt` (or the older `mqttv3.1`).
//!
//! No second MQTT implementation: the WebSocket becomes a byte stream in and
//! one binary message per packet out ([`warren_web::byte_stream_closing`]), handed to
//! the MQTT adapter's connection loop ([`serve_transport`]) with the same
//! [`Node`] as the TCP listener, so client ids (takeover), sessions, retained
//! messages and permissions are one set across both transports.

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;
use warren_core::net::CloseReason;
use warren_core::net::Endpoints;
use warren_mqtt::connection::{serve_transport, Transport};
use warren_mqtt::Node;
pub use warren_web::Origins;
use warren_web::{byte_stream_closing, ClientEnds, Framing};

/// The subprotocols accepted, best first: `mqtt` (MQTT 3.1.1 and 5.0, the
/// spec's name) and `mqttv3.1` (MQTT 3.1 clients, which RabbitMQ accepts too).
pub const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// Tungstenite's read buffer per connection (its default is 128 KiB up front):
/// it only has to hold WebSocket frame headers, and idle devices are many.
const READ_BUFFER: usize = 1024;

/// Packets are gathered up to this many bytes before the socket is written
/// (and always on flush, once per batch).
const WRITE_BUFFER: usize = 64 * 1024;

/// The largest WebSocket message accepted: MQTT's maximum packet size applies
/// inside the stream, this only bounds what one message makes us buffer.
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Management shows "Web MQTT 3.1.1" as RabbitMQ does.
const WEB_MQTT: Transport = Transport {
    name: "Web-MQTT",
    protocol: "Web MQTT",
    packet_per_write: true,
};

/// The routes of the Web-MQTT listener.
pub fn router(node: Arc<Node>) -> Router {
    Router::new().route("/ws", any(upgrade)).with_state(node)
}

/// Serve Web-MQTT on `listener` forever.
pub async fn serve(listener: TcpListener, node: Arc<Node>) {
    serve_with(listener, node, None, Origins::Any).await
}

/// [`serve`], over TLS (WSS) when `tls` is given, to pages of `origins`
/// only.
pub async fn serve_with(
    listener: TcpListener,
    node: Arc<Node>,
    tls: Option<Arc<warren_tls::Tls>>,
    origins: Origins,
) {
    let timeout = node.broker.limits.handshake_timeout;
    let app = origins.guard(router(node));
    warren_web::serve_with(listener, app, "Web-MQTT", timeout, tls).await
}

async fn upgrade(
    State(node): State<Arc<Node>>,
    ConnectInfo(ClientEnds(ends)): ConnectInfo<ClientEnds>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    // A client offering subprotocols, none of them MQTT's, is not an MQTT
    // client ([MQTT-6.0.0-3]): refuse with 400 as RabbitMQ 3.12+ does (3.10
    // echoes whatever was offered, which browsers then reject). A client
    // offering none is let in, as RabbitMQ does.
    if offers_other_protocols_only(&headers) {
        return (
            StatusCode::BAD_REQUEST,
            [(header::CONNECTION, "close")],
            "Web MQTT: 'mqtt' not included in the offered subprotocols\n",
        )
            .into_response();
    }
    ws.protocols(SUBPROTOCOLS)
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| serve_socket(node, socket, ends))
}

/// True when `Sec-WebSocket-Protocol` is present and names none of ours.
fn offers_other_protocols_only(headers: &HeaderMap) -> bool {
    let mut offered = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .peekable();
    offered.peek().is_some() && !offered.any(|p| SUBPROTOCOLS.contains(&p))
}

async fn serve_socket(node: Arc<Node>, socket: WebSocket, ends: Endpoints) {
    // MQTT over WebSocket is binary messages only (MQTT spec, 6.0). A
    // protocol error closes with 1002, a text message with 1003 (1007 when
    // it is not even UTF-8), as `CloseReason` records them.
    let why = Arc::new(CloseReason::default());
    let (rd, wr) = byte_stream_closing(socket, Framing::Binary, why.clone());
    serve_transport(node, rd, wr, ends, WEB_MQTT, Some(why)).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn offering(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn subprotocol_offers() {
        assert!(!offers_other_protocols_only(&offering(&[])));
        assert!(!offers_other_protocols_only(&offering(&["mqtt"])));
        assert!(!offers_other_protocols_only(&offering(&[
            "stomp, mqttv3.1"
        ])));
        assert!(!offers_other_protocols_only(&offering(&["stomp", "mqtt"])));
        assert!(offers_other_protocols_only(&offering(&["v12.stomp"])));
        assert!(offers_other_protocols_only(&offering(&["stomp, foo"])));
    }
}
