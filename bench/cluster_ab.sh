#!/usr/bin/env bash
# A/B of two Warren builds on the quorum-queue throughput scenario of
# bench/cluster.sh, alternating in one session so both see the same machine
# load:
#
#   bench/cluster_ab.sh BIN_A BIN_B [ROUNDS]
#
# Each run: a fresh 3-node cluster (scripts/cluster_nodes.sh, ports from
# $WARREN_BASE_PORT, default 33000), `warren perf` with the cluster.sh
# settings (PRODUCERS, WINDOW, DURATION; 1 KiB persistent, confirms, one
# quorum queue, producers on node 1), the queue's leader asked from the
# API mid-run (it matters: a leader on node 1 takes no forwarding hop), and
# `uptime` before and after. Results: $OUT (default
# bench/results/cluster-ab-<UTC time>/), one JSON per run and table.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
a=$1 b=$2 rounds=${3:-3}
duration=${DURATION:-20}
producers=${PRODUCERS:-2}
window=${WINDOW:-200}
base=${WARREN_BASE_PORT:-33000}
out=${OUT:-$root/bench/results/cluster-ab-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"
# shellcheck source=../scripts/cluster_nodes.sh
. "$root/scripts/cluster_nodes.sh"
trap 'wc_stop' EXIT
ulimit -n 65536 2>/dev/null || true

run() { # label bin round
  local label=$1 bin=$2 r=$3 f="$out/$1.$3"
  wc_start "$bin" "$(mktemp -d /tmp/warren-clab.XXXXXX)" "$base"
  echo "uptime before: $(uptime)" >"$f.log"
  "$bin" perf --uri "$(wc_amqp_uri 1)" --json --queue-type quorum --queues 1 -x "$producers" -y 0 \
    -s 1024 -f -c "$window" -z "$duration" >"$f.json" 2>>"$f.log" &
  local p=$!
  sleep $((duration / 2))
  curl -s -m 3 "$(wc_http_url 1)/api/queues/%2F" |
    python3 -c 'import json,sys
print(" ".join(str(q.get("leader")) for q in json.load(sys.stdin) if q.get("type") == "quorum"))' >"$f.leader" 2>/dev/null || true
  wait $p || echo "perf exit $?" >>"$f.log"
  echo "uptime after: $(uptime)" >>"$f.log"
  wc_stop
  echo "$label round $r: $(python3 -c 'import json,sys
r = json.load(open(sys.argv[1])); l = r.get("confirm_latency") or {}
print("%.0f msg/s p50 %.1f ms p99 %.1f ms" % (r["confirm_rate"], l.get("p50_us", 0) / 1000, l.get("p99_us", 0) / 1000))' "$f.json") leader $(cat "$f.leader") ($(grep before "$f.log" | sed 's/.*load/load/'))"
  sleep 2
}

for r in $(seq 1 "$rounds"); do
  if [ $((r % 2)) = 1 ]; then run A "$a" "$r"; run B "$b" "$r"; else run B "$b" "$r"; run A "$a" "$r"; fi
done | tee "$out/table.md"
echo "results in $out"
