//! The openraft plumbing around `QueueState`: `QuorumStateMachine`
//! implements openraft 0.9's `RaftStateMachine` for `QuorumConfig`.
//!
//! The state lives in memory. Snapshots are written to one file per group
//! (atomically: temp file, fsync, rename, fsync of the directory) before
//! openraft may purge the log they cover, and are loaded when the machine is
//! reopened, so a restarted member resumes from its snapshot plus the log.

use std::fs;
use std::io::{self, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot, SnapshotMeta};
use openraft::{
    AnyError, BasicNode, EntryPayload, ErrorSubject, ErrorVerb, LogId, StorageError,
    StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::command::{Effect, Outcome, Reply};
use crate::queue::QueueState;
use crate::QuorumConfig;

/// Everything a snapshot holds.
#[derive(Serialize, Deserialize)]
struct SnapshotBody {
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    state: QueueState,
}

#[derive(Serialize, Deserialize, Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta<u64, BasicNode>,
    data: Vec<u8>,
}

struct Inner {
    state: QueueState,
    applied: Option<LogId<u64>>,
    membership: StoredMembership<u64, BasicNode>,
    snapshot: Option<StoredSnapshot>,
    snapshot_path: Option<PathBuf>,
    snapshots_built: u64,
}

/// Where applied entries' effects go (deliveries, dead-letters): every
/// member applies every entry, so each gets them; the group's leader is the
/// one that carries them out.
pub type EffectSink = Arc<dyn Fn(Vec<Effect>) + Send + Sync>;

/// A quorum queue's state machine. Clones share the state (the snapshot
/// builder is one).
#[derive(Clone)]
pub struct QuorumStateMachine {
    inner: Arc<Mutex<Inner>>,
    sink: Arc<OnceLock<EffectSink>>,
}

fn sm_err(verb: ErrorVerb, e: impl ToString) -> StorageError<u64> {
    StorageError::IO {
        source: StorageIOError::new(
            ErrorSubject::StateMachine,
            verb,
            AnyError::error(e.to_string()),
        ),
    }
}

impl QuorumStateMachine {
    /// A state machine kept only in memory (tests).
    pub fn in_memory(state: QueueState) -> QuorumStateMachine {
        QuorumStateMachine {
            inner: Arc::new(Mutex::new(Inner {
                state,
                applied: None,
                membership: StoredMembership::default(),
                snapshot: None,
                snapshot_path: None,
                snapshots_built: 0,
            })),
            sink: Arc::new(OnceLock::new()),
        }
    }

    /// Opens the state machine whose snapshots live at `snapshot_file`,
    /// restoring the last snapshot if there is one; `initial` is the state
    /// of a queue that has none yet (its declared arguments).
    pub fn open(snapshot_file: impl AsRef<Path>, initial: QueueState) -> io::Result<Self> {
        let path = snapshot_file.as_ref().to_path_buf();
        let sm = QuorumStateMachine::in_memory(initial);
        {
            let mut g = sm.inner.lock();
            g.snapshot_path = Some(path.clone());
            match fs::read(&path) {
                Ok(bytes) => {
                    let snap: StoredSnapshot = bincode::deserialize(&bytes)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    let body: SnapshotBody = bincode::deserialize(&snap.data)
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                    g.state = body.state;
                    g.applied = body.applied;
                    g.membership = body.membership;
                    g.snapshot = Some(snap);
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(sm)
    }

    /// Reads the queue state (counts, consumers, `checked_out`).
    pub fn with_state<R>(&self, f: impl FnOnce(&QueueState) -> R) -> R {
        f(&self.inner.lock().state)
    }

    /// Send the effects of every entry applied from now on to `sink`
    /// (called outside the state lock, in log order). Set once.
    pub fn set_effect_sink(&self, sink: EffectSink) {
        let _ = self.sink.set(sink);
    }

    pub fn last_applied(&self) -> Option<LogId<u64>> {
        self.inner.lock().applied
    }

    pub fn snapshots_built(&self) -> u64 {
        self.inner.lock().snapshots_built
    }
}

fn persist(path: &Path, snap: &StoredSnapshot) -> io::Result<()> {
    let bytes =
        bincode::serialize(snap).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(&bytes)?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

impl RaftSnapshotBuilder<QuorumConfig> for QuorumStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<QuorumConfig>, StorageError<u64>> {
        // Copy under the lock (message bodies are shared `Bytes`, so this is
        // cheap), encode outside it: apply goes on meanwhile.
        let (body, n, path) = {
            let mut g = self.inner.lock();
            g.snapshots_built += 1;
            let body = SnapshotBody {
                applied: g.applied,
                membership: g.membership.clone(),
                state: g.state.clone(),
            };
            (body, g.snapshots_built, g.snapshot_path.clone())
        };
        let data = bincode::serialize(&body).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        let snap = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: body.applied,
                last_membership: body.membership,
                snapshot_id: match body.applied {
                    Some(l) => format!("{}-{}-{n}", l.leader_id, l.index),
                    None => format!("none-{n}"),
                },
            },
            data,
        };
        // Durable before openraft purges the log entries it replaces.
        if let Some(p) = path {
            persist(&p, &snap).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        self.inner.lock().snapshot = Some(snap.clone());
        Ok(Snapshot {
            meta: snap.meta,
            snapshot: Box::new(Cursor::new(snap.data)),
        })
    }
}

impl RaftStateMachine<QuorumConfig> for QuorumStateMachine {
    type SnapshotBuilder = QuorumStateMachine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<u64>>, StoredMembership<u64, BasicNode>), StorageError<u64>> {
        let g = self.inner.lock();
        Ok((g.applied, g.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Outcome>, StorageError<u64>>
    where
        I: IntoIterator<Item = openraft::Entry<QuorumConfig>> + Send,
    {
        let sink = self.sink.get();
        let mut effects = Vec::new();
        let mut g = self.inner.lock();
        let mut out = Vec::new();
        for e in entries {
            g.applied = Some(e.log_id);
            match e.payload {
                EntryPayload::Blank => out.push(Outcome::reply(Reply::Ok)),
                EntryPayload::Normal(cmd) => {
                    let mut o = g.state.apply(cmd);
                    // The proposer needs the reply only; the effects go to
                    // the sink (moved: bodies are shared, never copied).
                    if sink.is_some() {
                        effects.append(&mut o.effects);
                    }
                    out.push(o)
                }
                EntryPayload::Membership(m) => {
                    g.membership = StoredMembership::new(Some(e.log_id), m);
                    out.push(Outcome::reply(Reply::Ok));
                }
            }
        }
        drop(g);
        if let (Some(sink), false) = (sink, effects.is_empty()) {
            sink(effects);
        }
        Ok(out)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<u64>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<u64>> {
        let data = snapshot.into_inner();
        let body: SnapshotBody =
            bincode::deserialize(&data).map_err(|e| sm_err(ErrorVerb::Read, e))?;
        let snap = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        let path = self.inner.lock().snapshot_path.clone();
        if let Some(p) = path {
            persist(&p, &snap).map_err(|e| sm_err(ErrorVerb::Write, e))?;
        }
        let mut g = self.inner.lock();
        g.state = body.state;
        g.applied = meta.last_log_id;
        g.membership = meta.last_membership.clone();
        g.snapshot = Some(snap);
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<QuorumConfig>>, StorageError<u64>> {
        let g = self.inner.lock();
        Ok(g.snapshot.as_ref().map(|s| Snapshot {
            meta: s.meta.clone(),
            snapshot: Box::new(Cursor::new(s.data.clone())),
        }))
    }
}
