//! The metadata seam: how a change of vhosts, exchanges, queues and bindings
//! reaches every node of a cluster.
//!
//! A single node has no replicator ([`Broker::replicator`] is `None`) and the
//! adapters call the vhost directly, as they always did. A clustered node gets
//! one (warren-cluster's Raft group): before an adapter applies a metadata
//! change it hands the change, as a [`MetaOp`], to
//! [`MetadataReplicator::replicate`], which returns once the change is
//! committed on a majority *and* applied here through [`Broker::apply_meta`].
//! The adapter then runs its usual local call, which finds the change already
//! made (declares are idempotent, deleting a missing thing is not an error), so
//! its reply (declare-ok with counts, delete-ok...) comes from the same code as
//! on a single node.
//!
//! The core knows nothing of Raft: a `MetaOp` is plain data, and applying one is
//! an idempotent local change, so replaying a log twice is harmless.

use crate::admin::Credential;
use crate::exchange::{ExchangeKind, ExchangeOptions};
use crate::permissions::PermissionDef;
use crate::policy::PolicyDef;
use crate::queue::QueueOptions;
use crate::shortstr::ShortStr;
use crate::store::definitions::{table_from_hex, table_to_hex};
use crate::table::FieldTable;
use crate::topic_permissions::TopicPermissionDef;
use crate::{Broker, BrokerError, Result};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;

/// Connection id the replicated changes are applied under: they belong to no
/// client connection (exclusive queues are never replicated).
pub const CLUSTER_CONNECTION: u64 = 0;

/// One metadata change, as replicated. Tables travel in their AMQP binary form
/// (hex), so argument types survive exactly.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum MetaOp {
    AddVhost {
        name: String,
        /// Who created it (gets full permissions on it, as on one node).
        #[serde(default)]
        creator: Option<String>,
    },
    DeleteVhost {
        name: String,
    },
    DeclareExchange {
        vhost: String,
        name: String,
        kind: String,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: String,
    },
    DeleteExchange {
        vhost: String,
        name: String,
    },
    DeclareQueue {
        vhost: String,
        name: String,
        durable: bool,
        auto_delete: bool,
        arguments: String,
        /// The node whose clients declared it (a classic queue's messages
        /// live there; every node records it in its definitions).
        #[serde(default)]
        owner: String,
        /// A quorum queue's Raft group, picked by the proposing node.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quorum: Option<QuorumSpec>,
    },
    DeleteQueue {
        vhost: String,
        name: String,
    },
    BindQueue {
        vhost: String,
        queue: String,
        exchange: String,
        routing_key: String,
        arguments: String,
    },
    UnbindQueue {
        vhost: String,
        queue: String,
        exchange: String,
        routing_key: String,
        arguments: String,
    },
    BindExchange {
        vhost: String,
        destination: String,
        source: String,
        routing_key: String,
        arguments: String,
    },
    UnbindExchange {
        vhost: String,
        destination: String,
        source: String,
        routing_key: String,
        arguments: String,
    },
    /// Create or update a user; `password_hash` None keeps the password.
    PutUser {
        name: String,
        password_hash: Option<String>,
        tags: Vec<String>,
    },
    DeleteUser {
        name: String,
    },
    SetPermissions {
        def: PermissionDef,
    },
    ClearPermissions {
        user: String,
        vhost: String,
    },
    SetPolicy {
        vhost: String,
        def: PolicyDef,
    },
    ClearPolicy {
        vhost: String,
        name: String,
    },
    /// A quorum queue's members changed (`warren ctl grow/shrink`,
    /// `add-member`/`delete-member`): every node records the new spec; an
    /// added node starts an empty member the group leader then adds, a
    /// removed one drops its member.
    SetQueueMembers {
        vhost: String,
        name: String,
        spec: QuorumSpec,
    },
    /// Set one vhost limit (`value` Some) or clear it (None); `name` None
    /// with `value` None clears all of the vhost's limits.
    SetVhostLimit {
        vhost: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        value: Option<serde_json::Value>,
    },
    /// As [`MetaOp::SetVhostLimit`], for a user's limits.
    SetUserLimit {
        user: String,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        value: Option<serde_json::Value>,
    },
    SetTopicPermission {
        def: TopicPermissionDef,
    },
    /// A user's topic permissions on a vhost: one exchange's, or (None) all.
    ClearTopicPermissions {
        user: String,
        vhost: String,
        #[serde(default)]
        exchange: Option<String>,
    },
    SetOperatorPolicy {
        vhost: String,
        def: PolicyDef,
    },
    ClearOperatorPolicy {
        vhost: String,
        name: String,
    },
    /// `PUT /api/global-parameters/NAME`.
    SetGlobalParameter {
        name: String,
        value: serde_json::Value,
    },
    ClearGlobalParameter {
        name: String,
    },
}

/// Where a broker keeps its replicator; shared with its vhosts.
pub type ReplicatorCell =
    std::sync::Arc<std::sync::OnceLock<std::sync::Arc<dyn MetadataReplicator>>>;

/// A quorum queue's replication: its Raft group id (new for every declare, so
/// a queue deleted and declared again is a new group) and member nodes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct QuorumSpec {
    pub group: u64,
    pub members: Vec<String>,
    /// Members added after the declare: they join the existing group and
    /// never initialize it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grown: Vec<String>,
}

impl MetaOp {
    pub fn declare_exchange(vhost: &str, name: &str, o: &ExchangeOptions) -> MetaOp {
        MetaOp::DeclareExchange {
            vhost: vhost.to_string(),
            name: name.to_string(),
            kind: o.kind.as_str().to_string(),
            durable: o.durable,
            auto_delete: o.auto_delete,
            internal: o.internal,
            arguments: table_to_hex(&o.arguments),
        }
    }

    pub fn declare_queue(vhost: &str, name: &str, o: &QueueOptions, owner: &str) -> MetaOp {
        MetaOp::DeclareQueue {
            vhost: vhost.to_string(),
            name: name.to_string(),
            durable: o.durable,
            auto_delete: o.auto_delete,
            arguments: table_to_hex(&o.arguments),
            owner: owner.to_string(),
            quorum: None,
        }
    }

    /// The vhost the change is in (a vhost's own name for vhost changes, ""
    /// for users).
    pub fn vhost(&self) -> &str {
        match self {
            MetaOp::PutUser { .. }
            | MetaOp::DeleteUser { .. }
            | MetaOp::SetUserLimit { .. }
            | MetaOp::SetGlobalParameter { .. }
            | MetaOp::ClearGlobalParameter { .. } => "",
            MetaOp::SetOperatorPolicy { vhost, .. } | MetaOp::ClearOperatorPolicy { vhost, .. } => {
                vhost
            }
            MetaOp::SetTopicPermission { def } => &def.vhost,
            MetaOp::SetVhostLimit { vhost, .. } | MetaOp::ClearTopicPermissions { vhost, .. } => {
                vhost
            }
            MetaOp::SetPermissions { def } => &def.vhost,
            MetaOp::ClearPermissions { vhost, .. }
            | MetaOp::SetPolicy { vhost, .. }
            | MetaOp::ClearPolicy { vhost, .. } => vhost,
            MetaOp::AddVhost { name, .. } | MetaOp::DeleteVhost { name } => name,
            MetaOp::DeclareExchange { vhost, .. }
            | MetaOp::DeleteExchange { vhost, .. }
            | MetaOp::DeclareQueue { vhost, .. }
            | MetaOp::DeleteQueue { vhost, .. }
            | MetaOp::SetQueueMembers { vhost, .. }
            | MetaOp::BindQueue { vhost, .. }
            | MetaOp::UnbindQueue { vhost, .. }
            | MetaOp::BindExchange { vhost, .. }
            | MetaOp::UnbindExchange { vhost, .. } => vhost,
        }
    }
}

/// The replicated declare of the shared queue `name` an adapter is about to
/// declare with `o` on a clustered node, or None when nothing needs
/// replicating: node-local queues (exclusive, server-named `amq.` ones), a
/// queue this node has already, or a declare the local call refuses anyway
/// (bad arguments, a stream's classic-only ones), so that refusal keeps its
/// single-node text. Permissions are the adapter's to check first. Shared
/// by the AMQP and STOMP adapters so that they replicate the same declares.
pub fn queue_declare_op(
    vhost: &crate::VHost,
    name: &ShortStr,
    o: &QueueOptions,
    node: &str,
) -> Option<MetaOp> {
    if o.exclusive
        || name.is_empty()
        || name.starts_with("amq.")
        || vhost.named_queue(name.as_bytes()).is_some()
    {
        return None;
    }
    let vname = vhost.name.to_string_lossy().into_owned();
    let args =
        crate::queue::QueueArgs::parse(&vhost.effective_args(name, &o.arguments), name, &vname)
            .ok()?;
    if args.is_stream() {
        crate::queue::check_stream_declare(
            &o.arguments,
            o.durable,
            o.exclusive,
            o.auto_delete,
            name,
            &vname,
        )
        .ok()?;
    }
    let o = QueueOptions {
        exclusive: false,
        ..o.clone()
    };
    Some(MetaOp::declare_queue(
        &vname,
        &name.to_string_lossy(),
        &o,
        node,
    ))
}

/// The future a replication returns.
pub type ReplicateFuture = Pin<Box<dyn Future<Output = Result<()>> + Send>>;

/// Commits a metadata change cluster-wide (see the module comment). An error
/// is what the client sees: no majority, no leader within the timeout...
pub trait MetadataReplicator: Send + Sync + 'static {
    fn replicate(&self, op: MetaOp) -> ReplicateFuture;

    /// Bring this node up to date before an adapter looks at its metadata
    /// to decide what a change means: returns once this node applied every
    /// change the cluster had committed when called (a read barrier).
    /// Without it, a node still catching up answers from older metadata: a
    /// client that declared a queue through n1 and deletes it through n3
    /// would get delete-ok from n3, which does not have it yet, and the
    /// queue would stay. An error (no leader, no majority) refuses the
    /// change, as `replicate` would.
    fn sync(&self) -> ReplicateFuture {
        Box::pin(async { Ok(()) })
    }

    /// This node's cluster name (a classic queue's owner).
    fn node_name(&self) -> String;

    /// Add a node to the metadata group (`join`) or remove one
    /// (`forget-node`): `addr` Some to add `node` at that cluster address,
    /// None to remove it.
    fn change_member(&self, node: String, addr: Option<String>) -> ReplicateFuture;

    /// Add (`add`) or remove `node` as a member of quorum queue `queue`
    /// (`warren ctl add-member`/`delete-member`, grow/shrink).
    fn queue_member(
        &self,
        _vhost: String,
        _queue: String,
        _node: String,
        _add: bool,
    ) -> ReplicateFuture {
        Box::pin(async { Err(BrokerError::not_allowed("this node is not clustered")) })
    }

    /// The cluster's status as JSON: `{"nodes": [{"name", "running",
    /// "type", ...}], "metadata_leader": NAME}` (for the management API and
    /// `warren ctl cluster-status`).
    fn status(&self) -> StatusFuture;
}

/// The future [`MetadataReplicator::status`] returns.
pub type StatusFuture = Pin<Box<dyn Future<Output = serde_json::Value> + Send>>;

fn args(hex: &str) -> FieldTable {
    table_from_hex(hex)
}

impl Broker {
    /// Apply a committed metadata change to this node. Idempotent: an
    /// equivalent declare of an existing thing, or a delete of a missing one,
    /// changes nothing. A change this node cannot make (an inequivalent
    /// redeclare the origin node would also have refused) is reported, not
    /// applied; every node sees the same log, so they all agree.
    pub fn apply_meta(&self, op: &MetaOp) -> Result<()> {
        let vhost = || {
            self.vhost(op.vhost())
                .ok_or_else(|| crate::admin::no_vhost(op.vhost()))
        };
        let conn = CLUSTER_CONNECTION;
        match op {
            MetaOp::PutUser {
                name,
                password_hash,
                tags,
            } => {
                let credential = match password_hash {
                    Some(h) => Credential::Hash(h.clone()),
                    None => Credential::Keep,
                };
                self.upsert_user(name, credential, tags.clone()).map(|_| ())
            }
            MetaOp::DeleteUser { name } => match self.user(name) {
                Some(_) => self.delete_user(name),
                None => Ok(()),
            },
            MetaOp::SetPermissions { def } => self.set_permissions(def.clone()),
            MetaOp::ClearPermissions { user, vhost } => match self.permission(user, vhost) {
                Some(_) => self.clear_permissions(user, vhost),
                None => Ok(()),
            },
            MetaOp::SetPolicy { def, .. } => vhost()?.set_policy(def.clone(), true),
            MetaOp::SetOperatorPolicy { def, .. } => {
                vhost()?.set_operator_policy(def.clone(), true)
            }
            MetaOp::ClearOperatorPolicy { name, .. } => {
                vhost()?.clear_operator_policy(name);
                Ok(())
            }
            MetaOp::SetGlobalParameter { name, value } => {
                self.set_global_parameter(name, value.clone());
                Ok(())
            }
            MetaOp::ClearGlobalParameter { name } => {
                self.clear_global_parameter(name);
                Ok(())
            }
            MetaOp::ClearPolicy { name, .. } => {
                let v = vhost()?;
                if v.policies().iter().any(|p| &p.name == name) {
                    v.clear_policy(name)
                } else {
                    Ok(())
                }
            }
            MetaOp::SetVhostLimit { vhost, name, value } => match (name, value) {
                (Some(n), Some(v)) => self.set_vhost_limit(vhost, n, v),
                (n, _) => self.clear_vhost_limit(vhost, n.as_deref()),
            },
            MetaOp::SetUserLimit { user, name, value } => match (name, value) {
                (Some(n), Some(v)) => self.set_user_limit(user, n, v),
                (n, _) => self.clear_user_limit(user, n.as_deref()),
            },
            MetaOp::SetTopicPermission { def } => {
                self.set_topic_permission(def.clone()).map(|_| ())
            }
            MetaOp::ClearTopicPermissions {
                user,
                vhost,
                exchange,
            } => {
                self.clear_topic_permissions(user, vhost, exchange.as_deref());
                Ok(())
            }
            MetaOp::AddVhost { name, creator } => {
                self.add_vhost_for(name, creator.as_deref()).map(|_| ())
            }
            MetaOp::DeleteVhost { name } => match self.vhost(name) {
                Some(_) => self.delete_vhost(name),
                None => Ok(()),
            },
            MetaOp::DeclareExchange {
                name,
                kind,
                durable,
                auto_delete,
                internal,
                arguments,
                ..
            } => {
                let kind = ExchangeKind::parse(kind.as_bytes()).ok_or_else(|| {
                    BrokerError::command_invalid(format!("unknown exchange type '{kind}'"))
                })?;
                let opts = ExchangeOptions {
                    kind,
                    durable: *durable,
                    auto_delete: *auto_delete,
                    internal: *internal,
                    arguments: args(arguments),
                };
                vhost()?
                    .declare_exchange(ShortStr::from(name.as_str()), opts, false)
                    .map(|_| ())
            }
            MetaOp::DeleteExchange { name, .. } => {
                vhost()?.delete_exchange(&ShortStr::from(name.as_str()), false)
            }
            MetaOp::DeclareQueue {
                name,
                durable,
                auto_delete,
                arguments,
                owner,
                ..
            } => {
                let opts = QueueOptions {
                    durable: *durable,
                    exclusive: false,
                    auto_delete: *auto_delete,
                    arguments: args(arguments),
                };
                let name = ShortStr::from(name.as_str());
                if name.starts_with("amq.") {
                    return Err(BrokerError::access_refused(format!(
                        "queue name '{name}' contains reserved prefix 'amq.*'"
                    )));
                }
                vhost()?
                    .declare_homed_queue(name, opts, conn, owner)
                    .map(|_| ())
            }
            // Only the cluster layer acts on it; the queue must exist.
            MetaOp::SetQueueMembers { name, .. } => vhost()?
                .named_queue(ShortStr::from(name.as_str()).as_bytes())
                .map(|_| ())
                .ok_or_else(|| {
                    BrokerError::not_found(format!("no queue '{name}' in vhost '{}'", op.vhost()))
                }),
            MetaOp::DeleteQueue { name, .. } => vhost()?
                .delete_queue(&ShortStr::from(name.as_str()), false, false, conn)
                .map(|_| ()),
            MetaOp::BindQueue {
                queue,
                exchange,
                routing_key,
                arguments,
                ..
            } => vhost()?.bind_queue(
                &ShortStr::from(queue.as_str()),
                &ShortStr::from(exchange.as_str()),
                ShortStr::from(routing_key.as_str()),
                args(arguments),
                conn,
            ),
            MetaOp::UnbindQueue {
                queue,
                exchange,
                routing_key,
                arguments,
                ..
            } => vhost()?.unbind_queue(
                &ShortStr::from(queue.as_str()),
                &ShortStr::from(exchange.as_str()),
                &ShortStr::from(routing_key.as_str()),
                &args(arguments),
                conn,
            ),
            MetaOp::BindExchange {
                destination,
                source,
                routing_key,
                arguments,
                ..
            } => vhost()?.bind_exchange(
                &ShortStr::from(destination.as_str()),
                &ShortStr::from(source.as_str()),
                ShortStr::from(routing_key.as_str()),
                args(arguments),
            ),
            MetaOp::UnbindExchange {
                destination,
                source,
                routing_key,
                arguments,
                ..
            } => vhost()?.unbind_exchange(
                &ShortStr::from(destination.as_str()),
                &ShortStr::from(source.as_str()),
                &ShortStr::from(routing_key.as_str()),
                &args(arguments),
            ),
        }
    }

    /// Install the cluster's replicator (once, at startup, before listeners
    /// accept clients).
    pub fn set_replicator(&self, r: std::sync::Arc<dyn MetadataReplicator>) {
        let _ = self.replicator.set(r);
    }

    /// The cluster's replicator; `None` on a single node.
    pub fn replicator(&self) -> Option<&std::sync::Arc<dyn MetadataReplicator>> {
        self.replicator.get()
    }
}

#[cfg(test)]
#[path = "meta_tests.rs"]
mod tests;
