//! Unpredictable numbers where a collision or a guess would do harm but no
//! cryptographic strength is needed: password salts, Raft group ids, boot ids.
//!
//! Why not a crate: std's `RandomState` is already seeded from the OS per
//! process and per instance; hashing the clock and the pid into it gives a
//! fresh value per call without adding a dependency.

use std::hash::{BuildHasher, Hasher};

/// A fresh random 64-bit value.
pub fn random_u64() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.write_u32(std::process::id());
    h.finish()
}
