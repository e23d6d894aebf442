//! A response that takes its connection out of hyper once its head is sent.
//!
//! Why: a long-lived stream of small writes (an SSE feed) pays hyper's
//! per-chunk machinery on every event — the connection's dispatcher loop, a
//! body poll through a channel of `Bytes` chunks, chunk-size encoding into a
//! queue of buffers and a `writev` of three of them. With 10,000 feeds that
//! is most of the broker's user-space time per fanned-out message. A handler
//! that [`claim`](Takeover::claim)s the connection answers with a head and a
//! body that never yields; once hyper has flushed the head, the accept task
//! drops hyper's connection (its buffers go too, ~8 KiB per idle feed) and
//! runs the handler's future on the bare socket (plain or TLS), which then
//! writes its own body framing with one write per batch.
//!
//! The hand-over is safe because it happens only when hyper has nothing left
//! to write: the placeholder body arms the slot when hyper first polls it
//! (the head is then in hyper's write buffer), and the socket wrapper
//! ([`Watched`]) marks it ready at the next completed `poll_flush`, which
//! hyper calls only with an empty write buffer. Until then the slot, with
//! the handler's future, belongs to the connection task; if hyper fails first
//! (the client left), dropping the slot drops the future and what it owns.

use bytes::Bytes;
use futures_util::Stream;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A connection's byte stream after the hand-over.
pub trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// What runs on the connection once hyper has let go of it. `pending` is
/// what hyper had read beyond the request (a pipelining client's next
/// request; an SSE client sends nothing).
pub type Run =
    Box<dyn FnOnce(Box<dyn Io>, Bytes) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

const IDLE: u8 = 0;
/// The placeholder body was polled: the head is in hyper's write buffer.
const ARMED: u8 = 1;
/// hyper flushed after that: the socket is the handler's.
const READY: u8 = 2;

struct Slot {
    state: AtomicU8,
    run: Mutex<Option<Run>>,
}

/// A connection's hand-over slot, in every request's extensions.
#[derive(Clone)]
pub struct Takeover(Arc<Slot>);

impl Takeover {
    pub(crate) fn new() -> Takeover {
        Takeover(Arc::new(Slot {
            state: AtomicU8::new(IDLE),
            run: Mutex::new(None),
        }))
    }

    /// Take the connection once the response head (whatever the handler
    /// returns, with the body this gives) is written: `run` gets the socket.
    /// The head's framing (`transfer-encoding: chunked` for an HTTP/1.1
    /// request, close-delimited for HTTP/1.0) is `run`'s to keep.
    pub fn claim(&self, run: Run) -> axum::body::Body {
        *lock(&self.0.run) = Some(run);
        axum::body::Body::from_stream(Placeholder {
            slot: self.0.clone(),
        })
    }

    pub(crate) fn ready(&self) -> bool {
        self.0.state.load(Ordering::Acquire) == READY
    }

    pub(crate) fn take(&self) -> Option<Run> {
        lock(&self.0.run).take()
    }
}

fn lock(m: &Mutex<Option<Run>>) -> std::sync::MutexGuard<'_, Option<Run>> {
    // Nothing panics while holding it.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The body hyper sees: arms the slot and never yields.
struct Placeholder {
    slot: Arc<Slot>,
}

impl Stream for Placeholder {
    type Item = io::Result<Bytes>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let _ = self
            .slot
            .state
            .compare_exchange(IDLE, ARMED, Ordering::AcqRel, Ordering::Acquire);
        // No waker: the connection task hands the socket over right after
        // hyper's flush, in the same poll.
        Poll::Pending
    }
}

/// The socket as hyper sees it: everything forwarded, and a completed flush
/// after the placeholder body was polled marks the hand-over ready.
pub(crate) struct Watched<S> {
    inner: S,
    slot: Takeover,
}

impl<S> Watched<S> {
    pub(crate) fn new(inner: S, slot: Takeover) -> Watched<S> {
        Watched { inner, slot }
    }

    pub(crate) fn into_inner(self) -> S {
        self.inner
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        if matches!(r, Poll::Ready(Ok(()))) {
            // hyper flushes the IO only once its own buffer is written.
            let _ = self.slot.0.state.compare_exchange(
                ARMED,
                READY,
                Ordering::AcqRel,
                Ordering::Acquire,
            );
        }
        r
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
