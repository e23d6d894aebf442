//! Exchange declaration, deletion, bindings and routing.

use warren_tests::{
    bind_queue,
    codes::*,
    declare_exchange, delete_exchange, drain, exchange_exists, exclusive_queue,
    expect_channel_closed, expect_code, expect_connection_usable, get_body,
    lapin::{
        options::{BasicPublishOptions, ExchangeDeclareOptions, ExchangeDeleteOptions},
        types::{AMQPValue, FieldTable},
        BasicProperties, ExchangeKind,
    },
    publish, timeout, unique, Broker, ErrorWatch,
};

fn headers(pairs: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), AMQPValue::LongString((*v).into()));
    }
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_exchange_routes_by_exact_key() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("direct");
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;
        let qa = exclusive_queue(&ch).await;
        let qb = exclusive_queue(&ch).await;
        bind_queue(&ch, &qa, &x, "a").await;
        bind_queue(&ch, &qb, &x, "b").await;
        bind_queue(&ch, &qb, &x, "a").await;
        publish(&ch, &x, "a", b"1").await;
        publish(&ch, &x, "b", b"2").await;
        publish(&ch, &x, "c", b"3").await;
        assert_eq!(drain(&ch, &qa).await, vec![b"1".to_vec()]);
        assert_eq!(drain(&ch, &qb).await, vec![b"1".to_vec(), b"2".to_vec()]);
        delete_exchange(&conn, &x).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_exchange_routes_to_all_bound_queues() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("fanout");
        declare_exchange(&ch, &x, ExchangeKind::Fanout).await;
        let qa = exclusive_queue(&ch).await;
        let qb = exclusive_queue(&ch).await;
        bind_queue(&ch, &qa, &x, "").await;
        bind_queue(&ch, &qb, &x, "whatever").await;
        publish(&ch, &x, "any-key", b"hello").await;
        assert_eq!(drain(&ch, &qa).await, vec![b"hello".to_vec()]);
        assert_eq!(drain(&ch, &qb).await, vec![b"hello".to_vec()]);
        delete_exchange(&conn, &x).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_exchange_routes_by_pattern() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("topic");
        declare_exchange(&ch, &x, ExchangeKind::Topic).await;
        let star = exclusive_queue(&ch).await;
        let hash = exclusive_queue(&ch).await;
        let exact = exclusive_queue(&ch).await;
        let all = exclusive_queue(&ch).await;
        bind_queue(&ch, &star, &x, "stock.*.nyse").await;
        bind_queue(&ch, &hash, &x, "stock.#").await;
        bind_queue(&ch, &exact, &x, "stock.ibm.nyse").await;
        bind_queue(&ch, &all, &x, "#").await;
        for key in [
            "stock.ibm.nyse",
            "stock.nyse",
            "stock.a.b.nyse",
            "stock",
            "bond.x.nyse",
            "",
        ] {
            publish(&ch, &x, key, key.as_bytes()).await;
        }
        let bodies = |v: Vec<Vec<u8>>| {
            v.into_iter()
                .map(|b| String::from_utf8(b).unwrap())
                .collect::<Vec<_>>()
        };
        assert_eq!(bodies(drain(&ch, &star).await), vec!["stock.ibm.nyse"]);
        assert_eq!(
            bodies(drain(&ch, &hash).await),
            vec!["stock.ibm.nyse", "stock.nyse", "stock.a.b.nyse", "stock"]
        );
        assert_eq!(bodies(drain(&ch, &exact).await), vec!["stock.ibm.nyse"]);
        assert_eq!(
            bodies(drain(&ch, &all).await),
            vec![
                "stock.ibm.nyse",
                "stock.nyse",
                "stock.a.b.nyse",
                "stock",
                "bond.x.nyse",
                ""
            ]
        );
        delete_exchange(&conn, &x).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_exchange_routes_with_x_match_all_and_any() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("headers");
        declare_exchange(&ch, &x, ExchangeKind::Headers).await;
        let q_all = exclusive_queue(&ch).await;
        let q_any = exclusive_queue(&ch).await;
        ch.queue_bind(
            q_all.as_str().into(),
            x.as_str().into(),
            "".into(),
            Default::default(),
            headers(&[("x-match", "all"), ("format", "pdf"), ("type", "report")]),
        )
        .await
        .unwrap();
        ch.queue_bind(
            q_any.as_str().into(),
            x.as_str().into(),
            "".into(),
            Default::default(),
            headers(&[("x-match", "any"), ("format", "pdf"), ("type", "report")]),
        )
        .await
        .unwrap();
        for (body, h) in [
            ("both", headers(&[("format", "pdf"), ("type", "report")])),
            ("format-only", headers(&[("format", "pdf")])),
            ("wrong", headers(&[("format", "zip"), ("type", "log")])),
            ("none", FieldTable::default()),
        ] {
            ch.basic_publish(
                x.as_str().into(),
                "ignored".into(),
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default().with_headers(h),
            )
            .await
            .unwrap();
        }
        assert_eq!(drain(&ch, &q_all).await, vec![b"both".to_vec()]);
        assert_eq!(
            drain(&ch, &q_any).await,
            vec![b"both".to_vec(), b"format-only".to_vec()]
        );
        delete_exchange(&conn, &x).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeclare_with_same_properties_is_ok() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("redeclare");
        for _ in 0..2 {
            declare_exchange(&ch, &x, ExchangeKind::Topic).await;
        }
        // passive declare ignores the type
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare of an existing exchange");
        delete_exchange(&conn, &x).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_declare_of_missing_exchange_is_not_found() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let res = ch
            .exchange_declare(
                unique("missing").as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        let text = expect_code(res, NOT_FOUND);
        assert!(text.starts_with("NOT_FOUND"), "{text}");
        assert!(!ch.status().connected(), "channel must be closed after 404");
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeclare_with_different_type_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("retype");
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;
        let res = ch
            .exchange_declare(
                x.as_str().into(),
                ExchangeKind::Fanout,
                Default::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(res, PRECONDITION_FAILED);
        assert!(!ch.status().connected());
        expect_connection_usable(&conn).await;
        // the original is untouched
        assert!(exchange_exists(&conn, &x).await);
        delete_exchange(&conn, &x).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeclare_with_different_durability_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("redurable");
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;
        let res = ch
            .exchange_declare(
                x.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        expect_code(res, PRECONDITION_FAILED);
        expect_connection_usable(&conn).await;
        delete_exchange(&conn, &x).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_amq_prefixed_exchange_is_access_refused() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let name = format!("amq.{}", unique("reserved"));
        let res = ch
            .exchange_declare(
                name.as_str().into(),
                ExchangeKind::Direct,
                Default::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(res, ACCESS_REFUSED);
        expect_connection_usable(&conn).await;
        assert!(!exchange_exists(&conn, &name).await);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predeclared_exchanges_exist() {
    let broker = Broker::start();
    timeout(async {
        let conn = broker.connect().await;
        for x in [
            "amq.direct",
            "amq.fanout",
            "amq.topic",
            "amq.headers",
            "amq.match",
        ] {
            assert!(exchange_exists(&conn, x).await, "{x} must exist");
        }
        // and they route
        let ch = conn.create_channel().await.unwrap();
        let q = exclusive_queue(&ch).await;
        bind_queue(&ch, &q, "amq.direct", &q).await;
        publish(&ch, "amq.direct", &q, b"via amq.direct").await;
        assert_eq!(
            get_body(&ch, &q).await.as_deref(),
            Some(&b"via amq.direct"[..])
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_exchange_then_passive_is_not_found() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("delete");
        declare_exchange(&ch, &x, ExchangeKind::Fanout).await;
        assert!(exchange_exists(&conn, &x).await);
        ch.exchange_delete(x.as_str().into(), Default::default())
            .await
            .expect("delete");
        assert!(!exchange_exists(&conn, &x).await);
        // deleting a missing exchange is not an error (RabbitMQ 3.x)
        ch.exchange_delete(x.as_str().into(), Default::default())
            .await
            .expect("delete of a missing exchange is ok");
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_if_unused_with_bindings_is_precondition_failed() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("ifunused");
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;
        let q = exclusive_queue(&ch).await;
        bind_queue(&ch, &q, &x, "k").await;
        let res = ch
            .exchange_delete(
                x.as_str().into(),
                ExchangeDeleteOptions {
                    if_unused: true,
                    ..Default::default()
                },
            )
            .await;
        expect_code(res, PRECONDITION_FAILED);
        assert!(exchange_exists(&conn, &x).await);
        // unused: fine
        let ch = conn.create_channel().await.unwrap();
        ch.confirm_select(Default::default()).await.unwrap();
        ch.queue_unbind(
            q.as_str().into(),
            x.as_str().into(),
            "k".into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        ch.exchange_delete(
            x.as_str().into(),
            ExchangeDeleteOptions {
                if_unused: true,
                ..Default::default()
            },
        )
        .await
        .expect("delete if-unused of an unbound exchange");
        assert!(!exchange_exists(&conn, &x).await);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_to_exchange_bindings_route() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let src = unique("e2e-src");
        let dst = unique("e2e-dst");
        declare_exchange(&ch, &src, ExchangeKind::Topic).await;
        declare_exchange(&ch, &dst, ExchangeKind::Fanout).await;
        let q = exclusive_queue(&ch).await;
        bind_queue(&ch, &q, &dst, "").await;
        ch.exchange_bind(
            dst.as_str().into(),
            src.as_str().into(),
            "a.*".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange.bind");
        publish(&ch, &src, "a.b", b"routed").await;
        publish(&ch, &src, "x.y", b"not routed").await;
        assert_eq!(drain(&ch, &q).await, vec![b"routed".to_vec()]);
        ch.exchange_unbind(
            dst.as_str().into(),
            src.as_str().into(),
            "a.*".into(),
            Default::default(),
            FieldTable::default(),
        )
        .await
        .expect("exchange.unbind");
        publish(&ch, &src, "a.b", b"after unbind").await;
        assert_eq!(drain(&ch, &q).await, Vec::<Vec<u8>>::new());
        delete_exchange(&conn, &src).await;
        delete_exchange(&conn, &dst).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_bind_to_missing_exchange_is_not_found() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("e2e-present");
        declare_exchange(&ch, &x, ExchangeKind::Direct).await;
        let res = ch
            .exchange_bind(
                x.as_str().into(),
                unique("e2e-missing").as_str().into(),
                "k".into(),
                Default::default(),
                FieldTable::default(),
            )
            .await;
        expect_code(res, NOT_FOUND);
        expect_connection_usable(&conn).await;
        delete_exchange(&conn, &x).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_delete_exchange_goes_away_with_its_last_binding() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let x = unique("autodelete");
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        // never bound: it stays
        assert!(exchange_exists(&conn, &x).await);
        let qa = exclusive_queue(&ch).await;
        let qb = exclusive_queue(&ch).await;
        bind_queue(&ch, &qa, &x, "a").await;
        bind_queue(&ch, &qb, &x, "b").await;
        ch.queue_unbind(
            qa.as_str().into(),
            x.as_str().into(),
            "a".into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        assert!(exchange_exists(&conn, &x).await, "one binding left");
        ch.queue_unbind(
            qb.as_str().into(),
            x.as_str().into(),
            "b".into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
        assert!(
            !exchange_exists(&conn, &x).await,
            "auto-delete exchange must be gone after its last unbind"
        );
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_internal_exchange_is_access_refused() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let x = unique("internal");
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                internal: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
        let mut watch = ErrorWatch::new(&conn);
        publish(&ch, &x, "", b"nope").await;
        let text = expect_channel_closed(&mut watch, &ch, ACCESS_REFUSED).await;
        assert!(text.starts_with("ACCESS_REFUSED"), "{text}");
        expect_connection_usable(&conn).await;
        delete_exchange(&conn, &x).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_missing_exchange_is_not_found() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.channel().await;
        let mut watch = ErrorWatch::new(&conn);
        publish(&ch, &unique("no-such-exchange"), "", b"nope").await;
        expect_channel_closed(&mut watch, &ch, NOT_FOUND).await;
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_exchange_routes_by_queue_name() {
    let broker = Broker::start();
    timeout(async {
        let (_conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        publish(&ch, "", &q, b"direct to queue").await;
        publish(&ch, "", &unique("nobody"), b"dropped").await;
        assert_eq!(drain(&ch, &q).await, vec![b"direct to queue".to_vec()]);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_exchange_cannot_be_bound() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let q = exclusive_queue(&ch).await;
        let res = ch
            .queue_bind(
                q.as_str().into(),
                "".into(),
                "other-key".into(),
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
async fn default_exchange_cannot_be_deleted() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let res = ch.exchange_delete("".into(), Default::default()).await;
        expect_code(res, ACCESS_REFUSED);
        expect_connection_usable(&conn).await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predeclared_amq_exchange_cannot_be_deleted() {
    let broker = Broker::start();
    timeout(async {
        let (conn, ch) = broker.confirm_channel().await;
        let res = ch
            .exchange_delete("amq.direct".into(), Default::default())
            .await;
        expect_code(res, ACCESS_REFUSED);
        expect_connection_usable(&conn).await;
        assert!(exchange_exists(&conn, "amq.direct").await);
    })
    .await
}
