//! How the registry asks one connection to close: a value (the error to
//! close with) and a wake-up, as a `watch` channel would carry them, in about
//! a quarter of the memory. A `watch` channel allocates ~400 bytes (nine
//! `Notify`s); every open connection of every protocol holds one of these,
//! so with tens of thousands of idle connections the difference shows in the
//! broker's RSS.

use parking_lot::Mutex;
use std::sync::Arc;
use tokio::sync::Notify;

use crate::error::BrokerError;

struct Shared {
    state: Mutex<State>,
    notify: Notify,
}

struct State {
    /// Bumped by every `send`; a receiver remembers the last it saw.
    version: u32,
    error: Option<BrokerError>,
    sender_gone: bool,
}

/// The registry's end.
pub struct CloseSender(Arc<Shared>);

/// The connection's end: [`Closed::changed`] resolves when a new value was
/// sent since this receiver last looked.
#[derive(Clone)]
pub struct Closed {
    shared: Arc<Shared>,
    seen: u32,
}

/// The sender is gone (the connection was unregistered).
#[derive(Debug)]
pub struct SenderGone;

pub fn channel() -> (CloseSender, Closed) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            version: 0,
            error: None,
            sender_gone: false,
        }),
        notify: Notify::new(),
    });
    (CloseSender(shared.clone()), Closed { shared, seen: 0 })
}

impl CloseSender {
    pub fn send(&self, error: Option<BrokerError>) {
        {
            let mut st = self.0.state.lock();
            st.version = st.version.wrapping_add(1);
            st.error = error;
        }
        self.0.notify.notify_waiters();
    }
}

impl Drop for CloseSender {
    fn drop(&mut self) {
        self.0.state.lock().sender_gone = true;
        self.0.notify.notify_waiters();
    }
}

impl Closed {
    /// Wait for a value this receiver has not seen (marking it seen).
    pub async fn changed(&mut self) -> Result<(), SenderGone> {
        loop {
            let notified = self.shared.notify.notified();
            tokio::pin!(notified);
            // Registered before the check, so a send in between wakes it.
            notified.as_mut().enable();
            {
                let st = self.shared.state.lock();
                if st.version != self.seen {
                    self.seen = st.version;
                    return Ok(());
                }
                if st.sender_gone {
                    return Err(SenderGone);
                }
            }
            notified.await;
        }
    }

    /// The current value, marked seen.
    pub fn borrow_and_update(&mut self) -> Option<BrokerError> {
        let st = self.shared.state.lock();
        self.seen = st.version;
        st.error.clone()
    }

    /// The current value.
    pub fn get(&self) -> Option<BrokerError> {
        self.shared.state.lock().error.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn wakes_once_per_send_and_ends_with_the_sender() {
        let (tx, mut rx) = channel();
        let mut other = rx.clone();
        let waiter = tokio::spawn(async move {
            other.changed().await.unwrap();
            other.borrow_and_update()
        });
        tokio::task::yield_now().await;
        tx.send(Some(BrokerError::connection_forced("bye")));
        assert!(waiter.await.unwrap().is_some());
        rx.changed().await.unwrap();
        assert!(rx.borrow_and_update().is_some());
        drop(tx);
        assert!(rx.changed().await.is_err());
    }
}
