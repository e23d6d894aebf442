//! Warren's web listener (RabbitMQ's Web-STOMP port, 15674): how browsers reach
//! the broker with no gateway in between.
//!
//! * [`ws`]: `GET /ws`, STOMP over WebSocket, as RabbitMQ's Web-STOMP plugin
//!   (subprotocols `v10.stomp`, `v11.stomp`, `v12.stomp`). The WebSocket is
//!   turned into a byte stream in and one message per frame out, and handed
//!   to the STOMP adapter's connection loop unchanged: same login, frames,
//!   subscriptions and errors as a STOMP client on 61613.
//! * [`sse`]: `GET /sse?destination=...`, Server-Sent Events (Warren only). A
//!   feed is a STOMP session with one auto-ack SUBSCRIBE, whose deliveries are
//!   written as `text/event-stream` events by [`event::EventWire`] instead of
//!   STOMP frames: same destinations, permissions and queues.
//! * [`page`]: `GET /`, a small page that shows a feed (`?destination=`), the
//!   README's EventSource example made runnable.
//!
//! HTTP is axum's (hyper underneath); everything about messages is
//! warren-stomp's and the core's.

pub mod auth;
pub mod event;
pub mod page;
pub mod sse;
pub mod ws;

use axum::extract::connect_info::Connected;
use axum::routing::{any, get};
use axum::serve::IncomingStream;
use axum::Router;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tracing::{info, warn};
use warren_core::net::Endpoints;
use warren_core::Broker;

/// What every handler shares.
pub struct Web {
    pub broker: Arc<Broker>,
}

pub type State = axum::extract::State<Arc<Web>>;

/// A web client's two ends, read from its socket when it is accepted: a
/// connection's name ("peer -> local") shows the address the client reached,
/// as RabbitMQ's does, not the listener's (which may be 0.0.0.0).
#[derive(Clone, Copy, Debug)]
pub struct ClientEnds(pub Endpoints);

impl Connected<IncomingStream<'_, TcpListener>> for ClientEnds {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        let socket = stream.io();
        // Every accepted socket passes here once, so Nagle is turned off here
        // too (axum's `tap_io` listener would not let this type read the
        // local address).
        let _ = socket.set_nodelay(true);
        let peer = *stream.remote_addr();
        // (An accepted socket always knows its address.)
        let local = socket
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        ClientEnds(Endpoints { peer, local })
    }
}

/// The routes of the web listener.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/ws", any(ws::upgrade))
        .route("/sse", get(sse::feed))
        .route("/", get(page::index))
        .with_state(web)
}

/// Serve Web-STOMP and SSE on `listener` forever.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "Web-STOMP listener has no address");
            return;
        }
    };
    info!(addr = %local, "Web-STOMP listener started");
    let app = router(Arc::new(Web { broker }));
    if let Err(e) = axum::serve(
        listener,
        app.into_make_service_with_connect_info::<ClientEnds>(),
    )
    .await
    {
        warn!(error = %e, "Web-STOMP listener stopped");
    }
}
