//! Users and passwords. Which vhosts a user may open, and what it may do there,
//! is in [`crate::permissions`].
//!
//! Passwords are stored as RabbitMQ stores them (`rabbit_password_hashing_sha256`):
//! base64(salt ‖ SHA-256(salt ‖ password)) with a 4-byte salt, so hashes exported
//! from RabbitMQ's definitions work here unchanged.

use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A broker user, as stored in the definitions file (which is why it is
/// serializable: the password is only ever kept as its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub name: String,
    /// RabbitMQ-format SHA-256 password hash (base64).
    pub password_hash: String,
    #[serde(default)]
    pub tags: Vec<String>,
    /// May only connect from a loopback address (RabbitMQ's `loopback_users`).
    #[serde(default)]
    pub loopback_only: bool,
    /// `max-connections`, `max-channels` (see [`crate::limits`]).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub limits: crate::limits::LimitMap,
}

impl User {
    pub fn new(name: &str, password: &str) -> User {
        User {
            name: name.to_string(),
            password_hash: hash_password(password, salt()),
            tags: Vec::new(),
            loopback_only: false,
            limits: Default::default(),
        }
    }

    /// Replace the password (a new salt each time, as RabbitMQ does).
    pub fn set_password(&mut self, password: &str) {
        self.password_hash = hash_password(password, salt());
    }

    pub fn is_administrator(&self) -> bool {
        self.tags.iter().any(|t| t == "administrator")
    }

    pub fn check_password(&self, password: &[u8]) -> bool {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(&self.password_hash) else {
            return false;
        };
        if raw.len() != 4 + 32 {
            return false;
        }
        let mut h = Sha256::new();
        h.update(&raw[..4]);
        h.update(password);
        let digest = h.finalize();
        // Constant-time compare: every byte is looked at whatever differs
        // (black_box keeps the optimizer from turning the fold into an early
        // exit), so the reply time tells nothing about the stored hash.
        digest
            .iter()
            .zip(&raw[4..])
            .fold(0u8, |acc, (a, b)| std::hint::black_box(acc | (a ^ b)))
            == 0
    }
}

/// Checking a password for a user that does not exist costs the same as for
/// one that does (one SHA-256 against this hash), so the reply time does not
/// tell which user names exist.
pub(crate) fn check_unknown_user(password: &[u8]) {
    static DUMMY: std::sync::OnceLock<User> = std::sync::OnceLock::new();
    let dummy = DUMMY.get_or_init(|| User::new("", "not a password of anyone"));
    std::hint::black_box(dummy.check_password(password));
}

/// Logs refused logins without letting a flood of them flood the log: at most
/// [`RefusalLog::PER_SECOND`] lines a second, then one line a second saying
/// how many were left out. Lock-free: a flood of failures from many
/// connections never serializes them.
#[derive(Default)]
pub struct RefusalLog {
    /// The second (since the broker started) the count below is for.
    second: std::sync::atomic::AtomicU64,
    logged: std::sync::atomic::AtomicU64,
    suppressed: std::sync::atomic::AtomicU64,
}

impl RefusalLog {
    pub const PER_SECOND: u64 = 10;

    /// Log that `user` from `peer` was refused (`why`: never the password).
    pub fn refused(&self, user: &str, peer: Option<std::net::IpAddr>, why: &str) {
        use std::sync::atomic::Ordering::Relaxed;
        static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
        let now = START
            .get_or_init(std::time::Instant::now)
            .elapsed()
            .as_secs();
        let seen = self.second.load(Relaxed);
        if now != seen
            && self
                .second
                .compare_exchange(seen, now, Relaxed, Relaxed)
                .is_ok()
        {
            self.logged.store(0, Relaxed);
            let left_out = self.suppressed.swap(0, Relaxed);
            if left_out > 0 {
                tracing::warn!(
                    count = left_out,
                    "{} more refused logins not logged (rate limit)",
                    left_out
                );
            }
        }
        if self.logged.fetch_add(1, Relaxed) < Self::PER_SECOND {
            let peer = peer.map(|p| p.to_string()).unwrap_or_default();
            tracing::warn!(user, %peer, "login refused: {}", why);
        } else {
            self.suppressed.fetch_add(1, Relaxed);
        }
    }
}

/// The user name and password of an HTTP `Authorization: Basic ...` header
/// value, if it is well-formed (every HTTP listener logs users in this way).
pub fn basic_credentials(value: &[u8]) -> Option<(String, Vec<u8>)> {
    let encoded = strip_prefix_ignore_case(value, b"basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim_ascii())
        .ok()?;
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = String::from_utf8(decoded[..colon].to_vec()).ok()?;
    Some((user, decoded[colon + 1..].to_vec()))
}

fn strip_prefix_ignore_case<'a>(value: &'a [u8], prefix: &[u8]) -> Option<&'a [u8]> {
    (value.len() >= prefix.len() && value[..prefix.len()].eq_ignore_ascii_case(prefix))
        .then(|| &value[prefix.len()..])
}

/// Whether `hash` has the shape of a RabbitMQ SHA-256 password hash
/// (base64 of a 4-byte salt and a 32-byte digest), or is empty (no password).
pub fn is_valid_hash(hash: &str) -> bool {
    hash.is_empty()
        || base64::engine::general_purpose::STANDARD
            .decode(hash)
            .is_ok_and(|raw| raw.len() == 36)
}

/// RabbitMQ's SHA-256 password hash with a fresh salt (what a cluster
/// replicates, so every node stores the same hash).
pub fn hash_new_password(password: &str) -> String {
    hash_password(password, salt())
}

/// RabbitMQ's SHA-256 password hash with the given salt.
pub fn hash_password(password: &str, salt: [u8; 4]) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password.as_bytes());
    let mut raw = salt.to_vec();
    raw.extend_from_slice(&h.finalize());
    base64::engine::general_purpose::STANDARD.encode(raw)
}

fn salt() -> [u8; 4] {
    (crate::random::random_u64() as u32).to_be_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rabbitmq_hash_format() {
        // The hash RabbitMQ's docs give for the password "test12".
        let u = User {
            password_hash: "kI3GCqW5JLMJa4iX1lo7X4D6XbYqlLgxIs30+P6tENUV2POR".into(),
            ..User::new("x", "y")
        };
        assert!(u.check_password(b"test12"));
        assert!(!u.check_password(b"test13"));
        let v = User::new("guest", "guest");
        assert!(v.check_password(b"guest"));
    }
}
