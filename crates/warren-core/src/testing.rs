//! A scratch broker for unit tests and benchmarks (here and in adapter
//! crates): a fresh data directory under the system temp dir, no fsync, the
//! default vhost. Not used by the server.

use crate::store::LogOptions;
use crate::{Broker, Limits};
use std::path::PathBuf;
use std::sync::Arc;

/// Open a broker in `<temp>/warren-<tag>-<pid>-<name>` (emptied first), with
/// vhost `/`. The caller removes the directory when done.
pub fn scratch_broker(tag: &str, name: &str) -> (Arc<Broker>, PathBuf) {
    let dir = std::env::temp_dir().join(format!("warren-{tag}-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let broker = Broker::open(
        &dir,
        Limits::default(),
        &LogOptions {
            fsync: false,
            ..Default::default()
        },
    )
    .expect("open broker");
    broker.ensure_vhost("/");
    (broker, dir)
}
