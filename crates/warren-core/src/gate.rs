//! Polling a rarely ready future only when it was woken.
//!
//! A connection task waits on several things at once: its outlet (woken per
//! delivery) and a few that almost never fire (the client closing the socket,
//! the registry asking the connection to close). `select!` polls every branch
//! on every wake-up, so each delivery to a feed also re-polled the socket's
//! read side (through `split`'s lock and the reactor's readiness) and the
//! close signal (through its `Notify`'s lock): ≈ 4 % of the broker's CPU in a
//! fan-out to 10,000 SSE feeds.
//!
//! [`Gated`] gives its future a waker of its own that raises a flag before
//! waking the task; the task's later polls skip the future unless the flag is
//! up. The price is one small allocation per gated future and, per poll of a
//! skipped one, an uncontended lock to keep the task's waker current.

use parking_lot::Mutex;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

/// The gated future's own waker.
struct Gate {
    /// Woken since the future was last polled (up at the start, so that
    /// the first poll registers the future's interest).
    fired: AtomicBool,
    /// The task's waker, passed on.
    task: Mutex<Option<Waker>>,
}

impl Wake for Gate {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.fired.store(true, Ordering::SeqCst);
        if let Some(w) = self.task.lock().as_ref() {
            w.wake_by_ref();
        }
    }
}

/// `F`, polled only after it woke its task (see the module's text).
pub struct Gated<F> {
    inner: Pin<Box<F>>,
    gate: Arc<Gate>,
    waker: Waker,
}

impl<F: Future> Gated<F> {
    pub fn new(inner: F) -> Gated<F> {
        let gate = Arc::new(Gate {
            fired: AtomicBool::new(true),
            task: Mutex::new(None),
        });
        Gated {
            inner: Box::pin(inner),
            waker: Waker::from(gate.clone()),
            gate,
        }
    }
}

impl<F: Future> Future for Gated<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        {
            // Stored before the flag is read: a wake between the two finds it.
            let mut task = this.gate.task.lock();
            if !task.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *task = Some(cx.waker().clone());
            }
        }
        if !this.gate.fired.swap(false, Ordering::SeqCst) {
            return Poll::Pending;
        }
        this.inner
            .as_mut()
            .poll(&mut Context::from_waker(&this.waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Counts its polls; ready once `open` is set.
    struct Probe {
        polls: Arc<AtomicUsize>,
        open: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Future for Probe {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            self.polls.fetch_add(1, Ordering::SeqCst);
            if self.open.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            *self.waker.lock() = Some(cx.waker().clone());
            Poll::Pending
        }
    }

    #[tokio::test]
    async fn polled_once_until_woken_then_ready() {
        let polls = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicBool::new(false));
        let waker = Arc::new(Mutex::new(None::<Waker>));
        let mut gated = Box::pin(Gated::new(Probe {
            polls: polls.clone(),
            open: open.clone(),
            waker: waker.clone(),
        }));
        let wakes = Arc::new(AtomicUsize::new(0));
        struct Count(Arc<AtomicUsize>);
        impl Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let task = Waker::from(Arc::new(Count(wakes.clone())));
        let mut cx = Context::from_waker(&task);
        for _ in 0..5 {
            assert!(gated.as_mut().poll(&mut cx).is_pending());
        }
        assert_eq!(polls.load(Ordering::SeqCst), 1, "skipped until woken");
        open.store(true, Ordering::SeqCst);
        let w = waker.lock().take().expect("registered");
        w.wake();
        assert_eq!(wakes.load(Ordering::SeqCst), 1, "the task was woken");
        assert!(gated.as_mut().poll(&mut cx).is_ready());
        assert_eq!(polls.load(Ordering::SeqCst), 2);
    }
}
