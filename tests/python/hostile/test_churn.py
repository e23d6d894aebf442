"""Connection churn: connect, log in, close as fast as the clients can for a
while (``WARREN_CHURN_SECONDS``, 10 by default; the 60 s run is recorded in
docs/BENCHMARKS.md) → no descriptor leaked and the broker's RSS back near its
baseline afterwards (RabbitMQ's own weak spot: rabbitmq-server#4871).

Each cycle is a full AMQP login (header, start-ok PLAIN, tune-ok, open) and a
clean close. AMQP only:
the other protocols share the accept, registration and close paths.
"""

import os
import threading

import pytest
import time

from rawlogin import login
from warren_harness import MiB

SECONDS = float(os.environ.get("WARREN_CHURN_SECONDS", "10"))
THREADS = int(os.environ.get("WARREN_CHURN_THREADS", "8"))


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def churn(port, seconds, threads):
    done, errors = [], []
    stop = threading.Event()

    def run():
        n = 0
        while not stop.is_set():
            try:
                r = login(port, "guest", "guest")
                if r != "ok":
                    errors.append(r)
            except OSError as e:
                errors.append(repr(e))
            n += 1
        done.append(n)

    ts = [threading.Thread(target=run, daemon=True) for _ in range(threads)]
    for t in ts:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in ts:
        t.join(30)
    return sum(done), errors


@pytest.mark.timeout(SECONDS + 90)
def test_connection_churn_leaks_nothing(broker_factory):
    b = broker_factory().start()
    churn(b.port, 1.0, THREADS)  # warm-up: allocator arenas, runtime threads
    time.sleep(1.0)
    rss0, fds0 = b.rss_bytes(), fd_count(b.pid)
    peak = [rss0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], b.rss_bytes())
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.monotonic()
    cycles, errors = churn(b.port, SECONDS, THREADS)
    elapsed = time.monotonic() - t0
    stop.set()
    sampler.join()
    time.sleep(2.0)  # closing connections linger briefly (see warren_core::net)
    rss1, fds1 = b.rss_bytes(), fd_count(b.pid)
    print(f"\n{cycles} connect/login/close cycles in {elapsed:.1f}s "
          f"({cycles / elapsed:.0f}/s, {THREADS} client threads); broker RSS "
          f"{rss0 / MiB:.1f} MiB before, peak {peak[0] / MiB:.1f}, after "
          f"{rss1 / MiB:.1f}; fds {fds0} -> {fds1}")
    assert not errors, errors[:3]
    assert fds1 <= fds0 + 1, (fds0, fds1)
    assert rss1 <= rss0 + 10 * MiB, (rss0 / MiB, rss1 / MiB)
    # Management sees no leftover connection either.
    assert login(b.port, "guest", "guest") == "ok"
