"""Scenario 2: publish/subscribe through a fanout exchange."""

import datetime
import decimal

import pika

from helpers import username

# Every property field a client can set, with a header table exercising all
# field-value types pika can encode (nested table, array, ints of both widths,
# bool, str, bytes, decimal, timestamp, void).
HEADERS = {
    "string": "hello",
    "unicode": "h\u00e9llo \u2603",
    "empty-string": "",
    "int": 42,
    "negative": -7,
    "int64": 2**40,
    "bool-true": True,
    "bool-false": False,
    "bytes": b"\x00\xff\xfe binary",
    "decimal": decimal.Decimal("3.14"),
    "timestamp": datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc),
    "void": None,
    "array": [1, "two", True, [3, 4], {"five": 5}],
    "empty-array": [],
    "table": {"nested": {"deeper": {"x": 1, "list": ["a", "b"]}}, "flag": False},
    "empty-table": {},
}


def full_properties():
    return pika.BasicProperties(
        content_type="application/json",
        content_encoding="gzip",
        headers=HEADERS,
        delivery_mode=2,
        priority=5,
        correlation_id="corr-123",
        reply_to="reply.queue",
        expiration="60000",
        message_id="msg-456",
        timestamp=1700000000,
        type="picture.uploaded",
        user_id=username(),  # RabbitMQ rejects a user_id that isn't the login user
        app_id="uploader",
    )


PROPERTY_FIELDS = ["content_type", "content_encoding", "headers", "delivery_mode", "priority",
                   "correlation_id", "reply_to", "expiration", "message_id", "timestamp",
                   "type", "user_id", "app_id"]


def test_fanout_reaches_all_subscribers_with_identical_properties(ch, names):
    exchange = names.exchange("upload-pictures")
    ch.exchange_declare(exchange, "fanout")
    queues = {}
    for role in ["resize", "notify", "points", "log"]:
        q = names.queue(role)
        ch.queue_declare(q)
        # Fanout ignores the binding key.
        ch.queue_bind(q, exchange, routing_key="ignored" if role == "log" else "")
        queues[role] = q

    sent_props = full_properties()
    body = b'{"picture": 1}\x00\xff' + bytes(range(256))
    ch.confirm_delivery()
    ch.basic_publish(exchange, "some.routing.key", body, properties=sent_props, mandatory=True)

    for role, q in queues.items():
        method, props, got = ch.basic_get(q, auto_ack=True)
        assert method is not None, f"{role} got nothing"
        assert got == body
        assert method.exchange == exchange
        assert method.routing_key == "some.routing.key"
        assert method.redelivered is False
        assert method.message_count == 0
        for field in PROPERTY_FIELDS:
            assert getattr(props, field) == getattr(sent_props, field), field
        assert props.headers == HEADERS
        # Exactly one copy per queue.
        assert ch.basic_get(q)[0] is None


def test_fanout_with_no_queues_drops_message_silently(ch, names):
    exchange = names.exchange("upload-pictures")
    ch.exchange_declare(exchange, "fanout")
    ch.confirm_delivery()
    # Not mandatory: confirmed (acked) even though nobody receives it.
    ch.basic_publish(exchange, "", b"lost")
    assert ch.is_open


def test_empty_body_and_no_properties(ch, names):
    exchange = names.exchange("upload-pictures")
    ch.exchange_declare(exchange, "fanout")
    q = names.queue("log")
    ch.queue_declare(q)
    ch.queue_bind(q, exchange)
    ch.confirm_delivery()
    ch.basic_publish(exchange, "", b"")
    method, props, body = ch.basic_get(q, auto_ack=True)
    assert body == b""
    for field in PROPERTY_FIELDS:
        assert getattr(props, field) is None, field


def test_large_body_spanning_many_frames(ch, names):
    exchange = names.exchange("upload-pictures")
    ch.exchange_declare(exchange, "fanout")
    qs = [names.queue("resize"), names.queue("log")]
    for q in qs:
        ch.queue_declare(q)
        ch.queue_bind(q, exchange)
    body = bytes(range(256)) * 4096  # 1 MiB, far above frame_max
    ch.confirm_delivery()
    ch.basic_publish(exchange, "", body)
    for q in qs:
        method, _props, got = ch.basic_get(q, auto_ack=True)
        assert got == body
