"""RabbitMQ's topic permissions on MQTT: a publish needs the routing key
(topic with / as .) to match the user's `write` expression on amq.topic, a
subscription its binding key to match `read`; `{client_id}` is the MQTT
client id. Set through the management API (MGMT_URL).

MQTT 3.1.1: a refused PUBLISH closes the connection on both brokers. A
refused SUBSCRIBE gets SUBACK 0x80 from Warren (the spec, RabbitMQ 3.12+);
RabbitMQ 3.10 closes the connection. MQTT 5 (Warren): 0x87 Not authorized
in SUBACK and PUBACK, the connection stays.
"""

import os
import uuid

import pytest
import requests

from mqtt_helpers import TIMEOUT, V311, V5, Client, uid
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.packettypes import PacketTypes

MGMT_URL = os.environ.get("MGMT_URL", "http://127.0.0.1:15672")
AUTH = ("guest", "guest")
PASSWORD = "secret"


@pytest.fixture
def topic_user():
    """A user with full permissions on / and, on amq.topic, write and read
    only under its own client id (``{client_id}.#``)."""
    user = f"mqtt-tp-{uuid.uuid4().hex[:8]}"
    base = f"{MGMT_URL}/api"
    try:
        r = requests.put(f"{base}/users/{user}", auth=AUTH, timeout=10,
                         json={"password": PASSWORD, "tags": ""})
    except requests.RequestException as e:
        pytest.skip(f"no management API at {MGMT_URL}: {e!r}")
    assert r.status_code in (201, 204), r.text
    r = requests.put(f"{base}/permissions/%2F/{user}", auth=AUTH, timeout=10,
                     json={"configure": ".*", "write": ".*", "read": ".*"})
    assert r.status_code in (201, 204), r.text
    r = requests.put(f"{base}/topic-permissions/%2F/{user}", auth=AUTH, timeout=10,
                     json={"exchange": "amq.topic", "write": "^{client_id}\\.",
                           "read": "^{client_id}\\."})
    assert r.status_code in (201, 204), r.text
    yield user
    requests.delete(f"{base}/users/{user}", auth=AUTH, timeout=10)


@pytest.fixture
def made():
    cs = []
    yield cs
    for c in cs:
        try:
            c.disconnect()
        except Exception:
            pass


def client(made, user, version=V311, **kw):
    c = Client(client_id=uid("tp"), username=user, password=PASSWORD, version=version, **kw)
    made.append(c)
    return c


@pytest.mark.parametrize("websocket", [False, True], ids=["tcp", "websocket"])
def test_v311_subscribe_outside_read_is_refused(topic_user, made, websocket, warren):
    c = client(made, topic_user, websocket=websocket)
    assert c.subscribe(f"{c.client_id}/+", 1)[0] == 1
    if warren:
        # SUBACK 0x80 (failure), the connection stays: the spec's answer and
        # RabbitMQ 3.12+'s.
        other = c.subscribe(f"not-{c.client_id}/+", 1)
        assert other[0] == ReasonCode(PacketTypes.SUBACK, identifier=0x80)
    else:
        # RabbitMQ 3.10 closes the connection instead ("MQTT protocol error
        # ... access_refused"), without a SUBACK.
        c.c.subscribe(f"not-{c.client_id}/+", 1)
        assert c.disconnected.wait(TIMEOUT)
        return
    # The refused subscription receives nothing; the allowed one works.
    c.publish(f"{c.client_id}/a", b"mine", qos=1)
    m = c.get()
    assert m is not None and m.payload == b"mine"
    guest = Client()
    made.append(guest)
    guest.publish(f"not-{c.client_id}/a", b"not for you", qos=1)
    assert c.none()


def test_v311_publish_outside_write_closes_the_connection(topic_user, made):
    c = client(made, topic_user)
    watcher = Client()  # guest: no topic permission, sees everything
    made.append(watcher)
    watcher.subscribe(f"not-{c.client_id}/#", 0)
    c.publish(f"{c.client_id}/fine", b"ok", qos=1)
    c.publish(f"not-{c.client_id}/x", b"forbidden", qos=1, wait=False)
    assert c.disconnected.wait(TIMEOUT), "a refused 3.1.1 publish should close the connection"
    assert watcher.none(), "a refused publish was routed"


def test_v311_publish_allowed_is_delivered(topic_user, made):
    c = client(made, topic_user)
    watcher = Client()
    made.append(watcher)
    watcher.subscribe(f"{c.client_id}/#", 1)
    c.publish(f"{c.client_id}/x", b"allowed", qos=1)
    m = watcher.get()
    assert m is not None and m.payload == b"allowed"
    assert not c.disconnected.is_set()


def test_v5_refusals_are_not_authorized(topic_user, made, warren_only):
    c = client(made, topic_user, version=V5)
    granted = c.subscribe(f"{c.client_id}/#", 1)
    refused = c.subscribe(f"not-{c.client_id}/#", 1)
    assert granted[0] == 1
    assert refused[0].value == 0x87
    info = c.publish(f"not-{c.client_id}/x", b"no", qos=1, wait=False)
    info.wait_for_publish(TIMEOUT)
    # paho 2 marks a failed PUBACK as published; the connection stays.
    assert not c.disconnected.is_set()
    c.publish(f"{c.client_id}/y", b"yes", qos=1)
    m = c.get()
    assert m is not None and m.payload == b"yes"
