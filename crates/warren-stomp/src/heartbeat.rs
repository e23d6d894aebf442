//! Heart-beating: what CONNECT's `heart-beat` header negotiates, and the
//! monitor that drops a client that went silent.
//!
//! RabbitMQ works in whole seconds: a client's `cx,cy` (milliseconds) becomes
//! "send every max(1, cy/1000) s" and "expect something every max(1, cx/1000) s"
//! (0 stays 0), and CONNECTED announces those, in milliseconds. The server
//! sends an EOL whenever it wrote nothing for half its interval (the outlet's
//! writer does that). A client is dropped once nothing at all (frames, EOLs,
//! or part of a frame) arrived for two of its intervals: RabbitMQ checks the
//! socket's received-octet count every interval and gives up after two checks
//! without change.

use std::time::Duration;

/// Negotiated heart-beats, in seconds (0 = off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Heartbeat {
    /// How often the server must show it is alive.
    pub send: u64,
    /// How often the client promised to.
    pub receive: u64,
}

impl Heartbeat {
    /// From CONNECT's `heart-beat` value (`"0,0"` when absent). `None` when it is
    /// not two integers (RabbitMQ's processor crashes: "Processing error").
    pub fn negotiate(header: &[u8]) -> Option<Heartbeat> {
        let s = std::str::from_utf8(header).ok()?;
        let mut parts = s.split(',');
        let cx = erlang_integer(parts.next()?)?;
        let cy = erlang_integer(parts.next()?)?;
        if parts.next().is_some() {
            return None;
        }
        Some(Heartbeat {
            send: millis_to_seconds(cy),
            receive: millis_to_seconds(cx),
        })
    }

    /// CONNECTED's `heart-beat` value, in milliseconds.
    pub fn announced(&self) -> (u64, u64) {
        (self.send * 1000, self.receive * 1000)
    }

    pub fn send_interval(&self) -> Duration {
        Duration::from_secs(self.send)
    }
}

/// `list_to_integer/1`: an optional sign and digits, nothing else (no spaces).
fn erlang_integer(s: &str) -> Option<i128> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // Absurdly long numbers saturate instead of failing.
    Some(s.parse::<i128>().unwrap_or(if s.starts_with('-') {
        i128::MIN
    } else {
        i128::MAX
    }))
}

fn millis_to_seconds(m: i128) -> u64 {
    match m {
        m if m <= 0 => 0,
        m if m < 1000 => 1,
        m => u64::try_from(m / 1000).unwrap_or(u64::MAX),
    }
}

/// Watches the received-octet count of a connection whose client promised
/// heart-beats.
pub struct Monitor {
    last: u64,
    silent_checks: u32,
}

impl Default for Monitor {
    fn default() -> Monitor {
        Monitor::new()
    }
}

impl Monitor {
    /// The first check always counts as activity (the CONNECT frame was), so
    /// the client is dropped between two and three intervals after it was last
    /// heard from, as with RabbitMQ.
    pub fn new() -> Monitor {
        Monitor {
            last: u64::MAX,
            silent_checks: 0,
        }
    }

    /// One check, every receive interval: false once the client has been
    /// silent for two checks in a row.
    pub fn check(&mut self, received: u64) -> bool {
        if received != self.last {
            self.last = received;
            self.silent_checks = 0;
            return true;
        }
        self.silent_checks += 1;
        self.silent_checks < 2
    }

    /// Reading was paused (resource alarm): the silence was ours.
    pub fn reset(&mut self, received: u64) {
        self.last = received;
        self.silent_checks = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_like_rabbitmq() {
        let hb = |s: &str| Heartbeat::negotiate(s.as_bytes());
        assert_eq!(hb("0,0"), Some(Heartbeat::default()));
        assert_eq!(
            hb("500,1500"),
            Some(Heartbeat {
                send: 1,
                receive: 1
            })
        );
        assert_eq!(hb("10000,0").map(|h| h.announced()), Some((0, 10000)));
        assert_eq!(hb("-5,2999").map(|h| h.announced()), Some((2000, 0)));
        assert_eq!(hb("x"), None);
        assert_eq!(hb("1, 2"), None);
        assert_eq!(hb("1,2,3"), None);
    }

    #[test]
    fn monitor_gives_up_after_two_silent_checks() {
        let mut m = Monitor::new();
        assert!(m.check(11));
        assert!(m.check(11));
        assert!(!m.check(11));
        m.reset(11);
        assert!(m.check(11));
        assert!(m.check(12));
    }
}
