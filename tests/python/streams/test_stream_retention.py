"""Retention: whole segments leave the head; offsets never change.

RabbitMQ's offsets are not always contiguous (a new segment can start with
a bookkeeping chunk that takes offsets), so these tests check what both
brokers promise: offsets increase, a message keeps its offset, and what
survives is the newest messages without holes."""

import time

from helpers import connect, wait_until
from streamlib import consume, declare, first_offset, offsets, publish


def numbered(prefix: bytes, n: int, size: int = 100):
    return [prefix + b"%04d" % i + b"x" * (size - 4 - len(prefix)) for i in range(n)]


def check_survivors(got, prefix: bytes, total: int):
    nums = [int(b[len(prefix):len(prefix) + 4]) for _, b in got]
    assert nums == list(range(nums[0], total)), "the newest messages, no holes"
    assert offsets(got) == sorted(set(offsets(got))), "offsets increase"
    return nums


def test_max_length_bytes_drops_whole_segments(names):
    q = names.queue("stream")
    conn = connect()
    ch = conn.channel()
    declare(ch, q, **{"x-max-length-bytes": 5000, "x-stream-max-segment-size-bytes": 1000})
    ch.confirm_delivery()
    publish(ch, q, numbered(b"m", 300))
    conn.close()
    wait_until(lambda: (first_offset(q) or 0) > 0, interval=0.3, message="retention")
    got = consume(q, "first", count=300)
    nums = check_survivors(got, b"m", 300)
    assert 0 < nums[0] and len(got) <= 120
    # A second reader sees every message at the same offset.
    again = consume(q, got[0][0], count=len(got))
    assert again[: len(got)] == got[: len(again)]


def test_max_age_drops_old_segments(names):
    q = names.queue("stream")
    conn = connect()
    ch = conn.channel()
    declare(ch, q, **{"x-max-age": "2s", "x-stream-max-segment-size-bytes": 500})
    ch.confirm_delivery()
    publish(ch, q, numbered(b"old-", 30))
    time.sleep(3.5)
    # Retention runs when a segment fills up: newer publishes trigger it.
    publish(ch, q, numbered(b"new-", 30))
    conn.close()

    def only_new():
        got = consume(q, "first", count=1, prefetch=1)
        return bool(got) and got[0][1].startswith(b"new-")

    wait_until(only_new, timeout=20, interval=0.3, message="old segments dropped")
    got = consume(q, "first", count=60)
    assert all(b.startswith(b"new-") for _, b in got)
    check_survivors(got, b"new-", 30)


def test_offsets_continue_after_retention(names):
    q = names.queue("stream")
    conn = connect()
    ch = conn.channel()
    declare(ch, q, **{"x-max-length-bytes": 2000, "x-stream-max-segment-size-bytes": 500})
    ch.confirm_delivery()
    publish(ch, q, numbered(b"m", 100))
    wait_until(lambda: (first_offset(q) or 0) > 0, interval=0.3, message="retention")
    before = consume(q, "first", count=100)
    publish(ch, q, [b"after"])
    conn.close()
    last = consume(q, "last", count=1)
    assert last[0][1] == b"after"
    assert last[0][0] > before[-1][0]
