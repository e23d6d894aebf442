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
//! HTTP is axum's routing on hyper's HTTP/1 server; everything about
//! messages is warren-stomp's and the core's.

pub mod auth;
pub mod event;
pub mod page;
pub mod sse;
pub mod ws;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::routing::{any, get};
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_service::Service;
use tracing::{debug, info, warn};
use warren_core::net::Endpoints;
use warren_core::Broker;

/// What every handler shares.
pub struct Web {
    pub broker: Arc<Broker>,
}

pub type State = axum::extract::State<Arc<Web>>;

/// A web client's two ends, read from its socket when it is accepted (the
/// handlers' `ConnectInfo`).
#[derive(Clone, Copy, Debug)]
pub struct ClientEnds(pub Endpoints);

/// The routes of the web listener.
pub fn router(web: Arc<Web>) -> Router {
    Router::new()
        .route("/ws", any(ws::upgrade))
        .route("/sse", get(sse::feed))
        .route("/", get(page::index))
        .with_state(web)
}

/// Serve Web-STOMP and SSE on `listener` forever.
///
/// Each connection is served by hyper's HTTP/1 server directly rather than
/// through `axum::serve`, whose protocol-detecting (HTTP/1 or 2) connection
/// costs about 11 KiB more per open connection: 28.5 -> 17.6 KiB of broker
/// RSS per idle SSE feed in `warren perf web-idle --transport sse`. axum is
/// built without HTTP/2, so nothing is lost. A Web-STOMP connection leaves
/// hyper once upgraded.
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
    let http = Arc::new(hyper::server::conn::http1::Builder::new());
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to be
                // released rather than spin (as axum::serve does).
                warn!(error = %e, "Web-STOMP accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // A connection's name ("peer -> local") shows the address the client
        // reached, as RabbitMQ's does, not the listener's (maybe 0.0.0.0).
        let ends = ClientEnds(Endpoints {
            peer,
            local: tcp.local_addr().unwrap_or(local),
        });
        let app = app.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
                // What the handlers' ConnectInfo extractor reads.
                req.extensions_mut().insert(ConnectInfo(ends));
                let mut app = app.clone();
                async move { app.call(req.map(Body::new)).await }
            });
            if let Err(e) = http
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await
            {
                debug!(%peer, error = %e, "web connection ended");
            }
        });
    }
}

/// Errors of one connection being accepted, not of the listener.
fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
