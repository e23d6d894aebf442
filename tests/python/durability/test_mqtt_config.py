"""MQTT settings from the config file's [mqtt] section (Warren's own brokers,
since they need a config): RabbitMQ's default vhost and anonymous user, the
server keep-alive, a user whose permissions keep it away from a topic."""

import os
import sys


import pika

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "mqtt"))

from mqtt_helpers import V5, Client, topic  # noqa: E402

CONFIG = """
[[vhosts]]
name = "devices"

[[users]]
name = "sensor"
password = "pw"
permissions = [{ vhost = "devices", configure = ".*", write = ".*", read = ".*" }]

[[users]]
name = "limited"
password = "pw"
permissions = [{ vhost = "devices", configure = "^mqtt-", write = "^mqtt-", read = ".*" }]

[mqtt]
default_vhost = "devices"
anonymous_user = "sensor"
max_keep_alive = 20
"""


def test_default_vhost_anonymous_user_and_server_keep_alive(broker_factory):
    broker = broker_factory(mqtt=True)
    broker.set_config(CONFIG)
    broker.start()
    port = broker.mqtt_port
    t = topic("cfg")
    # Anonymous: logged in as "sensor" on the default vhost "devices".
    anon = Client(username=None, port=port)
    anon.subscribe(t, 1)
    named = Client(username="sensor", password="pw", port=port)
    named.publish(t, b"same vhost", qos=1)
    assert anon.get().payload == b"same vhost"
    # An AMQP client in vhost "devices" sees the MQTT publish on amq.topic.
    conn = pika.BlockingConnection(pika.ConnectionParameters(
        "127.0.0.1", broker.port, "devices", pika.PlainCredentials("sensor", "pw")))
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.queue_bind(q, "amq.topic", t.replace("/", "."))
    named.publish(t, b"to amqp", qos=1)
    for _ in range(100):
        method, _, body = ch.basic_get(q, auto_ack=True)
        if method:
            break
        import time
        time.sleep(0.05)
    assert body == b"to amqp"
    conn.close()
    # MQTT 5: a keep-alive over the server's maximum is lowered and announced.
    c = Client(version=V5, username="sensor", password="pw", keepalive=60, port=port)
    assert c.connack_properties.ServerKeepAlive == 20
    for x in (anon, named, c):
        x.disconnect()


def test_publish_without_write_permission(broker_factory):
    broker = broker_factory(mqtt=True)
    broker.set_config(CONFIG)
    broker.start()
    t = topic("perm")
    # 3.1.1 cannot refuse a publish: the connection is closed, as RabbitMQ does.
    c = Client(username="devices:limited", password="pw", port=broker.mqtt_port)
    c.publish(t, b"x", qos=1, wait=False)
    assert c.disconnected.wait(10)
    # MQTT 5: the PUBACK says "not authorized" and the connection stays.
    c5 = Client(version=V5, username="limited", password="pw", port=broker.mqtt_port)
    info = c5.publish(t, b"x", qos=1, wait=False)
    info.wait_for_publish(10)
    assert not c5.disconnected.is_set()
    c5.disconnect()



def test_subscription_ttl_ends_an_unused_311_persistent_session(broker_factory):
    """`[mqtt] subscription_ttl` (ms, RabbitMQ 3.10's `mqtt.subscription_ttl`):
    a 3.1.1 persistent session unused that long ends, queued messages with it."""
    broker = broker_factory(mqtt=True)
    broker.set_config("[mqtt]\nsubscription_ttl = 1500\n")
    broker.start()
    port = broker.mqtt_port
    cid, t = "ttl-" + topic("c").replace("/", "-"), topic("ttl")
    c = Client(client_id=cid, clean=False, port=port)
    c.subscribe(t, 1)
    c.disconnect()
    pub = Client(port=port)
    pub.publish(t, b"queued", qos=1)
    # Within the TTL the session is there (and reconnecting restarts it).
    c = Client(client_id=cid, clean=False, port=port)
    assert c.session_present
    assert c.get().payload == b"queued"
    c.disconnect()
    pub.publish(t, b"too late", qos=1)
    import time
    time.sleep(3.5)
    c = Client(client_id=cid, clean=False, port=port)
    assert not c.session_present
    assert c.none(0.5)
    c.disconnect()
    pub.disconnect()
