//! Durability across a broker crash (SIGKILL) and restart. These tests need
//! a private broker process, so they are skipped when `WARREN_TEST_URL`
//! points at an external broker.

use warren_tests::{
    bind_queue, exchange_exists,
    lapin::{
        options::{BasicGetOptions, ExchangeDeclareOptions, QueueDeclareOptions},
        types::FieldTable,
        BasicProperties, ExchangeKind,
    },
    queue_counts, timeout, unique, Broker,
};

fn skip_external() -> bool {
    if Broker::external_url().is_some() {
        eprintln!("skipped: needs a private broker (WARREN_TEST_URL is set)");
        return true;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_entities_and_persistent_messages_survive_kill() {
    if skip_external() {
        return;
    }
    let mut broker = Broker::spawn_own();
    let x = unique("durable-x");
    let q = unique("durable-q");
    let tq = unique("transient-q");
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.queue_declare(
            tq.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        bind_queue(&ch, &q, &x, "k").await;
        let persistent = BasicProperties::default()
            .with_delivery_mode(2)
            .with_message_id("p-1".into());
        let c = ch
            .basic_publish(
                x.as_str().into(),
                "k".into(),
                Default::default(),
                b"persistent",
                persistent,
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(c.is_ack());
        let c = ch
            .basic_publish(
                x.as_str().into(),
                "k".into(),
                Default::default(),
                b"transient",
                BasicProperties::default().with_delivery_mode(1),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert!(c.is_ack());
        assert_eq!(queue_counts(&conn, &q).await, Some((2, 0)));
    })
    .await;

    broker.kill();
    broker.restart();

    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        assert!(
            exchange_exists(&conn, &x).await,
            "durable exchange must survive"
        );
        assert_eq!(
            queue_counts(&conn, &q).await,
            Some((1, 0)),
            "only the persistent message survives"
        );
        let m = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("persistent message");
        assert_eq!(m.delivery.data, b"persistent");
        assert_eq!(
            m.delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str()),
            Some("p-1")
        );
        assert_eq!(
            queue_counts(&conn, &tq).await,
            None,
            "transient queue must not survive"
        );
        // the binding survived too
        warren_tests::publish(&ch, &x, "k", b"after restart").await;
        assert_eq!(
            warren_tests::get_body(&ch, &q).await.as_deref(),
            Some(&b"after restart"[..])
        );
    })
    .await;
}
