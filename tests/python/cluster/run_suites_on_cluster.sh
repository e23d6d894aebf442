#!/usr/bin/env bash
# The protocol suites, unchanged, against node n2 of a 3-node cluster
# (issue 17: "Existing AMQP/STOMP/MQTT suites pass unchanged against a node
# of a 3-node cluster").
#
#   tests/python/cluster/run_suites_on_cluster.sh [PYTEST ARGS...]
#
# Starts n1, n2, n3 on loopback (scripts/cluster_nodes.sh; ports from
# WARREN_CLUSTER_BASE_PORT, default 33400: AMQP 33410-33412, cluster
# 33420-33422, HTTP 33430-33432; n2 also STOMP 33440, Web-STOMP 33450, MQTT
# 33460, Web-MQTT 33470, Prometheus 33480; if one is taken, the same layout
# from 33600, then 33800), waits for the metadata leader,
# then runs the same pytest selection scripts/test.sh runs against its single
# node (top-level AMQP scenario files, stomp/, mqtt/, management/,
# prometheus/, streams/), with every address pointing at n2. Queues the
# suites declare are homed on n2 (its clients declare them) and replicated
# as metadata to n1 and n3, so every declare, bind and delete goes through
# the Raft metadata group.
#
# Environment: WARREN_BIN (default target/debug/warren), WARREN_CLUSTER_BASE_PORT,
# SUITES (default: the list above; e.g. SUITES="stomp mqtt"), JUNIT (a path:
# also write a JUnit XML report there), KEEP=1 (keep the data dirs and logs).
# Exit status: pytest's.
set -uo pipefail
cd "$(dirname "$0")/../../.."
root=$PWD
bin=${WARREN_BIN:-$root/target/debug/warren}
base=${WARREN_CLUSTER_BASE_PORT:-33400}
dir=$(mktemp -d /tmp/warren-suites-cluster.XXXXXX)
# shellcheck source=../../../scripts/cluster_nodes.sh
. "$root/scripts/cluster_nodes.sh"
[ "${KEEP:-}" = 1 ] && WC_KEEP=1
trap 'wc_stop' EXIT

# The ports lie in the ephemeral range, where other processes' sockets come
# and go: if one is taken, move the whole layout up by 200 (twice at most).
started=0
for _ in 1 2 3; do
  if wc_start "$bin" "$dir" "$base" full; then started=1; break; fi
  wc_stop
  dir=$(mktemp -d /tmp/warren-suites-cluster.XXXXXX)
  base=$((base + 200))
done
[ $started = 1 ] || exit 1
echo "cluster up: n1 ${WC_AMQP[1]}, n2 ${WC_AMQP[2]}, n3 ${WC_AMQP[3]} (data and logs in $dir)"

targets=()
if [ -n "${SUITES:-}" ]; then
  for s in $SUITES; do targets+=("tests/python/$s"); done
else
  # scripts/test.sh's selection: everything but the suites that start their
  # own brokers (durability, features, hostile, tls, security, cluster).
  targets=(tests/python
    --ignore=tests/python/durability --ignore=tests/python/features --ignore=tests/python/hostile
    --ignore=tests/python/tls --ignore=tests/python/security --ignore=tests/python/cluster)
fi
junit=()
[ -n "${JUNIT:-}" ] && junit=(--junitxml "$JUNIT")

status=0
AMQP_URL="$(wc_amqp_uri 2)" STOMP_PORT=$((base + 40)) WEB_STOMP_PORT=$((base + 50)) \
  MQTT_PORT=$((base + 60)) WEB_MQTT_PORT=$((base + 70)) HTTP_PORT="${WC_HTTP[2]}" \
  MGMT_URL="http://127.0.0.1:${WC_HTTP[2]}" PROMETHEUS_URL="http://127.0.0.1:$((base + 80))" \
  python3 -m pytest "${targets[@]}" -q -p no:cacheprovider -rfE "${junit[@]}" "$@" || status=$?

# The other nodes must still be up and agree on the metadata leader.
for i in 1 2 3; do
  if ! kill -0 "${WC_PID[$i]}" 2>/dev/null; then
    echo "node n$i died during the suites; its log's tail:" >&2
    tail -30 "$dir/n$i.log" >&2
    status=1
  fi
done
for i in 1 2 3; do
  if grep -q -i 'panicked' "$dir/n$i.log"; then
    echo "node n$i logged a panic:" >&2
    grep -i -A5 'panicked' "$dir/n$i.log" | head -20 >&2
    status=1
  fi
done
exit $status
