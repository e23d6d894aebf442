//! The metadata group's state machine: committed [`MetaOp`]s applied to this
//! node's broker core, plus the materialized metadata a snapshot is made of.
//!
//! The core's own definitions file is what survives a restart on each node;
//! the materialized map here only serves snapshots (a node that fell behind
//! the purged log gets the whole metadata, applied idempotently). It is kept
//! as ops keyed so that iterating the map re-declares in a valid order:
//! users and vhosts, then exchanges, then queues, then bindings, permissions
//! and policies. The snapshot is written to `meta-snapshot.json` (temp file,
//! fsync, rename).
//!
//! What was applied is durable too: each applied entry is appended (fsynced)
//! to `meta-applied.log` after the core made the change, and a restart reads
//! snapshot + journal back *without* applying them again to the core (which
//! restored them from its own definitions). Replaying the whole log into the
//! core at every start would be wrong, not just slow: "declare q, delete q,
//! declare q" replayed over a restored q holding messages would delete them.
//! A crash between the core's change and the journal line only re-applies
//! that last entry, which the core already reflects. The journal is emptied
//! whenever a snapshot is written.

use super::{MetaConfig, MetaEntry, MetaOp, MetaResponse};
use crate::NodeId;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    BasicNode, Entry, EntryPayload, LogId, Membership, OptionalSend, RaftSnapshotBuilder,
    SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{info, warn};
use warren_core::Broker;

#[derive(Default, Clone, Serialize, Deserialize)]
struct Materialized {
    last_applied: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, BasicNode>,
    ops: BTreeMap<String, MetaOp>,
}

fn key(parts: &[&str]) -> String {
    parts.join("\u{0}")
}

impl Materialized {
    /// A limit set (kept as a one-limit op under `base`) or cleared (one,
    /// or every one under `base`).
    fn set_limit(
        &mut self,
        base: String,
        name: &Option<String>,
        value: &Option<serde_json::Value>,
        op: &MetaOp,
    ) {
        match (name, value) {
            (Some(n), Some(_)) => {
                self.ops.insert(key(&[&base, n]), op.clone());
            }
            (Some(n), None) => {
                self.ops.remove(&key(&[&base, n]));
            }
            (None, _) => {
                let prefix = key(&[&base, ""]);
                self.ops.retain(|k, _| !k.starts_with(&prefix));
            }
        }
    }

    /// Record an op that applied cleanly.
    fn record(&mut self, op: &MetaOp) {
        match op {
            MetaOp::PutUser { name, .. } => {
                self.ops.insert(key(&["0u", name]), op.clone());
            }
            MetaOp::DeleteUser { name } => {
                self.ops.remove(&key(&["0u", name]));
                self.ops.retain(|_, o| match o {
                    MetaOp::SetPermissions { def } => &def.user != name,
                    MetaOp::SetTopicPermission { def } => &def.user != name,
                    MetaOp::SetUserLimit { user, .. } => user != name,
                    _ => true,
                });
            }
            // Limits after their vhost or user ("0w" sorts after "0u"),
            // topic permissions with the permissions.
            MetaOp::SetVhostLimit { vhost, name, value } => {
                self.set_limit(key(&["4l", vhost]), name, value, op)
            }
            MetaOp::SetUserLimit { user, name, value } => {
                self.set_limit(key(&["0w", user]), name, value, op)
            }
            MetaOp::SetTopicPermission { def } => {
                self.ops.insert(
                    key(&["4t", &def.vhost, &def.user, &def.exchange]),
                    op.clone(),
                );
            }
            MetaOp::ClearTopicPermissions {
                user,
                vhost,
                exchange,
            } => {
                self.ops.retain(|_, o| match o {
                    MetaOp::SetTopicPermission { def } => {
                        !(&def.user == user
                            && &def.vhost == vhost
                            && exchange.as_ref().is_none_or(|x| x == &def.exchange))
                    }
                    _ => true,
                });
            }
            MetaOp::SetPermissions { def } => {
                self.ops
                    .insert(key(&["4p", &def.vhost, &def.user]), op.clone());
            }
            MetaOp::ClearPermissions { user, vhost } => {
                self.ops.remove(&key(&["4p", vhost, user]));
            }
            MetaOp::SetPolicy { vhost, def } => {
                self.ops.insert(key(&["4y", vhost, &def.name]), op.clone());
            }
            MetaOp::ClearPolicy { vhost, name } => {
                self.ops.remove(&key(&["4y", vhost, name]));
            }
            MetaOp::SetOperatorPolicy { vhost, def } => {
                self.ops.insert(key(&["4o", vhost, &def.name]), op.clone());
            }
            MetaOp::ClearOperatorPolicy { vhost, name } => {
                self.ops.remove(&key(&["4o", vhost, name]));
            }
            // Global parameters need nothing before them.
            MetaOp::SetGlobalParameter { name, .. } => {
                self.ops.insert(key(&["0g", name]), op.clone());
            }
            MetaOp::ClearGlobalParameter { name } => {
                self.ops.remove(&key(&["0g", name]));
            }
            MetaOp::AddVhost { name, .. } => {
                self.ops.insert(key(&["0", name]), op.clone());
            }
            MetaOp::DeleteVhost { name } => {
                // Everything in it goes, the vhost's own entry included.
                self.ops.retain(|_, o| o.vhost() != name.as_str());
            }
            MetaOp::DeclareExchange { vhost, name, .. } => {
                self.ops.insert(key(&["1", vhost, name]), op.clone());
            }
            MetaOp::DeleteExchange { vhost, name } => {
                self.ops.remove(&key(&["1", vhost, name]));
                self.ops.retain(|_, o| match o {
                    MetaOp::BindQueue {
                        vhost: v, exchange, ..
                    } => !(v == vhost && exchange == name),
                    MetaOp::BindExchange {
                        vhost: v,
                        source,
                        destination,
                        ..
                    } => !(v == vhost && (source == name || destination == name)),
                    _ => true,
                });
            }
            MetaOp::DeclareQueue { vhost, name, .. } => {
                self.ops.insert(key(&["2", vhost, name]), op.clone());
            }
            MetaOp::SetQueueMembers { vhost, name, spec } => {
                // The declare keeps the queue's current members, so a
                // restart or a snapshot starts the right ones.
                if let Some(MetaOp::DeclareQueue {
                    quorum: Some(q), ..
                }) = self.ops.get_mut(&key(&["2", vhost, name]))
                {
                    if q.group == spec.group {
                        *q = spec.clone();
                    }
                }
            }
            MetaOp::DeleteQueue { vhost, name } => {
                self.ops.remove(&key(&["2", vhost, name]));
                self.ops.retain(|_, o| match o {
                    MetaOp::BindQueue {
                        vhost: v, queue, ..
                    } => !(v == vhost && queue == name),
                    _ => true,
                });
            }
            MetaOp::BindQueue {
                vhost,
                queue,
                exchange,
                routing_key,
                arguments,
            } => {
                self.ops.insert(
                    key(&["3", vhost, exchange, "q", queue, routing_key, arguments]),
                    op.clone(),
                );
            }
            MetaOp::UnbindQueue {
                vhost,
                queue,
                exchange,
                routing_key,
                arguments,
            } => {
                self.ops.remove(&key(&[
                    "3",
                    vhost,
                    exchange,
                    "q",
                    queue,
                    routing_key,
                    arguments,
                ]));
            }
            MetaOp::BindExchange {
                vhost,
                destination,
                source,
                routing_key,
                arguments,
            } => {
                self.ops.insert(
                    key(&["3", vhost, source, "e", destination, routing_key, arguments]),
                    op.clone(),
                );
            }
            MetaOp::UnbindExchange {
                vhost,
                destination,
                source,
                routing_key,
                arguments,
            } => {
                self.ops.remove(&key(&[
                    "3",
                    vhost,
                    source,
                    "e",
                    destination,
                    routing_key,
                    arguments,
                ]));
            }
        }
    }
}

/// A snapshot's meta and its bytes.
type Stored = (SnapshotMeta<NodeId, BasicNode>, Vec<u8>);

/// One line of the applied-entries journal.
#[derive(Serialize, Deserialize)]
struct Applied {
    log_id: LogId<NodeId>,
    /// The op, when it applied cleanly.
    #[serde(default)]
    op: Option<MetaOp>,
    #[serde(default)]
    membership: Option<Membership<NodeId, BasicNode>>,
}

/// Called after an op was applied to the core (quorum queues start/stop).
pub type OnApplied = Arc<dyn Fn(&MetaOp) + Send + Sync>;

struct Shared {
    broker: Arc<Broker>,
    on_applied: std::sync::OnceLock<OnApplied>,
    /// The applied-entries journal. Lock order: journal, then state.
    journal: Mutex<std::fs::File>,
    state: Mutex<Materialized>,
    snapshot_path: PathBuf,
    /// The last snapshot built or installed, as openraft asks for it.
    current: Mutex<Option<Stored>>,
}

#[derive(Clone)]
pub struct MetaStateMachine {
    shared: Arc<Shared>,
}

#[derive(Serialize, Deserialize)]
struct SnapshotFile {
    meta: SnapshotMeta<NodeId, BasicNode>,
    data: Materialized,
}

fn write_atomically(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl MetaStateMachine {
    /// Open the state machine in `dir`: the stored snapshot, then the
    /// journal of entries applied since (neither is applied to the core
    /// again: see the module comment).
    pub fn open(dir: &Path, broker: Arc<Broker>) -> io::Result<MetaStateMachine> {
        let snapshot_path = dir.join("meta-snapshot.json");
        let mut state = Materialized::default();
        let mut current = None;
        match std::fs::read(&snapshot_path) {
            Ok(bytes) => match serde_json::from_slice::<SnapshotFile>(&bytes) {
                Ok(f) => {
                    let data = serde_json::to_vec(&f.data).map_err(io::Error::other)?;
                    current = Some((f.meta, data));
                    state = f.data;
                }
                Err(e) => warn!("ignoring unreadable metadata snapshot: {e}"),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let journal_path = dir.join("meta-applied.log");
        match std::fs::read(&journal_path) {
            Ok(bytes) => {
                for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                    // A torn last line (a crash mid-write) ends the journal.
                    let Ok(a) = serde_json::from_slice::<Applied>(line) else {
                        break;
                    };
                    if state
                        .last_applied
                        .is_some_and(|l| l.index >= a.log_id.index)
                    {
                        continue;
                    }
                    if let Some(op) = &a.op {
                        state.record(op);
                    }
                    if let Some(m) = a.membership {
                        state.membership = StoredMembership::new(Some(a.log_id), m);
                    }
                    state.last_applied = Some(a.log_id);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let journal = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&journal_path)?;
        Ok(MetaStateMachine {
            shared: Arc::new(Shared {
                journal: Mutex::new(journal),
                on_applied: std::sync::OnceLock::new(),
                broker,
                state: Mutex::new(state),
                snapshot_path,
                current: Mutex::new(current),
            }),
        })
    }

    /// Install the hook called after each applied op.
    pub fn set_on_applied(&self, f: OnApplied) {
        let _ = self.shared.on_applied.set(f);
    }

    fn applied(&self, op: &MetaOp) {
        if let Some(f) = self.shared.on_applied.get() {
            f(op);
        }
    }

    /// The quorum queue declares of the materialized metadata.
    pub fn quorum_declares(&self) -> Vec<MetaOp> {
        self.shared
            .state
            .lock()
            .ops
            .values()
            .filter(|op| {
                matches!(
                    op,
                    MetaOp::DeclareQueue {
                        quorum: Some(_),
                        ..
                    }
                )
            })
            .cloned()
            .collect()
    }

    /// A quorum queue's declare as materialized (its current members).
    pub fn quorum_declare(&self, vhost: &str, name: &str) -> Option<MetaOp> {
        match self.shared.state.lock().ops.get(&key(&["2", vhost, name])) {
            Some(
                op @ MetaOp::DeclareQueue {
                    quorum: Some(_), ..
                },
            ) => Some(op.clone()),
            _ => None,
        }
    }

    /// The classic queues (not quorum queues, not streams: a stream is
    /// local to every node) whose home is `node`, as (vhost, name).
    pub fn classic_queues_of(&self, node: &str) -> Vec<(String, String)> {
        self.shared
            .state
            .lock()
            .ops
            .values()
            .filter_map(|op| match op {
                MetaOp::DeclareQueue {
                    vhost,
                    name,
                    owner,
                    arguments,
                    quorum: None,
                    ..
                } if owner == node => {
                    let args = warren_core::store::definitions::table_from_hex(arguments);
                    let stream = args
                        .get("x-queue-type")
                        .and_then(|v| v.as_bytes())
                        .is_some_and(|b| b == b"stream");
                    (!stream).then(|| (vhost.clone(), name.clone()))
                }
                _ => None,
            })
            .collect()
    }

    /// The node that owns a classic queue (where its messages live), if the
    /// queue is known cluster-wide.
    pub fn queue_owner(&self, vhost: &str, name: &str) -> Option<String> {
        match self.shared.state.lock().ops.get(&key(&["2", vhost, name])) {
            Some(MetaOp::DeclareQueue { owner, .. }) => Some(owner.clone()),
            _ => None,
        }
    }

    fn install(&self, meta: &SnapshotMeta<NodeId, BasicNode>, data: Vec<u8>) -> io::Result<()> {
        let m: Materialized = serde_json::from_slice(&data).map_err(io::Error::other)?;
        let journal = self.shared.journal.lock();
        // First undo what this node has and the snapshot does not (deleted
        // while this node was away), or has in another form (deleted and
        // declared again with other arguments): the snapshot replaces the
        // state, it does not just add to it.
        let undo = undo_ops(&self.shared.state.lock(), &m);
        for op in &undo {
            // Through the hook too: a quorum queue deleted meanwhile stops
            // its group here as it would have on the delete itself.
            match self.shared.broker.apply_meta(op) {
                Ok(()) => self.applied(op),
                Err(e) => warn!("metadata snapshot: undoing with {op:?}: {e}"),
            }
        }
        for op in m.ops.values() {
            match self.shared.broker.apply_meta(op) {
                Ok(()) => self.applied(op),
                Err(e) => warn!("metadata snapshot: {op:?}: {e}"),
            }
        }
        let file = SnapshotFile {
            meta: meta.clone(),
            data: m.clone(),
        };
        write_atomically(
            &self.shared.snapshot_path,
            &serde_json::to_vec(&file).map_err(io::Error::other)?,
        )?;
        *self.shared.state.lock() = m;
        // The snapshot covers everything the journal had.
        journal.set_len(0)?;
        journal.sync_data()?;
        *self.shared.current.lock() = Some((meta.clone(), data));
        Ok(())
    }
}

/// The ops that take `old` to what `new` has of it: for each thing `old`
/// holds that `new` lacks or holds differently, its delete. Bindings,
/// permissions and policies come first, then queues and exchanges, users and
/// vhosts last (the keys' reverse order; see [`Materialized`]).
fn undo_ops(old: &Materialized, new: &Materialized) -> Vec<MetaOp> {
    let mut out = Vec::new();
    for (k, op) in old.ops.iter().rev() {
        let changed = match new.ops.get(k) {
            None => true,
            // A changed user or policy is simply set again; a queue or
            // exchange must be deleted before its new form is declared.
            // Other members of the same quorum group are not another
            // queue: the declare's re-application updates them.
            Some(n) => {
                n != op
                    && matches!(
                        op,
                        MetaOp::DeclareQueue { .. } | MetaOp::DeclareExchange { .. }
                    )
                    && !same_quorum_group(n, op)
            }
        };
        if !changed {
            continue;
        }
        let undo = match op.clone() {
            MetaOp::PutUser { name, .. } => MetaOp::DeleteUser { name },
            MetaOp::AddVhost { name, .. } => MetaOp::DeleteVhost { name },
            MetaOp::DeclareExchange { vhost, name, .. } => MetaOp::DeleteExchange { vhost, name },
            MetaOp::DeclareQueue { vhost, name, .. } => MetaOp::DeleteQueue { vhost, name },
            MetaOp::BindQueue {
                vhost,
                queue,
                exchange,
                routing_key,
                arguments,
            } => MetaOp::UnbindQueue {
                vhost,
                queue,
                exchange,
                routing_key,
                arguments,
            },
            MetaOp::BindExchange {
                vhost,
                destination,
                source,
                routing_key,
                arguments,
            } => MetaOp::UnbindExchange {
                vhost,
                destination,
                source,
                routing_key,
                arguments,
            },
            MetaOp::SetPermissions { def } => MetaOp::ClearPermissions {
                user: def.user,
                vhost: def.vhost,
            },
            MetaOp::SetPolicy { vhost, def } => MetaOp::ClearPolicy {
                vhost,
                name: def.name,
            },
            MetaOp::SetVhostLimit {
                vhost,
                name: Some(name),
                ..
            } => MetaOp::SetVhostLimit {
                vhost,
                name: Some(name),
                value: None,
            },
            MetaOp::SetUserLimit {
                user,
                name: Some(name),
                ..
            } => MetaOp::SetUserLimit {
                user,
                name: Some(name),
                value: None,
            },
            MetaOp::SetTopicPermission { def } => MetaOp::ClearTopicPermissions {
                user: def.user,
                vhost: def.vhost,
                exchange: Some(def.exchange),
            },
            MetaOp::SetOperatorPolicy { vhost, def } => MetaOp::ClearOperatorPolicy {
                vhost,
                name: def.name,
            },
            MetaOp::SetGlobalParameter { name, .. } => MetaOp::ClearGlobalParameter { name },
            // The map only holds the ops above.
            _ => continue,
        };
        out.push(undo);
    }
    out
}

/// Two declares of one quorum queue that differ only in its members.
fn same_quorum_group(a: &MetaOp, b: &MetaOp) -> bool {
    let strip = |op: &MetaOp| match op {
        MetaOp::DeclareQueue {
            quorum: Some(q), ..
        } => {
            let mut op = op.clone();
            if let MetaOp::DeclareQueue {
                quorum: Some(s), ..
            } = &mut op
            {
                s.members.clear();
                s.grown.clear();
            }
            Some((q.group, op))
        }
        _ => None,
    };
    matches!((strip(a), strip(b)), (Some(x), Some(y)) if x == y)
}

impl RaftSnapshotBuilder<MetaConfig> for MetaStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<MetaConfig>, StorageError<NodeId>> {
        let journal = self.shared.journal.lock();
        let data = self.shared.state.lock().clone();
        let meta = SnapshotMeta {
            last_log_id: data.last_applied,
            last_membership: data.membership.clone(),
            snapshot_id: format!(
                "meta-{}",
                data.last_applied.map(|l| l.index).unwrap_or_default()
            ),
        };
        let bytes = serde_json::to_vec(&data)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        let file = SnapshotFile {
            meta: meta.clone(),
            data,
        };
        let whole = serde_json::to_vec(&file)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        write_atomically(&self.shared.snapshot_path, &whole)
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        journal
            .set_len(0)
            .and_then(|_| journal.sync_data())
            .map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        drop(journal);
        *self.shared.current.lock() = Some((meta.clone(), bytes.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<MetaConfig> for MetaStateMachine {
    type SnapshotBuilder = MetaStateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, BasicNode>), StorageError<NodeId>>
    {
        let s = self.shared.state.lock();
        Ok((s.last_applied, s.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<MetaResponse>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<MetaConfig>> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut out = Vec::new();
        let mut journal = self.shared.journal.lock();
        for e in entries {
            let mut resp = MetaResponse::default();
            let mut line = Applied {
                log_id: e.log_id,
                op: None,
                membership: None,
            };
            match &e.payload {
                EntryPayload::Blank => {}
                EntryPayload::Normal(MetaEntry(op)) => match self.shared.broker.apply_meta(op) {
                    Ok(()) => {
                        self.shared.state.lock().record(op);
                        line.op = Some(op.clone());
                        self.applied(op);
                    }
                    Err(err) => {
                        info!("metadata op not applied: {op:?}: {err}");
                        resp.error = Some((err.code, err.text.clone()));
                    }
                },
                EntryPayload::Membership(m) => {
                    self.shared.state.lock().membership =
                        StoredMembership::new(Some(e.log_id), m.clone());
                    line.membership = Some(m.clone());
                }
            }
            self.shared.state.lock().last_applied = Some(e.log_id);
            let mut bytes = serde_json::to_vec(&line)
                .map_err(|err| StorageIOError::write_state_machine(&err))?;
            bytes.push(b'\n');
            journal
                .write_all(&bytes)
                .and_then(|_| journal.sync_data())
                .map_err(|err| StorageIOError::write_state_machine(&err))?;
            out.push(resp);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.install(meta, snapshot.into_inner())
            .map_err(|e| StorageIOError::read_snapshot(Some(meta.signature()), &e).into())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<MetaConfig>>, StorageError<NodeId>> {
        Ok(self
            .shared
            .current
            .lock()
            .clone()
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(Cursor::new(data)),
            }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_core::meta::QuorumSpec;

    fn declare(members: &[&str], group: u64) -> MetaOp {
        MetaOp::DeclareQueue {
            vhost: "/".into(),
            name: "q".into(),
            durable: true,
            auto_delete: false,
            arguments: String::new(),
            owner: "n1".into(),
            quorum: Some(QuorumSpec {
                group,
                members: members.iter().map(|m| m.to_string()).collect(),
                grown: Vec::new(),
            }),
        }
    }

    #[test]
    fn set_queue_members_rewrites_the_declare() {
        let mut m = Materialized::default();
        m.record(&declare(&["n1", "n2"], 7));
        let spec = QuorumSpec {
            group: 7,
            members: vec!["n1".into(), "n2".into(), "n3".into()],
            grown: vec!["n3".into()],
        };
        m.record(&MetaOp::SetQueueMembers {
            vhost: "/".into(),
            name: "q".into(),
            spec: spec.clone(),
        });
        match m.ops.get(&key(&["2", "/", "q"])) {
            Some(MetaOp::DeclareQueue { quorum, .. }) => assert_eq!(quorum, &Some(spec)),
            other => panic!("{other:?}"),
        }
        // Another group's members (a stale op) change nothing.
        m.record(&MetaOp::SetQueueMembers {
            vhost: "/".into(),
            name: "q".into(),
            spec: QuorumSpec {
                group: 8,
                members: vec![],
                grown: vec![],
            },
        });
        assert!(
            matches!(m.ops.get(&key(&["2", "/", "q"])), Some(MetaOp::DeclareQueue { quorum: Some(q), .. }) if q.group == 7)
        );
    }

    #[test]
    fn a_snapshot_with_other_members_does_not_delete_the_queue() {
        let mut old = Materialized::default();
        old.record(&declare(&["n1", "n2", "n3"], 7));
        let mut new = Materialized::default();
        new.record(&declare(&["n1", "n2"], 7));
        assert!(undo_ops(&old, &new).is_empty());
        // A new group (deleted and declared again) is another queue.
        let mut again = Materialized::default();
        again.record(&declare(&["n1", "n2", "n3"], 9));
        assert_eq!(undo_ops(&old, &again).len(), 1);
    }
}
