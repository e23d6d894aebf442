"""Timers of queues restored at startup run without waiting for a client to
touch the queue: message TTLs expire (and dead-letter) and `x-expires` deletes
an unused queue, as if there had been no restart."""

import time

import pika
import pika.exceptions
import pytest

from warren_harness import PERSISTENT, passive_queue

pytestmark = pytest.mark.timeout(60)


def test_ttl_and_queue_expiry_run_after_restart(broker):
    conn = broker.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.queue_declare("dead", durable=True)
    ch.queue_declare("short-lived", durable=True, arguments={
        "x-message-ttl": 1500,
        "x-dead-letter-exchange": "",
        "x-dead-letter-routing-key": "dead",
    })
    ch.queue_declare("unused", durable=True, arguments={"x-expires": 2000})
    ch.basic_publish("", "short-lived", b"expire me", PERSISTENT)
    broker.kill()
    broker.start()
    # Nobody touches "short-lived" or "unused" after the restart.
    conn = broker.connect()
    deadline = time.monotonic() + 10
    while passive_queue(conn, "dead") != 1:
        assert time.monotonic() < deadline, "the recovered message never expired"
        time.sleep(0.2)
    # Poll with mandatory publishes: unlike a passive declare (which counts as a
    # use and restarts the x-expires timer), publishing does not touch the timer.
    probe = conn.channel()
    probe.confirm_delivery()
    deadline = time.monotonic() + 15
    while True:
        try:
            probe.basic_publish("", "unused", b"probe", pika.BasicProperties(), mandatory=True)
        except pika.exceptions.UnroutableError:
            break
        assert time.monotonic() < deadline, "x-expires did not delete the queue"
        time.sleep(0.2)
    assert passive_queue(conn, "unused") is None, "x-expires did not delete the queue"
    ch = conn.channel()
    method, _props, body = ch.basic_get("dead", auto_ack=True)
    assert body == b"expire me"
