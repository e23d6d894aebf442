"""Helpers for the STOMP scenario tests: stomp.py connections with a listener
that collects frames, a raw-socket client for frame edge cases, and RabbitMQ's
subscription queue naming.

The same files run against Warren and RabbitMQ (with ``rabbitmq_stomp``):
``STOMP_HOST``/``STOMP_PORT`` name the STOMP listener, ``AMQP_URL`` the AMQP one
of the same broker (cross-protocol tests use pika), ``WEB_STOMP_PORT`` its
Web-STOMP listener (STOMP over WebSocket at ``/ws``, ``rabbitmq_web_stomp``).
"""

import base64
import hashlib
import os
import socket
import threading
import time
import uuid

import stomp

STOMP_HOST = os.environ.get("STOMP_HOST", "127.0.0.1")
STOMP_PORT = int(os.environ.get("STOMP_PORT", "61613"))
WEB_STOMP_PORT = int(os.environ.get("WEB_STOMP_PORT", "15674"))
VERSIONS = ["1.0", "1.1", "1.2"]
# How long to wait for what should come at once (a message, a receipt, an
# ERROR): generous, so that a loaded machine does not fail tests; it only costs
# time when a test fails anyway.
TIMEOUT = 15.0


def unique(prefix="stomp"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Collector(stomp.ConnectionListener):
    """Collects every frame a connection receives; waits with a condition."""

    def __init__(self):
        self.cond = threading.Condition()
        self.messages = []
        self.errors = []
        self.receipts = []
        self.connected = []
        self.disconnected = False
        self.heartbeats = 0

    def _add(self, lst, frame):
        with self.cond:
            lst.append(frame)
            self.cond.notify_all()

    def on_message(self, frame):
        self._add(self.messages, frame)

    def on_error(self, frame):
        self._add(self.errors, frame)

    def on_receipt(self, frame):
        self._add(self.receipts, frame)

    def on_connected(self, frame):
        self._add(self.connected, frame)

    def on_disconnected(self):
        with self.cond:
            self.disconnected = True
            self.cond.notify_all()

    def on_heartbeat(self):
        with self.cond:
            self.heartbeats += 1
            self.cond.notify_all()

    def wait_for(self, predicate, timeout=TIMEOUT):
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_messages(self, n, timeout=TIMEOUT):
        assert self.wait_for(lambda: len(self.messages) >= n, timeout), \
            f"expected {n} messages, got {len(self.messages)}: {self.bodies()}"
        return self.messages[:n]

    def no_more_messages(self, n, wait=0.5):
        time.sleep(wait)
        assert len(self.messages) == n, f"expected {n} messages, got {self.bodies()}"

    def wait_receipt(self, receipt_id, timeout=TIMEOUT):
        assert self.wait_for(
            lambda: any(r.headers.get("receipt-id") == receipt_id for r in self.receipts),
            timeout), f"no receipt {receipt_id!r} (errors: {self.error_texts()})"

    def wait_error(self, timeout=TIMEOUT):
        assert self.wait_for(lambda: self.errors, timeout), "no ERROR frame"
        return self.errors[0]

    def wait_disconnected(self, timeout=TIMEOUT):
        return self.wait_for(lambda: self.disconnected, timeout)

    def bodies(self):
        return [m.body for m in self.messages]

    def error_texts(self):
        return [(e.headers.get("message"), e.body) for e in self.errors]


def connection_class(version):
    return {"1.0": stomp.Connection10, "1.1": stomp.Connection11,
            "1.2": stomp.Connection12}[version]


def connect(version="1.2", login="guest", passcode="guest", vhost=None,
            heartbeats=(0, 0), headers=None, wait=True):
    """A connected stomp.py connection and its Collector."""
    cls = connection_class(version)
    kwargs = dict(host_and_ports=[(STOMP_HOST, STOMP_PORT)], reconnect_attempts_max=1,
                  auto_content_length=True)
    if version != "1.0":
        kwargs["heartbeats"] = heartbeats
        # stomp.py sends the server's host name as `host` unless told; RabbitMQ
        # (and Warren) read `host` as the vhost.
        kwargs["vhost"] = vhost if vhost is not None else "/"
    conn = cls(**kwargs)
    c = Collector()
    conn.set_listener("collector", c)
    conn.connect(login, passcode, wait=wait, headers=headers or {})
    return conn, c


def ack(conn, version, frame, **kw):
    if version == "1.2":
        conn.ack(frame.headers["ack"], **kw)
    elif version == "1.1":
        conn.ack(frame.headers["message-id"], frame.headers["subscription"], **kw)
    else:
        conn.ack(frame.headers["message-id"], **kw)


def nack(conn, version, frame, **headers):
    key = "id" if version == "1.2" else "message-id"
    value = frame.headers["ack"] if version == "1.2" else frame.headers["message-id"]
    h = {key: value}
    if version == "1.1":
        h["subscription"] = frame.headers["subscription"]
    h.update(headers)
    conn.send_frame("NACK", h)


def close(conn):
    """DISCONNECT with a receipt and wait for it and for the socket to close:
    by then the broker has released the connection's subscriptions (unacked
    messages are back in their queues), so tests can check queue state."""
    try:
        if not conn.is_connected():
            return
        c = conn.get_listener("collector")
        rid = "bye-" + uuid.uuid4().hex[:8]
        conn.send_frame("DISCONNECT", {"receipt": rid})
        if c is not None:
            # Best-effort cleanup: do not hold up teardown for long.
            c.wait_for(lambda: any(r.headers.get("receipt-id") == rid for r in c.receipts), 5)
            c.wait_disconnected(5)
        conn.disconnect()
    except Exception:
        pass


def is_warren(conn_collector):
    """Whether the broker that sent CONNECTED is Warren (for deliberate
    differences from RabbitMQ)."""
    _, c = conn_collector
    return c.connected and c.connected[0].headers.get("server", "").startswith("Warren")


def broker_is_warren():
    raw = RawClient()
    try:
        raw.send(b"CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\n\n\x00")
        f = raw.frame()
        return f.headers.get("server", "").startswith("Warren")
    finally:
        raw.close()


# -- RabbitMQ's subscription queue names ---------------------------------------

def _erlang_string(s: bytes) -> bytes:
    if not s:
        return bytes([106])
    return bytes([107]) + len(s).to_bytes(2, "big") + s


def subscription_queue(name: str, sub_id: str) -> str:
    """``stomp-subscription-`` + base64url(md5(term_to_binary({Name, Id})))."""
    term = bytes([131, 104, 2]) + _erlang_string(name.encode()) + _erlang_string(sub_id.encode())
    digest = hashlib.md5(term).digest()
    return "stomp-subscription-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")


# -- raw sockets -----------------------------------------------------------------

class RawFrame:
    def __init__(self, command, headers, body):
        self.command = command
        self.headers = headers
        self.body = body

    def __repr__(self):
        return f"RawFrame({self.command!r}, {self.headers!r}, {self.body[:60]!r})"


class RawClient:
    """A STOMP client on a bare socket: sends bytes as given, parses what comes
    back (first header occurrence wins, content-length honoured, 1.2 escapes)."""

    def __init__(self, host=STOMP_HOST, port=STOMP_PORT, timeout=TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.closed = False

    def send(self, data: bytes):
        self.sock.sendall(data)

    def connect(self, version="1.2", extra=b""):
        self.send(b"CONNECT\naccept-version:" + version.encode() +
                  b"\nlogin:guest\npasscode:guest\n" + extra + b"\n\x00")
        f = self.frame()
        assert f.command == "CONNECTED", f
        return f

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            chunk = self.sock.recv(65536)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            self.closed = True
            return False
        self.buf += chunk
        return True

    def frame(self, timeout=TIMEOUT):
        """The next frame (skipping heart-beat EOLs); None if the connection
        closed or nothing came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            f = self._parse()
            if f is not None:
                return f
            left = deadline - time.monotonic()
            if self.closed or left <= 0 or not self._fill(left):
                if self.closed or time.monotonic() >= deadline:
                    return None

    def _parse(self):
        f, rest = parse_frame(self.buf)
        if f is not None:
            self.buf = rest
        return f

    def heartbeats_received(self):
        """EOLs buffered between frames so far (drains the socket briefly)."""
        self._fill(0.01)
        return self.buf.count(b"\n")

    def wait_closed(self, timeout=TIMEOUT):
        """True once the server closed the connection (frames before are kept)."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self._fill(max(0.01, deadline - time.monotonic()))
        return self.closed

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# -- WebSocket (Web-STOMP) -----------------------------------------------------

WS_TEXT, WS_BINARY, WS_CLOSE = 0x1, 0x2, 0x8


class WsClient:
    """A STOMP client over one WebSocket (websocket-client) to ``/ws`` on
    ``WEB_STOMP_PORT``: sends messages as given, and reads the broker's
    messages one at a time (RabbitMQ's Web-STOMP sends one frame, or one
    heart-beat EOL, per message)."""

    def __init__(self, subprotocols=("v12.stomp",), port=None, timeout=TIMEOUT):
        import websocket
        self._ws_mod = websocket
        self.ws = websocket.create_connection(
            f"ws://{STOMP_HOST}:{port or WEB_STOMP_PORT}/ws",
            subprotocols=list(subprotocols) or None, timeout=timeout)
        self.closed = False
        # The payload of the close message the broker sent, if any.
        self.close_payload = None
        # Heart-beat messages (EOLs only) seen by frame().
        self.heartbeats = 0

    @property
    def subprotocol(self):
        return self.ws.getsubprotocol()

    def send(self, data, binary=False):
        if isinstance(data, str):
            data = data.encode()
        if binary:
            self.ws.send_binary(data)
        else:
            # A text message must be UTF-8; websocket-client sends bytes as
            # given.
            self.ws.send(data, opcode=WS_TEXT)

    def message(self, timeout=TIMEOUT):
        """The next data message as ``(opcode, payload)``; None on a timeout or
        once the broker closed the WebSocket (``closed`` tells which)."""
        if self.closed:
            return None
        ws = self._ws_mod
        self.ws.settimeout(timeout)
        try:
            while True:
                op, data = self.ws.recv_data(control_frame=True)
                if op == WS_CLOSE:
                    # (websocket-client has answered with its own close.)
                    self.close_payload = data
                    self.closed = True
                    return None
                if op in (WS_TEXT, WS_BINARY):
                    return op, data
        except ws.WebSocketTimeoutException:
            return None
        except (ws.WebSocketConnectionClosedException, ConnectionError, OSError):
            self.closed = True
            return None

    def frame(self, timeout=TIMEOUT):
        """The next frame (heart-beat messages counted and skipped); None on a
        timeout or close. Each message must hold exactly one frame: the frame's
        ``opcode`` is the message's."""
        deadline = time.monotonic() + timeout
        while True:
            m = self.message(max(0.01, deadline - time.monotonic()))
            if m is None:
                return None
            op, data = m
            if not data.strip(b"\r\n"):
                self.heartbeats += 1
                continue
            f, rest = parse_frame(data)
            assert f is not None, f"a message with an incomplete frame: {data[:200]!r}"
            assert not rest.strip(b"\r\n"), f"a message with more than one frame: {data[:200]!r}"
            f.opcode = op
            return f

    def connect(self, version="1.2", login="guest", passcode="guest", extra=b""):
        """CONNECT (``host:/``) and return the CONNECTED frame."""
        self.send(b"CONNECT\naccept-version:" + version.encode() + b"\nlogin:" +
                  login.encode() + b"\npasscode:" + passcode.encode() + b"\nhost:/\n" +
                  extra + b"\n\x00")
        f = self.frame()
        assert f is not None and f.command == "CONNECTED", f
        return f

    def wait_closed(self, timeout=TIMEOUT):
        """True once the broker closed the WebSocket; data messages that come
        first are dropped."""
        deadline = time.monotonic() + timeout
        while not self.closed and time.monotonic() < deadline:
            self.message(max(0.01, deadline - time.monotonic()))
        return self.closed

    def close(self):
        try:
            self.ws.close(timeout=1)
        except Exception:
            pass


def web_broker_is_warren():
    """Whether the Web-STOMP listener's CONNECTED names Warren."""
    ws = WsClient()
    try:
        return ws.connect().headers.get("server", "").startswith("Warren")
    finally:
        ws.close()


def parse_frame(buf: bytes):
    """The first frame in ``buf`` (heart-beat EOLs before it skipped) and the
    bytes after it; ``(None, buf)`` while the frame is incomplete."""
    b = buf.lstrip(b"\r\n")
    end = b.find(b"\n\n")
    if end < 0:
        return None, buf
    head = b[:end].replace(b"\r\n", b"\n").split(b"\n")
    command = head[0].decode()
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(b":")
        k, v = _unescape(k).decode(), _unescape(v).decode("utf-8", "replace")
        headers.setdefault(k, v)
    rest = b[end + 2:]
    if "content-length" in headers:
        n = int(headers["content-length"])
        if len(rest) < n + 1:
            return None, buf
        body, rest = rest[:n], rest[n + 1:]
    else:
        nul = rest.find(b"\x00")
        if nul < 0:
            return None, buf
        body, rest = rest[:nul], rest[nul + 1:]
    return RawFrame(command, headers, body), rest


def _unescape(s: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(s):
        if s[i] == 0x5C and i + 1 < len(s):
            out += {ord("n"): b"\n", ord("c"): b":", ord("\\"): b"\\", ord("r"): b"\r"}.get(
                s[i + 1], s[i:i + 2])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return bytes(out)
