//! basic.* : publish/consume/get, properties, acks, QoS, cancel, recover,
//! returns and error cases.

use std::time::Duration;

use futures_lite::StreamExt;
use warren_tests::{
    assert_connection_closed,
    codes::*,
    exclusive_queue, expect_channel_closed, expect_code, expect_connection_usable,
    lapin::{
        message::Delivery,
        options::{
            BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions,
            BasicNackOptions, BasicPublishOptions, BasicQosOptions, BasicRecoverOptions,
            BasicRejectOptions, QueueDeclareOptions,
        },
        types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable},
        BasicProperties, Channel, Consumer,
    },
    publish, queue_counts, timeout, unique, Broker, ErrorWatch,
};

async fn consume(ch: &Channel, queue: &str) -> Consumer {
    ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("basic.consume")
}

/// Next delivery within 15 s (panics otherwise).
async fn next(consumer: &mut Consumer) -> Delivery {
    match tokio::time::timeout(Duration::from_secs(15), consumer.next()).await {
        Ok(Some(Ok(d))) => d,
        Ok(Some(Err(e))) => panic!("consumer error: {e}"),
        Ok(None) => panic!("consumer was cancelled"),
        Err(_) => panic!("no delivery within 15s"),
    }
}

/// Assert nothing is delivered for `ms` milliseconds.
async fn assert_no_delivery(consumer: &mut Consumer, ms: u64) {
    if let Ok(item) = tokio::time::timeout(Duration::from_millis(ms), consumer.next()).await {
        panic!("expected no delivery, got {item:?}");
    }
}

fn all_types_headers() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("inner-string".into(), AMQPValue::LongString("deep".into()));
    nested.insert("inner-int".into(), AMQPValue::LongInt(-7));
    let mut nested2 = FieldTable::default();
    nested2.insert("level".into(), AMQPValue::ShortShortUInt(3));
    nested.insert("deeper".into(), AMQPValue::FieldTable(nested2));

    let array = FieldArray::from(vec![
        AMQPValue::LongString("a".into()),
        AMQPValue::LongInt(1),
        AMQPValue::Boolean(false),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::Double(0.5)])),
        AMQPValue::FieldTable(FieldTable::default()),
        AMQPValue::Void,
    ]);

    let mut h = FieldTable::default();
    h.insert("bool-true".into(), AMQPValue::Boolean(true));
    h.insert("bool-false".into(), AMQPValue::Boolean(false));
    h.insert("i8".into(), AMQPValue::ShortShortInt(-8));
    h.insert("u8".into(), AMQPValue::ShortShortUInt(200));
    h.insert("i16".into(), AMQPValue::ShortInt(-1600));
    h.insert("u16".into(), AMQPValue::ShortUInt(60000));
    h.insert("i32".into(), AMQPValue::LongInt(-320_000));
    h.insert("u32".into(), AMQPValue::LongUInt(4_000_000_000));
    h.insert("i64".into(), AMQPValue::LongLongInt(-6_400_000_000_000));
    h.insert("float".into(), AMQPValue::Float(1.5));
    h.insert("double".into(), AMQPValue::Double(-2.25e100));
    h.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 12345,
        }),
    );
    h.insert(
        "longstr".into(),
        AMQPValue::LongString("hello \u{1F407} world".into()),
    );
    h.insert("timestamp".into(), AMQPValue::Timestamp(1_700_000_000));
    h.insert(
        "bytes".into(),
        AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 255, 0xCE])),
    );
    h.insert("void".into(), AMQPValue::Void);
    h.insert("array".into(), AMQPValue::FieldArray(array));
    h.insert("table".into(), AMQPValue::FieldTable(nested));
    h
}

fn all_properties(user: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/x-test".into())
        .with_content_encoding("identity".into())
        .with_headers(all_types_headers())
        .with_delivery_mode(2)
        .with_priority(5)
        .with_correlation_id("corr-1".into())
        .with_reply_to("reply-queue".into())
        .with_expiration("600000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_650_000_000)
        .with_type("test-type".into())
        .with_user_id(user.into())
        .with_app_id("warren-tests".into())
        .with_cluster_id("cluster-x".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_every_property_and_header_type() {
    let broker = Broker::start();
    timeout(async {
        let (_conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        let props = all_properties(broker.username());
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"payload \x00\xff",
            props.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        let mut consumer = consume(&ch, &q).await;
        let d = next(&mut consumer).await;
        assert_eq!(d.data, b"payload \x00\xff");
        assert_eq!(d.exchange.as_str(), "");
        assert_eq!(d.routing_key.as_str(), q);
        assert!(!d.redelivered);
        assert_eq!(
            d.properties.headers(),
            props.headers(),
            "headers table must round-trip exactly"
        );
        assert_eq!(
            d.properties, props,
            "all properties must round-trip exactly"
        );
        d.ack(BasicAckOptions::default()).await.unwrap();

        // and via basic.get
        let q2 = exclusive_queue(&ch).await;
        ch.basic_publish(
            "".into(),
            q2.as_str().into(),
            Default::default(),
            b"again",
            props.clone(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        let got = ch
            .basic_get(q2.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("message");
        assert_eq!(got.delivery.data, b"again");
        assert_eq!(got.delivery.properties, props);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_with_wrong_user_id_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let q = exclusive_queue(&ch).await;
        let mut watch = ErrorWatch::new(&conn);
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"x",
            BasicProperties::default().with_user_id("someone-else".into()),
        )
        .await
        .unwrap();
        expect_channel_closed(&mut watch, &ch, PRECONDITION_FAILED).await;
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_body_is_split_over_frames() {
    let broker = Broker::start();
    timeout(async {
        let (_conn, ch) = broker.channel().await;
        let q = exclusive_queue(&ch).await;
        // 1 MiB of non-repeating-ish bytes
        let mut x: u32 = 0x1234_5678;
        let body: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect();
        publish(&ch, "", &q, &body).await;
        publish(&ch, "", &q, b"small after big").await;
        let mut consumer = consume(&ch, &q).await;
        let d = next(&mut consumer).await;
        assert_eq!(d.data.len(), body.len());
        assert!(d.data == body, "1 MiB body corrupted");
        let d2 = next(&mut consumer).await;
        assert_eq!(d2.data, b"small after big");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn empty_body_round_trips() {
    let broker = Broker::start();
    timeout(async {
        let (_conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        ch.basic_publish(
            "".into(),
            q.as_str().into(),
            Default::default(),
            b"",
            BasicProperties::default().with_message_id("empty".into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
        publish(&ch, "", &q, b"").await;
        let got = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("message");
        assert!(got.delivery.data.is_empty());
        assert_eq!(
            got.delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str()),
            Some("empty")
        );
        let mut consumer = consume(&ch, &q).await;
        let d = next(&mut consumer).await;
        assert!(d.data.is_empty());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_get_and_get_empty() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        assert!(
            ch.basic_get(q.as_str().into(), BasicGetOptions::default())
                .await
                .unwrap()
                .is_none(),
            "get-empty"
        );
        for b in [b"1", b"2", b"3"] {
            publish(&ch, "", &q, b).await;
        }
        let m1 = ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("m1");
        assert_eq!(m1.delivery.data, b"1");
        assert_eq!(m1.message_count, 2, "message_count = messages left");
        assert!(!m1.delivery.redelivered);
        assert_eq!(m1.delivery.routing_key.as_str(), q);
        let m2 = ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("m2");
        assert_eq!(m2.delivery.data, b"2");
        assert_eq!(m2.message_count, 1);
        assert!(m2.delivery.delivery_tag > m1.delivery.delivery_tag);
        let m3 = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("m3");
        assert_eq!(m3.delivery.data, b"3");
        assert_eq!(m3.message_count, 0);
        assert!(ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .is_none());
        // m1 and m2 are unacked: 0 ready
        assert_eq!(queue_counts(&conn, &q).await, Some((0, 0)));
        m1.delivery.ack(BasicAckOptions::default()).await.unwrap();
        m2.delivery
            .reject(BasicRejectOptions { requeue: true })
            .await
            .unwrap();
        let again = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("m2 again");
        assert_eq!(again.delivery.data, b"2");
        assert!(again.delivery.redelivered);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_from_missing_queue_is_not_found() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let res = ch
            .basic_get(
                unique("missing").as_str().into(),
                BasicGetOptions::default(),
            )
            .await;
        expect_code(res, NOT_FOUND);
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_from_missing_queue_is_not_found() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let res = ch
            .basic_consume(
                unique("missing").as_str().into(),
                "".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(res.map(|_| ()), NOT_FOUND);
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_nack_reject_single_and_multiple() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        for i in 0..6u8 {
            publish(&ch, "", &q, &[i]).await;
        }
        let cch = conn.create_channel().await.unwrap();
        let mut consumer = consume(&cch, &q).await;
        let mut ds = Vec::new();
        for i in 0..6u8 {
            let d = next(&mut consumer).await;
            assert_eq!(d.data, vec![i]);
            ds.push(d);
        }
        let tag = |i: usize| ds[i].delivery_tag;
        // ack 0,1 (multiple)
        cch.basic_ack(tag(1), BasicAckOptions { multiple: true })
            .await
            .unwrap();
        // reject 2 without requeue: dropped
        cch.basic_reject(tag(2), BasicRejectOptions { requeue: false })
            .await
            .unwrap();
        // nack 3,4 (multiple) without requeue: dropped
        cch.basic_nack(
            tag(4),
            BasicNackOptions {
                multiple: true,
                requeue: false,
            },
        )
        .await
        .unwrap();
        // nack 5 single with requeue: redelivered
        cch.basic_nack(
            tag(5),
            BasicNackOptions {
                multiple: false,
                requeue: true,
            },
        )
        .await
        .unwrap();
        let d = next(&mut consumer).await;
        assert_eq!(d.data, vec![5]);
        assert!(d.redelivered);
        assert!(
            d.delivery_tag > tag(5),
            "redelivery gets a new delivery tag"
        );
        // reject with requeue: redelivered again
        cch.basic_reject(d.delivery_tag, BasicRejectOptions { requeue: true })
            .await
            .unwrap();
        let d = next(&mut consumer).await;
        assert_eq!(d.data, vec![5]);
        assert!(d.redelivered);
        cch.basic_ack(d.delivery_tag, BasicAckOptions::default())
            .await
            .unwrap();
        assert_no_delivery(&mut consumer, 300).await;
        cch.close(200, "bye".into()).await.unwrap();
        // everything was settled: nothing comes back when the channel closes
        assert_eq!(queue_counts(&conn, &q).await, Some((0, 0)));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeued_messages_are_redelivered_in_order() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        for i in 0..5u8 {
            publish(&ch, "", &q, &[i]).await;
        }
        let cch = conn.create_channel().await.unwrap();
        let mut consumer = consume(&cch, &q).await;
        let mut last = 0;
        for i in 0..5u8 {
            let d = next(&mut consumer).await;
            assert_eq!(d.data, vec![i]);
            assert!(!d.redelivered);
            last = d.delivery_tag;
        }
        cch.basic_nack(
            last,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .unwrap();
        for i in 0..5u8 {
            let d = next(&mut consumer).await;
            assert_eq!(d.data, vec![i], "requeued messages keep their order");
            assert!(d.redelivered);
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_of_unknown_delivery_tag_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let mut watch = ErrorWatch::new(&conn);
        ch.basic_ack(99, BasicAckOptions::default()).await.unwrap();
        let text = expect_channel_closed(&mut watch, &ch, PRECONDITION_FAILED).await;
        assert!(text.contains("unknown delivery tag 99"), "{text}");
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn double_ack_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        publish(&ch, "", &q, b"once").await;
        let m = ch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("message");
        let tag = m.delivery.delivery_tag;
        let mut watch = ErrorWatch::new(&conn);
        ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
        ch.basic_ack(tag, BasicAckOptions::default()).await.unwrap();
        let text = expect_channel_closed(&mut watch, &ch, PRECONDITION_FAILED).await;
        assert!(
            text.contains(&format!("unknown delivery tag {tag}")),
            "{text}"
        );
        expect_connection_usable(&conn).await;
        // the first ack counted
        assert_eq!(queue_counts(&conn, &q).await, Some((0, 0)));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_and_reject_of_unknown_tag_are_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let mut watch = ErrorWatch::new(&conn);
        ch.basic_nack(7, BasicNackOptions::default()).await.unwrap();
        expect_channel_closed(&mut watch, &ch, PRECONDITION_FAILED).await;
        let ch = conn.create_channel().await.unwrap();
        let mut watch = ErrorWatch::new(&conn);
        ch.basic_reject(7, BasicRejectOptions::default())
            .await
            .unwrap();
        expect_channel_closed(&mut watch, &ch, PRECONDITION_FAILED).await;
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_limits_unacked_deliveries() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        for i in 0..5u8 {
            publish(&ch, "", &q, &[i]).await;
        }
        let cch = conn.create_channel().await.unwrap();
        cch.basic_qos(2, BasicQosOptions::default()).await.unwrap();
        let mut consumer = consume(&cch, &q).await;
        let d0 = next(&mut consumer).await;
        let d1 = next(&mut consumer).await;
        assert_eq!((d0.data[0], d1.data[0]), (0, 1));
        assert_no_delivery(&mut consumer, 500).await;
        d0.ack(BasicAckOptions::default()).await.unwrap();
        let d2 = next(&mut consumer).await;
        assert_eq!(d2.data, vec![2]);
        assert_no_delivery(&mut consumer, 300).await;
        // ack multiple frees two slots
        cch.basic_ack(d2.delivery_tag, BasicAckOptions { multiple: true })
            .await
            .unwrap();
        let d3 = next(&mut consumer).await;
        let d4 = next(&mut consumer).await;
        assert_eq!((d3.data[0], d4.data[0]), (3, 4));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_consumer_and_global_qos() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let qa = exclusive_queue(&ch).await;
        let qb = exclusive_queue(&ch).await;
        for _ in 0..5 {
            publish(&ch, "", &qa, b"a").await;
            publish(&ch, "", &qb, b"b").await;
        }
        // per-consumer (global=false): each consumer gets 2
        let c1 = conn.create_channel().await.unwrap();
        c1.basic_qos(2, BasicQosOptions { global: false })
            .await
            .unwrap();
        let mut ca = consume(&c1, &qa).await;
        let mut cb = consume(&c1, &qb).await;
        for _ in 0..2 {
            next(&mut ca).await;
            next(&mut cb).await;
        }
        assert_no_delivery(&mut ca, 300).await;
        assert_no_delivery(&mut cb, 100).await;
        c1.close(200, "bye".into()).await.unwrap();

        // global (per channel): 3 shared across both consumers
        let c2 = conn.create_channel().await.unwrap();
        c2.basic_qos(3, BasicQosOptions { global: true })
            .await
            .unwrap();
        let mut ca = consume(&c2, &qa).await;
        let mut cb = consume(&c2, &qb).await;
        // Wait for the 3 deliveries the limit allows (as long as a loaded
        // machine needs), then make sure no 4th follows within 500 ms.
        let mut got = 0;
        let wait_for_3 = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut settle = None;
        loop {
            let until = settle.unwrap_or(wait_for_3);
            tokio::select! {
                Some(Ok(_)) = ca.next() => got += 1,
                Some(Ok(_)) = cb.next() => got += 1,
                _ = tokio::time::sleep_until(until) => break,
            }
            if got == 3 && settle.is_none() {
                settle = Some(tokio::time::Instant::now() + Duration::from_millis(500));
            }
        }
        assert_eq!(
            got, 3,
            "global prefetch 3 must cap unacked deliveries on the channel"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_cancel_stops_deliveries() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        let cch = conn.create_channel().await.unwrap();
        let mut consumer = cch
            .basic_consume(
                q.as_str().into(),
                "my-tag".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        assert_eq!(consumer.tag().as_str(), "my-tag");
        publish(&ch, "", &q, b"before").await;
        assert_eq!(next(&mut consumer).await.data, b"before");
        cch.basic_cancel("my-tag".into(), BasicCancelOptions::default())
            .await
            .unwrap();
        assert!(
            tokio::time::timeout(Duration::from_secs(5), consumer.next())
                .await
                .expect("stream ends")
                .is_none(),
            "cancelled consumer stream ends"
        );
        publish(&ch, "", &q, b"after").await;
        assert_eq!(queue_counts(&conn, &q).await, Some((1, 0)));
        // cancelling an unknown tag is harmless
        cch.basic_cancel("my-tag".into(), BasicCancelOptions::default())
            .await
            .expect("cancel unknown tag");
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_generated_consumer_tag() {
    let broker = Broker::start();
    timeout(async {
        let (_conn, ch) = broker.channel().await;
        let q = exclusive_queue(&ch).await;
        let c1 = consume(&ch, &q).await;
        let c2 = consume(&ch, &q).await;
        assert!(c1.tag().as_str().starts_with("amq.ctag-"), "{}", c1.tag());
        assert_ne!(c1.tag(), c2.tag());
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_consumer_tag_is_not_allowed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let q = exclusive_queue(&ch).await;
        let _c = ch
            .basic_consume(
                q.as_str().into(),
                "dup".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let res = ch
            .basic_consume(
                q.as_str().into(),
                "dup".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await;
        // RabbitMQ: connection error 530 NOT_ALLOWED "attempt to reuse consumer tag 'dup'"
        let text = expect_code(res.map(|_| ()), NOT_ALLOWED);
        assert!(text.contains("reuse consumer tag"), "{text}");
        assert_connection_closed(&conn).await;
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_cancels_consumer_when_queue_is_deleted() {
    let broker = Broker::start();
    timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = unique("cancel-notify");
        ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
        let mut consumer = consume(&ch, &q).await;
        let other = broker.connect().await;
        let och = other.create_channel().await.unwrap();
        och.queue_delete(q.as_str().into(), Default::default())
            .await
            .unwrap();
        let end = tokio::time::timeout(Duration::from_secs(5), consumer.next())
            .await
            .expect("server must send basic.cancel when the queue is deleted");
        assert!(end.is_none(), "consumer stream must end, got {end:?}");
        // the channel is still fine
        ch.basic_qos(0, Default::default())
            .await
            .expect("channel still open");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_consumer_conflicts_are_access_refused() {
    let broker = Broker::start();
    timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = exclusive_queue(&ch).await;
        let _excl = ch
            .basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let ch2 = conn.create_channel().await.unwrap();
        let res = ch2
            .basic_consume(
                q.as_str().into(),
                "".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await;
        let text = expect_code(res.map(|_| ()), ACCESS_REFUSED);
        assert!(text.contains("exclusive"), "{text}");

        // the other way round: existing consumer, then an exclusive one
        let q2 = exclusive_queue(&ch).await;
        let _plain = consume(&ch, &q2).await;
        let ch3 = conn.create_channel().await.unwrap();
        let res = ch3
            .basic_consume(
                q2.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        expect_code(res.map(|_| ()), ACCESS_REFUSED);
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_recover_requeues_unacked() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        publish(&ch, "", &q, b"r1").await;
        publish(&ch, "", &q, b"r2").await;
        let gch = conn.create_channel().await.unwrap();
        let m1 = gch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("r1");
        let m2 = gch
            .basic_get(q.as_str().into(), BasicGetOptions::default())
            .await
            .unwrap()
            .expect("r2");
        assert!(!m1.delivery.redelivered && !m2.delivery.redelivered);
        gch.basic_recover(BasicRecoverOptions { requeue: true })
            .await
            .unwrap();
        let mut seen = Vec::new();
        for _ in 0..2 {
            let m = warren_tests::get_eventually(&gch, &q).await;
            assert!(
                m.delivery.redelivered,
                "recovered message must be flagged redelivered"
            );
            seen.push(m.delivery.data);
        }
        assert_eq!(seen, vec![b"r1".to_vec(), b"r2".to_vec()]);
        // the old tags are gone
        let mut watch = ErrorWatch::new(&conn);
        gch.basic_ack(m1.delivery.delivery_tag, BasicAckOptions::default())
            .await
            .unwrap();
        expect_channel_closed(&mut watch, &gch, PRECONDITION_FAILED).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_unroutable_is_returned_with_no_route() {
    let broker = Broker::start();
    timeout(async {
        let (_conn, ch) = broker.channel().await;
        let key = unique("nowhere");
        let props = BasicProperties::default().with_message_id("ret-1".into());
        ch.basic_publish(
            "".into(),
            key.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"bounce",
            props.clone(),
        )
        .await
        .unwrap();
        // not mandatory: silently dropped
        ch.basic_publish(
            "".into(),
            key.as_str().into(),
            Default::default(),
            b"dropped",
            Default::default(),
        )
        .await
        .unwrap();
        // a synchronous round trip makes sure any basic.return has arrived
        ch.basic_qos(0, Default::default()).await.unwrap();
        let returned = ch.wait_for_confirms().await.unwrap();
        assert_eq!(returned.len(), 1, "exactly one basic.return: {returned:?}");
        let r = &returned[0];
        assert_eq!(r.reply_code, NO_ROUTE);
        assert_eq!(r.reply_text.as_str(), "NO_ROUTE");
        assert_eq!(r.delivery.exchange.as_str(), "");
        assert_eq!(r.delivery.routing_key.as_str(), key);
        assert_eq!(r.delivery.data, b"bounce");
        assert_eq!(r.delivery.properties, props);
        ch.basic_qos(0, Default::default())
            .await
            .expect("channel stays open after a return");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_flag_is_not_implemented() {
    let broker = Broker::start();
    timeout(async {
        // confirm mode so the pending confirm reports the connection error
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        let pending = ch
            .basic_publish(
                "".into(),
                q.as_str().into(),
                BasicPublishOptions {
                    immediate: true,
                    ..Default::default()
                },
                b"now",
                Default::default(),
            )
            .await
            .unwrap();
        let text = expect_code(pending.await, NOT_IMPLEMENTED);
        assert!(text.contains("immediate=true"), "{text}");
        assert_connection_closed(&conn).await;
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_are_requeued_when_channel_closes() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        for i in 0..3u8 {
            publish(&ch, "", &q, &[i]).await;
        }
        let cch = conn.create_channel().await.unwrap();
        let mut consumer = consume(&cch, &q).await;
        for i in 0..3u8 {
            assert_eq!(next(&mut consumer).await.data, vec![i]);
        }
        assert_eq!(queue_counts(&conn, &q).await, Some((0, 1)));
        cch.close(200, "bye".into()).await.unwrap();
        let gch = conn.create_channel().await.unwrap();
        for i in 0..3u8 {
            let m = warren_tests::get_eventually(&gch, &q).await;
            assert_eq!(m.delivery.data, vec![i], "requeued in original order");
            assert!(m.delivery.redelivered);
        }
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_are_requeued_when_connection_closes() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = unique("requeue-on-close");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        publish(&ch, "", &q, b"m").await;
        {
            let (c2, ch2) = broker.channel().await;
            let m = ch2
                .basic_get(q.as_str().into(), BasicGetOptions::default())
                .await
                .unwrap()
                .expect("m");
            assert!(!m.delivery.redelivered);
            c2.close(200, "bye".into()).await.unwrap();
        }
        assert!(
            warren_tests::eventually(15, || async {
                queue_counts(&conn, &q).await == Some((1, 0))
            })
            .await
        );
        let m = ch
            .basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("m");
        assert!(m.delivery.redelivered);
        warren_tests::delete_queue(&conn, &q).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ack_consumer_and_round_robin() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        let cch = conn.create_channel().await.unwrap();
        let opts = BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        };
        let mut c1 = cch
            .basic_consume(q.as_str().into(), "".into(), opts, FieldTable::default())
            .await
            .unwrap();
        let mut c2 = cch
            .basic_consume(q.as_str().into(), "".into(), opts, FieldTable::default())
            .await
            .unwrap();
        for i in 0..4u8 {
            publish(&ch, "", &q, &[i]).await;
        }
        let a = [next(&mut c1).await.data[0], next(&mut c1).await.data[0]];
        let b = [next(&mut c2).await.data[0], next(&mut c2).await.data[0]];
        assert_eq!(a, [0, 2], "round robin between consumers");
        assert_eq!(b, [1, 3]);
        assert_eq!(queue_counts(&conn, &q).await, Some((0, 2)));
    })
    .await
}
