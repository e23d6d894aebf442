//! What several targets share: scratch directories on tmpfs and a fresh
//! broker per input (a broker carried over between inputs would make a
//! crash depend on the inputs before it, and unreproducible).

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use warren_core::store::LogOptions;
use warren_core::{Broker, Limits};

/// A fresh directory name (not created) under /dev/shm if there is one.
pub fn scratch(tag: &str) -> PathBuf {
    static N: AtomicU64 = AtomicU64::new(0);
    let base = if Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    base.join(format!(
        "warren-fuzz-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// A broker with its first-boot defaults (vhost "/", guest), in a fresh
/// directory; [`close`] stops it and removes the directory.
pub fn broker(tag: &str) -> (Arc<Broker>, PathBuf) {
    let dir = scratch(tag);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let b = Broker::open(
        &dir,
        Limits::default(),
        &LogOptions {
            fsync: false,
            ..Default::default()
        },
    )
    .expect("open broker");
    b.create_defaults_once(true);
    (b, dir)
}

/// Stop the broker's log writer thread and remove its directory.
pub fn close(b: Arc<Broker>, dir: PathBuf) {
    b.store.log.shutdown();
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Open the broker in `dir` again, as a restart does.
pub fn reopen(dir: &Path) -> Arc<Broker> {
    Broker::open(
        dir,
        Limits::default(),
        &LogOptions {
            fsync: false,
            ..Default::default()
        },
    )
    .expect("the broker reopens from what it stored")
}
