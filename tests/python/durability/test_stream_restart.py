"""Stream queues across restarts: kill -9 while publishing with confirms
loses nothing that was confirmed, every message keeps its offset, offsets
never repeat, and retention survives a restart (Warren-only: these tests
start and kill their own brokers)."""

import threading
import time

import pika
import pika.exceptions

STREAM = {"x-queue-type": "stream"}


def read_stream(conn, queue, offset="first", expect=None, quiet=1.5):
    ch = conn.channel()
    ch.basic_qos(prefetch_count=500)
    got = []

    def on_msg(c, m, p, body):
        got.append((p.headers["x-stream-offset"], body))
        c.basic_ack(m.delivery_tag)

    ch.basic_consume(queue, on_msg, arguments={"x-stream-offset": offset})
    last, since = 0, time.time()
    while (expect is None or len(got) < expect) and time.time() - since < quiet:
        conn.process_data_events(0.05)
        if len(got) != last:
            last, since = len(got), time.time()
    try:
        ch.close()
    except pika.exceptions.AMQPError:
        pass
    return got


def test_kill_while_publishing_keeps_every_confirmed_offset(broker):
    conn = broker.connect()
    conn.channel().queue_declare("s", durable=True, arguments=STREAM)
    conn.close()
    confirmed = []
    stop = threading.Event()

    def publisher():
        try:
            c = broker.connect()
            ch = c.channel()
            ch.confirm_delivery()
            i = 0
            while not stop.is_set():
                ch.basic_publish("", "s", b"%08d" % i)
                confirmed.append(i)
                i += 1
        except Exception:
            pass  # the broker died under us

    t = threading.Thread(target=publisher)
    t.start()
    deadline = time.time() + 30
    while len(confirmed) < 300 and time.time() < deadline:
        time.sleep(0.05)
    broker.kill()
    stop.set()
    t.join(10)
    assert len(confirmed) >= 300
    broker.start()
    conn = broker.connect()
    got = read_stream(conn, "s", expect=len(confirmed))
    # One publisher, one message at a time: message i is at offset i.
    by_offset = {o: b for o, b in got}
    for i in confirmed:
        assert by_offset.get(i) == b"%08d" % i, f"confirmed message {i} lost or moved"
    assert [o for o, _ in got] == list(range(len(got))), "no gaps, no repeats"
    # New messages continue after the highest recovered offset.
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "s", b"after")
    last = read_stream(conn, "s", offset="last", expect=1)
    assert last == [(len(got), b"after")]
    conn.close()


def test_retention_and_offsets_survive_restart(broker):
    conn = broker.connect()
    ch = conn.channel()
    ch.queue_declare("r", durable=True, arguments={
        **STREAM, "x-max-length-bytes": 3000, "x-stream-max-segment-size-bytes": 1000})
    ch.confirm_delivery()
    for i in range(200):
        ch.basic_publish("", "r", b"%04d" % i + b"x" * 96)
    before = read_stream(conn, "r")
    conn.close()
    assert before and before[0][0] > 0 and before[-1][0] == 199
    broker.stop()
    broker.start()
    conn = broker.connect()
    after = read_stream(conn, "r")
    assert after == before, "same messages at the same offsets after a restart"
    conn.close()


def test_filtering_after_kill(broker):
    """Block summaries for `x-stream-filter` are rebuilt from the log after
    kill -9: a filtering consumer still gets exactly its messages, across
    several index blocks of other values."""
    conn = broker.connect()
    conn.channel().queue_declare("f", durable=True, arguments=STREAM)
    ch = conn.channel()
    ch.confirm_delivery()
    big = b"x" * 4000
    for i in range(1200):
        value = "emea" if i in (5, 700, 1199) else "amer"
        ch.basic_publish("", "f", big if value == "amer" else b"e%d" % i,
                         pika.BasicProperties(headers={"x-stream-filter-value": value}))
    conn.close()
    broker.kill()
    broker.start()
    conn = broker.connect()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=10)
    got = []
    ch.basic_consume("f", lambda c, m, p, body: (got.append((p.headers["x-stream-offset"], body)),
                                                 c.basic_ack(m.delivery_tag)),
                     arguments={"x-stream-offset": "first", "x-stream-filter": "emea"})
    deadline = time.time() + 15
    while len(got) < 3 and time.time() < deadline:
        conn.process_data_events(0.1)
    conn.process_data_events(0.5)
    assert got == [(5, b"e5"), (700, b"e700"), (1199, b"e1199")]
    conn.close()
