#!/usr/bin/env python3
"""Markdown table of a bench/cluster.sh run: bench/cluster_table.py RESULTS_DIR."""

import json
import os
import sys


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def ms(us):
    return f"{us / 1000:.1f} ms"


def main() -> int:
    d = sys.argv[1]
    out = []
    tp = {b: load(os.path.join(d, f"throughput.{b}.json")) for b in ("rabbitmq", "warren")}
    if any(tp.values()):
        out.append("| quorum queue, 3 nodes, 1 KiB persistent, confirms | RabbitMQ 3.10 | Warren | Warren/RabbitMQ |")
        out.append("|---|---:|---:|---:|")

        def row(name, f, ratio=True):
            vals = [f(tp[b]) if tp[b] else None for b in ("rabbitmq", "warren")]
            cells = [("-" if v is None else v[1]) for v in vals]
            r = "-"
            if ratio and all(v is not None and v[0] for v in vals):
                r = f"{vals[1][0] / vals[0][0]:.2f}x"
            out.append(f"| {name} | {cells[0]} | {cells[1]} | {r} |")

        row("confirmed msg/s", lambda r: (r["confirm_rate"], f"{r['confirm_rate']:,.0f}"))
        if any(t and t["consumed"] for t in tp.values()):
            row("consumed msg/s", lambda r: (r["consume_rate"], f"{r['consume_rate']:,.0f}"))
        for p in ("p50", "p99", "max"):
            key = f"{p}_us"
            row(f"confirm latency {p}",
                lambda r, key=key: ((r.get("confirm_latency") or {}).get(key),
                                    ms((r.get("confirm_latency") or {}).get(key, 0))),
                ratio=False)
        row("nacked / unconfirmed",
            lambda r: (None, f"{r['integrity']['nacked']} / {r['integrity']['unconfirmed']}"),
            ratio=False)
        out.append("")
    idle = {b: load(os.path.join(d, f"idle.{b}.json")) for b in ("rabbitmq", "warren")}
    if any(idle.values()):
        n = next(v for v in idle.values() if v)["queues"]
        out.append(f"| {n:,} idle quorum queues: RSS growth per queue | RabbitMQ 3.10 | Warren (target <= 20 KiB) |")
        out.append("|---|---:|---:|")
        for k in range(3):
            cells = []
            for b in ("rabbitmq", "warren"):
                v = idle[b]
                cells.append(f"{v['nodes'][k]['per_queue_kib']:.1f} KiB" if v else "-")
            out.append(f"| node {k + 1} | {cells[0]} | {cells[1]} |")
        cells = [f"{idle[b]['declare_rate']:,.0f}/s" if idle[b] else "-" for b in ("rabbitmq", "warren")]
        out.append(f"| declare rate (one channel, node 1) | {cells[0]} | {cells[1]} |")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
