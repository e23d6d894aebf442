//! Quorum queue membership: adding or removing a node as a member of a
//! queue's Raft group (`warren ctl add-member`/`delete-member`, `grow`,
//! `shrink`, and `forget-node`), and the status a node without a member
//! asks the group for (its depth and leader).
//!
//! Adding: the metadata group first records the new members
//! ([`MetaOp::SetQueueMembers`]), so every node knows them and the added
//! node starts an empty member (one that never initializes the group: it is
//! in the spec's `grown` list); then the group's leader adds it as a
//! learner, waits until it caught up, and makes it a voter. Removing is the
//! reverse: the leader changes the membership first, then the metadata
//! records it, and the removed node drops its member, its log from the WAL
//! and its snapshot. Both are idempotent: running one again after a failure
//! (a timeout, no leader) finishes it.

use crate::group::{GroupHandler, GroupId, HandlerFuture};
use crate::node::Cluster;
use crate::NodeId;
use bytes::Bytes;
use openraft::BasicNode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use warren_core::error::code;
use warren_core::meta::{MetaOp, QuorumSpec};
use warren_core::queue::QueueDepth;
use warren_core::BrokerError;

/// Node-level RPCs about quorum queue groups (not a Raft group).
pub const QUORUM_ADMIN_GROUP: GroupId = u64::MAX - 3;
const CHANGE_RPC: u8 = 1;
const STATUS_RPC: u8 = 2;
// PARK_RPC = 3: park.rs.
/// How long a membership change may take (the learner catching up
/// included) before the command gives up (run it again to finish it).
const CHANGE_TIMEOUT: Duration = Duration::from_secs(60);
const STATUS_TIMEOUT: Duration = Duration::from_millis(400);

#[derive(Serialize, Deserialize)]
struct Change {
    group: u64,
    node: NodeId,
    addr: String,
    add: bool,
}

/// A member's answer to a status request.
#[derive(Serialize, Deserialize, Clone, Copy, Default)]
pub struct GroupStatus {
    pub is_leader: bool,
    pub leader: Option<NodeId>,
    pub ready: u64,
    pub unacked: u64,
    pub ready_bytes: u64,
    pub consumers: u32,
}

impl GroupStatus {
    pub fn depth(&self) -> QueueDepth {
        QueueDepth {
            messages_ready: self.ready,
            messages_unacknowledged: self.unacked,
            message_bytes_ready: self.ready_bytes,
            message_bytes_unacknowledged: 0,
            consumers: self.consumers,
        }
    }
}

pub(crate) struct AdminService(pub Weak<Cluster>);

impl GroupHandler for AdminService {
    fn handle(&self, rpc: u8, payload: Bytes) -> HandlerFuture {
        let c = self.0.upgrade();
        Box::pin(async move {
            let c = c.ok_or("node shutting down")?;
            match rpc {
                CHANGE_RPC => {
                    let ch: Change = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
                    c.change_here(&ch).await.map(|()| Bytes::new())
                }
                STATUS_RPC => {
                    let group: u64 = serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
                    let s = c.local_status(group).ok_or("no member of the group here")?;
                    serde_json::to_vec(&s)
                        .map(Bytes::from)
                        .map_err(|e| e.to_string())
                }
                super::park::PARK_RPC => c.park_rpc(&payload).await,
                other => Err(format!("unknown quorum admin rpc {other}")),
            }
        })
    }
}

fn failed(text: impl Into<String>) -> BrokerError {
    BrokerError::new(code::PRECONDITION_FAILED, text)
}

impl Cluster {
    /// Register the RPC service (at start).
    pub(crate) fn serve_quorum_admin(self: &Arc<Self>) {
        self.registry.register(
            QUORUM_ADMIN_GROUP,
            Arc::new(AdminService(Arc::downgrade(self))),
        );
    }

    /// Add `node` to (or remove it from) quorum queue `name`'s members.
    pub async fn queue_member(
        self: &Arc<Self>,
        vhost: &str,
        name: &str,
        node: &str,
        add: bool,
    ) -> Result<(), BrokerError> {
        let Some(MetaOp::DeclareQueue {
            quorum: Some(spec), ..
        }) = self.state_machine.quorum_declare(vhost, name)
        else {
            return Err(BrokerError::not_found(format!(
                "no quorum queue '{name}' in vhost '{vhost}'"
            )));
        };
        let id = crate::config::node_id(node);
        let voters: BTreeSet<NodeId> = self
            .raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect();
        let old: Vec<NodeId> = spec
            .members
            .iter()
            .map(|m| crate::config::node_id(m))
            .collect();
        let is_member = spec.members.iter().any(|m| m == node);
        if add {
            if !voters.contains(&id) {
                return Err(BrokerError::not_found(format!("no cluster node {node}")));
            }
            // A node that is down would be recorded as a member the leader
            // then waits a minute for: refuse at once, as rabbitmq-queues
            // does for a node that is not running.
            let addr = self
                .addr_of(id)
                .ok_or_else(|| failed(format!("no address known for {node}")))?;
            if !self.is_online(id, Duration::from_secs(3)) && self.probe(&addr).await.is_none() {
                return Err(failed(format!("node {node} is not running")));
            }
            if !is_member {
                let mut s = spec.clone();
                s.members.push(node.to_string());
                s.grown.push(node.to_string());
                self.set_members(vhost, name, s).await?;
            }
            let ch = Change {
                group: spec.group,
                node: id,
                addr,
                add: true,
            };
            self.group_change(&old, &ch).await
        } else {
            if !is_member {
                return Err(BrokerError::not_found(format!(
                    "{node} is not a member of quorum queue '{name}' in vhost '{vhost}'"
                )));
            }
            if spec.members.len() == 1 {
                return Err(failed(format!(
                    "{node} is the last member of quorum queue '{name}' in vhost '{vhost}'"
                )));
            }
            let ch = Change {
                group: spec.group,
                node: id,
                addr: String::new(),
                add: false,
            };
            self.group_change(&old, &ch).await?;
            let mut s = spec.clone();
            s.members.retain(|m| m != node);
            s.grown.retain(|m| m != node);
            self.set_members(vhost, name, s).await
        }
    }

    async fn set_members(
        &self,
        vhost: &str,
        name: &str,
        spec: QuorumSpec,
    ) -> Result<(), BrokerError> {
        self.propose(MetaOp::SetQueueMembers {
            vhost: vhost.to_string(),
            name: name.to_string(),
            spec,
        })
        .await
    }

    /// Remove `node` from every quorum queue it is a member of (after
    /// `forget-node`). Returns how many were, and the queues that could
    /// not be.
    pub async fn shrink_node(self: &Arc<Self>, node: &str) -> (usize, Vec<String>) {
        let mut failures = Vec::new();
        let mut shrunk = 0;
        for op in self.state_machine.quorum_declares() {
            let MetaOp::DeclareQueue {
                vhost,
                name,
                quorum: Some(spec),
                ..
            } = op
            else {
                continue;
            };
            if !spec.members.iter().any(|m| m == node) || spec.members.len() == 1 {
                continue;
            }
            match self.queue_member(&vhost, &name, node, false).await {
                Ok(()) => shrunk += 1,
                Err(e) => failures.push(format!("'{name}' in vhost '{vhost}': {}", e.text)),
            }
        }
        (shrunk, failures)
    }

    /// Have the group's leader make the change: this node's member if it
    /// leads, else each member in turn until the leader answers.
    async fn group_change(
        self: &Arc<Self>,
        members: &[NodeId],
        ch: &Change,
    ) -> Result<(), BrokerError> {
        let deadline = Instant::now() + CHANGE_TIMEOUT;
        let body = serde_json::to_vec(ch).map_err(|e| failed(e.to_string()))?;
        let mut why = String::from("no leader");
        loop {
            // The leader this node knows of first.
            let mut order: Vec<NodeId> = Vec::new();
            if let Some(l) = self
                .quorum
                .member(ch.group)
                .and_then(|m| m.raft.metrics().borrow().current_leader)
            {
                order.push(l);
            }
            for m in members {
                if !order.contains(m) {
                    order.push(*m);
                }
            }
            for id in order {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(failed(format!("membership change not done: {why}")));
                }
                let r = if id == self.id {
                    if !self.quorum.has_member(ch.group) {
                        continue;
                    }
                    self.change_here(ch).await
                } else {
                    let Some(addr) = self.addr_of(id) else {
                        continue;
                    };
                    self.transport
                        .call(&addr, QUORUM_ADMIN_GROUP, CHANGE_RPC, &body, left)
                        .await
                        .map(|_| ())
                        .map_err(|e| e.to_string())
                };
                match r {
                    Ok(()) => return Ok(()),
                    Err(e) => why = e,
                }
            }
            if Instant::now() >= deadline {
                return Err(failed(format!("membership change not done: {why}")));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// On the group's leader: add `ch.node` as a learner (blocking until it
    /// caught up), then as a voter; or remove it.
    async fn change_here(self: &Arc<Self>, ch: &Change) -> Result<(), String> {
        let m = self
            .wake_member(ch.group, true)
            .await
            .ok_or("no member of the group here")?;
        let metrics = m.raft.metrics().borrow().clone();
        if metrics.current_leader != Some(self.id) {
            return Err(format!("{} is not the group's leader", self.name));
        }
        let membership = metrics.membership_config.membership().clone();
        let mut voters: BTreeSet<NodeId> = membership.voter_ids().collect();
        if ch.add {
            if voters.contains(&ch.node) {
                return Ok(());
            }
            tokio::time::timeout(
                CHANGE_TIMEOUT,
                m.raft.add_learner(ch.node, BasicNode::new(&ch.addr), true),
            )
            .await
            .map_err(|_| "the new member did not catch up in time".to_string())?
            .map_err(|e| e.to_string())?;
            voters.insert(ch.node);
        } else {
            if membership.get_node(&ch.node).is_none() {
                return Ok(());
            }
            voters.remove(&ch.node);
            if voters.is_empty() {
                return Err("cannot remove the group's last member".into());
            }
        }
        tokio::time::timeout(CHANGE_TIMEOUT, m.raft.change_membership(voters, false))
            .await
            .map_err(|_| "the membership change did not commit in time".to_string())?
            .map(|_| ())
            .map_err(|e| e.to_string())
    }

    /// This node's member's view of the group.
    fn local_status(&self, group: u64) -> Option<GroupStatus> {
        let Some(m) = self.quorum.member(group) else {
            return self.parked_status(group);
        };
        let leader = m.raft.metrics().borrow().current_leader;
        Some(m.sm.with_state(|s| GroupStatus {
            is_leader: leader == Some(self.id),
            leader,
            ready: s.ready_count(),
            unacked: s.unacked_count(),
            ready_bytes: s.ready_bytes(),
            consumers: s.consumer_count() as u32,
        }))
    }

    /// Ask the members of `group` for its status (a node without a member
    /// of its own: the queue's depth and leader), all at once: a dead member
    /// costs no more than a live one. The leader's answer wins; a
    /// follower's is used when no leader answers.
    pub(crate) async fn remote_status(
        &self,
        group: u64,
        members: &[String],
    ) -> Option<GroupStatus> {
        let body = bytes::Bytes::from(serde_json::to_vec(&group).ok()?);
        let mut asks = tokio::task::JoinSet::new();
        for m in members {
            let Some(addr) = self.addr_of(crate::config::node_id(m)) else {
                continue;
            };
            let transport = self.transport.clone();
            let body = body.clone();
            asks.spawn(async move {
                let b = transport
                    .call(&addr, QUORUM_ADMIN_GROUP, STATUS_RPC, &body, STATUS_TIMEOUT)
                    .await
                    .ok()?;
                serde_json::from_slice::<GroupStatus>(&b).ok()
            });
        }
        let mut fallback = None;
        while let Some(done) = asks.join_next().await {
            let Ok(Some(s)) = done else { continue };
            if s.is_leader {
                return Some(s);
            }
            fallback.get_or_insert(s);
        }
        fallback
    }
}
