"""Bad input closes only the offending connection (MQTT 5: with a DISCONNECT
carrying the reason code first), is logged, and never disturbs other
clients. Raw sockets, since client libraries refuse to send these."""

import struct

import pytest

from mqtt_helpers import Raw, connect_packet, packet, s, topic, uid, varint


def connected(level: int = 4) -> Raw:
    r = Raw()
    if level == 5:
        vh = s(b"MQTT") + bytes([5, 0x02 | 0x80 | 0x40]) + struct.pack("!H", 30) + b"\x00"
        r.send(packet(0x10, vh + s(uid("bad").encode()) + s(b"guest") + s(b"guest")))
    else:
        r.send(connect_packet())
    p = r.read_packet()
    assert p is not None and p[0] == 0x20 and p[1][-1] == 0
    return r


def closes_with(r: Raw, level: int, code: int):
    p = r.read_packet()
    if level == 5:
        assert p is not None and p[0] == 0xE0 and p[1][0] == code, p
        assert r.closed()
    else:
        assert p is None or r.closed()


@pytest.fixture
def bystander(clients):
    """A client that must not notice anything."""
    t = topic("bystander")
    c = clients()
    c.subscribe(t, 1)
    yield c, t
    clients().publish(t, b"still here", qos=1)
    m = c.get()
    assert m is not None and m.payload == b"still here"


def test_packet_before_connect(bystander):
    r = Raw()
    r.send(packet(0x30, s(b"a/b") + b"x"))
    assert r.closed()


def test_garbage_instead_of_connect(bystander):
    r = Raw()
    r.send(b"GET / HTTP/1.1\r\n\r\n")
    assert r.closed()


@pytest.mark.parametrize("level", [4, 5])
def test_second_connect(bystander, warren, level):
    if level == 5 and not warren:
        pytest.skip("no MQTT 5 on RabbitMQ 3.10")
    r = connected(level)
    r.send(connect_packet())
    closes_with(r, level, 0x82)


@pytest.mark.parametrize("level", [4, 5])
def test_bad_remaining_length(bystander, warren, level):
    if level == 5 and not warren:
        pytest.skip("no MQTT 5 on RabbitMQ 3.10")
    r = connected(level)
    r.send(b"\x30\xff\xff\xff\xff\x01")
    closes_with(r, level, 0x81)


@pytest.mark.parametrize("level", [4, 5])
def test_qos3_publish(bystander, warren, level):
    if level == 5 and not warren:
        pytest.skip("no MQTT 5 on RabbitMQ 3.10")
    r = connected(level)
    r.send(packet(0x36, s(b"a/b") + b"\x00\x01" + (b"\x00" if level == 5 else b"") + b"x"))
    closes_with(r, level, 0x81)


@pytest.mark.parametrize("level", [4, 5])
def test_wildcard_in_publish_topic(bystander, warren, level):
    if level == 5 and not warren:
        pytest.skip("no MQTT 5 on RabbitMQ 3.10")
    r = connected(level)
    r.send(packet(0x30, s(b"a/#") + (b"\x00" if level == 5 else b"") + b"x"))
    closes_with(r, level, 0x90)


def test_subscribe_with_wrong_flags(bystander):
    r = connected()
    r.send(packet(0x80, b"\x00\x01" + s(b"a") + b"\x00"))
    assert r.closed()


@pytest.mark.parametrize("level", [4, 5])
def test_misplaced_wildcard_filter(bystander, warren, level):
    if level == 5 and not warren:
        pytest.skip("no MQTT 5 on RabbitMQ 3.10")
    r = connected(level)
    props = b"\x00" if level == 5 else b""
    r.send(packet(0x82, b"\x00\x07" + props + s(b"a/b#") + b"\x00" + s(b"ok/#") + b"\x01"))
    closes_with(r, level, 0x81)


def test_truncated_utf8_and_invalid_utf8_topic(bystander):
    r = connected()
    r.send(packet(0x30, b"\x00\x03\xff\xfe\xfd" + b"x"))
    assert r.closed()


def test_oversized_packet(bystander, warren):
    if not warren:
        pytest.skip("RabbitMQ 3.10's limit is 256 MiB")
    r = connected()
    r.send(b"\x30" + varint(100 * 1024 * 1024))
    assert r.closed()


def test_connect_without_protocol_name(bystander):
    r = Raw()
    r.send(packet(0x10, b"\x00"))
    assert r.closed()
