#!/usr/bin/env python3
"""Extract the rabbitmq_* metrics (and the labels their queries use) from
RabbitMQ's published Grafana dashboards, for
tests/python/prometheus/data/dashboard_metrics.json.

    python3 tools/dashboard_metrics.py /work/.mirror/rabbitmq+rabbitmq-server/repo v3.10.8 \\
        > tests/python/prometheus/data/dashboard_metrics.json

Only names are kept (RabbitMQ's dashboards are MPL-2.0; the list of metric
and label names their queries reference is what Warren must serve).
"""

import json
import re
import subprocess
import sys

DIR = "deps/rabbitmq_prometheus/docker/grafana/dashboards"
IDENT = r"[a-zA-Z_][a-zA-Z0-9_]*"
# by(...), on(...), group_left(...), without(...), ignoring(...)
GROUPING = re.compile(r"\b(by|on|group_left|group_right|without|ignoring)\s*\(([^)]*)\)")
SELECTOR = re.compile(r"(" + IDENT + r")?\s*\{([^}]*)\}")


def queries(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("expr", "query", "definition") and isinstance(v, str):
                yield v
            else:
                yield from queries(v)
    elif isinstance(node, list):
        for x in node:
            yield from queries(x)


def analyse(expr, metrics, joined):
    # label_values(metric, label) (template variables).
    label_values = re.compile(
        r"label_values\(\s*(" + IDENT + r"\s*(?:\{[^}]*\})?)\s*,\s*(" + IDENT + r")\s*\)"
    )
    for selector, label in label_values.findall(expr):
        metrics.setdefault(re.match(IDENT, selector).group(0), set()).add(label)
    expr = label_values.sub(lambda mo: mo.group(1), expr)
    for kind, labels in GROUPING.findall(expr):
        names = {x.strip() for x in labels.split(",") if x.strip()}
        joined.setdefault(kind, set()).update(names)
    rest = GROUPING.sub(" ", expr)
    for m, body in SELECTOR.findall(rest):
        if m.startswith("rabbitmq_"):
            labels = re.findall(r"(" + IDENT + r")\s*(?:=~|!~|!=|=)", body)
            metrics.setdefault(m, set()).update(labels)
    rest = SELECTOR.sub(lambda mo: (mo.group(1) or "") + " ", rest)
    rest = re.sub(r"\[[^\]]*\]", " ", rest)
    rest = re.sub(r"\$" + IDENT, " ", rest)
    for m in re.findall(r"\b(rabbitmq_" + r"[a-zA-Z0-9_]*)\b", rest):
        metrics.setdefault(m, set())


def main():
    repo, tag = sys.argv[1], sys.argv[2]
    names = subprocess.run(["git", "-C", repo, "ls-tree", "--name-only", f"{tag}:{DIR}"],
                           check=True, capture_output=True, text=True).stdout.split()
    out = {"source": f"rabbitmq/rabbitmq-server {tag} {DIR}", "dashboards": {}}
    for name in sorted(names):
        if not name.endswith(".json"):
            continue
        text = subprocess.run(["git", "-C", repo, "show", f"{tag}:{DIR}/{name}"],
                              check=True, capture_output=True, text=True).stdout
        metrics, joined = {}, {}
        for q in queries(json.loads(text)):
            analyse(q, metrics, joined)
        metrics = {m: sorted(v) for m, v in sorted(metrics.items()) if m.startswith("rabbitmq_")}
        if metrics:
            out["dashboards"][name] = {
                "metrics": metrics,
                "joins": {k: sorted(v) for k, v in sorted(joined.items())},
            }
    json.dump(out, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
