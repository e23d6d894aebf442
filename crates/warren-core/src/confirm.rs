//! Confirms that wait for something other than the local message log.
//!
//! A publish into a replicated queue (a quorum queue, a classic queue on another
//! node) is safe only once *that* queue says so: its Raft group committed the
//! batch, or the owning node logged it. The publisher's adapter must not answer
//! (AMQP basic.ack, STOMP receipt, MQTT PUBACK) before then. A [`ConfirmTracker`]
//! belongs to one channel/session: the vhost opens a ticket for a publish that
//! reached such queues and hands each queue a [`Confirm`]; the adapter keeps the
//! ticket beside its log ticket and answers once [`ConfirmTracker::take`] says
//! the ticket is done. A channel whose queue lost its majority therefore stalls
//! only its own publishers.

use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio::sync::Notify;

/// Tickets of one channel (or session) waiting for replicated queues.
pub struct ConfirmTracker {
    state: Mutex<State>,
    /// Woken on every completion; usually shared by all trackers of one
    /// connection, so the connection task has one thing to wait on.
    wake: Arc<Notify>,
}

#[derive(Default)]
struct State {
    next: u64,
    /// Open tickets: how many queues still have to answer, and whether one
    /// already refused.
    open: HashMap<u64, Open>,
    /// Completed tickets that failed, until taken.
    failed: HashSet<u64>,
}

struct Open {
    left: u32,
    failed: bool,
}

impl ConfirmTracker {
    /// A tracker that wakes `wake` whenever a ticket completes.
    pub fn new(wake: Arc<Notify>) -> Arc<ConfirmTracker> {
        Arc::new(ConfirmTracker {
            state: Mutex::new(State {
                next: 1,
                ..State::default()
            }),
            wake,
        })
    }

    /// Open a ticket that completes once `parts` queues answered (`parts` ≥ 1).
    /// Returns the ticket (never 0: 0 means "nothing to wait for") and one
    /// [`Confirm`] per part.
    pub fn open(self: &Arc<Self>, parts: u32) -> (u64, Vec<Confirm>) {
        let parts = parts.max(1);
        let mut st = self.state.lock();
        let ticket = st.next;
        st.next += 1;
        st.open.insert(
            ticket,
            Open {
                left: parts,
                failed: false,
            },
        );
        drop(st);
        let confirms = (0..parts)
            .map(|_| Confirm {
                tracker: self.clone(),
                ticket,
                done: false,
            })
            .collect();
        (ticket, confirms)
    }

    /// Whether `ticket` is done: None while a queue still has to answer,
    /// Some(true) if every queue took the message, Some(false) if one refused
    /// it (the publisher gets a nack). A done ticket is forgotten: ask once.
    pub fn take(&self, ticket: u64) -> Option<bool> {
        if ticket == 0 {
            return Some(true);
        }
        let mut st = self.state.lock();
        if st.open.contains_key(&ticket) {
            return None;
        }
        Some(!st.failed.remove(&ticket))
    }

    /// Tickets still open (for the management API's `unconfirmed`).
    pub fn open_count(&self) -> usize {
        self.state.lock().open.len()
    }

    fn complete(&self, ticket: u64, ok: bool) {
        let mut st = self.state.lock();
        let Some(o) = st.open.get_mut(&ticket) else {
            return;
        };
        o.left -= 1;
        o.failed |= !ok;
        if o.left == 0 {
            let failed = o.failed;
            st.open.remove(&ticket);
            if failed {
                st.failed.insert(ticket);
            }
            drop(st);
            self.wake.notify_one();
        }
    }
}

/// One queue's share of a ticket. Complete it with [`Confirm::complete`];
/// dropped without that (the queue went away, the node shut down), it counts
/// as refused, so a publisher is never left waiting forever nor acked falsely.
pub struct Confirm {
    tracker: Arc<ConfirmTracker>,
    ticket: u64,
    done: bool,
}

impl Confirm {
    /// The queue took the message safely (`ok`) or refused it.
    pub fn complete(mut self, ok: bool) {
        self.done = true;
        self.tracker.complete(self.ticket, ok);
    }

    pub fn ticket(&self) -> u64 {
        self.ticket
    }
}

impl Drop for Confirm {
    fn drop(&mut self) {
        if !self.done {
            self.tracker.complete(self.ticket, false);
        }
    }
}

impl std::fmt::Debug for Confirm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirm")
            .field("ticket", &self.ticket)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_completes_when_every_part_answered() {
        let t = ConfirmTracker::new(Arc::new(Notify::new()));
        let (ticket, parts) = t.open(2);
        assert_eq!(t.take(ticket), None);
        let mut parts = parts.into_iter();
        parts.next().expect("part").complete(true);
        assert_eq!(t.take(ticket), None);
        parts.next().expect("part").complete(true);
        assert_eq!(t.take(ticket), Some(true));
        assert_eq!(t.take(0), Some(true));
    }

    #[test]
    fn a_refusal_or_a_drop_fails_the_ticket() {
        let t = ConfirmTracker::new(Arc::new(Notify::new()));
        let (a, pa) = t.open(1);
        let (b, pb) = t.open(2);
        drop(pa);
        assert_eq!(t.take(a), Some(false));
        let mut pb = pb.into_iter();
        pb.next().expect("part").complete(false);
        pb.next().expect("part").complete(true);
        assert_eq!(t.take(b), Some(false));
        assert_eq!(t.open_count(), 0);
    }
}
