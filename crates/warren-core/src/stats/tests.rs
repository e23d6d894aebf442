//! The counters as the message path leaves them, vhost and broker totals,
//! and the sampler's rates.

use super::{sampler, ExchangeField, MessageField, MessageSnapshot, MESSAGE_FIELDS};
use crate::queue::ChannelRef;
use crate::{
    Broker, Consumer, ConsumerSink, Exchange, ExchangeKind, ExchangeOptions, FieldTable,
    FieldValue, Message, Queue, QueueOptions, QueuedMessage, ShortStr, VHost,
};
use bytes::Bytes;
use parking_lot::Mutex;
use std::sync::Arc;
use std::time::Duration;

pub(crate) struct Fixture {
    pub broker: Arc<Broker>,
    pub vhost: Arc<VHost>,
    _dir: crate::testing::ScratchDir,
}

pub(crate) fn fixture(name: &str) -> Fixture {
    let (broker, dir) = crate::testing::scratch_broker("stats-test", name);
    let vhost = broker.ensure_vhost("/");
    Fixture {
        broker,
        vhost,
        _dir: dir,
    }
}

pub(crate) fn queue(v: &VHost, name: &str, arguments: FieldTable) -> Arc<Queue> {
    let opts = QueueOptions {
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments,
    };
    v.declare_queue(Some(ShortStr::from(name)), opts, false, 1)
        .expect("declare queue")
        .0
}

fn publish(v: &VHost, exchange: &Arc<Exchange>, key: &str, body: &'static [u8]) {
    let m = Message::new(
        exchange.name.clone(),
        ShortStr::from(key),
        Bytes::new(),
        Bytes::from_static(body),
    );
    v.publish(exchange, m, &mut Vec::new());
}

fn default_exchange(v: &VHost) -> Arc<Exchange> {
    v.exchange(b"").expect("default exchange")
}

/// Takes every message offered, keeping them to settle later.
#[derive(Default)]
struct Taker {
    taken: Mutex<Vec<QueuedMessage>>,
}

impl ConsumerSink for Taker {
    fn offer(&self, _c: &Arc<Consumer>, _q: &Arc<Queue>, m: &QueuedMessage) -> bool {
        self.taken.lock().push(m.clone());
        true
    }
    fn cancelled(&self, _c: &Arc<Consumer>) {}
}

fn consume(q: &Arc<Queue>, tag: &str, no_ack: bool, sink: Arc<Taker>) -> Arc<Consumer> {
    let c = Consumer::new(
        ShortStr::from(tag),
        no_ack,
        false,
        FieldTable::new(),
        ChannelRef {
            connection: 7,
            number: 3,
        },
        5,
        sink,
    );
    q.add_consumer(c.clone()).expect("add consumer");
    c.activate();
    q.deliver();
    c
}

fn counts(s: &MessageSnapshot) -> [u64; MESSAGE_FIELDS] {
    let mut out = [0; MESSAGE_FIELDS];
    for (i, (_, v, _)) in s.iter().enumerate() {
        out[i] = v;
    }
    out
}

#[test]
fn a_queue_counts_what_happens_to_its_messages() {
    let f = fixture("queue");
    let q = queue(&f.vhost, "q", FieldTable::new());
    let x = default_exchange(&f.vhost);
    for _ in 0..3 {
        publish(&f.vhost, &x, "q", b"abc");
    }
    let d = q.depth();
    assert_eq!((d.messages_ready, d.message_bytes_ready), (3, 9));

    let (got, _) = q.get(false).expect("get");
    q.get(true).expect("get no-ack");
    let d = q.depth();
    assert_eq!(
        (d.messages_unacknowledged, d.message_bytes_unacknowledged),
        (1, 3)
    );
    q.requeue([got]);
    assert_eq!(q.depth().message_bytes_unacknowledged, 0);

    // The consumer gets the requeued message (a redelivery) and the last one.
    let sink = Arc::new(Taker::default());
    consume(&q, "c", false, sink.clone());
    let d = q.depth();
    assert_eq!((d.messages_ready, d.messages_unacknowledged), (0, 2));
    assert_eq!((d.messages(), d.message_bytes()), (2, 6));
    let taken = std::mem::take(&mut *sink.taken.lock());
    q.settle(&taken);
    assert!(q.get(true).is_none());
    assert_eq!(
        q.depth(),
        crate::queue::QueueDepth {
            consumers: 1,
            ..Default::default()
        }
    );

    let s = q.message_stats();
    // publish, deliver, deliver_no_ack, get, get_no_ack, get_empty, ack, redeliver
    assert_eq!(counts(&s), [3, 2, 0, 1, 1, 1, 2, 1]);
    assert_eq!(s.deliver_get(), 4);
    let e = x.message_stats();
    assert_eq!(
        (
            e.get(ExchangeField::PublishIn),
            e.get(ExchangeField::PublishOut)
        ),
        (3, 3)
    );
}

#[test]
fn auto_ack_deliveries_count_as_deliver_no_ack() {
    let f = fixture("no-ack");
    let q = queue(&f.vhost, "q", FieldTable::new());
    consume(&q, "c", true, Arc::new(Taker::default()));
    publish(&f.vhost, &default_exchange(&f.vhost), "q", b"x");
    let s = q.message_stats();
    assert_eq!(
        (
            s.get(MessageField::DeliverNoAck),
            s.get(MessageField::Deliver)
        ),
        (1, 0)
    );
    assert_eq!(q.depth().messages(), 0);
}

#[test]
fn consumers_are_listed_with_their_channel_and_activity() {
    let f = fixture("consumers");
    let plain = queue(&f.vhost, "plain", FieldTable::new());
    consume(&plain, "a", false, Arc::new(Taker::default()));
    let info = plain.consumers_info();
    assert_eq!(info.len(), 1);
    let c = &info[0];
    assert_eq!(
        (c.consumer_tag.to_string(), c.ack_required, c.exclusive),
        ("a".to_string(), true, false)
    );
    assert_eq!(
        (c.prefetch_count, c.active, c.activity_status),
        (5, true, "up")
    );
    assert_eq!(
        c.channel,
        ChannelRef {
            connection: 7,
            number: 3
        }
    );

    let mut args = FieldTable::new();
    args.insert("x-single-active-consumer", FieldValue::Bool(true));
    let sac = queue(&f.vhost, "sac", args);
    consume(&sac, "first", false, Arc::new(Taker::default()));
    consume(&sac, "second", true, Arc::new(Taker::default()));
    let status: Vec<(String, bool, &str)> = sac
        .consumers_info()
        .into_iter()
        .map(|c| (c.consumer_tag.to_string(), c.active, c.activity_status))
        .collect();
    assert_eq!(
        status,
        [
            ("first".to_string(), true, "single_active"),
            ("second".to_string(), false, "waiting")
        ]
    );
}

#[test]
fn vhost_totals_count_publishes_once_and_outlive_deleted_objects() {
    let f = fixture("vhost");
    let v = &f.vhost;
    let fanout = v
        .declare_exchange(
            ShortStr::from("fan"),
            ExchangeOptions {
                kind: ExchangeKind::Fanout,
                durable: false,
                auto_delete: false,
                internal: false,
                arguments: FieldTable::new(),
            },
            false,
        )
        .expect("declare exchange");
    for name in ["a", "b", "c"] {
        queue(v, name, FieldTable::new());
        v.bind_queue(
            &ShortStr::from(name),
            &fanout.name,
            ShortStr::from(""),
            FieldTable::new(),
            1,
        )
        .expect("bind");
    }
    publish(v, &fanout, "", b"12345");
    publish(v, &fanout, "", b"12345");
    let e = fanout.message_stats();
    assert_eq!(
        (
            e.get(ExchangeField::PublishIn),
            e.get(ExchangeField::PublishOut)
        ),
        (2, 6)
    );
    // Each queue enqueued 2, but the vhost counts what clients published.
    let a = v.queue(b"a").expect("queue a");
    assert_eq!(a.message_stats().get(MessageField::Publish), 2);
    a.get(true).expect("get");
    let s = v.message_stats();
    assert_eq!(
        (s.get(MessageField::Publish), s.get(MessageField::GetNoAck)),
        (2, 1)
    );

    v.delete_queue(&ShortStr::from("a"), false, false, 1)
        .expect("delete queue");
    v.delete_exchange(&fanout.name, false)
        .expect("delete exchange");
    let s = v.message_stats();
    assert_eq!(
        (s.get(MessageField::Publish), s.get(MessageField::GetNoAck)),
        (2, 1),
        "deleted objects' counts stay in the totals"
    );
    assert_eq!(v.exchange_totals().get(ExchangeField::PublishOut), 6);
    assert_eq!(f.broker.message_stats(), s);
}

#[test]
fn the_sampler_stores_rates_next_to_the_counters() {
    let f = fixture("sampler");
    let q = queue(&f.vhost, "q", FieldTable::new());
    let x = default_exchange(&f.vhost);
    for _ in 0..10 {
        publish(&f.vhost, &x, "q", b"m");
    }
    sampler::sample(&f.broker, Duration::from_secs(2));
    assert_eq!(q.message_stats().rate(MessageField::Publish), 5.0);
    assert_eq!(x.message_stats().rate(ExchangeField::PublishIn), 5.0);
    assert_eq!(f.vhost.message_stats().rate(MessageField::Publish), 5.0);
    assert_eq!(f.broker.message_stats().rate(MessageField::Publish), 5.0);

    // Deleting the queue does not make the vhost's rate negative or jump.
    q.get(true).expect("get");
    f.vhost.remove_queue(&q);
    sampler::sample(&f.broker, Duration::from_secs(1));
    let v = f.vhost.message_stats();
    assert_eq!(
        (
            v.rate(MessageField::Publish),
            v.rate(MessageField::GetNoAck)
        ),
        (0.0, 1.0)
    );
    sampler::sample(&f.broker, Duration::from_secs(1));
    assert_eq!(f.vhost.message_stats().rate(MessageField::GetNoAck), 0.0);
}

/// What a sampling round costs with many queues (run in release:
/// `cargo test --release -p warren-core -- --ignored sampling_cost`).
#[test]
#[ignore]
fn sampling_cost_with_100k_queues() {
    let f = fixture("sampling-cost");
    let x = default_exchange(&f.vhost);
    for i in 0..100_000 {
        let name = format!("q{i}");
        queue(&f.vhost, &name, FieldTable::new());
        if i % 10 == 0 {
            publish(&f.vhost, &x, &name, b"m");
        }
    }
    for round in 0..3 {
        let t = std::time::Instant::now();
        sampler::sample(&f.broker, Duration::from_secs(5));
        eprintln!("round {round}: {:?}", t.elapsed());
    }
}

#[test]
fn global_totals_keep_what_deleted_vhosts_counted() {
    let f = fixture("global");
    f.broker.add_vhost("gone").expect("vhost");
    let v = f.broker.vhost("gone").expect("gone");
    // Dead-letter one message (x-message-ttl 0, no dead-letter exchange).
    let mut args = FieldTable::new();
    args.insert("x-message-ttl", crate::FieldValue::I64(0));
    let q = queue(&v, "q", args);
    let x = default_exchange(&v);
    publish(&v, &x, "q", b"m");
    publish(&v, &x, "nowhere", b"m");
    std::thread::sleep(Duration::from_millis(5));
    assert!(q.get(true).is_none(), "expired");
    let before = f.broker.global_totals();
    assert_eq!(before.messages.get(MessageField::Publish), 2);
    assert_eq!(before.dead_lettered[0].iter().sum::<u64>(), 1);
    f.broker.delete_vhost("gone").expect("delete");
    let after = f.broker.global_totals();
    assert_eq!(after, before, "a deleted vhost's counts stay in the node's");
}
