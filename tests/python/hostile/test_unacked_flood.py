"""10,000 consumers that never ack, on connections that read everything: the
unacknowledged messages the broker must keep count against the memory alarm,
so a flooding publisher is blocked (its socket no longer read) and the
broker's RSS stays under the watermark plus a fixed margin.

RabbitMQ 3.10 behaves alike (unacked messages are held by the queue process
and count towards its memory alarm).
"""

import selectors
import threading
import time

import pytest

from rawlogin import basic_consume, basic_publish, channel_open, open_connection
from warren_harness import MiB, toml_config

WATERMARK = 64 * MiB
MARGIN = 96 * MiB
CONSUMERS = 10_000
CONNECTIONS = 10  # 1,000 consumers each, on channel 1
BODY = b"\x5a" * (16 * 1024)


class Drain(threading.Thread):
    """Reads and discards whatever the consumer connections receive."""

    def __init__(self, socks):
        super().__init__(daemon=True)
        self.socks = socks
        self.received = 0
        self.stop = threading.Event()

    def run(self):
        sel = selectors.DefaultSelector()
        for s in self.socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while not self.stop.is_set():
            for key, _ in sel.select(timeout=0.1):
                try:
                    self.received += len(key.fileobj.recv(1 << 20))
                except (BlockingIOError, InterruptedError):
                    pass


@pytest.mark.timeout(180)
def test_ten_thousand_consumers_that_never_ack(broker_factory):
    b = broker_factory(config=toml_config({
        "resources": {"memory_high_watermark_bytes": WATERMARK,
                      "disk_free_limit_bytes": 1_000_000}})).start()
    c = b.connect()
    c.channel().queue_declare("noack.q")
    c.close()
    consumers = []
    per = CONSUMERS // CONNECTIONS
    for i in range(CONNECTIONS):
        s = open_connection(b.port)
        s.sendall(channel_open(1) + b"".join(
            basic_consume(1, "noack.q", f"c{i}.{j}") for j in range(per)))
        consumers.append(s)
    drain = Drain(consumers)
    drain.start()

    pub = open_connection(b.port)
    pub.sendall(channel_open(1))
    pub.setblocking(False)
    frame = basic_publish(1, "", "noack.q", BODY)
    written, pending = 0, memoryview(b"")
    peak = 0
    deadline = time.monotonic() + 90
    alarm_seen_at = None
    last_check = 0.0
    stalled_since = None
    try:
        while time.monotonic() < deadline:
            try:
                while True:
                    if not pending:
                        pending = memoryview(frame)
                    n = pub.send(pending)
                    pending = pending[n:]
                    written += n
            except (BlockingIOError, InterruptedError):
                pass
            now = time.monotonic()
            if now - last_check > 0.1:
                last_check = now
                peak = max(peak, b.rss_bytes())
                if alarm_seen_at is None and "resource alarm: low on memory" in b.log_text():
                    alarm_seen_at = now
                    mark = written
                if alarm_seen_at is not None and now - alarm_seen_at > 2.0:
                    if stalled_since is None:
                        stalled_since, mark = now, written
                    elif now - stalled_since > 2.0:
                        break
            time.sleep(0.005)
        assert alarm_seen_at is not None, (
            f"no memory alarm; {written / MiB:.0f} MiB published, RSS {b.rss_bytes() / MiB:.0f}")
        stalled = written - mark
        assert stalled < 4 * len(frame), f"publisher read while blocked: {stalled} bytes in 2 s"
        print(f"\n{CONSUMERS} consumers never acking: alarm after {written / MiB:.0f} MiB "
              f"published, {drain.received / MiB:.0f} MiB delivered; peak RSS "
              f"{peak / MiB:.0f} MiB (watermark {WATERMARK / MiB:.0f}); publisher stalled")
        assert peak <= WATERMARK + MARGIN, peak / MiB
        assert b.alive()
    finally:
        drain.stop.set()
        drain.join(5)
        pub.close()
        for s in consumers:
            s.close()
