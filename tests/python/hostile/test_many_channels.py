"""Many channels: a client may open up to the negotiated ``channel_max``
channels and is refused past it with RabbitMQ's 530; many connections holding
thousands of channels each cost the broker a bounded amount of memory per
channel, give it all back when they close, and do not slow other clients
down; a user's ``max-channels`` limit holds across its connections.

RabbitMQ 3.10's texts (rabbit_reader / rabbit_channel_tracking):
530 "NOT_ALLOWED - number of channels opened (N) has reached the negotiated
channel_max (N)" and 530 "NOT_ALLOWED - number of channels opened for user
'U' has reached the maximum allowed user limit of (N)"; both close the
connection.
"""

import time

import pytest
import requests

from rawlogin import channel_open, close_reason, open_connection, read_method
from warren_harness import MiB

NOT_ALLOWED = 530
CHANNEL_MAX = 2047
# Connections in the flood, each with CHANNEL_MAX channels (~33k channels).
FLOOD_CONNECTIONS = 16
# What one open channel may cost the broker, all included (its state, its
# entry in the connection's map, the management view's record).
PER_CHANNEL_BUDGET = 8 * 1024


def open_channels(sock, first, count):
    """Open channels first..first+count-1 in one write; True if all were
    opened, else the (code, text) of the connection.close that refused one."""
    sock.sendall(b"".join(channel_open(ch) for ch in range(first, first + count)))
    buf = bytearray()
    for _ in range(count):
        cls, mid, args = read_method(sock, buf)
        if (cls, mid) == (10, 50):
            return close_reason(args)
        assert (cls, mid) == (20, 11), (cls, mid)
    return True


def refused(sock, ch):
    """Open one more channel: the broker's connection.close (code, text)."""
    sock.sendall(channel_open(ch))
    cls, mid, args = read_method(sock, bytearray())
    assert (cls, mid) == (10, 50), (cls, mid)
    return close_reason(args)


def round_trip_seconds(conn):
    ch = conn.channel()
    ch.queue_declare("probe", auto_delete=False)
    t = time.monotonic()
    ch.basic_publish("", "probe", b"x")
    while ch.basic_get("probe", auto_ack=True)[0] is None:
        time.sleep(0.001)
    took = time.monotonic() - t
    ch.close()
    return took


def test_channel_max_is_enforced_with_530(broker_factory):
    b = broker_factory().start()
    s = open_connection(b.port)
    assert open_channels(s, 1, CHANNEL_MAX) is True
    assert refused(s, CHANNEL_MAX + 1) == (
        NOT_ALLOWED, f"NOT_ALLOWED - number of channels opened ({CHANNEL_MAX}) has "
        f"reached the negotiated channel_max ({CHANNEL_MAX})")
    s.close()
    # A client may negotiate fewer: the count is against its own value.
    s = open_connection(b.port, channel_max=10)
    assert open_channels(s, 1, 10) is True
    assert refused(s, 11)[0] == NOT_ALLOWED
    s.close()
    assert b.alive()


@pytest.mark.timeout(300)
def test_many_connections_with_many_channels_cost_bounded_memory(broker_factory):
    b = broker_factory().start()
    other = b.connect()
    quiet = round_trip_seconds(other)
    time.sleep(0.5)
    base = b.rss_bytes()
    socks = []
    slowest = 0.0
    try:
        for _ in range(FLOOD_CONNECTIONS):
            s = open_connection(b.port)
            socks.append(s)
            assert open_channels(s, 1, CHANNEL_MAX) is True
            # Another client keeps getting answers while the flood goes on.
            slowest = max(slowest, round_trip_seconds(other))
        channels = FLOOD_CONNECTIONS * CHANNEL_MAX
        held = b.rss_bytes()
        grown = held - base
        print(f"\n{channels} channels on {FLOOD_CONNECTIONS} connections: RSS "
              f"{base / MiB:.0f} -> {held / MiB:.0f} MiB ({grown / channels:.0f} B/channel); "
              f"other client's round trip {quiet * 1000:.1f} ms quiet, "
              f"{slowest * 1000:.1f} ms at worst during the flood")
        assert grown <= channels * PER_CHANNEL_BUDGET, f"{grown / channels:.0f} B/channel"
        assert slowest < 2.0, f"another client waited {slowest:.1f} s"
        # Each held connection is still refused past its channel_max.
        assert refused(socks[-1], CHANNEL_MAX + 1)[0] == NOT_ALLOWED
    finally:
        for s in socks:
            s.close()
    # Closed connections give their channels back (jemalloc returns freed
    # pages after its decay time).
    deadline = time.monotonic() + 30
    while b.rss_bytes() > base + 32 * MiB and time.monotonic() < deadline:
        time.sleep(0.5)
    after = b.rss_bytes()
    print(f"after closing: RSS {after / MiB:.0f} MiB")
    assert after <= base + 32 * MiB, f"RSS {after / MiB:.0f} MiB vs {base / MiB:.0f} before"
    assert round_trip_seconds(other) < 2.0
    other.close()


def test_user_max_channels_across_connections(broker_factory):
    b = broker_factory(http=True).start()
    api = f"http://127.0.0.1:{b.http_port}/api/user-limits/guest/max-channels"
    r = requests.put(api, auth=("guest", "guest"), json={"value": 100})
    assert r.status_code in (201, 204), r.text
    first = open_connection(b.port)
    second = open_connection(b.port)
    assert open_channels(first, 1, 60) is True
    assert open_channels(second, 1, 40) is True
    third = open_connection(b.port)
    assert refused(third, 1) == (
        NOT_ALLOWED, "NOT_ALLOWED - number of channels opened for user 'guest' has "
        "reached the maximum allowed user limit of (100)")
    third.close()
    # The refused connection is closed; the others keep their channels.
    assert refused(second, 41)[0] == NOT_ALLOWED
    second.close()
    # Channels given back (the closed connection's 40) can be opened again.
    deadline = time.monotonic() + 10
    while True:
        s = open_connection(b.port)
        got = open_channels(s, 1, 40)
        s.close()
        if got is True or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got is True, got
    first.close()
    r = requests.delete(api, auth=("guest", "guest"))
    assert r.status_code == 204, r.text
