//! Stream queues through lapin: a 1,000,000-message stream replays from
//! `first` with every offset once, in order, each body where it was put.

use futures_lite::StreamExt;
use warren_tests::{
    lapin::{
        options::{
            BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
            QueueDeclareOptions,
        },
        types::{AMQPValue, FieldTable},
        BasicProperties,
    },
    timeout_secs, unique, Broker,
};

const MESSAGES: u64 = 1_000_000;

fn stream_args() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("stream".into()),
    );
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_a_million_messages_has_no_gaps() {
    let broker = Broker::start();
    let q = unique("stream-1m");
    timeout_secs(900, async {
        let (_conn, ch) = broker.confirm_channel().await;
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            stream_args(),
        )
        .await
        .expect("declare stream");
        // Pipelined publishes; every 10,000 wait for the confirms.
        for batch in 0..MESSAGES / 10_000 {
            let mut confirms = Vec::with_capacity(10_000);
            for i in batch * 10_000..(batch + 1) * 10_000 {
                confirms.push(
                    ch.basic_publish(
                        "".into(),
                        q.as_str().into(),
                        BasicPublishOptions::default(),
                        &i.to_le_bytes(),
                        BasicProperties::default(),
                    )
                    .await
                    .expect("publish"),
                );
            }
            for c in confirms {
                assert!(c.await.expect("confirm").is_ack());
            }
        }

        let (_c2, rx) = broker.channel().await;
        rx.basic_qos(2000, BasicQosOptions::default())
            .await
            .unwrap();
        let mut args = FieldTable::default();
        args.insert(
            "x-stream-offset".into(),
            AMQPValue::LongString("first".into()),
        );
        let mut consumer = rx
            .basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                args,
            )
            .await
            .expect("consume");
        let mut expected = 0u64;
        while expected < MESSAGES {
            let d = consumer
                .next()
                .await
                .expect("consumer ended")
                .expect("delivery");
            let offset = d
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get("x-stream-offset").cloned());
            assert_eq!(
                offset,
                Some(AMQPValue::LongLongInt(expected as i64)),
                "offset header"
            );
            assert_eq!(d.data, expected.to_le_bytes(), "body at offset {expected}");
            expected += 1;
            if expected.is_multiple_of(1000) {
                d.ack(BasicAckOptions { multiple: true }).await.unwrap();
            }
        }
    })
    .await;
}
