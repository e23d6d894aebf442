//! One enqueuer task per quorum queue per node: it drains the publishes of
//! every channel on the node into one `EnqueueNext` Raft entry (up to
//! [`MAX_BATCH`] messages or [`MAX_BATCH_BYTES`]), writes it to the group's
//! leader (locally, or forwarded over the transport), and completes the
//! publishers' confirms once the group committed it (a majority fsynced).
//!
//! Up to [`MAX_IN_FLIGHT`] batches are on their way at once, started in
//! batch-number order (proposed to the local leader, or queued on the one
//! link to the remote leader, whose transport hands them to openraft in
//! arrival order). Their answers are taken in that order. The state machine
//! applies one enqueuer's batches strictly in sequence, so a batch that
//! overtook another (a retry after a leader change) is refused
//! (`OutOfOrder`) and written again, and a resend of an applied batch is
//! recognised ("Duplicate" = done) without ever mistaking a batch that was
//! not applied for one that was.

use super::Member;
use crate::node::Cluster;
use crate::raft_net::Codec;
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

/// Batches one enqueuer keeps in flight at once. One at a time made every
/// publish wait for the whole previous round (leader append, a follower's
/// fsync, commit, apply, the answer back) before it even left: about 1.5
/// rounds per confirm. With several, a batch leaves as soon as it is
/// drained; openraft and the shared WAL merge what arrives meanwhile.
pub const MAX_IN_FLIGHT: usize = 8;

/// One batch on its way: its messages' confirms, what it holds of the
/// backlog, and the task that writes it.
struct Flight {
    publisher: PublisherSeq,
    messages: Vec<warren_quorum::Message>,
    confirms: Vec<Option<Confirm>>,
    bytes: usize,
    reply: tokio::task::JoinHandle<Option<Reply>>,
}

/// The enqueuer's identity in the group's dedup table and its next batch
/// number. Batches are numbered 1, 2, ... per publisher id and the state
/// machine applies them strictly in that order (`EnqueueNext`).
struct Seq {
    publisher: u64,
    next: u64,
}

impl Seq {
    fn new() -> Seq {
        // New per task: a restarted node's batches are never taken for
        // resends of its previous life's.
        Seq {
            publisher: warren_core::random::random_u64(),
            next: 1,
        }
    }
    fn take(&mut self) -> PublisherSeq {
        let p = PublisherSeq {
            publisher: self.publisher,
            seq: self.next,
        };
        self.next += 1;
        p
    }
}

pub(crate) async fn run(
    cluster: Weak<Cluster>,
    group: u64,
    members: Vec<NodeId>,
    mut rx: mpsc::UnboundedReceiver<Pending>,
    backlog: std::sync::Arc<Backlog>,
) {
    let mut seq = Seq::new();
    let mut target: Option<NodeId> = None;
    let mut flights: std::collections::VecDeque<Flight> = std::collections::VecDeque::new();
    let mut open = true;
    while open || !flights.is_empty() {
        tokio::select! {
            // Answers first: they free room and confirm publishes.
            biased;
            r = async { (&mut flights.front_mut().expect("checked").reply).await },
                if !flights.is_empty() =>
            {
                let f = flights.pop_front().expect("checked");
                let reply = r.unwrap_or(None);
                settle(&cluster, group, &members, &mut target, &mut seq, f, reply, &mut flights, &backlog).await;
            }
            first = rx.recv(), if open && flights.len() < MAX_IN_FLIGHT => {
                let Some(first) = first else {
                    open = false;
                    continue;
                };
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
                let mut confirms = Vec::with_capacity(batch.len());
                let mut messages = Vec::with_capacity(batch.len());
                for p in batch {
                    messages.push(p.message);
                    confirms.push(p.confirm);
                }
                let publisher = seq.take();
                let reply = start(&cluster, group, &members, &mut target, publisher, &messages).await;
                flights.push_back(Flight { publisher, messages, confirms, bytes, reply });
            }
        }
        if cluster.strong_count() == 0 {
            return;
        }
    }
}

/// Sends one batch on its way, in order: when this returns, the batch is in
/// the local leader's queue of proposals or on the link to the remote
/// leader, behind the batches started before it. The task it returns
/// waits for the answer (and, if that attempt failed, tries again through
/// [`write`]).
async fn start(
    cluster: &Weak<Cluster>,
    group: u64,
    members: &[NodeId],
    target: &mut Option<NodeId>,
    publisher: PublisherSeq,
    messages: &[warren_quorum::Message],
) -> tokio::task::JoinHandle<Option<Reply>> {
    let cmd = Command::EnqueueNext {
        publisher,
        messages: messages.to_vec(),
    };
    let retry = {
        let (cluster, members, cmd) = (cluster.clone(), members.to_vec(), cmd.clone());
        move |mut target: Option<NodeId>| async move {
            write(&cluster, group, &members, &mut target, cmd).await
        }
    };
    let Some(c) = cluster.upgrade() else {
        return tokio::spawn(async { None });
    };
    if let Some(m) = c.quorum.member(group) {
        let leader = m.raft.metrics().borrow().current_leader;
        if leader == Some(c.id) {
            if let Ok(rx) = m.raft.client_write_ff(cmd).await {
                return tokio::spawn(async move {
                    match rx.await {
                        Ok(Ok(r)) => Some(r.data.reply),
                        _ => retry(None).await,
                    }
                });
            }
            return tokio::spawn(retry(None));
        }
        if leader.is_some() {
            *target = leader;
        }
    }
    let to = match *target {
        Some(t) if t != c.id => t,
        _ => return tokio::spawn(retry(None)),
    };
    let Some(addr) = c.addr_of(to) else {
        return tokio::spawn(retry(None));
    };
    let Ok(body) = crate::raft_net::Bincode::encode(&cmd) else {
        return tokio::spawn(retry(None));
    };
    let sent = c
        .transport
        .send_call(
            &addr,
            group,
            crate::raft_net::RPC_FORWARD,
            &body,
            Duration::from_secs(10),
        )
        .await;
    drop(c);
    match sent {
        Ok(answer) => tokio::spawn(async move {
            let r: Option<crate::raft_net::ForwardResult<QuorumConfig>> = answer
                .await
                .ok()
                .and_then(|b| crate::raft_net::Bincode::decode(&b).ok());
            match r {
                Some(Ok(resp)) => Some(resp.data.reply),
                Some(Err(RaftError::APIError(ClientWriteError::ForwardToLeader(f)))) => {
                    retry(f.leader_id.filter(|l| *l != to)).await
                }
                _ => retry(None).await,
            }
        }),
        Err(_) => {
            *target = None;
            tokio::spawn(retry(None))
        }
    }
}

/// A batch's answer, taken in the order the batches were started.
/// `OutOfOrder` (it overtook an earlier batch on the way): every earlier
/// batch has been settled by now, so it is written again, alone, until it
/// applies. A batch that found no majority in [`WRITE_TIMEOUT`] is nacked
/// and leaves a hole in the numbering that may never fill: the enqueuer
/// takes a new publisher id, and the batches still in flight behind it are
/// settled one by one (those refused as out of order written again under
/// the new id, each after the previous one applied) before new ones start.
#[allow(clippy::too_many_arguments)]
async fn settle(
    cluster: &Weak<Cluster>,
    group: u64,
    members: &[NodeId],
    target: &mut Option<NodeId>,
    seq: &mut Seq,
    f: Flight,
    reply: Option<Reply>,
    flights: &mut std::collections::VecDeque<Flight>,
    backlog: &Backlog,
) {
    let mut pending = Some((f, reply));
    while let Some((mut f, mut reply)) = pending.take() {
        loop {
            match reply {
                Some(Reply::OutOfOrder) => {
                    if f.publisher.publisher != seq.publisher {
                        // Its numbering was abandoned: one of the new id.
                        f.publisher = seq.take();
                    }
                    let cmd = Command::EnqueueNext {
                        publisher: f.publisher,
                        messages: f.messages.clone(),
                    };
                    reply = write(cluster, group, members, target, cmd).await;
                }
                Some(Reply::EnqueuedBatch { rejected }) => {
                    for (i, c) in f.confirms.drain(..).enumerate() {
                        if let Some(c) = c {
                            c.complete(!rejected.contains(&(i as u32)));
                        }
                    }
                    break;
                }
                Some(Reply::Duplicate) => {
                    for c in f.confirms.drain(..).flatten() {
                        c.complete(true);
                    }
                    break;
                }
                _ => {
                    // Dropped confirms are nacks.
                    f.confirms.clear();
                    *seq = Seq::new();
                    break;
                }
            }
        }
        backlog.release(f.bytes);
        let abandoned = flights
            .front()
            .is_some_and(|n| n.publisher.publisher != seq.publisher);
        if abandoned {
            // Behind a hole: settle the rest now, in order.
            let mut n = flights.pop_front().expect("checked");
            let r = (&mut n.reply).await.unwrap_or(None);
            pending = Some((n, r));
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
