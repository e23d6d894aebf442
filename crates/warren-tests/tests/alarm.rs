//! Resource alarms as lapin sees them: with the memory high watermark below
//! what the broker already uses, a publishing connection gets
//! `connection.blocked` (lapin's `ConnectionBlocked` event and
//! `status().blocked()`), its publishes are held, and consumers keep working.
//! (Unblocking after a drain is covered by tests/python/durability/test_alarm.py.)

use futures_lite::StreamExt;
use warren_tests::{
    lapin::{
        options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions},
        types::FieldTable,
        BasicProperties, Event,
    },
    timeout, unique, Broker,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_is_blocked_by_memory_alarm() {
    if Broker::external_url().is_some() {
        eprintln!("skipped: needs a private broker (WARREN_TEST_URL is set)");
        return;
    }
    let broker = Broker::spawn_with_config("[resources]\nmemory_high_watermark_bytes = 1\n");
    let q = unique("alarm-q");
    timeout(async {
        let publisher = broker.connect().await;
        let mut events = publisher.events_listener();
        let ch = publisher.create_channel().await.unwrap();
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        // Publishing is what gets a connection blocked, as in RabbitMQ.
        let _ = ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions::default(),
                b"while alarmed",
                BasicProperties::default(),
            )
            .await;
        loop {
            match events.next().await {
                Some(Event::ConnectionBlocked(reason)) => {
                    assert!(reason.contains("memory"), "reason: {reason}");
                    break;
                }
                Some(_) => continue,
                None => panic!("event stream ended without connection.blocked"),
            }
        }
        assert!(publisher.status().blocked());
        // Another (non-publishing) connection still consumes. The publish that
        // got the connection blocked was itself accepted, as in RabbitMQ.
        let (_c2, ch2) = broker.channel().await;
        let got = ch2
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap();
        assert_eq!(
            got.map(|m| m.delivery.data),
            Some(b"while alarmed".to_vec())
        );
    })
    .await;
}
