"""STOMP over WebSocket (``ws://HOST:WEB_STOMP_PORT/ws``), as RabbitMQ's
Web-STOMP plugin: subprotocol negotiation, frames split over or packed into
WebSocket messages, one frame per message out, cross-protocol delivery,
errors, heart-beats and closing.

websocket-client drives the WebSocket; pika (``AMQP_URL``) is the other side of
cross-protocol tests. The file is skipped when nothing listens on
``WEB_STOMP_PORT`` (default 15674; ``rabbitmq-plugins enable
rabbitmq_web_stomp`` on RabbitMQ). Where Warren deliberately differs from
RabbitMQ 3.10, the test says so and checks each broker's behaviour.
"""

import socket
import time

import pika
import pytest

from stomp_helpers import (STOMP_HOST, TIMEOUT, WEB_STOMP_PORT, WS_BINARY, WS_TEXT, WsClient,
                           unique, web_broker_is_warren)

try:
    socket.create_connection((STOMP_HOST, WEB_STOMP_PORT), timeout=5).close()
except OSError as _e:
    pytest.skip(f"no Web-STOMP listener at {STOMP_HOST}:{WEB_STOMP_PORT}: {_e!r}",
                allow_module_level=True)

SUBPROTOCOL = {"1.0": "v10.stomp", "1.1": "v11.stomp", "1.2": "v12.stomp"}


@pytest.fixture(scope="module")
def web_warren():
    """True when the Web-STOMP listener is Warren's, False for RabbitMQ's."""
    return web_broker_is_warren()


@pytest.fixture
def wsc():
    """Factory: ``wsc(subprotocols=...)`` -> WsClient, closed at teardown."""
    made = []

    def make(**kw):
        c = WsClient(**kw)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def subscribe(ws, destination, sub_id="s", **headers):
    extra = "".join(f"{k}:{v}\n" for k, v in headers.items())
    ws.send(f"SUBSCRIBE\ndestination:{destination}\nid:{sub_id}\nreceipt:sub-{sub_id}\n"
            f"{extra}\n\x00")
    f = ws.frame()
    assert f is not None and f.command == "RECEIPT", f
    assert f.headers["receipt-id"] == f"sub-{sub_id}"


def amqp_get(ch, queue, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is not None:
            return method, props, body
        time.sleep(0.05)
    raise AssertionError(f"nothing in {queue}")


# -- subprotocols and CONNECT ------------------------------------------------------

@pytest.mark.parametrize("offer, chosen", [
    (["v10.stomp"], "v10.stomp"),
    (["v11.stomp"], "v11.stomp"),
    (["v12.stomp"], "v12.stomp"),
    # Offered several, RabbitMQ picks the newest whatever the client's order.
    (["v10.stomp", "v11.stomp", "v12.stomp"], "v12.stomp"),
    (["v12.stomp", "v11.stomp", "v10.stomp"], "v12.stomp"),
    (["v11.stomp", "v10.stomp"], "v11.stomp"),
    (["v10.stomp", "v11.stomp"], "v11.stomp"),
])
def test_subprotocol_negotiation(wsc, offer, chosen):
    ws = wsc(subprotocols=offer)
    assert ws.subprotocol == chosen
    # The WebSocket carries STOMP whatever the subprotocol.
    ws.connect("1.2")


def test_no_subprotocol_is_accepted(wsc):
    # RabbitMQ's Web-STOMP accepts a client that offers none (and answers
    # without a Sec-WebSocket-Protocol header).
    ws = wsc(subprotocols=())
    assert ws.subprotocol is None
    ws.connect("1.2")


@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_connect_in_each_version(wsc, version, web_warren):
    ws = wsc(subprotocols=[SUBPROTOCOL[version]])
    f = ws.connect(version)
    assert f.opcode == WS_TEXT
    assert f.headers["version"] == version
    assert f.headers["session"].startswith("session-")
    assert f.headers["heart-beat"] == "0,0"
    assert f.headers["server"].startswith("Warren/" if web_warren else "RabbitMQ/")
    # The connection works: a receipt comes back.
    ws.send("BEGIN\ntransaction:t\nreceipt:alive\n\n\x00")
    r = ws.frame()
    assert r.command == "RECEIPT" and r.headers["receipt-id"] == "alive"


# -- frames and messages -----------------------------------------------------------

def test_frame_split_across_two_messages(wsc):
    ws = wsc()
    ws.send("CONNECT\naccept-version:1.2\nlogin:gu")
    time.sleep(0.2)
    ws.send("est\npasscode:guest\nhost:/\n\n\x00")
    f = ws.frame()
    assert f is not None and f.command == "CONNECTED"
    # A body split too: the frame is only complete with its NUL.
    ws.send("BEGIN\ntransaction:t\nrece")
    ws.send("ipt:r1\n\n")
    time.sleep(0.2)
    ws.send("\x00")
    assert ws.frame().headers["receipt-id"] == "r1"


def test_two_frames_in_one_message(wsc):
    ws = wsc()
    ws.connect()
    ws.send("BEGIN\ntransaction:a\nreceipt:ra\n\n\x00\nBEGIN\ntransaction:b\nreceipt:rb\n\n\x00")
    # Two RECEIPTs, each in a message of its own.
    assert ws.frame().headers["receipt-id"] == "ra"
    assert ws.frame().headers["receipt-id"] == "rb"


def test_connect_and_subscribe_in_one_message(wsc, names, ch):
    q = names.track_queue(unique("ws-one"))
    ch.queue_declare(q, durable=True)
    ch.basic_publish("", q, b"waiting")
    ws = wsc()
    ws.send("CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\nhost:/\n\n\x00"
            f"SUBSCRIBE\ndestination:/queue/{q}\nid:s\n\n\x00")
    assert ws.frame().command == "CONNECTED"
    m = ws.frame()
    assert m.command == "MESSAGE" and m.body == b"waiting"


def test_a_burst_is_one_frame_per_message(wsc, names, ch):
    """50 deliveries arrive as 50 WebSocket messages, each exactly one frame
    (WsClient.frame() fails on a message holding more or less)."""
    q = names.track_queue(unique("ws-burst"))
    ch.queue_declare(q, durable=True)
    ws = wsc()
    ws.connect()
    subscribe(ws, f"/queue/{q}")
    for i in range(50):
        ch.basic_publish("", q, f"m{i}".encode())
    frames = [ws.frame() for _ in range(50)]
    assert all(f is not None for f in frames), frames
    assert [f.command for f in frames] == ["MESSAGE"] * 50
    assert [f.body for f in frames] == [f"m{i}".encode() for i in range(50)]
    assert {f.opcode for f in frames} == {WS_TEXT}


# -- across protocols --------------------------------------------------------------

BODY = "héllo\nwörld ✓ {\"k\": 1}"


def test_send_over_websocket_reaches_an_amqp_consumer(wsc, names, ch):
    q = names.track_queue(unique("ws2amqp"))
    ch.queue_declare(q, durable=True)
    ws = wsc()
    ws.connect()
    body = BODY.encode()
    ws.send(f"SEND\ndestination:/queue/{q}\ncontent-type:text/plain\nreceipt:r\n"
            f"content-length:{len(body)}\n\n".encode() + body + b"\x00")
    assert ws.frame().headers["receipt-id"] == "r"
    method, props, got = amqp_get(ch, q)
    assert got == body
    assert method.routing_key == q
    assert props.content_type == "text/plain"


def test_amqp_publish_arrives_as_a_message_over_websocket(wsc, names, ch):
    x = names.track_exchange(unique("ws-x"))
    ch.exchange_declare(x, "topic")
    ws = wsc()
    ws.connect()
    subscribe(ws, f"/exchange/{x}/news.#")
    body = BODY.encode()
    ch.basic_publish(x, "news.eu", body, pika.BasicProperties(
        content_type="text/plain", headers={"h": "v"}))
    m = ws.frame()
    assert m.command == "MESSAGE", m
    assert m.body == body
    assert m.opcode == WS_TEXT
    assert m.headers["destination"] == f"/exchange/{x}/news.eu"
    assert m.headers["content-type"] == "text/plain"
    assert m.headers["h"] == "v"
    assert m.headers["subscription"] == "s"


def test_binary_body_sent_over_websocket_reaches_amqp(wsc, names, ch):
    q = names.track_queue(unique("ws-bin"))
    ch.queue_declare(q, durable=True)
    ws = wsc()
    ws.connect()
    ws.send(b"SEND\ndestination:/queue/" + q.encode() +
            b"\nreceipt:r\ncontent-length:2\n\n\x00\xff\x00", binary=True)
    assert ws.frame().headers["receipt-id"] == "r"
    _, _, got = amqp_get(ch, q)
    assert got == b"\x00\xff"


def test_binary_body_round_trip(wsc, names, ch, web_warren):
    if not web_warren:
        pytest.skip("RabbitMQ 3.10 sends a MESSAGE whose body is not UTF-8 as a *text* "
                    "WebSocket message (invalid UTF-8, which websocket-client and browsers "
                    "refuse); Warren sends it as a binary message")
    q = names.track_queue(unique("ws-bin"))
    ch.queue_declare(q, durable=True)
    ws = wsc()
    ws.connect()
    subscribe(ws, f"/queue/{q}")
    # Over WebSocket and back...
    ws.send(b"SEND\ndestination:/queue/" + q.encode() + b"\ncontent-length:2\n\n\x00\xff\x00",
            binary=True)
    m = ws.frame()
    assert m.command == "MESSAGE" and m.body == b"\x00\xff"
    assert m.opcode == WS_BINARY
    # ...and from AMQP.
    ch.basic_publish("", q, b"\xff\x00\x01")
    m = ws.frame()
    assert m.body == b"\xff\x00\x01" and m.opcode == WS_BINARY
    # Text again for a UTF-8 body.
    ch.basic_publish("", q, b"plain")
    m = ws.frame()
    assert m.body == b"plain" and m.opcode == WS_TEXT


# -- errors ------------------------------------------------------------------------

def test_unknown_command_is_an_error_and_keeps_the_websocket(wsc):
    ws = wsc()
    ws.connect()
    ws.send("FOO\nreceipt:r0\n\n\x00")
    f = ws.frame()
    assert f.command == "ERROR"
    assert f.headers["message"] == "Bad command"
    assert f.body == b'Could not interpret command "FOO"\n'
    ws.send("BEGIN\ntransaction:t\nreceipt:alive\n\n\x00")
    f = ws.frame()
    assert f is not None and f.headers["receipt-id"] == "alive"
    assert not ws.closed


def test_frame_before_connect(wsc):
    ws = wsc()
    ws.send("SEND\ndestination:/queue/x\nreceipt:r\n\nhi\x00")
    f = ws.frame()
    assert f.command == "ERROR"
    assert f.headers["message"] == "Illegal command"
    assert f.body == b"You must log in using CONNECT first"
    # No receipt, and the WebSocket is still usable.
    ws.connect()


def test_bad_login_is_an_error_then_a_retry_may_log_in(wsc):
    ws = wsc()
    ws.send("CONNECT\naccept-version:1.2\nlogin:guest\npasscode:nope\nhost:/\n\n\x00")
    f = ws.frame()
    assert f.command == "ERROR"
    assert f.headers["message"] == "Bad CONNECT"
    assert f.body == b"Access refused for user 'guest'\n"
    # As on TCP, the connection is kept for another try.
    ws.connect()


@pytest.mark.slow
def test_bad_login_then_close(wsc, web_warren):
    """Waits for Warren's login timeout (10 s)."""
    if not web_warren:
        pytest.skip("RabbitMQ 3.10's Web-STOMP has no login timeout: after a refused CONNECT "
                    "the WebSocket stays open (more than 30 s); Warren closes it at the "
                    "STOMP login timeout, 10 s, as on TCP")
    ws = wsc()
    start = time.monotonic()
    ws.send("CONNECT\naccept-version:1.2\nlogin:guest\npasscode:nope\nhost:/\n\n\x00")
    assert ws.frame().headers["message"] == "Bad CONNECT"
    assert ws.wait_closed(timeout=20)
    assert time.monotonic() - start >= 9


# -- heart-beats ---------------------------------------------------------------------

def test_server_heart_beats_are_eol_messages(wsc):
    ws = wsc()
    f = ws.connect(extra=b"heart-beat:0,1000\n")
    assert f.headers["heart-beat"] == "1000,0"
    beats = []
    deadline = time.monotonic() + TIMEOUT
    while len(beats) < 2 and time.monotonic() < deadline:
        m = ws.message(deadline - time.monotonic())
        assert m is not None, "no heart-beat"
        beats.append(m)
    # Each heart-beat is a message of its own holding an EOL.
    assert [data for _, data in beats] == [b"\n", b"\n"]
    assert not ws.closed


def test_silent_client_that_promised_heart_beats_is_dropped(wsc):
    ws = wsc()
    f = ws.connect(extra=b"heart-beat:1000,0\n")
    assert f.headers["heart-beat"] == "0,1000"
    start = time.monotonic()
    assert ws.wait_closed(timeout=TIMEOUT), "a silent client is dropped"
    # Both brokers give up after about three intervals.
    assert 1.5 <= time.monotonic() - start <= 10


def test_client_heart_beats_keep_the_websocket(wsc):
    ws = wsc()
    ws.connect(extra=b"heart-beat:1000,0\n")
    for _ in range(8):
        time.sleep(0.5)
        ws.send("\n")
    ws.send("BEGIN\ntransaction:t\nreceipt:alive\n\n\x00")
    f = ws.frame()
    assert f is not None and f.headers["receipt-id"] == "alive"


# -- closing -----------------------------------------------------------------------

@pytest.mark.parametrize("version", ["1.0", "1.1", "1.2"])
def test_disconnect_with_receipt_closes_the_websocket(wsc, version, web_warren):
    ws = wsc(subprotocols=[SUBPROTOCOL[version]])
    ws.connect(version)
    ws.send("DISCONNECT\nreceipt:bye\n\n\x00")
    frames = []
    deadline = time.monotonic() + TIMEOUT
    while not ws.closed and time.monotonic() < deadline:
        f = ws.frame(deadline - time.monotonic())
        if f is not None:
            frames.append(f)
    assert ws.closed, "the broker closes the WebSocket after DISCONNECT"
    if web_warren:
        assert [(f.command, f.headers.get("receipt-id")) for f in frames] == [("RECEIPT", "bye")]
    else:
        # RabbitMQ 3.10's Web-STOMP closes at once (1000 "STOMP died") and the
        # RECEIPT is lost; Warren sends it first, as the STOMP specification
        # asks and as RabbitMQ's STOMP plugin does on TCP.
        assert [f.command for f in frames] in ([], ["RECEIPT"])


def test_closing_the_websocket_releases_the_subscription(wsc, names, ch):
    q = names.track_queue(unique("ws-gone"))
    ch.queue_declare(q, durable=True)
    ws = wsc()
    ws.connect()
    subscribe(ws, f"/queue/{q}", ack="client-individual")
    ch.basic_publish("", q, b"unacked")
    assert ws.frame().body == b"unacked"
    ws.close()
    # The unacknowledged message is back in the queue, without a consumer.
    deadline = time.monotonic() + TIMEOUT
    while True:
        ok = ch.queue_declare(q, durable=True, passive=True).method
        if ok.consumer_count == 0 and ok.message_count == 1:
            break
        assert time.monotonic() < deadline, (ok.consumer_count, ok.message_count)
        time.sleep(0.05)
