"""Restart without reading the backlog (issue 16): sealed log segments have
summaries (per queue: message count, bytes, index entries), so a broker
killed with a large persistent backlog listens again after reading only the
summaries, the ack files and the unsealed tail, and its queues read their
messages lazily as they drain.  Functional checks: exact counts (passive
``queue.declare`` and ``/api/queues``), every message back, in order per
publisher, acked ones not."""

import json
import os
import re
import time
import urllib.request

import pika
import pytest

from warren_harness import MiB, log_barrier, toml_config

PERSISTENT = pika.BasicProperties(delivery_mode=2)
# Small segments: a CI-sized backlog spans many of them.
CONFIG = toml_config({"storage": {"segment_size_bytes": MiB // 4}})
N = 40_000  # per publisher
ACKED = 15_000  # of queue A, before the kill


def body(publisher: str, i: int) -> bytes:
    return b"%s-%010d" % (publisher.encode(), i)


def api_counts(broker) -> dict:
    req = urllib.request.Request(f"http://127.0.0.1:{broker.http_port}/api/queues")
    req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
    with urllib.request.urlopen(req, timeout=10) as r:
        return {q["name"]: q["messages"] for q in json.load(r)}


def recovery_line(broker) -> str:
    lines = [l for l in broker.log_lines(-1) if "message log recovered" in l]
    assert lines, "no recovery line in the log"
    return lines[-1]


@pytest.mark.timeout(300)
def test_kill_with_backlog_restarts_from_summaries(broker_factory):
    broker = broker_factory(CONFIG, http=True).start()
    pub_a, pub_b = broker.connect(), broker.connect()
    ca, cb = pub_a.channel(), pub_b.channel()
    ca.exchange_declare("fast.fx", "fanout", durable=True)
    for q in ("fast.a", "fast.b"):
        ca.queue_declare(q, durable=True)
    ca.queue_bind("fast.a", "fast.fx")
    ca.queue_bind("fast.b", "fast.fx")
    # Publisher A fans out to both queues, B goes to queue A only: records
    # listing two queues, and two publishers interleaved in each segment.
    for i in range(N):
        ca.basic_publish("fast.fx", "", body("A", i), PERSISTENT)
        cb.basic_publish("", "fast.a", body("B", i), PERSISTENT)
    log_barrier(pub_a)
    log_barrier(pub_b)

    # Ack the first ACKED of queue A (spread over its first segments).
    ch = broker.connect().channel()
    ch.basic_qos(prefetch_count=1000)
    got = 0
    for method, _p, _b in ch.consume("fast.a", auto_ack=False, inactivity_timeout=30):
        assert method is not None
        got += 1
        if got % 500 == 0:
            ch.basic_ack(method.delivery_tag, multiple=True)
        if got == ACKED:
            break
    log_barrier(ch.connection)
    segments = len([f for f in os.listdir(broker.messages_dir) if f.endswith(".seg")])
    broker.kill()

    t0 = time.monotonic()
    broker.start()
    listening = time.monotonic() - t0
    line = recovery_line(broker)
    scanned = int(re.search(r"scanned=(\d+)", line).group(1))
    print(f"{segments} segments; listening after {listening:.2f}s; {line}")
    # Only the unsealed tail (and a segment sealed just before the kill whose
    # summary was not written yet) are read; everything else from summaries.
    assert segments >= 10, f"only {segments} segments: the backlog is too small to tell"
    assert scanned <= 3, f"{scanned} of {segments} segments scanned at startup"
    assert listening < 30, f"listening only after {listening:.1f}s"

    conn = broker.connect()
    ch = conn.channel()
    want = {"fast.a": 2 * N - ACKED, "fast.b": N}
    for q, n in want.items():
        assert ch.queue_declare(q, durable=True, passive=True).method.message_count == n, q
    counts = api_counts(broker)
    assert {q: counts.get(q) for q in want} == want, counts

    # Drain: every message, in order per publisher; acked ones never again.
    # (Queue A's acked prefix is some mix of A's and B's first messages:
    # each publisher's sequence resumes where its part of it ended.)
    for q, n in want.items():
        ch.basic_qos(prefetch_count=2000)
        first, nxt = {}, {}
        seen = 0
        for method, _p, b in ch.consume(q, auto_ack=True, inactivity_timeout=30):
            assert method is not None, f"{q}: stalled after {seen} of {n}"
            who, i = b.decode().split("-")
            i = int(i)
            first.setdefault(who, i)
            assert i == nxt.get(who, i), f"{q}: {b!r} after {who}-{nxt[who] - 1}"
            nxt[who] = i + 1
            seen += 1
            if seen == n:
                break
        ch.cancel()
        assert all(v == N for v in nxt.values()), f"{q}: publishers ended at {nxt}"
        if q == "fast.a":
            assert first["A"] + first["B"] == ACKED, f"{q}: resumed at {first}"
        else:
            assert first == {"A": 0}
    assert ch.queue_declare("fast.a", durable=True, passive=True).method.message_count == 0
