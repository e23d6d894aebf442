//! One enqueuer task per quorum queue per node: it drains the publishes of
//! every channel on the node into one `EnqueueBatch` Raft entry (up to
//! [`MAX_BATCH`] messages or [`MAX_BATCH_BYTES`]), writes it to the group's
//! leader (locally, or forwarded over the transport), and completes the
//! publishers' confirms once the group committed it (a majority fsynced).
//!
//! One batch is in flight at a time: while it commits, the next one fills.
//! A batch resent after a leader change carries the same (enqueuer, batch
//! number), so the state machine applies it once ("Duplicate" = done).

use super::Member;
use crate::node::Cluster;
use crate::raft_net::{forward_with, Bincode};
use crate::transport::CallError;
use crate::NodeId;
use openraft::error::{ClientWriteError, RaftError};
use std::sync::Weak;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::debug;
use warren_core::confirm::Confirm;
use warren_quorum::{Command, PublisherSeq, QuorumConfig, Reply};

pub const MAX_BATCH: usize = 512;
pub const MAX_BATCH_BYTES: usize = 1 << 20;
/// How long a batch may look for a leader and a majority before its
/// publishers are nacked.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Between tries while no leader answers.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Publish bytes one enqueuer may hold (queued or in flight) before its
/// publishers wait (plan step 2): without it a publisher that does not use
/// confirms would fill memory while the group has no majority.
pub const MAX_BACKLOG: usize = 8 << 20;

/// The bytes an enqueuer holds, and a wake-up when they go down.
#[derive(Default)]
pub struct Backlog {
    pub bytes: std::sync::atomic::AtomicUsize,
    pub room: tokio::sync::Notify,
}

impl Backlog {
    fn release(&self, bytes: usize) {
        self.bytes
            .fetch_sub(bytes, std::sync::atomic::Ordering::Relaxed);
        self.room.notify_waiters();
    }
}

pub struct Pending {
    pub message: warren_quorum::Message,
    pub confirm: Option<Confirm>,
}

pub(crate) async fn run(
    cluster: Weak<Cluster>,
    group: u64,
    members: Vec<NodeId>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    backlog: std::sync::Arc<Backlog>,
) {
    // New per task: a restarted node's batches are never taken for resends
    // of its previous life's.
    let publisher = warren_core::random::random_u64();
    let mut seq = 0u64;
    let mut target: Option<NodeId> = None;
    while let Some(first) = rx.recv().await {
        let mut bytes = first.message.size() as usize;
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
            match rx.try_recv() {
                Ok(p) => {
                    bytes += p.message.size() as usize;
                    batch.push(p);
                }
                Err(_) => break,
            }
        }
        seq += 1;
        let mut confirms = Vec::with_capacity(batch.len());
        let mut messages = Vec::with_capacity(batch.len());
        for p in batch {
            messages.push(p.message);
            confirms.push(p.confirm);
        }
        let cmd = Command::EnqueueBatch {
            publisher: PublisherSeq { publisher, seq },
            messages,
        };
        let reply = write(&cluster, group, &members, &mut target, cmd).await;
        match reply {
            Some(Reply::EnqueuedBatch { rejected }) => {
                for (i, c) in confirms.into_iter().enumerate() {
                    if let Some(c) = c {
                        c.complete(!rejected.contains(&(i as u32)));
                    }
                }
            }
            Some(Reply::Duplicate) => {
                for c in confirms.into_iter().flatten() {
                    c.complete(true);
                }
            }
            // Dropped confirms are nacks.
            _ => drop(confirms),
        }
        backlog.release(bytes);
        if cluster.strong_count() == 0 {
            return;
        }
    }
}

/// Commit `cmd` in the group: through this node's member if it leads,
/// else forwarded to the leader (`target` caches it). None: no leader and
/// majority within [`WRITE_TIMEOUT`].
pub(crate) async fn write(
    cluster: &Weak<Cluster>,
    group: u64,
    members: &[NodeId],
    target: &mut Option<NodeId>,
    cmd: Command,
) -> Option<Reply> {
    let deadline = Instant::now() + WRITE_TIMEOUT;
    let mut next_member = 0usize;
    // The leader of a group this write woke here (see below).
    let mut woken_from: Option<NodeId> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let c = cluster.upgrade()?;
        let parked_leader = c.parked_leader(group);
        if parked_leader.is_some() {
            woken_from = parked_leader;
            if target.is_none() {
                *target = parked_leader;
            }
        }
        // A parked member here starts again (and campaigns if it led).
        let local = c.wake_member(group, true).await;
        if let Some(m) = &local {
            let leader = m.raft.metrics().borrow().current_leader;
            if leader == Some(c.id) {
                match tokio::time::timeout(left, m.raft.client_write(cmd.clone())).await {
                    Ok(Ok(r)) => return Some(r.data.reply),
                    Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                        *target = f.leader_id;
                    }
                    Ok(Err(e)) => debug!("quorum group {group:#x}: write: {e}"),
                    Err(_) => return None,
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            if leader.is_some() {
                *target = leader;
            }
        }
        let to = match *target {
            Some(t) if t != c.id => t,
            _ => {
                // No known leader: ask the members in turn (a follower
                // answers with the leader).
                let t = members[next_member % members.len().max(1)];
                next_member += 1;
                if t == c.id {
                    pause(local.as_deref(), left).await;
                    *target = None;
                    continue;
                }
                t
            }
        };
        let Some(addr) = c.addr_of(to) else {
            *target = None;
            tokio::time::sleep(Duration::from_millis(100).min(left)).await;
            continue;
        };
        let transport = c.transport.clone();
        drop(c);
        let forward = forward_with::<QuorumConfig, Bincode>(
            &transport,
            &addr,
            group,
            &cmd,
            left.min(Duration::from_secs(10)),
        );
        // A member here learns of a new leader before a forward to a
        // leader that is cut off or hung gives up: resend to the new one
        // at once (same batch number: applied once whichever commits).
        let r = match &local {
            Some(m) => tokio::select! {
                r = forward => r,
                () = leader_moved(m, to) => continue,
            },
            None => forward.await,
        };
        match r {
            Ok(Ok(resp)) => return Some(resp.data.reply),
            Ok(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                *target = f.leader_id.filter(|l| *l != to);
                if target.is_none() {
                    pause(local.as_deref(), left).await;
                }
            }
            Ok(Err(e)) => {
                debug!("quorum group {group:#x}: forwarded write: {e}");
                *target = None;
                pause(local.as_deref(), left).await;
            }
            Err(e) => {
                debug!("quorum group {group:#x}: {e}");
                // The group was parked and its leader's node is gone: the
                // member woken here campaigns now rather than after an
                // election timeout (nobody else is awake to).
                if woken_from == Some(to) && matches!(e, CallError::Unreachable(_)) {
                    woken_from = None;
                    if let Some(m) = &local {
                        let leader = m.raft.metrics().borrow().current_leader;
                        if leader.is_none() || leader == Some(to) {
                            let _ = m.raft.trigger().elect().await;
                        }
                    }
                }
                *target = None;
                pause(local.as_deref(), left).await;
            }
        }
    }
}

/// Wait before trying again: 100 ms, less if this node's member sees the
/// leadership change meanwhile (then the new leader is tried at once).
async fn pause(local: Option<&Member>, left: Duration) {
    let d = RETRY_PAUSE.min(left);
    match local {
        Some(m) => {
            let mut metrics = m.raft.metrics();
            let before = metrics.borrow_and_update().current_leader;
            let _ = tokio::time::timeout(d, async {
                while metrics.changed().await.is_ok() {
                    if metrics.borrow_and_update().current_leader != before {
                        return;
                    }
                }
                std::future::pending::<()>().await
            })
            .await;
        }
        None => tokio::time::sleep(d).await,
    }
}

/// Resolves once this node's member knows a leader other than `from`.
async fn leader_moved(m: &Member, from: NodeId) {
    let mut metrics = m.raft.metrics();
    loop {
        let l = metrics.borrow_and_update().current_leader;
        if l.is_some_and(|l| l != from) {
            return;
        }
        if metrics.changed().await.is_err() {
            return std::future::pending().await;
        }
    }
}
