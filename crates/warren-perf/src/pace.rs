//! A producer's schedule: until when it publishes, and at what rate. With a
//! rate, message k is due at start + k/rate, so a producer that fell behind
//! catches up (in batches) instead of drifting.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(crate) struct Pace {
    pub start: Instant,
    /// Messages per second; None = as fast as the broker takes them.
    pub rate: Option<f64>,
    pub deadline: Option<Instant>,
}

impl Pace {
    pub fn over(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|d| now >= d)
    }

    /// How many of `want` more messages are due at `now`, `sent` being out.
    pub fn due(&self, now: Instant, sent: u64, want: u64) -> u64 {
        match self.rate {
            None => want,
            Some(rate) => {
                let due =
                    (now.saturating_duration_since(self.start).as_secs_f64() * rate) as u64 + 1;
                want.min(due.saturating_sub(sent))
            }
        }
    }

    /// With nothing to write, when to look again: the next message's due time
    /// or the deadline, whichever comes first (None: neither, wait for events).
    pub fn wake(&self, sent: u64) -> Option<Instant> {
        let next_due = self
            .rate
            .map(|rate| self.start + Duration::from_secs_f64(sent as f64 / rate));
        match (next_due, self.deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Sleep until `at`; forever if None (for a `select!` branch).
pub(crate) async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unthrottled_is_never_held_back() {
        let start = Instant::now();
        let p = Pace {
            start,
            rate: None,
            deadline: None,
        };
        assert_eq!(p.due(start, 1_000_000, 128), 128);
        assert_eq!(p.wake(5), None);
        assert!(!p.over(start + Duration::from_secs(3600)));
    }

    #[test]
    fn rate_spreads_messages_and_wakes_for_the_next() {
        let start = Instant::now();
        let deadline = start + Duration::from_secs(10);
        let p = Pace {
            start,
            rate: Some(1000.0),
            deadline: Some(deadline),
        };
        // Message 0 is due at once; after 5.5 ms, messages 0..=5.
        let later = start + Duration::from_micros(5500);
        assert_eq!(p.due(start, 0, 128), 1);
        assert_eq!(p.due(later, 0, 128), 6);
        assert_eq!(p.due(later, 6, 128), 0);
        assert_eq!(p.wake(6), Some(start + Duration::from_millis(6)));
        // The deadline wins when it comes first.
        assert_eq!(p.wake(1_000_000), Some(deadline));
        assert!(p.over(deadline));
        let no_rate = Pace { rate: None, ..p };
        assert_eq!(no_rate.wake(3), Some(deadline));
    }
}
