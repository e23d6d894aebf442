//! Raft timers, and a fast election when a group's leader process is gone.
//!
//! openraft 0.9 starts an election on a follower once it heard nothing from
//! its leader for the *leader lease* (`election_timeout_max`) plus its own
//! randomized election timeout, checked every 1.5 heartbeats: with the
//! timers below 2.25–3.4 s after the leader's last heartbeat. A voter also
//! refuses to vote for anyone else while its lease runs (a merely slow
//! leader is not deposed by one impatient follower), so no election can
//! succeed before the lease ran out on a majority.
//!
//! When a peer's process dies on a live host (`kill -9`, a crash), its
//! kernel closes its sockets: our link to it reads end-of-file at once
//! ([`crate::transport::Transport::closed`]) and its cluster port refuses a
//! new connection. Then the groups it led here do not wait for the timer:
//! one surviving voter per group (the lowest node id, so two survivors do
//! not split the vote) calls the election as soon as the other voters'
//! leases have run out, [`LEASE`] after the link closed (in a group of
//! three, the other survivor takes over [`STAGGER`] later if the first one
//! did not get its vote: its log was behind). A peer that is cut
//! off or hangs (no end-of-file, or a connection still accepted) is left
//! to the timers: a slow node is never deposed by this path. Calling an
//! election is always safe in Raft; a wrong guess costs one term.

use crate::node::Cluster;
use crate::NodeId;
use openraft::{BasicNode, Raft, RaftTypeConfig, ServerState};
use std::sync::Weak;
use std::time::{Duration, Instant};
use tokio::sync::broadcast::error::RecvError;
use tracing::info;

/// Heartbeat interval of every group (metadata and quorum queues).
pub const HEARTBEAT_MS: u64 = 250;
/// Election timeouts of every group: followers elect after the lease
/// (the maximum) plus a random timeout in this range.
pub const ELECTION_MIN_MS: u64 = 750;
pub const ELECTION_MAX_MS: u64 = 1500;
/// openraft's leader lease (its `election_timeout_max`).
pub const LEASE: Duration = Duration::from_millis(ELECTION_MAX_MS);
// openraft refuses a config whose minimum is not above the heartbeat.
const _: () = assert!(ELECTION_MIN_MS > HEARTBEAT_MS && ELECTION_MIN_MS < ELECTION_MAX_MS);
/// Beyond the lease, so every voter's has surely run out.
const MARGIN: Duration = Duration::from_millis(50);
/// How long the second survivor gives the first before taking over.
const STAGGER: Duration = Duration::from_millis(300);
/// How long the dead peer's port may take to refuse a connection.
const CONFIRM_TIMEOUT: Duration = Duration::from_millis(300);

/// Watch this node's links; run for the node's life.
pub(crate) async fn watch(cluster: Weak<Cluster>) {
    let Some(mut closed) = cluster.upgrade().map(|c| c.transport.closed()) else {
        return;
    };
    loop {
        let addr = match closed.recv().await {
            Ok(a) => a,
            Err(RecvError::Lagged(_)) => continue,
            Err(RecvError::Closed) => return,
        };
        let at = Instant::now();
        let Some(c) = cluster.upgrade() else { return };
        let Some(dead) = c.id_at(&addr) else { continue };
        if !c.mark_gone(dead) {
            continue; // already being handled
        }
        let weak = cluster.clone();
        tokio::spawn(async move {
            on_closed(&weak, dead, &addr, at).await;
            if let Some(c) = weak.upgrade() {
                c.clear_gone(dead);
            }
        });
    }
}

async fn on_closed(cluster: &Weak<Cluster>, dead: NodeId, addr: &str, at: Instant) {
    // The process is gone if its port refuses; anything else (accepted,
    // no answer) is left to the timers.
    match tokio::time::timeout(CONFIRM_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
        Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => {}
        _ => return,
    }
    tokio::time::sleep_until((at + LEASE + MARGIN).into()).await;
    let Some(c) = cluster.upgrade() else { return };
    let mut called = 0usize;
    if maybe_elect(&c.raft, c.id, dead, 0).await {
        called += 1;
    }
    for m in c.quorum.all_members() {
        if maybe_elect(&m.raft, c.id, dead, 0).await {
            called += 1;
        }
    }
    // The first survivor's vote is refused when its log is behind the
    // other's (it restarted a moment ago and has not caught up): then, in
    // a group of three, the other survivor takes over a moment later.
    drop(c);
    tokio::time::sleep(STAGGER).await;
    let Some(c) = cluster.upgrade() else { return };
    if maybe_elect(&c.raft, c.id, dead, 1).await {
        called += 1;
    }
    for m in c.quorum.all_members() {
        if maybe_elect(&m.raft, c.id, dead, 1).await {
            called += 1;
        }
    }
    if called > 0 {
        info!(
            "node {} is gone: called {called} election(s) in the groups it led",
            c.name_of(dead)
        );
    }
}

/// Call an election in `raft`'s group if `dead` still leads it as far as
/// this node knows and this node is the surviving voter to do it: the
/// lowest id (`rank` 0), or, in a group of three whose first survivor
/// did not get this node's vote, the other one (`rank` 1).
async fn maybe_elect<C>(raft: &Raft<C>, me: NodeId, dead: NodeId, rank: usize) -> bool
where
    C: RaftTypeConfig<NodeId = NodeId, Node = BasicNode>,
{
    let m = raft.metrics().borrow().clone();
    if m.current_leader != Some(dead) || m.state != ServerState::Follower {
        return false;
    }
    let voters: Vec<NodeId> = m.membership_config.membership().voter_ids().collect();
    if rank == 0 {
        if elector(voters.iter().copied(), dead) != Some(me) {
            return false;
        }
        return raft.trigger().elect().await.is_ok();
    }
    // Rank 1: only with three voters (the first survivor cannot have won
    // without this node's vote, so nothing is disrupted) and only if this
    // node voted for nobody since (still the dead leader's vote).
    if voters.len() != 3 || m.vote.leader_id().voted_for() != Some(dead) {
        return false;
    }
    if elector(voters.iter().copied().filter(|v| *v != me), dead).is_none()
        || elector(voters.iter().copied(), dead) == Some(me)
    {
        return false;
    }
    // The first survivor already asked for votes in the next term and voted
    // for itself there: this node's first try (that same term) is refused,
    // the second (one term on) is granted.
    if raft.trigger().elect().await.is_err() {
        return false;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let m = raft.metrics().borrow().clone();
    if m.state == ServerState::Candidate {
        let _ = raft.trigger().elect().await;
    }
    true
}

/// The one survivor that calls the election: the lowest voter id but the
/// dead one's (every survivor computes the same).
fn elector(voters: impl Iterator<Item = NodeId>, dead: NodeId) -> Option<NodeId> {
    voters.filter(|v| *v != dead).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_survivor_elects() {
        assert_eq!(elector([5, 3, 9].into_iter(), 3), Some(5));
        assert_eq!(elector([5, 3, 9].into_iter(), 9), Some(3));
        assert_eq!(elector([7].into_iter(), 7), None);
    }
}
