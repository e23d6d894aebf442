//! The names of the cluster's nodes, as learned.
//!
//! Raft membership holds only ids and addresses. A node knows the names of
//! its seeds from its command line; a node added later by `join` is known by
//! name only to the leader that added it. Everything that works by name (the
//! classic-queue failure detector's ping set, a queue's home node,
//! cluster-status) needs it on every node, so each node learns the name from
//! a member's status probe and keeps what it learned in
//! `DATA/cluster/node-names.json`: after a restart, a joined node that is down
//! is still pinged (and found down) by name.

use crate::NodeId;
use parking_lot::RwLock;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tracing::warn;

pub(crate) struct NodeNames {
    path: PathBuf,
    map: RwLock<BTreeMap<NodeId, String>>,
}

impl NodeNames {
    /// Load what an earlier run learned (nothing, if the file is missing or
    /// unreadable: names are learned again from probes).
    pub(crate) fn open(dir: &Path) -> NodeNames {
        let path = dir.join("node-names.json");
        let map = std::fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        NodeNames {
            path,
            map: RwLock::new(map),
        }
    }

    pub(crate) fn get(&self, id: NodeId) -> Option<String> {
        self.map.read().get(&id).cloned()
    }

    /// Remember `name` for `id`; written out when it is new.
    pub(crate) fn learn(&self, id: NodeId, name: &str) {
        if self.map.read().get(&id).is_some_and(|n| n == name) {
            return;
        }
        let bytes = {
            let mut m = self.map.write();
            m.insert(id, name.to_string());
            serde_json::to_vec(&*m)
        };
        let tmp = self.path.with_extension("json.tmp");
        let written = bytes
            .map_err(std::io::Error::other)
            .and_then(|b| std::fs::write(&tmp, b))
            .and_then(|()| std::fs::rename(&tmp, &self.path));
        if let Err(e) = written {
            warn!("keeping node names in {}: {e}", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learned_names_survive_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let n = NodeNames::open(dir.path());
        assert_eq!(n.get(7), None);
        n.learn(7, "n4");
        n.learn(7, "n4");
        assert_eq!(NodeNames::open(dir.path()).get(7).as_deref(), Some("n4"));
    }
}
