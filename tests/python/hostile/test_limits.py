"""Broker-wide limits from the config file, with RabbitMQ's names and refusals:
``connection_max`` over every protocol and ``max_message_size`` on STOMP and
MQTT (AMQP's 406 and channel_max's 530 are covered by the main suite).

RabbitMQ 3.10: a connection over ``connection_max`` is closed with 530
"NOT_ALLOWED - connection refused: node connection limit (N) is reached"; a
STOMP SEND over ``max_message_size`` kills the plugin's internal channel with
406 "PRECONDITION_FAILED - message size N is larger than configured max size
M", which the client sees as an ERROR ``precondition_failed`` before the close.
"""

import socket
import time

import paho.mqtt.client as mqtt
import pika
import pika.exceptions
import pytest
import stomp

from warren_harness import toml_config

NOT_ALLOWED = 530


def stomp_frame(command, headers, body=b""):
    lines = [command.encode()] + [f"{k}:{v}".encode() for k, v in headers.items()]
    return b"\n".join(lines) + b"\n\n" + body + b"\x00"


def stomp_read_frame(sock, timeout=10.0):
    sock.settimeout(timeout)
    buf = b""
    while b"\x00" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            return buf
        buf += chunk
    return buf.split(b"\x00", 1)[0].lstrip(b"\n")


def stomp_login(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(stomp_frame("CONNECT", {"accept-version": "1.2", "host": "/",
                                      "login": "guest", "passcode": "guest"}))
    return s, stomp_read_frame(s)


def test_connection_max_refuses_on_every_protocol(broker_factory):
    b = broker_factory(config=toml_config({"limits": {"connection_max": 2}}),
                       stomp=True, mqtt=True).start()
    held = [b.connect(), b.connect()]
    # pika reports a close during connection.open as a probable access denial.
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        b.connect()
    assert ("(530) 'NOT_ALLOWED - connection refused: node connection limit (2) is reached'"
            in str(e.value)), str(e.value)

    s, reply = stomp_login(b.stomp_port)
    # The STOMP adapter's usual refusal of a vhost it may not open (RabbitMQ
    # checks connection_max in its AMQP 0-9-1 reader; Warren on every login).
    assert reply.startswith(b"ERROR"), reply
    assert b"access denied" in reply
    s.close()

    m = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="over",
                    protocol=mqtt.MQTTv5)
    m.username_pw_set("guest", "guest")
    codes = []
    m.on_connect = lambda c, u, f, rc, p: codes.append(rc)
    m.connect("127.0.0.1", b.mqtt_port)
    deadline = time.monotonic() + 10
    while not codes and time.monotonic() < deadline:
        m.loop(0.1)
    assert codes and codes[0].is_failure, codes
    m.disconnect()

    # Room again once one closes.
    held.pop().close()
    c = b.connect()
    c.close()
    for c in held:
        c.close()


def test_max_message_size_on_stomp_and_mqtt(broker_factory):
    limit = 1024 * 1024
    b = broker_factory(config=toml_config({"limits": {"max_message_size": limit}}),
                       stomp=True, mqtt=True).start()
    c = b.connect()
    ch = c.channel()
    ch.queue_declare("mms")

    # STOMP: at the limit it is taken, one byte over it is refused.
    s, reply = stomp_login(b.stomp_port)
    assert reply.startswith(b"CONNECTED"), reply
    s.sendall(stomp_frame("SEND", {"destination": "/amq/queue/mms", "receipt": "r1",
                                   "content-length": str(limit)}, b"a" * limit))
    assert stomp_read_frame(s).startswith(b"RECEIPT")
    s.sendall(stomp_frame("SEND", {"destination": "/amq/queue/mms",
                                   "content-length": str(limit + 1)}, b"a" * (limit + 1)))
    err = stomp_read_frame(s)
    assert err.startswith(b"ERROR"), err[:200]
    assert b"message:precondition_failed" in err
    assert (b"PRECONDITION_FAILED - message size %d is larger than configured max size %d"
            % (limit + 1, limit)) in err
    s.settimeout(10)
    rest = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            rest += chunk
    except ConnectionResetError:
        pass
    s.close()

    # MQTT 5: a PUBLISH far over the limit ends the connection with 0x95.
    m = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="big",
                    protocol=mqtt.MQTTv5)
    m.username_pw_set("guest", "guest")
    got = {}
    m.on_connect = lambda cl, u, f, rc, p: got.setdefault("connack", p)
    m.on_disconnect = lambda cl, u, f, rc, p: got.setdefault("disconnect", rc)
    m.connect("127.0.0.1", b.mqtt_port)
    deadline = time.monotonic() + 10
    while "connack" not in got and time.monotonic() < deadline:
        m.loop(0.1)
    announced = getattr(got["connack"], "MaximumPacketSize", None)
    assert announced is not None and announced <= limit + 64 * 1024, announced
    m.publish("big/t", b"x" * (2 * limit), qos=1)
    deadline = time.monotonic() + 15
    while "disconnect" not in got and time.monotonic() < deadline:
        m.loop(0.1)
    assert "disconnect" in got
    assert got["disconnect"].value in (0x95, 0x80, 0x87) or got["disconnect"].is_failure

    assert ch.queue_declare("mms", passive=True).method.message_count == 1
    c.close()


def test_user_max_channels_counts_stomp_and_mqtt_connections(broker_factory):
    """RabbitMQ 3.10 (asked on this machine, a user with max-channels 0): its
    STOMP and MQTT connections each hold one channel, so CONNECT fails; STOMP
    with an ERROR "Processing error", MQTT by closing without a CONNACK (Warren:
    CONNACK 5, "quota exceeded" for MQTT 5)."""
    import requests
    b = broker_factory(stomp=True, mqtt=True, http=True).start()
    r = requests.put(f"http://127.0.0.1:{b.http_port}/api/user-limits/guest/max-channels",
                     auth=("guest", "guest"), json={"value": 1})
    assert r.status_code in (201, 204), r.text
    c = b.connect()
    ch = c.channel()  # the user's one channel
    s, reply = stomp_login(b.stomp_port)
    assert reply.startswith(b"ERROR"), reply
    assert b"message:Processing error" in reply
    s.close()
    with socket.create_connection(("127.0.0.1", b.mqtt_port), timeout=10) as m:
        var = b"\x00\x04MQTT\x04\xc2\x00\x3c\x00\x02mc\x00\x05guest\x00\x05guest"
        m.sendall(b"\x10" + bytes([len(var)]) + var)
        assert m.recv(4) == b"\x20\x02\x00\x05"
    ch.close()
    s, reply = stomp_login(b.stomp_port)
    assert reply.startswith(b"CONNECTED"), reply
    s.close()
    c.close()
