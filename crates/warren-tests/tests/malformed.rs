//! Malformed and out-of-order input over a raw socket. After each case the
//! broker must keep serving other clients.

use warren_tests::{
    codes::*,
    raw::{
        frame, header_frame, m, method_frame, Args, RawConn, FRAME_BODY, FRAME_HEADER,
        FRAME_HEARTBEAT, FRAME_METHOD,
    },
    timeout, unique, Broker,
};

/// channel.open on `channel` as raw frame bytes.
fn channel_open(channel: u16) -> Vec<u8> {
    method_frame(channel, m::CHANNEL_OPEN, &Args::new().shortstr("").build())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_after_handshake_is_frame_error() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        // 'g' is not a frame type
        c.send(b"garbage garbage garbage garbage\r\n").await;
        let close = c.expect_connection_close(FRAME_ERROR).await;
        assert!(close.text.starts_with("FRAME_ERROR"), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_frame_type_is_frame_error() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.send(&frame(9, 0, b"abc")).await;
        c.expect_connection_close(FRAME_ERROR).await;
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_frame_end_octet_is_frame_error() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        let mut bytes = channel_open(1);
        *bytes.last_mut().unwrap() = 0x00;
        c.send(&bytes).await;
        let close = c.expect_connection_close(FRAME_ERROR).await;
        assert!(close.text.starts_with("FRAME_ERROR"), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_larger_than_frame_max_is_frame_error() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake_with(&broker, |t| warren_tests::raw::Tune {
            frame_max: 4096,
            heartbeat: 0,
            ..t
        })
        .await;
        c.open_channel(1).await;
        let q = unique("bigframe");
        c.declare_exclusive_queue(1, &q).await;
        let mut bytes = RawConn::publish_frame(1, &q);
        bytes.extend(header_frame(1, 10_000));
        // a single 10000-byte body frame with frame_max 4096
        bytes.extend(frame(FRAME_BODY, 1, &[1u8; 10_000]));
        c.send_lossy(&bytes).await;
        let close = c.expect_connection_close(FRAME_ERROR).await;
        assert!(close.text.starts_with("FRAME_ERROR"), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_on_unopened_channel_is_channel_error() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        // queue.declare on channel 5, never opened
        let args = Args::new()
            .u16(0)
            .shortstr("")
            .bits(&[false, false, true, false, false])
            .empty_table()
            .build();
        c.send_method(5, m::QUEUE_DECLARE, args).await;
        let close = c.expect_connection_close(CHANNEL_ERROR).await;
        assert!(close.text.starts_with("CHANNEL_ERROR"), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_channel_open_is_channel_error() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        c.send(&channel_open(1)).await;
        let close = c.expect_connection_close(CHANNEL_ERROR).await;
        assert!(close.text.starts_with("CHANNEL_ERROR"), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_body_without_header_is_unexpected_frame() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        c.send(&frame(FRAME_BODY, 1, b"orphan body")).await;
        let close = c.expect_connection_close(UNEXPECTED_FRAME).await;
        assert!(close.text.starts_with("UNEXPECTED_FRAME"), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_header_without_publish_is_unexpected_frame() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        c.send(&header_frame(1, 5)).await;
        c.expect_connection_close(UNEXPECTED_FRAME).await;
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_instead_of_content_header_is_unexpected_frame() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        let q = unique("nohdr");
        c.declare_exclusive_queue(1, &q).await;
        let mut bytes = RawConn::publish_frame(1, &q);
        bytes.extend(RawConn::publish_frame(1, &q));
        c.send(&bytes).await;
        c.expect_connection_close(UNEXPECTED_FRAME).await;
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_instead_of_content_body_is_unexpected_frame() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        let q = unique("nobody");
        c.declare_exclusive_queue(1, &q).await;
        let mut bytes = RawConn::publish_frame(1, &q);
        bytes.extend(header_frame(1, 10));
        bytes.extend(frame(FRAME_BODY, 1, b"12345"));
        bytes.extend(RawConn::publish_frame(1, &q));
        c.send(&bytes).await;
        c.expect_connection_close(UNEXPECTED_FRAME).await;
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_longer_than_header_size_is_rejected() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        let q = unique("overlong");
        c.declare_exclusive_queue(1, &q).await;
        let mut bytes = RawConn::publish_frame(1, &q);
        bytes.extend(header_frame(1, 3));
        bytes.extend(frame(FRAME_BODY, 1, b"12345"));
        // RabbitMQ 3.10 does not notice the overrun itself (it keeps waiting
        // for "more" body); the next method frame is then UNEXPECTED_FRAME.
        // A server that rejects the overlong body at once with FRAME_ERROR
        // is fine too.
        bytes.extend(RawConn::publish_frame(1, &q));
        c.send_lossy(&bytes).await;
        c.expect_connection_close_in(&[FRAME_ERROR, UNEXPECTED_FRAME])
            .await;
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_method_id_drops_connection() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        c.send(&method_frame(1, (60, 999), &[])).await;
        // RabbitMQ 3.10's reader crashes ({unknown_method_id, ...}) and drops
        // the socket without connection.close; a close must be 540 or 503.
        c.expect_disconnect(&[NOT_IMPLEMENTED, COMMAND_INVALID], 10)
            .await;
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_class_id_drops_connection() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        c.send(&method_frame(1, (999, 10), &[])).await;
        // RabbitMQ 3.10's reader crashes ({unknown_method_id, ...}) and drops
        // the socket without connection.close; a close must be 540 or 503.
        c.expect_disconnect(&[NOT_IMPLEMENTED, COMMAND_INVALID], 10)
            .await;
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_method_arguments_are_frame_error() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        // queue.declare with only the reserved short: arguments missing
        c.send(&frame(
            FRAME_METHOD,
            1,
            &Args::new().u16(50).u16(10).u16(0).build(),
        ))
        .await;
        let close = c.expect_connection_close(FRAME_ERROR).await;
        assert!(close.text.starts_with("FRAME_ERROR"), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_on_nonzero_channel_is_unexpected_frame() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.open_channel(1).await;
        c.send(&frame(FRAME_HEARTBEAT, 1, &[])).await;
        // RabbitMQ 3.10: 505 "UNEXPECTED_FRAME - type 8, all octets = <<>>"
        let close = c.expect_connection_close(UNEXPECTED_FRAME).await;
        assert!(close.text.starts_with("UNEXPECTED_FRAME"), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_method_on_channel_zero_is_channel_error() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        let args = Args::new()
            .u16(0)
            .shortstr("")
            .bits(&[false, false, true, false, false])
            .empty_table()
            .build();
        c.send_method(0, m::QUEUE_DECLARE, args).await;
        // RabbitMQ 3.10: 504 "CHANNEL_ERROR - unexpected method in connection
        // state running"
        let close = c.expect_connection_close(CHANNEL_ERROR).await;
        assert!(close.text.starts_with("CHANNEL_ERROR"), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_header_on_channel_zero_is_unexpected_frame() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        c.send(&frame(
            FRAME_HEADER,
            0,
            &Args::new().u16(60).u16(0).u64(0).u16(0).build(),
        ))
        .await;
        let close = c.expect_connection_close(UNEXPECTED_FRAME).await;
        assert!(close.text.starts_with("UNEXPECTED_FRAME"), "{close:?}");
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_then_disconnect() {
    let broker = Broker::start();
    timeout(async {
        for cut in [1usize, 5, 7, 12] {
            let mut c = RawConn::handshake(&broker).await;
            let bytes = channel_open(1);
            c.send(&bytes[..cut.min(bytes.len() - 1)]).await;
            drop(c);
        }
        // also mid-handshake
        let mut c = RawConn::connect(&broker).await;
        c.send(b"AMQP\x00\x00").await;
        drop(c);
        let mut c = RawConn::connect(&broker).await;
        c.start().await;
        c.send(&method_frame(0, m::CONNECTION_START_OK, &[0, 0])[..9])
            .await;
        drop(c);
        broker.assert_alive().await;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_then_silence_keeps_other_clients_served() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::handshake(&broker).await;
        let bytes = channel_open(1);
        c.send(&bytes[..bytes.len() - 3]).await;
        // the half-sent frame must not block anybody else
        broker.assert_alive().await;
        drop(c);
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn method_before_handshake_completes_drops_connection() {
    let broker = Broker::start();
    timeout(async {
        let mut c = RawConn::connect(&broker).await;
        c.start().await;
        // channel.open instead of start-ok
        c.send(&channel_open(1)).await;
        // RabbitMQ 3.10: handshake_error unexpected_frame, socket closed
        // silently after ~3 s.
        c.expect_disconnect(&[UNEXPECTED_FRAME, COMMAND_INVALID], 10)
            .await;
        broker.assert_alive().await;
    })
    .await
}
