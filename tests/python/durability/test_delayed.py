"""Persistent messages held by a durable x-delayed-message exchange survive a
crash and are delivered at their original deadline; transient ones do not."""

import time

import pika
import pytest

from warren_harness import passive_queue

pytestmark = pytest.mark.timeout(60)

# Long enough that the kill and restart are over well before it elapses, even
# on a loaded machine (the test checks that the message is still held then).
DELAY_MS = 5000


def test_delayed_persistent_survives_kill(broker):
    conn = broker.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.exchange_declare("dly", "x-delayed-message", durable=True,
                        arguments={"x-delayed-type": "direct"})
    ch.queue_declare("dq", durable=True)
    ch.queue_bind("dq", "dly", "k")
    t0 = time.time()
    ch.basic_publish("dly", "k", b"persistent",
                     pika.BasicProperties(delivery_mode=2, headers={"x-delay": DELAY_MS}))
    ch.basic_publish("dly", "k", b"transient", pika.BasicProperties(headers={"x-delay": DELAY_MS}))
    broker.kill()
    broker.restart()
    conn = broker.connect()
    ch = conn.channel()
    held = passive_queue(conn, "dq")
    checked_at = time.time() - t0
    assert checked_at < DELAY_MS / 1000, f"restart took {checked_at:.1f}s: cannot check the hold"
    assert held == 0          # still held
    deadline = time.time() + DELAY_MS / 1000 + 10
    got = None
    while got is None and time.time() < deadline:
        method, props, body = ch.basic_get("dq", auto_ack=True)
        if method is not None:
            got = (body, props.headers, time.time() - t0)
        else:
            time.sleep(0.05)
    assert got is not None, "held message never delivered"
    body, headers, elapsed = got
    assert body == b"persistent"
    assert headers["x-delay"] == -DELAY_MS
    assert elapsed >= DELAY_MS / 1000 - 0.05
    time.sleep(0.3)
    assert ch.basic_get("dq", auto_ack=True)[0] is None   # the transient one is gone
