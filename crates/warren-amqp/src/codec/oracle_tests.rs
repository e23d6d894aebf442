//! Cross-checks against an independent implementation, the `amq-protocol` crate
//! (lapin's codec, generated from the same RabbitMQ spec by different code).
//!
//! Round trips through our own encoder and decoder cannot catch a mistake made the
//! same way in both (two bits swapped, two fields in the wrong order): these tests
//! can. amq-protocol drops fields that AMQP 0-9-1 reserves (and basic.qos'
//! prefetch-size), so whole-method equality is checked on the wire bytes instead.

use super::method::sample_methods;
use super::*;
use amq_protocol::frame::{gen_frame, parse_frame, AMQPFrame, WriteContext};
use amq_protocol::protocol::{basic, connection, exchange, queue, AMQPClass};
use amq_protocol::types::{AMQPValue, FieldTable as TheirTable};
use bytes::{Bytes, BytesMut};
use std::collections::BTreeMap;
use warren_core::{FieldTable, FieldValue, ShortStr};

fn their_bytes(class: AMQPClass) -> Vec<u8> {
    let frame = AMQPFrame::Method(1, class);
    let ctx = gen_frame(&frame)(WriteContext::from(Vec::new())).expect("amq-protocol encodes");
    ctx.write
}

fn their_parse(bytes: &[u8]) -> AMQPFrame {
    let (rest, frame) = parse_frame(bytes).expect("amq-protocol parses our frame");
    assert!(rest.is_empty(), "amq-protocol left {} bytes", rest.len());
    frame
}

fn ours(bytes: &[u8]) -> Method {
    let mut dec = FrameDecoder::new(0);
    let mut buf = BytesMut::from(bytes);
    match tokio_util::codec::Decoder::decode(&mut dec, &mut buf) {
        Ok(Some(Frame::Method(1, m))) => m,
        other => panic!("unexpected {other:?}"),
    }
}

fn our_bytes(m: &Method) -> Vec<u8> {
    let mut out = BytesMut::new();
    write_method(&mut out, 1, m);
    out.to_vec()
}

#[test]
fn amq_protocol_parses_every_method_we_encode() {
    for m in sample_methods(false).iter().chain(&sample_methods(true)) {
        let theirs = their_parse(&our_bytes(m));
        let AMQPFrame::Method(1, class) = &theirs else {
            panic!("{}: not a method frame", m.name())
        };
        // Their view, re-encoded by them and decoded by us, re-encodes to the same
        // view: nothing they model is lost or moved by our codec.
        let back = ours(&their_bytes(class.clone()));
        assert_eq!(back.name(), m.name());
        assert_eq!(their_parse(&our_bytes(&back)), theirs, "{}", m.name());
    }
}

#[test]
fn reserved_fields_at_default_match_byte_for_byte() {
    for m in sample_methods(true) {
        // amq-protocol always writes prefetch-size 0 in basic.qos, and ticket 1 in
        // access.request-ok (as RabbitMQ does).
        if m.name() == "basic.qos" || m.name() == "access.request-ok" {
            continue;
        }
        let bytes = our_bytes(&m);
        let AMQPFrame::Method(_, class) = their_parse(&bytes) else {
            panic!("not a method")
        };
        assert_eq!(their_bytes(class), bytes, "{}", m.name());
    }
}

fn their_table(k: &str, v: &str) -> TheirTable {
    let mut map = BTreeMap::new();
    map.insert(k.into(), AMQPValue::LongString(v.into()));
    TheirTable::from(map)
}

fn our_table(k: &str, v: &str) -> FieldTable {
    let mut t = FieldTable::new();
    t.insert(k, FieldValue::string(v));
    t
}

/// Field by field, with every bit set alone in turn: catches bit order and field
/// order mistakes.
#[test]
fn field_semantics_agree() {
    for bit in 0..5 {
        let on = |i: usize| i == bit;
        let theirs = AMQPClass::Exchange(exchange::AMQPMethod::Declare(exchange::Declare {
            exchange: "ex".into(),
            kind: "topic".into(),
            passive: on(0),
            durable: on(1),
            auto_delete: on(2),
            internal: on(3),
            nowait: on(4),
            arguments: their_table("alternate-exchange", "ae"),
        }));
        let expected = Method::ExchangeDeclare(ExchangeDeclare {
            reserved_1: 0,
            exchange: "ex".into(),
            kind: "topic".into(),
            passive: on(0),
            durable: on(1),
            auto_delete: on(2),
            internal: on(3),
            nowait: on(4),
            arguments: our_table("alternate-exchange", "ae"),
        });
        assert_eq!(ours(&their_bytes(theirs)), expected);

        let theirs = AMQPClass::Queue(queue::AMQPMethod::Declare(queue::Declare {
            queue: "q".into(),
            passive: on(0),
            durable: on(1),
            exclusive: on(2),
            auto_delete: on(3),
            nowait: on(4),
            arguments: their_table("x-queue-type", "classic"),
        }));
        let expected = Method::QueueDeclare(QueueDeclare {
            reserved_1: 0,
            queue: "q".into(),
            passive: on(0),
            durable: on(1),
            exclusive: on(2),
            auto_delete: on(3),
            nowait: on(4),
            arguments: our_table("x-queue-type", "classic"),
        });
        assert_eq!(ours(&their_bytes(theirs)), expected);

        let theirs = AMQPClass::Basic(basic::AMQPMethod::Consume(basic::Consume {
            queue: "q".into(),
            consumer_tag: "ctag".into(),
            no_local: on(0),
            no_ack: on(1),
            exclusive: on(2),
            nowait: on(3),
            arguments: their_table("x-priority", "p"),
        }));
        let expected = Method::BasicConsume(BasicConsume {
            reserved_1: 0,
            queue: "q".into(),
            consumer_tag: "ctag".into(),
            no_local: on(0),
            no_ack: on(1),
            exclusive: on(2),
            nowait: on(3),
            arguments: our_table("x-priority", "p"),
        });
        assert_eq!(ours(&their_bytes(theirs)), expected);

        let theirs = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            exchange: "amq.direct".into(),
            routing_key: "rk".into(),
            mandatory: on(0),
            immediate: on(1),
        }));
        let expected = Method::BasicPublish(BasicPublish {
            reserved_1: 0,
            exchange: "amq.direct".into(),
            routing_key: "rk".into(),
            mandatory: on(0),
            immediate: on(1),
        });
        assert_eq!(ours(&their_bytes(theirs)), expected);

        let theirs = AMQPClass::Basic(basic::AMQPMethod::Nack(basic::Nack {
            delivery_tag: 0x0102_0304_0506_0708,
            multiple: on(0),
            requeue: on(1),
        }));
        let expected = Method::BasicNack(BasicNack {
            delivery_tag: 0x0102_0304_0506_0708,
            multiple: on(0),
            requeue: on(1),
        });
        assert_eq!(ours(&their_bytes(theirs)), expected);

        let theirs = AMQPClass::Queue(queue::AMQPMethod::Delete(queue::Delete {
            queue: "q".into(),
            if_unused: on(0),
            if_empty: on(1),
            nowait: on(2),
        }));
        let expected = Method::QueueDelete(QueueDelete {
            reserved_1: 0,
            queue: "q".into(),
            if_unused: on(0),
            if_empty: on(1),
            nowait: on(2),
        });
        assert_eq!(ours(&their_bytes(theirs)), expected);
    }

    let theirs = AMQPClass::Basic(basic::AMQPMethod::Deliver(basic::Deliver {
        consumer_tag: "ctag".into(),
        delivery_tag: 77,
        redelivered: true,
        exchange: "ex".into(),
        routing_key: "rk".into(),
    }));
    let expected = Method::BasicDeliver(BasicDeliver {
        consumer_tag: "ctag".into(),
        delivery_tag: 77,
        redelivered: true,
        exchange: "ex".into(),
        routing_key: "rk".into(),
    });
    assert_eq!(ours(&their_bytes(theirs)), expected);

    let theirs = AMQPClass::Basic(basic::AMQPMethod::GetOk(basic::GetOk {
        delivery_tag: 9,
        redelivered: true,
        exchange: "ex".into(),
        routing_key: "rk".into(),
        message_count: 1234,
    }));
    let expected = Method::BasicGetOk(BasicGetOk {
        delivery_tag: 9,
        redelivered: true,
        exchange: "ex".into(),
        routing_key: "rk".into(),
        message_count: 1234,
    });
    assert_eq!(ours(&their_bytes(theirs)), expected);

    let theirs = AMQPClass::Connection(connection::AMQPMethod::StartOk(connection::StartOk {
        client_properties: their_table("product", "pika"),
        mechanism: "PLAIN".into(),
        response: "\0guest\0guest".into(),
        locale: "en_US".into(),
    }));
    let expected = Method::ConnectionStartOk(ConnectionStartOk {
        client_properties: our_table("product", "pika"),
        mechanism: "PLAIN".into(),
        response: Bytes::from_static(b"\0guest\0guest"),
        locale: "en_US".into(),
    });
    assert_eq!(ours(&their_bytes(theirs)), expected);

    let theirs = AMQPClass::Connection(connection::AMQPMethod::Tune(connection::Tune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    }));
    let expected = Method::ConnectionTune(ConnectionTune {
        channel_max: 2047,
        frame_max: 131_072,
        heartbeat: 60,
    });
    assert_eq!(ours(&their_bytes(theirs)), expected);

    let theirs = AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
        reply_code: 501,
        reply_text: "FRAME_ERROR".into(),
        class_id: 60,
        method_id: 40,
    }));
    let expected = Method::ConnectionClose(ConnectionClose {
        reply_code: 501,
        reply_text: ShortStr::from("FRAME_ERROR"),
        class_id: 60,
        method_id: 40,
    });
    assert_eq!(ours(&their_bytes(theirs)), expected);
}
