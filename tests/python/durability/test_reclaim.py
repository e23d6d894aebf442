"""Disk space is reclaimed segment by segment even while one old message stays
unacknowledged: acks live beside the segment of the message they settle, so a
straggler pins only its own segment, not every segment written after it."""

import os
import time

import pika
import pytest

from warren_harness import drain, passive_queue

pytestmark = pytest.mark.timeout(180)

PERSISTENT = pika.BasicProperties(delivery_mode=2)


def segments(broker):
    return sorted(f for f in os.listdir(broker.messages_dir) if f.endswith(".seg"))


def test_straggler_pins_only_its_segment(broker):
    conn = broker.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("straggler", durable=True)
    ch.queue_declare("bulk", durable=True)
    ch.basic_publish("", "straggler", b"hold me", PERSISTENT)
    held = conn.channel()
    method, _, _ = held.basic_get("straggler", auto_ack=False)
    assert method is not None
    # ~120 MiB through the log: several 32 MiB segments, all acked.
    body = b"x" * 4096
    pub = conn.channel()
    for _round in range(3):
        for _ in range(10_000):
            pub.basic_publish("", "bulk", body, PERSISTENT)
        got = drain(conn, "bulk", expected=10_000)
        assert len(got) == 10_000
    deadline = time.monotonic() + 10
    while len(segments(broker)) > 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    segs = segments(broker)
    assert len(segs) <= 2, f"segments left: {segs}"
    # The straggler's segment is the first one and is still there.
    assert segs[0] == "00000001.seg"
    # After a crash: the straggler comes back, nothing acked does.
    broker.kill()
    broker.restart()
    conn = broker.connect()
    assert passive_queue(conn, "straggler") == 1
    assert passive_queue(conn, "bulk") == 0
