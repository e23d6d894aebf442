//! Topic permissions, limits, operator policies and global parameters
//! survive a restart (twice: the replay and the compacted rewrite), go with
//! their vhost or user, and are enforced by the core.

use crate::broker::{Broker, Limits};
use crate::policy::PolicyDef;
use crate::queue::QueueOptions;
use crate::shortstr::ShortStr;
use crate::topic_permissions::TopicPermissionDef;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "warren-runtime-{}-{}-{}",
        name,
        std::process::id(),
        crate::queue::now_ms()
    ));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn open(dir: &Path) -> Arc<Broker> {
    let b =
        Broker::open(dir, Limits::default(), &crate::store::LogOptions::default()).expect("open");
    b.create_defaults_once(true);
    b
}

fn topic(user: &str, vhost: &str) -> TopicPermissionDef {
    TopicPermissionDef {
        user: user.into(),
        vhost: vhost.into(),
        exchange: "amq.topic".into(),
        write: "^{username}\\.".into(),
        read: ".*".into(),
    }
}

fn operator_policy(vhost: &str) -> PolicyDef {
    PolicyDef {
        vhost: vhost.into(),
        name: "cap".into(),
        pattern: "^capped".into(),
        apply_to: "queues".into(),
        priority: 0,
        definition: json!({"max-length": 2})
            .as_object()
            .cloned()
            .unwrap_or_default(),
    }
}

#[test]
fn runtime_definitions_survive_restarts_and_go_with_their_owner() {
    let dir = temp_dir("reopen");
    {
        let b = open(&dir);
        b.add_vhost("v").expect("vhost");
        b.add_user("u", "p").expect("user");
        assert!(b.set_topic_permission(topic("u", "v")).expect("topic"));
        b.set_vhost_limit("v", "max-queues", &json!(7))
            .expect("limit");
        b.set_user_limit("u", "max-channels", &json!(3))
            .expect("user limit");
        let v = b.vhost("v").expect("v");
        v.set_operator_policy(operator_policy("v"), true)
            .expect("op");
        assert!(b.set_global_parameter("g", json!({"a": 1})));
        // Errors: unknown names, bad values.
        assert!(b.set_topic_permission(topic("nobody", "v")).is_err());
        assert!(b.set_vhost_limit("v", "max-foo", &json!(1)).is_err());
        assert!(b
            .set_user_limit("nobody", "max-channels", &json!(1))
            .is_err());
    }
    for _ in 0..2 {
        let b = open(&dir);
        assert_eq!(b.list_topic_permissions(None, None), vec![topic("u", "v")]);
        let v = b.vhost("v").expect("v");
        assert_eq!(v.limits().get("max-queues"), Some(&7));
        assert_eq!(b.user("u").expect("u").limits.get("max-channels"), Some(&3));
        assert_eq!(v.operator_policies(), vec![operator_policy("v")]);
        assert_eq!(
            b.global_parameters(),
            vec![("g".to_string(), json!({"a": 1}))]
        );
    }
    {
        let b = open(&dir);
        b.delete_vhost("v").expect("delete vhost");
        b.add_vhost("v").expect("again");
        b.delete_user("u").expect("delete user");
        b.add_user("u", "p").expect("again");
        assert!(b.clear_global_parameter("g"));
    }
    let b = open(&dir);
    assert!(b.list_topic_permissions(None, None).is_empty());
    let v = b.vhost("v").expect("v");
    assert!(v.limits().is_empty() && v.operator_policies().is_empty());
    assert!(b.user("u").expect("u").limits.is_empty());
    assert!(b.global_parameters().is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn max_queues_refuses_new_queues_and_operator_policies_cap_lengths() {
    let dir = temp_dir("enforce");
    let b = open(&dir);
    let v = b.vhost("/").expect("/");
    let declare = |name: &str, args: crate::FieldTable| {
        v.declare_queue(
            Some(ShortStr::from(name)),
            QueueOptions {
                durable: false,
                exclusive: false,
                auto_delete: false,
                arguments: args,
            },
            false,
            0,
        )
    };
    let existing = v.queues().len();
    b.set_vhost_limit("/", "max-queues", &json!(existing + 1))
        .expect("limit");
    declare("capped-q", Default::default()).expect("under the limit");
    declare("capped-q", Default::default()).expect("redeclare is no new queue");
    let e = declare("other", Default::default()).expect_err("limit");
    assert_eq!(e.code, 406);
    assert_eq!(
        e.text,
        format!(
            "cannot declare queue 'other': queue limit in vhost '/' ({}) is reached",
            existing + 1
        )
    );
    b.clear_vhost_limit("/", None).expect("clear");
    v.set_operator_policy(operator_policy("/"), true)
        .expect("operator policy");
    let q = v.named_queue(b"capped-q").expect("queue");
    assert_eq!(q.args().max_length, Some(2));
    let bad = PolicyDef {
        definition: json!({"dead-letter-exchange": "x"})
            .as_object()
            .cloned()
            .unwrap_or_default(),
        ..operator_policy("/")
    };
    let e = v.set_operator_policy(bad, true).expect_err("not a limit");
    assert!(
        e.text.contains("are not recognised policy settings"),
        "{}",
        e.text
    );
    let _ = std::fs::remove_dir_all(&dir);
}
