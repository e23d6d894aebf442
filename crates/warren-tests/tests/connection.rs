//! Connection-level behaviour: protocol header, connection.start contents,
//! authentication, vhosts, tuning and heartbeats.

use std::time::Duration;

use warren_tests::{
    codes::*,
    expect_code,
    lapin::{
        options::QueueDeclareOptions,
        types::{AMQPValue, FieldTable},
        Connection, ConnectionProperties,
    },
    raw::{m, Args, RawConn, Read, Tune, FRAME_BODY, FRAME_HEARTBEAT, PROTOCOL_HEADER},
    timeout, unique, Broker,
};

/// An unsupported protocol version: the server answers with the version it
/// speaks and closes the socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_header_wrong_version_gets_supported_version() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::connect(&broker).await;
        c.send(b"AMQP\x00\x00\x09\x00").await;
        let reply = c.read_bytes(8, 10).await;
        assert_eq!(
            reply, PROTOCOL_HEADER,
            "server must answer with AMQP 0-9-1 header"
        );
        c.expect_eof(5).await;
        broker.assert_alive().await;
    })
    .await
}

/// Garbage instead of a protocol header (e.g. an HTTP request).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_header_garbage_gets_supported_version() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::connect(&broker).await;
        c.send(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n").await;
        let reply = c.read_bytes(8, 10).await;
        assert_eq!(
            reply, PROTOCOL_HEADER,
            "server must answer with AMQP 0-9-1 header"
        );
        c.expect_eof(5).await;
        broker.assert_alive().await;
    })
    .await
}

/// connection.start: version 0-9, PLAIN offered, en_US locale, and the
/// RabbitMQ capability table clients rely on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_start_advertises_capabilities() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::connect(&broker).await;
        let start = c.start().await;
        assert_eq!((start.version_major, start.version_minor), (0, 9));
        assert!(
            start.mechanisms.split(' ').any(|m| m == "PLAIN"),
            "mechanisms: {:?}",
            start.mechanisms
        );
        assert!(
            start.locales.split(' ').any(|l| l == "en_US"),
            "locales: {:?}",
            start.locales
        );
        let props = start.server_properties.inner();
        for key in ["product", "version", "platform"] {
            assert!(
                props.contains_key(key),
                "server_properties lacks {key}: {props:?}"
            );
        }
        let caps = match props.get("capabilities") {
            Some(AMQPValue::FieldTable(t)) => t.clone(),
            other => panic!("capabilities must be a table, got {other:?}"),
        };
        for cap in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
            "per_consumer_qos",
            "direct_reply_to",
        ] {
            assert_eq!(
                caps.inner().get(cap),
                Some(&AMQPValue::Boolean(true)),
                "capability {cap} must be true; capabilities: {caps:?}"
            );
        }
    })
    .await
}

/// Wrong password through lapin: 403 ACCESS_REFUSED (lapin announces
/// authentication_failure_close).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_password_is_access_refused() {
    let broker = Broker::start();
    timeout(async {
        let url = broker.url_with_credentials(broker.username(), "definitely-wrong-password");
        let res = Connection::connect(&url, ConnectionProperties::default()).await;
        let text = expect_code(res.map(|_| ()), ACCESS_REFUSED);
        assert!(text.starts_with("ACCESS_REFUSED"), "reply text: {text:?}");
        broker.assert_alive().await;
    })
    .await
}

/// Unknown user, raw socket: connection.close 403 then the socket closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_raw_gets_connection_close_403() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::connect(&broker).await;
        c.start().await;
        c.start_ok(&unique("nobody"), "x").await;
        let close = c.expect_connection_close(ACCESS_REFUSED).await;
        assert_eq!((close.class_id, close.method_id), (0, 0), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

/// Unsupported SASL mechanism in start-ok. RabbitMQ 3.10 treats this as a
/// handshake error (command_invalid, "unknown authentication mechanism") and
/// closes the socket without sending connection.close (after a ~3 s delay).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_sasl_mechanism_is_rejected() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::connect(&broker).await;
        c.start().await;
        let args = Args::new()
            .empty_table()
            .shortstr("NOT-A-MECHANISM")
            .longstr(b"\0guest\0guest")
            .shortstr("en_US")
            .build();
        c.send_method(0, m::CONNECTION_START_OK, args).await;
        c.expect_handshake_rejected(COMMAND_INVALID, 10).await;
        broker.assert_alive().await;
    })
    .await
}

/// Opening a vhost that does not exist: 530 NOT_ALLOWED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_vhost_is_not_allowed() {
    let broker = Broker::start();
    timeout(async {
        let url = broker.url_with_vhost(&unique("no-such-vhost"));
        let res = Connection::connect(&url, ConnectionProperties::default()).await;
        expect_code(res.map(|_| ()), NOT_ALLOWED);
        broker.assert_alive().await;
    })
    .await
}

/// The server's tune proposal and the client's tune-ok values are honoured
/// by lapin's negotiation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tune_negotiation_via_lapin() {
    let broker = Broker::start();
    timeout(async {
        let conn = broker
            .connect_url(&broker.url_with("channel_max=7&frame_max=8192&heartbeat=5"))
            .await;
        let cfg = conn.configuration();
        assert_eq!(cfg.channel_max(), 7);
        assert_eq!(cfg.frame_max(), 8192);
        assert_eq!(cfg.heartbeat(), 5);
        // a message bigger than frame_max round-trips
        let ch = conn.create_channel().await.unwrap();
        let q = ch
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        let body: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
        ch.basic_publish(
            "".into(),
            q.name().clone(),
            Default::default(),
            &body,
            Default::default(),
        )
        .await
        .unwrap();
        let got = ch
            .basic_get(
                q.name().clone(),
                warren_tests::lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
            .expect("message");
        assert_eq!(got.delivery.data, body);
        conn.close(200, "bye".into()).await.unwrap();
    })
    .await
}

/// The server proposes sane tune values, and when the client negotiates a
/// small frame_max the server never sends a bigger frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_respects_negotiated_frame_max() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake_with(&broker, |t| {
            assert!(
                t.frame_max == 0 || t.frame_max >= 4096,
                "server frame_max {t:?}"
            );
            Tune {
                channel_max: t.channel_max,
                frame_max: 4096,
                heartbeat: 0,
            }
        })
        .await;
        c.open_channel(1).await;
        let q = unique("fmax");
        c.declare_exclusive_queue(1, &q).await;
        // publish a 10000-byte body in 4096-byte frames
        let body = vec![7u8; 10_000];
        let mut bytes = RawConn::publish_frame(1, &q);
        bytes.extend(warren_tests::raw::header_frame(1, body.len() as u64));
        for chunk in body.chunks(4096 - 8) {
            bytes.extend(warren_tests::raw::frame(FRAME_BODY, 1, chunk));
        }
        c.send(&bytes).await;
        // basic.get no-ack
        c.send_method(
            1,
            m::BASIC_GET,
            Args::new().u16(0).shortstr(&q).bits(&[true]).build(),
        )
        .await;
        c.expect_method(1, m::BASIC_GET_OK).await;
        let header = c.next_frame().await;
        assert!(header.wire_size() <= 4096);
        let mut received = 0;
        while received < body.len() {
            let f = c.next_frame().await;
            assert_eq!(f.typ, FRAME_BODY, "{f:?}");
            assert!(
                f.wire_size() <= 4096,
                "server sent a {}-byte frame with frame_max 4096",
                f.wire_size()
            );
            received += f.payload.len();
        }
        assert_eq!(received, body.len());
    })
    .await
}

/// tune-ok with frame_max below the 4096 minimum. RabbitMQ 3.10 logs
/// "negotiated frame_max = 1024 is lower than the minimum allowed value
/// (4096)" and closes the socket without connection.close (after ~3 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_max_below_minimum_is_refused() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::connect(&broker).await;
        c.start().await;
        c.start_ok(broker.username(), broker.password()).await;
        let t = c.read_tune().await;
        c.tune_ok(Tune {
            frame_max: 1024,
            ..t
        })
        .await;
        c.open(broker.vhost()).await;
        c.expect_handshake_rejected(NOT_ALLOWED, 10).await;
        broker.assert_alive().await;
    })
    .await
}

/// Opening more channels than the negotiated channel_max.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_max_is_enforced() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake_with(&broker, |t| Tune {
            channel_max: 2,
            heartbeat: 0,
            ..t
        })
        .await;
        // RabbitMQ limits how many channels are open, not their numbers:
        // channel 65535 is fine with channel_max 2.
        c.open_channel(1).await;
        c.open_channel(65535).await;
        c.send_method(3, m::CHANNEL_OPEN, Args::new().shortstr("").build())
            .await;
        let close = c.expect_connection_close(NOT_ALLOWED).await;
        assert_eq!(
            close.text,
            "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"
        );
        assert_eq!((close.class_id, close.method_id), (0, 0));
        broker.assert_alive().await;
    })
    .await
}

/// A closed channel frees its place under channel_max.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_channels_free_their_place_under_channel_max() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake_with(&broker, |t| Tune {
            channel_max: 1,
            heartbeat: 0,
            ..t
        })
        .await;
        for ch in [7u16, 65535, 7] {
            c.open_channel(ch).await;
            let args = Args::new().u16(200).shortstr("").u16(0).u16(0).build();
            c.send_method(ch, m::CHANNEL_CLOSE, args).await;
            c.expect_method(ch, m::CHANNEL_CLOSE_OK).await;
        }
    })
    .await
}

/// With heartbeat=1 an idle lapin connection stays alive (lapin sends
/// heartbeats, the server does not drop it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_keeps_idle_connection_alive() {
    let broker = Broker::start();
    timeout(async {
        let conn = broker.connect_url(&broker.url_with("heartbeat=1")).await;
        assert_eq!(conn.configuration().heartbeat(), 1);
        tokio::time::sleep(Duration::from_millis(3500)).await;
        assert!(conn.status().connected());
        warren_tests::expect_connection_usable(&conn).await;
        conn.close(200, "bye".into()).await.unwrap();
    })
    .await
}

/// The server sends heartbeat frames when heartbeat is negotiated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_sends_heartbeats() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake_with(&broker, |t| Tune { heartbeat: 1, ..t }).await;
        let mut beats = 0;
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(2500) {
            // keep our side alive too
            c.send(&warren_tests::raw::frame(FRAME_HEARTBEAT, 0, &[]))
                .await;
            match c.read_frame(1).await {
                Read::Frame(f) => {
                    assert_eq!((f.typ, f.channel), (FRAME_HEARTBEAT, 0), "unexpected {f:?}");
                    beats += 1;
                }
                Read::Timeout => {}
                Read::Eof => panic!("server closed a heartbeating connection"),
            }
        }
        assert!(
            beats >= 1,
            "no heartbeat from the server in 2.5s with heartbeat=1"
        );
    })
    .await
}

/// A client that negotiated heartbeat=1 and then goes silent is
/// disconnected by the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_client_is_disconnected_after_missed_heartbeats() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake_with(&broker, |t| Tune { heartbeat: 1, ..t }).await;
        let start = std::time::Instant::now();
        c.expect_eof(10).await;
        let took = start.elapsed();
        assert!(
            took >= Duration::from_millis(1000),
            "disconnected too early: {took:?}"
        );
        broker.assert_alive().await;
    })
    .await
}

/// Graceful close from the client: the server answers close-ok. (RabbitMQ
/// then waits for the client to close the socket, so that is not asserted.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_gets_close_ok() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        let args = Args::new().u16(200).shortstr("bye").u16(0).u16(0).build();
        c.send_method(0, m::CONNECTION_CLOSE, args).await;
        c.expect_method(0, m::CONNECTION_CLOSE_OK).await;
    })
    .await
}

/// A publish on channel `ch` with a 10-byte body: method, header and body frames.
fn publish_bytes(ch: u16, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.extend(RawConn::publish_frame(ch, "nowhere"));
        out.extend(warren_tests::raw::header_frame(ch, 10));
        out.extend(warren_tests::raw::frame(FRAME_BODY, ch, b"0123456789"));
    }
    out
}

/// A client that asks to close and keeps writing (amqplib flushes queued
/// publishes after its connection.close): as with RabbitMQ, the server sends
/// close-ok, keeps reading and dropping what follows, and closes only after the
/// client closed its side, so the client never sees EPIPE or a reset and gets
/// its close-ok.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_close_then_more_writes_gets_close_ok_and_no_reset() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        let args = Args::new().u16(200).shortstr("bye").u16(0).u16(0).build();
        c.send_method(0, m::CONNECTION_CLOSE, args).await;
        let burst = publish_bytes(1, 2000);
        for chunk in burst.chunks(4096) {
            c.try_send(chunk)
                .await
                .expect("writes after connection.close must not fail");
        }
        // Heartbeats are off: RabbitMQ waits up to 30 s for the client.
        assert!(
            c.stays_open(1000).await,
            "server closed the socket before the client did"
        );
        c.try_send(&publish_bytes(1, 10)).await.expect("late write");
        c.shutdown_write().await;
        let frames = c
            .frames_until_eof(10)
            .await
            .expect("the server must close cleanly, without a reset");
        assert!(
            frames.iter().any(|f| f.is(m::CONNECTION_CLOSE_OK)),
            "no close-ok among {frames:?}"
        );
        broker.assert_alive().await;
    })
    .await
}

/// With a heartbeat negotiated, a closed connection waits at most that long
/// for the client to close its side (RabbitMQ's rule).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_connection_gives_up_after_the_heartbeat_interval() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake_with(&broker, |t| Tune { heartbeat: 2, ..t }).await;
        let args = Args::new().u16(200).shortstr("bye").u16(0).u16(0).build();
        c.send_method(0, m::CONNECTION_CLOSE, args).await;
        let started = std::time::Instant::now();
        let frames = c.frames_until_eof(20).await.expect("clean close");
        assert!(frames.iter().any(|f| f.is(m::CONNECTION_CLOSE_OK)));
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(1500),
            "closed after {took:?}, before the client could"
        );
    })
    .await
}

/// A hard error while the client keeps writing: the server sends
/// connection.close, drops the frames that follow, and closes the socket once
/// it has close-ok, without resetting it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_close_while_client_writes_waits_for_close_ok() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        // A method on a channel that was never opened: 504, a hard error.
        let get = Args::new().u16(0).shortstr("q").bits(&[true]).build();
        c.send_method(9, m::BASIC_GET, get).await;
        for chunk in publish_bytes(1, 2000).chunks(4096) {
            c.try_send(chunk)
                .await
                .expect("writes before close-ok must not fail");
        }
        let close = loop {
            match c.read_frame(10).await {
                Read::Frame(f) if f.is(m::CONNECTION_CLOSE) => {
                    break warren_tests::raw::Close::parse(&f)
                }
                Read::Frame(_) => continue,
                other => panic!("expected connection.close, got {other:?}"),
            }
        };
        assert_eq!(close.code, CHANNEL_ERROR);
        assert!(c.stays_open(500).await, "server closed before close-ok");
        c.try_send(&warren_tests::raw::method_frame(
            0,
            m::CONNECTION_CLOSE_OK,
            &[],
        ))
        .await
        .expect("close-ok");
        c.frames_until_eof(10)
            .await
            .expect("the server must close cleanly once it has close-ok");
        broker.assert_alive().await;
    })
    .await
}
