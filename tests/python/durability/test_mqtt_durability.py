"""MQTT state across kill -9 (GitHub issue 12): a persistent session's
subscriptions (shared ones included) and its queued QoS 1 messages (every
PUBACKed publish, since a PUBACK waits for the fsync), QoS 2 messages, the
QoS 2 exchanges a publisher left half done, and retained messages all come
back after the broker is SIGKILLed and started again."""

import os
import struct
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "mqtt"))

from mqtt_helpers import (  # noqa: E402
    V311, V5, Client, Raw, props, CONNECT, topic, uid, packet, s as mqtt_str,
)

N = 200


def test_persistent_session_and_retained_survive_kill_9(broker_factory):
    broker = broker_factory(mqtt=True).start()
    cid, t = uid("dur"), topic("dur")
    sub = Client(client_id=cid, clean=False, port=broker.mqtt_port)
    sub.subscribe(t + "/#", 1)
    sub.disconnect()
    pub = Client(port=broker.mqtt_port)
    # QoS 1: each publish returns once PUBACKed, i.e. once on disk.
    infos = [pub.publish(f"{t}/q1", str(i).encode(), qos=1, wait=False) for i in range(N)]
    for i in infos:
        i.wait_for_publish(30)
        assert i.is_published()
    pub.publish(f"{t}/q2", b"exactly-once", qos=2)
    pub.publish(f"{t}/retained", b"kept", qos=1, retain=True)
    # The PUBACK of a retained publish waits for the retained-message file's
    # fsync too: kill at once.
    broker.kill()
    broker.start()
    sub = Client(client_id=cid, clean=False, port=broker.mqtt_port)
    assert sub.session_present
    got = sub.get_n(N + 2, timeout=30)
    payloads = [m.payload for m in got if m.topic == f"{t}/q1"]
    assert payloads == [str(i).encode() for i in range(N)]
    assert b"exactly-once" in [m.payload for m in got]
    # The retained publish was also routed to the session's queue.
    assert b"kept" in [m.payload for m in got]
    sub.disconnect()
    late = Client(port=broker.mqtt_port)
    late.subscribe(f"{t}/retained", 1)
    m = late.get()
    assert m is not None and (m.payload, m.retain) == (b"kept", True)
    late.disconnect()
    Client(client_id=cid, clean=True, port=broker.mqtt_port).disconnect()


def test_mqtt5_session_expiry_survives_restart(broker_factory):
    broker = broker_factory(mqtt=True).start()
    cid, t = uid("dur5"), topic("dur5")
    c = Client(client_id=cid, version=V5, clean=True, port=broker.mqtt_port,
               properties=props(CONNECT, SessionExpiryInterval=600))
    c.subscribe(t, 1)
    c.disconnect()
    Client(version=V5, port=broker.mqtt_port).publish(t, b"after restart", qos=1)
    broker.kill()
    broker.start()
    c = Client(client_id=cid, version=V5, clean=False, port=broker.mqtt_port,
               properties=props(CONNECT, SessionExpiryInterval=0))
    assert c.session_present
    m = c.get()
    assert m is not None and m.payload == b"after restart"
    c.disconnect()



def test_websocket_and_tcp_share_a_persistent_session_across_kill_9(broker_factory):
    """Both MQTT listeners serve one node: a session made over WebSocket is
    resumed over TCP after a kill -9, with its queued QoS 1 messages and the
    retained message."""
    broker = broker_factory(mqtt=True, web_mqtt=True).start()
    cid, t = uid("durws"), topic("durws")
    sub = Client(client_id=cid, clean=False, websocket=True, port=broker.web_mqtt_port)
    sub.subscribe(t + "/#", 1)
    sub.disconnect()
    pub = Client(websocket=True, port=broker.web_mqtt_port)
    for i in range(20):
        pub.publish(f"{t}/q1", str(i).encode(), qos=1)
    pub.publish(f"{t}/retained", b"kept", qos=1, retain=True)
    broker.kill()
    broker.start()
    sub = Client(client_id=cid, clean=False, port=broker.mqtt_port)
    assert sub.session_present
    got = sub.get_n(21, timeout=30)
    assert [m.payload for m in got if m.topic == f"{t}/q1"] == [str(i).encode() for i in range(20)]
    sub.disconnect()
    late = Client(websocket=True, port=broker.web_mqtt_port)
    late.subscribe(f"{t}/retained", 1)
    m = late.get()
    assert m is not None and (m.payload, m.retain) == (b"kept", True)
    late.disconnect()
    Client(client_id=cid, clean=True, port=broker.mqtt_port).disconnect()


def test_mqtt5_shared_subscription_survives_kill_9(broker_factory):
    """A persistent session's shared subscription is part of its durable
    state: after a kill -9 the member resumes it and receives the group's
    messages again (its queue belongs to the group, not to the session, so it
    is not among the session's durable queues)."""
    broker = broker_factory(mqtt=True).start()
    cid, t = uid("dursh"), topic("dursh")
    expiry = props(CONNECT, SessionExpiryInterval=600)
    member = Client(client_id=cid, version=V5, clean=True, port=broker.mqtt_port,
                    properties=expiry)
    assert [r.value for r in member.subscribe(f"$share/g/{t}/#", 1)] == [1]
    # The SUBACK waits for the session state's fsync: crash at once.
    member.drop()
    broker.kill()
    broker.start()
    member = Client(client_id=cid, version=V5, clean=False, port=broker.mqtt_port,
                    properties=expiry)
    assert member.session_present
    pub = Client(version=V5, port=broker.mqtt_port)
    for i in range(10):
        pub.publish(f"{t}/x", str(i).encode(), qos=1)
    got = member.get_n(10, timeout=30)
    assert [m.payload for m in got] == [str(i).encode() for i in range(10)]
    # Unsubscribing is durable too: after another crash the member has none.
    member.unsubscribe(f"$share/g/{t}/#")
    member.drop()
    broker.kill()
    broker.start()
    member = Client(client_id=cid, version=V5, clean=False, port=broker.mqtt_port,
                    properties=expiry)
    pub = Client(version=V5, port=broker.mqtt_port)
    pub.publish(f"{t}/x", b"nobody", qos=1)
    assert member.none(1.0)
    member.disconnect()
    pub.disconnect()


def _raw_connect(port, cid, level):
    """A raw persistent-session CONNECT (MQTT 5: session expiry 600 s);
    returns the socket and the CONNACK's session-present flag."""
    flags = 0x80 | 0x40  # user name, password; clean session 0
    vh = mqtt_str(b"MQTT") + bytes([level, flags]) + struct.pack("!H", 30)
    if level == 5:
        vh += b"\x05\x11" + struct.pack("!I", 600)
    raw = Raw(port=port)
    raw.send(packet(0x10, vh + mqtt_str(cid) + mqtt_str(b"guest") + mqtt_str(b"guest")))
    first, body = raw.read_packet()
    assert first == 0x20 and body[1] == 0, body
    return raw, bool(body[0] & 1)


def _ack(raw, kind, pid):
    """Reads the next packet: `kind`'s type with packet id `pid`, success."""
    first, body = raw.read_packet()
    assert first >> 4 == kind >> 4, (hex(first), body)
    assert struct.unpack("!H", body[:2])[0] == pid
    # MQTT 5 acks may carry a reason code; 0 (or none) is success.
    assert len(body) == 2 or body[2] == 0, body


@pytest.mark.parametrize("level", [4, 5], ids=["v311", "v5"])
def test_qos2_in_flight_publish_survives_kill_9(broker_factory, level):
    """Exactly once across a restart: a QoS 2 PUBLISH was PUBREC'd (so its
    packet id is on disk with the message), the broker is SIGKILLed before
    PUBREL. After the restart the publisher's resent PUBLISH (DUP) is only
    answered, its PUBREL gets PUBCOMP, and the subscriber gets the message
    exactly once."""
    version = V5 if level == 5 else V311
    broker = broker_factory(mqtt=True).start()
    sub_id, pub_id, t = uid("q2sub"), uid("q2pub").encode(), topic("q2")
    kw = {"properties": props(CONNECT, SessionExpiryInterval=600)} if level == 5 else {}
    sub = Client(client_id=sub_id, version=version, clean=False, port=broker.mqtt_port, **kw)
    sub.subscribe(t, 2)
    sub.disconnect()
    raw, present = _raw_connect(broker.mqtt_port, pub_id, level)
    pid = 7
    props_none = b"\x00" if level == 5 else b""
    publish = mqtt_str(t.encode()) + struct.pack("!H", pid) + props_none + b"once"
    raw.send(packet(0x34, publish))  # QoS 2
    _ack(raw, 0x50, pid)  # PUBREC: the message and the id are on disk
    broker.kill()
    raw.close()
    broker.start()
    raw, present = _raw_connect(broker.mqtt_port, pub_id, level)
    assert present, "the in-flight QoS 2 exchange is session state"
    raw.send(packet(0x3C, publish))  # the same PUBLISH again, DUP set
    _ack(raw, 0x50, pid)
    raw.send(packet(0x62, struct.pack("!H", pid)))  # PUBREL
    _ack(raw, 0x70, pid)  # PUBCOMP, success: the id was known
    raw.close()
    sub = Client(client_id=sub_id, version=version, clean=False, port=broker.mqtt_port, **kw)
    assert sub.session_present
    m = sub.get(10)
    assert m is not None and m.payload == b"once"
    assert sub.none(1.0), "delivered twice"
    sub.disconnect()
    # The exchange is over: the id is free again, a new PUBLISH with it is a
    # new message, also after another restart.
    broker.kill()
    broker.start()
    raw, _ = _raw_connect(broker.mqtt_port, pub_id, level)
    again = mqtt_str(t.encode()) + struct.pack("!H", pid) + props_none + b"twice"
    raw.send(packet(0x34, again))
    _ack(raw, 0x50, pid)
    raw.send(packet(0x62, struct.pack("!H", pid)))
    _ack(raw, 0x70, pid)
    raw.close()
    sub = Client(client_id=sub_id, version=version, clean=False, port=broker.mqtt_port, **kw)
    m = sub.get(10)
    assert m is not None and m.payload == b"twice"
    sub.disconnect()


def _raw_subscribe(raw, filt, qos, level, pid=1):
    body = struct.pack("!H", pid) + (b"\x00" if level == 5 else b"") + mqtt_str(filt) + bytes([qos])
    raw.send(packet(0x82, body))
    first, body = raw.read_packet()
    assert first == 0x90 and body[-1] == qos, (hex(first), body)


def _read_publish(raw, level):
    """The next packet, a PUBLISH: (qos, packet id, payload)."""
    first, body = raw.read_packet()
    assert first >> 4 == 3, (hex(first), body)
    qos = (first >> 1) & 3
    n = struct.unpack("!H", body[:2])[0]
    rest = body[2 + n:]
    pid = None
    if qos:
        pid, rest = struct.unpack("!H", rest[:2])[0], rest[2:]
    if level == 5:
        plen, rest = rest[0], rest[1:]  # properties (short here)
        rest = rest[plen:]
    return qos, pid, rest


@pytest.mark.parametrize("level", [4, 5], ids=["v311", "v5"])
def test_outgoing_qos2_pubrel_survives_kill_9(broker_factory, level):
    """The broker's side of an outgoing QoS 2 exchange: the subscriber
    PUBREC'd a delivery (the broker answered PUBREL), then the broker is
    SIGKILLed before PUBCOMP. After the restart the resumed session gets the
    PUBREL again with the same packet id (MQTT-4.4.0-1), not the message, and
    once PUBCOMP'd the id is never resent."""
    broker = broker_factory(mqtt=True).start()
    cid, t = uid("q2out").encode(), topic("q2out")
    raw, present = _raw_connect(broker.mqtt_port, cid, level)
    _raw_subscribe(raw, t.encode(), 2, level)
    pub = Client(port=broker.mqtt_port)
    pub.publish(t, b"once", qos=2)
    qos, pid, payload = _read_publish(raw, level)
    assert (qos, payload) == (2, b"once")
    raw.send(packet(0x50, struct.pack("!H", pid)))  # PUBREC
    # PUBREL: sent once the id and the queue's ack are on disk (in a CI run
    # under load the ack was not waited for and the message came back).
    _ack(raw, 0x62, pid)
    broker.kill()
    raw.close()
    broker.start()
    raw, present = _raw_connect(broker.mqtt_port, cid, level)
    assert present
    _ack(raw, 0x62, pid)  # the PUBREL again
    raw.send(packet(0x70, struct.pack("!H", pid)))  # PUBCOMP
    # Not delivered again, and no further PUBREL.
    assert raw.read_packet(timeout=1.0) is None
    raw.close()
    # The PUBCOMP is durable too (it needs no wait: a lost one only costs a
    # PUBREL the client answers again); give its group commit a moment.
    import time
    time.sleep(0.5)
    broker.kill()
    broker.start()
    raw, present = _raw_connect(broker.mqtt_port, cid, level)
    assert present
    assert raw.read_packet(timeout=1.0) is None
    raw.close()
    Client(client_id=cid.decode(), clean=True, port=broker.mqtt_port).disconnect()


def test_mqtt5_session_expires(broker_factory):
    """MQTT 5 session expiry: 2 s after the disconnect the session is gone
    (session present 0, queued messages dropped, its queue deleted), also when
    the broker was restarted meanwhile; a 3.1.1 persistent session is kept
    for `subscription_ttl` (one day by default; test_mqtt_config shortens it)."""
    broker = broker_factory(mqtt=True).start()
    cid, t = uid("exp"), topic("exp")
    v3id = uid("exp3")
    expiry = props(CONNECT, SessionExpiryInterval=2)
    c = Client(client_id=cid, version=V5, clean=True, port=broker.mqtt_port, properties=expiry)
    c.subscribe(t, 1)
    c.disconnect()
    v3 = Client(client_id=v3id, clean=False, port=broker.mqtt_port)
    v3.subscribe(t, 1)
    v3.disconnect()
    pub = Client(version=V5, port=broker.mqtt_port)
    pub.publish(t, b"queued", qos=1)
    pub.disconnect()
    # Within the interval the session is there.
    c = Client(client_id=cid, version=V5, clean=False, port=broker.mqtt_port, properties=expiry)
    assert c.session_present
    m = c.get()
    assert m is not None and m.payload == b"queued"
    c.disconnect()
    import time
    time.sleep(3.5)
    c = Client(client_id=cid, version=V5, clean=False, port=broker.mqtt_port, properties=expiry)
    assert not c.session_present, "expired session reported present"
    assert c.none(0.5)
    c.disconnect()
    # Across a restart: the expiry was stored at the disconnect.
    broker.kill()
    broker.start()
    time.sleep(3.5)
    c = Client(client_id=cid, version=V5, clean=False, port=broker.mqtt_port, properties=expiry)
    assert not c.session_present
    c.disconnect()
    # A session killed while connected expires from the restart on.
    c = Client(client_id=cid, version=V5, clean=False, port=broker.mqtt_port, properties=expiry)
    c.subscribe(t, 1)
    broker.kill()
    c.drop()
    broker.start()
    c2 = Client(client_id=cid, version=V5, clean=False, port=broker.mqtt_port, properties=expiry)
    assert c2.session_present
    c2.disconnect()
    time.sleep(3.5)
    c2 = Client(client_id=cid, version=V5, clean=False, port=broker.mqtt_port, properties=expiry)
    assert not c2.session_present
    c2.disconnect()
    # 3.1.1 clean session 0: kept (with its message) for subscription_ttl.
    v3 = Client(client_id=v3id, clean=False, port=broker.mqtt_port)
    assert v3.session_present
    m = v3.get()
    assert m is not None and m.payload == b"queued"
    v3.disconnect()
    Client(client_id=v3id, clean=True, port=broker.mqtt_port).disconnect()
