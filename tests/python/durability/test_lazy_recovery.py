"""Priority-queue and stream backlogs restart without being read (issue 16).

Sealed log segments' summaries carry each priority queue's entries (with their
priority) and each stream's index blocks, so a broker killed with both
backlogs on disk reads only summaries, ack files and the unsealed tail before
it listens: the priority backlog is split per level from the summaries'
per-priority counts (nothing read, written or kept per message), the
stream's index is rebuilt from blocks. Functional checks: exact lengths at
once, priority order (higher levels first, publish order within a level),
acked messages gone, every stream offset back with its body, and RSS
bounded throughout."""

import os
import re
import time

import pika
import pytest

from warren_harness import MiB, RssSampler, log_barrier, toml_config

# Small segments: a CI-sized backlog spans many of them.
CONFIG = toml_config({"storage": {"segment_size_bytes": MiB // 2}})
N_PRIO = 60_000
N_STREAM = 60_000
MAX_PRIORITY = 4  # priorities 0..5 are published: 5 counts as 4
ACKED = 5_000  # of the priority queue, before the kill
RSS_LIMIT = 120 * MiB


def prio_of(i: int) -> int:
    return i % 6


def prio_body(i: int) -> bytes:
    return b"p-%010d" % i


def stream_body(i: int) -> bytes:
    return b"s-%010d" % i


def priority_order():
    """Bodies in the order a priority queue delivers them."""
    levels = {}
    for i in range(N_PRIO):
        levels.setdefault(min(prio_of(i), MAX_PRIORITY), []).append(i)
    return [i for level in sorted(levels, reverse=True) for i in levels[level]]


def recovery_line(broker) -> str:
    lines = [l for l in broker.log_lines(-1) if "message log recovered" in l]
    assert lines, "no recovery line in the log"
    return lines[-1]


# ~30 s on an idle machine (pika publishes one message per call); the limit
# only catches a hang.
@pytest.mark.timeout(500)
def test_priority_and_stream_backlogs_recover_lazily_across_kill(broker_factory):
    broker = broker_factory(CONFIG).start()
    conn = broker.connect()
    ch = conn.channel()
    ch.queue_declare("lazy.prio", durable=True, arguments={"x-max-priority": MAX_PRIORITY})
    ch.queue_declare("lazy.stream", durable=True, arguments={"x-queue-type": "stream"})
    for i in range(max(N_PRIO, N_STREAM)):
        if i < N_PRIO:
            ch.basic_publish("", "lazy.prio", prio_body(i),
                             pika.BasicProperties(delivery_mode=2, priority=prio_of(i)))
        if i < N_STREAM:
            ch.basic_publish("", "lazy.stream", stream_body(i),
                             pika.BasicProperties(delivery_mode=2))
    log_barrier(conn)
    order = priority_order()

    # Drain the first ACKED of the priority queue (acked, made durable), then
    # kill with more deliveries in flight.
    ch.basic_qos(prefetch_count=1000)
    got = 0
    for method, _p, b in ch.consume("lazy.prio", auto_ack=False, inactivity_timeout=30):
        assert method is not None, f"stalled after {got}"
        assert b == prio_body(order[got]), f"#{got}: {b!r}, expected {prio_body(order[got])!r}"
        got += 1
        if got % 500 == 0:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if got == ACKED:
            break
    log_barrier(conn)
    segments = len([f for f in os.listdir(broker.messages_dir) if f.endswith(".seg")])
    broker.kill()

    t0 = time.monotonic()
    broker.start()
    listening = time.monotonic() - t0
    sampler = RssSampler(broker)
    sampler.start()
    line = recovery_line(broker)
    scanned = int(re.search(r"scanned=(\d+)", line).group(1))
    print(f"{segments} segments; listening after {listening:.2f}s; {line}")
    assert segments >= 10, f"only {segments} segments: the backlog is too small to tell"
    # The unsealed tail, and a segment sealed just before the kill whose
    # summary was not written yet: everything else from summaries, stream
    # segments included.
    assert scanned <= 3, f"{scanned} of {segments} segments scanned at startup"
    # Per-level counts from the summaries' histograms (segments with acks of
    # the queue: from the live entries recovery counted anyway).
    split = split_line(broker)
    assert "entries_read=0" in split, f"the split read index entries: {split}"

    conn = broker.connect()
    ch = conn.channel()
    left = ch.queue_declare("lazy.prio", durable=True, passive=True,
                            arguments={"x-max-priority": MAX_PRIORITY}).method.message_count
    assert left == N_PRIO - ACKED

    # The priority backlog: the rest, in priority order, redelivered.
    ch.basic_qos(prefetch_count=1000)
    expected = ACKED
    for method, props, b in ch.consume("lazy.prio", auto_ack=False, inactivity_timeout=30):
        assert method is not None, f"stalled at #{expected}"
        want = order[expected]
        assert b == prio_body(want), f"#{expected}: {b!r}, expected {prio_body(want)!r}"
        assert props.priority == prio_of(want)
        expected += 1
        if expected % 500 == 0 or expected == N_PRIO:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if expected == N_PRIO:
            break
    ch.cancel()
    assert ch.queue_declare("lazy.prio", durable=True, passive=True,
                            arguments={"x-max-priority": MAX_PRIORITY}).method.message_count == 0

    # The stream: every offset, with its body, then new ones after it.
    sc = conn.channel()
    sc.basic_qos(prefetch_count=1000)
    offsets = []
    for method, props, b in sc.consume("lazy.stream", auto_ack=False, inactivity_timeout=30,
                                       arguments={"x-stream-offset": "first"}):
        assert method is not None, f"stream stalled after {len(offsets)}"
        o = props.headers["x-stream-offset"]
        assert b == stream_body(o), f"offset {o}: {b!r}"
        offsets.append(o)
        sc.basic_ack(method.delivery_tag)
        if len(offsets) == N_STREAM:
            break
    sc.cancel()
    assert offsets == list(range(N_STREAM))
    pc = conn.channel()
    pc.confirm_delivery()
    pc.basic_publish("", "lazy.stream", b"after", pika.BasicProperties(delivery_mode=2))
    sc = conn.channel()
    sc.basic_qos(prefetch_count=10)
    for method, props, b in sc.consume("lazy.stream", auto_ack=False, inactivity_timeout=30,
                                       arguments={"x-stream-offset": "last"}):
        assert method is not None, "the new message never came"
        if b == b"after":
            assert props.headers["x-stream-offset"] == N_STREAM
            break
    max_rss = sampler.stop()
    print(f"after the restart: max RSS {max_rss / MiB:.1f} MiB")
    assert max_rss < RSS_LIMIT, f"RSS peaked at {max_rss / MiB:.1f} MiB"
    conn.close()
    assert broker.alive()


def split_line(broker) -> str:
    lines = [l for l in broker.log_lines(-1) if "priority backlog split per level" in l]
    assert lines, "no split line in the log"
    return lines[-1]


# A few seconds (1 KiB bodies: 12 segments from 6,000 publishes); the limit
# only catches a hang.
@pytest.mark.timeout(300)
def test_priority_backlog_splits_per_level_from_summary_histograms(broker_factory):
    """Sealed segments' summaries carry each queue's count per priority, so a
    priority backlog over many segments is split per level at restart without
    reading a single index entry (`entries_read=0` on the split's log line);
    per-level lengths are exact (each level delivers exactly its messages, in
    publish order, highest level first) after kill -9."""
    n, top = 6_000, 3  # priorities 0..4 published; 4 counts as 3
    body = lambda i: b"h-%08d-" % i + b"x" * 1000
    prio = lambda i: (i * 7) % 5
    broker = broker_factory(CONFIG).start()
    conn = broker.connect()
    ch = conn.channel()
    ch.queue_declare("hist.prio", durable=True, arguments={"x-max-priority": top})
    for i in range(n):
        ch.basic_publish("", "hist.prio", body(i),
                         pika.BasicProperties(delivery_mode=2, priority=prio(i)))
    log_barrier(conn)
    segments = len([f for f in os.listdir(broker.messages_dir) if f.endswith(".seg")])
    # Give the summary thread a moment for the last sealed segment.
    time.sleep(1)
    broker.kill()

    broker.start()
    line = split_line(broker)
    print(f"{segments} segments; {line}")
    assert segments >= 10, f"only {segments} segments: the backlog is too small to tell"
    split_segments = int(re.search(r"segments=(\d+)", line).group(1))
    assert split_segments >= 10, line
    assert "entries_read=0" in line, f"the split read index entries: {line}"

    conn = broker.connect()
    ch = conn.channel()
    assert ch.queue_declare("hist.prio", durable=True, passive=True,
                            arguments={"x-max-priority": top}).method.message_count == n
    levels = {}
    for i in range(n):
        levels.setdefault(min(prio(i), top), []).append(i)
    order = [i for level in sorted(levels, reverse=True) for i in levels[level]]
    ch.basic_qos(prefetch_count=500)
    got = 0
    for method, props, b in ch.consume("hist.prio", auto_ack=False, inactivity_timeout=30):
        assert method is not None, f"stalled at #{got}"
        assert b == body(order[got]), f"#{got}: {b[:12]!r}, expected {body(order[got])[:12]!r}"
        assert props.priority == prio(order[got])
        got += 1
        if got % 250 == 0:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if got == n:
            break
    ch.cancel()
    assert ch.queue_declare("hist.prio", durable=True, passive=True,
                            arguments={"x-max-priority": top}).method.message_count == 0
    conn.close()
    assert broker.alive()
