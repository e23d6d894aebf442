//! One MQTT client connection: CONNECT, the read loop, keep-alive, the will,
//! closing.
//!
//! Until CONNECT is accepted, replies are written straight to the socket.
//! After it, a writer fed by an [`Outlet`] (the core's outbound FIFO, shared
//! with deliveries from queues) sends everything, while the reader hands
//! packets to the [`Session`]. Both are futures of this one task, polled
//! side by side (not a writer task of its own): an idle connection then costs
//! one task, not two, which is most of what 100,000 idle devices cost. Every packet already buffered is
//! handled before PUBACKs are flushed, so a burst of QoS 1 publishes waits for
//! one fsync, not one each.
//!
//! Bad input (malformed packets, protocol violations, an oversized packet)
//! closes only this connection: an MQTT 5 client first gets a DISCONNECT with
//! the reason code, a 3.1.1 client has the socket closed (its protocol has no
//! server DISCONNECT), and the will is published as for any abnormal end.

use bytes::{Bytes, BytesMut};
use futures_util::future::OptionFuture;
use futures_util::{FutureExt, StreamExt};
use std::borrow::Cow;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{watch, Notify};
use tokio::time::Instant;
use tracing::{debug, info, warn};
use warren_core::connections::ConnectionInfo;
use warren_core::net::{
    closing_timeout, discard_until_eof, CloseReason, Endpoints, SILENT_CLOSE_DELAY,
};
use warren_core::outlet::run_writer;
use warren_core::stats::{ConnectionStats, CountingReader};
use warren_core::{BrokerError, FieldTable, FieldValue, VHost};

use crate::codec::{MqttCodec, UNAUTHENTICATED_MAX_PACKET_SIZE};
use crate::delivery::Outgoing;
use crate::encode::encode;
use crate::error::DecodeError;
use crate::packet::*;
use crate::properties::Properties;
use crate::props::Props;
use crate::publish::Publisher;
use crate::reader::PacketReader;
use crate::reason::ReasonCode;
use crate::registry::{Node, Saved, TAKEN_OVER};
use crate::session::{Fail, Flow, Persistence, Session};
use crate::session_state::{Change, Expiry};
use crate::writer::{send_packet, MqttWire, Outlet};

/// Room in a packet for a PUBLISH's topic and properties beyond its payload,
/// when max_message_size limits the packet size.
const PUBLISH_OVERHEAD: usize = 64 * 1024;

/// What carries the packets of a connection.
#[derive(Clone, Copy, Debug)]
pub struct Transport {
    /// For logs: "MQTT" or "Web-MQTT".
    pub name: &'static str,
    /// Management's protocol prefix ("MQTT 3.1.1", "Web MQTT 5.0").
    pub protocol: &'static str,
    /// Every packet is a write of its own (a WebSocket message each).
    pub packet_per_write: bool,
}

/// Record why the connection ends for a transport that tells its peer (a
/// WebSocket: close code 1002, protocol error, with the reason).
fn protocol_error(why: &Option<Arc<CloseReason>>, reason: &str) {
    if let Some(w) = why {
        w.set(CloseReason::PROTOCOL_ERROR, reason);
    }
}

impl Transport {
    pub const TCP: Transport = Transport {
        name: "MQTT",
        protocol: "MQTT",
        packet_per_write: false,
    };

    /// Management's protocol name, "MQTT 3.1.1": a static string for the
    /// known transports, so an idle connection keeps no formatted copy.
    fn protocol_name(&self, version: Version) -> Cow<'static, str> {
        use Version::*;
        match (self.protocol, version) {
            ("MQTT", V3_1) => "MQTT 3.1.0".into(),
            ("MQTT", V3_1_1) => "MQTT 3.1.1".into(),
            ("MQTT", V5) => "MQTT 5.0".into(),
            ("Web MQTT", V3_1) => "Web MQTT 3.1.0".into(),
            ("Web MQTT", V3_1_1) => "Web MQTT 3.1.1".into(),
            ("Web MQTT", V5) => "Web MQTT 5.0".into(),
            (p, v) => format!("{p} {v}").into(),
        }
    }

    /// Connection events' `protocol`, RabbitMQ's term `{'MQTT',"3.1.1"}`.
    fn protocol_term(&self, version: Version) -> Cow<'static, str> {
        use Version::*;
        match (self.protocol, version) {
            ("MQTT", V3_1) => "{'MQTT',\"3.1.0\"}".into(),
            ("MQTT", V3_1_1) => "{'MQTT',\"3.1.1\"}".into(),
            ("MQTT", V5) => "{'MQTT',\"5.0\"}".into(),
            ("Web MQTT", V3_1) => "{'Web MQTT',\"3.1.0\"}".into(),
            ("Web MQTT", V3_1_1) => "{'Web MQTT',\"3.1.1\"}".into(),
            ("Web MQTT", V5) => "{'Web MQTT',\"5.0\"}".into(),
            (p, v) => format!("{{'{p}',\"{v}\"}}").into(),
        }
    }
}

/// Serve one MQTT connection over a socket (a plain function, not `async`:
/// an async wrapper would keep the socket's and endpoints' slots, ~130 B,
/// in every connection's future for its whole life).
pub fn serve_connection<S>(node: Arc<Node>, socket: S, ends: Endpoints) -> impl Future<Output = ()>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (rd, wr) = tokio::io::split(socket);
    serve_transport(node, rd, wr, ends, Transport::TCP, None)
}

/// A CONNECT accepted: what the connection keeps of it (the CONNECT packet
/// itself, ~1 KiB with its property lists, is dropped after the handshake).
struct Login {
    user: String,
    vhost: Arc<VHost>,
    client_id: Bytes,
    assigned: bool,
    clean_start: bool,
    keep_alive: u16,
    persistence: Persistence,
    will: Option<Box<Will>>,
}

/// What the connection keeps of its [`Login`] once the session has the
/// user, vhost and client id (one copy of each, in the session).
struct Kept {
    clean_start: bool,
    keep_alive: u16,
    persistence: Persistence,
    will: Option<Box<Will>>,
}

/// Write one packet before the writer runs; the octets written (0 on
/// failure: the read side then sees the socket end).
async fn write_now<W: AsyncWrite + Unpin>(wr: &mut W, p: &Packet, v: Version) -> usize {
    let mut out = BytesMut::new();
    encode(p, v, &mut out);
    let write = async {
        wr.write_all(&out).await?;
        wr.flush().await
    };
    match tokio::time::timeout(Duration::from_secs(5), write).await {
        Ok(Ok(())) => out.len(),
        _ => 0,
    }
}

fn connack_refused(code: ReasonCode, reason: &str, v: Version) -> Packet {
    Packet::Connack(Connack {
        session_present: false,
        code,
        properties: if v.is_v5() {
            Properties {
                reason_string: Some(Bytes::copy_from_slice(reason.as_bytes())),
                ..Properties::default()
            }
            .into()
        } else {
            Props::NONE
        },
    })
}

type Packets<R> = PacketReader<CountingReader<R>>;

/// A connection past its handshake: what it holds while it runs. An idle
/// connection costs this, the read buffer and the writer, so the
/// handshake's and the closing's state (timeouts, the CONNECT packet, a
/// 4 KiB scratch buffer) live in boxed futures of their own, not in the
/// connection's future (which was 7 KiB for that reason).
struct Opened {
    id: warren_core::ConnectionId,
    peer: SocketAddr,
    version: Version,
    login: Kept,
    claim: crate::registry::Claim,
    session: Session,
    outlet: Arc<Outlet>,
    registration: warren_core::connections::Registration,
}

/// Serve one MQTT connection over a transport's two halves.
///
/// Not an `async fn` either: what only the handshake needs (the endpoints,
/// the transport, the halves before they are wrapped) goes into the boxed
/// handshake future, freed once CONNACK is sent, instead of staying in the
/// connection's future as an async fn's arguments do.
pub fn serve_transport<R, W>(
    node: Arc<Node>,
    rd: R,
    wr: W,
    ends: Endpoints,
    transport: Transport,
    why: Option<Arc<CloseReason>>,
) -> impl Future<Output = ()> + Send
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let opening = Box::pin(open(node.clone(), rd, wr, ends, transport, why.clone()));
    serve_opened(node, opening, why)
}

/// What the handshake hands to the running connection.
/// (The resume's failure is boxed: the result, usually `Ok`, stays in the
/// connection's future while it runs.)
type Handshake<R, W> = (Opened, WriterParts<W>, Packets<R>, Result<(), Box<Fail>>);

/// The connection after its handshake. (An `async move` block, not an
/// `async fn`: the latter keeps its arguments twice.)
// (On purpose: see above.)
#[allow(clippy::manual_async_fn)]
fn serve_opened<R, W, F>(
    node: Arc<Node>,
    opening: Pin<Box<F>>,
    why: Option<Arc<CloseReason>>,
) -> impl Future<Output = ()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    F: Future<Output = Option<Handshake<R, W>>>,
{
    async move {
        let Some((
            mut c,
            WriterParts {
                wr,
                rx,
                wire,
                stats,
            },
            mut packets,
            resumed,
        )) = opening.await
        else {
            return;
        };
        // The writer runs in this task, next to the reader (see the module doc).
        let writer = run_writer(wr, rx, c.outlet.clone(), Duration::ZERO, wire, Some(stats));
        tokio::pin!(writer);
        let mut writer_done = false;
        let end = match resumed {
            Err(f) => End::Fail(*f),
            Ok(()) => {
                let mut forced = c.registration.closed.clone();
                let reader = run(
                    &mut c.session,
                    &mut packets,
                    &mut forced,
                    c.login.keep_alive,
                );
                tokio::select! {
                    end = reader => end,
                    // The writer stops early only when the socket cannot be
                    // written: the connection is gone.
                    _ = &mut writer => {
                        writer_done = true;
                        End::Eof
                    }
                }
            }
        };
        let closing = Box::pin(close(&node, c, end, packets, &why));
        finish(closing, writer.as_mut(), writer_done).await;
    }
}

/// Run the closing steps while the writer sends what they queue, then give
/// the writer [`warren_core::net::CLOSING_TIMEOUT`] to write the rest (the
/// closing queued the outlet's close).
async fn finish<C, Wr>(closing: C, mut writer: std::pin::Pin<&mut Wr>, mut writer_done: bool)
where
    C: std::future::Future<Output = ()>,
    Wr: std::future::Future<Output = ()>,
{
    tokio::pin!(closing);
    loop {
        tokio::select! {
            _ = &mut closing => break,
            _ = writer.as_mut(), if !writer_done => writer_done = true,
        }
    }
    if !writer_done {
        // Dropping the writer (on timeout) drops the socket's write half.
        let _ = tokio::time::timeout(warren_core::net::CLOSING_TIMEOUT, writer).await;
    }
}

/// What the writer needs, handed from the handshake to the connection's
/// future (which runs the writer).
struct WriterParts<W> {
    wr: W,
    rx: warren_core::outlet::OutletReceiver,
    wire: MqttWire,
    stats: Arc<ConnectionStats>,
}

/// CONNECT, login, the client id, the outlet, the session, CONNACK.
async fn open<R, W>(
    node: Arc<Node>,
    rd: R,
    mut wr: W,
    ends: Endpoints,
    transport: Transport,
    why: Option<Arc<CloseReason>>,
) -> Option<Handshake<R, W>>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (node, why) = (&node, &why);
    let stats = Arc::new(ConnectionStats::default());
    let rd = CountingReader::new(rd, stats.clone());
    let mut reader = PacketReader::new(rd, MqttCodec::new(UNAUTHENTICATED_MAX_PACKET_SIZE));
    let packets = &mut reader;
    let (peer, name) = (ends.peer, ends.name());
    // ---- CONNECT ------------------------------------------------------------
    // The broker's handshake_timeout from accept (RabbitMQ's MQTT login
    // timeout, also 10 s); a CONNECT trickled byte by byte does not extend it.
    let deadline = ends.handshake_deadline(node.broker.limits.handshake_timeout);
    let mut connect = match tokio::time::timeout_at(deadline, packets.next()).await {
        Err(_) => {
            debug!(%peer, "closing MQTT connection: handshake timeout");
            return None;
        }
        Ok(None) => return None,
        Ok(Some(Ok(Packet::Connect(c)))) => c,
        Ok(Some(Ok(p))) => {
            warn!(%peer, packet = p.name(), "MQTT connection closed: first packet is not CONNECT");
            // RabbitMQ's Web-MQTT closes with 1002 "connect_expected".
            protocol_error(why, "connect_expected");
            let _ = wr.shutdown().await;
            return None;
        }
        Ok(Some(Err(DecodeError::UnsupportedVersion { name: proto, level }))) => {
            warn!(%peer, level, protocol = %String::from_utf8_lossy(&proto), "MQTT connection refused: unsupported protocol version");
            // 3.1.1's "unacceptable protocol version" (0x01); a CONNACK an
            // MQTT 5 client reads as 0x84 would need a level-5 CONNECT.
            let p = connack_refused(
                ReasonCode::UNSUPPORTED_PROTOCOL_VERSION,
                "",
                Version::V3_1_1,
            );
            write_now(&mut wr, &p, Version::V3_1_1).await;
            return None;
        }
        Ok(Some(Err(e))) => {
            warn!(%peer, "MQTT connection closed: bad CONNECT: {}", e);
            protocol_error(why, &e.to_string());
            let _ = wr.shutdown().await;
            return None;
        }
    };
    let version = connect.version;
    // RabbitMQ's mqtt.ssl_cert_login: a CONNECT without a user name on a TLS
    // connection with a verified certificate logs in as its user.
    let cert_user = ends
        .tls
        .as_ref()
        .filter(|t| t.cert_login)
        .and_then(|t| t.login.clone());
    let login = match login(node, &mut connect, peer, cert_user) {
        Ok(l) => l,
        Err((code, reason)) => {
            // Bad credentials are logged, rate-limited, by the broker's
            // authenticate; this line could be one per refused client.
            debug!(%peer, code = code.0, "MQTT login refused: {}", reason);
            write_now(&mut wr, &connack_refused(code, &reason, version), version).await;
            let _ = wr.shutdown().await;
            return None;
        }
    };
    let id = node.broker.next_connection_id();
    let vhost_name = login.vhost.name.to_string_lossy();
    let mut claim = node.claim(&vhost_name, &login.client_id, id).await;
    // Clean start: whatever the client id left behind goes.
    let mut session_present = false;
    let mut stored = node.retained.session(&vhost_name, &login.client_id);
    let had_expiry = stored.as_ref().is_some_and(|s| s.expiry.is_some());
    let expired = stored
        .as_ref()
        .is_some_and(|s| s.expired(warren_core::queue::now_ms()));
    if login.clean_start || expired {
        // A clean start, or a session that expired before the sweeper saw it.
        Session::discard_now(&login.vhost, &login.client_id).await;
        claim.saved = None;
        let old = stored.take();
        if old.is_some() {
            node.retained
                .put_session(&vhost_name, &login.client_id, Change::Forget);
        }
        let groups: Vec<Bytes> = old
            .map(|s| s.shared.into_iter().map(|s| s.0).collect())
            .unwrap_or_default();
        crate::session::release_groups(node, &login.vhost, &groups);
    }
    if !login.clean_start {
        // Not in memory (the broker restarted): what the session stored
        // durably (QoS 2 ids in both directions, shared subscriptions).
        if claim.saved.is_none() {
            claim.saved = stored.filter(|s| s.has_exchanges_or_shared()).map(|s| {
                Box::new(Saved {
                    incoming_qos2: s.incoming_qos2,
                    released: s.released.into_iter().collect(),
                    shared: s.shared,
                })
            });
        }
        // A session is its queues, or (a publish-only client) the QoS 2
        // exchanges it left unfinished.
        // (The registry keeps a Saved only when it holds something.)
        session_present = Session::exists(&login.vhost, &login.client_id) || claim.saved.is_some();
    }
    // MQTT 5 session expiry: while connected, the session ends that long
    // after the connection (`close` turns it into a time).
    let expiry = match login.persistence {
        Persistence::Kept {
            expiry_ms: Some(ms),
        } => Some(Expiry::Connected(ms)),
        _ => None,
    };
    if expiry.is_some() || (had_expiry && !expired && !login.clean_start) {
        node.retained
            .put_session(&vhost_name, &login.client_id, Change::Expiry(expiry));
    }
    let saved = match claim.saved.take() {
        Some(s) if session_present => *s,
        _ => Saved::default(),
    };
    let cp = &connect.properties;
    let client_max_packet = cp.maximum_packet_size.map_or(usize::MAX, |m| m as usize);
    let window = node
        .config
        .max_inflight
        .min(cp.receive_maximum.unwrap_or(u16::MAX));
    let (outlet, rx) = Outlet::new();
    let wire = MqttWire::new(version, cp.topic_alias_maximum.unwrap_or(0))
        .packet_per_write(transport.packet_per_write);
    let origin = Arc::new(warren_core::trace::Origin {
        user: login.user.clone(),
        connection: name.clone(),
        channel: 1,
    });
    let out = Outgoing::new(
        outlet.clone(),
        id,
        version,
        window,
        client_max_packet,
        login.vhost.clone(),
        origin.clone(),
    );
    let mut session = Session::new(
        node.clone(),
        login.vhost.clone(),
        login.user.clone(),
        id,
        version,
        login.client_id.clone(),
        out.clone(),
        login.persistence,
        Saved {
            incoming_qos2: saved.incoming_qos2.clone(),
            ..Saved::default()
        },
    );
    session.publisher.origin = Some(origin);
    // The broker's max_message_size bounds MQTT too (a PUBLISH's payload plus
    // room for its topic and properties); over it the client gets reason 0x95
    // "packet too large" (MQTT 5) or is disconnected (3.1.1).
    let max_packet = usize::try_from(node.broker.limits.max_message_size)
        .unwrap_or(usize::MAX)
        .saturating_add(PUBLISH_OVERHEAD)
        .min(node.config.max_packet_size);
    packets.decoder_mut().set_max_packet_size(max_packet);
    // ---- CONNACK --------------------------------------------------------------
    let mut props = Props::NONE;
    if version.is_v5() {
        props.receive_maximum = Some(node.config.receive_maximum);
        props.maximum_packet_size = Some(u32::try_from(max_packet).unwrap_or(u32::MAX));
        props.topic_alias_maximum = Some(node.config.topic_alias_maximum);
        if login.assigned {
            props.assigned_client_identifier = Some(login.client_id.clone());
        }
        if login.keep_alive != connect.keep_alive {
            props.server_keep_alive = Some(login.keep_alive);
        }
        let asked = cp.session_expiry_interval.unwrap_or(0);
        // A longer expiry than the server grants ("never" included) is lowered
        // and announced.
        if asked > node.config.max_session_expiry {
            props.session_expiry_interval = Some(node.config.max_session_expiry);
        }
    }
    drop(connect);
    // CONNACK goes out from here, before the writer takes the socket
    // (nothing is queued on the outlet yet): one outlet round trip less per
    // connect, which is most of what a connection storm costs in user space.
    let connack = Packet::Connack(Connack {
        session_present,
        code: ReasonCode::SUCCESS,
        properties: props,
    });
    stats.sent(write_now(&mut wr, &connack, version).await);
    let parts = WriterParts {
        wr,
        rx,
        wire,
        stats: stats.clone(),
    };
    let resumed = if session_present {
        session
            .resume()
            .map(|_| session.rejoin_shared(&saved.shared))
            .map_err(Box::new)
    } else {
        Ok(())
    };
    if session_present {
        out.restore_released(&saved.released);
        for &pid in &saved.released {
            send_packet(&outlet, Packet::Pubrel(Ack::new(pid, ReasonCode::SUCCESS)));
        }
    }
    info!(%peer, conn = id, user = %login.user, vhost = %login.vhost.name,
        client_id = %String::from_utf8_lossy(&login.client_id), version = %version,
        clean = login.clean_start, via = transport.name, "MQTT connection opened");
    let registration = node.broker.connections.register(ConnectionInfo {
        id,
        name,
        protocol: transport.protocol_name(version),
        protocol_term: transport.protocol_term(version),
        kind: "direct",
        user: login.user.clone(),
        vhost: login.vhost.clone(),
        peer,
        local: ends.local,
        connected_at: warren_core::queue::now_ms(),
        client_properties: client_properties(&login.client_id),
        auth_mechanism: None,
        heartbeat: login.keep_alive,
        frame_max: 0,
        channel_max: 1,
        tls: ends.tls.clone(),
        stats,
        channels: Some(out),
    });
    Some((
        Opened {
            id,
            peer,
            version,
            login: Kept {
                clean_start: login.clean_start,
                keep_alive: login.keep_alive,
                persistence: login.persistence,
                will: login.will,
            },
            claim,
            session,
            outlet,
            registration,
        },
        parts,
        reader,
        resumed,
    ))
}

/// The end: acks still owed, the will, the client id, the last packet (the
/// writer runs meanwhile, in [`finish`]).
async fn close<R: AsyncRead + Unpin>(
    node: &Arc<Node>,
    c: Opened,
    end: End,
    mut packets: Packets<R>,
    why: &Option<Arc<CloseReason>>,
) {
    let Opened {
        id,
        peer,
        version,
        login,
        claim,
        mut session,
        outlet,
        registration,
        ..
    } = c;
    if matches!(end, End::Disconnect { .. }) {
        wait_for_acks(&mut session).await;
    }
    let publish_will = !matches!(end, End::Disconnect { with_will: false });
    let vhost_name = session.vhost.name.to_string_lossy();
    // (An MQTT 5 DISCONNECT may have changed the CONNECT's session expiry.)
    let persistence = session.persistence;
    match persistence {
        Persistence::Kept {
            expiry_ms: Some(ms),
        } => {
            let at = warren_core::queue::now_ms().saturating_add(ms);
            node.retained.put_session(
                &vhost_name,
                &session.client_id,
                Change::Expiry(Some(Expiry::At(at))),
            );
        }
        // A session resumed with expiry 0 (or given 0 by its DISCONNECT)
        // ends here: what it stored goes.
        Persistence::Clean
            if (!login.clean_start || login.persistence != persistence)
                && node
                    .retained
                    .session(&vhost_name, &session.client_id)
                    .is_some() =>
        {
            node.retained
                .put_session(&vhost_name, &session.client_id, Change::Forget);
        }
        _ => {}
    }
    let keep = session.close();
    drop(registration);
    let linger = match &end {
        End::Fail(f) => {
            warn!(%peer, conn = id, code = f.code.0, "MQTT connection closed: {}", f.reason);
            protocol_error(why, &f.reason);
            if version.is_v5() {
                send_packet(
                    &outlet,
                    Packet::Disconnect(Disconnect::with_reason(f.code, &f.reason)),
                );
            }
            Some(SILENT_CLOSE_DELAY)
        }
        End::Decode(e) => {
            warn!(%peer, conn = id, "MQTT connection closed: {}", e);
            protocol_error(why, &e.to_string());
            if version.is_v5() {
                send_packet(
                    &outlet,
                    Packet::Disconnect(Disconnect::with_reason(e.reason(), e.to_string())),
                );
            }
            Some(SILENT_CLOSE_DELAY)
        }
        End::Forced(e) => {
            info!(%peer, conn = id, "MQTT connection closed: {}", e.text);
            if version.is_v5() {
                let code = if e.text == TAKEN_OVER {
                    ReasonCode::SESSION_TAKEN_OVER
                } else {
                    ReasonCode::ADMINISTRATIVE_ACTION
                };
                send_packet(
                    &outlet,
                    Packet::Disconnect(Disconnect::with_reason(code, &e.text)),
                );
            }
            Some(SILENT_CLOSE_DELAY)
        }
        End::KeepAlive => {
            warn!(%peer, conn = id, keep_alive = login.keep_alive, "MQTT connection closed: keep-alive timeout");
            if version.is_v5() {
                send_packet(
                    &outlet,
                    Packet::Disconnect(Disconnect::new(ReasonCode::KEEP_ALIVE_TIMEOUT)),
                );
            }
            None
        }
        End::Disconnect { .. } => {
            info!(%peer, conn = id, "MQTT connection closed");
            Some(closing_timeout(u64::from(login.keep_alive)))
        }
        End::Eof => {
            info!(%peer, conn = id, "MQTT connection closed by the client without DISCONNECT");
            None
        }
    };
    if publish_will {
        if let Some(will) = &login.will {
            schedule_will(node, &session, persistence, &claim, (**will).clone());
        }
    }
    node.release(&claim, id, keep);
    outlet.close();
    if let Some(t) = linger {
        discard_until_eof(packets.get_mut(), t).await;
    }
}

fn client_properties(client_id: &[u8]) -> FieldTable {
    // Built at its final size: pushing grows a Vec to 4 entries (~290 B
    // per connection, half of it never used).
    FieldTable(vec![
        ("product".into(), FieldValue::string("MQTT client")),
        ("client_id".into(), FieldValue::string(client_id)),
    ])
}

/// Publish the will now, or after its delay (MQTT 5) unless the client id
/// reconnects first.
fn schedule_will(
    node: &Arc<Node>,
    session: &Session,
    persistence: Persistence,
    claim: &crate::registry::Claim,
    will: Will,
) {
    // The will waits for its delay or the end of the session, whichever
    // comes first (a session that ends at disconnect: at once).
    let session_end = match persistence {
        Persistence::Clean => 0,
        Persistence::Kept {
            expiry_ms: Some(ms),
        } => u32::try_from(ms / 1000).unwrap_or(u32::MAX),
        Persistence::Kept { expiry_ms: None } => u32::MAX,
    };
    let delay = will
        .properties
        .will_delay_interval
        .unwrap_or(0)
        .min(session_end);
    let mut publisher = Publisher::new(
        node.clone(),
        session.vhost.clone(),
        session.publisher.user.clone(),
        0,
        &session.client_id,
    );
    let mut props = will.properties.clone();
    props.will_delay_interval = None;
    let go = move |p: &mut Publisher| {
        if let Err(e) = p.publish(
            &will.topic,
            will.qos,
            will.retain,
            &props,
            will.payload.clone(),
            None,
        ) {
            warn!("MQTT will not published: {}", e.text);
        }
    };
    if delay == 0 {
        go(&mut publisher);
        return;
    }
    let node = node.clone();
    let key = claim.key.clone();
    let generation = claim.generation;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(u64::from(delay))).await;
        if node.still_current(&key, generation) {
            go(&mut publisher);
        }
    });
}

/// CONNECT: client id, credentials (`vhost:user`), vhost, keep-alive, session
/// persistence. Refusals carry the MQTT 5 reason (sent to 3.1.1 clients as
/// the matching return code).
fn login(
    node: &Node,
    connect: &mut Connect,
    peer: SocketAddr,
    cert_user: Option<String>,
) -> Result<Login, (ReasonCode, String)> {
    let v5 = connect.version.is_v5();
    if connect.properties.authentication_method.is_some() {
        return Err((
            ReasonCode::BAD_AUTHENTICATION_METHOD,
            "extended authentication is not supported".into(),
        ));
    }
    let (client_id, assigned) = if connect.client_id.is_empty() {
        if !connect.clean_start || (connect.version == Version::V3_1) {
            return Err((
                ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
                "an empty client id needs a clean session".into(),
            ));
        }
        let mut id = b"warren-".to_vec();
        id.extend_from_slice(
            node.broker
                .vhosts()
                .first()
                .map(|v| v.generate_queue_name())
                .unwrap_or_default()
                .as_bytes(),
        );
        (Bytes::from(id), true)
    } else {
        (connect.client_id.clone(), false)
    };
    if connect.version == Version::V3_1 && client_id.len() > 23 {
        return Err((
            ReasonCode::CLIENT_IDENTIFIER_NOT_VALID,
            "MQTT 3.1 client ids have at most 23 characters".into(),
        ));
    }
    let by_certificate = connect.username.is_none() && connect.password.is_none();
    let cert_user = cert_user.filter(|_| by_certificate);
    let (user, vhost_name) = match &connect.username {
        None if cert_user.is_some() => (
            cert_user.clone().unwrap_or_default(),
            node.config.default_vhost.clone(),
        ),
        Some(u) => {
            let u = String::from_utf8_lossy(u).into_owned();
            // RabbitMQ's `vhost:user` user names select the vhost.
            match u.split_once(':') {
                Some((v, name)) if !v.is_empty() && !name.is_empty() => {
                    (name.to_string(), v.to_string())
                }
                _ => (u, node.config.default_vhost.clone()),
            }
        }
        None => match &node.config.anonymous_user {
            Some(u) if connect.password.is_none() => (u.clone(), node.config.default_vhost.clone()),
            _ => {
                return Err((
                    ReasonCode::NOT_AUTHORIZED,
                    "anonymous login is not allowed".into(),
                ));
            }
        },
    };
    let user = if cert_user.is_some() {
        node.broker
            .authenticate_certificate(&user, Some(peer.ip()))
            .map_err(|e| (ReasonCode::BAD_USER_NAME_OR_PASSWORD, e.text))?
    } else if connect.username.is_none() {
        node.broker.user(&user).ok_or_else(|| {
            (
                ReasonCode::NOT_AUTHORIZED,
                format!("anonymous user '{user}' does not exist"),
            )
        })?
    } else {
        let password = connect.password.clone().unwrap_or_default();
        node.broker
            .authenticate(&user, &password, Some(peer.ip()))
            .map_err(|e| {
                // RabbitMQ: the loopback rule is "not authorized" (5), a
                // wrong password "bad user name or password" (4).
                let code = if e.text.contains("via localhost") {
                    ReasonCode::NOT_AUTHORIZED
                } else {
                    ReasonCode::BAD_USER_NAME_OR_PASSWORD
                };
                (code, e.text)
            })?
    };
    // As RabbitMQ: an unknown vhost is "bad user name or password", a vhost
    // the user may not use "not authorized".
    let vhost = node.broker.open_vhost(&user, &vhost_name).map_err(|e| {
        let code = if node.broker.vhost(&vhost_name).is_none() {
            ReasonCode::BAD_USER_NAME_OR_PASSWORD
        } else {
            ReasonCode::NOT_AUTHORIZED
        };
        (code, e.text)
    })?;
    // RabbitMQ's MQTT connection holds one AMQP channel, counted against the
    // user's max-channels (over it RabbitMQ 3.10 closes without a CONNACK;
    // Warren answers "quota exceeded", "not authorized" (5) before MQTT 5).
    node.broker
        .check_channel_limit(&user.name)
        .map_err(|e| (ReasonCode::QUOTA_EXCEEDED, e.text))?;
    let max = node.config.max_keep_alive;
    let keep_alive = if max > 0 && (connect.keep_alive == 0 || connect.keep_alive > max) && v5 {
        max
    } else {
        connect.keep_alive
    };
    let persistence = if v5 {
        match connect.properties.session_expiry_interval.unwrap_or(0) {
            0 => Persistence::Clean,
            s => {
                let s = s.min(node.config.max_session_expiry);
                Persistence::Kept {
                    expiry_ms: (s != u32::MAX).then(|| u64::from(s) * 1000),
                }
            }
        }
    } else if connect.clean_start {
        Persistence::Clean
    } else {
        // RabbitMQ 3.10 deletes a 3.1.1 persistent session's queue after
        // `subscription_ttl` (one day) unused; so does Warren's sweeper.
        Persistence::Kept {
            expiry_ms: node.config.subscription_ttl,
        }
    };
    Ok(Login {
        user: user.name,
        vhost,
        client_id,
        assigned,
        clean_start: connect.clean_start,
        keep_alive,
        persistence,
        will: connect.will.take().map(Box::new),
    })
}

enum End {
    Eof,
    Disconnect { with_will: bool },
    Fail(Fail),
    Decode(DecodeError),
    Forced(BrokerError),
    KeepAlive,
}

/// Wait until a PUBACK/PUBREC held for the disk may be sendable: the
/// message log or the retained store synced further, or a replicated queue
/// confirmed (`confirmed`: the session's confirm tracker's wake-up, once it
/// has one).
async fn ack_progress(
    durable: &mut watch::Receiver<u64>,
    retained: &mut watch::Receiver<u64>,
    confirmed: Option<Arc<Notify>>,
) {
    let confirmed = async {
        match &confirmed {
            Some(n) => n.notified().await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = durable.changed() => {}
        _ = retained.changed() => {}
        _ = confirmed => {}
    }
}

/// [`ack_progress`], boxed, and only while acks wait: `tokio::select!`
/// evaluates a disabled branch's future too, and three wake-up sources
/// inline cost every idle connection's future ~300 B for what only a QoS 1
/// publisher waiting for an fsync uses (one allocation per wait there).
fn acks_wait<'a>(
    waiting: bool,
    durable: &'a mut watch::Receiver<u64>,
    retained: &'a mut watch::Receiver<u64>,
    session: &Session,
) -> OptionFuture<Pin<Box<impl Future<Output = ()> + 'a>>> {
    OptionFuture::from(
        waiting.then(|| Box::pin(ack_progress(durable, retained, session.confirm_wake()))),
    )
}

async fn run<R: AsyncRead + Unpin>(
    session: &mut Session,
    packets: &mut PacketReader<R>,
    forced: &mut warren_core::connections::Closed,
    keep_alive: u16,
) -> End {
    let mut alarm = session.node.broker.alarm();
    let log = session.vhost.store().log.clone();
    let mut durable = log.durable();
    let mut retained = session.node.retained.durable();
    let mut waiting = false;
    let out = session.out.clone();
    // The client must send something every keep-alive; RabbitMQ and the
    // specification allow one and a half.
    let limit = (keep_alive > 0).then(|| Duration::from_millis(u64::from(keep_alive) * 1500));
    let mut last_seen = Instant::now();
    // One timer for the connection's life, boxed (none without a
    // keep-alive), re-armed when it fires rather than at every packet.
    let mut timer = limit.map(|l| Box::pin(tokio::time::sleep(l)));
    loop {
        if alarm.borrow_and_update().is_some() && session.has_published {
            tokio::select! {
                // (Boxed: keeps this state smaller than the idle one.)
                r = Box::pin(alarm.changed()) => if r.is_err() { return End::Eof },
                _ = forced.changed() => {
                    if let Some(e) = forced.borrow_and_update().clone() {
                        return End::Forced(e);
                    }
                }
                _ = acks_wait(waiting, &mut durable, &mut retained, session), if waiting => {
                    waiting = session.flush_acks(log.durable_ticket());
                }
                _ = out.settle_ready.notified() => session.settle_skipped(),
            }
            last_seen = Instant::now();
            continue;
        }
        let publisher = session.has_published;
        let first = tokio::select! {
            item = packets.next() => item,
            // Only a publisher is paused by an alarm (boxed: see acks_wait).
            _ = OptionFuture::from(publisher.then(|| Box::pin(alarm.changed()))), if publisher => continue,
            _ = forced.changed() => {
                if let Some(e) = forced.borrow_and_update().clone() {
                    return End::Forced(e);
                }
                continue;
            }
            _ = acks_wait(waiting, &mut durable, &mut retained, session), if waiting => {
                waiting = session.flush_acks(log.durable_ticket());
                continue;
            }
            _ = out.settle_ready.notified() => {
                session.settle_skipped();
                continue;
            }
            _ = OptionFuture::from(timer.as_mut()), if timer.is_some() => {
                // Armed for `limit` after an earlier packet: the keep-alive
                // ran out only if nothing came since.
                if let (Some(t), Some(l)) = (timer.as_mut(), limit) {
                    let due = last_seen + l;
                    if Instant::now() >= due {
                        return End::KeepAlive;
                    }
                    t.as_mut().reset(due);
                }
                continue;
            }
        };
        last_seen = Instant::now();
        // Became a publisher in this batch while an alarm was already on (and
        // seen): the check above must run before reading on.
        let was_publisher = session.has_published;
        let mut next = first;
        loop {
            match next {
                None => return End::Eof,
                Some(Err(e)) => return End::Decode(e),
                Some(Ok(packet)) => {
                    // (Returns at once unless a clustered node's persistent
                    // session changes its subscriptions.)
                    if let Err(f) = session.replicate_first(&packet).await {
                        return End::Fail(f);
                    }
                    match session.handle(packet) {
                        Ok(Flow::Continue) => {}
                        Ok(Flow::Disconnect { with_will }) => return End::Disconnect { with_will },
                        Err(f) => return End::Fail(f),
                    }
                }
            }
            // A raised (or cleared) alarm is looked at before reading on: a
            // publisher whose socket always has more would otherwise never
            // get back to the alarm check. One atomic load.
            if alarm.has_changed().unwrap_or(false) || (session.has_published && !was_publisher) {
                break;
            }
            match packets.next().now_or_never() {
                Some(item) => next = item,
                None => break,
            }
        }
        session.settle_acked();
        waiting = session.flush_acks(log.durable_ticket());
        if session.has_published && log.is_backlogged() {
            log.wait_for_room().await;
            waiting = session.flush_acks(log.durable_ticket());
        }
    }
}

/// Before closing on DISCONNECT: send the acks still waiting for the disk.
async fn wait_for_acks(session: &mut Session) {
    let Some((target, kept)) = session.pending_tickets() else {
        return;
    };
    let log = session.vhost.store().log.clone();
    let mut durable = log.durable();
    let mut retained = session.node.retained.durable();
    let wait = async {
        while *durable.borrow_and_update() < target {
            if durable.changed().await.is_err() {
                return;
            }
        }
        while *retained.borrow_and_update() < kept {
            if retained.changed().await.is_err() {
                return;
            }
        }
    };
    let _ = tokio::time::timeout(warren_core::net::CLOSING_TIMEOUT, wait).await;
    session.flush_acks(log.durable_ticket());
}
