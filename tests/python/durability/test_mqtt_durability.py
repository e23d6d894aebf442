"""MQTT state across kill -9 (GitHub issue 12): a persistent session's
subscriptions and its queued QoS 1 messages (every PUBACKed publish, since a
PUBACK waits for the fsync), QoS 2 messages, and retained messages all come
back after the broker is SIGKILLed and started again."""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "mqtt"))

from mqtt_helpers import V5, Client, props, CONNECT, topic, uid  # noqa: E402

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
