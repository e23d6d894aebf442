//! Queue declaration, exclusivity, auto-delete, purge, delete and bindings.

use std::time::Duration;

use futures_lite::StreamExt;
use warren_tests::{
    bind_queue,
    codes::*,
    declare_exchange, delete_exchange, delete_queue, eventually, exclusive_queue, expect_code,
    expect_connection_usable, get_body,
    lapin::{
        options::{BasicConsumeOptions, BasicQosOptions, QueueDeclareOptions, QueueDeleteOptions},
        types::{AMQPValue, FieldTable},
        ExchangeKind,
    },
    publish, queue_counts, timeout, unique, Broker,
};

fn max_length(n: i32) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("x-max-length".into(), AMQPValue::LongInt(n));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_named_queue_gets_amq_gen_name() {
    let broker = Broker::start();
    timeout(async {
        let (_conn, ch) = broker.confirm_channel().await;
        let q1 = exclusive_queue(&ch).await;
        let q2 = exclusive_queue(&ch).await;
        assert!(q1.starts_with("amq.gen-"), "{q1}");
        assert!(q2.starts_with("amq.gen-"), "{q2}");
        assert_ne!(q1, q2);
        // it is usable by that name
        publish(&ch, "", &q1, b"x").await;
        assert_eq!(get_body(&ch, &q1).await.as_deref(), Some(&b"x"[..]));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_declare_of_missing_queue_is_not_found() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let res = ch
            .queue_declare(
                unique("missing").as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        let text = expect_code(res, NOT_FOUND);
        assert!(text.starts_with("NOT_FOUND"), "{text}");
        assert!(!ch.status().connected());
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_amq_prefixed_queue_is_access_refused() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let res = ch
            .queue_declare(
                format!("amq.{}", unique("q")).as_str().into(),
                Default::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(res, ACCESS_REFUSED);
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_ok_reports_message_and_consumer_counts() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = unique("counts");
        let declared = ch
            .queue_declare(q.as_str().into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
        assert_eq!(
            (declared.message_count(), declared.consumer_count()),
            (0, 0)
        );
        for i in 0..3u8 {
            publish(&ch, "", &q, &[i]).await;
        }
        // redeclare (same properties) reports the counts too
        let again = ch
            .queue_declare(q.as_str().into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
        assert_eq!((again.message_count(), again.consumer_count()), (3, 0));
        // one consumer with prefetch 1 holds one unacked message: 2 ready
        let cch = conn.create_channel().await.unwrap();
        cch.basic_qos(1, BasicQosOptions::default()).await.unwrap();
        let mut consumer = cch
            .basic_consume(
                q.as_str().into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let first = consumer.next().await.unwrap().unwrap();
        assert_eq!(first.data, vec![0]);
        assert!(
            eventually(15, || async {
                queue_counts(&conn, &q).await == Some((2, 1))
            })
            .await,
            "expected 2 ready messages and 1 consumer, got {:?}",
            queue_counts(&conn, &q).await
        );
        delete_queue(&conn, &q).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_queue_is_locked_to_its_connection() {
    let broker = Broker::start();
    timeout(async {
        let (_owner, och) = broker.confirm_channel().await;
        let q = unique("exclusive");
        och.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let other = broker.connect().await;
        // redeclare from another connection
        let ch = other.create_channel().await.unwrap();
        let res = ch
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        let text = expect_code(res, RESOURCE_LOCKED);
        assert!(text.starts_with("RESOURCE_LOCKED"), "{text}");
        // passive declare from another connection
        let ch = other.create_channel().await.unwrap();
        let res = ch
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        expect_code(res, RESOURCE_LOCKED);
        // consume from another connection
        let ch = other.create_channel().await.unwrap();
        let res = ch
            .basic_consume(
                q.as_str().into(),
                "".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(res.map(|_| ()), RESOURCE_LOCKED);
        // the owner can still use it
        publish(&och, "", &q, b"mine").await;
        assert_eq!(get_body(&och, &q).await.as_deref(), Some(&b"mine"[..]));
        expect_connection_usable(&other).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_queue_is_deleted_when_connection_closes() {
    let broker = Broker::start();
    timeout(async {
        let observer = broker.connect().await;
        let q = unique("excl-gone");
        {
            let (owner, ch) = broker.confirm_channel().await;
            ch.queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
            owner.close(200, "bye".into()).await.unwrap();
        }
        assert!(
            eventually(15, || async { queue_counts(&observer, &q).await.is_none() }).await,
            "exclusive queue must be deleted when its connection closes"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_delete_queue_is_deleted_when_last_consumer_cancels() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = unique("autodel");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let c1 = ch
            .basic_consume(
                q.as_str().into(),
                "c1".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let c2 = ch
            .basic_consume(
                q.as_str().into(),
                "c2".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        ch.basic_cancel(c1.tag(), Default::default()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(
            queue_counts(&conn, &q).await,
            Some((0, 1)),
            "one consumer left: queue stays"
        );
        ch.basic_cancel(c2.tag(), Default::default()).await.unwrap();
        assert!(
            eventually(15, || async { queue_counts(&conn, &q).await.is_none() }).await,
            "auto-delete queue must go when its last consumer cancels"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_delete_queue_without_consumers_stays() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = unique("autodel-unused");
        ch.queue_declare(
            q.as_str().into(),
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(queue_counts(&conn, &q).await, Some((0, 0)));
        delete_queue(&conn, &q).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_returns_message_count() {
    let broker = Broker::start();
    timeout(async {
        let (_conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        for _ in 0..5 {
            publish(&ch, "", &q, b"m").await;
        }
        let purged = ch
            .queue_purge(q.as_str().into(), Default::default())
            .await
            .unwrap();
        assert_eq!(purged, 5);
        assert_eq!(get_body(&ch, &q).await, None);
        let purged = ch
            .queue_purge(q.as_str().into(), Default::default())
            .await
            .unwrap();
        assert_eq!(purged, 0);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_of_missing_queue_is_not_found() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let res = ch
            .queue_purge(unique("missing").as_str().into(), Default::default())
            .await;
        expect_code(res, NOT_FOUND);
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_returns_message_count() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = unique("delete");
        ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
        for _ in 0..3 {
            publish(&ch, "", &q, b"m").await;
        }
        let n = ch
            .queue_delete(q.as_str().into(), Default::default())
            .await
            .unwrap();
        assert_eq!(n, 3);
        assert_eq!(queue_counts(&conn, &q).await, None);
        // deleting a missing queue is ok with 0 messages (RabbitMQ 3.x)
        let n = ch
            .queue_delete(q.as_str().into(), Default::default())
            .await
            .expect("delete missing queue");
        assert_eq!(n, 0);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_if_unused_with_consumer_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        let _consumer = ch
            .basic_consume(
                q.as_str().into(),
                "".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await
            .unwrap();
        let dch = conn.create_channel().await.unwrap();
        let res = dch
            .queue_delete(
                q.as_str().into(),
                QueueDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                },
            )
            .await;
        expect_code(res, PRECONDITION_FAILED);
        assert_eq!(queue_counts(&conn, &q).await, Some((0, 1)));
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_if_empty_with_messages_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        publish(&ch, "", &q, b"m").await;
        let dch = conn.create_channel().await.unwrap();
        let res = dch
            .queue_delete(
                q.as_str().into(),
                QueueDeleteOptions {
                    if_empty: true,
                    ..Default::default()
                },
            )
            .await;
        expect_code(res, PRECONDITION_FAILED);
        assert_eq!(queue_counts(&conn, &q).await, Some((1, 0)));
        // once empty it can be deleted with if-empty
        assert!(get_body(&ch, &q).await.is_some());
        let n = ch
            .queue_delete(
                q.as_str().into(),
                QueueDeleteOptions {
                    if_empty: true,
                    if_unused: true,
                    ..Default::default()
                },
            )
            .await
            .expect("delete empty unused queue");
        assert_eq!(n, 0);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeclare_with_different_arguments_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = unique("args");
        ch.queue_declare(q.as_str().into(), Default::default(), max_length(10))
            .await
            .unwrap();
        // same args: fine
        ch.queue_declare(q.as_str().into(), Default::default(), max_length(10))
            .await
            .unwrap();
        let res = ch
            .queue_declare(q.as_str().into(), Default::default(), max_length(20))
            .await;
        let text = expect_code(res, PRECONDITION_FAILED);
        assert!(text.starts_with("PRECONDITION_FAILED"), "{text}");
        expect_connection_usable(&conn).await;
        delete_queue(&conn, &q).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeclare_with_different_durability_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = unique("durability");
        ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
        let res = ch
            .queue_declare(
                q.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        expect_code(res, PRECONDITION_FAILED);
        expect_connection_usable(&conn).await;
        delete_queue(&conn, &q).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_to_missing_queue_or_exchange_is_not_found_but_unbind_is_ok() {
    let broker = Broker::start();
    timeout(async {
        let conn = broker.connect().await;
        let ch = conn.create_channel().await.unwrap();
        let q = exclusive_queue(&ch).await;
        let x = unique("bindx");
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;

        let res = ch
            .queue_bind(
                unique("noq").as_str().into(),
                x.as_str().into(),
                "k".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(res, NOT_FOUND);

        let ch = conn.create_channel().await.unwrap();
        let res = ch
            .queue_bind(
                q.as_str().into(),
                unique("nox").as_str().into(),
                "k".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(res, NOT_FOUND);

        let ch = conn.create_channel().await.unwrap();
        let res = ch
            .queue_unbind(
                unique("noq").as_str().into(),
                x.as_str().into(),
                "k".into(),
                FieldTable::default(),
            )
            .await;
        // RabbitMQ 3.10: unbinding from a missing queue is unbind-ok, not 404
        res.expect("queue.unbind with a missing queue is ok");

        let ch = conn.create_channel().await.unwrap();
        let res = ch
            .queue_unbind(
                q.as_str().into(),
                unique("nox").as_str().into(),
                "k".into(),
                FieldTable::default(),
            )
            .await;
        // RabbitMQ 3.10: unbinding from a missing exchange is unbind-ok, not 404
        res.expect("queue.unbind with a missing exchange is ok");

        // unbinding a binding that does not exist (queue and exchange do) is ok
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(Default::default()).await.unwrap();
        ch.queue_unbind(
            q.as_str().into(),
            x.as_str().into(),
            "never-bound".into(),
            FieldTable::default(),
        )
        .await
        .expect("unbind of a missing binding");

        // binding twice is idempotent
        bind_queue(&ch, &q, &x, "k").await;
        bind_queue(&ch, &q, &x, "k").await;
        publish(&ch, &x, "k", b"once").await;
        assert_eq!(warren_tests::drain(&ch, &q).await, vec![b"once".to_vec()]);
        delete_exchange(&conn, &x).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_queue_removes_its_bindings() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("qdel-x");
        let q = unique("qdel-q");
        declare_exchange(&ch, &x, ExchangeKind::Fanout).await;
        ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
        bind_queue(&ch, &q, &x, "").await;
        ch.queue_delete(q.as_str().into(), Default::default())
            .await
            .unwrap();
        ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default())
            .await
            .unwrap();
        publish(&ch, &x, "", b"should not arrive").await;
        assert_eq!(
            get_body(&ch, &q).await,
            None,
            "a re-created queue must not inherit old bindings"
        );
        delete_queue(&conn, &q).await;
        delete_exchange(&conn, &x).await;
    })
    .await
}
