"""ERROR frames with RabbitMQ's texts; which errors keep the connection."""

import pytest

from stomp_helpers import RawClient, close, connect, unique


@pytest.fixture
def raw():
    r = RawClient()
    r.connect()
    yield r
    r.close()


def error_of(raw, frame: bytes):
    raw.send(frame)
    f = raw.frame()
    assert f is not None and f.command == "ERROR", f
    return f.headers["message"], f.body


@pytest.mark.parametrize("dest,content,kind", [
    ("/queue", "", "queue"),
    ("/queue/bah/baz", "/bah/baz", "queue"),
    ("/topic", "", "topic"),
    ("/topic/bah/baz", "/bah/baz", "topic"),
    ("/exchange", "", "exchange"),
    ("/exchange/bah/baz/boo", "/bah/baz/boo", "exchange"),
    ("/exchange//foo", "//foo", "exchange"),
    ("/amq/queue", "", "amqqueue"),
    ("/reply-queue/", "/", "reply_queue"),
])
def test_invalid_destinations_keep_the_connection(raw, dest, content, kind):
    msg, body = error_of(raw, b"SEND\ndestination:" + dest.encode() + b"\n\nx\x00")
    assert msg == "Invalid destination"
    assert body == f"'{content}' is not a valid {kind} destination\n".encode()
    raw.send(b"BEGIN\ntransaction:t\nreceipt:alive\n\n\x00")
    assert raw.frame().headers["receipt-id"] == "alive"


def test_unknown_destination(raw):
    msg, body = error_of(raw, b"SEND\ndestination:/something/else\n\nx\x00")
    assert msg == "Unknown destination"
    assert body == (b"'/something/else' is not a valid destination.\nValid destination types "
                    b"are: /temp-queue, /exchange, /topic, /queue, /amq/queue, /reply-queue/.\n")


def test_blank_destination(raw):
    assert error_of(raw, b"SEND\ndestination:\n\nx\x00") == (
        "Invalid destination", b"Destination cannot be blank")


@pytest.mark.parametrize("command", [b"SEND", b"SUBSCRIBE"])
def test_missing_destination(raw, command):
    msg, body = error_of(raw, command + b"\nreceipt:r\n\nx\x00")
    assert msg == "Missing destination"
    assert body == b'"' + command + b"\" must include a 'destination' header\n"
    # No receipt for the failed frame; the connection goes on.
    raw.send(b"BEGIN\ntransaction:t\nreceipt:alive\n\n\x00")
    assert raw.frame().headers["receipt-id"] == "alive"


def test_temp_queue_is_not_a_send_or_subscribe_destination(raw):
    assert error_of(raw, b"SEND\ndestination:/temp-queue/x\n\nx\x00") == (
        "Invalid destination", b"'/temp-queue/x' is not a valid destination for 'SEND'\n")
    assert error_of(raw, b"SUBSCRIBE\ndestination:/temp-queue/x\nid:1\n\n\x00") == (
        "Invalid destination",
        b"'/temp-queue/x' is not a valid destination for 'SUBSCRIBE'\n")


def test_message_id_not_allowed_on_send(raw):
    assert error_of(raw, b"SEND\ndestination:/queue/x\nmessage-id:1\n\nx\x00") == (
        "Invalid header", b"'message-id' is not allowed on 'SEND'.\n")


def test_unknown_command_keeps_the_connection(raw):
    assert error_of(raw, b"FOO\nreceipt:1\n\n\x00") == (
        "Bad command", b'Could not interpret command "FOO"\n')
    raw.send(b"BEGIN\ntransaction:t\nreceipt:alive\n\n\x00")
    f = raw.frame()
    assert f.command == "RECEIPT" and f.headers["receipt-id"] == "alive"


def test_durable_subscription_needs_an_id(raw):
    assert error_of(raw, b"SUBSCRIBE\ndestination:/topic/x\ndurable:true\n\n\x00") == (
        "Missing Header", b"Header 'id' is required for durable subscriptions")


def test_unsubscribe_errors(raw):
    assert error_of(raw, b"UNSUBSCRIBE\nid:zz\n\n\x00") == (
        "No subscription found",
        b"UNSUBSCRIBE must refer to an existing subscription.\n"
        b"Subscription to \"id='zz'\" not found.\n")
    assert error_of(raw, b"UNSUBSCRIBE\n\n\x00") == (
        "Missing destination or id",
        b"UNSUBSCRIBE must include a 'destination' or 'id' header")


def test_processing_errors(raw):
    assert error_of(raw, b"SUBSCRIBE\ndestination:/queue/x\nack:bogus\nid:4\n\n\x00") == (
        "Processing error", b"Processing error")


def test_missing_amq_queue_closes_the_connection():
    raw = RawClient()
    try:
        raw.connect()
        q = unique("missing")
        raw.send(b"SUBSCRIBE\ndestination:/amq/queue/" + q.encode() + b"\nid:1\n\n\x00")
        f = raw.frame()
        assert f.command == "ERROR"
        assert f.headers["message"] == "not_found"
        assert f.body == f"NOT_FOUND - no queue '{q}' in vhost '/'".encode()
        assert raw.wait_closed()
    finally:
        raw.close()


def test_send_to_missing_amq_queue_is_silently_dropped(raw):
    raw.send(b"SEND\ndestination:/amq/queue/" + unique("gone").encode() + b"\nreceipt:r\n\nx\x00")
    f = raw.frame()
    assert f.command == "RECEIPT" and f.headers["receipt-id"] == "r"


def test_send_to_missing_exchange_closes_the_connection():
    raw = RawClient()
    try:
        raw.connect()
        x = unique("nox")
        raw.send(b"SEND\ndestination:/exchange/" + x.encode() + b"/k\nreceipt:r\n\nx\x00")
        f = raw.frame()
        assert f.headers["message"] == "not_found"
        assert f.body == f"NOT_FOUND - no exchange '{x}' in vhost '/'".encode()
        assert raw.wait_closed()
    finally:
        raw.close()


def test_duplicate_subscription_id_closes_the_connection(names):
    q = names.track_queue(unique("dup"))
    conn, c = connect("1.2")
    try:
        conn.subscribe(f"/queue/{q}", "1")
        conn.subscribe(f"/queue/{q}", "1")
        e = c.wait_error()
        assert e.headers["message"] == "Duplicated subscription identifier"
        assert e.body == "A subscription identified by 'T_1' already exists."
        assert c.wait_disconnected()
    finally:
        close(conn)


def test_inequivalent_queue_closes_the_connection(names, ch):
    q = names.track_queue(unique("neq"))
    ch.queue_declare(q, durable=False)
    raw = RawClient()
    try:
        raw.connect()
        raw.send(b"SEND\ndestination:/queue/" + q.encode() + b"\n\nx\x00")
        f = raw.frame()
        assert f.headers["message"] == "precondition_failed"
        assert f.body.startswith(b"PRECONDITION_FAILED - inequivalent arg 'durable' for queue")
        assert raw.wait_closed()
    finally:
        raw.close()


def test_deleted_queue_cancels_the_subscription(names, ch):
    q = names.track_queue(unique("del"))
    conn, c = connect("1.2")
    try:
        conn.subscribe(f"/queue/{q}", "gone", receipt="s")
        c.wait_receipt("s")
        ch.queue_delete(q)
        e = c.wait_error()
        assert e.headers["message"] == "Server cancelled subscription"
        assert e.headers["subscription"] == "gone"
        assert e.body == ("The server has canceled a subscription.\n"
                          "No more messages will be delivered for \"id='gone'\".\n")
        # The connection stays, and the subscription is gone.
        conn.unsubscribe("gone")
        assert c.wait_for(lambda: len(c.errors) == 2)
        assert c.errors[1].headers["message"] == "No subscription found"
    finally:
        close(conn)
