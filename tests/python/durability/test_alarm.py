"""Memory alarm: a publisher that outruns the broker gets connection.blocked,
is no longer read, the broker survives, consumers keep working, and once memory
is freed the publisher gets connection.unblocked and can publish again."""

import threading
import time

import pika
import pytest

from warren_harness import MiB, TRANSIENT, toml_config

BODY = b"\xab" * (64 * 1024)
QUEUES = [f"alarm.q{i}" for i in range(16)]
# Above the idle broker's RSS.  Several queues, so that even a broker that keeps
# only a bounded window of each queue in RAM (paging the rest to disk) gets over
# it, while the alarm itself keeps the peak modest.
MARGIN = 24 * MiB
# If the alarm never fires, stop anyway after this much (keeps memory and disk bounded).
MAX_PUBLISH_BYTES = 1024 * MiB
WINDOW = 32  # unconfirmed messages in flight (bounds the client's buffer)


class AlarmPublisher(threading.Thread):
    """Publishes ``BODY`` round-robin to ``QUEUES`` as fast as the broker takes
    it, on a pika SelectConnection (its blocked/unblocked callbacks run as soon as
    the frames arrive, even while the socket is not being read).  Publisher
    confirms bound the number of messages in flight to ``WINDOW``.  After
    ``connection.unblocked`` it publishes ``after_unblock`` more messages, then
    idles until ``stop()``."""

    def __init__(self, params: pika.ConnectionParameters, after_unblock: int = 10):
        super().__init__(daemon=True, name="alarm-publisher")
        self.params = params
        self.after_unblock = after_unblock
        self.blocked = threading.Event()
        self.unblocked = threading.Event()
        self.ready = threading.Event()
        self.published = 0
        self.confirmed = 0
        self.nacked = 0
        self.published_after_unblock = 0
        self.error = None
        self.close_reason = None
        self._pending = set()
        self._stopping = False
        self.conn = None
        self.ch = None

    # -- ioloop thread ---------------------------------------------------------
    def run(self):
        try:
            self.conn = pika.SelectConnection(
                self.params, on_open_callback=self._on_open,
                on_open_error_callback=self._on_open_error, on_close_callback=self._on_close)
            self.conn.add_on_connection_blocked_callback(self._on_blocked)
            self.conn.add_on_connection_unblocked_callback(self._on_unblocked)
            self.conn.ioloop.start()
        except BaseException as e:
            self.error = e
        finally:
            self.ready.set()

    def _on_open(self, conn):
        conn.channel(on_open_callback=self._on_channel)

    def _on_open_error(self, conn, err):
        self.error = err
        conn.ioloop.stop()

    def _on_close(self, conn, reason):
        self.close_reason = reason
        conn.ioloop.stop()

    def _on_channel(self, ch):
        self.ch = ch
        ch.confirm_delivery(ack_nack_callback=self._on_confirm, callback=self._on_confirm_mode)

    def _on_confirm_mode(self, _frame):
        self.ready.set()
        self._pump()

    def _on_blocked(self, _conn, _frame):
        self.blocked.set()

    def _on_unblocked(self, _conn, _frame):
        self.unblocked.set()
        self._pump()

    def _on_confirm(self, frame):
        m = frame.method
        if isinstance(m, pika.spec.Basic.Nack):
            self.nacked += 1
        tags = [t for t in self._pending if t <= m.delivery_tag] if m.multiple else [m.delivery_tag]
        for t in tags:
            if t in self._pending:
                self._pending.discard(t)
                self.confirmed += 1
        self._pump()

    def _pump(self):
        while (not self._stopping and self.ch is not None and self.ch.is_open
               and len(self._pending) < WINDOW
               and self.published * len(BODY) < MAX_PUBLISH_BYTES):
            if self.unblocked.is_set():
                if self.published_after_unblock >= self.after_unblock:
                    return
                self.published_after_unblock += 1
            q = QUEUES[self.published % len(QUEUES)]
            self.ch.basic_publish("", q, BODY, TRANSIENT)
            self.published += 1
            self._pending.add(self.published)

    # -- test thread -------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def stop(self, timeout: float = 10.0) -> None:
        def close():
            self._stopping = True
            if self.conn is not None and self.conn.is_open:
                self.conn.close()
            else:
                self.conn.ioloop.stop()
        if self.is_alive() and self.conn is not None:
            self.conn.ioloop.add_callback_threadsafe(close)
        self.join(timeout)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)


@pytest.mark.timeout(240)
def test_memory_alarm_blocks_and_unblocks_publisher(broker_factory):
    """With ``memory_high_watermark_bytes`` = idle RSS + 24 MiB, a publisher
    flooding 64 KiB transient messages into 16 consumer-less queues must get
    ``connection.blocked``; its publishes then stop being read (no more
    confirms) while the broker stays up; a consumer connection can still get and
    ack messages and purge the queues; then the publisher gets
    ``connection.unblocked`` and its next publishes are confirmed."""
    b = broker_factory(label="alarm")
    b.start()
    c = b.connect()
    c.close()
    time.sleep(0.3)
    idle = b.rss_bytes()
    b.kill()
    limit = idle + MARGIN
    b.set_config(toml_config({
        "resources": {"memory_high_watermark_bytes": limit,
                      # Only the memory alarm should matter here.
                      "disk_free_limit_bytes": 1_000_000},
        # Queue windows larger than the watermark: by default they get 1/16 of
        # it and a flood is paged out as fast as it comes, so the alarm would
        # only flicker; here the flood must hold the broker over the watermark.
        "storage": {"queue_window_bytes": 64 * MiB},
    }))
    b.start()
    start_rss = b.rss_bytes()
    print(f"idle RSS {idle / MiB:.1f} MiB, watermark {limit / MiB:.1f} MiB, "
          f"RSS after restart {start_rss / MiB:.1f} MiB")
    assert start_rss < limit, "broker over the watermark before any load"

    setup = b.connect()
    sch = setup.channel()
    for q in QUEUES:
        sch.queue_declare(q)
    setup.close()

    pub = AlarmPublisher(b.params())
    pub.start()
    try:
        assert pub.ready.wait(30) and pub.error is None, f"publisher failed: {pub.error!r}"
        deadline = time.monotonic() + 60
        while not pub.blocked.is_set():
            assert b.alive(), "broker died under memory pressure"
            assert pub.close_reason is None, f"publisher connection closed: {pub.close_reason!r}"
            assert pub.published * len(BODY) < MAX_PUBLISH_BYTES or pub.in_flight, (
                f"published {pub.published * len(BODY) / MiB:.0f} MiB without connection.blocked "
                f"(RSS {b.rss_bytes() / MiB:.1f} MiB, watermark {limit / MiB:.1f} MiB)")
            assert time.monotonic() < deadline, (
                f"no connection.blocked after 60 s; published {pub.published} "
                f"(RSS {b.rss_bytes() / MiB:.1f} MiB, watermark {limit / MiB:.1f} MiB)")
            time.sleep(0.02)
        blocked_rss = b.rss_bytes()
        print(f"blocked after {pub.published} messages ({pub.published * len(BODY) / MiB:.0f} MiB), "
              f"RSS {blocked_rss / MiB:.1f} MiB")

        # Blocked publishers are not read: confirms stop.  What the broker had
        # read before it blocked is still confirmed; wait (as long as a loaded
        # machine needs) until no confirm came for a whole second, then check
        # that none comes in the next one either.
        c1 = pub.confirmed
        settle_deadline = time.monotonic() + 30
        while True:
            time.sleep(1.0)
            if pub.confirmed == c1:
                break
            assert time.monotonic() < settle_deadline, (
                f"confirms still arriving 30 s after connection.blocked ({pub.confirmed})")
            c1 = pub.confirmed
        time.sleep(1.0)
        c2 = pub.confirmed
        assert c2 == c1, f"publisher still being served while blocked ({c1} -> {c2} confirms)"
        assert not pub.unblocked.is_set()
        assert b.alive(), "broker died"
        assert pub.close_reason is None, f"publisher connection closed: {pub.close_reason!r}"

        # Consumers keep working during the alarm; then free the memory.
        cons = b.connect()
        cch = cons.channel()
        for _ in range(5):
            method, _props, body = cch.basic_get(QUEUES[0], auto_ack=False)
            assert method is not None, "consumer got nothing while the alarm was on"
            assert body == BODY
            cch.basic_ack(method.delivery_tag)
        for q in QUEUES:
            cch.queue_purge(q)

        assert pub.unblocked.wait(60), (
            f"no connection.unblocked within 60 s after purging "
            f"(RSS {b.rss_bytes() / MiB:.1f} MiB, watermark {limit / MiB:.1f} MiB)")
        print(f"unblocked; RSS {b.rss_bytes() / MiB:.1f} MiB")
        # Publishing works again: everything in flight plus the new ones is confirmed.
        wait_for(lambda: pub.published_after_unblock == pub.after_unblock and pub.in_flight == 0,
                 30, f"confirms after unblock (in flight {pub.in_flight})")
        assert pub.nacked == 0
        for q in QUEUES:
            cch.queue_purge(q)
        cons.close()
        assert b.alive()
    finally:
        pub.stop()
    assert not pub.is_alive(), "publisher thread did not stop"
    assert pub.error is None, repr(pub.error)
