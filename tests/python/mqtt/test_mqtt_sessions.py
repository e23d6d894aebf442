"""Connecting, sessions and connection life: CONNACK return codes as
RabbitMQ's, vhost:user, clean and persistent sessions, takeover, will,
keep-alive."""

import time

import pytest

from mqtt_helpers import Raw, Client, connect_packet, topic, uid
from helpers import connect as amqp_connect


def connack_code(**kw):
    r = Raw()
    r.send(connect_packet(**kw))
    p = r.read_packet()
    r.close()
    return None if p is None else (p[0], p[1][1])


def test_connack_codes(warren_settings):
    assert connack_code() == (0x20, 0)
    assert connack_code(password=b"wrong") == (0x20, 4)
    assert connack_code(user=b"nobody") == (0x20, 4)
    # A vhost that does not exist: RabbitMQ answers "bad user name or password".
    assert connack_code(user=b"no-such-vhost:guest") == (0x20, 4)
    # An empty client id needs a clean session.
    r = Raw()
    body = connect_packet(client_id=b"", clean=False)
    # connect_packet invents a client id for b""; build one with an empty id.
    import struct
    from mqtt_helpers import packet, s
    vh = s(b"MQTT") + bytes([4, 0x80 | 0x40]) + struct.pack("!H", 30)
    r.send(packet(0x10, vh + s(b"") + s(b"guest") + s(b"guest")))
    p = r.read_packet()
    r.close()
    assert p is not None and p[1][1] == 2
    del body


def test_vhost_in_user_name(clients, warren_settings):
    c = clients(username="/:guest")
    assert c.reason == 0


def test_anonymous_login_refused_by_default(warren, warren_settings):
    if not warren:
        pytest.skip("RabbitMQ allows anonymous logins (as guest) by default")
    c = Client(username=None, connect=False)
    assert str(c.connect(expect_ok=False)) == "Not authorized"
    c.disconnect()


def test_unsupported_protocol_level(warren, warren_settings):
    r = Raw()
    r.send(connect_packet(level=7))
    p = r.read_packet()
    if warren:
        # The specification's answer: CONNACK 0x01, then close. RabbitMQ just closes.
        assert p == (0x20, b"\x00\x01")
        assert r.closed()
    else:
        assert p is None
    r.close()


def test_persistent_session_keeps_subscriptions_and_messages(clients):
    cid, t = uid("ps"), topic("ps")
    c = Client(client_id=cid, clean=False)
    assert not c.session_present
    c.subscribe(t, 1)
    c.disconnect()
    clients().publish(t, b"while away", qos=1)
    c = Client(client_id=cid, clean=False)
    assert c.session_present
    m = c.get()
    assert m is not None and m.payload == b"while away"
    c.disconnect()
    Client(client_id=cid, clean=True).disconnect()


def test_persistent_session_queue_expires_after_a_day(clients, needs_amqp):
    """RabbitMQ 3.10 declares a clean-session-0 client's queue with
    `x-expires` = `mqtt.subscription_ttl` (one day): an unused session does
    not stay forever. Warren's queue has the same argument (a declare with it
    is equivalent); its session sweeper ends the session after that long."""
    cid, t = uid("ttl"), topic("ttl")
    c = Client(client_id=cid, clean=False)
    c.subscribe(t, 1)
    c.disconnect()
    conn = amqp_connect()
    ch = conn.channel()
    ch.queue_declare(f"mqtt-subscription-{cid}qos1", durable=True,
                     arguments={"x-expires": 86_400_000})
    conn.close()
    Client(client_id=cid, clean=True).disconnect()


def test_clean_session_discards_the_old_one(clients, needs_amqp):
    cid, t = uid("cs"), topic("cs")
    c = Client(client_id=cid, clean=False)
    c.subscribe(t, 1)
    c.disconnect()
    c = Client(client_id=cid, clean=True)
    assert not c.session_present
    clients().publish(t, b"nobody", qos=1)
    assert c.none(0.5)
    c.disconnect()
    conn = amqp_connect()
    ch = conn.channel()
    import pika.exceptions
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        ch.queue_declare(f"mqtt-subscription-{cid}qos1", passive=True)
    conn.close()


def test_unacknowledged_qos1_message_is_redelivered_with_dup(clients):
    cid, t = uid("dup"), topic("dup")
    c = Client(client_id=cid, clean=False)
    c.subscribe(t, 1)
    c.disconnect()
    clients().publish(t, b"again", qos=1)
    # A raw client that never sends PUBACK, then vanishes.
    r = Raw()
    r.send(connect_packet(client_id=cid.encode(), clean=False))
    assert r.read_packet()[0] == 0x20
    p = r.read_packet()
    assert p is not None and p[0] & 0xF0 == 0x30 and p[1].endswith(b"again")
    r.close()
    time.sleep(0.3)
    c = Client(client_id=cid, clean=False)
    m = c.get()
    assert m is not None and m.payload == b"again" and m.dup
    c.disconnect()
    Client(client_id=cid, clean=True).disconnect()


def test_session_takeover(clients):
    cid = uid("to")
    first = Client(client_id=cid)
    second = Client(client_id=cid)
    assert first.disconnected.wait(10), "first connection not closed"
    t = topic("to")
    second.subscribe(t, 0)
    clients().publish(t, b"still works", qos=1)
    m = second.get()
    assert m is not None and m.payload == b"still works"
    second.disconnect()


def test_will_on_abrupt_close_not_on_disconnect(clients):
    t = topic("will")
    watcher = clients()
    watcher.subscribe(t, 1)
    c = Client(will={"topic": t, "payload": b"gone", "qos": 1})
    c.drop()
    m = watcher.get()
    assert m is not None and m.payload == b"gone"
    c = Client(will={"topic": t, "payload": b"not this", "qos": 1})
    c.disconnect()
    assert watcher.none(1.0)


def test_keepalive_timeout_drops_silent_client_and_sends_will(clients, warren):
    t = topic("ka")
    watcher = clients()
    watcher.subscribe(t, 0)
    r = Raw()
    # keep-alive 1 s, with a will; then silence.
    import struct
    from mqtt_helpers import packet, s
    flags = 0x02 | 0x04 | 0x80 | 0x40
    vh = s(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 1)
    r.send(packet(0x10, vh + s(uid("ka").encode()) + s(t.encode()) + s(b"timeout") + s(b"guest") + s(b"guest")))
    assert r.read_packet()[0] == 0x20
    start = time.monotonic()
    assert r.closed(10)
    elapsed = time.monotonic() - start
    # 1.5 x keep-alive on Warren; mosquitto checks only every few seconds.
    assert 1.0 <= elapsed < (5 if warren else 10), elapsed
    m = watcher.get()
    assert m is not None and m.payload == b"timeout"
    r.close()


def test_pingreq(clients):
    r = Raw()
    r.send(connect_packet())
    assert r.read_packet()[0] == 0x20
    r.send(b"\xc0\x00")
    assert r.read_packet() == (0xD0, b"")
    r.close()


def test_qos2_exactly_once_across_a_reconnect(clients, warren_only):
    """A QoS 2 PUBLISH resent after a reconnect (its PUBREL not yet sent) is
    acknowledged again but not delivered twice: the session keeps the packet
    ids awaiting PUBREL."""
    from mqtt_helpers import packet, s
    t = topic("eo")
    sub = clients()
    sub.subscribe(t, 2)
    cid = uid("eo").encode()
    publish = packet(0x34, s(t.encode()) + b"\x00\x07" + b"once")
    r = Raw()
    r.send(connect_packet(client_id=cid, clean=False))
    assert r.read_packet()[0] == 0x20
    r.send(publish)
    assert r.read_packet() == (0x50, b"\x00\x07")  # PUBREC
    r.close()
    time.sleep(0.3)
    r = Raw()
    r.send(connect_packet(client_id=cid, clean=False))
    connack = r.read_packet()
    assert connack == (0x20, b"\x01\x00"), connack  # session present
    r.send(bytes([0x3C]) + publish[1:])  # the same PUBLISH, DUP set
    assert r.read_packet() == (0x50, b"\x00\x07")
    r.send(b"\x62\x02\x00\x07")  # PUBREL
    assert r.read_packet() == (0x70, b"\x00\x07")  # PUBCOMP
    r.close()
    got = sub.get_n(2, timeout=1.5)
    assert [m.payload for m in got] == [b"once"]
    Client(client_id=cid.decode(), clean=True).disconnect()


def test_qos2_pubrel_resent_after_reconnect(clients, warren_only):
    """Outgoing QoS 2: after PUBREC the broker owns only the PUBREL; a client
    that reconnects before PUBCOMP gets the PUBREL again, not the message."""
    from mqtt_helpers import packet, s
    t = topic("rel")
    cid = uid("rel").encode()
    r = Raw()
    r.send(connect_packet(client_id=cid, clean=False))
    assert r.read_packet()[0] == 0x20
    r.send(packet(0x82, b"\x00\x01" + s(t.encode()) + b"\x02"))
    assert r.read_packet() == (0x90, b"\x00\x01\x02")
    clients().publish(t, b"two", qos=2)
    p = r.read_packet()
    assert p[0] & 0xF6 == 0x34 and p[1].endswith(b"two"), p
    pid = p[1][2 + len(t):4 + len(t)]
    r.send(b"\x50\x02" + pid)  # PUBREC
    assert r.read_packet() == (0x62, pid)  # PUBREL
    r.close()
    time.sleep(0.3)
    r = Raw()
    r.send(connect_packet(client_id=cid, clean=False))
    assert r.read_packet() == (0x20, b"\x01\x00")
    assert r.read_packet() == (0x62, pid)  # PUBREL again, no PUBLISH
    r.send(b"\x70\x02" + pid)  # PUBCOMP
    assert r.read_packet(timeout=1) is None or False
    r.close()
    Client(client_id=cid.decode(), clean=True).disconnect()
