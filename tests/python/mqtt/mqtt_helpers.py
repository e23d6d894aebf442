"""Helpers for the MQTT scenario tests: a synchronous wrapper around paho-mqtt
(one network thread per client, messages collected in a queue), a raw-socket
client for the bad-input tests, and broker detection.

``MQTT_HOST`` (default 127.0.0.1) and ``MQTT_PORT`` (default 1883) name the
broker's MQTT listener; ``AMQP_URL`` its AMQP listener (pika).
"""

import os
import queue
import socket
import struct
import sys
import threading
import time
import uuid
from typing import List, Optional

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from helpers import connect as amqp_connect  # noqa: E402

MQTT_HOST = os.environ.get("MQTT_HOST", "127.0.0.1")
MQTT_PORT = int(os.environ.get("MQTT_PORT", "1883"))
# MQTT over WebSocket (ws://MQTT_HOST:WEB_MQTT_PORT/ws), RabbitMQ's Web-MQTT.
WEB_MQTT_PORT = int(os.environ.get("WEB_MQTT_PORT", "15675"))
V311 = mqtt.MQTTv311
V5 = mqtt.MQTTv5
TIMEOUT = 10.0

# "mosquitto": a reference MQTT 5 broker with no AMQP side (tests that need
# AMQP, RabbitMQ's names or Warren's settings skip).
MQTT_BROKER = os.environ.get("MQTT_BROKER", "")
_is_warren = None


def broker_is_warren() -> bool:
    global _is_warren
    if MQTT_BROKER:
        return False
    if _is_warren is None:
        c = amqp_connect()
        p = c._impl.server_properties.get("product", "")
        c.close()
        _is_warren = (p.decode() if isinstance(p, bytes) else str(p)) == "Warren"
    return _is_warren


def uid(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def topic(prefix: str = "t") -> str:
    """A topic no other test uses (levels separated by /)."""
    return f"{prefix}/{uuid.uuid4().hex[:10]}"


class Client:
    """A connected paho client; ``messages`` collects what it receives."""

    def __init__(self, client_id: Optional[str] = None, version=V311, clean: bool = True,
                 username: Optional[str] = "guest", password: Optional[str] = "guest",
                 keepalive: int = 60, will=None, properties: Optional[Properties] = None,
                 connect: bool = True, port: int = None, websocket: bool = False):
        self.version = version
        self.client_id = uid() if client_id is None else client_id
        kw = {"clean_session": clean} if version != V5 else {}
        if websocket:
            kw["transport"] = "websockets"
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=version, **kw)
        if websocket:
            self.c.ws_set_options(path="/ws")
        self.clean = clean
        self.port = port or (WEB_MQTT_PORT if websocket else MQTT_PORT)
        if username is not None:
            self.c.username_pw_set(username, password)
        if will is not None:
            self.c.will_set(**will)
        self.keepalive = keepalive
        self.connect_properties = properties
        self.messages: "queue.Queue[mqtt.MQTTMessage]" = queue.Queue()
        self.connack = threading.Event()
        self.reason = None
        self.flags = None
        self.connack_properties = None
        self.disconnected = threading.Event()
        self.disconnect_reason = None
        self.disconnect_properties = None
        self.subacks = {}
        self.unsubacks = {}
        self.acked = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_unsubscribe
        self.c.on_disconnect = self._on_disconnect
        if connect:
            self.connect()

    def _on_connect(self, c, u, flags, reason, properties):
        self.flags, self.reason, self.connack_properties = flags, reason, properties
        self.connack.set()

    def _on_disconnect(self, c, u, flags, reason, properties):
        self.disconnect_reason = reason
        self.disconnect_properties = properties
        self.disconnected.set()

    def _on_subscribe(self, c, u, mid, reasons, properties):
        with self.acked:
            self.subacks[mid] = reasons
            self.acked.notify_all()

    def _on_unsubscribe(self, c, u, mid, reasons, properties):
        with self.acked:
            self.unsubacks[mid] = reasons
            self.acked.notify_all()

    def connect(self, expect_ok: bool = True):
        kw = {}
        if self.version == V5:
            kw["clean_start"] = self.clean
            kw["properties"] = self.connect_properties
        self.c.connect(MQTT_HOST, self.port, keepalive=self.keepalive, **kw)
        self.c.loop_start()
        assert self.connack.wait(TIMEOUT), "no CONNACK"
        if expect_ok:
            assert not self.reason.is_failure, f"CONNECT refused: {self.reason}"
        return self.reason

    @property
    def session_present(self) -> bool:
        return bool(self.flags.session_present)

    def subscribe(self, topic_filter, qos: int = 0, options=None, properties=None) -> List:
        if options is not None:
            rc, mid = self.c.subscribe(topic_filter, options=options, properties=properties)
        elif self.version == V5:
            rc, mid = self.c.subscribe(topic_filter, options=mqtt.SubscribeOptions(qos=qos),
                                       properties=properties)
        else:
            rc, mid = self.c.subscribe(topic_filter, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS
        with self.acked:
            assert self.acked.wait_for(lambda: mid in self.subacks, TIMEOUT), "no SUBACK"
            return self.subacks[mid]

    def unsubscribe(self, topic_filter) -> List:
        rc, mid = self.c.unsubscribe(topic_filter)
        with self.acked:
            assert self.acked.wait_for(lambda: mid in self.unsubacks, TIMEOUT), "no UNSUBACK"
            return self.unsubacks[mid]

    def publish(self, topic_name, payload=b"", qos: int = 0, retain: bool = False,
                properties=None, wait: bool = True):
        info = self.c.publish(topic_name, payload, qos=qos, retain=retain, properties=properties)
        if wait and qos > 0:
            info.wait_for_publish(TIMEOUT)
            assert info.is_published(), "publish not acknowledged"
        return info

    def get(self, timeout: float = TIMEOUT) -> Optional[mqtt.MQTTMessage]:
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            return None

    def get_n(self, n: int, timeout: float = TIMEOUT) -> List[mqtt.MQTTMessage]:
        out = []
        deadline = time.monotonic() + timeout
        while len(out) < n:
            m = self.get(max(0.01, deadline - time.monotonic()))
            if m is None:
                break
            out.append(m)
        return out

    def none(self, wait: float = 0.5) -> bool:
        """Nothing arrives within ``wait`` seconds."""
        return self.get(wait) is None

    def disconnect(self, properties=None, reasoncode=None):
        kw = {}
        if properties is not None:
            kw["properties"] = properties
        if reasoncode is not None:
            kw["reasoncode"] = reasoncode
        self.c.disconnect(**kw)
        self.c.loop_stop()

    def drop(self):
        """Close the socket without DISCONNECT (what a crash looks like)."""
        s = self.c.socket()
        self.c.loop_stop()
        if s is not None:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def props(packet_type, **kw) -> Properties:
    p = Properties(packet_type)
    for k, v in kw.items():
        setattr(p, k, v)
    return p


PUBLISH = PacketTypes.PUBLISH
CONNECT = PacketTypes.CONNECT
SUBSCRIBE = PacketTypes.SUBSCRIBE
WILLMESSAGE = PacketTypes.WILLMESSAGE
DISCONNECT = PacketTypes.DISCONNECT


# ---- raw packets (bad-input tests) -----------------------------------------------

def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def s(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


def packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + varint(len(body)) + body


def connect_packet(client_id: bytes = b"", level: int = 4, clean: bool = True,
                   user: bytes = b"guest", password: bytes = b"guest", keepalive: int = 30) -> bytes:
    flags = (2 if clean else 0) | 0x80 | 0x40
    vh = s(b"MQTT") + bytes([level, flags]) + struct.pack("!H", keepalive)
    if level == 5:
        vh += b"\x00"
    return packet(0x10, vh + s(client_id or uid("raw").encode()) + s(user) + s(password))


class Raw:
    """A raw MQTT socket: send bytes, read packets."""

    def __init__(self, port: int = None):
        self.sock = socket.create_connection((MQTT_HOST, port or MQTT_PORT), timeout=TIMEOUT)
        self.buf = b""

    def send(self, data: bytes):
        self.sock.sendall(data)

    def read_packet(self, timeout: float = TIMEOUT):
        """(first byte, body), or None when the server closed the connection."""
        self.sock.settimeout(timeout)
        while True:
            if len(self.buf) >= 2:
                n, mult, i = 0, 1, 1
                while i < len(self.buf):
                    b = self.buf[i]
                    n += (b & 0x7F) * mult
                    mult <<= 7
                    i += 1
                    if not b & 0x80:
                        if len(self.buf) >= i + n:
                            p = (self.buf[0], self.buf[i:i + n])
                            self.buf = self.buf[i + n:]
                            return p
                        break
            try:
                chunk = self.sock.recv(65536)
            except (ConnectionResetError, socket.timeout):
                return None
            if not chunk:
                return None
            self.buf += chunk

    def closed(self, timeout: float = TIMEOUT) -> bool:
        """The server closes the connection (packets before the close are skipped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.read_packet(max(0.01, deadline - time.monotonic())) is None:
                return True
        return False

    def close(self):
        self.sock.close()
