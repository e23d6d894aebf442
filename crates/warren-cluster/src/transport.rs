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
//! bytes discarded) and the next call dials a new one. A link cut by a
//! partition that drops packets looks alive to TCP for many minutes: left
//! open, it would keep queueing requests that all arrive once the network
//! heals, among them a forwarded metadata change whose client was long told
//! it was refused, which would then take effect.
//!
//! Before any frame, both ends of a new link prove they hold the cluster
//! cookie ([`crate::auth`]); a link that fails (or does not finish within
//! [`HANDSHAKE_TIMEOUT`]) is closed before one of its bytes reaches a
//! group's handler, with a warning naming the peer (rate-limited).
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
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, warn};

/// Largest frame accepted: a metadata snapshot or a batch of entries fits
/// many times over; anything bigger is a broken or hostile peer.
pub const MAX_FRAME: usize = 64 << 20;
/// A frame's buffer grows as its bytes arrive, from at most this much: a
/// length field alone never allocates [`MAX_FRAME`].
const FIRST_READ: usize = 64 << 10;
const HEADER: usize = 1 + 8 + 8 + 1;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
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
    refused: LogLimit,
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
async fn write_loop(
    mut w: tokio::net::tcp::OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
) {
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
    pub fn new(auth: Arc<LinkAuth>) -> Arc<Transport> {
        Arc::new(Transport {
            links: Default::default(),
            next_id: AtomicU64::new(0),
            auth,
            refused: LogLimit::default(),
        })
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
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, self.auth.dial(&mut stream)).await {
            Ok(Ok(peer)) => debug!("cluster link to {peer} at {addr} authenticated"),
            failed => {
                let why = match failed {
                    Ok(Err(e)) => e.to_string(),
                    _ => "handshake timed out".to_string(),
                };
                if let Some(n) = self.refused.allow(addr) {
                    warn!("cluster link to {addr} refused: {why}{}", suppressed(n));
                }
                return Err(CallError::Unreachable(format!("{addr}: {why}")));
            }
        }
        // Closing the link resets it: requests still queued in the kernel
        // must not reach the peer after we gave up on them.
        let _ = stream.set_zero_linger();
        let (mut r, w) = stream.into_split();
        let (tx, rx) = mpsc::unbounded_channel();
        let pending: Arc<Pending> = Arc::default();
        let alive = Arc::new(AtomicBool::new(true));
        let writer = tokio::spawn(write_loop(w, rx)).abort_handle();
        let reader = {
            let pending = pending.clone();
            let alive = alive.clone();
            let addr = addr.to_string();
            tokio::spawn(async move {
                loop {
                    match read_frame(&mut r).await {
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
            })
            .abort_handle()
        };
        let l = Arc::new(Link {
            tx,
            pending,
            alive,
            tasks: [reader, writer],
        });
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
        if link.tx.send(encode(0, id, group, rpc, payload)).is_err() {
            link.pending.lock().remove(&id);
            link.alive.store(false, Ordering::Release);
            return Err(CallError::Unreachable(format!("{addr}: link closed")));
        }
        let addr = addr.to_string();
        Ok(async move {
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(Ok(b))) => Ok(b),
                Ok(Ok(Err(e))) => Err(CallError::Remote(e)),
                Ok(Err(_)) => Err(CallError::Unreachable(format!("{addr}: link closed"))),
                Err(_) => {
                    // Broken or hopelessly slow: see the module comment.
                    link.abort();
                    debug!("cluster link to {addr}: no answer in time, link reset");
                    Err(CallError::Unreachable(format!("{addr}: no answer in time")))
                }
            }
        })
    }
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
/// its handshake succeeded.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, auth: Arc<LinkAuth>) {
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
        let refused = refused.clone();
        tokio::spawn(async move {
            let mut stream = stream;
            let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, auth.accept(&mut stream)).await;
            drop(permit);
            match done {
                Ok(Ok(name)) => debug!("cluster link from {name} at {peer} authenticated"),
                failed => {
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "handshake timed out".to_string(),
                    };
                    // Keyed by address without the port: a redialing node
                    // uses a new port each time.
                    if let Some(n) = refused.allow(&peer.ip().to_string()) {
                        warn!(
                            "cluster connection from {peer} refused: {why}{}",
                            suppressed(n)
                        );
                    }
                    return;
                }
            }
            let (mut r, w) = stream.into_split();
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
                // The handler is called here, in frame order; only its
                // future runs on a task of its own. A handler may do its
                // ordering-sensitive part synchronously (a forwarded quorum
                // write is handed to openraft before the next frame is
                // read: see `raft_net::RaftService`).
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
        });
    }
}
