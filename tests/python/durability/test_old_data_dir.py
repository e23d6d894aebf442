"""A data dir written by an older Warren binary is read by this one (issue 16
changed the publish record: exchange and routing key left out when they are
the default exchange and the queue's name, no publish time in a queue's own
transient copies).  The old binary is taken from ``WARREN_OLD_BIN`` (e.g. the
main branch's build); without it the test is skipped.

Old records and new ones then live side by side in the log: the old broker
is SIGKILLed with a persistent backlog (default exchange and a named one,
custom properties), the new one recovers it, adds records of its own, is
killed again, and every message must come back once, in order, with its
exchange, routing key and properties."""

import os

import pika
import pytest

import warren_harness
from warren_harness import MiB, log_barrier, toml_config

OLD_BIN = os.environ.get("WARREN_OLD_BIN")
# Small segments: the backlog spans sealed (summarised) segments and a tail.
CONFIG = toml_config({"storage": {"segment_size_bytes": MiB // 4}})
N = 20_000  # per kind of message and per binary
QUEUE = "old.dir.q"


def publish(ch, tag: str) -> None:
    """N to the default exchange (key = the queue: stored without it by the
    new binary), N through a direct exchange with another key and headers."""
    for i in range(N):
        ch.basic_publish("", QUEUE, b"%s-d-%08d" % (tag.encode(), i),
                         pika.BasicProperties(delivery_mode=2))
        ch.basic_publish("old.dir.x", "other.key", b"%s-x-%08d" % (tag.encode(), i),
                         pika.BasicProperties(delivery_mode=2, headers={"n": i},
                                              content_type="text/plain"))


def expected(tag: str):
    for i in range(N):
        yield b"%s-d-%08d" % (tag.encode(), i), "", QUEUE, None
        yield b"%s-x-%08d" % (tag.encode(), i), "old.dir.x", "other.key", i


@pytest.mark.skipif(not OLD_BIN, reason="WARREN_OLD_BIN (an older warren binary) not set")
@pytest.mark.timeout(600)
def test_new_binary_reads_a_data_dir_of_an_old_one(broker_factory, monkeypatch):
    broker = broker_factory(CONFIG)
    monkeypatch.setattr(warren_harness, "WARREN_BIN", OLD_BIN)
    broker.start()
    conn = broker.connect()
    ch = conn.channel()
    ch.exchange_declare("old.dir.x", "direct", durable=True)
    ch.queue_declare(QUEUE, durable=True)
    ch.queue_bind(QUEUE, "old.dir.x", "other.key")
    publish(ch, "old")
    log_barrier(conn)
    broker.kill()

    monkeypatch.undo()
    broker.start()
    conn = broker.connect()
    ch = conn.channel()
    assert ch.queue_declare(QUEUE, durable=True, passive=True).method.message_count == 2 * N
    publish(ch, "new")
    log_barrier(conn)
    broker.kill()

    broker.start()
    conn = broker.connect()
    ch = conn.channel()
    assert ch.queue_declare(QUEUE, durable=True, passive=True).method.message_count == 4 * N
    ch.basic_qos(prefetch_count=1000)
    want = list(expected("old")) + list(expected("new"))
    got = 0
    for method, props, body in ch.consume(QUEUE, auto_ack=False, inactivity_timeout=30):
        assert method is not None, f"consumer stalled after {got} messages"
        b, exchange, key, n = want[got]
        assert body == b, f"message #{got}: {body!r}, expected {b!r}"
        assert (method.exchange, method.routing_key) == (exchange, key), body
        assert props.delivery_mode == 2
        if n is not None:
            assert props.headers == {"n": n} and props.content_type == "text/plain", body
        got += 1
        if got % 500 == 0 or got == len(want):
            ch.basic_ack(method.delivery_tag, multiple=True)
        if got == len(want):
            break
    ch.cancel()
    assert ch.queue_declare(QUEUE, durable=True, passive=True).method.message_count == 0
    conn.close()
