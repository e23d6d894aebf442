//! Codec hot paths: decoding a client's basic.publish (method, content header,
//! body frames) as the connection reader does, and encoding a publish and a
//! basic.deliver as clients and the connection writer do.
//!
//! Run with `cargo bench -p warren-amqp --bench codec`. Short measurements (2 s)
//! so it stays usable on a small machine. Decoding is measured over a buffer of
//! 1000 publishes (what one socket read holds under load), per message.

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use tokio_util::codec::Decoder;
use warren_amqp::codec::{
    write_content, write_method, BasicDeliver, BasicPublish, Frame, FrameDecoder, Method,
};
use warren_core::ShortStr;

const FRAME_MAX: u32 = 131_072;
const SIZES: [usize; 2] = [16, 4096];
const BATCH: usize = 1000;

fn publish() -> Method {
    Method::BasicPublish(BasicPublish {
        exchange: ShortStr::from("amq.direct"),
        routing_key: ShortStr::from("perf.queue.0"),
        ..Default::default()
    })
}

/// The broker builds a deliver from shared strings (the consumer's tag, the
/// message's exchange and key): cloning them is a reference-count increment.
fn deliver(tag: u64, ctag: &ShortStr, exchange: &ShortStr, key: &ShortStr) -> Method {
    Method::BasicDeliver(BasicDeliver {
        consumer_tag: ctag.clone(),
        delivery_tag: tag,
        redelivered: false,
        exchange: exchange.clone(),
        routing_key: key.clone(),
    })
}

/// delivery_mode 2, as a persistent publish carries.
const PROPS: &[u8] = &[0x10, 0x00, 2];

fn decode(c: &mut Criterion) {
    let mut g = c.benchmark_group("decode_publish");
    for size in SIZES {
        let body = vec![0x5a; size];
        let mut wire = BytesMut::new();
        for _ in 0..BATCH {
            write_method(&mut wire, 1, &publish());
            write_content(&mut wire, 1, 60, PROPS, &body, FRAME_MAX);
        }
        g.throughput(Throughput::Elements(BATCH as u64));
        g.bench_with_input(BenchmarkId::from_parameter(size), &wire, |b, wire| {
            let mut dec = FrameDecoder::new(FRAME_MAX);
            b.iter(|| {
                // The copy stands in for the socket read filling the buffer.
                let mut buf = BytesMut::from(&wire[..]);
                let mut frames = 0;
                while let Some(f) = dec.decode(&mut buf).expect("valid frames") {
                    if let Frame::Body(_, body) = &f {
                        black_box(body.len());
                    }
                    frames += 1;
                }
                assert_eq!(frames, 3 * BATCH);
            })
        });
    }
    g.finish();
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(1));
    for size in SIZES {
        let body = vec![0x5a; size];
        let mut out = BytesMut::with_capacity(1 << 20);
        let m = publish();
        g.bench_with_input(BenchmarkId::new("publish", size), &body, |b, body| {
            b.iter(|| {
                if out.len() > (1 << 20) - 8192 {
                    out.clear();
                }
                write_method(&mut out, 1, black_box(&m));
                write_content(&mut out, 1, 60, PROPS, body, FRAME_MAX);
            })
        });
        let mut tag = 0u64;
        let ctag = ShortStr::from("amq.ctag-8S0aA3rXjL_X9oZ2q5Q2Vw");
        let exchange = ShortStr::from("amq.direct");
        let key = ShortStr::from("perf.queue.0");
        g.bench_with_input(BenchmarkId::new("deliver", size), &body, |b, body| {
            b.iter(|| {
                if out.len() > (1 << 20) - 8192 {
                    out.clear();
                }
                tag += 1;
                write_method(&mut out, 1, &deliver(tag, &ctag, &exchange, &key));
                write_content(&mut out, 1, 60, PROPS, body, FRAME_MAX);
            })
        });
    }
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
    targets = decode, encode
}
criterion_main!(benches);
