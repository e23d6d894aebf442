"""A minimal raw-socket AMQP 0-9-1 client for tests that must control the
exact bytes and their timing (e.g. keep writing after connection.close) and
observe exactly which frames the broker sends back, and when it closes its
side of the TCP connection.

Only what the tests need is implemented: the handshake (PLAIN), channel
open/close, a few methods with hand-encoded arguments, basic.publish with
header and body frames, and frame reading with close/close-ok parsing.
"""

import socket
import struct
import time
from dataclasses import dataclass
from typing import List, Optional, Tuple
from urllib.parse import unquote, urlparse

from helpers import AMQP_URL

FRAME_METHOD = 1
FRAME_HEADER = 2
FRAME_BODY = 3
FRAME_HEARTBEAT = 8
FRAME_END = 0xCE

CONNECTION_START = (10, 10)
CONNECTION_START_OK = (10, 11)
CONNECTION_TUNE = (10, 30)
CONNECTION_TUNE_OK = (10, 31)
CONNECTION_OPEN = (10, 40)
CONNECTION_OPEN_OK = (10, 41)
CONNECTION_CLOSE = (10, 50)
CONNECTION_CLOSE_OK = (10, 51)
CHANNEL_OPEN = (20, 10)
CHANNEL_OPEN_OK = (20, 11)
CHANNEL_CLOSE = (20, 40)
CHANNEL_CLOSE_OK = (20, 41)
QUEUE_DECLARE = (50, 10)
QUEUE_DECLARE_OK = (50, 11)
BASIC_PUBLISH = (60, 40)


# -- encoding ------------------------------------------------------------------

def shortstr(s: str) -> bytes:
    b = s.encode()
    assert len(b) < 256
    return bytes([len(b)]) + b


def longstr(b: bytes) -> bytes:
    return struct.pack(">I", len(b)) + b


def bits(*flags: bool) -> bytes:
    """Packed bits, first flag in the lowest bit."""
    out = b""
    for i in range(0, max(len(flags), 1), 8):
        v = 0
        for j, f in enumerate(flags[i:i + 8]):
            if f:
                v |= 1 << j
        out += bytes([v])
    return out


def table(d: Optional[dict] = None) -> bytes:
    """A field table of str (longstr), bool, int (signed 32/64) and dict values."""
    body = b""
    for k, v in (d or {}).items():
        body += shortstr(k)
        if isinstance(v, bool):
            body += b"t" + bytes([1 if v else 0])
        elif isinstance(v, int):
            body += b"l" + struct.pack(">q", v)
        elif isinstance(v, (str, bytes)):
            body += b"S" + longstr(v.encode() if isinstance(v, str) else v)
        elif isinstance(v, dict):
            body += b"F" + table(v)
        else:
            raise TypeError(v)
    return longstr(body)


def frame(typ: int, channel: int, payload: bytes) -> bytes:
    return struct.pack(">BHI", typ, channel, len(payload)) + payload + bytes([FRAME_END])


def method_frame(channel: int, mid: Tuple[int, int], args: bytes = b"") -> bytes:
    return frame(FRAME_METHOD, channel, struct.pack(">HH", *mid) + args)


def close_frame(channel: int, code: int = 200, text: str = "bye",
                class_id: int = 0, method_id: int = 0) -> bytes:
    mid = CONNECTION_CLOSE if channel == 0 else CHANNEL_CLOSE
    return method_frame(channel, mid, struct.pack(">H", code) + shortstr(text)
                        + struct.pack(">HH", class_id, method_id))


def publish_frames(channel: int, exchange: str, routing_key: str, body: bytes) -> bytes:
    """basic.publish + content header (no properties) + one body frame."""
    pub = method_frame(channel, BASIC_PUBLISH, struct.pack(">H", 0) + shortstr(exchange)
                       + shortstr(routing_key) + bytes([0]))
    header = frame(FRAME_HEADER, channel, struct.pack(">HHQH", 60, 0, len(body), 0))
    out = pub + header
    if body:
        out += frame(FRAME_BODY, channel, body)
    return out


# -- methods (arguments as in the AMQP 0-9-1 spec; ticket fields are 0) ----------

T = struct.pack(">H", 0)  # the deprecated ticket field


def queue_declare(ch, queue="", passive=False, durable=False, exclusive=False,
                  auto_delete=False, args=None):
    return method_frame(ch, (50, 10), T + shortstr(queue)
                        + bits(passive, durable, exclusive, auto_delete, False) + table(args))


def queue_bind(ch, queue, exchange, routing_key="", args=None):
    return method_frame(ch, (50, 20), T + shortstr(queue) + shortstr(exchange)
                        + shortstr(routing_key) + bits(False) + table(args))


def queue_unbind(ch, queue, exchange, routing_key="", args=None):
    return method_frame(ch, (50, 50), T + shortstr(queue) + shortstr(exchange)
                        + shortstr(routing_key) + table(args))


def queue_purge(ch, queue):
    return method_frame(ch, (50, 30), T + shortstr(queue) + bits(False))


def queue_delete(ch, queue, if_unused=False, if_empty=False):
    return method_frame(ch, (50, 40), T + shortstr(queue) + bits(if_unused, if_empty, False))


def exchange_declare(ch, exchange, kind="direct", passive=False, durable=False,
                     auto_delete=False, internal=False, args=None):
    return method_frame(ch, (40, 10), T + shortstr(exchange) + shortstr(kind)
                        + bits(passive, durable, auto_delete, internal, False) + table(args))


def exchange_delete(ch, exchange, if_unused=False):
    return method_frame(ch, (40, 20), T + shortstr(exchange) + bits(if_unused, False))


def exchange_bind(ch, destination, source, routing_key="", args=None):
    return method_frame(ch, (40, 30), T + shortstr(destination) + shortstr(source)
                        + shortstr(routing_key) + bits(False) + table(args))


def exchange_unbind(ch, destination, source, routing_key="", args=None):
    return method_frame(ch, (40, 40), T + shortstr(destination) + shortstr(source)
                        + shortstr(routing_key) + bits(False) + table(args))


def basic_qos(ch, prefetch_size=0, prefetch_count=0, global_=False):
    return method_frame(ch, (60, 10), struct.pack(">IH", prefetch_size, prefetch_count)
                        + bits(global_))


def basic_consume(ch, queue, tag="", no_ack=False, exclusive=False, args=None):
    return method_frame(ch, (60, 20), T + shortstr(queue) + shortstr(tag)
                        + bits(False, no_ack, exclusive, False) + table(args))


def basic_cancel(ch, tag):
    return method_frame(ch, (60, 30), shortstr(tag) + bits(False))


def basic_get(ch, queue, no_ack=False):
    return method_frame(ch, (60, 70), T + shortstr(queue) + bits(no_ack))


def basic_ack(ch, tag, multiple=False):
    return method_frame(ch, (60, 80), struct.pack(">Q", tag) + bits(multiple))


def basic_reject(ch, tag, requeue=True):
    return method_frame(ch, (60, 90), struct.pack(">Q", tag) + bits(requeue))


def basic_nack(ch, tag, multiple=False, requeue=True):
    return method_frame(ch, (60, 120), struct.pack(">Q", tag) + bits(multiple, requeue))


# -- decoding ------------------------------------------------------------------

@dataclass
class Frame:
    typ: int
    channel: int
    payload: bytes

    @property
    def method(self) -> Optional[Tuple[int, int]]:
        if self.typ == FRAME_METHOD and len(self.payload) >= 4:
            return struct.unpack(">HH", self.payload[:4])
        return None

    def is_(self, mid: Tuple[int, int]) -> bool:
        return self.method == mid

    @property
    def args(self) -> bytes:
        return self.payload[4:]


@dataclass
class Close:
    code: int
    text: str
    class_id: int
    method_id: int

    @staticmethod
    def parse(f: Frame) -> "Close":
        a = f.args
        code = struct.unpack(">H", a[:2])[0]
        n = a[2]
        text = a[3:3 + n].decode()
        class_id, method_id = struct.unpack(">HH", a[3 + n:7 + n])
        return Close(code, text, class_id, method_id)


def declared_queue(f: Frame) -> str:
    """The queue name in a queue.declare-ok."""
    assert f.is_(QUEUE_DECLARE_OK), f
    return f.args[1:1 + f.args[0]].decode()


def amqp_target():
    u = urlparse(AMQP_URL)
    vhost = unquote(u.path[1:]) if len(u.path) > 1 else "/"
    return (u.hostname or "127.0.0.1", u.port or 5672, unquote(u.username or "guest"),
            unquote(u.password or "guest"), vhost)


class RawConnection:
    """A blocking socket speaking AMQP by hand."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""
        self.eof = False

    # -- I/O -------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def recv_frame(self, timeout: float = 5.0) -> Optional[Frame]:
        """The next frame, or None on EOF. Raises socket.timeout on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 7:
                typ, ch, size = struct.unpack(">BHI", self.buf[:7])
                if len(self.buf) >= 8 + size:
                    payload = self.buf[7:7 + size]
                    assert self.buf[7 + size] == FRAME_END, "bad frame end"
                    self.buf = self.buf[8 + size:]
                    return Frame(typ, ch, payload)
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                raise socket.timeout("no frame within %.1fs" % timeout)
            self.sock.settimeout(left)
            data = self.sock.recv(65536)
            if not data:
                self.eof = True
            self.buf += data

    def expect(self, mid: Tuple[int, int], timeout: float = 5.0) -> Frame:
        """Skip heartbeats; the next frame must be method ``mid``."""
        while True:
            f = self.recv_frame(timeout)
            assert f is not None, f"connection closed while waiting for {mid}"
            if f.typ == FRAME_HEARTBEAT:
                continue
            assert f.is_(mid), f"expected {mid}, got {f.method} on channel {f.channel}: " \
                               f"{Close.parse(f) if f.method in (CONNECTION_CLOSE, CHANNEL_CLOSE) else f}"
            return f

    def next_method(self, timeout: float = 5.0) -> Frame:
        """The next method frame (heartbeats and content frames skipped)."""
        while True:
            f = self.recv_frame(timeout)
            assert f is not None, "connection closed while waiting for a method"
            if f.typ == FRAME_METHOD:
                return f

    def frames_until_eof(self, timeout: float = 5.0) -> List[Frame]:
        out = []
        while True:
            f = self.recv_frame(timeout)
            if f is None:
                return out
            out.append(f)

    # -- protocol --------------------------------------------------------------
    @classmethod
    def open(cls, channel_max: Optional[int] = None, frame_max: Optional[int] = None,
             heartbeat: int = 0, timeout: float = 5.0,
             client_properties: Optional[dict] = None) -> "RawConnection":
        """Handshake; ``channel_max``/``frame_max`` default to the server's
        proposal (RabbitMQ refuses channel_max 0 = "no limit"). Without
        ``client_properties`` the client announces no capabilities (so no
        basic.cancel notifications, for one)."""
        host, port, user, password, vhost = amqp_target()
        sock = socket.create_connection((host, port), timeout=timeout)
        c = cls(sock)
        c.send(b"AMQP\x00\x00\x09\x01")
        c.expect(CONNECTION_START)
        c.send(method_frame(0, CONNECTION_START_OK, table(client_properties) + shortstr("PLAIN")
                            + longstr(b"\0" + user.encode() + b"\0" + password.encode())
                            + shortstr("en_US")))
        tune = c.expect(CONNECTION_TUNE)
        s_channel_max, s_frame_max, s_heartbeat = struct.unpack(">HIH", tune.args[:8])
        c.server_tune = (s_channel_max, s_frame_max, s_heartbeat)
        if channel_max is None:
            channel_max = s_channel_max
        if frame_max is None:
            frame_max = s_frame_max
        c.channel_max = channel_max
        c.send(method_frame(0, CONNECTION_TUNE_OK,
                            struct.pack(">HIH", channel_max, frame_max, heartbeat)))
        c.send(method_frame(0, CONNECTION_OPEN, shortstr(vhost) + shortstr("") + bytes([0])))
        c.expect(CONNECTION_OPEN_OK)
        return c

    def open_channel(self, ch: int) -> None:
        self.send(method_frame(ch, CHANNEL_OPEN, shortstr("")))
        f = self.expect(CHANNEL_OPEN_OK)
        assert f.channel == ch

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass
