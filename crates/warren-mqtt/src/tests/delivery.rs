//! Session-side logic without sockets: packet ids, the in-flight window,
//! the QoS 2 exchange, and when deliveries must be matched against filters.

use bytes::Bytes;

use crate::delivery::{Outgoing, QueueKind, Sub, SubTable};
use crate::packet::{QoS, SubscriptionOptions, Version};
use crate::writer::Outlet;

/// An outgoing window over a scratch broker (keep the guard alive as long
/// as the window: it removes the broker's directory).
fn outgoing(window: u16) -> (std::sync::Arc<Outgoing>, warren_core::testing::ScratchDir) {
    let (outlet, _rx) = Outlet::new();
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (broker, dir) = warren_core::testing::scratch_broker("mqtt", &format!("delivery{n}"));
    let vhost = broker.vhost("/").expect("default vhost");
    let origin = warren_core::trace::Origin {
        user: "guest".into(),
        connection: "test".into(),
        channel: 1,
    };
    let out = Outgoing::new(
        outlet,
        1,
        Version::V5,
        window,
        usize::MAX,
        vhost,
        std::sync::Arc::new(origin),
    );
    (out, dir)
}

#[test]
fn packet_ids_are_unique_and_the_window_is_enforced() {
    let (out, _dir) = outgoing(3);
    let ids: Vec<u16> = (0..3).filter_map(|_| out.reserve()).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(out.reserve(), None, "window of 3 is full");
    assert!(
        out.puback(2).is_none(),
        "a retained delivery has nothing to settle"
    );
    assert_eq!(
        out.reserve(),
        Some(4),
        "ids keep counting up, skipping ids in use"
    );
    assert_eq!(out.inflight_count(), 3);
}

#[test]
fn qos2_exchange_keeps_the_id_until_pubcomp() {
    let (out, _dir) = outgoing(10);
    let id = out.reserve().expect("room");
    let (known, taken) = out.pubrec(id);
    assert!(known && taken.is_none());
    assert_eq!(out.inflight_count(), 1, "released ids still count");
    // A PUBACK for a released id does not free it; PUBCOMP does.
    assert!(out.puback(id).is_none());
    assert_eq!(out.inflight_count(), 1);
    assert!(out.pubcomp(id));
    assert_eq!(out.inflight_count(), 0);
    assert!(!out.pubcomp(id), "second PUBCOMP: unknown");
    let (known, _) = out.pubrec(99);
    assert!(!known, "PUBREC for an unknown id");
    assert_eq!(out.inflight_count(), 0);
}

#[test]
fn close_hands_back_released_ids_for_the_next_connection() {
    let (out, _dir) = outgoing(10);
    let a = out.reserve().expect("room");
    let b = out.reserve().expect("room");
    out.pubrec(b);
    let (unacked, released) = out.close();
    assert!(unacked.is_empty(), "retained deliveries are not requeued");
    assert_eq!(released, vec![b]);
    let _ = a;
    let (next, _dir_next) = outgoing(10);
    next.restore_released(&released);
    assert!(next.pubcomp(b));
}

fn sub(filter: &str, qos: QoS, kind: QueueKind) -> Sub {
    Sub {
        filter: Bytes::copy_from_slice(filter.as_bytes()),
        options: SubscriptionOptions::qos(qos),
        id: None,
        kind,
    }
}

#[test]
fn plain_subscriptions_need_no_matching() {
    let t = SubTable::new(vec![
        sub("a/+", QoS::AtLeastOnce, QueueKind::Qos1),
        sub("b", QoS::AtMostOnce, QueueKind::Qos0),
    ]);
    assert!(!t.must_match(QueueKind::Qos0));
    assert!(!t.must_match(QueueKind::Qos1));
    // QoS 1 and QoS 2 subscriptions share the QoS 1 queue: which one a
    // message matched decides its QoS.
    let t = SubTable::new(vec![
        sub("a/+", QoS::AtLeastOnce, QueueKind::Qos1),
        sub("a/b", QoS::ExactlyOnce, QueueKind::Qos1),
    ]);
    assert!(t.must_match(QueueKind::Qos1));
    let mut with_id = sub("c", QoS::AtMostOnce, QueueKind::Qos0);
    with_id.id = Some(3);
    let t = SubTable::new(vec![with_id]);
    assert!(t.must_match(QueueKind::Qos0));
}
