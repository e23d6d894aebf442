"""Heart-beating: negotiation, server heart-beats, dropping silent clients."""

import time

from stomp_helpers import RawClient, connect


def test_negotiated_heart_beat_header():
    raw = RawClient()
    try:
        f = raw.connect("1.2", b"heart-beat:500,1500\n")
        # Whole seconds, at least one: 500 ms -> 1 s, 1500 ms -> 1 s.
        assert f.headers["heart-beat"] == "1000,1000"
    finally:
        raw.close()


def test_server_sends_heart_beats_and_drops_a_silent_client():
    raw = RawClient()
    try:
        raw.connect("1.2", b"heart-beat:1000,1000\n")
        start = time.monotonic()
        assert raw.wait_closed(timeout=10), "a silent client is dropped"
        elapsed = time.monotonic() - start
        # Between two and three receive intervals.
        assert 1.5 <= elapsed <= 4.5, elapsed
        assert raw.buf.count(b"\n") >= 2, "server heart-beats (EOLs) before the close"
    finally:
        raw.close()


def test_client_heart_beats_keep_the_connection():
    raw = RawClient()
    try:
        raw.connect("1.2", b"heart-beat:1000,0\n")
        for _ in range(8):
            time.sleep(0.5)
            raw.send(b"\n")
        raw.send(b"BEGIN\ntransaction:t\nreceipt:alive\n\n\x00")
        f = raw.frame()
        assert f is not None and f.headers.get("receipt-id") == "alive"
    finally:
        raw.close()


def test_stomp_py_heart_beats(version):
    if version == "1.0":
        return  # STOMP 1.0 has no heart-beats
    conn, c = connect(version, heartbeats=(1000, 1000))
    try:
        assert c.connected[0].headers["heart-beat"] == "1000,1000"
        time.sleep(3.5)
        assert conn.is_connected()
        assert c.heartbeats >= 2
    finally:
        conn.disconnect()
