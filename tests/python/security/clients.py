"""One login attempt per protocol, returning what the client observed.

Each takes ``host`` (an IPv4 or IPv6 literal: the client connects to it, so
the kernel uses it as the source address when it is one of this machine's)
and returns a short, comparable outcome.
"""

import base64
import socket
import struct
import time

import pika
import pika.exceptions
import requests
import websocket


def hostport(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def amqp_login(host, port, user, password, vhost="/"):
    """"ok", or (reply code, reply text) of the broker's refusal."""
    params = pika.ConnectionParameters(host, port, vhost, pika.PlainCredentials(user, password),
                                       socket_timeout=5, blocked_connection_timeout=5,
                                       connection_attempts=1)
    try:
        c = pika.BlockingConnection(params)
    except pika.exceptions.ProbableAccessDeniedError as e:
        return ("access-denied", str(e))
    except pika.exceptions.ProbableAuthenticationError as e:
        return ("auth", str(e))
    except pika.exceptions.ConnectionClosedByBroker as e:
        return (e.reply_code, e.reply_text)
    except pika.exceptions.AMQPConnectionError as e:
        return ("conn", repr(e))
    c.close()
    return "ok"


def _recv_frame(sock, timeout=5.0) -> bytes:
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\0" not in data and time.monotonic() < deadline:
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            break
        if not chunk:
            break
        data += chunk
    return data.lstrip(b"\r\n")


def stomp_connect_frame(user, password, vhost=None) -> bytes:
    h = f"CONNECT\naccept-version:1.2\nlogin:{user}\npasscode:{password}\n"
    if vhost is not None:
        h += f"host:{vhost}\n"
    return (h + "\n").encode() + b"\0"


def parse_stomp(frame: bytes):
    """(command, headers, body) of one frame."""
    head, _, body = frame.partition(b"\n\n")
    lines = head.decode(errors="replace").split("\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k, v)
    return lines[0], headers, body.rstrip(b"\0\n").decode(errors="replace")


def stomp_login(host, port, user, password, vhost=None):
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(stomp_connect_frame(user, password, vhost))
        return parse_stomp(_recv_frame(s))


def _mqtt_str(b: bytes) -> bytes:
    return struct.pack(">H", len(b)) + b


def mqtt_connect_packet(user, password, version=4, client_id="sec-test") -> bytes:
    var = _mqtt_str(b"MQTT") + bytes([version, 0xC2]) + struct.pack(">H", 30)
    if version == 5:
        var += b"\x00"  # no properties
    payload = _mqtt_str(client_id.encode()) + _mqtt_str(user.encode()) + _mqtt_str(password.encode())
    body = var + payload
    assert len(body) < 128
    return bytes([0x10, len(body)]) + body


def connack_code(packet: bytes, version=4):
    """The CONNACK's return code (3.1.1) or reason code (5), None if none came."""
    if len(packet) < 4 or packet[0] != 0x20:
        return None
    return packet[3]


def mqtt_login(host, port, user, password, version=4):
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(mqtt_connect_packet(user, password, version))
        s.settimeout(5)
        try:
            return connack_code(s.recv(64), version)
        except (socket.timeout, ConnectionError):
            return None


def web_stomp_login(host, port, user, password, vhost=None):
    ws = websocket.create_connection(f"ws://{hostport(host, port)}/ws", timeout=5,
                                     subprotocols=["v12.stomp"])
    try:
        ws.send(stomp_connect_frame(user, password, vhost).decode())
        data = ws.recv()
        if isinstance(data, str):
            data = data.encode()
        return parse_stomp(data.lstrip(b"\r\n"))
    finally:
        ws.close()


def web_mqtt_login(host, port, user, password, version=4):
    ws = websocket.create_connection(f"ws://{hostport(host, port)}/ws", timeout=5,
                                     subprotocols=["mqtt"])
    try:
        ws.send_binary(mqtt_connect_packet(user, password, version))
        try:
            data = ws.recv()
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            return None
        return connack_code(data if isinstance(data, bytes) else data.encode(), version)
    finally:
        ws.close()


def http_get(host, port, path, user, password, **kw):
    return requests.get(f"http://{hostport(host, port)}{path}", auth=(user, password),
                        timeout=10, **kw)


def sse_login(host, port, user, password, vhost=None):
    """Status of opening a feed (200: the feed streams)."""
    params = {"destination": "/topic/sec.test"}
    if vhost is not None:
        params["vhost"] = vhost
    r = requests.get(f"http://{hostport(host, port)}/sse", params=params, auth=(user, password),
                     timeout=10, stream=True)
    status = r.status_code
    r.close()
    return status


def basic(user, password) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()
