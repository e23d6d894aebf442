//! The registry: listing, lookups, forced closes, traffic totals, and the
//! connection events it emits.

use super::{ConnectionInfo, CLOSED_VIA_MANAGEMENT};
use crate::stats::tests::{fixture, queue};
use crate::stats::{ConnectionField, ConnectionStats};
use crate::{BrokerError, FieldTable, FieldValue, ShortStr, VHost};
use std::net::SocketAddr;
use std::sync::Arc;

fn info(id: u64, peer_port: u16, vhost: &Arc<VHost>) -> ConnectionInfo {
    let peer: SocketAddr = ([127, 0, 0, 1], peer_port).into();
    let local: SocketAddr = ([127, 0, 0, 1], 5672).into();
    ConnectionInfo {
        id,
        name: format!("{} -> {}", peer, local),
        protocol: "AMQP 0-9-1".into(),
        protocol_term: "{0,9,1}".into(),
        kind: "network",
        user: "guest".into(),
        vhost: vhost.clone(),
        peer,
        local,
        connected_at: 1,
        client_properties: FieldTable::new(),
        auth_mechanism: Some("PLAIN".into()),
        heartbeat: 60,
        frame_max: 131072,
        channel_max: 2047,
        tls: None,
        stats: Arc::new(ConnectionStats::default()),
        channels: None,
    }
}

#[test]
fn lists_finds_and_closes_by_name() {
    let f = fixture("registry");
    let reg = &f.broker.connections;
    let b = reg.register(info(2, 40002, &f.vhost));
    let a = reg.register(info(1, 40001, &f.vhost));
    let ids: Vec<u64> = reg.list().iter().map(|c| c.id).collect();
    assert_eq!(ids, [1, 2]);
    let name = "127.0.0.1:40002 -> 127.0.0.1:5672";
    assert_eq!(reg.get_by_name(name).map(|c| c.id), Some(2));
    assert_eq!(
        reg.get(1).map(|c| c.name.clone()),
        Some(a.info().name.clone())
    );

    let forced = BrokerError::connection_forced(CLOSED_VIA_MANAGEMENT);
    assert!(reg.close_by_name(name, forced.clone()));
    assert!(!reg.close_by_name("nobody", forced.clone()));
    assert_eq!(b.closed.get(), Some(forced));
    assert_eq!(a.closed.get(), None);
    assert_eq!(
        b.closed.get().as_ref().map(|e| e.reply_text()),
        Some("CONNECTION_FORCED - Closed via management plugin".to_string())
    );

    drop(b);
    assert!(reg.get_by_name(name).is_none());
    assert_eq!(reg.len(), 1);
}

#[test]
fn a_vhost_keeps_the_traffic_of_closed_connections() {
    let f = fixture("traffic");
    let reg = &f.broker.connections;
    let a = reg.register(info(1, 40001, &f.vhost));
    let b = reg.register(info(2, 40002, &f.vhost));
    a.info().stats.received(100);
    b.info().stats.received(20);
    b.info().stats.sent(7);
    drop(b);
    let t = reg.vhost_totals(&f.vhost);
    assert_eq!(t.get(ConnectionField::RecvOct), 120);
    assert_eq!(t.get(ConnectionField::RecvCnt), 2);
    assert_eq!(t.get(ConnectionField::SendOct), 7);

    crate::stats::sampler::sample(&f.broker, std::time::Duration::from_secs(2));
    assert_eq!(a.info().stats.rate(ConnectionField::RecvOct), 50.0);
    assert_eq!(
        reg.vhost_totals(&f.vhost).rate(ConnectionField::RecvOct),
        60.0
    );
}

/// Headers of the events in `q`, by routing key.
fn events(q: &Arc<crate::Queue>) -> Vec<(String, FieldTable)> {
    let mut out = Vec::new();
    while let Some((m, _)) = q.get(true) {
        let props = m.message.decode_properties();
        out.push((
            m.message.routing_key.to_string(),
            props.headers.unwrap_or_default(),
        ));
    }
    out
}

#[test]
fn registering_emits_connection_events_for_any_protocol() {
    let f = fixture("events");
    let q = queue(&f.vhost, "events", FieldTable::new());
    f.vhost
        .bind_queue(
            &q.name,
            &ShortStr::from(crate::events::EVENT_EXCHANGE),
            ShortStr::from("connection.#"),
            FieldTable::new(),
            1,
        )
        .expect("bind");
    let mut stomp = info(9, 40009, &f.vhost);
    stomp.protocol = "STOMP 1.2".into();
    stomp.protocol_term = "{'STOMP',\"1.2\"}".into();
    stomp.kind = "direct";
    stomp.auth_mechanism = None;
    drop(f.broker.connections.register(stomp));

    let evs = events(&q);
    let keys: Vec<&str> = evs.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["connection.created", "connection.closed"]);
    let created = &evs[0].1;
    let text = |k: &str| {
        created
            .get(k)
            .and_then(|v| v.as_bytes())
            .map(|b| b.to_vec())
    };
    assert_eq!(text("protocol"), Some(b"{'STOMP',\"1.2\"}".to_vec()));
    assert_eq!(text("type"), Some(b"direct".to_vec()));
    assert_eq!(text("pid"), Some(b"<warren.9.0>".to_vec()));
    assert_eq!(text("user_who_performed_action"), Some(b"guest".to_vec()));
    assert_eq!(text("auth_mechanism"), Some(Vec::new()));
    assert_eq!(created.get("peer_port"), Some(&FieldValue::I64(40009)));
    assert_eq!(created.get("port"), Some(&FieldValue::I64(5672)));
    let closed = &evs[1].1;
    assert!(closed.get("user_who_performed_action").is_none());
    assert!(closed.get("vhost").is_none());
    assert_eq!(
        closed.get("pid").and_then(|v| v.as_bytes()),
        Some(&b"<warren.9.0>"[..])
    );
}
