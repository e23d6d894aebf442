//! One STOMP client connection: login, the read loop, heart-beats, closing.
//!
//! Until a CONNECT (or STOMP) frame logs in, replies are written straight to
//! the socket; nothing else can be sent yet. After it, the connection has a
//! writer task fed by an [`Outlet`] (the core's outbound FIFO, shared with
//! deliveries from queues), and this task reads frames and hands them to the
//! [`Session`]. Reads are batched: every frame already buffered is handled
//! before SEND receipts are flushed, so a burst of persistent SENDs waits for
//! one fsync, not one each.
//!
//! Closing never resets a client that is still writing (see
//! [`warren_core::net`]): the writer sends what is queued and shuts down our
//! half of the socket (the client sees EOF at once), and this task keeps
//! reading and dropping input until the client closes its half or a timeout
//! passes.

use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};
use warren_core::connections::ConnectionInfo;
use warren_core::net::Endpoints;
use warren_core::net::{closing_timeout, discard_until_eof, SILENT_CLOSE_DELAY};
use warren_core::outlet::run_writer;
use warren_core::stats::{ConnectionStats, CountingReader};
use warren_core::{Broker, BrokerError, FieldTable, FieldValue, VHost};

use crate::codec::{Config, StompCodec};
use crate::command::Command;
use crate::decode::Limits;
use crate::encode::StompEncoder;
use crate::error::DecodeError;
use crate::failure::{error_name, Failure};
use crate::frame::{Frame, Item};
use crate::heartbeat::{Heartbeat, Monitor};
use crate::names;
use crate::session::{Flow, Session};
use crate::version::{Dialect, Version};
use crate::writer::{send, Outbound, Outlet, StompWire};

/// How incoming frames are read: the STOMP specification's rules per
/// negotiated version (1.0: no escapes, so a 1.0 client's literal backslash
/// stays one; 1.1: `\n` `\c` `\\`; 1.2: also `\r`; CONNECT never unescaped;
/// `content-length` on every frame). RabbitMQ applies the 1.2 escapes to every
/// frame of every version, which closes a 1.0 connection whose header holds
/// `C:\path` (a bad escape): a difference only in Warren's favour.
pub const DECODE_DIALECT: Dialect = Dialect::Spec;

/// How outgoing frames are written: RabbitMQ's rule, the four escapes in every
/// version. The specification's (no escaping for 1.0) cannot carry an EOL in a
/// 1.0 header at all, and stomp.py, which unescapes whatever the version, shows
/// RabbitMQ's escaped values intact; the scenario test
/// `test_headers_with_special_characters_reach_stomp_subscribers[1.0]` fails
/// with the specification's rule and passes with RabbitMQ's.
pub const ENCODE_DIALECT: Dialect = Dialect::RabbitMq;

/// LF after every frame's NUL, as RabbitMQ (its `stomp.trailing_lf`).
const TRAILING_LF: bool = true;

/// The `server` header of CONNECTED.
fn server_header() -> String {
    format!("Warren/{}", env!("CARGO_PKG_VERSION"))
}

fn codec_config() -> Config {
    Config {
        dialect: DECODE_DIALECT,
        limits: Limits::DEFAULT,
        trailing_lf: TRAILING_LF,
    }
}

/// The ERROR sent before closing on input that does not parse. RabbitMQ 3.10
/// closes silently; issue 10 asks for a word first.
fn invalid_frame(e: &DecodeError) -> Frame {
    Frame::error(
        b"Invalid frame",
        &[],
        Bytes::from(format!("Could not parse frame: {e}\n").into_bytes()),
    )
}

/// A successful CONNECT.
struct Login {
    user: String,
    vhost: Arc<VHost>,
    version: Version,
    heartbeat: Heartbeat,
}

/// What carries the frames of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Transport {
    /// For logs: "STOMP" or "Web-STOMP".
    pub name: &'static str,
    /// RabbitMQ's protocol name for it: management shows "NAME VERSION"
    /// ("STOMP 1.2", "Web STOMP 1.2").
    pub protocol: &'static str,
    /// Every frame is a write of its own: the writer of a message transport
    /// (WebSocket) makes each write one message.
    pub frame_per_write: bool,
    /// The frame decoder's initial buffer (it grows for bigger frames). Idle
    /// connections keep it: a WebSocket's input arrives as whole messages
    /// already buffered by the WebSocket layer, so it can start small.
    pub read_buffer: usize,
}

impl Transport {
    /// A TCP socket: a byte stream, frames batched into writes.
    pub const TCP: Transport = Transport {
        name: "STOMP",
        protocol: "STOMP",
        frame_per_write: false,
        read_buffer: 4096,
    };
}

/// Serve one accepted socket until it closes.
pub async fn serve_connection<S>(broker: Arc<Broker>, socket: S, ends: Endpoints)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, wr) = tokio::io::split(socket);
    serve_transport(broker, rd, wr, ends, Transport::TCP).await
}

/// The `client_properties` RabbitMQ's STOMP plugin gives its connections.
fn client_properties() -> FieldTable {
    let mut t = FieldTable::new();
    t.insert("product", FieldValue::string("STOMP client"));
    t
}

/// Serve a connection given as its two halves: bytes from the client (`rd`)
/// and to it (`wr`). A WebSocket adapter passes the messages it receives as
/// `rd` (frames may span messages, and a message may hold several frames) and
/// a writer that makes each write one message as `wr`.
pub async fn serve_transport<R, W>(
    broker: Arc<Broker>,
    rd: R,
    mut wr: W,
    ends: Endpoints,
    transport: Transport,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (peer, name) = (ends.peer, ends.name());
    let stats = Arc::new(ConnectionStats::default());
    let rd = CountingReader::new(rd, stats.clone());
    let mut frames =
        FramedRead::with_capacity(rd, StompCodec::new(codec_config()), transport.read_buffer);
    // The broker's handshake_timeout from accept (RabbitMQ's
    // `stomp.login_timeout`, also 10 s).
    let deadline = ends.handshake_deadline(broker.limits.handshake_timeout);
    // RabbitMQ's ssl_cert_login: a CONNECT without credentials on a TLS
    // connection with a verified certificate logs in as its user.
    let cert_user = ends
        .tls
        .as_ref()
        .filter(|t| t.cert_login)
        .and_then(|t| t.login.clone());
    let Some(login) = handshake(
        &broker,
        &mut frames,
        &mut wr,
        peer,
        &stats,
        deadline,
        cert_user.as_deref(),
    )
    .await
    else {
        return;
    };
    let id = broker.next_connection_id();
    let session_id = names::session_id(login.vhost.generate_queue_name().as_bytes());
    frames.decoder_mut().set_version(login.version);
    // A body over max_message_size is refused while it is being read, so a
    // client cannot make the broker buffer more than that for one frame.
    let max_body = usize::try_from(broker.limits.max_message_size).unwrap_or(usize::MAX);
    frames
        .decoder_mut()
        .decoder_mut()
        .set_max_body(max_body.min(Limits::DEFAULT.max_body));
    let (outlet, rx) = Outlet::new();
    let wire = StompWire::new(
        ENCODE_DIALECT,
        login.version,
        Bytes::from(session_id.clone().into_bytes()),
        TRAILING_LF,
    )
    .frame_per_write(transport.frame_per_write);
    let writer = tokio::spawn(run_writer(
        wr,
        rx,
        outlet.clone(),
        login.heartbeat.send_interval(),
        wire,
        Some(stats.clone()),
    ));
    let server = server_header();
    send(
        &outlet,
        Outbound::Frame(Frame::connected(
            Some(server.as_bytes()),
            session_id.as_bytes(),
            login.heartbeat.announced(),
            login.version,
        )),
    );
    info!(%peer, conn = id, user = %login.user, vhost = %login.vhost.name,
        version = %login.version, via = transport.name, "STOMP connection opened");
    let mut session = Session::new(
        id,
        login.user.clone(),
        name.clone(),
        broker.clone(),
        login.vhost.clone(),
        login.version,
        outlet.clone(),
    );
    // Registered so that management lists us and deleting the vhost or the
    // user closes us; this emits connection.created.
    let registration = broker.connections.register(ConnectionInfo {
        id,
        name,
        protocol: format!("{} {}", transport.protocol, login.version).into(),
        protocol_term: format!("{{'{}',\"{}\"}}", transport.protocol, login.version).into(),
        kind: "direct",
        user: login.user,
        vhost: login.vhost,
        peer,
        local: ends.local,
        connected_at: warren_core::queue::now_ms(),
        client_properties: client_properties(),
        auth_mechanism: None,
        heartbeat: u16::try_from(login.heartbeat.receive).unwrap_or(u16::MAX),
        frame_max: 0,
        channel_max: 1,
        tls: ends.tls.clone(),
        stats,
        channels: Some(session.deliveries.clone()),
    });
    let mut forced = registration.closed.clone();
    let end = run(&mut session, &mut frames, &mut forced, login.heartbeat).await;
    // Answered SENDs are on disk before their RECEIPT; a DISCONNECT waits for
    // the ones still pending, so its own RECEIPT comes last.
    if let End::Disconnect(_) = &end {
        wait_for_receipts(&mut session).await;
    }
    session.close();
    drop(registration);
    let linger = match &end {
        End::Disconnect(receipt) => {
            if let Some(r) = receipt {
                send(&outlet, Outbound::Frame(Frame::receipt(r)));
            }
            Some(closing_timeout(login.heartbeat.receive))
        }
        End::Closed => Some(SILENT_CLOSE_DELAY),
        End::Forced(e) => {
            send(
                &outlet,
                Outbound::Frame(Failure::Fatal(e.clone()).frame_or_none()),
            );
            Some(SILENT_CLOSE_DELAY)
        }
        End::Decode(e) => {
            send(&outlet, Outbound::Frame(invalid_frame(e)));
            Some(SILENT_CLOSE_DELAY)
        }
        End::TooLarge(e) => {
            send(
                &outlet,
                Outbound::Frame(Failure::Fatal(e.clone()).frame_or_none()),
            );
            Some(SILENT_CLOSE_DELAY)
        }
        End::Eof | End::HeartbeatTimeout => None,
    };
    match &end {
        End::Eof | End::Disconnect(_) => {
            info!(%peer, conn = id, via = transport.name, "STOMP connection closed")
        }
        End::Closed => {
            info!(%peer, conn = id, via = transport.name, "STOMP connection closed after an error")
        }
        End::Forced(e) | End::TooLarge(e) => {
            info!(%peer, conn = id, via = transport.name, "STOMP connection closed: {}", e)
        }
        End::Decode(e) => {
            warn!(%peer, conn = id, via = transport.name, "STOMP connection closed: unparsable input: {}", e)
        }
        End::HeartbeatTimeout => warn!(%peer, conn = id, via = transport.name,
            "STOMP connection closed: missed heart-beats from client, timeout"),
    }
    // The writer sends what is queued, then shuts our half of the socket down.
    outlet.close();
    if let Some(t) = linger {
        discard_until_eof(frames.get_mut(), t).await;
    }
    finish_writer(writer).await;
}

/// Why the read loop ended.
enum End {
    /// The client closed the socket.
    Eof,
    Disconnect(Option<Bytes>),
    /// A frame failed in a way that closes the connection (its ERROR is queued).
    Closed,
    /// The broker closed the connection (its vhost or user was deleted).
    Forced(BrokerError),
    Decode(DecodeError),
    /// A SEND over max_message_size: RabbitMQ's 406, as its internal AMQP
    /// channel gives it (an ERROR `precondition_failed`, then close).
    TooLarge(BrokerError),
    HeartbeatTimeout,
}

impl Failure {
    /// The ERROR frame of a broker error (never absent for `Fatal`).
    fn frame_or_none(&self) -> Frame {
        self.frame()
            .unwrap_or_else(|| Frame::error(error_name(0).as_bytes(), &[], Bytes::new()))
    }
}

async fn run<R: AsyncRead + Unpin>(
    session: &mut Session,
    frames: &mut FramedRead<R, StompCodec>,
    forced: &mut warren_core::connections::Closed,
    heartbeat: Heartbeat,
) -> End {
    let mut alarm = session.broker.alarm();
    let log = session.vhost.store().log.clone();
    let mut durable = log.durable();
    let mut waiting = false;
    let confirm_wake = session.confirm_wake.clone();
    let check_every = Duration::from_secs(heartbeat.receive.max(1));
    let mut monitor = (heartbeat.receive > 0).then(Monitor::new);
    let mut ticks = tokio::time::interval_at(Instant::now() + check_every, check_every);
    loop {
        // A resource alarm stops reading from connections that publish, as
        // RabbitMQ does; deliveries keep flowing. The silence is ours, so the
        // heart-beat monitor starts afresh afterwards.
        if alarm.borrow_and_update().is_some() && session.has_published {
            tokio::select! {
                r = alarm.changed() => if r.is_err() { return End::Eof },
                _ = forced.changed() => {
                    if let Some(e) = forced.borrow_and_update().clone() {
                        return End::Forced(e);
                    }
                }
                _ = durable.changed(), if waiting => {
                    waiting = session.flush_receipts(*durable.borrow_and_update());
                }
                _ = confirm_wake.notified(), if waiting => {
                    waiting = session.flush_receipts(*durable.borrow_and_update());
                }
            }
            if let Some(m) = monitor.as_mut() {
                m.reset(received(frames));
            }
            continue;
        }
        let first = tokio::select! {
            item = frames.next() => item,
            _ = alarm.changed() => continue,
            _ = forced.changed() => {
                if let Some(e) = forced.borrow_and_update().clone() {
                    return End::Forced(e);
                }
                continue;
            }
            _ = durable.changed(), if waiting => {
                waiting = session.flush_receipts(*durable.borrow_and_update());
                continue;
            }
            _ = confirm_wake.notified(), if waiting => {
                waiting = session.flush_receipts(*durable.borrow_and_update());
                continue;
            }
            _ = ticks.tick(), if monitor.is_some() => {
                let now = received(frames);
                if let Some(m) = monitor.as_mut() {
                    if !m.check(now) {
                        return End::HeartbeatTimeout;
                    }
                }
                continue;
            }
        };
        // Became a publisher in this batch while an alarm was already on (and
        // seen): the check above must run before reading on.
        let was_publisher = session.has_published;
        let mut next = first;
        loop {
            match next {
                None => return End::Eof,
                Some(Err(DecodeError::BodyTooLarge { limit, declared })) => {
                    return End::TooLarge(BrokerError::precondition_failed(match declared {
                        Some(n) => format!(
                            "message size {} is larger than configured max size {}",
                            n, limit
                        ),
                        None => {
                            format!("message size is larger than configured max size {}", limit)
                        }
                    }))
                }
                Some(Err(e)) => return End::Decode(e),
                Some(Ok(Item::Heartbeat)) => {}
                Some(Ok(Item::Frame(mut frame))) => {
                    // Clustered: a shared queue the frame declares is
                    // committed on a majority first (one branch on a
                    // single node: no replicator).
                    let replicated = if session.broker.replicator().is_some() {
                        session.replicate_first(&mut frame).await
                    } else {
                        Ok(())
                    };
                    match session.handle_after(frame, replicated) {
                        Flow::Continue => {}
                        Flow::Disconnect(receipt) => return End::Disconnect(receipt),
                        Flow::Close => return End::Closed,
                    }
                }
            }
            // A raised (or cleared) alarm is looked at before reading on: a
            // publisher whose socket always has more would otherwise never
            // get back to the check above. One atomic load.
            if alarm.has_changed().unwrap_or(false) || (session.has_published && !was_publisher) {
                break;
            }
            // Handle every frame already buffered before flushing receipts.
            match frames.next().now_or_never() {
                Some(item) => next = item,
                None => break,
            }
        }
        waiting = session.flush_receipts(log.durable_ticket());
        // The message log is behind the publishers: stop reading until the
        // disk catches up (deliveries and receipts keep flowing meanwhile).
        if session.has_published && log.is_backlogged() {
            log.wait_for_room().await;
            waiting = session.flush_receipts(log.durable_ticket());
        }
    }
}

fn received<R>(frames: &FramedRead<R, StompCodec>) -> u64 {
    frames.decoder().decoder().bytes_received()
}

/// Wait (at most the closing timeout) until every pending SEND receipt can be
/// sent, and send them.
async fn wait_for_receipts(session: &mut Session) {
    let Some(target) = session.pending_ticket() else {
        return;
    };
    let log = session.vhost.store().log.clone();
    let mut durable = log.durable();
    let wait = async {
        while *durable.borrow_and_update() < target {
            if durable.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(warren_core::net::CLOSING_TIMEOUT, wait).await;
    session.flush_receipts(log.durable_ticket());
}

/// Let the writer finish sending, but not forever: a client that stopped
/// reading must not keep the task alive.
async fn finish_writer(mut writer: tokio::task::JoinHandle<()>) {
    if tokio::time::timeout(warren_core::net::CLOSING_TIMEOUT, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

/// Read frames until a CONNECT logs in. Anything else is answered with
/// RabbitMQ's "Illegal command"; a refused CONNECT with its ERROR (the
/// connection stays open, as in RabbitMQ, until the login timeout).
async fn handshake<R, W>(
    broker: &Broker,
    frames: &mut FramedRead<R, StompCodec>,
    wr: &mut W,
    peer: SocketAddr,
    stats: &ConnectionStats,
    deadline: tokio::time::Instant,
    cert_user: Option<&str>,
) -> Option<Login>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let encoder = StompEncoder::new(ENCODE_DIALECT, TRAILING_LF);
    let mut out = BytesMut::new();
    loop {
        let frame = match tokio::time::timeout_at(deadline, frames.next()).await {
            Err(_) => {
                // Dropped at once: lingering to drain a slowloris client's
                // trickle would hold the socket as long again.
                debug!(%peer, "closing STOMP connection: login timeout");
                let _ = wr.shutdown().await;
                return None;
            }
            Ok(None) => return None,
            Ok(Some(Err(e))) => {
                warn!(%peer, "STOMP connection closed: unparsable input: {}", e);
                out.clear();
                encoder.encode_frame(&invalid_frame(&e), &mut out);
                let _ = wr.write_all(&out).await;
                let _ = wr.flush().await;
                let _ = wr.shutdown().await;
                discard_until_eof(frames.get_mut(), SILENT_CLOSE_DELAY).await;
                return None;
            }
            Ok(Some(Ok(Item::Heartbeat))) => continue,
            Ok(Some(Ok(Item::Frame(f)))) => f,
        };
        let reply = match frame.command {
            Command::Connect | Command::Stomp => match login(broker, frame, peer, cert_user) {
                Ok(l) => return Some(l),
                Err(reply) => *reply,
            },
            _ => Frame::error(
                b"Illegal command",
                &[],
                Bytes::from_static(b"You must log in using CONNECT first"),
            ),
        };
        out.clear();
        encoder.encode_frame(&reply, &mut out);
        // Bounded by the login deadline too: a client that sends without
        // reading must not hold the task once its socket buffer is full.
        // (The flush is for message transports, which send on flush.)
        let write = async {
            wr.write_all(&out).await?;
            wr.flush().await
        };
        match tokio::time::timeout_at(deadline, write).await {
            Ok(Ok(())) => stats.sent(out.len()),
            _ => return None,
        }
    }
}

/// CONNECT: version negotiation, credentials, vhost, heart-beats, with
/// RabbitMQ's ERROR frames when refused.
fn login(
    broker: &Broker,
    frame: Frame,
    peer: SocketAddr,
    cert_user: Option<&str>,
) -> Result<Login, Box<Frame>> {
    let bad = |message: &str, detail: String| {
        Box::new(Frame::error(
            message.as_bytes(),
            &[],
            Bytes::from(detail.into_bytes()),
        ))
    };
    // Negotiated from the untrimmed header; no accept-version means 1.0.
    let accept = frame.headers.accept_version().unwrap_or(b"1.0");
    let Some(version) = negotiate(accept) else {
        return Err(bad(
            "Version mismatch",
            format!(
                "Supported versions are {}\n",
                crate::frame::SUPPORTED_VERSIONS
            ),
        ));
    };
    let mut headers = frame.headers;
    if version == Version::V1_0 {
        headers.trim_leading_spaces();
    }
    // RabbitMQ's STOMP plugin logs in as its default user (guest/guest) when
    // CONNECT carries no credentials, or by the client's certificate.
    let by_certificate = match cert_user {
        Some(u) if headers.login().is_none() && headers.passcode().is_none() => Some(u),
        _ => None,
    };
    let username = match by_certificate {
        Some(u) => u.to_string(),
        None => String::from_utf8_lossy(headers.login().unwrap_or(b"guest")).into_owned(),
    };
    let passcode = headers.passcode().unwrap_or(b"guest");
    let authenticated = match by_certificate {
        Some(u) => broker.authenticate_certificate(u, Some(peer.ip())),
        None => broker.authenticate(&username, passcode, Some(peer.ip())),
    };
    let user = authenticated.map_err(|e| {
        // Logged, rate-limited, by the broker's authenticate.
        debug!(%peer, user = %username, "STOMP login failed: {}", e.text);
        if e.text.contains("via localhost") {
            bad("Bad CONNECT", "non-loopback access denied".into())
        } else {
            bad(
                "Bad CONNECT",
                format!("Access refused for user '{}'\n", username),
            )
        }
    })?;
    let vhost_name = String::from_utf8_lossy(headers.host().unwrap_or(b"/")).into_owned();
    let vhost = broker.open_vhost(&user, &vhost_name).map_err(|e| {
        warn!(%peer, user = %username, "STOMP login failed: {}", e.text);
        bad(
            "Bad CONNECT",
            format!("Virtual host '{}' access denied", vhost_name),
        )
    })?;
    // RabbitMQ's STOMP connection holds one AMQP channel, counted against the
    // user's max-channels; over it, its processor fails as here.
    broker.check_channel_limit(&user.name).map_err(|e| {
        warn!(%peer, user = %username, "STOMP login failed: {}", e.text);
        bad("Processing error", "Processing error".into())
    })?;
    let heartbeat = Heartbeat::negotiate(headers.heart_beat().unwrap_or(b"0,0"))
        .ok_or_else(|| bad("Processing error", "Processing error".into()))?;
    Ok(Login {
        user: user.name,
        vhost,
        version,
        heartbeat,
    })
}

/// The highest version both sides support (`accept-version` is a
/// comma-separated list, compared exactly).
fn negotiate(accept: &[u8]) -> Option<Version> {
    accept
        .split(|&b| b == b',')
        .filter_map(Version::parse)
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_negotiation() {
        assert_eq!(negotiate(b"1.0,1.1,1.2"), Some(Version::V1_2));
        assert_eq!(negotiate(b"1.1"), Some(Version::V1_1));
        assert_eq!(negotiate(b"1.2,1.0"), Some(Version::V1_2));
        assert_eq!(negotiate(b"100.1"), None);
        assert_eq!(negotiate(b"1.1, 1.2"), Some(Version::V1_1));
    }
}
