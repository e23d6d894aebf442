//! Codec tests: every packet round-trips for every version, framing across
//! splits, and the specification's malformed / protocol-error cases.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::Decoder;

use crate::Props;

use crate::codec::MqttCodec;
use crate::encode::{encode, encoded_len};
use crate::error::DecodeError;
use crate::packet::*;
use crate::properties::Properties;
use crate::reason::ReasonCode;

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn full_props() -> Properties {
    Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        content_type: Some(b("text/plain")),
        response_topic: Some(b("reply/here")),
        correlation_data: Some(Bytes::from_static(&[0, 1, 2])),
        user_properties: vec![(b("k"), b("v")), (b("k"), b("v2"))],
        subscription_identifiers: vec![1, 268_435_455],
        topic_alias: Some(3),
        ..Properties::default()
    }
}

/// Packets a client sends and packets a server sends, for `v`.
fn samples(v: Version) -> Vec<Packet> {
    let five = v.is_v5();
    let p = |x: Properties| if five { x } else { Properties::default() };
    let code = |c: ReasonCode| if five { c } else { ReasonCode::SUCCESS };
    vec![
        Packet::Connect(Box::new(Connect {
            version: v,
            clean_start: true,
            keep_alive: 30,
            properties: p(Properties {
                session_expiry_interval: Some(10),
                receive_maximum: Some(5),
                maximum_packet_size: Some(1000),
                topic_alias_maximum: Some(4),
                request_problem_information: Some(1),
                user_properties: vec![(b("a"), b("b"))],
                ..Properties::default()
            }),
            client_id: b("client-1"),
            will: Some(Will {
                topic: b("will/topic"),
                payload: b("gone"),
                qos: QoS::AtLeastOnce,
                retain: true,
                properties: p(Properties {
                    will_delay_interval: Some(5),
                    content_type: Some(b("t")),
                    ..Properties::default()
                }),
            }),
            username: Some(b("guest")),
            password: Some(b("guest")),
        })),
        Packet::Connack(Connack {
            session_present: true,
            code: ReasonCode::SUCCESS,
            properties: p(Properties {
                assigned_client_identifier: Some(b("x")),
                server_keep_alive: Some(10),
                maximum_qos: Some(1),
                retain_available: Some(1),
                reason_string: Some(b("ok")),
                ..Properties::default()
            })
            .into(),
        }),
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: true,
            topic: b("a/b"),
            packet_id: None,
            properties: p(full_props()).into(),
            payload: b("hello"),
        }),
        Packet::Publish(Publish {
            dup: true,
            qos: QoS::ExactlyOnce,
            retain: false,
            topic: b("a/b/c"),
            packet_id: Some(65535),
            properties: Props::NONE,
            payload: Bytes::new(),
        }),
        Packet::Puback(Ack::new(1, ReasonCode::SUCCESS)),
        Packet::Pubrec(Ack::new(2, code(ReasonCode::NO_MATCHING_SUBSCRIBERS))),
        Packet::Pubrel(Ack {
            packet_id: 3,
            code: code(ReasonCode::PACKET_IDENTIFIER_NOT_FOUND),
            properties: p(Properties {
                reason_string: Some(b("why")),
                ..Properties::default()
            })
            .into(),
        }),
        Packet::Pubcomp(Ack::new(4, ReasonCode::SUCCESS)),
        Packet::Subscribe(Subscribe {
            packet_id: 5,
            properties: p(Properties {
                subscription_identifiers: vec![7],
                ..Properties::default()
            })
            .into(),
            filters: vec![
                (b("a/+/c"), SubscriptionOptions::qos(QoS::AtLeastOnce)),
                (
                    b("#"),
                    SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        no_local: five,
                        retain_as_published: five,
                        retain_handling: if five { 2 } else { 0 },
                    },
                ),
            ],
        }),
        Packet::Suback(Suback {
            packet_id: 5,
            properties: Props::NONE,
            codes: vec![ReasonCode::GRANTED_QOS_1, ReasonCode::GRANTED_QOS_2],
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 6,
            properties: p(Properties {
                user_properties: vec![(b("x"), b("y"))],
                ..Properties::default()
            })
            .into(),
            filters: vec![b("a/+/c"), b("#")],
        }),
        Packet::Unsuback(Unsuback {
            packet_id: 6,
            properties: Props::NONE,
            codes: if five {
                vec![ReasonCode::SUCCESS, ReasonCode::NO_SUBSCRIPTION_EXISTED]
            } else {
                vec![]
            },
        }),
        Packet::Pingreq,
        Packet::Pingresp,
        Packet::Disconnect(Disconnect::new(ReasonCode::SUCCESS)),
        Packet::Disconnect(if five {
            Disconnect::with_reason(ReasonCode::SESSION_TAKEN_OVER, "taken")
        } else {
            Disconnect::new(ReasonCode::SUCCESS)
        }),
    ]
}

fn decode_all(v: Version, bytes: &[u8]) -> Result<Vec<Packet>, DecodeError> {
    let mut codec = MqttCodec::new(usize::MAX);
    codec.set_version(v);
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Some(p) = codec.decode(&mut buf)? {
        out.push(p);
    }
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(out)
}

#[test]
fn every_packet_round_trips_in_every_version() {
    for v in [Version::V3_1, Version::V3_1_1, Version::V5] {
        for p in samples(v) {
            let mut out = BytesMut::new();
            encode(&p, v, &mut out);
            assert_eq!(out.len(), encoded_len(&p, v), "{p:?}");
            let back = decode_all(v, &out).unwrap_or_else(|e| panic!("{v} {p:?}: {e}"));
            assert_eq!(back, vec![p], "{v}");
        }
    }
}

#[test]
fn packets_split_anywhere_decode_the_same() {
    let v = Version::V5;
    let mut all = BytesMut::new();
    let packets = samples(v);
    for p in &packets {
        encode(p, v, &mut all);
    }
    for chunk in [1, 2, 3, 7, 64] {
        let mut codec = MqttCodec::new(usize::MAX);
        codec.set_version(v);
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for piece in all.chunks(chunk) {
            buf.extend_from_slice(piece);
            while let Some(p) = codec.decode(&mut buf).expect("decodes") {
                got.push(p);
            }
        }
        assert_eq!(got, packets, "chunk {chunk}");
    }
}

#[test]
fn version_is_detected_from_connect() {
    for v in [Version::V3_1, Version::V3_1_1, Version::V5] {
        let mut out = BytesMut::new();
        encode(&samples(v)[0], v, &mut out);
        let mut codec = MqttCodec::new(usize::MAX);
        let p = codec.decode(&mut out).unwrap().unwrap();
        assert!(matches!(p, Packet::Connect(c) if c.version == v));
        assert_eq!(codec.version(), Some(v));
    }
}

fn err(v: Version, bytes: &[u8]) -> DecodeError {
    decode_all(v, bytes).expect_err("must fail")
}

#[test]
fn malformed_and_protocol_errors() {
    let v3 = Version::V3_1_1;
    let v5 = Version::V5;
    // Remaining length of five bytes.
    assert!(matches!(
        err(v3, &[0x30, 0xff, 0xff, 0xff, 0xff, 0x01]),
        DecodeError::Malformed(_)
    ));
    // PUBLISH with QoS 3.
    assert!(matches!(
        err(v3, &[0x36, 0x03, 0, 1, b'a']),
        DecodeError::Malformed(_)
    ));
    // PUBACK with packet id 0.
    assert!(matches!(
        err(v3, &[0x40, 0x02, 0, 0]),
        DecodeError::Protocol(_)
    ));
    // SUBSCRIBE with wrong fixed-header flags.
    assert!(matches!(
        err(v3, &[0x80, 0x06, 0, 1, 0, 1, b'a', 0]),
        DecodeError::Malformed(_)
    ));
    // SUBSCRIBE without filters.
    assert!(matches!(
        err(v3, &[0x82, 0x02, 0, 1]),
        DecodeError::Protocol(_)
    ));
    // Subscription QoS 3.
    assert!(matches!(
        err(v3, &[0x82, 0x06, 0, 1, 0, 1, b'a', 3]),
        DecodeError::Malformed(_)
    ));
    // 3.1.1 reserved option bits.
    assert!(matches!(
        err(v3, &[0x82, 0x06, 0, 1, 0, 1, b'a', 4]),
        DecodeError::Malformed(_)
    ));
    // Wildcard in a PUBLISH topic.
    assert!(matches!(
        err(v3, &[0x30, 0x03, 0, 1, b'#']),
        DecodeError::TopicName(_)
    ));
    // Invalid UTF-8 topic.
    assert!(matches!(
        err(v3, &[0x30, 0x03, 0, 1, 0xff]),
        DecodeError::Malformed(_)
    ));
    // U+0000 in a topic.
    assert!(matches!(
        err(v3, &[0x30, 0x03, 0, 1, 0]),
        DecodeError::Malformed(_)
    ));
    // String length beyond the packet.
    assert!(matches!(
        err(v3, &[0x30, 0x03, 0, 9, b'a']),
        DecodeError::Malformed(_)
    ));
    // Reserved packet type 15 in 3.1.1, 0 in any.
    assert!(matches!(err(v3, &[0xf0, 0x00]), DecodeError::Malformed(_)));
    assert!(matches!(err(v5, &[0x00, 0x00]), DecodeError::Malformed(_)));
    // Bytes after PINGREQ's (empty) body.
    assert!(matches!(
        err(v3, &[0xc0, 0x01, 0]),
        DecodeError::Malformed(_)
    ));
    // MQTT 5: duplicate property, property not allowed, unknown property.
    assert!(matches!(
        err(v5, &[0x30, 0x08, 0, 1, b'a', 4, 0x01, 1, 0x01, 1]),
        DecodeError::Protocol(_)
    ));
    assert!(matches!(
        err(v5, &[0x30, 0x06, 0, 1, b'a', 2, 0x21, 0]),
        DecodeError::Protocol(_)
    ));
    assert!(matches!(
        err(v5, &[0x30, 0x05, 0, 1, b'a', 1, 0x7f]),
        DecodeError::Protocol(_) | DecodeError::Malformed(_)
    ));
    // Topic alias 0; empty topic without alias.
    assert!(matches!(
        err(v5, &[0x30, 0x07, 0, 1, b'a', 3, 0x23, 0, 0]),
        DecodeError::Protocol(_)
    ));
    assert!(matches!(
        err(v5, &[0x30, 0x03, 0, 0, 0]),
        DecodeError::TopicName(_)
    ));
    // Retain handling 3.
    assert!(matches!(
        err(v5, &[0x82, 0x07, 0, 1, 0, 0, 1, b'a', 0x30]),
        DecodeError::Protocol(_)
    ));
}

#[test]
fn connect_errors() {
    let mut codec = MqttCodec::new(usize::MAX);
    // Protocol "MQTT" level 6.
    let mut buf = BytesMut::from(&[0x10, 0x0a, 0, 4, b'M', b'Q', b'T', b'T', 6, 2, 0, 0, 0, 0][..]);
    buf.truncate(12);
    let mut fixed =
        BytesMut::from(&[0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 6, 2, 0, 0, 0, 0][..]);
    assert!(matches!(
        codec.decode(&mut fixed),
        Err(DecodeError::UnsupportedVersion { level: 6, .. })
    ));
    // Reserved flag.
    let mut codec = MqttCodec::new(usize::MAX);
    let mut r = BytesMut::from(&[0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 3, 0, 0, 0, 0][..]);
    assert!(matches!(
        codec.decode(&mut r),
        Err(DecodeError::Malformed(_))
    ));
    // Will QoS without will flag.
    let mut codec = MqttCodec::new(usize::MAX);
    let mut r = BytesMut::from(
        &[
            0x10, 0x0c, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x0a, 0, 0, 0, 0,
        ][..],
    );
    assert!(matches!(
        codec.decode(&mut r),
        Err(DecodeError::Malformed(_))
    ));
}

#[test]
fn maximum_packet_size_is_checked_before_buffering() {
    let mut codec = MqttCodec::new(100);
    // Announces 2,097,152 bytes, sends only the header.
    let mut buf = BytesMut::from(&[0x30, 0x80, 0x80, 0x80, 0x01][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(DecodeError::TooLarge { .. })
    ));
    let mut codec = MqttCodec::new(100);
    let mut buf = BytesMut::from(&[0x30, 0x62][..]);
    assert!(matches!(
        codec.decode(&mut buf),
        Err(DecodeError::TooLarge { size: 100, .. })
    )
    .not());
}

trait Not {
    fn not(self) -> bool;
}
impl Not for bool {
    fn not(self) -> bool {
        !self
    }
}

/// A cheap deterministic generator: random bytes never panic the decoder,
/// and whatever decodes re-encodes to something that decodes the same.
#[test]
fn random_input_never_panics() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let seeds: Vec<BytesMut> = [Version::V3_1_1, Version::V5]
        .iter()
        .flat_map(|&v| {
            samples(v).into_iter().map(move |p| {
                let mut out = BytesMut::new();
                encode(&p, v, &mut out);
                out
            })
        })
        .collect();
    for i in 0..20_000 {
        let mut input = seeds[i % seeds.len()].clone();
        let flips = 1 + next() % 4;
        for _ in 0..flips {
            let at = (next() as usize) % input.len();
            input[at] = next() as u8;
        }
        for v in [Version::V3_1_1, Version::V5] {
            let mut codec = MqttCodec::new(1 << 20);
            codec.set_version(v);
            let mut buf = input.clone();
            while let Ok(Some(p)) = codec.decode(&mut buf) {
                let mut again = BytesMut::new();
                encode(&p, v, &mut again);
                let back = decode_all(v, &again).expect("re-encoded packet decodes");
                assert_eq!(back, vec![p]);
            }
        }
    }
}
