//! A scratch broker for unit tests and benchmarks (here and in adapter
//! crates): a fresh data directory under the system temp dir, no fsync, the
//! default vhost. Not used by the server.

use crate::store::LogOptions;
use crate::{Broker, Limits};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A scratch data directory, removed when dropped (keep it as long as the
/// broker that writes there; Linux lets a broker outlive it harmlessly).
pub struct ScratchDir(PathBuf);

impl std::ops::Deref for ScratchDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl AsRef<Path> for ScratchDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Open a broker in `<temp>/warren-<tag>-<pid>-<name>` (emptied first), with
/// vhost `/`. The directory goes when the returned guard is dropped.
pub fn scratch_broker(tag: &str, name: &str) -> (Arc<Broker>, ScratchDir) {
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
    (broker, ScratchDir(dir))
}
