#!/usr/bin/env python3
"""RSS per idle quorum queue on every node of a cluster.

    cluster_idle_queues.py --uri AMQP_URI --queues 1000 --pids P1,P2,P3 [--settle 15]

Reads each node's RSS (/proc/PID/status VmRSS), declares --queues durable
quorum queues (x-queue-type: quorum, no messages) through --uri, one after
the other on one channel, waits --settle seconds (elections done, nothing
moving), reads the RSS again, deletes the queues, and prints JSON: per node
the RSS before/after and the growth per queue in KiB. Works for any broker
whose nodes' pids are given (Warren, RabbitMQ's beam.smp).
"""

import argparse
import json
import sys
import time

import pika


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uri", required=True)
    ap.add_argument("--queues", type=int, default=1000)
    ap.add_argument("--pids", required=True, help="comma-separated node pids, node 1 first")
    ap.add_argument("--settle", type=float, default=15.0)
    ap.add_argument("--prefix", default="idle-qq-")
    ap.add_argument("--keep", action="store_true", help="do not delete the queues")
    a = ap.parse_args()
    pids = [int(p) for p in a.pids.split(",") if p]

    conn = pika.BlockingConnection(pika.URLParameters(a.uri))
    ch = conn.channel()
    # Settle after the connection is up, so its own memory is in "before".
    time.sleep(2)
    before = [rss_kib(p) for p in pids]
    t0 = time.monotonic()
    for i in range(a.queues):
        ch.queue_declare(f"{a.prefix}{i}", durable=True,
                         arguments={"x-queue-type": "quorum"})
    declare_s = time.monotonic() - t0
    print(f"declared {a.queues} quorum queues in {declare_s:.1f} s", file=sys.stderr)
    time.sleep(a.settle)
    after = [rss_kib(p) for p in pids]
    # A second look: is it still growing (timers, lazy allocations)?
    time.sleep(min(5.0, a.settle))
    later = [rss_kib(p) for p in pids]
    if not a.keep:
        for i in range(a.queues):
            ch.queue_delete(f"{a.prefix}{i}")
    conn.close()
    nodes = []
    for k, pid in enumerate(pids):
        nodes.append({
            "node": k + 1,
            "pid": pid,
            "rss_before_kib": before[k],
            "rss_after_kib": after[k],
            "rss_later_kib": later[k],
            "per_queue_kib": round((later[k] - before[k]) / a.queues, 2),
        })
    print(json.dumps({
        "queues": a.queues,
        "declare_s": round(declare_s, 2),
        "declare_rate": round(a.queues / declare_s, 1) if declare_s else None,
        "settle_s": a.settle,
        "nodes": nodes,
    }, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
