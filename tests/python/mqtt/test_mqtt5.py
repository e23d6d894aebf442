"""MQTT 5 (Warren only: RabbitMQ 3.10 has no MQTT 5): reason codes and
strings, properties and their AMQP mapping (RabbitMQ 3.13's), topic aliases,
subscription identifiers, shared subscriptions, no-local, retain-as-published,
retain handling, receive maximum, maximum packet size, assigned client id,
session expiry, will delay, AUTH."""

import struct
import time

import paho.mqtt.client as mqtt
import pika
import pytest

from mqtt_helpers import (CONNECT, DISCONNECT, PUBLISH, SUBSCRIBE, V5, WILLMESSAGE, Client, Raw,
                          packet, props, s, topic, uid, varint)
from helpers import connect as amqp_connect

pytestmark = pytest.mark.usefixtures("warren_only")


def v5(clients, **kw):
    return clients(version=V5, **kw)


def test_connack_properties(clients, warren_settings):
    c = v5(clients)
    p = c.connack_properties
    assert p.ReceiveMaximum >= 1
    assert p.MaximumPacketSize > 0
    assert p.TopicAliasMaximum > 0


def test_assigned_client_identifier(clients):
    c = v5(clients, client_id="")
    assert c.connack_properties.AssignedClientIdentifier


def test_bad_password_reason_code(clients, warren_settings):
    c = Client(version=V5, password="wrong", connect=False)
    rc = c.connect(expect_ok=False)
    assert rc.value == 0x86
    c.disconnect()


def test_auth_method_refused_cleanly():
    c = Client(version=V5, connect=False,
               properties=props(CONNECT, AuthenticationMethod="SCRAM-SHA-1"))
    rc = c.connect(expect_ok=False)
    assert rc.value == 0x8C
    c.disconnect()


def test_user_properties_content_type_correlation_response_topic_round_trip(clients):
    t = topic("p5")
    sub = v5(clients)
    sub.subscribe(t, 1)
    p = props(PUBLISH, ContentType="application/json", CorrelationData=b"corr-1",
              ResponseTopic="reply/here", PayloadFormatIndicator=1,
              UserProperty=[("k1", "v1"), ("k2", "v2")])
    v5(clients).publish(t, b"{}", qos=1, properties=p)
    m = sub.get()
    assert m is not None
    mp = m.properties
    assert mp.ContentType == "application/json"
    assert mp.CorrelationData == b"corr-1"
    assert mp.ResponseTopic == "reply/here"
    assert mp.PayloadFormatIndicator == 1
    assert ("k1", "v1") in mp.UserProperty and ("k2", "v2") in mp.UserProperty


def test_mqtt5_properties_map_to_amqp_as_rabbitmq_313(clients, needs_amqp):
    t = topic("map")
    conn = amqp_connect()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", routing_key=t.replace("/", "."))
    p = props(PUBLISH, ContentType="text/plain", CorrelationData=b"c-9",
              ResponseTopic="back/to/me", MessageExpiryInterval=60,
              UserProperty=[("region", "eu")])
    v5(clients).publish(t, b"hi", qos=1, properties=p)
    deadline = time.monotonic() + 10
    method = None
    while method is None and time.monotonic() < deadline:
        method, bp, body = ch.basic_get(q, auto_ack=True)
        if method is None:
            time.sleep(0.05)
    assert method is not None
    assert bp.content_type == "text/plain"
    assert bp.correlation_id == "c-9"
    assert bp.expiration == "60000"
    assert bp.delivery_mode == 2
    assert bp.headers["region"] == "eu"
    assert bp.headers["x-reply-to-topic"] == "back.to.me"
    # And back: AMQP headers become user properties.
    sub = v5(clients)
    sub.subscribe(t, 1)
    ch.basic_publish("amq.topic", t.replace("/", "."), b"amqp",
                     pika.BasicProperties(content_type="a/b", correlation_id="cid",
                                          headers={"h": "v", "n": 5}, delivery_mode=2))
    m = sub.get()
    conn.close()
    assert m is not None and m.payload == b"amqp" and m.qos == 1
    assert m.properties.ContentType == "a/b"
    assert m.properties.CorrelationData == b"cid"
    assert ("h", "v") in m.properties.UserProperty and ("n", "5") in m.properties.UserProperty


def test_message_expiry(clients, warren):
    if not warren:
        pytest.skip("mosquitto 2.0.11 still delivers a queued message whose expiry passed")
    cid, t = uid("exp"), topic("exp")
    c = Client(client_id=cid, version=V5, clean=True,
               properties=props(CONNECT, SessionExpiryInterval=300))
    c.subscribe(t, 1)
    c.disconnect()
    pub = v5(clients)
    pub.publish(t, b"short", qos=1, properties=props(PUBLISH, MessageExpiryInterval=1))
    pub.publish(t, b"long", qos=1, properties=props(PUBLISH, MessageExpiryInterval=100))
    time.sleep(1.5)
    c = Client(client_id=cid, version=V5, clean=False,
               properties=props(CONNECT, SessionExpiryInterval=0))
    assert c.session_present
    got = c.get_n(2, timeout=2)
    assert [m.payload for m in got] == [b"long"]
    assert 90 <= got[0].properties.MessageExpiryInterval <= 100
    c.disconnect()


def test_topic_alias_from_client(clients):
    t = topic("alias")
    sub = v5(clients)
    sub.subscribe(t, 0)
    r = Raw()
    r.send(_connect5(uid("al")))
    assert r.read_packet()[0] == 0x20
    alias = bytes([3, 0x23, 0, 1])
    r.send(packet(0x30, s(t.encode()) + alias + b"first"))
    r.send(packet(0x30, s(b"") + alias + b"second"))
    got = [m.payload for m in sub.get_n(2)]
    assert got == [b"first", b"second"]
    # An alias never set: protocol error.
    r.send(packet(0x30, s(b"") + bytes([3, 0x23, 0, 9]) + b"x"))
    p = r.read_packet()
    assert p is not None and p[0] == 0xE0 and p[1][0] == 0x82
    r.close()


def test_topic_alias_to_client(clients, warren):
    t = topic("aliasout")
    sub = v5(clients, properties=props(CONNECT, TopicAliasMaximum=5))
    sub.subscribe(t, 0)
    pub = v5(clients)
    for i in range(3):
        pub.publish(t, str(i).encode(), qos=1)
    got = sub.get_n(3)
    assert [m.payload for m in got] == [b"0", b"1", b"2"]
    if not warren and not hasattr(got[0].properties, "TopicAlias"):
        return  # using aliases towards clients is optional (mosquitto does not)
    # The first names the topic and sets an alias; the rest use the alias alone.
    alias = got[0].properties.TopicAlias
    assert got[0].topic == t and alias >= 1
    assert all(m.topic == "" and m.properties.TopicAlias == alias for m in got[1:])


def test_subscription_identifiers(clients, warren):
    t = topic("sid")
    sub = v5(clients)
    sub.subscribe(t + "/+", 1, properties=props(SUBSCRIBE, SubscriptionIdentifier=7))
    sub.subscribe(t + "/#", 1, properties=props(SUBSCRIBE, SubscriptionIdentifier=9))
    v5(clients).publish(t + "/a", b"x", qos=1)
    # One copy carrying both identifiers (Warren), or one copy per
    # subscription (mosquitto): section 3.3.4 allows either.
    got = sub.get_n(2, timeout=1.5)
    assert got
    ids = sorted(i for m in got for i in m.properties.SubscriptionIdentifier)
    assert ids == [7, 9]
    if warren:
        assert len(got) == 1


def test_shared_subscription_splits_messages(clients):
    t = topic("share")
    group = uid("g")
    a, b = v5(clients), v5(clients)
    a.subscribe(f"$share/{group}/{t}", 1)
    b.subscribe(f"$share/{group}/{t}", 1)
    pub = v5(clients)
    for i in range(10):
        pub.publish(t, str(i).encode(), qos=1)
    time.sleep(1)
    got_a = [m.payload for m in a.get_n(10, timeout=1)]
    got_b = [m.payload for m in b.get_n(10, timeout=1)]
    assert sorted(got_a + got_b, key=int) == [str(i).encode() for i in range(10)]
    assert got_a and got_b


def test_no_local(clients):
    t = topic("nl")
    c = v5(clients)
    c.subscribe(t, options=mqtt.SubscribeOptions(qos=1, noLocal=True))
    other = v5(clients)
    other.subscribe(t, 1)
    c.publish(t, b"mine", qos=1)
    assert other.get().payload == b"mine"
    assert c.none(0.5)
    v5(clients).publish(t, b"theirs", qos=1)
    assert c.get().payload == b"theirs"


def test_retain_as_published_and_retain_handling(clients):
    t = topic("rap")
    rap, plain = v5(clients), v5(clients)
    rap.subscribe(t, options=mqtt.SubscribeOptions(qos=1, retainAsPublished=True))
    plain.subscribe(t, 1)
    v5(clients).publish(t, b"r", qos=1, retain=True)
    assert rap.get().retain is True
    assert plain.get().retain is False
    never = v5(clients)
    never.subscribe(t, options=mqtt.SubscribeOptions(qos=1, retainHandling=2))
    assert never.none(0.5)
    new_only = v5(clients)
    new_only.subscribe(t, options=mqtt.SubscribeOptions(qos=1, retainHandling=1))
    assert new_only.get().payload == b"r"
    new_only.subscribe(t, options=mqtt.SubscribeOptions(qos=1, retainHandling=1))
    assert new_only.none(0.5)
    v5(clients).publish(t, b"", qos=1, retain=True)


def test_no_matching_subscribers_reason(clients):
    r = Raw()
    r.send(_connect5(uid("nm")))
    assert r.read_packet()[0] == 0x20
    r.send(packet(0x32, s(topic("nobody").encode()) + b"\x00\x01" + b"\x00" + b"x"))
    p = r.read_packet()
    assert p[0] == 0x40 and p[1][:2] == b"\x00\x01" and p[1][2] == 0x10
    r.close()


def test_receive_maximum_limits_inflight(clients):
    t = topic("rm")
    r = Raw()
    cid = uid("rm")
    r.send(_connect5(cid, props=bytes([0x21, 0, 2])))  # Receive Maximum 2
    assert r.read_packet()[0] == 0x20
    r.send(packet(0x82, b"\x00\x01\x00" + s(t.encode()) + b"\x01"))
    assert r.read_packet()[0] == 0x90
    pub = v5(clients)
    for i in range(5):
        pub.publish(t, str(i).encode(), qos=1)
    first = [r.read_packet(), r.read_packet()]
    assert all(p[0] & 0xF0 == 0x30 for p in first)
    assert r.read_packet(timeout=0.7) is None or False  # nothing more until acks
    r2 = r  # acknowledge one: one more arrives
    pid = first[0][1][2 + len(t):4 + len(t)]
    r2.send(packet(0x40, pid))
    p = r.read_packet()
    assert p is not None and p[0] & 0xF0 == 0x30
    r.close()


def test_maximum_packet_size_to_client(clients):
    t = topic("mps")
    small = v5(clients, properties=props(CONNECT, MaximumPacketSize=200))
    small.subscribe(t, 0)
    pub = v5(clients)
    pub.publish(t, b"x" * 500, qos=1)
    pub.publish(t, b"fits", qos=1)
    m = small.get()
    assert m is not None and m.payload == b"fits"


def test_oversized_packet_disconnects_with_0x95(clients, warren_settings):
    r = Raw()
    r.send(_connect5(uid("big")))
    connack = r.read_packet()
    assert connack[0] == 0x20
    # Announce far more than the server's maximum packet size.
    r.send(b"\x30" + varint(200 * 1024 * 1024))
    p = r.read_packet()
    assert p is not None and p[0] == 0xE0 and p[1][0] == 0x95
    assert r.closed()
    other = v5(clients)
    assert other.reason == 0


def test_session_expiry_zero_ends_session_at_disconnect(clients):
    cid, t = uid("se"), topic("se")
    c = Client(client_id=cid, version=V5, clean=False)
    c.subscribe(t, 1)
    c.disconnect()
    c = Client(client_id=cid, version=V5, clean=False)
    assert not c.session_present
    c.disconnect()


def test_session_expiry_interval_keeps_session(clients):
    cid, t = uid("sk"), topic("sk")
    c = Client(client_id=cid, version=V5, clean=True,
               properties=props(CONNECT, SessionExpiryInterval=60))
    c.subscribe(t, 1)
    c.disconnect()
    v5(clients).publish(t, b"kept", qos=1)
    c = Client(client_id=cid, version=V5, clean=False,
               properties=props(CONNECT, SessionExpiryInterval=0))
    assert c.session_present
    assert c.get().payload == b"kept"
    c.disconnect()


def test_will_delay(clients):
    t = topic("wd")
    watcher = v5(clients)
    watcher.subscribe(t, 1)
    cid = uid("wd")
    will = {"topic": t, "payload": b"late", "qos": 1,
            "properties": props(WILLMESSAGE, WillDelayInterval=2)}
    c = Client(client_id=cid, version=V5, will=will,
               properties=props(CONNECT, SessionExpiryInterval=30))
    c.drop()
    assert watcher.none(1.0)
    m = watcher.get(5)
    assert m is not None and m.payload == b"late"
    # Reconnecting within the delay cancels the will.
    c = Client(client_id=cid, version=V5, will=will,
               properties=props(CONNECT, SessionExpiryInterval=30))
    c.drop()
    time.sleep(0.5)
    c = Client(client_id=cid, version=V5, properties=props(CONNECT, SessionExpiryInterval=0))
    assert watcher.none(3.0)
    c.disconnect()


def test_disconnect_with_will_message_reason(clients):
    t = topic("dw")
    watcher = v5(clients)
    watcher.subscribe(t, 1)
    c = Client(version=V5, will={"topic": t, "payload": b"asked", "qos": 1})
    c.disconnect(reasoncode=mqtt.ReasonCode(mqtt.PacketTypes.DISCONNECT, "Disconnect with will message"))
    m = watcher.get()
    assert m is not None and m.payload == b"asked"


def test_session_taken_over_reason(clients, warren):
    cid = uid("tov")
    first = Client(client_id=cid, version=V5)
    Client(client_id=cid, version=V5).disconnect()
    assert first.disconnected.wait(10)
    if warren:  # mosquitto 2.0.11 closes the socket without a DISCONNECT
        assert first.disconnect_reason.value == 0x8E


def test_misplaced_wildcard_filter_is_malformed():
    """As mosquitto (and RabbitMQ 3.10 for 3.1.1): DISCONNECT 0x81, then close."""
    r = Raw()
    r.send(_connect5(uid("if")))
    assert r.read_packet()[0] == 0x20
    r.send(packet(0x82, b"\x00\x05\x00" + s(b"a/#/b") + b"\x00" + s(b"ok/+") + b"\x01"))
    p = r.read_packet()
    assert p is not None and p[0] == 0xE0 and p[1][0] == 0x81
    assert r.closed()


def _connect5(client_id: str, props: bytes = b"", keepalive: int = 30) -> bytes:
    vh = s(b"MQTT") + bytes([5, 0x02 | 0x80 | 0x40]) + struct.pack("!H", keepalive)
    vh += varint(len(props)) + props
    return packet(0x10, vh + s(client_id.encode()) + s(b"guest") + s(b"guest"))


def test_shared_subscription_kept_by_a_persistent_session(clients):
    t, group, cid = topic("shk"), uid("g"), uid("shk")
    expiry = props(CONNECT, SessionExpiryInterval=60)
    c = Client(client_id=cid, version=V5, clean=True, properties=expiry)
    c.subscribe(f"$share/{group}/{t}", 1)
    c.disconnect()
    c = Client(client_id=cid, version=V5, clean=False, properties=expiry)
    assert c.session_present
    v5(clients).publish(t, b"to the group", qos=1)
    m = c.get()
    assert m is not None and m.payload == b"to the group"
    c.disconnect()
    Client(client_id=cid, version=V5, clean=True).disconnect()


def test_shared_subscription_keeps_messages_while_no_member_is_connected(clients):
    """A group with a persistent member keeps its messages while no member is
    connected (mosquitto queues them in the members' sessions too; MQTT 5
    section 4.8.2 lets a server send to a session whose client is not
    connected); the first member back gets them. When the last member's
    session ends the group ends with it, and its messages go."""
    t, group, cid = topic("shq"), uid("g"), uid("shq")
    filt = f"$share/{group}/{t}"
    expiry = props(CONNECT, SessionExpiryInterval=60)
    a = Client(client_id=cid, version=V5, clean=True, properties=expiry)
    b = v5(clients)  # a clean member
    a.subscribe(filt, 1)
    b.subscribe(filt, 1)
    a.disconnect()
    b.disconnect()
    pub = v5(clients)
    for i in range(4):
        pub.publish(t, str(i).encode(), qos=1)
    a = Client(client_id=cid, version=V5, clean=False, properties=expiry)
    assert a.session_present
    got = [m.payload for m in a.get_n(4)]
    assert got == [str(i).encode() for i in range(4)]
    # The persistent member leaves for good (clean start): nobody is left.
    a.disconnect()
    Client(client_id=cid, version=V5, clean=True).disconnect()
    pub.publish(t, b"to nobody", qos=1)
    c = v5(clients)
    c.subscribe(filt, 1)
    assert c.none(1.0)
    # A group of clean members only ends with its last connection.
    c.disconnect()
    pub.publish(t, b"to nobody either", qos=1)
    d = v5(clients)
    d.subscribe(filt, 1)
    assert d.none(1.0)


def test_one_member_unsubscribing_leaves_the_group_to_the_others(clients):
    t, group = topic("shu"), uid("g")
    filt = f"$share/{group}/{t}"
    a, b = v5(clients), v5(clients)
    a.subscribe(filt, 1)
    b.subscribe(filt, 1)
    a.unsubscribe(filt)
    pub = v5(clients)
    for i in range(3):
        pub.publish(t, str(i).encode(), qos=1)
    assert [m.payload for m in b.get_n(3)] == [b"0", b"1", b"2"]
    assert a.none(0.5)


def _disconnect5(expiry: int) -> bytes:
    """DISCONNECT, reason 0, with a Session Expiry Interval property."""
    p = bytes([0x11]) + struct.pack("!I", expiry)
    return packet(0xE0, bytes([0]) + varint(len(p)) + p)


def test_disconnect_sets_session_expiry_zero_ends_the_session(clients):
    """A DISCONNECT's Session Expiry Interval replaces the CONNECT's (MQTT 5
    section 3.14.2.2.2): 0 ends a session the CONNECT asked to keep."""
    cid, t = uid("dz"), topic("dz")
    c = Client(client_id=cid, version=V5, clean=True,
               properties=props(CONNECT, SessionExpiryInterval=60))
    c.subscribe(t, 1)
    c.disconnect(properties=props(DISCONNECT, SessionExpiryInterval=0))
    c = Client(client_id=cid, version=V5, clean=False,
               properties=props(CONNECT, SessionExpiryInterval=60))
    assert not c.session_present
    c.disconnect(properties=props(DISCONNECT, SessionExpiryInterval=0))


def test_disconnect_lengthens_session_expiry(clients):
    """CONNECT with 1 s, DISCONNECT with 60 s: the session (and what was
    queued for it) is still there after the CONNECT's second."""
    cid, t = uid("dl"), topic("dl")
    c = Client(client_id=cid, version=V5, clean=True,
               properties=props(CONNECT, SessionExpiryInterval=1))
    c.subscribe(t, 1)
    c.disconnect(properties=props(DISCONNECT, SessionExpiryInterval=60))
    v5(clients).publish(t, b"kept longer", qos=1)
    time.sleep(2.5)
    c = Client(client_id=cid, version=V5, clean=False,
               properties=props(CONNECT, SessionExpiryInterval=1))
    assert c.session_present
    m = c.get()
    assert m is not None and m.payload == b"kept longer"
    c.disconnect(properties=props(DISCONNECT, SessionExpiryInterval=0))


def test_disconnect_shortens_session_expiry(clients):
    cid, t = uid("ds"), topic("ds")
    c = Client(client_id=cid, version=V5, clean=True,
               properties=props(CONNECT, SessionExpiryInterval=60))
    c.subscribe(t, 1)
    c.disconnect(properties=props(DISCONNECT, SessionExpiryInterval=1))
    time.sleep(3.0)
    c = Client(client_id=cid, version=V5, clean=False,
               properties=props(CONNECT, SessionExpiryInterval=60))
    assert not c.session_present
    c.disconnect(properties=props(DISCONNECT, SessionExpiryInterval=0))


def test_disconnect_cannot_keep_a_session_connected_with_expiry_zero(clients):
    """CONNECT without session expiry, DISCONNECT with one: protocol error
    (DISCONNECT 0x82 from the server); it is not a normal DISCONNECT, so the
    will is published, and the session still ends."""
    cid, t = uid("dp"), topic("dp")
    watcher = v5(clients)
    watcher.subscribe(t + "/will", 1)
    wt = (t + "/will").encode()
    # CONNECT 5, clean start, will flag (QoS 0), user name and password.
    vh = s(b"MQTT") + bytes([5, 0x02 | 0x04 | 0x80 | 0x40]) + struct.pack("!H", 30)
    vh += varint(0)
    body = vh + s(cid.encode()) + varint(0) + s(wt) + s(b"gone") + s(b"guest") + s(b"guest")
    r = Raw()
    r.send(packet(0x10, body))
    p = r.read_packet()
    assert p is not None and p[0] == 0x20 and p[1][1] == 0
    r.send(packet(0x82, struct.pack("!H", 1) + varint(0) + s(t.encode()) + bytes([1])))
    p = r.read_packet()
    assert p is not None and p[0] == 0x90
    r.send(_disconnect5(30))
    p = r.read_packet()
    assert p is not None and p[0] == 0xE0 and p[1][0] == 0x82, p
    assert r.closed()
    r.close()
    m = watcher.get()
    assert m is not None and m.payload == b"gone"
    c = Client(client_id=cid, version=V5, clean=False,
               properties=props(CONNECT, SessionExpiryInterval=60))
    assert not c.session_present
    c.disconnect(properties=props(DISCONNECT, SessionExpiryInterval=0))
