"""A user with permissions on vhost secA only cannot read, publish to, list
or infer the objects of vhost secB, on any protocol.

secB holds a queue with a message, an exchange, a binding, a consumer and
open AMQP, STOMP and MQTT connections (all guest's). alice (tag
management, permissions on secA) then tries every way in. What she sees is
what RabbitMQ 3.10 shows a management user (checked against it): lists
hold only her vhosts' objects; per-object URLs of a vhost she has no access
to answer 401 whether the object exists or not.

As RabbitMQ, logging in to a vhost one has no access to and to one that does
not exist are told apart (AMQP 530 "access refused" vs "not found", MQTT
CONNACK 5 vs 4): vhost *names* can be probed, not what is in them.
"""

import json
import socket
import time

import pika
import pytest
import requests

from clients import amqp_login, mqtt_connect_packet, mqtt_login, stomp_connect_frame, stomp_login

ALICE = ("alice", "alice-pw-7")
G = ("guest", "guest")


@pytest.fixture(scope="module")
def world(dual):
    b = dual
    base = f"http://127.0.0.1:{b.http_port}"

    def put(path, body):
        r = requests.put(base + path, json=body, auth=G, timeout=10)
        assert r.status_code in (201, 204), (path, r.status_code, r.text)

    put("/api/vhosts/secA", {})
    put("/api/vhosts/secB", {})
    put("/api/users/alice", {"password": ALICE[1], "tags": "management"})
    put("/api/permissions/secA/alice", {"configure": ".*", "write": ".*", "read": ".*"})
    put("/api/permissions/secB/guest", {"configure": ".*", "write": ".*", "read": ".*"})
    put("/api/queues/secA/qa", {"durable": False})
    put("/api/queues/secB/qb", {"durable": False})
    put("/api/queues/secB/qb2", {"durable": False})
    put("/api/exchanges/secB/xb", {"type": "direct"})
    r = requests.post(base + "/api/bindings/secB/e/xb/q/qb", json={"routing_key": "k"}, auth=G,
                      timeout=10)
    assert r.status_code == 201, r.text
    r = requests.post(base + "/api/exchanges/secB/amq.default/publish", auth=G, timeout=10,
                      json={"routing_key": "qb2", "payload": "secret", "payload_encoding": "string",
                            "properties": {}})
    assert r.json() == {"routed": True}
    # guest's connections in secB: AMQP with a consumer, STOMP, MQTT.
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", b.amqp_port, "secB", pika.PlainCredentials(*G)))
    ch = conn.channel()
    ch.basic_consume("qb", lambda *a: None)
    stomp = socket.create_connection(("127.0.0.1", b.stomp_port))
    stomp.sendall(stomp_connect_frame(*G, vhost="secB"))
    mqtt = socket.create_connection(("127.0.0.1", b.mqtt_port))
    mqtt.sendall(mqtt_connect_packet("secB:guest", "guest", client_id="sec-b-client"))
    assert mqtt.recv(4)[3] == 0
    # Connections show up in the API once the stats tick saw them.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        names = {c["vhost"] for c in requests.get(base + "/api/connections", auth=G).json()}
        if "secB" in names:
            break
        time.sleep(0.2)
    yield b, base
    conn.close()
    stomp.close()
    mqtt.close()


def vhosts_in(items):
    """The vhosts of listed objects (a consumer's is its queue's)."""
    return {i.get("vhost") or (i.get("queue") or {}).get("vhost")
            for i in items if isinstance(i, dict)}


@pytest.mark.parametrize("path", ["/api/queues", "/api/exchanges", "/api/bindings",
                                  "/api/connections", "/api/channels", "/api/consumers",
                                  "/api/vhosts"])
def test_http_lists_hold_only_her_vhosts(world, path):
    b, base = world
    # guest (administrator) sees secB's objects through the same URL...
    everything = requests.get(base + path, auth=G, timeout=10).json()
    if path == "/api/vhosts":
        assert "secB" in {v["name"] for v in everything}
    else:
        assert "secB" in vhosts_in(everything), path
    # ...alice only secA's.
    r = requests.get(base + path, auth=ALICE, timeout=10)
    assert r.status_code == 200, r.text
    items = r.json()
    if path == "/api/vhosts":
        assert [v["name"] for v in items] == ["secA"]
    else:
        assert vhosts_in(items) <= {"secA"}, (path, items)
    assert "secB" not in r.text and "qb" not in r.text and "xb" not in r.text


def test_http_overview_counts_only_her_vhosts(world):
    b, base = world
    totals = requests.get(base + "/api/overview", auth=ALICE, timeout=10).json()["object_totals"]
    # secA: its queue qa and the 7 default exchanges; nothing of secB or "/".
    assert totals["queues"] == 1, totals
    assert totals["connections"] == 0 and totals["channels"] == 0, totals


@pytest.mark.parametrize("existing,missing", [
    ("/api/queues/secB/qb", "/api/queues/secB/no-such-queue"),
    ("/api/queues/secB/qb/bindings", "/api/queues/secB/no-such-queue/bindings"),
    ("/api/exchanges/secB/xb", "/api/exchanges/secB/no-such-exchange"),
    ("/api/exchanges/secB/xb/bindings/source", "/api/exchanges/secB/no-such/bindings/source"),
    ("/api/bindings/secB/e/xb/q/qb", "/api/bindings/secB/e/no-such/q/no-such"),
    ("/api/queues/secB", "/api/exchanges/secB"),
])
def test_http_objects_of_another_vhost_are_not_inferable(world, existing, missing):
    b, base = world
    a = requests.get(base + existing, auth=ALICE, timeout=10)
    m = requests.get(base + missing, auth=ALICE, timeout=10)
    assert a.status_code == 401, (existing, a.status_code, a.text)
    assert (a.status_code, a.json()) == (m.status_code, m.json())


def test_http_cannot_read_or_publish_in_another_vhost(world):
    b, base = world
    r = requests.post(base + "/api/queues/secB/qb2/get", auth=ALICE, timeout=10,
                      json={"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"})
    assert r.status_code == 401 and "secret" not in r.text
    r = requests.post(base + "/api/exchanges/secB/xb/publish", auth=ALICE, timeout=10,
                      json={"routing_key": "k", "payload": "x", "payload_encoding": "string",
                            "properties": {}})
    assert r.status_code == 401
    r = requests.put(base + "/api/queues/secB/alice-q", auth=ALICE, timeout=10, json={})
    assert r.status_code == 401
    r = requests.delete(base + "/api/queues/secB/qb", auth=ALICE, timeout=10)
    assert r.status_code == 401
    # Nothing changed in secB.
    q = requests.get(base + "/api/queues/secB/qb2", auth=G, timeout=10).json()
    assert q.get("messages", 1) in (1, None) or q["messages_ready"] == 1
    assert requests.get(base + "/api/queues/secB/qb", auth=G, timeout=10).status_code == 200
    assert requests.get(base + "/api/queues/secB/alice-q", auth=G, timeout=10).status_code == 404


def test_amqp(world):
    b, _ = world
    refused = amqp_login("127.0.0.1", b.amqp_port, *ALICE, vhost="secB")
    assert refused != "ok" and "530" in str(refused) and "refused" in str(refused), refused
    # In her own vhost, secB's queue and exchange are simply not there (the
    # same 404 as for names that exist nowhere).
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", b.amqp_port, "secA", pika.PlainCredentials(*ALICE)))
    try:
        for name in ("qb2", "no-such-queue"):
            ch = conn.channel()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
                ch.basic_get(name)
            assert e.value.reply_code == 404
        for name in ("xb", "no-such-exchange"):
            ch = conn.channel()
            ch.confirm_delivery()
            with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
                ch.basic_publish(name, "k", b"x")
            assert e.value.reply_code == 404
    finally:
        conn.close()


def test_stomp(world):
    b, _ = world
    cmd, headers, body = stomp_login("127.0.0.1", b.stomp_port, *ALICE, vhost="secB")
    assert cmd == "ERROR", (cmd, headers, body)
    assert "secret" not in body


def test_mqtt(world):
    b, _ = world
    # RabbitMQ: a vhost the user may not use is "not authorized" (5).
    assert mqtt_login("127.0.0.1", b.mqtt_port, "secB:alice", ALICE[1]) == 5
    assert mqtt_login("127.0.0.1", b.mqtt_port, "secA:alice", ALICE[1]) == 0
