"""STOMP messages are AMQP messages: properties and headers both ways."""

import time

import pika

from stomp_helpers import close, connect, unique


def get(ch, q, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method is not None:
            return method, props, body
        time.sleep(0.05)
    raise AssertionError(f"nothing in {q}")


def test_stomp_send_to_amqp_consumer(version, names, ch):
    q = names.track_queue(unique("x2a"))
    ch.queue_declare(q, durable=True)
    conn, c = connect(version)
    try:
        conn.send(f"/queue/{q}", "body \u00e9", headers={
            "persistent": "true", "content-type": "text/plain", "content-encoding": "utf-8",
            "reply-to": "/queue/replies", "correlation-id": "c-1", "expiration": "60000",
            "priority": "5", "amqp-message-id": "m-1", "type": "greeting", "timestamp": "1700000000",
            "app-id": "stomp-test", "user-id": "guest", "custom": "value", "receipt": "r"})
        c.wait_receipt("r")
    finally:
        close(conn)
    method, props, body = get(ch, q)
    assert body == "body \u00e9".encode()
    assert method.exchange == "" and method.routing_key == q
    assert props.delivery_mode == 2
    assert props.content_type == "text/plain"
    assert props.content_encoding == "utf-8"
    assert props.reply_to == "/queue/replies"
    assert props.correlation_id == "c-1"
    assert props.expiration == "60000"
    assert props.priority == 5
    assert props.message_id == "m-1"
    assert props.type == "greeting"
    assert props.timestamp == 1700000000
    assert props.app_id == "stomp-test"
    assert props.user_id == "guest"
    assert props.headers["custom"] == "value"
    # Everything that is not a property travels as a header, receipt included.
    assert props.headers["receipt"] == "r"
    assert "destination" not in props.headers and "persistent" not in props.headers


def test_non_persistent_send(names, ch):
    q = names.track_queue(unique("np"))
    ch.queue_declare(q, durable=True)
    conn, c = connect("1.2")
    try:
        conn.send(f"/queue/{q}", "t", receipt="r")
        c.wait_receipt("r")
    finally:
        close(conn)
    _, props, _ = get(ch, q)
    assert props.delivery_mode is None


def test_amqp_publish_to_stomp_subscriber(version, names, ch):
    q = names.track_queue(unique("a2s"))
    conn, c = connect(version)
    try:
        conn.subscribe(f"/queue/{q}", "s", receipt="s")
        c.wait_receipt("s")
        ch.basic_publish("", q, "caf\u00e9".encode(), pika.BasicProperties(
            content_type="application/json", content_encoding="utf-8", delivery_mode=2,
            priority=3, correlation_id="corr", reply_to="amq.gen-reply", expiration="50000",
            message_id="mid", timestamp=1234567890, type="t", user_id="guest", app_id="app",
            headers={"s": "text", "i": 42, "big": 2 ** 40, "flag": True}))
        [m] = c.wait_messages(1)
    finally:
        close(conn)
    h = m.headers
    assert m.body == "caf\u00e9"
    assert h["destination"] == f"/queue/{q}"
    assert h["content-type"] == "application/json"
    assert h["content-encoding"] == "utf-8"
    assert h["persistent"] == "true"
    assert h["priority"] == "3"
    assert h["correlation-id"] == "corr"
    # A bare queue name is shown as a destination a STOMP client can SEND to.
    assert h["reply-to"] == "/reply-queue/amq.gen-reply"
    assert h["expiration"] == "50000"
    assert h["amqp-message-id"] == "mid"
    assert h["timestamp"] == "1234567890"
    assert h["type"] == "t"
    assert h["user-id"] == "guest"
    assert h["app-id"] == "app"
    assert h["s"] == "text"
    assert h["i"] == "42"
    assert h["big"] == str(2 ** 40)
    # RabbitMQ drops header types it does not render (booleans, tables...).
    assert "flag" not in h


def test_headers_with_special_characters_reach_stomp_subscribers(version, names, ch):
    # RabbitMQ escapes ':' '\\' LF and CR in every version, 1.0 included, and
    # stomp.py unescapes in every version: the value arrives intact.
    q = names.track_queue(unique("esc"))
    conn, c = connect(version)
    try:
        conn.subscribe(f"/queue/{q}", "s", receipt="s")
        c.wait_receipt("s")
        ch.basic_publish("", q, b"x", pika.BasicProperties(headers={"k": "a:b\\c\nd"}))
        [m] = c.wait_messages(1)
        assert m.headers["k"] == "a:b\\c\nd"
    finally:
        close(conn)


def test_body_is_binary_safe(names, ch):
    q = names.track_queue(unique("bin"))
    body = bytes(range(256)) * 4
    raw_conn, c = connect("1.2")
    try:
        ch.queue_declare(q, durable=True)
        raw_conn.send(f"/queue/{q}", body, receipt="r", headers={"content-type": "application/octet-stream"})
        c.wait_receipt("r")
    finally:
        close(raw_conn)
    _, _, got = get(ch, q)
    assert got == body
