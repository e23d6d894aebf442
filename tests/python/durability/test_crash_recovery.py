"""Crash recovery: SIGKILL the broker while publishers and consumers are
active, restart it on the same data dir, and check exactly which messages
come back."""

import random
import threading
import time

import pika
import pika.exceptions
import pytest

from warren_harness import PERSISTENT, drain, log_barrier, passive_queue, publish_confirmed

PUBLISHERS = 3
# Safety net only: a publisher never gets near this before the kill.
MAX_PER_PUBLISHER = 200_000


class ConfirmingPublisher(threading.Thread):
    """Publishes ``f"{pub}:{n}"`` (n = 0, 1, ...) persistently on its own
    connection with publisher confirms until the connection dies.

    ``attempted`` is the highest n handed to basic_publish (maybe on disk);
    ``confirmed`` is how many returned without error (must be on disk)."""

    def __init__(self, broker, pub: int, queue: str, go: threading.Event):
        super().__init__(daemon=True, name=f"publisher-{pub}")
        self.broker = broker
        self.pub = pub
        self.queue = queue
        self.go = go
        self.attempted = -1
        self.confirmed = 0
        self.error = None
        self.ready = threading.Event()

    def run(self):
        conn = None
        try:
            conn = self.broker.connect()
            ch = conn.channel()
            ch.confirm_delivery()
            self.ready.set()
            self.go.wait(10)
            for n in range(MAX_PER_PUBLISHER):
                self.attempted = n
                ch.basic_publish("", self.queue, f"{self.pub}:{n}".encode(), PERSISTENT)
                self.confirmed = n + 1
        except BaseException as e:  # expected: the broker was killed
            self.error = e
        finally:
            self.ready.set()
            if conn is not None and conn.is_open:
                try:
                    conn.close()
                except Exception:
                    pass


@pytest.mark.timeout(60)
@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_confirmed_messages_survive_sigkill(broker, seed):
    """Three publishers with confirms publish persistent messages to one durable
    queue; the broker is SIGKILLed 0.3-1.5 s in.  After restart on the same data
    dir: every confirmed message is there, nothing that was never published is,
    there are no duplicates, and each publisher's messages are in publish order
    (at most each publisher's single in-flight, unconfirmed message may be extra).
    """
    rnd = random.Random(seed)
    kill_after = rnd.uniform(0.3, 1.5)
    queue = f"crash.q{seed}"
    conn = broker.connect()
    conn.channel().queue_declare(queue, durable=True)
    conn.close()

    go = threading.Event()
    pubs = [ConfirmingPublisher(broker, p, queue, go) for p in range(PUBLISHERS)]
    for p in pubs:
        p.start()
    for p in pubs:
        assert p.ready.wait(10), f"{p.name} did not connect"
        assert p.error is None, f"{p.name} failed before the kill: {p.error!r}"
    go.set()
    # The kill comes 0.3-1.5 s into the publishing, counted from the first
    # confirm (on a loaded machine the first round trips can take that long).
    deadline = time.monotonic() + 30
    while sum(p.confirmed for p in pubs) == 0:
        assert all(p.error is None for p in pubs), [repr(p.error) for p in pubs]
        assert time.monotonic() < deadline, "no publish confirmed within 30 s"
        time.sleep(0.01)
    time.sleep(kill_after)
    broker.kill()
    for p in pubs:
        p.join(15)
        assert not p.is_alive(), f"{p.name} still running after the broker died"
        assert p.error is not None, f"{p.name} stopped without an error?"

    confirmed = {p.pub: p.confirmed for p in pubs}
    attempted = {p.pub: p.attempted for p in pubs}
    assert sum(confirmed.values()) > 0, "nothing was confirmed before the kill"

    broker.start()
    conn = broker.connect()
    count = passive_queue(conn, queue)
    assert count is not None, "durable queue lost in the crash"
    got = drain(conn, queue)
    conn.close()

    print(f"seed={seed} kill_after={kill_after:.2f}s confirmed={confirmed} "
          f"(total {sum(confirmed.values())}) attempted(max n)={attempted} "
          f"recovered={len(got)} (queue said {count})")

    seen = {p: [] for p in range(PUBLISHERS)}
    for g in got:
        try:
            pub_s, n_s = g.body.decode().split(":")
            pub, n = int(pub_s), int(n_s)
        except Exception:
            raise AssertionError(f"unexpected body in queue: {g.body!r}")
        assert pub in seen, f"unknown publisher in {g.body!r}"
        assert n <= attempted[pub], (
            f"{g.body!r} was never published (publisher {pub} stopped at {attempted[pub]})")
        seen[pub].append(n)

    for pub, ns in seen.items():
        assert len(ns) == len(set(ns)), f"publisher {pub}: duplicates recovered"
        assert ns == sorted(ns), f"publisher {pub}: out of order: {ns[:50]}..."
        missing = sorted(set(range(confirmed[pub])) - set(ns))
        assert not missing, (f"publisher {pub}: {len(missing)} confirmed messages lost, "
                             f"first {missing[:10]}")
    assert count == len(got), f"queue reported {count} messages but {len(got)} were delivered"


@pytest.mark.timeout(90)
def test_acked_gone_unacked_redelivered_after_sigkill(broker):
    """Publish 2000 persistent messages with confirms; consume the first 1010
    with manual acks, ack the first 1000 (500 one by one, then the rest with one
    multiple ack) and keep 10 delivered-but-unacked when the broker is SIGKILLed.
    After restart: the acked 1000 never come back; the 10 unacked come first,
    marked redelivered, in order; then the remaining 990, in order."""
    total, acked, unacked = 2000, 1000, 10
    queue = "crash.acks"
    conn = broker.connect()
    conn.channel().queue_declare(queue, durable=True)
    bodies = [f"m{n:05d}".encode() for n in range(total)]
    assert publish_confirmed(conn, "", queue, bodies) == total

    ch = conn.channel()
    tags = []
    for n in range(acked + unacked):
        method, _props, body = ch.basic_get(queue, auto_ack=False)
        assert method is not None, f"get-empty after {n} messages"
        assert body == bodies[n], f"basic_get #{n}: {body!r}"
        tags.append(method.delivery_tag)
    for t in tags[:500]:
        ch.basic_ack(t)
    ch.basic_ack(tags[acked - 1], multiple=True)
    # Round trip on the same channel: the acks have been processed.
    assert ch.queue_declare(queue, passive=True).method.message_count == total - acked - unacked
    # Acks are written to the log asynchronously: make sure they are there
    # (confirmed persistent publishes after them, on another queue).
    log_barrier(conn)

    # The consuming connection stays open (10 unacked) while the broker dies.
    broker.kill()
    broker.start()
    conn2 = broker.connect()
    got = drain(conn2, queue)
    conn2.close()
    print(f"recovered {len(got)} messages; first redelivered={sum(g.redelivered for g in got[:unacked])}")

    got_bodies = [g.body for g in got]
    came_back = sorted(set(got_bodies) & set(bodies[:acked]))
    assert not came_back, f"{len(came_back)} acked messages came back, e.g. {came_back[:5]}"
    assert got_bodies[:unacked] == bodies[acked:acked + unacked], (
        f"the unacked messages should come first, in order: {got_bodies[:unacked]}")
    not_redelivered = [g.body for g in got[:unacked] if not g.redelivered]
    assert not not_redelivered, f"unacked messages without redelivered=True: {not_redelivered}"
    assert got_bodies[unacked:] == bodies[acked + unacked:], (
        "the never-delivered rest should follow in order "
        f"(got {len(got_bodies) - unacked}, expected {total - acked - unacked})")
