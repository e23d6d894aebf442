"""Issue 9, item 1: closing a connection while the peer is still writing.

A client that queues many publishes and then calls ``connection.close()`` may
still be flushing frames when the broker's close-ok arrives (amqplib writes
channel frames and the connection.close through separate buffers, so the close
can overtake publishes). RabbitMQ 3.10 (rabbit_reader) then keeps reading and
discarding frames until the client closes its side, or until a timeout
(min(heartbeat, 30) s) passes. A broker that closes the socket right after
close-ok makes the client's writes fail with EPIPE/ECONNRESET and, in the Node
client, its close callback never runs.

The tests drive a raw socket (``rawamqp.py``) so they control exactly when
frames are written.

Observed on RabbitMQ 3.10.8 (the reference):

* client close: close-ok comes at once; frames after connection.close are
  discarded (not routed); publishes *before* it are all routed; the socket
  stays open while the client writes; once the client shuts down its side the
  broker closes at once. RabbitMQ's listener sets ``linger {true, 0}``, so its
  close is a RST: after ``shutdown(SHUT_WR)`` the client reads ECONNRESET, not
  b''. Both count as "the broker closed after the client did".
* server close (hard error, e.g. a frame on a channel that was never opened:
  ``504 CHANNEL_ERROR - expected 'channel.open'``, class 60 method 40): the
  broker discards every frame but connection.close / close-ok until close-ok
  arrives (then it closes at once) or until min(heartbeat, 30) s passed
  (heartbeat 1 -> ~1 s; heartbeat 0 -> 30 s). It keeps sending heartbeats
  meanwhile. A connection.close from the client in that state (closes crossing)
  is answered with close-ok.
"""

import select
import socket
import time

import pytest

from helpers import connect, message_count
from rawamqp import (CHANNEL_OPEN, CONNECTION_CLOSE, CONNECTION_CLOSE_OK, FRAME_HEARTBEAT,
                     Close, RawConnection, close_frame, method_frame, publish_frames)

pytestmark = pytest.mark.timeout(20)

N = 2000
BODY = b"x" * 100


def _publishes(channel, queue, n=N, body=BODY):
    return b"".join(publish_frames(channel, "", queue, body) for _ in range(n))


@pytest.fixture
def queue(ch, names):
    q = names.queue("close-write")
    ch.queue_declare(q)
    return q


def _write_for(c: RawConnection, seconds: float, channel: int, queue: str):
    """Keep publishing for ``seconds``; returns the frames the broker sent
    meanwhile. Fails on a send error or if the broker closes its side."""
    got = []
    deadline = time.monotonic() + seconds
    frame = publish_frames(channel, "", queue, BODY)
    sent = 0
    while time.monotonic() < deadline:
        try:
            c.sock.sendall(frame * 10)
            sent += 10
        except OSError as e:  # EPIPE / ECONNRESET
            pytest.fail(f"send failed after {sent} publishes while the client was still "
                        f"writing: {e!r}")
        readable, _, _ = select.select([c.sock], [], [], 0.005)
        if readable:
            try:
                data = c.sock.recv(65536)
            except OSError as e:
                pytest.fail(f"broker reset the connection while the client was still "
                            f"writing: {e!r}")
            if not data:
                pytest.fail("broker closed its side while the client was still writing")
            c.buf += data
    while len(c.buf) >= 8:
        f = c.recv_frame(0.1)
        got.append(f)
    return got


def _closed_by_broker(c: RawConnection, timeout: float) -> float:
    """Read until the broker closes (EOF or RST); returns the seconds it took.
    Frames still arriving are ignored (heartbeats)."""
    start = time.monotonic()
    deadline = start + timeout
    c.sock.setblocking(True)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"broker did not close the connection within {timeout}s")
        c.sock.settimeout(left)
        try:
            data = c.sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return time.monotonic() - start
        if not data:
            return time.monotonic() - start


def test_client_close_then_keep_writing(queue):
    """connection.close immediately followed by 2000 publishes, then more
    publishes for a second: close-ok arrives, no write fails, the broker keeps
    its side open, discards what follows the close, and closes once the
    client shuts down its side."""
    c = RawConnection.open()
    try:
        c.open_channel(1)
        c.send(close_frame(0) + _publishes(1, queue))
        c.expect(CONNECTION_CLOSE_OK)
        extra = _write_for(c, 1.0, 1, queue)
        assert [f for f in extra if f.typ != FRAME_HEARTBEAT] == []
        c.sock.shutdown(socket.SHUT_WR)
        assert _closed_by_broker(c, 10.0) < 10.0
    finally:
        c.close()
    conn = connect()
    try:
        # Frames after connection.close are discarded, not routed.
        assert message_count(conn, queue) == 0
    finally:
        conn.close()


def test_publishes_before_close_are_all_routed(queue):
    """2000 publishes and the close in one write: every publish is routed,
    close-ok follows, and the socket closes only after the client's side."""
    c = RawConnection.open()
    try:
        c.open_channel(1)
        c.send(_publishes(1, queue) + close_frame(0))
        c.expect(CONNECTION_CLOSE_OK, timeout=10)
        # The broker waits for the client to close first.
        readable, _, _ = select.select([c.sock], [], [], 0.3)
        assert not readable, "broker closed the socket right after close-ok"
        c.sock.shutdown(socket.SHUT_WR)
        _closed_by_broker(c, 5.0)
    finally:
        c.close()
    conn = connect()
    try:
        assert message_count(conn, queue) == N
    finally:
        conn.close()


def _server_close(c: RawConnection) -> Close:
    """Provoke a hard error: a publish on channel 5, which was never opened."""
    c.send(publish_frames(5, "", "nowhere", b"x"))
    f = c.expect(CONNECTION_CLOSE)
    return Close.parse(f)


def test_server_close_discards_frames_until_close_ok(queue):
    c = RawConnection.open()
    try:
        c.open_channel(1)
        assert _server_close(c) == Close(504, "CHANNEL_ERROR - expected 'channel.open'", 60, 40)
        # The client has not seen the close yet and keeps publishing: no write
        # fails, the socket stays open and the publishes are discarded.
        extra = _write_for(c, 0.5, 1, queue)
        assert [f for f in extra if f.typ != FRAME_HEARTBEAT] == []
        c.send(method_frame(0, CONNECTION_CLOSE_OK))
        assert _closed_by_broker(c, 10.0) < 10.0
    finally:
        c.close()
    conn = connect()
    try:
        assert message_count(conn, queue) == 0
    finally:
        conn.close()


def test_server_close_answers_a_crossing_close():
    """The client closes at the same time as the server: its connection.close
    gets a close-ok (RabbitMQ, rabbit_reader handle_method0 when closing)."""
    c = RawConnection.open()
    try:
        c.open_channel(1)
        _server_close(c)
        c.send(close_frame(0))
        c.expect(CONNECTION_CLOSE_OK, timeout=10)
        c.sock.shutdown(socket.SHUT_WR)
        _closed_by_broker(c, 5.0)
    finally:
        c.close()


def test_server_close_without_close_ok_times_out():
    """No close-ok: the broker gives up after a while (RabbitMQ: the heartbeat
    interval, here 1 s, capped at 30 s) and not at once."""
    c = RawConnection.open(heartbeat=1)
    try:
        c.open_channel(1)
        _server_close(c)
        took = _closed_by_broker(c, 10.0)
        assert took >= 0.5, f"broker closed {took:.2f}s after its connection.close"
    finally:
        c.close()


def test_channel_open_after_close_is_ignored():
    """A channel.open sent after connection.close is dropped, not answered."""
    c = RawConnection.open()
    try:
        c.open_channel(1)
        c.send(close_frame(0) + method_frame(2, CHANNEL_OPEN, b"\x00"))
        c.expect(CONNECTION_CLOSE_OK)
        frames = []
        deadline = time.monotonic() + 0.3
        try:
            while time.monotonic() < deadline:
                f = c.recv_frame(max(0.0, deadline - time.monotonic()))
                if f is None:
                    break
                frames.append(f)
        except (socket.timeout, ConnectionResetError):
            pass
        assert [f.method for f in frames if f.typ != FRAME_HEARTBEAT] == []
    finally:
        c.close()
