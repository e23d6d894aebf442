"""A minimal AMQP 0-9-1 login over a plain socket, for floods that pika is
too slow to drive (connection churn, password guessing): header, start-ok
(PLAIN), tune-ok, open, close. Returns what the broker answered."""

import socket
import struct

HEADER = b"AMQP\x00\x00\x09\x01"


def _shortstr(s: bytes) -> bytes:
    return bytes([len(s)]) + s


def _method(cls: int, mid: int, args: bytes) -> bytes:
    payload = struct.pack(">HH", cls, mid) + args
    return struct.pack(">BHI", 1, 0, len(payload)) + payload + b"\xce"


def _read_method(sock, buf: bytearray):
    """(class, method, args) of the next frame (heartbeats skipped)."""
    while True:
        while len(buf) < 7:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by broker")
            buf += chunk
        kind, _ch, size = struct.unpack(">BHI", bytes(buf[:7]))
        while len(buf) < 8 + size:
            chunk = sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by broker")
            buf += chunk
        payload = bytes(buf[7:7 + size])
        del buf[:8 + size]
        if kind == 1:
            cls, mid = struct.unpack(">HH", payload[:4])
            return cls, mid, payload[4:]


def open_connection(port: int, user: str = "guest", password: str = "guest",
                    vhost: str = "/", timeout: float = 10.0,
                    channel_max: int = 2047) -> socket.socket:
    """A socket past connection.open-ok, ready for channel frames."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = bytearray()
    sock.sendall(HEADER)
    assert _read_method(sock, buf)[:2] == (10, 10)
    response = b"\x00" + user.encode() + b"\x00" + password.encode()
    sock.sendall(_method(10, 11, struct.pack(">I", 0) + _shortstr(b"PLAIN")
                         + struct.pack(">I", len(response)) + response + _shortstr(b"en_US")))
    assert _read_method(sock, buf)[:2] == (10, 30)
    sock.sendall(_method(10, 31, struct.pack(">HIH", channel_max, 131072, 0)))
    sock.sendall(_method(10, 40, _shortstr(vhost.encode()) + _shortstr(b"") + b"\x00"))
    assert _read_method(sock, buf)[:2] == (10, 41)
    return sock


def read_method(sock, buf: bytearray):
    """(class, method, args) of the next method frame; ``buf`` keeps what was
    read past it."""
    return _read_method(sock, buf)


def close_reason(args: bytes):
    """(reply_code, reply_text) of a connection.close's arguments."""
    code = struct.unpack(">H", args[:2])[0]
    return code, args[3:3 + args[2]].decode()


def channel_method(ch: int, cls: int, mid: int, args: bytes) -> bytes:
    payload = struct.pack(">HH", cls, mid) + args
    return struct.pack(">BHI", 1, ch, len(payload)) + payload + b"\xce"


def channel_open(ch: int) -> bytes:
    return channel_method(ch, 20, 10, _shortstr(b""))


def basic_consume(ch: int, queue: str, tag: str) -> bytes:
    return channel_method(ch, 60, 20, struct.pack(">H", 0) + _shortstr(queue.encode())
                          + _shortstr(tag.encode()) + b"\x00" + struct.pack(">I", 0))


def basic_publish(ch: int, exchange: str, routing_key: str, body: bytes) -> bytes:
    """basic.publish, its content header (no properties) and one body frame."""
    method = channel_method(ch, 60, 40, struct.pack(">H", 0) + _shortstr(exchange.encode())
                            + _shortstr(routing_key.encode()) + b"\x00")
    header = struct.pack(">HHQH", 60, 0, len(body), 0)
    return (method + struct.pack(">BHI", 2, ch, len(header)) + header + b"\xce"
            + struct.pack(">BHI", 3, ch, len(body)) + body + b"\xce")


def login(port: int, user: str, password: str, vhost: str = "/", timeout: float = 10.0):
    """Log in and close cleanly. Returns ``"ok"`` or ``(reply_code, reply_text)``
    of the broker's connection.close."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        buf = bytearray()
        sock.sendall(HEADER)
        cls, mid, _ = _read_method(sock, buf)
        assert (cls, mid) == (10, 10), (cls, mid)
        response = b"\x00" + user.encode() + b"\x00" + password.encode()
        sock.sendall(_method(10, 11, struct.pack(">I", 0) + _shortstr(b"PLAIN")
                             + struct.pack(">I", len(response)) + response
                             + _shortstr(b"en_US")))
        cls, mid, args = _read_method(sock, buf)
        if (cls, mid) == (10, 50):
            code = struct.unpack(">H", args[:2])[0]
            text = args[3:3 + args[2]].decode()
            sock.sendall(_method(10, 51, b""))
            return code, text
        assert (cls, mid) == (10, 30), (cls, mid)
        sock.sendall(_method(10, 31, struct.pack(">HIH", 2047, 131072, 0)))
        sock.sendall(_method(10, 40, _shortstr(vhost.encode()) + _shortstr(b"") + b"\x00"))
        cls, mid, args = _read_method(sock, buf)
        if (cls, mid) == (10, 50):
            code = struct.unpack(">H", args[:2])[0]
            return code, args[3:3 + args[2]].decode()
        assert (cls, mid) == (10, 41), (cls, mid)
        sock.sendall(_method(10, 50, struct.pack(">H", 200) + _shortstr(b"bye")
                             + struct.pack(">HH", 0, 0)))
        cls, mid, _ = _read_method(sock, buf)
        assert (cls, mid) == (10, 51), (cls, mid)
        return "ok"
    finally:
        sock.close()
