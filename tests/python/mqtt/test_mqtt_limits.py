"""A vhost's `max-connections` limit (set through the management API,
MGMT_URL) holds for MQTT as for AMQP: the connection over the limit gets
CONNACK 5 (not authorized) and is closed, as RabbitMQ answers; the one within
it stays."""

import os
import time
import uuid

import paho.mqtt.client as mqtt
import pytest
import requests

from mqtt_helpers import MQTT_HOST, MQTT_PORT

MGMT_URL = os.environ.get("MGMT_URL", "http://127.0.0.1:15672")
AUTH = ("guest", "guest")


@pytest.fixture
def limited_vhost():
    vhost = f"mqtt-lim-{uuid.uuid4().hex[:8]}"
    base = f"{MGMT_URL}/api"
    try:
        r = requests.put(f"{base}/vhosts/{vhost}", auth=AUTH, timeout=10)
    except requests.RequestException as e:
        pytest.skip(f"no management API at {MGMT_URL}: {e!r}")
    assert r.status_code in (201, 204), r.text
    r = requests.put(f"{base}/permissions/{vhost}/guest", auth=AUTH, timeout=10,
                     json={"configure": ".*", "write": ".*", "read": ".*"})
    assert r.status_code in (201, 204), r.text
    r = requests.put(f"{base}/vhost-limits/{vhost}/max-connections", auth=AUTH,
                     timeout=10, json={"value": 1})
    assert r.status_code in (201, 204), r.text
    yield vhost
    requests.delete(f"{base}/vhosts/{vhost}", auth=AUTH, timeout=10)


def connect(vhost, client_id):
    """Connect as vhost:guest; returns (client, CONNACK reason code)."""
    got = {}
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv311)
    c.username_pw_set(f"{vhost}:guest", "guest")
    c.on_connect = lambda _c, _u, _f, rc, _p: got.setdefault("rc", rc)
    c.connect(MQTT_HOST, MQTT_PORT)
    c.loop_start()
    deadline = time.monotonic() + 10
    while "rc" not in got and time.monotonic() < deadline:
        time.sleep(0.02)
    return c, got.get("rc")


def test_vhost_connection_limit_refuses_the_connection_over_it(limited_vhost):
    first, rc1 = connect(limited_vhost, "lim-a-" + uuid.uuid4().hex[:6])
    second, rc2 = connect(limited_vhost, "lim-b-" + uuid.uuid4().hex[:6])
    try:
        assert rc1 is not None and rc1.value == 0
        # CONNACK return code 5, which paho reports as "Not authorized".
        assert rc2 is not None and str(rc2) == "Not authorized"
        assert first.is_connected()
        assert not second.is_connected()
    finally:
        for c in (first, second):
            c.loop_stop()
            c.disconnect()
