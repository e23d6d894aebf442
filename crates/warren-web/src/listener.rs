//! The accept loop of a web listener: hyper's HTTP/1 server per connection,
//! an axum router for the requests.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::net::TcpListener;
use tower_service::Service;
use tracing::{debug, info, warn};
use warren_core::net::Endpoints;

use crate::takeover::{Takeover, Watched};

/// A web client's two ends, read from its socket when it is accepted (the
/// handlers' `ConnectInfo`).
#[derive(Clone, Debug)]
pub struct ClientEnds(pub Endpoints);

/// Serve `app` on `listener` forever; `name` ("Web-STOMP", "Web-MQTT") is for
/// the log. A client has `handshake_timeout` (the broker's) to send each
/// request's headers, the first one counted from accept; after an upgrade the
/// protocol's login deadline counts from accept too ([`Endpoints::accepted`]),
/// so a slowloris client is dropped whatever it trickles.
///
/// Each connection is served by hyper's HTTP/1 server directly rather than
/// through `axum::serve`, whose protocol-detecting (HTTP/1 or 2) connection
/// costs about 11 KiB more per open connection: 28.5 -> 17.6 KiB of broker
/// RSS per idle SSE feed in `warren perf web-idle --transport sse`. axum is
/// built without HTTP/2, so nothing is lost. A WebSocket leaves hyper once
/// upgraded.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    name: &'static str,
    handshake_timeout: Duration,
) {
    serve_with(listener, app, name, handshake_timeout, None).await
}

/// [`serve`] over TLS (HTTPS, WSS) when `tls` is given: the handshake runs
/// in the connection's task (warren-tls), then hyper serves the encrypted
/// stream the same way. Handlers see the TLS details in `ClientEnds`.
pub async fn serve_with(
    listener: TcpListener,
    app: Router,
    name: &'static str,
    handshake_timeout: Duration,
    tls: Option<Arc<warren_tls::Tls>>,
) {
    let local = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "{name} listener has no address");
            return;
        }
    };
    info!(addr = %local, tls = tls.is_some(), "{name} listener started");
    let mut http = hyper::server::conn::http1::Builder::new();
    // hyper's header timer needs a clock; it is armed from the first read of
    // every request head (so also for an idle keep-alive connection).
    http.timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(handshake_timeout);
    let http = std::sync::Arc::new(http);
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of file descriptors, most likely: wait for some to be
                // released rather than spin (as axum::serve does).
                warn!(error = %e, "{name} accept failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        // A connection's name ("peer -> local") shows the address the client
        // reached, as RabbitMQ's does, not the listener's (maybe 0.0.0.0).
        let mut ends = Endpoints::tcp(peer, tcp.local_addr().unwrap_or(local));
        let app = app.clone();
        let http = http.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => serve_connection(&http, tcp, ends, app).await,
                Some(tls) => {
                    if let Some(stream) = tls.accept(tcp, &mut ends).await {
                        serve_connection(&http, stream, ends, app).await
                    }
                }
            }
        });
    }
}

/// hyper's HTTP/1 server on one (plain or TLS) connection, until it ends or
/// a handler takes the connection over ([`Takeover`]).
async fn serve_connection<S>(
    http: &hyper::server::conn::http1::Builder,
    stream: S,
    ends: Endpoints,
    app: Router,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer = ends.peer;
    let ends = ClientEnds(ends);
    let takeover = Takeover::new();
    let slot = takeover.clone();
    let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
        // What the handlers' ConnectInfo extractors read: the ends (web
        // listeners) or the peer address (the management API).
        req.extensions_mut().insert(ConnectInfo(ends.clone()));
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(slot.clone());
        let mut app = app.clone();
        async move { app.call(req.map(Body::new)).await }
    });
    let mut conn = http
        .serve_connection(
            TokioIo::new(Watched::new(stream, takeover.clone())),
            service,
        )
        .with_upgrades();
    let ended = std::future::poll_fn(|cx| match Pin::new(&mut conn).poll(cx) {
        Poll::Ready(r) => Poll::Ready(Some(r)),
        Poll::Pending if takeover.ready() => Poll::Ready(None),
        Poll::Pending => Poll::Pending,
    })
    .await;
    match ended {
        Some(Ok(())) => {}
        Some(Err(e)) => debug!(%peer, error = %e, "web connection ended"),
        None => {
            // hyper wrote the head and holds nothing unwritten: the socket
            // is the handler's from here (hyper's buffers are freed now).
            let (Some(parts), Some(run)) = (conn.into_parts(), takeover.take()) else {
                return;
            };
            let io = parts.io.into_inner().into_inner();
            run(Box::new(io), parts.read_buf).await;
        }
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
