//! `GET /sse?destination=...`: a Server-Sent Events feed of any STOMP
//! destination, for browsers with no client library (`EventSource`).
//!
//! A feed is a STOMP session that makes one auto-ack SUBSCRIBE and never
//! sends: the destination is resolved, declared, bound and permission-checked
//! exactly as the same SUBSCRIBE frame would be (a `/topic/` feed gets its own
//! auto-delete queue, a `/queue/` feed competes with the queue's other
//! consumers, `durable`/`id`/`x-` parameters work as the STOMP headers do).
//! What differs is the answer: HTTP statuses instead of ERROR frames, and
//! deliveries written as events by [`EventWire`] through the same outlet and
//! writer task as a STOMP connection, so a slow browser gets the same
//! backpressure (its queue stops offering when the outlet is full).
//!
//! Query parameters: `destination` (required), `vhost` (default `/`),
//! `events=message` to leave out the `event:` line; every other parameter is a
//! SUBSCRIBE header (`id`, `durable`, `auto-delete`, `x-queue-name`,
//! `x-stream-offset`, ...).
//!
//! A feed of a stream queue (`/amq/queue/NAME`) numbers its events with the
//! stream offsets, and a reconnecting `EventSource` (`Last-Event-ID: N`)
//! resumes at offset N+1: nothing missed, nothing twice.
//!
//! Status codes: 401 (with `WWW-Authenticate`) without valid credentials, 403
//! when the user may not use the vhost or the destination, 404 when an
//! `/amq/queue/` or `/exchange/` does not exist, 400 for anything else wrong
//! with the request; the body is a short plain text (for a bad destination, the STOMP ERROR
//! frame's message and detail).

use axum::body::Body;
use axum::extract::{ConnectInfo, Query};
use axum::http::{self, header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use bytes::Bytes;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWrite};
use tracing::{debug, info};
use warren_core::connections::{ConnectionInfo, Registration};
use warren_core::gate::Gated;
use warren_core::outlet::{run_writer, OutletReceiver};
use warren_core::stats::ConnectionStats;
use warren_core::FieldTable;
use warren_stomp::headers::HeadersBuilder;
use warren_stomp::session::Session;
use warren_stomp::writer::Outlet;
use warren_stomp::{Command, Frame, Version};
use warren_web::takeover::{Io, Takeover};

use crate::auth::{basic_credentials, CHALLENGE};
use crate::event::{EventNames, EventWire, LAST_CHUNK};
use crate::{ClientEnds, State};

/// A comment line goes out whenever nothing was sent for half of this, so the
/// feed is never silent for longer than 15 s.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// The subscription id of a feed that names none (its consumer tag is
/// `T_sse`, as RabbitMQ would tag a STOMP subscription with that id).
const DEFAULT_ID: &str = "sse";

/// The management API's `protocol` of a feed (Warren only; the event
/// exchange's `protocol` header too).
const PROTOCOL: &str = "SSE";

/// Parameters that are not SUBSCRIBE headers.
const VHOST: &str = "vhost";
const EVENTS: &str = "events";

pub async fn feed(
    state: State,
    ConnectInfo(ClientEnds(ends)): ConnectInfo<ClientEnds>,
    takeover: Option<Extension<Takeover>>,
    method: Method,
    version: http::Version,
    headers: HeaderMap,
    Query(params): Query<Vec<(String, String)>>,
) -> Response {
    let Some(Extension(takeover)) = takeover else {
        // Only warren_web's listener serves this router.
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no connection to take".into(),
        );
    };
    let web = state.0;
    let broker = &web.broker;
    let peer = ends.peer;
    let Some((username, password)) = basic_credentials(&headers) else {
        return unauthorized("credentials required");
    };
    let user = match broker.authenticate(&username, &password, Some(peer.ip())) {
        Ok(u) => u,
        Err(e) => {
            info!(%peer, user = %username, "SSE login failed: {}", e.text);
            return unauthorized("bad credentials");
        }
    };
    let param = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let vhost_name = param(VHOST).unwrap_or("/");
    let vhost = match broker.open_vhost(&user, vhost_name) {
        Ok(v) => v,
        Err(e) => {
            info!(%peer, user = %username, "SSE refused: {}", e.text);
            return text(
                StatusCode::FORBIDDEN,
                format!(
                    "access to vhost '{}' refused for user '{}'",
                    vhost_name, username
                ),
            );
        }
    };
    if param("destination").is_none() {
        return text(StatusCode::BAD_REQUEST, "missing destination".into());
    }
    let names = match param(EVENTS) {
        None | Some("routing-key") => EventNames::RoutingKey,
        Some("message") => EventNames::Message,
        Some(other) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("events must be routing-key or message, not '{}'", other),
            )
        }
    };
    let subscribe = subscribe_frame(&resume_params(params.clone(), &headers));

    let id = broker.next_connection_id();
    let (outlet, rx) = Outlet::new();
    let mut session = Session::new(
        id,
        user.name.clone(),
        ends.name(),
        broker.clone(),
        vhost.clone(),
        Version::V1_2,
        outlet.clone(),
    );
    // Clustered: a durable subscription's queue is replicated first.
    let mut subscribe = subscribe;
    let replicated = session.replicate_first(&mut subscribe).await;
    if let Err(f) = replicated.and_then(|_| session.subscribe_feed(subscribe)) {
        session.close();
        debug!(%peer, user = %username, "SSE subscribe refused: {}", f.text());
        let status = StatusCode::from_u16(f.http_status()).unwrap_or(StatusCode::BAD_REQUEST);
        return text(status, f.text());
    }
    // Registered so that management lists the feed and deleting the vhost or
    // the user ends it; this emits connection.created.
    let stats = Arc::new(ConnectionStats::default());
    let registration = broker.connections.register(ConnectionInfo {
        id,
        name: ends.name(),
        protocol: PROTOCOL.into(),
        protocol_term: PROTOCOL.into(),
        kind: "direct",
        user: user.name.clone(),
        vhost: vhost.clone(),
        peer,
        local: ends.local,
        connected_at: warren_core::queue::now_ms(),
        client_properties: FieldTable::new(),
        auth_mechanism: None,
        heartbeat: HEARTBEAT.as_secs() as u16,
        frame_max: 0,
        channel_max: 1,
        tls: ends.tls.clone(),
        stats: stats.clone(),
        channels: Some(session.deliveries.clone()),
    });
    info!(%peer, conn = id, user = %user.name, vhost = %vhost.name, "SSE feed opened");

    let feed = Feed {
        session,
        _registration: registration,
        peer,
        id,
    };
    if method == Method::HEAD {
        // The head only: nothing would ever read the events.
        drop(feed);
        return event_stream(Response::new(Body::empty()));
    }
    // hyper writes the head (`transfer-encoding: chunked` for HTTP/1.1,
    // close-delimited for 1.0) and lets go of the socket; the feed's writer
    // then writes each batch of events with one write, framing the chunks
    // itself: no hyper body, dispatcher loop or writev of chunk pieces per
    // event (warren_web::takeover).
    let chunked = version != http::Version::HTTP_10;
    let wire = EventWire::new(names, feed.session.feeds_stream).chunked(chunked);
    let body = takeover.claim(Box::new(move |io, _pipelined| {
        Box::pin(run(feed, io, rx, outlet, wire, stats))
    }));
    event_stream(Response::new(body))
}

/// The feed on its socket until it ends: the writer, the broker closing it
/// (vhost or user deleted: what is queued goes out, then the stream's end),
/// or the client going away (its end of the socket reads EOF).
async fn run(
    feed: Feed,
    io: Box<dyn Io>,
    rx: OutletReceiver,
    outlet: Arc<Outlet>,
    wire: EventWire,
    stats: Arc<ConnectionStats>,
) {
    let mut forced = feed._registration.closed.clone();
    let (mut rd, wr) = tokio::io::split(io);
    let mut wr = Ending {
        inner: wr,
        last: if wire.is_chunked() { LAST_CHUNK } else { b"" },
    };
    {
        let writer = run_writer(&mut wr, rx, outlet.clone(), HEARTBEAT, wire, Some(stats));
        tokio::pin!(writer);
        // The client going away: its end reads EOF (it should send nothing;
        // what it sends is read and dropped). Gated, as the close signal
        // below: every delivery wakes this task, and without the gate each
        // wake-up would poll the socket's read side (`split`'s lock, the
        // reactor's readiness) and the close signal (its lock) again.
        let left = Gated::new(async move {
            let mut scratch = [0u8; 64];
            while matches!(rd.read(&mut scratch).await, Ok(n) if n > 0) {}
        });
        // The broker closing the feed (vhost or user deleted).
        let closed = Gated::new(async move {
            while forced.changed().await.is_ok() {
                if forced.borrow_and_update().is_some() {
                    return;
                }
            }
        });
        tokio::select! {
            biased;
            _ = &mut writer => {}
            _ = closed => {
                // Send what is queued, then end the stream.
                outlet.close();
                writer.await;
            }
            _ = left => {}
        }
    }
    // The writer first: it holds the outlet the session delivers to.
    drop(feed);
}

/// The feed's socket for its writer: when the writer ends the stream (the
/// broker closed the feed) the body's last chunk goes out before the
/// shutdown, so the client sees a complete response, not a cut connection.
struct Ending<W> {
    inner: W,
    /// Still to write at shutdown.
    last: &'static [u8],
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Ending<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        while !this.last.is_empty() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, this.last))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            this.last = &this.last[n..];
        }
        ready!(Pin::new(&mut this.inner).poll_flush(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

fn event_stream(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// A feed's STOMP session and registration: dropping it (the feed ended, or
/// hyper failed before the hand-over) closes the session, which removes the
/// feed's subscription, and unregisters the connection.
struct Feed {
    session: Session,
    _registration: Registration,
    peer: SocketAddr,
    id: u64,
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.session.close();
        info!(peer = %self.peer, conn = self.id, "SSE feed closed");
    }
}

/// A browser's `EventSource` reconnects with `Last-Event-ID`, the `id:` of
/// the last event it saw: on a stream feed (where ids are stream offsets) the
/// feed resumes at the next offset, whatever `x-stream-offset` said.
fn resume_params(mut params: Vec<(String, String)>, headers: &HeaderMap) -> Vec<(String, String)> {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if let Some(last) = last {
        params.retain(|(k, _)| k != warren_stomp::stream_offset::HEADER);
        params.push((
            warren_stomp::stream_offset::HEADER.into(),
            format!("offset={}", last.saturating_add(1)),
        ));
    }
    params
}

/// The SUBSCRIBE a feed makes: every parameter but ours as a header, `ack`
/// always `auto` (a browser cannot acknowledge), `id` defaulted.
fn subscribe_frame(params: &[(String, String)]) -> Frame {
    let mut h = HeadersBuilder::new();
    let mut has_id = false;
    for (k, v) in params {
        match k.as_str() {
            VHOST | EVENTS | "ack" => {}
            _ => {
                has_id |= k == "id";
                h.push(k.as_bytes(), v.as_bytes());
            }
        }
    }
    h.push("ack", "auto");
    if !has_id {
        h.push("id", DEFAULT_ID);
    }
    Frame::new(Command::Subscribe, h.build(), Bytes::new())
}

fn text(status: StatusCode, body: String) -> Response {
    let mut body = body;
    body.push('\n');
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

fn unauthorized(why: &str) -> Response {
    let mut r = text(StatusCode::UNAUTHORIZED, why.into());
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(CHALLENGE),
    );
    r
}
