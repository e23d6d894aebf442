"""The store's memory budget scales with the watermark (warren-core
store/budget.rs): with a small watermark (48 MiB: 4 MiB of queue windows and
4 MiB of pending writes, the floors) a publish flood into queues nobody
consumes is paged to disk instead of piling up in memory, so the broker keeps
taking messages well past the watermark and its RSS stays under watermark +
a margin far below the old fixed budget (64 MiB windows + 32 MiB pending).
"""

import threading
import time

import pytest

from test_alarm_floods import FloodLoop, Flooder, stomp_send_frame, BODY
from warren_harness import MiB, toml_config

WATERMARK = 48 * MiB
# What arrives between two alarm checks (50 ms), socket buffers, allocator
# slack; the budget itself is inside the watermark.
MARGIN = 40 * MiB
PUBLISHERS = 4
TARGET = 4 * WATERMARK


@pytest.mark.timeout(240)
def test_small_watermark_pages_a_flood_and_bounds_rss(broker_factory):
    b = broker_factory(
        config=toml_config({"resources": {"memory_high_watermark_bytes": WATERMARK,
                                          "disk_free_limit_bytes": 1_000_000}}),
        stomp=True).start()
    setup = b.connect()
    ch = setup.channel()
    queues = [f"budget.{i}" for i in range(PUBLISHERS)]
    for q in queues:
        ch.queue_declare(q)
    login = b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00"
    loop = FloodLoop([Flooder(b.stomp_port, login, stomp_send_frame(q)) for q in queues])
    peak = [0]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak[0] = max(peak[0], b.rss_bytes())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    loop.start()
    try:
        deadline = time.monotonic() + 150
        while loop.written() < TARGET:
            assert b.alive(), "broker died"
            assert time.monotonic() < deadline, (
                f"flood stalled at {loop.written() / MiB:.0f} MiB: memory not paged out? "
                f"RSS {b.rss_bytes() / MiB:.0f} MiB")
            time.sleep(0.2)
    finally:
        loop.stop.set()
        loop.join(10)
        for f in loop.flooders:
            f.sock.close()
    time.sleep(1.0)
    sampling.set()
    sampler.join()
    held = sum(ch.queue_declare(q, passive=True).method.message_count for q in queues)
    setup.close()
    print(f"\nwatermark {WATERMARK / MiB:.0f} MiB: {loop.written() / MiB:.0f} MiB published, "
          f"{held} messages ({held * len(BODY) / MiB:.0f} MiB) queued, peak RSS "
          f"{peak[0] / MiB:.0f} MiB")
    assert loop.error is None, loop.error
    assert held * len(BODY) >= 3 * WATERMARK, "the flood was not paged out"
    assert peak[0] <= WATERMARK + MARGIN, peak[0] / MiB
