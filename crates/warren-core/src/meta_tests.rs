//! The cluster seam without a cluster: a recording replicator stands in for
//! the Raft group, to check which changes the core hands it.

use crate::meta::{MetaOp, MetadataReplicator, ReplicateFuture, StatusFuture};
use crate::queue::ChannelRef;
use crate::{Consumer, ConsumerSink, FieldTable, FieldValue, Queue, QueueOptions, QueuedMessage};
use crate::{ShortStr, VHost};
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;

/// Records what it is asked to replicate, and succeeds.
#[derive(Default)]
struct Recorder {
    ops: Mutex<Vec<MetaOp>>,
}

impl MetadataReplicator for Recorder {
    fn replicate(&self, op: MetaOp) -> ReplicateFuture {
        self.ops.lock().push(op);
        Box::pin(async { Ok(()) })
    }
    fn node_name(&self) -> String {
        "n1".into()
    }
    fn change_member(&self, _node: String, _addr: Option<String>) -> ReplicateFuture {
        Box::pin(async { Ok(()) })
    }
    fn status(&self) -> StatusFuture {
        Box::pin(async { json!({}) })
    }
}

struct Null;

impl ConsumerSink for Null {
    fn offer(&self, _c: &Arc<Consumer>, _q: &Arc<Queue>, _m: &QueuedMessage) -> bool {
        false
    }
    fn cancelled(&self, _c: &Arc<Consumer>) {}
}

fn consumer() -> Arc<Consumer> {
    let channel = ChannelRef {
        connection: 7,
        number: 1,
    };
    Consumer::new(
        "c".into(),
        false,
        false,
        FieldTable::new(),
        channel,
        0,
        Arc::new(Null),
    )
}

fn opts(auto_delete: bool, arguments: FieldTable) -> QueueOptions {
    QueueOptions {
        durable: false,
        exclusive: false,
        auto_delete,
        arguments,
    }
}

fn declare(v: &VHost, name: &str, home: &str, opts: QueueOptions) -> Arc<Queue> {
    v.declare_homed_queue(ShortStr::from(name), opts, 0, home)
        .expect("declare")
        .0
}

fn deletes(r: &Recorder) -> Vec<String> {
    r.ops
        .lock()
        .iter()
        .filter_map(|op| match op {
            MetaOp::DeleteQueue { name, .. } => Some(name.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn a_queue_the_node_deletes_itself_is_deleted_cluster_wide() {
    let (broker, dir) = crate::testing::scratch_broker("meta-test", "retire");
    let r = Arc::new(Recorder::default());
    broker.set_replicator(r.clone());
    let v = broker.vhost("/").expect("vhost");
    let auto = opts(true, FieldTable::new());
    // A cluster-wide auto-delete queue (it has a home) loses its consumer.
    let q = declare(&v, "ad", "n1", auto.clone());
    let c = consumer();
    q.add_consumer(c.clone()).expect("consume");
    q.remove_consumer(&c);
    assert!(v.named_queue(b"ad").is_none());
    // A node-local one (no home) is only deleted here.
    let local = declare(&v, "local", "", auto);
    let c = consumer();
    local.add_consumer(c.clone()).expect("consume");
    local.remove_consumer(&c);
    assert!(v.named_queue(b"local").is_none());
    // An x-expires queue's lease runs out.
    let mut args = FieldTable::new();
    args.insert("x-expires", FieldValue::I64(50));
    declare(&v, "exp", "n1", opts(false, args));
    for _ in 0..100 {
        if deletes(&r).len() == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(deletes(&r), ["ad", "exp"]);
    assert!(v.named_queue(b"exp").is_none());
    // Waiting for the commit: proposed before it returns.
    let q = declare(&v, "now", "n1", opts(false, FieldTable::new()));
    v.retire_queue_now(&q).await;
    assert_eq!(deletes(&r), ["ad", "exp", "now"]);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn control_commands_map_to_replicated_ops() {
    let (broker, dir) = crate::testing::scratch_broker("meta-test", "control");
    let admin = ["administrator".to_string()];
    let ops = |tags: &[String], cmd: serde_json::Value| {
        crate::control_ops::replicated_ops(&broker, tags, cmd.to_string().as_bytes())
    };
    let add = json!({"command": "add_vhost", "name": "v1"});
    assert!(matches!(
        ops(&admin, add.clone()).as_deref(),
        Some([MetaOp::AddVhost { name, .. }]) if name == "v1"
    ));
    // Policymakers may not; an existing vhost is the local call's error.
    assert!(ops(&["policymaker".to_string()], add).is_none());
    assert!(ops(&admin, json!({"command": "add_vhost", "name": "/"})).is_none());
    // A user: its password hashed once, for every node.
    match ops(
        &admin,
        json!({"command": "add_user", "name": "u", "password": "p"}),
    )
    .as_deref()
    {
        Some(
            [MetaOp::PutUser {
                name,
                password_hash: Some(h),
                tags,
            }],
        ) => assert!(name == "u" && !h.is_empty() && h != "p" && tags.is_empty()),
        other => panic!("{other:?}"),
    }
    // Limits replace the vhost's: cleared, then each set; bad ones are not
    // replicated.
    let limits = json!({"command": "set_vhost_limits", "vhost": "/", "limits": {"max-queues": 3}});
    match ops(&admin, limits).as_deref() {
        Some(
            [MetaOp::SetVhostLimit { name: None, .. }, MetaOp::SetVhostLimit {
                name: Some(n),
                value: Some(v),
                ..
            }],
        ) => assert!(n == "max-queues" && v == &json!(3)),
        other => panic!("{other:?}"),
    }
    let bad = json!({"command": "set_vhost_limits", "vhost": "/", "limits": {"max-queues": "x"}});
    assert!(ops(&admin, bad).is_none());
    let policy = json!({"command": "set_policy", "vhost": "/", "name": "p", "pattern": "^a",
                        "definition": {"max-length": 1}});
    let set = ops(&["policymaker".to_string()], policy).expect("set_policy");
    // Applied, the policy is there; clearing it is replicated too.
    broker.apply_meta(&set[0]).expect("apply");
    let clear = json!({"command": "clear_policy", "vhost": "/", "name": "p"});
    assert!(matches!(
        ops(&admin, clear).as_deref(),
        Some([MetaOp::ClearPolicy { .. }])
    ));
    // Read-only commands and tracing stay local.
    assert!(ops(&admin, json!({"command": "list_vhosts"})).is_none());
    assert!(ops(&admin, json!({"command": "trace_on"})).is_none());
    let _ = std::fs::remove_dir_all(dir);
}
