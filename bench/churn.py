#!/usr/bin/env python3
"""Connection churn benchmark (issue 14): PROCS processes × THREADS threads
connect, log in over AMQP (PLAIN), open the vhost and close, as fast as they
can, for SECONDS, against a broker already running on PORT (given its PID,
its RSS and open descriptors are sampled before, at peak and after).

    python3 bench/churn.py PORT PID [SECONDS=60] [PROCS=4] [THREADS=4]
"""

import multiprocessing
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "python", "hostile"))
from rawlogin import login  # noqa: E402


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def worker(port, seconds, threads, out):
    counts, errors = [], []
    end = time.monotonic() + seconds

    def run():
        n = 0
        while time.monotonic() < end:
            try:
                if login(port, "guest", "guest") != "ok":
                    errors.append(1)
            except OSError:
                errors.append(1)
            n += 1
        counts.append(n)

    ts = [threading.Thread(target=run) for _ in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    out.put((sum(counts), len(errors)))


def main():
    port, pid = int(sys.argv[1]), int(sys.argv[2])
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 60
    procs = int(sys.argv[4]) if len(sys.argv) > 4 else 4
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else 4
    rss0, fds0 = rss(pid), fds(pid)
    q = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=worker, args=(port, seconds, threads, q))
          for _ in range(procs)]
    t0 = time.monotonic()
    for p in ps:
        p.start()
    peak, peak_fds = rss0, fds0
    while any(p.is_alive() for p in ps):
        peak, peak_fds = max(peak, rss(pid)), max(peak_fds, fds(pid))
        time.sleep(0.2)
    elapsed = time.monotonic() - t0
    results = [q.get() for _ in ps]
    cycles, errors = sum(r[0] for r in results), sum(r[1] for r in results)
    time.sleep(3)
    MiB = 1024 * 1024
    print(f"{cycles} cycles in {elapsed:.1f}s = {cycles / elapsed:.0f}/s ({procs}x{threads} "
          f"clients), {errors} errors; RSS {rss0 / MiB:.1f} MiB before, peak {peak / MiB:.1f}, "
          f"after {rss(pid) / MiB:.1f}; fds {fds0} before, peak {peak_fds}, after {fds(pid)}")


if __name__ == "__main__":
    main()
