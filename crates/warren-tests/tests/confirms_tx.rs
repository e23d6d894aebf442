//! Publisher confirms (confirm.select) and transactions (tx.*).

use warren_tests::{
    codes::*,
    exclusive_queue, expect_code, expect_connection_usable,
    lapin::{
        options::{BasicAckOptions, BasicGetOptions, BasicPublishOptions},
        BasicProperties, Confirmation,
    },
    publish, queue_counts,
    raw::{Args, RawConn, FRAME_BODY},
    timeout, unique, Broker,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_publishes_are_acked() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let q = exclusive_queue(&ch).await;
        ch.confirm_select(Default::default()).await.unwrap();
        assert!(ch.status().confirm());
        // selecting again is fine
        ch.confirm_select(Default::default())
            .await
            .expect("confirm.select twice");
        let mut pending = Vec::new();
        for i in 0..20u8 {
            pending.push(
                ch.basic_publish(
                    "".into(),
                    q.as_str().into(),
                    Default::default(),
                    &[i],
                    Default::default(),
                )
                .await
                .unwrap(),
            );
        }
        for p in pending {
            let c = p.await.unwrap();
            assert_eq!(c, Confirmation::Ack(None));
        }
        assert!(ch.wait_for_confirms().await.unwrap().is_empty());
        assert_eq!(queue_counts(&conn, &q).await, Some((20, 0)));
        // unroutable but not mandatory: still acked
        let c = ch
            .basic_publish(
                "".into(),
                unique("nowhere").as_str().into(),
                Default::default(),
                b"x",
                Default::default(),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(c, Confirmation::Ack(None));
    })
    .await
}

/// The raw view: confirm.select-ok, then basic.ack frames whose delivery
/// tags count publishes from 1 (acks may be batched with `multiple`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_acks_count_publishes_from_one() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        let q = unique("raw-confirm");
        c.declare_exclusive_queue(1, &q).await;
        c.send_method(1, (85, 10), Args::new().bits(&[false]).build())
            .await;
        c.expect_method(1, (85, 11)).await;
        for _ in 0..3 {
            let mut bytes = RawConn::publish_frame(1, &q);
            bytes.extend(warren_tests::raw::header_frame(1, 1));
            bytes.extend(warren_tests::raw::frame(FRAME_BODY, 1, b"x"));
            c.send(&bytes).await;
        }
        let mut acked = 0u64;
        while acked < 3 {
            let f = c.expect_method(1, (60, 80)).await;
            let mut r = f.args();
            let tag = r.u64();
            let multiple = r.u8() & 1 == 1;
            assert!(tag > acked && tag <= 3, "ack tag {tag} after {acked}");
            if !multiple {
                assert_eq!(tag, acked + 1, "single ack must be for the next tag");
            }
            acked = tag;
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_unroutable_in_confirm_mode_is_returned_then_acked() {
    let broker = Broker::start();
    timeout(async {
        let (_conn, ch) = broker.confirm_channel().await;
        let key = unique("nowhere");
        let c = ch
            .basic_publish(
                "".into(),
                key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                b"bounce",
                BasicProperties::default().with_correlation_id("c-1".into()),
            )
            .await
            .unwrap()
            .await
            .unwrap();
        match c {
            Confirmation::Ack(Some(ret)) => {
                assert_eq!(ret.reply_code, NO_ROUTE);
                assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
                assert_eq!(ret.delivery.routing_key.as_str(), key);
                assert_eq!(ret.delivery.data, b"bounce");
                assert_eq!(
                    ret.delivery
                        .properties
                        .correlation_id()
                        .as_ref()
                        .map(|s| s.as_str()),
                    Some("c-1")
                );
            }
            other => panic!("expected ack carrying the returned message, got {other:?}"),
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_select_on_confirm_channel_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let res = ch.tx_select().await;
        let text = expect_code(res, PRECONDITION_FAILED);
        assert!(text.starts_with("PRECONDITION_FAILED"), "{text}");
        assert!(!ch.status().connected());
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_select_on_tx_channel_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        ch.tx_select().await.unwrap();
        let res = ch.confirm_select(Default::default()).await;
        expect_code(res, PRECONDITION_FAILED);
        assert!(!ch.status().connected());
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_commit_and_rollback_of_publishes() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let q = exclusive_queue(&ch).await;
        ch.tx_select().await.unwrap();
        // selecting again is fine
        ch.tx_select().await.expect("tx.select twice");
        publish(&ch, "", &q, b"t1").await;
        publish(&ch, "", &q, b"t2").await;
        // make sure the broker has seen the publishes before looking
        ch.basic_qos(0, Default::default()).await.unwrap();
        assert!(
            ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
                .is_none(),
            "uncommitted publishes must not be visible"
        );
        ch.tx_commit().await.unwrap();
        publish(&ch, "", &q, b"t3").await;
        ch.tx_rollback().await.unwrap();
        ch.tx_commit().await.expect("empty commit");
        let got = warren_tests::drain(&ch, &q).await;
        assert_eq!(
            got,
            vec![b"t1".to_vec(), b"t2".to_vec()],
            "rolled-back publish must be discarded"
        );
        // the channel stays transactional and usable
        publish(&ch, "", &q, b"t4").await;
        ch.tx_commit().await.unwrap();
        assert_eq!(warren_tests::drain(&ch, &q).await, vec![b"t4".to_vec()]);
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_publishes_invisible_to_other_connections_until_commit() {
    let broker = Broker::start();
    timeout(async {
        let observer = broker.connect().await;
        let (conn, ch) = broker.channel().await;
        let q = unique("tx-visible");
        ch.queue_declare(q.as_str().into(), Default::default(), Default::default())
            .await
            .unwrap();
        ch.tx_select().await.unwrap();
        publish(&ch, "", &q, b"a").await;
        publish(&ch, "", &q, b"b").await;
        ch.basic_qos(0, Default::default()).await.unwrap();
        assert_eq!(queue_counts(&observer, &q).await, Some((0, 0)));
        ch.tx_commit().await.unwrap();
        assert_eq!(
            queue_counts(&observer, &q).await,
            Some((2, 0)),
            "commit-ok means enqueued"
        );
        publish(&ch, "", &q, b"c").await;
        ch.tx_rollback().await.unwrap();
        assert_eq!(queue_counts(&observer, &q).await, Some((2, 0)));
        warren_tests::delete_queue(&conn, &q).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_rollback_discards_acks() {
    let broker = Broker::start();
    timeout(async {
        let (conn, pch) = broker.confirm_channel().await;
        let q = exclusive_queue(&pch).await;
        publish(&pch, "", &q, b"m1").await;
        publish(&pch, "", &q, b"m2").await;
        let ch = conn.create_channel().await.unwrap();
        ch.tx_select().await.unwrap();
        let m1 = ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("m1");
        let m2 = ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("m2");
        ch.basic_ack(m1.delivery.delivery_tag, BasicAckOptions::default())
            .await
            .unwrap();
        ch.tx_rollback().await.unwrap();
        ch.basic_ack(m2.delivery.delivery_tag, BasicAckOptions::default())
            .await
            .unwrap();
        ch.tx_commit().await.unwrap();
        // m1's ack was rolled back: it is still unacked and comes back when
        // the channel closes; m2's ack was committed.
        ch.close(200, "bye".into()).await.unwrap();
        let back = warren_tests::get_eventually(&pch, &q).await;
        assert_eq!(back.delivery.data, b"m1");
        assert!(back.delivery.redelivered);
        assert!(pch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .is_none());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_acks_take_effect_only_on_commit() {
    let broker = Broker::start();
    timeout(async {
        let (conn, pch) = broker.confirm_channel().await;
        let q = exclusive_queue(&pch).await;
        publish(&pch, "", &q, b"m1").await;
        let ch = conn.create_channel().await.unwrap();
        ch.tx_select().await.unwrap();
        let m1 = ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("m1");
        ch.basic_ack(m1.delivery.delivery_tag, BasicAckOptions::default())
            .await
            .unwrap();
        // closing without commit: the ack is discarded, the message requeued
        ch.close(200, "bye".into()).await.unwrap();
        let back = warren_tests::get_eventually(&pch, &q).await;
        assert_eq!(back.delivery.data, b"m1");
        assert!(back.delivery.redelivered);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_commit_without_select_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let res = ch.tx_commit().await;
        let text = expect_code(res, PRECONDITION_FAILED);
        assert!(text.contains("not transactional"), "{text}");
        assert!(!ch.status().connected());
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_rollback_without_select_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let res = ch.tx_rollback().await;
        let text = expect_code(res, PRECONDITION_FAILED);
        assert!(text.contains("not transactional"), "{text}");
        expect_connection_usable(&conn).await;
    })
    .await
}

/// A publish to a missing exchange in confirm mode: the channel is closed
/// with 404 and the pending confirm fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_mode_publish_to_missing_exchange_closes_channel() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let pending = ch
            .basic_publish(
                unique("no-x").as_str().into(),
                "k".into(),
                Default::default(),
                b"x",
                Default::default(),
            )
            .await
            .unwrap();
        let res = pending.await;
        expect_code(res, NOT_FOUND);
        expect_connection_usable(&conn).await;
    })
    .await
}
