//! Durable definitions: vhosts, users, permissions, exchanges, queues, bindings
//! and policies that survive a restart.
//!
//! Kept as an append-only file of JSON lines (`definitions.jsonl`), one operation
//! per line, fsynced before the declare/bind is answered. At startup the file is
//! replayed and rewritten as a compact snapshot (write to a temporary file, fsync,
//! rename), so it never grows past a restart. Definitions change rarely compared to
//! messages, so one small synced append per change is cheap and far simpler than a
//! database.
//!
//! Arguments tables are stored in their AMQP binary form (hex), so types survive
//! exactly.

use crate::auth::User;
use crate::exchange::{ExchangeKind, ExchangeOptions};
use crate::limits::LimitMap;
use crate::permissions::PermissionDef;
use crate::policy::PolicyDef;
use crate::queue::QueueOptions;
use crate::table::FieldTable;
use crate::topic_permissions::TopicPermissionDef;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use tracing::warn;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ExchangeDef {
    pub vhost: String,
    pub name: String,
    pub kind: String,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: String,
    /// For a durable `x-delayed-message` exchange: the log id under which its
    /// held persistent messages are stored (0 otherwise).
    #[serde(default)]
    pub delay_id: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct QueueDef {
    pub vhost: String,
    pub name: String,
    /// The id message-log records use for this queue. A queue deleted and declared
    /// again gets a new id, so old records never leak into it.
    pub id: u64,
    pub auto_delete: bool,
    pub arguments: String,
    /// On a cluster node: the node that holds the queue's messages (its
    /// home); empty for a single node's queues and for records written before
    /// clustering knew owners (those are local).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct BindingDef {
    pub vhost: String,
    pub source: String,
    /// "queue" or "exchange"
    pub destination_type: String,
    pub destination: String,
    pub routing_key: String,
    pub arguments: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Op {
    Exchange(ExchangeDef),
    DeleteExchange {
        vhost: String,
        name: String,
    },
    Queue(QueueDef),
    DeleteQueue {
        vhost: String,
        name: String,
    },
    Binding(BindingDef),
    DeleteBinding(BindingDef),
    Policy(PolicyDef),
    DeletePolicy {
        vhost: String,
        name: String,
    },
    Vhost {
        name: String,
    },
    /// Drops the vhost and everything in it (exchanges, queues, bindings,
    /// policies, permissions).
    DeleteVhost {
        name: String,
    },
    User(User),
    /// Drops the user and its permissions.
    DeleteUser {
        name: String,
    },
    Permission(PermissionDef),
    DeletePermission {
        user: String,
        vhost: String,
    },
    /// The default vhost and user were created once (RabbitMQ's first boot):
    /// they are not recreated after an administrator deleted them.
    Initialized,
    TopicPermission(TopicPermissionDef),
    /// One exchange's topic permission, or (no exchange) all of the user's
    /// on the vhost.
    DeleteTopicPermission {
        user: String,
        vhost: String,
        exchange: Option<String>,
    },
    OperatorPolicy(PolicyDef),
    DeleteOperatorPolicy {
        vhost: String,
        name: String,
    },
    /// A vhost's limits, all of them (empty: none).
    VhostLimits {
        vhost: String,
        limits: LimitMap,
    },
    GlobalParameter {
        name: String,
        value: serde_json::Value,
    },
    DeleteGlobalParameter {
        name: String,
    },
}

/// Everything durable, as loaded at startup.
#[derive(Debug, Default, Clone)]
pub struct Definitions {
    pub exchanges: BTreeMap<(String, String), ExchangeDef>,
    pub queues: BTreeMap<(String, String), QueueDef>,
    pub bindings: BTreeSet<BindingDef>,
    pub policies: BTreeMap<(String, String), PolicyDef>,
    /// Vhosts created at runtime (or by a config file).
    pub vhosts: BTreeSet<String>,
    /// Users created or changed at runtime, by name.
    pub users: BTreeMap<String, User>,
    /// Permissions set at runtime, by (user, vhost).
    pub permissions: BTreeMap<(String, String), PermissionDef>,
    /// The first boot's defaults (vhost "/", guest) were created.
    pub initialized: bool,
    /// Topic permissions, by (user, vhost, exchange).
    pub topic_permissions: BTreeMap<(String, String, String), TopicPermissionDef>,
    pub operator_policies: BTreeMap<(String, String), PolicyDef>,
    /// Vhost limits (`max-connections`, `max-queues`), by vhost.
    pub vhost_limits: BTreeMap<String, LimitMap>,
    /// Global runtime parameters, by name.
    pub global_parameters: BTreeMap<String, serde_json::Value>,
}

impl Definitions {
    fn apply(&mut self, op: Op) {
        match op {
            Op::Exchange(e) => {
                self.exchanges.insert((e.vhost.clone(), e.name.clone()), e);
            }
            Op::DeleteExchange { vhost, name } => {
                self.exchanges.remove(&(vhost.clone(), name.clone()));
                self.bindings.retain(|b| {
                    !(b.vhost == vhost
                        && (b.source == name
                            || (b.destination_type == "exchange" && b.destination == name)))
                });
            }
            Op::Queue(q) => {
                self.queues.insert((q.vhost.clone(), q.name.clone()), q);
            }
            Op::DeleteQueue { vhost, name } => {
                self.queues.remove(&(vhost.clone(), name.clone()));
                self.bindings.retain(|b| {
                    !(b.vhost == vhost && b.destination_type == "queue" && b.destination == name)
                });
            }
            Op::Binding(b) => {
                self.bindings.insert(b);
            }
            Op::DeleteBinding(b) => {
                self.bindings.remove(&b);
            }
            Op::Policy(p) => {
                self.policies.insert((p.vhost.clone(), p.name.clone()), p);
            }
            Op::DeletePolicy { vhost, name } => {
                self.policies.remove(&(vhost, name));
            }
            Op::Vhost { name } => {
                self.vhosts.insert(name);
            }
            Op::DeleteVhost { name } => {
                self.vhosts.remove(&name);
                self.exchanges.retain(|(v, _), _| *v != name);
                self.queues.retain(|(v, _), _| *v != name);
                self.bindings.retain(|b| b.vhost != name);
                self.policies.retain(|(v, _), _| *v != name);
                self.permissions.retain(|(_, v), _| *v != name);
                self.topic_permissions.retain(|(_, v, _), _| *v != name);
                self.operator_policies.retain(|(v, _), _| *v != name);
                self.vhost_limits.remove(&name);
            }
            Op::User(u) => {
                self.users.insert(u.name.clone(), u);
            }
            Op::DeleteUser { name } => {
                self.users.remove(&name);
                self.permissions.retain(|(u, _), _| *u != name);
                self.topic_permissions.retain(|(u, _, _), _| *u != name);
            }
            Op::Permission(p) => {
                self.permissions
                    .insert((p.user.clone(), p.vhost.clone()), p);
            }
            Op::DeletePermission { user, vhost } => {
                self.permissions.remove(&(user, vhost));
            }
            Op::Initialized => self.initialized = true,
            Op::TopicPermission(t) => {
                let key = (t.user.clone(), t.vhost.clone(), t.exchange.clone());
                self.topic_permissions.insert(key, t);
            }
            Op::DeleteTopicPermission {
                user,
                vhost,
                exchange,
            } => self.topic_permissions.retain(|(u, v, x), _| {
                !(*u == user && *v == vhost && exchange.as_ref().is_none_or(|e| e == x))
            }),
            Op::OperatorPolicy(p) => {
                self.operator_policies
                    .insert((p.vhost.clone(), p.name.clone()), p);
            }
            Op::DeleteOperatorPolicy { vhost, name } => {
                self.operator_policies.remove(&(vhost, name));
            }
            Op::VhostLimits { vhost, limits } => {
                if limits.is_empty() {
                    self.vhost_limits.remove(&vhost);
                } else {
                    self.vhost_limits.insert(vhost, limits);
                }
            }
            Op::GlobalParameter { name, value } => {
                self.global_parameters.insert(name, value);
            }
            Op::DeleteGlobalParameter { name } => {
                self.global_parameters.remove(&name);
            }
        }
    }

    fn ops(&self) -> Vec<Op> {
        let mut ops: Vec<Op> = Vec::new();
        if self.initialized {
            ops.push(Op::Initialized);
        }
        ops.extend(
            self.vhosts
                .iter()
                .map(|name| Op::Vhost { name: name.clone() }),
        );
        ops.extend(self.users.values().cloned().map(Op::User));
        ops.extend(self.permissions.values().cloned().map(Op::Permission));
        ops.extend(self.exchanges.values().cloned().map(Op::Exchange));
        ops.extend(self.queues.values().cloned().map(Op::Queue));
        ops.extend(self.bindings.iter().cloned().map(Op::Binding));
        ops.extend(self.policies.values().cloned().map(Op::Policy));
        ops.extend(
            self.topic_permissions
                .values()
                .cloned()
                .map(Op::TopicPermission),
        );
        ops.extend(
            self.operator_policies
                .values()
                .cloned()
                .map(Op::OperatorPolicy),
        );
        ops.extend(self.vhost_limits.iter().map(|(v, l)| Op::VhostLimits {
            vhost: v.clone(),
            limits: l.clone(),
        }));
        ops.extend(
            self.global_parameters
                .iter()
                .map(|(n, v)| Op::GlobalParameter {
                    name: n.clone(),
                    value: v.clone(),
                }),
        );
        ops
    }

    /// Drop definitions of vhosts that are not (or no longer) recorded. A
    /// declare racing the deletion of its vhost can append one after the
    /// deletion; without this the vhost would come back at the next start.
    /// Only for data dirs that record their vhosts (`initialized`).
    fn drop_orphans(&mut self) -> usize {
        if !self.initialized {
            return 0;
        }
        let before =
            self.exchanges.len() + self.queues.len() + self.bindings.len() + self.policies.len();
        let vhosts = &self.vhosts;
        self.exchanges.retain(|(v, _), _| vhosts.contains(v));
        self.queues.retain(|(v, _), _| vhosts.contains(v));
        self.bindings.retain(|b| vhosts.contains(&b.vhost));
        self.policies.retain(|(v, _), _| vhosts.contains(v));
        self.operator_policies
            .retain(|(v, _), _| vhosts.contains(v));
        self.topic_permissions
            .retain(|(_, v, _), _| vhosts.contains(v));
        self.vhost_limits.retain(|v, _| vhosts.contains(v));
        before
            - (self.exchanges.len() + self.queues.len() + self.bindings.len() + self.policies.len())
    }

    pub fn max_queue_id(&self) -> u64 {
        let queues = self.queues.values().map(|q| q.id);
        queues
            .chain(self.exchanges.values().map(|e| e.delay_id))
            .max()
            .unwrap_or(0)
    }
}

pub struct DefinitionStore {
    path: PathBuf,
    file: Mutex<File>,
}

impl DefinitionStore {
    /// Load the definitions in `dir` and compact the file.
    pub fn open(dir: &Path) -> io::Result<(DefinitionStore, Definitions)> {
        fs::create_dir_all(dir)?;
        let path = dir.join("definitions.jsonl");
        let mut defs = Definitions::default();
        if let Ok(f) = File::open(&path) {
            for (n, line) in BufReader::new(f).lines().enumerate() {
                let line = line?;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<Op>(&line) {
                    Ok(op) => defs.apply(op),
                    // A torn last line after a crash: that change was never acknowledged.
                    Err(e) => {
                        warn!(line = n + 1, error = %e, "definitions: skipping unreadable line")
                    }
                }
            }
        }
        let orphans = defs.drop_orphans();
        if orphans > 0 {
            warn!(
                orphans,
                "definitions: dropped definitions of deleted vhosts"
            );
        }
        let tmp = dir.join("definitions.jsonl.tmp");
        {
            let mut f = File::create(&tmp)?;
            for op in defs.ops() {
                let mut line = serde_json::to_vec(&op).map_err(io::Error::other)?;
                line.push(b'\n');
                f.write_all(&line)?;
            }
            f.sync_all()?;
        }
        fs::rename(&tmp, &path)?;
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        let file = OpenOptions::new().append(true).open(&path)?;
        Ok((
            DefinitionStore {
                path,
                file: Mutex::new(file),
            },
            defs,
        ))
    }

    fn append(&self, op: Op) {
        let mut line = match serde_json::to_vec(&op) {
            Ok(l) => l,
            Err(e) => {
                warn!(error = %e, "definitions: cannot encode change");
                return;
            }
        };
        line.push(b'\n');
        let mut f = self.file.lock();
        if let Err(e) = f.write_all(&line).and_then(|_| f.sync_data()) {
            tracing::error!(path = %self.path.display(), error = %e, "definitions: write failed");
        }
    }

    pub fn save_exchange(&self, vhost: &str, name: &str, o: &ExchangeOptions, delay_id: u64) {
        self.append(Op::Exchange(ExchangeDef {
            vhost: vhost.into(),
            name: name.into(),
            kind: o.kind.as_str().into(),
            auto_delete: o.auto_delete,
            internal: o.internal,
            arguments: table_to_hex(&o.arguments),
            delay_id,
        }));
    }

    pub fn delete_exchange(&self, vhost: &str, name: &str) {
        self.append(Op::DeleteExchange {
            vhost: vhost.into(),
            name: name.into(),
        });
    }

    pub fn save_queue(&self, vhost: &str, name: &str, id: u64, o: &QueueOptions, owner: &str) {
        self.append(Op::Queue(QueueDef {
            vhost: vhost.into(),
            name: name.into(),
            id,
            auto_delete: o.auto_delete,
            arguments: table_to_hex(&o.arguments),
            owner: owner.into(),
        }));
    }

    pub fn delete_queue(&self, vhost: &str, name: &str) {
        self.append(Op::DeleteQueue {
            vhost: vhost.into(),
            name: name.into(),
        });
    }

    pub fn save_binding(&self, b: BindingDef) {
        self.append(Op::Binding(b));
    }

    pub fn delete_binding(&self, b: BindingDef) {
        self.append(Op::DeleteBinding(b));
    }

    pub fn save_policy(&self, p: &PolicyDef) {
        self.append(Op::Policy(p.clone()));
    }

    pub fn delete_policy(&self, vhost: &str, name: &str) {
        self.append(Op::DeletePolicy {
            vhost: vhost.into(),
            name: name.into(),
        });
    }
}

impl DefinitionStore {
    pub fn save_vhost(&self, name: &str) {
        self.append(Op::Vhost { name: name.into() });
    }

    pub fn delete_vhost(&self, name: &str) {
        self.append(Op::DeleteVhost { name: name.into() });
    }

    pub fn save_user(&self, user: &User) {
        self.append(Op::User(user.clone()));
    }

    pub fn delete_user(&self, name: &str) {
        self.append(Op::DeleteUser { name: name.into() });
    }

    pub fn save_permission(&self, p: &PermissionDef) {
        self.append(Op::Permission(p.clone()));
    }

    pub fn delete_permission(&self, user: &str, vhost: &str) {
        self.append(Op::DeletePermission {
            user: user.into(),
            vhost: vhost.into(),
        });
    }

    pub fn save_topic_permission(&self, t: &TopicPermissionDef) {
        self.append(Op::TopicPermission(t.clone()));
    }

    pub fn delete_topic_permission(&self, user: &str, vhost: &str, exchange: Option<&str>) {
        self.append(Op::DeleteTopicPermission {
            user: user.into(),
            vhost: vhost.into(),
            exchange: exchange.map(str::to_string),
        });
    }

    pub fn save_operator_policy(&self, p: &PolicyDef) {
        self.append(Op::OperatorPolicy(p.clone()));
    }

    pub fn delete_operator_policy(&self, vhost: &str, name: &str) {
        self.append(Op::DeleteOperatorPolicy {
            vhost: vhost.into(),
            name: name.into(),
        });
    }

    pub fn save_vhost_limits(&self, vhost: &str, limits: &LimitMap) {
        self.append(Op::VhostLimits {
            vhost: vhost.into(),
            limits: limits.clone(),
        });
    }

    pub fn save_global_parameter(&self, name: &str, value: &serde_json::Value) {
        self.append(Op::GlobalParameter {
            name: name.into(),
            value: value.clone(),
        });
    }

    pub fn delete_global_parameter(&self, name: &str) {
        self.append(Op::DeleteGlobalParameter { name: name.into() });
    }

    pub fn mark_initialized(&self) {
        self.append(Op::Initialized);
    }
}

pub fn table_to_hex(t: &FieldTable) -> String {
    if t.is_empty() {
        return String::new();
    }
    let mut v = Vec::new();
    t.encode(&mut v);
    v.iter().map(|b| format!("{:02x}", b)).collect()
}

pub fn table_from_hex(s: &str) -> FieldTable {
    if s.is_empty() {
        return FieldTable::new();
    }
    let bytes: Option<Vec<u8>> = (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
        .collect();
    bytes
        .and_then(|b| FieldTable::decode(&mut Bytes::from(b)).ok())
        .unwrap_or_default()
}

pub fn exchange_options(d: &ExchangeDef) -> Option<ExchangeOptions> {
    Some(ExchangeOptions {
        kind: ExchangeKind::parse(d.kind.as_bytes())?,
        durable: true,
        auto_delete: d.auto_delete,
        internal: d.internal,
        arguments: table_from_hex(&d.arguments),
    })
}

pub fn queue_options(d: &QueueDef) -> QueueOptions {
    QueueOptions {
        durable: true,
        exclusive: false,
        auto_delete: d.auto_delete,
        arguments: table_from_hex(&d.arguments),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_declare_after_its_vhost_was_deleted_does_not_bring_it_back() {
        let dir = std::env::temp_dir().join(format!("warren-defs-orphans-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        {
            let (store, _) = DefinitionStore::open(&dir).expect("open");
            store.mark_initialized();
            store.save_vhost("v");
            store.delete_vhost("v");
            // A declare that raced the deletion lands after it.
            let options = QueueOptions {
                durable: true,
                exclusive: false,
                auto_delete: false,
                arguments: Default::default(),
            };
            store.save_queue("v", "late", 7, &options, "");
        }
        let (_, defs) = DefinitionStore::open(&dir).expect("reopen");
        assert!(!defs.vhosts.contains("v"));
        assert!(defs.queues.is_empty());
        let _ = fs::remove_dir_all(&dir);
    }
}
