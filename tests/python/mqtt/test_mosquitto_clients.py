"""Interoperability with the mosquitto command-line clients (Debian package
mosquitto-clients): mosquitto_sub and mosquitto_pub, MQTT 3.1, 3.1.1 and 5,
QoS 0/1/2, retained messages."""

import shutil
import subprocess
import time

import pytest

from mqtt_helpers import MQTT_HOST, MQTT_PORT, topic

pytestmark = pytest.mark.skipif(shutil.which("mosquitto_sub") is None,
                                reason="mosquitto-clients not installed")

BASE = ["-h", MQTT_HOST, "-p", str(MQTT_PORT), "-u", "guest", "-P", "guest"]


def sub(filter_, n, version, qos, extra=()):
    return subprocess.Popen(["mosquitto_sub", *BASE, "-V", version, "-t", filter_, "-q", str(qos),
                             "-C", str(n), "-W", "15", "-v", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def pub(topic_, message, version, qos, extra=()):
    body = ["-n"] if message is None else ["-m", message]
    r = subprocess.run(["mosquitto_pub", *BASE, "-V", version, "-t", topic_, *body,
                        "-q", str(qos), *extra], capture_output=True, text=True, timeout=15)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("version,qos", [("mqttv31", 0), ("mqttv311", 1), ("mqttv311", 2),
                                         ("mqttv5", 1), ("mqttv5", 2)])
def test_pub_sub(version, qos, warren):
    if (version == "mqttv5" or qos == 2) and not warren:
        pytest.skip("RabbitMQ 3.10: no MQTT 5, QoS 2 downgraded")
    t = topic("mosq")
    s = sub(t + "/+", 2, version, qos)
    time.sleep(0.7)
    pub(t + "/a", "one", version, qos)
    pub(t + "/b", "two", version, qos)
    out, err = s.communicate(timeout=20)
    assert s.returncode == 0, err
    assert out.splitlines() == [f"{t}/a one", f"{t}/b two"]


def test_retained_with_mosquitto(warren):
    t = topic("mosqr")
    pub(t, "kept", "mqttv311", 1, ["-r"])
    s = sub(t, 1, "mqttv311", 1)
    out, err = s.communicate(timeout=20)
    assert out.splitlines() == [f"{t} kept"]
    pub(t, None, "mqttv311", 1, ["-r"])


def test_mosquitto_v5_user_property(warren):
    if not warren:
        pytest.skip("RabbitMQ 3.10 has no MQTT 5")
    t = topic("mosqp")
    s = sub(t, 1, "mqttv5", 1, ["-F", "%t %p %P"])
    time.sleep(0.7)
    pub(t, "body", "mqttv5", 1, ["-D", "PUBLISH", "user-property", "k", "v"])
    out, err = s.communicate(timeout=20)
    assert out.strip() == f"{t} body k:v"
