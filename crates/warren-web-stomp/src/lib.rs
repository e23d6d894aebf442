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
//! HTTP is axum's routing on hyper's HTTP/1 server (warren-web, shared with
//! the other web listeners); everything about messages is warren-stomp's and
//! the core's.

pub mod auth;
pub mod event;
pub mod page;
pub mod sse;
pub mod ws;

use axum::routing::{any, get};
use axum::Router;
use std::sync::Arc;
use tokio::net::TcpListener;
use warren_core::Broker;

pub use warren_web::{ClientEnds, Origins};

/// What every handler shares.
pub struct Web {
    pub broker: Arc<Broker>,
}

pub type State = axum::extract::State<Arc<Web>>;

/// The routes of the web listener.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/ws", any(ws::upgrade))
        .route("/sse", get(sse::feed))
        .route("/", get(page::index))
        .with_state(web)
}

/// Serve Web-STOMP and SSE on `listener` forever (hyper's HTTP/1 server per
/// connection: [`warren_web::serve`]).
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    serve_with(listener, broker, None, Origins::Any).await
}

/// [`serve`], over TLS (HTTPS/WSS) when `tls` is given, to pages of
/// `origins` only.
pub async fn serve_with(
    listener: TcpListener,
    broker: Arc<Broker>,
    tls: Option<Arc<warren_tls::Tls>>,
    origins: Origins,
) {
    let timeout = broker.limits.handshake_timeout;
    let app = origins.guard(router(Arc::new(Web { broker })));
    warren_web::serve_with(listener, app, "Web-STOMP", timeout, tls).await
}
