#!/usr/bin/env python3
"""Turn a bench/compare.sh results directory into a Markdown table.

Usage: bench/table.py RESULTS_DIR > table.md

Reads <scenario>.<broker>.json (warren perf --json reports) and machine.txt.
Missing or failed runs show as "n/a" / "error" instead of stopping the table.
"""
import json
import os
import sys


def load(d, name, broker):
    path = os.path.join(d, f"{name}.{broker}.json")
    try:
        with open(path) as f:
            text = f.read().strip()
        return json.loads(text) if text else None
    except (OSError, ValueError):
        return None


def machine(d):
    info = {}
    try:
        with open(os.path.join(d, "machine.txt")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                info[k] = v
    except OSError:
        pass
    return info


def get(report, *path):
    v = report
    for p in path:
        if v is None:
            return None
        v = v.get(p) if isinstance(v, dict) else None
    return v


def fmt_rate(v):
    return "n/a" if v is None else f"{v:,.0f}"


def fmt_us(v):
    if v is None:
        return "n/a"
    return f"{v / 1000:.2f} ms" if v >= 1000 else f"{v:.0f} µs"


def fmt_kib(v):
    if v is None:
        return "n/a"
    return f"{v / 1024:.1f} MiB" if abs(v) >= 1024 else f"{v:.1f} KiB"


# (scenario, label, metric label, extractor, formatter, higher_is_better, target[, reference])
# target: ("ratio_min", 3) | ("ratio_max", 0.1) | ("warren_max_us", 1000) | None
# reference: for a Warren-only scenario (SSE: RabbitMQ has none), the scenario
# whose RabbitMQ run fills the RabbitMQ column (its Web-STOMP equivalent).
ROWS = [
    ("tp-1p1c", "1 producer / 1 consumer, 16 B, transient, auto-ack", "consumed msg/s",
     lambda r: get(r, "consume_rate"), fmt_rate, True, ("ratio_min", 3)),
    ("tp-4p4c", "4 producers / 4 consumers, 4 queues, 16 B, auto-ack", "consumed msg/s",
     lambda r: get(r, "consume_rate"), fmt_rate, True, ("ratio_min", 3)),
    ("latency-10k", "latency at 10,000 msg/s, 16 B, auto-ack", "p99",
     lambda r: get(r, "latency", "p99_us"), fmt_us, False, ("warren_max_us", 1000)),
    ("latency-10k", "", "p50",
     lambda r: get(r, "latency", "p50_us"), fmt_us, False, None),
    ("fanout-1000", "fanout: 1 message to 1000 queues", "median time until all have it",
     lambda r: get(r, "median_us"), fmt_us, False, ("warren_max_us", 2000)),
    ("fanout-1000", "", "max",
     lambda r: get(r, "max_us"), fmt_us, False, None),
    ("connections-1000", "1000 idle connections (1 channel each)", "broker RSS per connection",
     lambda r: get(r, "rss_per_connection_kib"), fmt_kib, False, ("ratio_max", 0.1)),
    ("connections-1000", "", "connections opened/s",
     lambda r: get(r, "open_rate"), fmt_rate, True, None),
    ("queues-4000", "4000 empty queues", "broker RSS per queue",
     lambda r: get(r, "rss_per_queue_kib"), fmt_kib, False, ("ratio_max", 0.1)),
    ("queues-4000", "", "declares/s (one at a time)",
     lambda r: get(r, "declare_rate"), fmt_rate, True, None),
    ("backlog-500k", "backlog: 500k × 16 B, no consumer, then drain", "publish msg/s",
     lambda r: get(r, "publish_rate"), fmt_rate, True, None),
    ("backlog-500k", "", "drain msg/s",
     lambda r: get(r, "drain_rate"), fmt_rate, True, None),
    ("backlog-500k", "", "peak broker RSS",
     lambda r: get(r, "rss_peak_kib"), fmt_kib, False, None),
    ("stream-publish-1k", "stream queue: publish 200k × 1 KiB with confirms (window 1000)", "publish msg/s",
     lambda r: get(r, "publish_rate"), fmt_rate, True, ("ratio_min", 5)),
    ("stream-replay-16b", "stream queue: replay 2M × 16 B from first, 1 consumer (prefetch 2000)", "msg/s",
     lambda r: get(r, "replay_total_rate"), fmt_rate, True, ("warren_min", 1_000_000)),
    ("stream-replay-10c", "stream queue: 10 consumers replay 2M × 16 B at once", "broker RSS growth",
     lambda r: None if get(r, "rss_peak_kib") is None or get(r, "rss_before_kib") is None
     else get(r, "rss_peak_kib") - get(r, "rss_before_kib"), fmt_kib, False, ("warren_max_kib", 50 * 1024)),
    ("stream-replay-10c", "", "msg/s per consumer",
     lambda r: None if get(r, "replay_total_rate") is None else get(r, "replay_total_rate") / 10,
     fmt_rate, True, None),
    ("tp-1p1c-safe", "1p/1c, 16 B persistent, confirms (window 1000), manual ack (prefetch 1000, multi-ack 100)",
     "consumed msg/s", lambda r: get(r, "consume_rate"), fmt_rate, True, None),
    ("tp-1p1c-safe", "", "p99 latency",
     lambda r: get(r, "latency", "p99_us"), fmt_us, False, None),
    ("tls-1p1c", "AMQPS 1p/1c, 16 B, transient, auto-ack (TLS 1.3, AES-256-GCM)", "consumed msg/s",
     lambda r: get(r, "consume_rate"), fmt_rate, True, ("ratio_min", 5)),
    ("stomp-1p1c", "STOMP 1p/1c, 16 B, SEND to /queue, ack:client (prefetch-count 1000, ACK every 100)",
     "consumed msg/s", lambda r: get(r, "consume_rate"), fmt_rate, True, ("ratio_min", 5)),
    ("stomp-1p1c", "", "p99 latency",
     lambda r: get(r, "latency", "p99_us"), fmt_us, False, None),
    ("web-idle-10k", "10,000 idle Web-STOMP subscribers (WebSocket, one connection and /topic/ queue each)",
     "broker RSS per subscriber", lambda r: get(r, "rss_per_subscriber_kib"), fmt_kib, False, ("ratio_max", 0.1)),
    ("web-idle-10k", "", "subscribers opened/s",
     lambda r: get(r, "open_rate"), fmt_rate, True, None),
    ("web-idle-10k-sse", "10,000 idle SSE subscribers (Warren; RabbitMQ has no SSE: its Web-STOMP run)",
     "broker RSS per subscriber", lambda r: get(r, "rss_per_subscriber_kib"), fmt_kib, False, ("ratio_max", 0.1),
     "web-idle-10k"),
    ("web-idle-10k-sse", "", "subscribers opened/s",
     lambda r: get(r, "open_rate"), fmt_rate, True, None, "web-idle-10k"),
    ("sse-fanout-10k", "1 message to 10,000 SSE subscribers (Warren; RabbitMQ has no SSE: its Web-STOMP run)",
     "median time until all have it", lambda r: get(r, "median_us"), fmt_us, False, ("warren_max_us", 100_000),
     "sse-fanout-10k-ws"),
    ("sse-fanout-10k", "", "max", lambda r: get(r, "max_us"), fmt_us, False, None, "sse-fanout-10k-ws"),
    ("sse-fanout-10k", "", "median subscriber",
     lambda r: get(r, "subscriber_median_us"), fmt_us, False, None, "sse-fanout-10k-ws"),
    ("sse-fanout-10k-ws", "1 message to 10,000 Web-STOMP subscribers",
     "median time until all have it", lambda r: get(r, "median_us"), fmt_us, False, None),
    ("sse-fanout-10k-ws", "", "max", lambda r: get(r, "max_us"), fmt_us, False, None),
    ("sse-fanout-10k-ws", "", "median subscriber",
     lambda r: get(r, "subscriber_median_us"), fmt_us, False, None),
]

# Scenarios that run on Warren only (their RabbitMQ column comes from a reference).
WARREN_ONLY = {row[0] for row in ROWS if len(row) > 7} | {"api-poll-10k", "api-poll-10k-poll"}


def verdict(target, rabbit, warren):
    if target is None:
        return "", ""
    kind, value = target
    if kind == "ratio_min":
        text = f"≥ {value}× RabbitMQ"
        ok = rabbit and warren is not None and warren / rabbit >= value
    elif kind == "ratio_max":
        text = f"≤ 1/{round(1 / value)} of RabbitMQ"
        ok = rabbit and warren is not None and warren / rabbit <= value
    elif kind == "warren_min":
        text = f"Warren ≥ {fmt_rate(value)}"
        ok = warren is not None and warren >= value
    elif kind == "warren_max_kib":
        text = f"Warren < {fmt_kib(value)}"
        ok = warren is not None and warren < value
    else:
        text = f"Warren < {fmt_us(value)}"
        ok = warren is not None and warren < value
    return text, ("met" if ok else "**missed**")


def integrity(report):
    i = get(report, "integrity")
    if not i or not i.get("checked", True):
        return None
    bad = {k: i.get(k, 0) for k in ("lost", "duplicated", "reordered", "unexpected") if i.get(k, 0)}
    return bad


def api_poll(d):
    """Warren's publish rate with 10,000 queues, without and with the
    management API polled every second; target: < 5% drop."""
    base, polled = load(d, "api-poll-10k", "warren"), load(d, "api-poll-10k-poll", "warren")
    if base is None and polled is None:
        return []
    out = ["", "Management API polling (Warren, 1 producer, 10,000 queues, no consumer):", "",
           "| Run | publish msg/s | Drop | Target | |", "|---|---:|---:|---|---|"]
    b = get(base, "publish_rate") if base else None
    p = get(polled, "publish_rate") if polled else None
    out.append(f"| not polled | {fmt_rate(b) if b else 'error'} | | | |")
    if b and p:
        drop = (b - p) / b * 100
        out.append(f"| API polled every 1 s | {fmt_rate(p)} | {drop:.1f}% | < 5% | {'met' if drop < 5 else '**missed**'} |")
    else:
        out.append(f"| API polled every 1 s | {fmt_rate(p) if p else 'error'} | n/a | < 5% | |")
    eps = get(polled, "api_poll", "endpoints") if polled else None
    if eps:
        out += ["", "| Endpoint | requests | failed | median | p95 | max |", "|---|---:|---:|---:|---:|---:|"]
        for e in eps:
            out.append(f"| `{e['path']}` | {e['requests']} | {e['failures']} | "
                       f"{fmt_us(e['median_ms'] * 1000)} | {fmt_us(e['p95_ms'] * 1000)} | {fmt_us(e['max_ms'] * 1000)} |")
    return out


# MQTT: three brokers (RabbitMQ's rabbitmq_mqtt, mosquitto, Warren).
# (scenario, label, metric, extractor, formatter, target)
# target: ("beat", 5) = Warren >= 5x RabbitMQ and ahead of mosquitto;
# ("warren_max_kib", 4) | ("warren_min", 20000) | ("warren_max_us", 5000) | None
MQTT_ROWS = [
    ("mqtt-qos0-1p1c", "MQTT 1 publisher / 1 subscriber, QoS 0, 16 B", "received msg/s",
     lambda r: get(r, "consume_rate"), fmt_rate, ("beat", 5)),
    ("mqtt-qos0-1p1c", "", "p99 latency", lambda r: get(r, "latency", "p99_us"), fmt_us, None),
    ("mqtt-qos1-1p1c", "MQTT 1 publisher / 1 subscriber, QoS 1 (1000 unacked PUBLISHes), 16 B",
     "received msg/s", lambda r: get(r, "consume_rate"), fmt_rate, ("beat", 5)),
    ("mqtt-qos1-1p1c", "", "p99 latency", lambda r: get(r, "latency", "p99_us"), fmt_us, None),
    ("mqtt-idle-16k", "16,000 idle MQTT connections (clean session, no keep-alive)",
     "broker RSS per connection", lambda r: get(r, "rss_per_connection_kib"), fmt_kib,
     ("warren_max_kib", 4)),
    ("mqtt-idle-16k", "", "connections/s to CONNACK (64 at a time)",
     lambda r: get(r, "connect_rate"), fmt_rate, ("warren_min", 20000)),
    ("mqtt-fanin-10k", "fan-in: 10,000 MQTT publishers at 1 msg/s, 1 subscriber, QoS 0",
     "p99 latency", lambda r: get(r, "latency", "p99_us"), fmt_us, ("warren_max_us", 5000)),
    ("mqtt-fanin-10k", "", "p50 latency", lambda r: get(r, "latency", "p50_us"), fmt_us, None),
    ("mqtt-fanin-10k", "", "received msg/s", lambda r: get(r, "consume_rate"), fmt_rate, None),
]
MQTT_BROKERS = ("rabbitmq", "mosquitto", "warren")


def ratio(w, other):
    if not other or w is None:
        return "n/a"
    x = w / other
    return f"{x:.2f}×" if x >= 1 else f"{x:.3f}×"


def mqtt_verdict(target, r, m, w):
    if target is None:
        return "", ""
    kind, value = target
    if kind == "beat":
        ok = bool(r and m and w is not None and w / r >= value and w > m)
        return f"≥ {value}× RabbitMQ, > mosquitto", "met" if ok else "**missed**"
    if kind == "warren_max_kib":
        return f"Warren ≤ {value} KiB", "met" if w is not None and w <= value else "**missed**"
    if kind == "warren_min":
        return f"Warren ≥ {value:,}/s", "met" if w is not None and w >= value else "**missed**"
    return f"Warren < {fmt_us(value)}", "met" if w is not None and w < value else "**missed**"


def mqtt_table(d, m):
    ran = [n for n in dict.fromkeys(row[0] for row in MQTT_ROWS)
           if any(os.path.exists(os.path.join(d, f"{n}.{b}.log")) for b in MQTT_BROKERS)]
    if not ran:
        return []
    out = ["", f"MQTT 3.1.1 (RabbitMQ's rabbitmq_mqtt, mosquitto {m.get('mosquitto', '?')}, Warren):", "",
           "| Scenario | Metric | RabbitMQ | mosquitto | Warren | Warren / RabbitMQ | Warren / mosquitto | Target | |",
           "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for name, label, metric, ex, f, target in MQTT_ROWS:
        if name not in ran:
            continue
        reps = [load(d, name, b) for b in MQTT_BROKERS]
        r, mo, w = [ex(x) if x else None for x in reps]
        cells = [f(v) if rep else "error" for v, rep in zip((r, mo, w), reps)]
        ttext, ok = mqtt_verdict(target, r, mo, w)
        out.append(f"| {label} | {metric} | {' | '.join(cells)} | {ratio(w, r)} | {ratio(w, mo)} | {ttext} | {ok} |")
    return out


def main():
    d = sys.argv[1]
    m = machine(d)
    out = []
    out.append(
        f"Run {m.get('date_utc', '?')} on {m.get('nproc', '?')} × {m.get('cpu', '?')}, "
        f"{m.get('ram_gib', '?')} GiB RAM, {m.get('os', '?')} (kernel {m.get('kernel', '?')}). "
        f"RabbitMQ {m.get('rabbitmq', '?')} (Erlang/OTP {m.get('erlang', '?')}), "
        f"Warren {m.get('warren', '?')}; throughput scenarios {m.get('duration_s', '?')} s each."
    )
    out.append("")
    ran = {n for n in {row[0] for row in ROWS} | {"api-poll-10k", "api-poll-10k-poll"}
           if any(os.path.exists(os.path.join(d, f"{n}.{b}.log")) for b in ("rabbitmq", "warren"))}
    if ran & {row[0] for row in ROWS}:
        out.append("| Scenario | Metric | RabbitMQ | Warren | Warren / RabbitMQ | Target | |")
        out.append("|---|---|---:|---:|---:|---|---|")
    for row in ROWS:
        name, label, metric, ex, f, higher, target = row[:7]
        reference = row[7] if len(row) > 7 else name
        if name not in ran:
            continue
        r, w = load(d, reference, "rabbitmq"), load(d, name, "warren")
        rv = ex(r) if r else None
        wv = ex(w) if w else None
        if rv and wv is not None:
            x = wv / rv
            ratio = f"{x:.2f}×" if x >= 1 else f"{x:.3f}×"
        else:
            ratio = "n/a"
        ttext, ok = verdict(target, rv, wv)
        out.append(f"| {label} | {metric} | {f(rv) if r else 'error'} | {f(wv) if w else 'error'} | {ratio} | {ttext} | {ok} |")
    out.append("")
    problems = []
    for name in sorted(ran):
        for broker in ("rabbitmq", "warren"):
            if broker == "rabbitmq" and name in WARREN_ONLY:
                continue
            rep = load(d, name, broker)
            if rep is None:
                problems.append(f"{name} on {broker}: no report (run failed, see its .log)")
                continue
            if rep.get("still_open", rep.get("subscribers")) != rep.get("subscribers"):
                problems.append(f"{name} on {broker}: the broker closed "
                                f"{rep['subscribers'] - rep['still_open']} of {rep['subscribers']} subscribers")
            bad = integrity(rep)
            if bad:
                problems.append(f"{name} on {broker}: " + ", ".join(f"{v} {k}" for k, v in bad.items()))
    mqtt_ran = {row[0] for row in MQTT_ROWS
                if any(os.path.exists(os.path.join(d, f"{row[0]}.{b}.log")) for b in MQTT_BROKERS)}
    for name in sorted(mqtt_ran):
        for broker in MQTT_BROKERS:
            rep = load(d, name, broker)
            if rep is None:
                problems.append(f"{name} on {broker}: no report (run failed, see its .log)")
                continue
            if rep.get("still_open", rep.get("connections")) != rep.get("connections"):
                problems.append(f"{name} on {broker}: the broker closed "
                                f"{rep['connections'] - rep['still_open']} of {rep['connections']} connections")
            bad = integrity(rep)
            if bad:
                problems.append(f"{name} on {broker}: " + ", ".join(f"{v} {k}" for k, v in bad.items()))
    out.extend(mqtt_table(d, m))
    out.append("")
    out.extend(api_poll(d))
    if problems:
        out.append("Integrity problems / failed runs:")
        out.extend(f"- {p}" for p in problems)
    else:
        out.append("Integrity: every message of every run was accounted for "
                   "(0 lost, 0 duplicated, 0 reordered, on both brokers).")
    print("\n".join(out))


if __name__ == "__main__":
    main()
