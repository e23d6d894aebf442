//! One AMQP client connection: handshake, frame dispatch, heartbeats, close.
//!
//! The reader side runs here, in one task per connection; the writer runs in a
//! second task (see [`crate::writer`]). Reads are batched: all frames already in
//! the read buffer are handled before publisher confirms are flushed, so a burst of
//! publishes is confirmed with one `basic.ack(multiple)`.

use crate::channel::{Channel, ConnContext};
use crate::channels::ChannelList;
use crate::codec::*;
use crate::error::AmqpError;
use crate::writer::{run_writer, AmqpEncoder, Outlet, SendFrames};
use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::codec::FramedRead;
use tracing::{debug, info, warn};
use warren_core::connections::ConnectionInfo;
use warren_core::error::code;
use warren_core::net::Endpoints;
use warren_core::stats::{ConnectionStats, CountingReader};
use warren_core::{Broker, BrokerError, FieldTable, FieldValue, ShortStr};

/// Read buffer of a connection that carries traffic (tokio-util's default).
const READ_BUFFER: usize = 8 * 1024;

/// The server properties RabbitMQ clients look at (capabilities above all).
fn server_properties() -> FieldTable {
    let mut caps = FieldTable::new();
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ] {
        caps.insert(cap, FieldValue::Bool(true));
    }
    let mut t = FieldTable::new();
    t.insert("capabilities", FieldValue::Table(caps));
    t.insert("cluster_name", FieldValue::string("warren"));
    t.insert("copyright", FieldValue::string("Warren contributors"));
    t.insert(
        "information",
        FieldValue::string("Warren, a message broker speaking RabbitMQ's protocols"),
    );
    t.insert("platform", FieldValue::string("Rust"));
    t.insert("product", FieldValue::string("Warren"));
    t.insert("version", FieldValue::string(env!("CARGO_PKG_VERSION")));
    t
}

/// RabbitMQ's management label of AMQP connections, and the `protocol` of
/// its connection events.
const PROTOCOL: &str = "AMQP 0-9-1";
/// How long declare-ok waits for a second-hand queue depth to be asked
/// (see `Connection::refresh_depth`).
const DEPTH_REFRESH_WAIT: Duration = Duration::from_millis(500);
const PROTOCOL_TERM: &str = "{0,9,1}";

/// Serve one accepted socket until it closes.
pub async fn serve_connection<S>(broker: Arc<Broker>, socket: S, ends: Endpoints)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let id = broker.next_connection_id();
    let (peer, name) = (ends.peer, ends.name());
    let stats = Arc::new(ConnectionStats::default());
    let (rd, mut wr) = tokio::io::split(socket);
    // Every octet received counts, the protocol header's too.
    let mut rd = CountingReader::new(rd, stats.clone());
    // One deadline from accept for the header and the whole handshake, as
    // RabbitMQ's handshake_timeout: a client trickling bytes cannot extend it.
    let deadline = ends.handshake_deadline(broker.limits.handshake_timeout);
    // Protocol header.
    let mut header = [0u8; 8];
    match tokio::time::timeout_at(deadline, rd.read_exact(&mut header)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => {
            debug!(%peer, "connection closed before protocol header");
            return;
        }
        Err(_) => {
            debug!(%peer, "closing AMQP connection: handshake timeout");
            return;
        }
    }
    if &header != PROTOCOL_HEADER {
        warn!(%peer, header = ?header, "bad AMQP protocol header; replying with ours and closing");
        let _ = wr.write_all(PROTOCOL_HEADER).await;
        let _ = wr.shutdown().await;
        return;
    }
    let limits = broker.limits.clone();
    let (outlet, rx) = Outlet::new();
    // A small first read buffer: a busy connection gets a full one (see
    // `Connection::run`), while the many idle ones (feeds, RPC clients) keep
    // 1 KiB instead of 8.
    let mut frames = FramedRead::with_capacity(rd, FrameDecoder::new(limits.frame_max), 1024);

    let handshake = tokio::time::timeout_at(
        deadline,
        handshake(
            &broker,
            &mut frames,
            &mut wr,
            peer,
            &limits,
            &stats,
            ends.tls.as_deref(),
        ),
    )
    .await;
    let hs = match handshake {
        Ok(Ok(hs)) => hs,
        Ok(Err(Some((e, class_id, method_id)))) => {
            // Refused logins are logged (rate-limited) where they are checked.
            if e.code == code::ACCESS_REFUSED {
                debug!(%peer, error = %e, "handshake refused");
            } else {
                warn!(%peer, error = %e, "handshake refused");
            }
            let mut out = bytes::BytesMut::new();
            write_method(
                &mut out,
                0,
                &Method::ConnectionClose(ConnectionClose {
                    reply_code: e.code,
                    reply_text: ShortStr::from(e.reply_text()),
                    class_id,
                    method_id,
                }),
            );
            let _ = wr.write_all(&out).await;
            // Wait (briefly: nothing was negotiated) for close-ok, dropping
            // anything else, so the client reads the close before the socket
            // goes and is not reset (see `warren_core::net`).
            let deadline = tokio::time::Instant::now() + warren_core::net::SILENT_CLOSE_DELAY;
            while let Ok(Some(Ok(f))) = tokio::time::timeout_at(deadline, frames.next()).await {
                if matches!(f, Frame::Method(0, Method::ConnectionCloseOk(_))) {
                    break;
                }
            }
            let _ = wr.shutdown().await;
            return;
        }
        Ok(Err(None)) => {
            debug!(%peer, "handshake aborted");
            return;
        }
        Err(_) => {
            debug!(%peer, "closing AMQP connection: handshake timeout");
            return;
        }
    };
    frames.decoder_mut().set_max_frame_size(hs.frame_max);
    info!(%peer, conn = id, user = %hs.user, vhost = %hs.vhost.name, "connection opened");
    let writer = tokio::spawn(run_writer(
        wr,
        rx,
        outlet.clone(),
        Duration::from_secs(hs.heartbeat as u64),
        AmqpEncoder {
            frame_max: hs.frame_max,
        },
        Some(stats.clone()),
    ));
    outlet.send_method(0, Method::ConnectionOpenOk(ConnectionOpenOk::default()));
    let channel_list = ChannelList::new(name.clone());
    // Registered so that management lists us and deleting the vhost or the
    // user closes us; this emits connection.created.
    let registration = broker.connections.register(ConnectionInfo {
        id,
        name: name.clone(),
        protocol: PROTOCOL.into(),
        protocol_term: PROTOCOL_TERM.into(),
        kind: "network",
        user: hs.user.clone(),
        vhost: hs.vhost.clone(),
        peer,
        local: ends.local,
        connected_at: warren_core::queue::now_ms(),
        client_properties: hs.client_properties.clone(),
        auth_mechanism: Some(hs.mechanism.clone()),
        heartbeat: hs.heartbeat,
        frame_max: hs.frame_max,
        channel_max: hs.channel_max,
        tls: ends.tls.clone(),
        stats,
        channels: Some(channel_list.clone()),
    });
    let mut conn = Connection {
        ctx: ConnContext {
            id,
            user: hs.user.clone(),
            name: name.clone(),
            broker: broker.clone(),
            vhost: hs.vhost.clone(),
            outlet: outlet.clone(),
            max_message_size: limits.max_message_size,
            cancel_notify: hs.cancel_notify,
            exclusive_queues: Vec::new(),
            has_published: false,
            ctag_counter: 0,
            access: warren_core::permissions::AccessCache::new(),
            confirm_wake: Arc::new(tokio::sync::Notify::new()),
        },
        alarm: broker.alarm(),
        forced: registration.closed.clone(),
        blocked_notify: hs.blocked_notify,
        channels: HashMap::new(),
        channel_list,
        channel_max: hs.channel_max,
        heartbeat: hs.heartbeat,
        peer,
        closed_by_client: false,
    };
    let reason = conn.run(&mut frames).await;
    conn.cleanup();
    match &reason {
        Ok(()) => info!(%peer, conn = id, "connection closed"),
        Err(e) => warn!(%peer, conn = id, "connection closed: {}", e),
    }
    // Emits connection.closed, after the channels' channel.closed.
    drop(registration);
    if conn.closed_by_client {
        // close-ok is queued; the client may still be flushing frames it wrote
        // before it saw it. Closing now would reset the socket under it (see
        // `warren_core::net`), so read and drop until it closes its side.
        let timeout = warren_core::net::closing_timeout(conn.heartbeat as u64);
        warren_core::net::discard_until_eof(frames.get_mut(), timeout).await;
    }
    outlet.close();
    let _ = writer.await;
}

struct Handshake {
    user: String,
    mechanism: String,
    client_properties: FieldTable,
    vhost: Arc<warren_core::VHost>,
    frame_max: u32,
    channel_max: u16,
    heartbeat: u16,
    cancel_notify: bool,
    blocked_notify: bool,
}

type HsError = Option<(BrokerError, u16, u16)>;

async fn next_method<R: AsyncRead + Unpin>(
    frames: &mut FramedRead<R, FrameDecoder>,
) -> Result<Method, HsError> {
    loop {
        match frames.next().await {
            Some(Ok(Frame::Method(0, m))) => return Ok(m),
            Some(Ok(Frame::Heartbeat(_))) => continue,
            Some(Ok(_)) => {
                return Err(Some((
                    BrokerError::new(code::UNEXPECTED_FRAME, "unexpected frame during handshake"),
                    0,
                    0,
                )))
            }
            Some(Err(e)) => {
                return Err(Some((
                    BrokerError::new(e.code, e.text),
                    e.class_id,
                    e.method_id,
                )))
            }
            None => return Err(None),
        }
    }
}

fn command_invalid(expected: &str, got: &Method) -> HsError {
    Some((
        BrokerError::new(
            code::COMMAND_INVALID,
            format!("expected '{}', got '{}'", expected, got.name()),
        ),
        got.class_id(),
        got.method_id(),
    ))
}

/// Parse the SASL response: PLAIN (`\0user\0password`) or AMQPLAIN (a field
/// table without its length prefix, with LOGIN and PASSWORD).
fn credentials(mechanism: &[u8], response: &Bytes) -> Option<(String, Vec<u8>)> {
    match mechanism {
        b"PLAIN" => {
            let mut parts = response.split(|b| *b == 0);
            let _authzid = parts.next()?;
            let user = parts.next()?;
            let pass = parts.next()?;
            Some((String::from_utf8_lossy(user).into_owned(), pass.to_vec()))
        }
        b"AMQPLAIN" => {
            let mut with_len = Vec::with_capacity(response.len() + 4);
            with_len.extend_from_slice(&(response.len() as u32).to_be_bytes());
            with_len.extend_from_slice(response);
            let t = FieldTable::decode(&mut Bytes::from(with_len)).ok()?;
            let user = t.get("LOGIN")?.as_bytes()?.to_vec();
            let pass = t.get("PASSWORD")?.as_bytes()?.to_vec();
            Some((String::from_utf8_lossy(&user).into_owned(), pass))
        }
        _ => None,
    }
}

async fn handshake<R, W>(
    broker: &Broker,
    frames: &mut FramedRead<R, FrameDecoder>,
    wr: &mut W,
    peer: SocketAddr,
    limits: &warren_core::Limits,
    stats: &ConnectionStats,
    tls: Option<&warren_core::net::TlsInfo>,
) -> Result<Handshake, HsError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // EXTERNAL (RabbitMQ's rabbitmq_auth_mechanism_ssl) only on a TLS
    // connection whose client certificate was verified and names a user.
    let cert_user = tls.and_then(|t| t.login.clone());
    let mut out = bytes::BytesMut::new();
    write_method(
        &mut out,
        0,
        &Method::ConnectionStart(ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: server_properties(),
            mechanisms: if cert_user.is_some() {
                Bytes::from_static(b"PLAIN AMQPLAIN EXTERNAL")
            } else {
                Bytes::from_static(b"PLAIN AMQPLAIN")
            },
            locales: Bytes::from_static(b"en_US"),
        }),
    );
    wr.write_all(&out).await.map_err(|_| None)?;
    stats.sent(out.len());
    let start_ok = match next_method(frames).await? {
        Method::ConnectionStartOk(s) => s,
        other => return Err(command_invalid("connection.start-ok", &other)),
    };
    let capability = |name: &str| match start_ok.client_properties.get("capabilities") {
        Some(FieldValue::Table(t)) => t.get(name).and_then(|v| v.as_bool()).unwrap_or(false),
        _ => false,
    };
    let cancel_notify = capability("consumer_cancel_notify");
    let blocked_notify = capability("connection.blocked");
    let external = start_ok.mechanism.as_bytes() == b"EXTERNAL" && cert_user.is_some();
    if !external && !matches!(start_ok.mechanism.as_bytes(), b"PLAIN" | b"AMQPLAIN") {
        let e = BrokerError::command_invalid(format!(
            "unknown authentication mechanism '{}'",
            start_ok.mechanism
        ));
        return Err(Some((e, 10, 11)));
    }
    // RabbitMQ sends class/method 0 with authentication failures.
    let credentials = match &cert_user {
        // The response is not read: the certificate is the credential.
        Some(user) if external => Some((user.clone(), Vec::new())),
        _ => credentials(start_ok.mechanism.as_bytes(), &start_ok.response),
    };
    let Some((username, password)) = credentials else {
        let e = BrokerError::access_refused(format!(
            "Login was refused using authentication mechanism {}. For details see the broker logfile.",
            start_ok.mechanism
        ));
        return Err(Some((e, 0, 0)));
    };
    let login = if external {
        broker.authenticate_certificate(&username, Some(peer.ip()))
    } else {
        broker.authenticate(&username, &password, Some(peer.ip()))
    };
    let user = login.map_err(|mut e| {
        // As RabbitMQ: the client learns only that the login was refused
        // (the loopback rule's reason goes to the log), so a remote
        // client cannot tell that guest's password was right.
        if e.text.contains("via localhost") {
            warn!(%peer, user = %username, "AMQP login refused: {}", e.text);
            e.text = "Login was refused using authentication mechanism PLAIN. For details see the broker logfile.".into();
        }
        if e.text.contains("mechanism PLAIN") {
            e.text = e
                .text
                .replace("PLAIN", &start_ok.mechanism.to_string_lossy());
        }
        Some((e, 0, 0))
    })?;
    out.clear();
    write_method(
        &mut out,
        0,
        &Method::ConnectionTune(ConnectionTune {
            channel_max: limits.channel_max,
            frame_max: limits.frame_max,
            heartbeat: limits.heartbeat,
        }),
    );
    wr.write_all(&out).await.map_err(|_| None)?;
    stats.sent(out.len());
    let tune_ok = match next_method(frames).await? {
        Method::ConnectionTuneOk(t) => t,
        other => return Err(command_invalid("connection.tune-ok", &other)),
    };
    let frame_max = if tune_ok.frame_max == 0 {
        limits.frame_max
    } else {
        tune_ok.frame_max
    };
    if frame_max > limits.frame_max {
        return Err(Some((
            BrokerError::not_allowed(format!(
                "frame_max={} > {} max size",
                frame_max, limits.frame_max
            )),
            10,
            31,
        )));
    }
    if frame_max < FRAME_MIN_SIZE {
        return Err(Some((
            BrokerError::not_allowed(format!(
                "frame_max={} < {} min size",
                frame_max, FRAME_MIN_SIZE
            )),
            10,
            31,
        )));
    }
    let channel_max = match tune_ok.channel_max {
        0 => limits.channel_max,
        n => n.min(limits.channel_max),
    };
    let open = match next_method(frames).await? {
        Method::ConnectionOpen(o) => o,
        other => return Err(command_invalid("connection.open", &other)),
    };
    let vhost_name = open.virtual_host.to_string_lossy().into_owned();
    let vhost = broker
        .open_vhost(&user, &vhost_name)
        .map_err(|e| Some((e, 10, 40)))?;
    Ok(Handshake {
        user: user.name,
        vhost,
        frame_max,
        channel_max,
        heartbeat: tune_ok.heartbeat,
        cancel_notify,
        blocked_notify,
        mechanism: start_ok.mechanism.to_string(),
        client_properties: start_ok.client_properties.clone(),
    })
}

struct Connection {
    ctx: ConnContext,
    alarm: tokio::sync::watch::Receiver<Option<String>>,
    /// Becomes Some(error) when the broker closes this connection (its vhost or
    /// user was deleted): 320 CONNECTION_FORCED.
    forced: warren_core::connections::Closed,
    /// The client understands connection.blocked/unblocked.
    blocked_notify: bool,
    channels: HashMap<u16, Channel>,
    /// The channels' shared halves, for the management API.
    channel_list: Arc<ChannelList>,
    channel_max: u16,
    heartbeat: u16,
    peer: SocketAddr,
    /// The client asked to close and was sent close-ok.
    closed_by_client: bool,
}

/// Why the connection ended, for the log.
type Ended = Result<(), String>;

impl Connection {
    async fn run<R: AsyncRead + Unpin>(
        &mut self,
        frames: &mut FramedRead<R, FrameDecoder>,
    ) -> Ended {
        let timeout = if self.heartbeat == 0 {
            None
        } else {
            // Dead peer: nothing received for two heartbeat intervals.
            Some(Duration::from_secs(self.heartbeat as u64 * 2))
        };
        let mut alarm = self.alarm.clone();
        let mut forced = self.forced.clone();
        let mut blocked = false;
        // The read buffer has been grown to full size.
        let mut busy = false;
        let mut durable = self.ctx.vhost.store().log.durable();
        let mut waiting = false;
        let confirm_wake = self.ctx.confirm_wake.clone();
        loop {
            // A resource alarm stops reading from connections that publish, as
            // RabbitMQ does; consumers keep draining. The heartbeat monitor pauses
            // too, since we are the ones not reading.
            let reason = alarm.borrow_and_update().clone();
            match reason {
                Some(reason) if self.ctx.has_published => {
                    if !blocked && self.blocked_notify {
                        self.ctx.outlet.send_method(
                            0,
                            Method::ConnectionBlocked(ConnectionBlocked {
                                reason: ShortStr::from(reason),
                            }),
                        );
                    }
                    blocked = true;
                    tokio::select! {
                        r = alarm.changed() => if r.is_err() {
                            return Err("broker shutting down".into());
                        },
                        _ = forced.changed() => {
                            let e = forced.borrow_and_update().clone();
                            if let Some(e) = e {
                                return self.close_forced(e, frames).await;
                            }
                        }
                    }
                    continue;
                }
                _ if blocked => {
                    blocked = false;
                    if self.blocked_notify {
                        self.ctx.outlet.send_method(
                            0,
                            Method::ConnectionUnblocked(ConnectionUnblocked::default()),
                        );
                    }
                }
                _ => {}
            }
            let read = async {
                match timeout {
                    Some(t) => tokio::time::timeout(t, frames.next()).await,
                    None => Ok(frames.next().await),
                }
            };
            let first = tokio::select! {
                r = read => match r {
                    Ok(f) => f,
                    Err(_) => return Err("missed heartbeats from client, timeout".into()),
                },
                _ = alarm.changed() => continue,
                _ = forced.changed() => {
                    let e = forced.borrow_and_update().clone();
                            if let Some(e) = e {
                        return self.close_forced(e, frames).await;
                    }
                    continue;
                }
                // Publishes waiting for the message log's fsync: answer them.
                _ = durable.changed(), if waiting => {
                    waiting = self.flush_confirms(&durable);
                    continue;
                }
                // ... or for a replicated queue (quorum queue) to commit them.
                _ = confirm_wake.notified(), if waiting => {
                    waiting = self.flush_confirms(&durable);
                    continue;
                }
            };
            // Became a publisher in this batch while an alarm was already on (and
            // seen): the check above must run before reading on.
            let was_publisher = self.ctx.has_published;
            let mut next = first;
            let mut batch = 0u32;
            loop {
                batch += 1;
                match next {
                    None => return Err("client closed the socket".into()),
                    Some(Err(e)) => {
                        let e = AmqpError::connection(e.code, e.text, e.class_id, e.method_id);
                        return self.close_with_error(e, frames).await;
                    }
                    Some(Ok(frame)) => {
                        // Clustered: a metadata change is committed on a
                        // majority before the channel runs it (one branch
                        // on a single node: no replicator).
                        let handled = match self.replicate_first(&frame).await {
                            Ok(()) => self.handle_frame_as_client(frame),
                            Err((ch, e)) => self.channel_result(ch, Err(e)),
                        };
                        match handled {
                            Ok(Flow::Continue) => {}
                            Ok(Flow::Closed) => return Ok(()),
                            Err(e) => return self.close_with_error(e, frames).await,
                        }
                    }
                }
                // A raised (or cleared) alarm is looked at before reading on:
                // a publisher whose socket always has more would otherwise
                // never get back to the check above. One atomic load.
                if alarm.has_changed().unwrap_or(false)
                    || (self.ctx.has_published && !was_publisher)
                {
                    break;
                }
                // Handle every frame already buffered before flushing confirms.
                match frames.next().now_or_never() {
                    Some(f) => next = f,
                    None => break,
                }
            }
            // Several frames in one read, or a frame larger than the buffer: a
            // busy connection gets the full-size read buffer (it starts small,
            // see `serve_connection`).
            if !busy && (batch >= 2 || !frames.read_buffer().is_empty()) {
                // A new buffer, not `reserve`: `BytesMut` sizes the buffers it
                // allocates later (once frames split off it are still shared by
                // queued bodies) from its *original* capacity.
                let pending = frames.read_buffer_mut();
                let mut full = bytes::BytesMut::with_capacity(READ_BUFFER.max(pending.len()));
                full.extend_from_slice(pending);
                *pending = full;
                busy = true;
            }
            waiting = self.flush_confirms(&durable);
            // The message log is behind the publishers: stop reading until the
            // disk catches up (deliveries and confirms keep flowing meanwhile).
            if self.ctx.has_published {
                let log = self.ctx.vhost.store().log.clone();
                if log.is_backlogged() {
                    log.wait_for_room().await;
                    waiting = self.flush_confirms(&durable);
                }
            }
        }
    }

    /// Send the confirms (and commit-oks) that are durable now. Returns whether
    /// any channel still waits for the message log.
    fn flush_confirms(&mut self, durable: &tokio::sync::watch::Receiver<u64>) -> bool {
        let d = *durable.borrow();
        let mut waiting = false;
        for ch in self.channels.values_mut() {
            waiting |= ch.flush_confirms(d);
        }
        waiting
    }

    /// On a clustered node, declare-ok's message count of a queue whose
    /// depth this node knows second-hand (a quorum queue without a member
    /// here) is brought up to date first: asked on this task, waiting at
    /// most [`DEPTH_REFRESH_WAIT`] (then the last known count is answered).
    async fn refresh_depth(&self, d: &QueueDeclare) {
        if d.nowait || self.ctx.broker.replicator().is_none() {
            return;
        }
        let Some(q) = self.ctx.vhost.named_queue(d.queue.as_bytes()) else {
            return;
        };
        if let Some(f) = q.backend().and_then(|b| b.refresh_depth(&q)) {
            let _ = tokio::time::timeout(DEPTH_REFRESH_WAIT, f).await;
        }
    }

    /// On a clustered node, replicate the metadata change `frame` makes (see
    /// [`crate::cluster`]) before it is handled. A change the cluster cannot
    /// commit fails with the replicator's error (a hard one, 541, closes the
    /// connection) and is not handled.
    async fn replicate_first(&mut self, frame: &Frame) -> Result<(), (u16, AmqpError)> {
        // Publishes, acks and content frames leave at the first test.
        let Frame::Method(ch, m) = frame else {
            return Ok(());
        };
        if let Method::QueueDeclare(d) = m {
            self.refresh_depth(d).await;
        }
        if !crate::cluster::is_metadata(m) {
            return Ok(());
        }
        let Some(r) = self.ctx.broker.replicator().cloned() else {
            return Ok(());
        };
        if self.channels.get(ch).is_none_or(|c| c.closing) {
            return Ok(());
        }
        if let Err(e) = crate::cluster::check_quorum(&self.ctx, m) {
            return Err((*ch, AmqpError::channel(e, m.class_id(), m.method_id())));
        }
        // Decide on up-to-date metadata (see `MetadataReplicator::sync`);
        // a node that cannot get there refuses the change.
        if crate::cluster::needs_sync(&self.ctx, m) {
            if let Err(e) = r.sync().await {
                return Err((*ch, AmqpError::channel(e, m.class_id(), m.method_id())));
            }
        }
        let Some(op) = crate::cluster::meta_op(&mut self.ctx, &r.node_name(), m) else {
            return Ok(());
        };
        // A replicated queue.delete removes the queue on this node too, before
        // the channel runs it: keep its ready count for delete-ok, and hold
        // this channel's basic.cancels until delete-ok is sent (RabbitMQ's
        // order, as on a single node).
        if let (Method::QueueDelete(d), warren_core::meta::MetaOp::DeleteQueue { .. }) = (m, &op) {
            let n = self
                .ctx
                .vhost
                .named_queue(d.queue.as_bytes())
                .map_or(0, |q| q.message_count());
            if let Some(c) = self.channels.get_mut(ch) {
                c.shared.defer_cancels();
                c.replicated_delete = Some((d.queue.clone(), n));
            }
        }
        match r.replicate(op).await {
            Ok(()) => Ok(()),
            Err(e) => {
                if let Some(c) = self.channels.get_mut(ch) {
                    if c.replicated_delete.take().is_some() {
                        c.shared.send_deferred_cancels();
                    }
                }
                Err((*ch, AmqpError::channel(e, m.class_id(), m.method_id())))
            }
        }
    }

    /// Handle a frame with the thread's "who is acting" context set (the event
    /// exchange names the user, the firehose the connection and channel). Frame
    /// handling never awaits, so a thread-local is safe here.
    fn handle_frame_as_client(&mut self, frame: Frame) -> Result<Flow, AmqpError> {
        warren_core::events::set_actor(Some(&self.ctx.user));
        if self.ctx.vhost.is_tracing() {
            warren_core::trace::set_origin(Some(warren_core::trace::Origin {
                user: self.ctx.user.clone(),
                connection: self.ctx.name.clone(),
                channel: frame_channel(&frame),
            }));
        }
        let r = self.handle_frame(frame);
        warren_core::events::set_actor(None);
        r
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<Flow, AmqpError> {
        match frame {
            Frame::Heartbeat(0) => Ok(Flow::Continue),
            Frame::Heartbeat(ch) => Err(AmqpError::connection(
                code::UNEXPECTED_FRAME,
                format!("heartbeat frame on channel {}", ch),
                0,
                0,
            )),
            Frame::Method(0, m) => self.connection_method(m),
            Frame::Method(ch, Method::ChannelOpen(_)) => {
                if self.channels.contains_key(&ch) {
                    return Err(AmqpError::connection(
                        code::CHANNEL_ERROR,
                        "second 'channel.open' seen",
                        20,
                        10,
                    ));
                }
                // RabbitMQ limits how many channels are open, not their ids
                // (channels the server is closing still count).
                if self.channel_max != 0 && self.channels.len() >= self.channel_max as usize {
                    return Err(AmqpError::connection(
                        code::NOT_ALLOWED,
                        format!(
                            "number of channels opened ({}) has reached the negotiated channel_max ({})",
                            self.channels.len(),
                            self.channel_max
                        ),
                        0,
                        0,
                    ));
                }
                // The user's max-channels, over all its connections (530,
                // closes the connection, as RabbitMQ).
                self.ctx
                    .broker
                    .check_channel_limit(&self.ctx.user)
                    .map_err(|e| AmqpError::connection(e.code, e.text, 20, 10))?;
                let channel = Channel::new(
                    ch,
                    self.ctx.outlet.clone(),
                    self.ctx.cancel_notify,
                    warren_core::trace::Origin {
                        user: self.ctx.user.clone(),
                        connection: self.ctx.name.clone(),
                        channel: ch,
                    },
                    self.ctx.vhost.clone(),
                );
                self.channel_list.insert(channel.shared.clone());
                self.channels.insert(ch, channel);
                self.ctx
                    .outlet
                    .send_method(ch, Method::ChannelOpenOk(ChannelOpenOk::default()));
                crate::events::channel_created(
                    &self.ctx.vhost,
                    self.ctx.id,
                    &self.ctx.name,
                    &self.ctx.user,
                    ch,
                );
                Ok(Flow::Continue)
            }
            Frame::Method(ch, m) => {
                let Some(channel) = self.channels.get_mut(&ch) else {
                    return Err(AmqpError::connection(
                        code::CHANNEL_ERROR,
                        "expected 'channel.open'".to_string(),
                        m.class_id(),
                        m.method_id(),
                    ));
                };
                if channel.closing {
                    // After the server closed the channel, only close/close-ok count.
                    match m {
                        Method::ChannelCloseOk(_) => {
                            self.channels.remove(&ch);
                            self.channel_list.remove(ch);
                        }
                        Method::ChannelClose(_) => {
                            self.ctx
                                .outlet
                                .send_method(ch, Method::ChannelCloseOk(ChannelCloseOk::default()));
                        }
                        _ => {}
                    }
                    return Ok(Flow::Continue);
                }
                if let Some(part) = channel.expecting_content() {
                    // RabbitMQ's text, with the ids of the publish whose content
                    // was expected.
                    let what = if part == "header" {
                        "content header for class 60"
                    } else {
                        "content body"
                    };
                    return Err(AmqpError::connection(
                        code::UNEXPECTED_FRAME,
                        format!("expected {}, got non content {} frame instead", what, part),
                        60,
                        40,
                    ));
                }
                match m {
                    Method::ChannelClose(_) => {
                        self.channel_list.remove(ch);
                        if let Some(mut c) = self.channels.remove(&ch) {
                            c.release();
                            crate::events::channel_closed(&self.ctx.vhost, self.ctx.id, ch);
                        }
                        self.ctx
                            .outlet
                            .send_method(ch, Method::ChannelCloseOk(ChannelCloseOk::default()));
                        Ok(Flow::Continue)
                    }
                    Method::ChannelCloseOk(_) => Ok(Flow::Continue),
                    m => {
                        let result = channel.handle(&mut self.ctx, m);
                        self.channel_result(ch, result)
                    }
                }
            }
            Frame::Header(ch, h) => {
                let channel = content_channel(&mut self.channels, ch)?;
                if channel.closing {
                    return Ok(Flow::Continue);
                }
                let result = channel.on_header(&mut self.ctx, h);
                self.channel_result(ch, result)
            }
            Frame::Body(ch, b) => {
                let channel = content_channel(&mut self.channels, ch)?;
                if channel.closing {
                    return Ok(Flow::Continue);
                }
                let result = channel.on_body(&mut self.ctx, b);
                self.channel_result(ch, result)
            }
        }
    }

    /// A soft error closes just the channel; a hard one goes up to close the
    /// connection.
    fn channel_result(
        &mut self,
        ch: u16,
        result: Result<(), AmqpError>,
    ) -> Result<Flow, AmqpError> {
        match result {
            Ok(()) => Ok(Flow::Continue),
            Err(e) if e.hard => Err(e),
            Err(e) => {
                debug!(peer = %self.peer, channel = ch, error = %e.error, "channel error");
                if let Some(c) = self.channels.get_mut(&ch) {
                    c.flush_confirms(self.ctx.vhost.store().log.durable_ticket());
                    c.release();
                    c.closing = true;
                }
                self.ctx.outlet.send_method(
                    ch,
                    Method::ChannelClose(ChannelClose {
                        reply_code: e.error.code,
                        reply_text: ShortStr::from(e.error.reply_text()),
                        class_id: e.class_id,
                        method_id: e.method_id,
                    }),
                );
                Ok(Flow::Continue)
            }
        }
    }

    fn connection_method(&mut self, m: Method) -> Result<Flow, AmqpError> {
        match m {
            Method::ConnectionClose(_) => {
                self.cleanup();
                self.ctx
                    .outlet
                    .send_method(0, Method::ConnectionCloseOk(ConnectionCloseOk::default()));
                self.closed_by_client = true;
                Ok(Flow::Closed)
            }
            Method::ConnectionCloseOk(_) => Ok(Flow::Closed),
            Method::ConnectionUpdateSecret(_) => {
                self.ctx.outlet.send_method(
                    0,
                    Method::ConnectionUpdateSecretOk(ConnectionUpdateSecretOk::default()),
                );
                Ok(Flow::Continue)
            }
            Method::ConnectionBlocked(_) | Method::ConnectionUnblocked(_) => Ok(Flow::Continue),
            other => Err(AmqpError::connection(
                code::CHANNEL_ERROR,
                format!(
                    "unexpected method in connection state running: {}",
                    other.name()
                ),
                other.class_id(),
                other.method_id(),
            )),
        }
    }

    /// The broker closes the connection (320 CONNECTION_FORCED).
    async fn close_forced<R: AsyncRead + Unpin>(
        &mut self,
        e: BrokerError,
        frames: &mut FramedRead<R, FrameDecoder>,
    ) -> Ended {
        self.close_with_error(AmqpError::connection(e.code, e.text, 0, 0), frames)
            .await
    }

    /// Send connection.close for a hard error, then wait (briefly) for close-ok.
    async fn close_with_error<R: AsyncRead + Unpin>(
        &mut self,
        e: AmqpError,
        frames: &mut FramedRead<R, FrameDecoder>,
    ) -> Ended {
        let text = e.error.reply_text();
        self.cleanup();
        self.ctx.outlet.send_method(
            0,
            Method::ConnectionClose(ConnectionClose {
                reply_code: e.error.code,
                reply_text: ShortStr::from(text.clone()),
                class_id: e.class_id,
                method_id: e.method_id,
            }),
        );
        // As RabbitMQ: wait for close-ok, at most the closing timeout, dropping
        // every other frame; a close crossing ours is answered with close-ok.
        // Once the frames stop making sense, drop raw bytes until the client
        // closes (closing with unread input would reset the socket).
        let deadline = Instant::now() + warren_core::net::closing_timeout(self.heartbeat as u64);
        loop {
            match tokio::time::timeout_at(deadline.into(), frames.next()).await {
                Ok(Some(Ok(Frame::Method(0, Method::ConnectionCloseOk(_))))) | Err(_) => break,
                Ok(Some(Ok(Frame::Method(0, Method::ConnectionClose(_))))) => {
                    self.ctx
                        .outlet
                        .send_method(0, Method::ConnectionCloseOk(ConnectionCloseOk::default()));
                }
                Ok(Some(Ok(_))) => {}
                Ok(Some(Err(_))) | Ok(None) => {
                    let left = deadline
                        .saturating_duration_since(Instant::now())
                        .min(warren_core::net::SILENT_CLOSE_DELAY);
                    warren_core::net::discard_until_eof(frames.get_mut(), left).await;
                    break;
                }
            }
        }
        Err(format!("{} {}", e.error.code, text))
    }

    /// Release every channel and delete the connection's exclusive queues.
    fn cleanup(&mut self) {
        // What follows is the broker's doing, not the user's (events say so).
        warren_core::events::set_actor(None);
        self.channel_list.clear();
        for (_, mut c) in self.channels.drain() {
            c.release();
        }
        for q in std::mem::take(&mut self.ctx.exclusive_queues) {
            self.ctx.vhost.remove_queue(&q);
        }
    }
}

fn content_channel(
    channels: &mut HashMap<u16, Channel>,
    ch: u16,
) -> Result<&mut Channel, AmqpError> {
    if ch == 0 {
        return Err(AmqpError::connection(
            code::UNEXPECTED_FRAME,
            "content frame on channel 0",
            0,
            0,
        ));
    }
    channels.get_mut(&ch).ok_or_else(|| {
        AmqpError::connection(
            code::CHANNEL_ERROR,
            "expected 'channel.open'".to_string(),
            0,
            0,
        )
    })
}

fn frame_channel(f: &Frame) -> u16 {
    match f {
        Frame::Method(c, _) | Frame::Header(c, _) | Frame::Body(c, _) | Frame::Heartbeat(c) => *c,
    }
}

enum Flow {
    Continue,
    Closed,
}
