"""MQTT 3.1.1 publish/subscribe as RabbitMQ's MQTT plugin does it: QoS 0/1
(2 on Warren), wildcards, topics on amq.topic shared with AMQP and STOMP
clients both ways, retained messages."""

import os
import socket
import time

import pika
import pytest

from mqtt_helpers import V311, Client, topic, uid
from helpers import connect as amqp_connect


def test_qos0_and_qos1_round_trip(clients):
    t = topic()
    sub = clients()
    assert sub.subscribe(t + "/+", qos=1)[0] == 1
    pub = clients()
    pub.publish(t + "/a", b"zero", qos=0)
    pub.publish(t + "/b", b"one", qos=1)
    got = sorted((m.topic, m.payload, m.qos) for m in sub.get_n(2))
    assert got == [(t + "/a", b"zero", 0), (t + "/b", b"one", 1)]


def test_wildcards(clients):
    t = topic()
    plus, hash_, exact = clients(), clients(), clients()
    plus.subscribe(t + "/+/x", 0)
    hash_.subscribe(t + "/#", 0)
    exact.subscribe(t + "/a/x", 0)
    pub = clients()
    for name in ["a/x", "b/x", "a/y", "a/x/deeper"]:
        pub.publish(f"{t}/{name}", name.encode(), qos=1)
    assert sorted(m.payload for m in plus.get_n(2)) == [b"a/x", b"b/x"]
    assert sorted(m.payload for m in hash_.get_n(4)) == [b"a/x", b"a/x/deeper", b"a/y", b"b/x"]
    assert [m.payload for m in exact.get_n(1)] == [b"a/x"]
    assert plus.none() and exact.none()


def test_qos_is_the_minimum_of_publish_and_subscription(clients):
    t = topic()
    sub = clients()
    sub.subscribe(t, 0)
    clients().publish(t, b"x", qos=1)
    m = sub.get()
    assert m is not None and m.qos == 0


def test_exactly_once_qos2(clients, warren_only):
    t = topic()
    sub = clients()
    assert sub.subscribe(t, 2)[0] == 2
    pub = clients()
    for i in range(20):
        pub.publish(t, str(i).encode(), qos=2)
    got = sub.get_n(20)
    assert [m.payload for m in got] == [str(i).encode() for i in range(20)]
    assert all(m.qos == 2 for m in got)
    assert sub.none()


def test_qos2_publish_to_qos1_subscriber_arrives_as_qos1(clients, warren_only):
    t = topic()
    sub = clients()
    sub.subscribe(t, 1)
    clients().publish(t, b"x", qos=2)
    m = sub.get()
    assert m is not None and m.qos == 1


def test_mqtt_to_amqp_and_back(clients, needs_amqp):
    """Topics are routing keys on amq.topic: / becomes . and + becomes *."""
    t = topic("x2a")
    key = t.replace("/", ".")
    conn = amqp_connect()
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", routing_key=key.split(".")[0] + ".*")
    mq = clients()
    mq.publish(t, b"from mqtt", qos=1)
    deadline = time.monotonic() + 10
    got = None
    while got is None and time.monotonic() < deadline:
        method, props, body = ch.basic_get(q, auto_ack=True)
        if method:
            got = (method.routing_key, body, props.delivery_mode)
        else:
            time.sleep(0.05)
    assert got == (key, b"from mqtt", 2)
    sub = clients()
    sub.subscribe(t.split("/")[0] + "/+/reply", 1)
    ch.basic_publish("amq.topic", key + ".reply", b"from amqp",
                     pika.BasicProperties(delivery_mode=2))
    m = sub.get()
    assert m is not None and (m.topic, m.payload) == (t + "/reply", b"from amqp")
    conn.close()


def test_transient_amqp_message_reaches_qos1_subscriber(clients, needs_amqp):
    t = topic("tr")
    sub = clients()
    sub.subscribe(t, 1)
    conn = amqp_connect()
    conn.channel().basic_publish("amq.topic", t.replace("/", "."), b"transient")
    m = sub.get()
    conn.close()
    assert m is not None and m.payload == b"transient"


def _stomp_port():
    p = int(os.environ.get("STOMP_PORT", "0") or 0)
    if not p:
        pytest.skip("STOMP_PORT not set")
    try:
        socket.create_connection(("127.0.0.1", p), timeout=2).close()
    except OSError:
        pytest.skip("nothing listens on STOMP_PORT")
    return p


def test_stomp_topic_and_mqtt_both_ways(clients, needs_amqp):
    import stomp
    port = _stomp_port()
    t = topic("st")
    key = t.replace("/", ".")
    received = []

    class L(stomp.ConnectionListener):
        def on_message(self, frame):
            received.append((frame.headers["destination"], frame.body))

    conn = stomp.Connection12([("127.0.0.1", port)], vhost="/")
    conn.set_listener("l", L())
    conn.connect("guest", "guest", wait=True)
    conn.subscribe(f"/topic/{key}", id="1", ack="auto", receipt="r1")
    time.sleep(0.3)
    clients().publish(t, b"mqtt to stomp", qos=1)
    sub = clients()
    sub.subscribe(t, 1)
    conn.send(f"/topic/{key}", "stomp to mqtt")
    m = sub.get()
    deadline = time.monotonic() + 10
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    conn.disconnect()
    assert m is not None and m.payload == b"stomp to mqtt"
    assert (f"/topic/{key}", "mqtt to stomp") in received


def test_retained_message_on_subscribe_and_cleared(clients):
    t = topic("ret")
    pub = clients()
    pub.publish(t, b"kept", qos=1, retain=True)
    sub = clients()
    sub.subscribe(t, 1)
    m = sub.get()
    assert m is not None and (m.payload, m.retain) == (b"kept", True)
    # A live publish reaches current subscribers without the retain flag.
    pub.publish(t, b"new", qos=1, retain=True)
    m = sub.get()
    assert m is not None and (m.payload, m.retain) == (b"new", False)
    later = clients()
    later.subscribe(t, 1)
    m = later.get()
    assert m is not None and (m.payload, m.retain) == (b"new", True)
    # An empty retained publish clears it.
    pub.publish(t, b"", qos=1, retain=True)
    time.sleep(0.2)
    third = clients()
    third.subscribe(t, 1)
    assert third.none(1.0)


def test_retained_messages_reach_wildcard_subscribers(clients, warren_only):
    """RabbitMQ 3.10 looks retained messages up by exact topic only."""
    t = topic("retw")
    pub = clients()
    for name in ["a", "b", "c/d"]:
        pub.publish(f"{t}/{name}", name.encode(), qos=1, retain=True)
    sub = clients()
    sub.subscribe(t + "/+", 1)
    got = sorted(m.payload for m in sub.get_n(2))
    assert got == [b"a", b"b"]
    assert sub.none()
    everything = clients()
    everything.subscribe(t + "/#", 0)
    assert sorted(m.payload for m in everything.get_n(3)) == [b"a", b"b", b"c/d"]
    for name in ["a", "b", "c/d"]:
        pub.publish(f"{t}/{name}", b"", qos=1, retain=True)


def test_subscription_queues_are_named_as_rabbitmq(clients, needs_amqp):
    cid = uid("qn")
    c = clients(client_id=cid, clean=False)
    c.subscribe(topic(), 1)
    c.subscribe(topic(), 0)
    conn = amqp_connect()
    ch = conn.channel()
    for q in (f"mqtt-subscription-{cid}qos1", f"mqtt-subscription-{cid}qos0"):
        ch.queue_declare(q, passive=True)
    conn.close()
    c.disconnect()
    # Clean up the persistent session.
    Client(client_id=cid, clean=True).disconnect()
