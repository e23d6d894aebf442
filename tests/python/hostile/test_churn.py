"""Connection churn: connect, log in, close as fast as the clients can for a
while (``WARREN_CHURN_SECONDS``, 5 by default; the 60 s run at 10,000
cycles/s is recorded in docs/BENCHMARKS.md) → no descriptor leaked and the
broker's RSS back near its baseline afterwards (RabbitMQ's own weak spot:
rabbitmq-server#4871).

The load generator is ``warren perf churn`` (crates/warren-perf/src/churn.rs):
Python clients topped out at ~2,700 cycles/s on this machine. Each cycle is a
full AMQP login (header, start-ok PLAIN, tune-ok, open) and a clean close.
It reads the broker's RSS and descriptor count from /proc before (after a
1 s warm-up), at peak and after (once descriptors are back, plus a settle
time). The rate is only printed: it depends on the machine's load. AMQP
only: the other protocols share the accept, registration and close paths.
"""

import json
import os
import subprocess

import pytest

from rawlogin import login
from warren_harness import WARREN_BIN, MiB

SECONDS = float(os.environ.get("WARREN_CHURN_SECONDS", "5"))
WORKERS = int(os.environ.get("WARREN_CHURN_WORKERS", "16"))


@pytest.mark.timeout(SECONDS + 90)
def test_connection_churn_leaks_nothing(broker_factory):
    b = broker_factory().start()
    r = subprocess.run(
        [WARREN_BIN, "perf", "churn", "--uri", f"amqp://guest:guest@127.0.0.1:{b.port}/%2F",
         "--concurrency", str(WORKERS), "-z", str(SECONDS), "--broker-pid", str(b.pid),
         "--json", "--quiet"],
        capture_output=True, text=True, timeout=SECONDS + 80)
    assert r.stdout, r.stderr
    rep = json.loads(r.stdout)
    print(f"\n{rep['cycles']} connect/login/close cycles in {rep['seconds']:.1f}s "
          f"({rep['rate']:.0f}/s, {WORKERS} workers); broker RSS "
          f"{rep['rss_before_kib'] / 1024:.1f} MiB before, peak {rep['rss_peak_kib'] / 1024:.1f}, "
          f"after {rep['rss_after_kib'] / 1024:.1f}; fds {rep['fds_before']} -> peak "
          f"{rep['fds_peak']} -> {rep['fds_after']}")
    assert rep["errors"] == 0, rep["first_error"]
    assert rep["cycles"] > 0
    assert rep["fds_after"] <= rep["fds_before"], (rep["fds_before"], rep["fds_after"])
    assert rep["rss_after_kib"] * 1024 <= rep["rss_before_kib"] * 1024 + 10 * MiB, \
        (rep["rss_before_kib"], rep["rss_after_kib"])
    # The generator's own verdict agrees (exit status 0).
    assert r.returncode == 0, r.stderr
    # The broker still takes logins.
    assert login(b.port, "guest", "guest") == "ok"
