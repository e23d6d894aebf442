//! Queue hot paths: enqueue and dequeue of a transient 16-byte message, with
//! nobody consuming (basic.get), with a backlog, and straight to an auto-ack
//! consumer (the publish -> deliver path every throughput run exercises).
//!
//! Run with `cargo bench -p warren-core --bench queue`. Short measurements (2 s)
//! so it stays usable on a small machine. The consumer's sink accepts every
//! offer and does nothing else, so what is measured is the queue: its lock,
//! storage push/pop and consumer selection, not an adapter's encoding.

use bytes::Bytes;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::sync::Arc;
use std::time::Duration;
use warren_core::{
    Broker, Consumer, ConsumerSink, FieldTable, Message, Queue, QueueOptions, QueuedMessage,
    ShortStr,
};

/// A broker over a throwaway data directory (the queues here are transient,
/// but the broker always has a store).
struct Fixture {
    _broker: Arc<Broker>,
    queue: Arc<Queue>,
    _dir: warren_core::testing::ScratchDir,
}

fn fixture(name: &str) -> Fixture {
    let (broker, dir) = warren_core::testing::scratch_broker("bench-queue", name);
    let vhost = broker.ensure_vhost("/");
    let (queue, _) = vhost
        .declare_queue(
            Some(ShortStr::from(name)),
            QueueOptions {
                durable: false,
                exclusive: false,
                auto_delete: false,
                arguments: FieldTable::new(),
            },
            false,
            1,
        )
        .expect("declare queue");
    Fixture {
        _broker: broker,
        queue,
        _dir: dir,
    }
}

fn message(size: usize) -> Arc<Message> {
    Message::new(
        ShortStr::from("amq.direct"),
        ShortStr::from("bench"),
        Bytes::from_static(&[0, 0]),
        Bytes::from(vec![0x5a; size]),
    )
}

/// Takes every message, like an auto-ack consumer with room in its socket.
struct AcceptAll;

impl ConsumerSink for AcceptAll {
    fn offer(&self, _c: &Arc<Consumer>, _q: &Arc<Queue>, msg: &QueuedMessage) -> bool {
        black_box(msg);
        true
    }
    fn cancelled(&self, _c: &Arc<Consumer>) {}
}

fn enqueue_dequeue(c: &mut Criterion) {
    let mut g = c.benchmark_group("queue");
    let msg = message(16);

    let f = fixture("one");
    g.throughput(Throughput::Elements(1));
    g.bench_function("enqueue_dequeue_16B", |b| {
        b.iter(|| {
            f.queue.publish(msg.clone());
            black_box(f.queue.get(true))
        })
    });

    let f = fixture("backlog");
    for depth in [1_000u64, 100_000] {
        g.throughput(Throughput::Elements(depth));
        g.bench_with_input(
            BenchmarkId::new("enqueue_then_drain_16B", depth),
            &depth,
            |b, &depth| {
                b.iter(|| {
                    for _ in 0..depth {
                        f.queue.publish(msg.clone());
                    }
                    while let Some(m) = f.queue.get(true) {
                        black_box(m);
                    }
                })
            },
        );
    }

    let f = fixture("consumed");
    let consumer = Consumer::new(
        ShortStr::from("ctag"),
        true,
        false,
        FieldTable::new(),
        warren_core::queue::ChannelRef {
            connection: 1,
            number: 1,
        },
        0,
        Arc::new(AcceptAll),
    );
    f.queue
        .add_consumer(consumer.clone())
        .expect("add consumer");
    consumer.activate();
    g.throughput(Throughput::Elements(1));
    g.bench_function("publish_to_auto_ack_consumer_16B", |b| {
        b.iter(|| f.queue.publish(msg.clone()))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! {
    name = benches;
    config = config();
    targets = enqueue_dequeue
}
criterion_main!(benches);
