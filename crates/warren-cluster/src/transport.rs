//! The inter-node transport: requests and responses of every Raft group
//! multiplexed over one TCP link per peer.
//!
//! Each node dials each peer once (lazily, and again after the link breaks)
//! and sends all its requests for that peer over the link, whatever the group;
//! responses come back on the same link, matched by request id, so a slow
//! snapshot does not hold up heartbeats. Inbound links are served by
//! [`serve`], which hands each request to the group's handler in the
//! [`Registry`] on its own task. (A pair of nodes thus has two links, one
//! dialled by each side; each carries one direction's requests.)
//!
//! A call that gets no answer in time takes its link down (reset, unsent
//! bytes discarded) and the next call dials a new one, when the link looks
//! dead: nothing came back on it for [`SILENT_LINK`], or the call was a long
//! one (a forwarded write, [`LONG_CALL`] or more). A link cut by a
//! partition that drops packets looks alive to TCP for many minutes: left
//! open, it would keep queueing requests that all arrive once the network
//! heals, among them a forwarded metadata change whose client was long told
//! it was refused, which would then take effect. A short call (a Raft
//! heartbeat waits 250 ms) that times out on a link still answering other
//! calls leaves it alone: resetting it would fail every group's calls on it
//! because one follower was slow to fsync.
//!
//! A link the peer closed (its process exited: the kernel closes its
//! sockets) is announced on [`Transport::closed`], so groups led by that
//! peer can elect a new leader without waiting for their timers
//! ([`crate::failover`]).
//!
//! Before any frame, both ends of a new link prove they hold the cluster
//! cookie ([`crate::auth`]); a link that fails (or does not finish within
//! [`HANDSHAKE_TIMEOUT`]) is closed before one of its bytes reaches a
//! group's handler, with a warning naming the peer (rate-limited).
//!
//! With inter-node TLS (`--cluster-tls`, [`PeerTls`]) each link is a mutual
//! TLS connection first, and the cookie handshake runs inside it.
//!
//! Frame: `len: u32` (of the rest), `kind: u8` (0 request, 1 response),
//! `id: u64`, `group: u64`, `code: u8` (a request's RPC; a response's status,
//! 0 ok or 1 error whose payload is the error text), then the payload, whose
//! encoding is the group's business. All big-endian.

use crate::auth::{LinkAuth, LogLimit, HANDSHAKE_TIMEOUT};
use crate::group::{GroupId, Registry};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};
use warren_tls::PeerTls;

/// Largest frame accepted: a metadata snapshot or a batch of entries fits
/// many times over; anything bigger is a broken or hostile peer.
pub const MAX_FRAME: usize = 64 << 20;
/// A frame's buffer grows as its bytes arrive, from at most this much: a
/// length field alone never allocates [`MAX_FRAME`].
const FIRST_READ: usize = 64 << 10;
const HEADER: usize = 1 + 8 + 8 + 1;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
/// A link with calls waiting and no frame received for this long is taken
/// for cut (every peer answers liveness probes each second, and a leader's
/// followers answer its heartbeats every 250 ms).
pub const SILENT_LINK: Duration = Duration::from_millis(1000);
/// A call this long that times out takes its link down whatever else
/// arrives on it (see the module comment).
pub const LONG_CALL: Duration = Duration::from_millis(1000);
/// Inbound connections still in their handshake at once; more are closed
/// at once, so a connection flood costs at most this many tasks and
/// sockets for [`HANDSHAKE_TIMEOUT`] (a cluster has a few peers, each
/// dialing two links).
const MAX_HANDSHAKES: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// No link to the peer, or it broke, or no answer in time.
    Unreachable(String),
    /// The peer answered with an error.
    Remote(String),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Unreachable(s) => write!(f, "unreachable: {s}"),
            CallError::Remote(s) => write!(f, "remote error: {s}"),
        }
    }
}

impl std::error::Error for CallError {}

type Pending = Mutex<HashMap<u64, oneshot::Sender<Result<Bytes, String>>>>;

/// One live outbound link.
struct Link {
    tx: mpsc::UnboundedSender<Bytes>,
    pending: Arc<Pending>,
    alive: Arc<AtomicBool>,
    /// When the last frame arrived ([`millis`]).
    last_rx: Arc<AtomicU64>,
    /// The reader and writer tasks, which own the socket's halves.
    tasks: [tokio::task::AbortHandle; 2],
}

impl Link {
    /// Take the link down now: the tasks drop the socket, which (zero
    /// linger) resets it and discards what was not sent yet; waiters see
    /// "link closed".
    fn abort(&self) {
        self.alive.store(false, Ordering::Release);
        for t in &self.tasks {
            t.abort();
        }
        self.pending.lock().clear();
    }
}

/// A peer's current link, if any.
type LinkSlot = tokio::sync::Mutex<Option<Arc<Link>>>;

/// Outbound links to peers, by address.
pub struct Transport {
    /// One slot per peer address, locked while its link is (re)made: a
    /// peer slow to connect or to finish its handshake holds up calls to
    /// itself only.
    links: Mutex<HashMap<String, Arc<LinkSlot>>>,
    next_id: AtomicU64,
    /// Proves this node's cookie on every new link.
    auth: Arc<LinkAuth>,
    /// Inter-node TLS, when configured.
    tls: Option<Arc<PeerTls>>,
    refused: LogLimit,
    /// Addresses of peers that closed their link (see [`Transport::closed`]).
    closed: tokio::sync::broadcast::Sender<String>,
}

/// Milliseconds since the first call: a timestamp an atomic can hold.
fn millis() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
}

/// Removes a call's waiter when the call ends, also when its caller gives
/// up on it (an outer timeout drops the future): no waiter stays behind
/// for an answer that never comes.
struct Waiter {
    pending: Arc<Pending>,
    id: u64,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.pending.lock().remove(&self.id);
    }
}

fn encode(kind: u8, id: u64, group: GroupId, code: u8, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + HEADER + payload.len());
    b.put_u32((HEADER + payload.len()) as u32);
    b.put_u8(kind);
    b.put_u64(id);
    b.put_u64(group);
    b.put_u8(code);
    b.put_slice(payload);
    b.freeze()
}

pub struct Frame {
    pub kind: u8,
    pub id: u64,
    pub group: GroupId,
    pub code: u8,
    pub payload: Bytes,
}

/// Read one frame (public for the fuzz target).
pub async fn read_frame<R: AsyncReadExt + Unpin>(r: &mut R) -> std::io::Result<Frame> {
    let len = r.read_u32().await? as usize;
    if !(HEADER..=MAX_FRAME).contains(&len) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("bad cluster frame length {len}"),
        ));
    }
    let mut raw = Vec::with_capacity(len.min(FIRST_READ));
    r.take(len as u64).read_to_end(&mut raw).await?;
    if raw.len() != len {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let mut buf = Bytes::from(raw);
    let kind = buf.get_u8();
    let id = buf.get_u64();
    let group = buf.get_u64();
    let code = buf.get_u8();
    Ok(Frame {
        kind,
        id,
        group,
        code,
        payload: buf,
    })
}

/// Write queued frames, coalescing what is queued into one write.
async fn write_loop<W: AsyncWrite + Unpin>(mut w: W, mut rx: mpsc::UnboundedReceiver<Bytes>) {
    let mut buf = Vec::new();
    while let Some(f) = rx.recv().await {
        buf.clear();
        buf.extend_from_slice(&f);
        while let Ok(more) = rx.try_recv() {
            buf.extend_from_slice(&more);
        }
        if w.write_all(&buf).await.is_err() {
            return;
        }
    }
}

impl Transport {
    pub fn new(auth: Arc<LinkAuth>, tls: Option<Arc<PeerTls>>) -> Arc<Transport> {
        Arc::new(Transport {
            links: Default::default(),
            next_id: AtomicU64::new(0),
            auth,
            tls,
            refused: LogLimit::default(),
            closed: tokio::sync::broadcast::channel(64).0,
        })
    }

    /// Peers (by address) whose end closed a link of ours: the process
    /// there exited, or restarted. Not sent for links this node takes down.
    pub fn closed(&self) -> tokio::sync::broadcast::Receiver<String> {
        self.closed.subscribe()
    }

    /// The cookie handshake on a new link (inside TLS when configured);
    /// a refusal is logged, rate-limited.
    async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        addr: &str,
    ) -> Result<(), CallError> {
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.auth.dial(stream)).await {
            Ok(Ok(peer)) => {
                debug!("cluster link to {peer} at {addr} authenticated");
                Ok(())
            }
            Ok(Err(e)) => Err(self.refuse(addr, e.to_string())),
            Err(_) => Err(self.refuse(addr, "handshake timed out".to_string())),
        }
    }

    fn refuse(&self, addr: &str, why: String) -> CallError {
        if let Some(n) = self.refused.allow(addr) {
            warn!("cluster link to {addr} refused: {why}{}", suppressed(n));
        }
        CallError::Unreachable(format!("{addr}: {why}"))
    }

    async fn link(&self, addr: &str) -> Result<Arc<Link>, CallError> {
        let slot = self
            .links
            .lock()
            .entry(addr.to_string())
            .or_default()
            .clone();
        let mut links = slot.lock().await;
        if let Some(l) = links.as_ref() {
            if l.alive.load(Ordering::Acquire) {
                return Ok(l.clone());
            }
        }
        let mut stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| CallError::Unreachable(format!("{addr}: connect timed out")))?
            .map_err(|e| CallError::Unreachable(format!("{addr}: {e}")))?;
        let _ = stream.set_nodelay(true);
        // Closing the link resets it: requests still queued in the kernel
        // must not reach the peer after we gave up on them.
        let _ = stream.set_zero_linger();
        let l = match &self.tls {
            None => {
                self.authenticate(&mut stream, addr).await?;
                let (r, w) = stream.into_split();
                start_link(r, w, addr, &self.closed)
            }
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let mut stream = match tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    tls.connect(stream, host),
                )
                .await
                {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => return Err(self.refuse(addr, format!("TLS: {e}"))),
                    Err(_) => return Err(self.refuse(addr, "TLS handshake timed out".into())),
                };
                self.authenticate(&mut stream, addr).await?;
                let (r, w) = tokio::io::split(stream);
                start_link(r, w, addr, &self.closed)
            }
        };
        *links = Some(l.clone());
        Ok(l)
    }

    /// Send one request to the peer at `addr` and wait for its answer, at
    /// most `timeout`.
    pub async fn call(
        &self,
        addr: &str,
        group: GroupId,
        rpc: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<Bytes, CallError> {
        self.send_call(addr, group, rpc, payload, timeout)
            .await?
            .await
    }

    /// The first half of [`Transport::call`]: the request is queued on the
    /// link when this returns (so requests sent one after the other leave,
    /// and reach the peer's handlers, in that order); the returned future
    /// waits for the answer.
    pub async fn send_call(
        &self,
        addr: &str,
        group: GroupId,
        rpc: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<impl std::future::Future<Output = Result<Bytes, CallError>>, CallError> {
        let link = tokio::time::timeout(timeout, self.link(addr))
            .await
            .map_err(|_| CallError::Unreachable(format!("{addr}: connect timed out")))??;
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        link.pending.lock().insert(id, tx);
        let waiter = Waiter {
            pending: link.pending.clone(),
            id,
        };
        if link.tx.send(encode(0, id, group, rpc, payload)).is_err() {
            link.alive.store(false, Ordering::Release);
            return Err(CallError::Unreachable(format!("{addr}: link closed")));
        }
        let addr = addr.to_string();
        Ok(async move {
            let _waiter = waiter;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(Ok(b))) => Ok(b),
                Ok(Ok(Err(e))) => Err(CallError::Remote(e)),
                Ok(Err(_)) => Err(CallError::Unreachable(format!("{addr}: link closed"))),
                Err(_) => {
                    // Broken, or a long call hopelessly slow: see the module
                    // comment. A short call on a link that answers others
                    // just failed.
                    let silent = millis().saturating_sub(link.last_rx.load(Ordering::Relaxed));
                    if timeout >= LONG_CALL || silent >= SILENT_LINK.as_millis() as u64 {
                        link.abort();
                        debug!("cluster link to {addr}: no answer in time, link reset");
                    }
                    Err(CallError::Unreachable(format!("{addr}: no answer in time")))
                }
            }
        })
    }
}

/// A link's reader and writer tasks over an authenticated stream's halves;
/// `closed` hears of it when the peer closes it.
fn start_link<R, W>(
    mut r: R,
    w: W,
    addr: &str,
    closed: &tokio::sync::broadcast::Sender<String>,
) -> Arc<Link>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let pending: Arc<Pending> = Arc::default();
    let alive = Arc::new(AtomicBool::new(true));
    let last_rx = Arc::new(AtomicU64::new(millis()));
    let writer = tokio::spawn(write_loop(w, rx)).abort_handle();
    let reader = {
        let pending = pending.clone();
        let alive = alive.clone();
        let last_rx = last_rx.clone();
        let closed = closed.clone();
        let addr = addr.to_string();
        tokio::spawn(async move {
            loop {
                let frame = read_frame(&mut r).await;
                if frame.is_ok() {
                    last_rx.store(millis(), Ordering::Relaxed);
                }
                match frame {
                    Ok(f) if f.kind == 1 => {
                        let waiter = pending.lock().remove(&f.id);
                        if let Some(w) = waiter {
                            let r = if f.code == 0 {
                                Ok(f.payload)
                            } else {
                                Err(String::from_utf8_lossy(&f.payload).into_owned())
                            };
                            let _ = w.send(r);
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        debug!("cluster link to {addr} closed: {e}");
                        break;
                    }
                }
            }
            alive.store(false, Ordering::Release);
            // Waiters see their sender dropped: unreachable.
            pending.lock().clear();
            let _ = closed.send(addr);
        })
        .abort_handle()
    };
    Arc::new(Link {
        tx,
        pending,
        alive,
        last_rx,
        tasks: [reader, writer],
    })
}

fn suppressed(n: u64) -> String {
    if n == 0 {
        String::new()
    } else {
        format!(" ({n} more since the last warning)")
    }
}

/// Serve inbound links: each request goes to its group's handler, on its own
/// task, and the answer back on the same link. A link is served only after
/// its handshakes (TLS when configured, then the cookie) succeeded, both
/// within [`HANDSHAKE_TIMEOUT`].
pub async fn serve(
    listener: TcpListener,
    registry: Arc<Registry>,
    auth: Arc<LinkAuth>,
    tls: Option<Arc<PeerTls>>,
) {
    let refused = Arc::new(LogLimit::default());
    let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                debug!("cluster accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = handshakes.clone().try_acquire_owned() else {
            if let Some(n) = refused.allow("too many handshakes") {
                warn!(
                    "cluster connection from {peer} refused: {MAX_HANDSHAKES} handshakes already in progress{}",
                    suppressed(n)
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let registry = registry.clone();
        let auth = auth.clone();
        let tls = tls.clone();
        let refused = refused.clone();
        tokio::spawn(async move {
            let refuse = |why: String| {
                // Keyed by address without the port: a redialing node
                // uses a new port each time.
                if let Some(n) = refused.allow(&peer.ip().to_string()) {
                    warn!(
                        "cluster connection from {peer} refused: {why}{}",
                        suppressed(n)
                    );
                }
            };
            let mut stream = stream;
            match tls {
                None => {
                    let done =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, auth.accept(&mut stream)).await;
                    drop(permit);
                    match done {
                        Ok(Ok(name)) => debug!("cluster link from {name} at {peer} authenticated"),
                        Ok(Err(e)) => return refuse(e.to_string()),
                        Err(_) => return refuse("handshake timed out".into()),
                    }
                    let (r, w) = stream.into_split();
                    serve_link(r, w, registry, peer).await
                }
                Some(tls) => {
                    let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
                        let mut s = tls.accept(stream).await.map_err(|e| format!("TLS: {e}"))?;
                        let name = auth.accept(&mut s).await.map_err(|e| e.to_string())?;
                        Ok::<_, String>((s, name))
                    })
                    .await;
                    drop(permit);
                    let s = match done {
                        Ok(Ok((s, name))) => {
                            debug!("cluster link from {name} at {peer} authenticated (TLS)");
                            s
                        }
                        Ok(Err(e)) => return refuse(e),
                        Err(_) => return refuse("handshake timed out".into()),
                    };
                    let (r, w) = tokio::io::split(s);
                    serve_link(r, w, registry, peer).await
                }
            }
        });
    }
}

/// Answer one authenticated inbound link's requests until it closes.
async fn serve_link<R, W>(mut r: R, w: W, registry: Arc<Registry>, peer: std::net::SocketAddr)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(write_loop(w, rx));
    loop {
        let f = match read_frame(&mut r).await {
            Ok(f) => f,
            Err(e) => {
                debug!("cluster link from {peer} closed: {e}");
                return;
            }
        };
        if f.kind != 0 {
            continue;
        }
        let tx = tx.clone();
        // The handler is called here, in frame order; only its future runs
        // on a task of its own. A handler may do its ordering-sensitive part
        // synchronously (a forwarded quorum write is handed to openraft
        // before the next frame is read: see `raft_net::RaftService`).
        let (group, code) = (f.group, f.code);
        let work = registry.get(group).map(|h| h.handle(code, f.payload));
        tokio::spawn(async move {
            let answer = match work {
                Some(w) => w.await,
                None => Err(format!("no raft group {} on this node", group)),
            };
            let frame = match answer {
                Ok(p) => encode(1, f.id, f.group, 0, &p),
                Err(e) => encode(1, f.id, f.group, 1, e.as_bytes()),
            };
            let _ = tx.send(frame);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Cookie;
    use crate::group::{GroupHandler, HandlerFuture};

    /// RPC 1 answers after 300 ms, RPC 2 at once.
    struct Slow;

    impl GroupHandler for Slow {
        fn handle(&self, rpc: u8, _payload: Bytes) -> HandlerFuture {
            Box::pin(async move {
                if rpc == 1 {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
                Ok(Bytes::from_static(b"ok"))
            })
        }
    }

    fn auth(name: &str) -> Arc<LinkAuth> {
        LinkAuth::new(name, &Cookie::from_value("test-cookie").expect("cookie"))
    }

    fn current(t: &Transport, addr: &str) -> Option<Arc<Link>> {
        let slot = t.links.lock().get(addr).cloned()?;
        let l = slot.try_lock().ok()?.clone();
        l
    }

    #[tokio::test]
    async fn a_short_call_timing_out_on_a_live_link_keeps_it() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let registry = Arc::new(Registry::default());
        registry.register(7, Arc::new(Slow));
        let server = tokio::spawn(serve(listener, registry, auth("b"), None));
        let t = Transport::new(auth("a"), None);
        let d = Duration::from_millis(100);
        assert!(t.call(&addr, 7, 2, b"", d).await.is_ok());
        let before = current(&t, &addr).expect("a link");
        // Slow to answer, but the link answers others: not reset.
        let slow = t.call(&addr, 7, 1, b"", d).await;
        assert!(matches!(slow, Err(CallError::Unreachable(_))), "{slow:?}");
        assert!(t.call(&addr, 7, 2, b"", d).await.is_ok());
        let after = current(&t, &addr).expect("a link");
        assert!(Arc::ptr_eq(&before, &after) && after.alive.load(Ordering::Acquire));
        // No waiter stays behind for the answer that came too late.
        assert!(after.pending.lock().is_empty());
        server.abort();
    }

    #[tokio::test]
    async fn a_link_the_peer_closes_is_announced() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        // The peer authenticates the link, then its process "exits".
        let peer = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            auth("b").accept(&mut s).await.expect("handshake");
            let mut one = [0u8; 1];
            let _ = s.read(&mut one).await; // the first request arrives
        });
        let t = Transport::new(auth("a"), None);
        let mut closed = t.closed();
        let call = t.call(&addr, 7, 2, b"", Duration::from_secs(5)).await;
        assert!(matches!(call, Err(CallError::Unreachable(_))), "{call:?}");
        let gone = tokio::time::timeout(Duration::from_secs(5), closed.recv()).await;
        assert_eq!(gone.expect("announced").expect("an address"), addr);
        peer.await.expect("peer");
    }
}
