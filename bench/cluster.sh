#!/usr/bin/env bash
# Quorum queues on a 3-node cluster: Warren vs RabbitMQ, both clusters on this
# machine, one at a time (issue 17's performance targets).
#
#   bench/cluster.sh [--only throughput,idle] [--skip-rabbitmq] [--skip-warren]
#
# (also run by `bench/compare.sh --cluster`). Two scenarios, each on a fresh
# cluster of each broker:
#
# * throughput: one quorum queue (3 members), 1 KiB persistent messages,
#   publisher confirms (window $WINDOW per producer), $PRODUCERS producers all
#   connected to node 1, $CONSUMERS consumers (default 0: publish only)
#   connected to node 2, $DURATION s. Reports confirmed msg/s and the confirm
#   latency percentiles (`warren perf`'s `confirm_latency`), and the ratio.
#   Warren's queue leader is wherever the group put it (first members rotate
#   over the nodes); RabbitMQ 3.10's is the declaring client's node (node 1).
# * idle: 1,000 quorum queues declared through node 1, then left idle
#   $IDLE_SETTLE s: RSS growth of every node divided by the queue count
#   (90 s by default: Warren parks a group idle for 30 s, see
#   docs/CLUSTERING.md "Parking idle queues", and parking 1,000 takes a while)
#   (bench/cluster_idle_queues.py). Target for Warren: <= 20 KiB per queue per node.
#
# RabbitMQ: three private nodes wclbench{1,2,3}@localhost (AMQP
# $RABBIT_PORT_BASE+0..2, default 33100-33102; distribution
# $RABBIT_DIST_BASE+0..2, default 33200-33202; no plugins; data and logs in a
# temporary directory), nodes 2 and 3 joined to node 1 with `rabbitmqctl
# join_cluster`, stopped and deleted afterwards. The shared node
# rabbit@$(hostname) on the default ports is never touched.
# Warren: three release-built nodes on loopback (scripts/cluster_nodes.sh,
# ports from $WARREN_BASE_PORT, default 33000: AMQP 33010-33012, cluster
# 33020-33022, HTTP 33030-33032).
#
# Results: bench/results/cluster-<UTC time>/ (perf JSON, logs, machine.txt,
# table.md). Environment: DURATION (20), PRODUCERS (2), WINDOW (200),
# CONSUMERS (0), IDLE_QUEUES (1000), IDLE_SETTLE (90), WARREN_BIN (default: build
# target/release/warren), OUT.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

only="throughput,idle"
run_rabbit=1
run_warren=1
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only="$2"; shift ;;
    --skip-rabbitmq) run_rabbit=0 ;;
    --skip-warren) run_warren=0 ;;
    -h|--help) sed -n '2,38p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done
want() { [[ ",$only," == *",$1,"* ]]; }

duration=${DURATION:-20}
producers=${PRODUCERS:-2}
window=${WINDOW:-200}
consumers=${CONSUMERS:-0}
idle_queues=${IDLE_QUEUES:-1000}
idle_settle=${IDLE_SETTLE:-90}
rabbit_port_base=${RABBIT_PORT_BASE:-33100}
rabbit_dist_base=${RABBIT_DIST_BASE:-33200}
warren_base=${WARREN_BASE_PORT:-33000}
out=${OUT:-$root/bench/results/cluster-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"

if [ -z "${WARREN_BIN:-}" ]; then
  echo "== building Warren (release)"
  CARGO_INCREMENTAL=0 nice cargo build --release -p warren --quiet
  WARREN_BIN=$root/target/release/warren
fi
warren=$WARREN_BIN

# --- RabbitMQ cluster ----------------------------------------------------------
rabbit_dir=""
rabbit_nodes=()
rabbit_pids=()
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
rabbitmqctl_node() { sudo_if_needed rabbitmqctl -n "$1" "${@:2}"; }
rabbit_node_pid() { rabbitmqctl_node "$1" eval 'list_to_integer(os:getpid()).' 2>/dev/null | tr -dc '0-9'; }

stop_rabbit_cluster() {
  [ -n "$rabbit_dir" ] || return 0
  local n pid
  for n in "${rabbit_nodes[@]}"; do rabbitmqctl_node "$n" stop >/dev/null 2>&1 || true; done
  # `stop` returns once the node is down; make sure the VMs are gone too
  # (only the pids of the nodes started here).
  for pid in "${rabbit_pids[@]}"; do
    [ -n "$pid" ] || continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -rf "$rabbit_dir"
  rabbit_dir="" rabbit_nodes=() rabbit_pids=()
}

start_rabbit_cluster() {
  stop_rabbit_cluster
  rabbit_dir=$(mktemp -d /tmp/rabbitmq-clbench.XXXXXX)
  chmod 777 "$rabbit_dir"
  echo '[].' >"$rabbit_dir/enabled_plugins"
  : >"$rabbit_dir/rabbitmq.conf"
  chmod 644 "$rabbit_dir/enabled_plugins" "$rabbit_dir/rabbitmq.conf"
  local k node
  for k in 1 2 3; do
    node="wclbench$k@localhost"
    rabbit_nodes+=("$node")
    mkdir -p "$rabbit_dir/$k"
    chmod 777 "$rabbit_dir/$k"
    (
      cd /var/lib/rabbitmq
      # As the rabbitmq user (its Erlang cookie, so rabbitmqctl reaches the
      # node), without su/PAM, as compare.sh starts its private node.
      sudo_if_needed env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME="$node" \
        RABBITMQ_NODE_PORT=$((rabbit_port_base + k - 1)) RABBITMQ_DIST_PORT=$((rabbit_dist_base + k - 1)) \
        RABBITMQ_MNESIA_BASE="$rabbit_dir/$k/mnesia" RABBITMQ_LOG_BASE="$rabbit_dir/$k/log" \
        RABBITMQ_PID_FILE="$rabbit_dir/$k/pid" \
        RABBITMQ_ENABLED_PLUGINS_FILE="$rabbit_dir/enabled_plugins" \
        RABBITMQ_CONFIG_FILE="$rabbit_dir/rabbitmq.conf" \
        setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
        /usr/lib/rabbitmq/bin/rabbitmq-server -detached >/dev/null 2>&1
    )
  done
  for node in "${rabbit_nodes[@]}"; do
    local ok=0
    for _ in $(seq 1 120); do
      if rabbitmqctl_node "$node" await_startup --timeout 5 >/dev/null 2>&1; then ok=1; break; fi
      sleep 1
    done
    if [ $ok = 0 ]; then echo "RabbitMQ node $node did not start; logs in $rabbit_dir" >&2; exit 1; fi
    rabbit_pids+=("$(rabbit_node_pid "$node")")
  done
  for node in "${rabbit_nodes[@]:1}"; do
    rabbitmqctl_node "$node" stop_app >/dev/null
    rabbitmqctl_node "$node" join_cluster "${rabbit_nodes[0]}" >/dev/null
    rabbitmqctl_node "$node" start_app >/dev/null
  done
  local running
  running=$(rabbitmqctl_node "${rabbit_nodes[0]}" eval 'length(rabbit_nodes:all_running()).' 2>/dev/null | tr -dc '0-9')
  if [ "$running" != 3 ]; then echo "RabbitMQ cluster has $running running nodes, not 3" >&2; exit 1; fi
}
rabbit_uri() { echo "amqp://guest:guest@127.0.0.1:$((rabbit_port_base + $1 - 1))/%2F"; }

# --- Warren cluster -------------------------------------------------------------
# shellcheck source=../scripts/cluster_nodes.sh
. "$root/scripts/cluster_nodes.sh"
warren_dir=""
start_warren_cluster() {
  warren_dir=$(mktemp -d /tmp/warren-clbench.XXXXXX)
  wc_start "$warren" "$warren_dir" "$warren_base"
}
stop_warren_cluster() { wc_stop; warren_dir=""; }

trap 'stop_warren_cluster; stop_rabbit_cluster' EXIT
ulimit -n 65536 2>/dev/null || true

# --- machine -------------------------------------------------------------------
{
  echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc=$(nproc)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "rabbitmq=$(rabbitmqctl version 2>/dev/null | tail -1)"
  echo "warren=$("$warren" --version) ($(git rev-parse --short HEAD 2>/dev/null || echo unknown))"
  echo "duration_s=$duration producers=$producers window=$window consumers=$consumers"
  echo "idle_queues=$idle_queues idle_settle_s=$idle_settle"
} >"$out/machine.txt"
cat "$out/machine.txt"

perf_args=(--queue-type quorum --queues 1 -x "$producers" -y "$consumers" -s 1024 -f -c "$window" -z "$duration")
[ "$consumers" -gt 0 ] && perf_args+=(-q 1000 -A 100)

run_perf() { # broker uri consumer_uri
  local broker=$1 uri=$2 curi=$3 base="$out/throughput.$1"
  local extra=()
  [ "$consumers" -gt 0 ] && extra=(--consumer-uri "$curi")
  echo "-- throughput on $broker: warren perf --uri $uri ${perf_args[*]} ${extra[*]}  (load $(cut -d' ' -f1-3 /proc/loadavg))"
  {
    echo "command: warren perf --uri '$uri' --json ${perf_args[*]} ${extra[*]}"
    echo "uptime before: $(uptime)"
  } >"$base.log"
  local status=0
  nice -n 0 "$warren" perf --uri "$uri" --json "${perf_args[@]}" "${extra[@]}" >"$base.json" 2>>"$base.log" || status=$?
  echo "uptime after: $(uptime)" >>"$base.log"
  echo "exit status: $status" >>"$base.log"
  [ $status = 0 ] || echo "   exit status $status (see $base.log)"
}

run_idle() { # broker uri pids(comma)
  local broker=$1 uri=$2 pids=$3
  echo "-- idle $idle_queues quorum queues on $broker (load $(cut -d' ' -f1-3 /proc/loadavg))"
  python3 "$root/bench/cluster_idle_queues.py" --uri "$uri" --queues "$idle_queues" \
    --pids "$pids" --settle "$idle_settle" >"$out/idle.$broker.json" 2>"$out/idle.$broker.log" ||
    echo "   failed (see $out/idle.$broker.log)"
}

if [ $run_rabbit = 1 ]; then
  if want throughput; then
    echo "== RabbitMQ 3-node cluster (throughput)"
    start_rabbit_cluster
    run_perf rabbitmq "$(rabbit_uri 1)" "$(rabbit_uri 2)"
    stop_rabbit_cluster
    sleep 3
  fi
  if want idle; then
    echo "== RabbitMQ 3-node cluster (idle queues)"
    start_rabbit_cluster
    run_idle rabbitmq "$(rabbit_uri 1)" "$(IFS=,; echo "${rabbit_pids[*]}")"
    stop_rabbit_cluster
    sleep 3
  fi
fi
if [ $run_warren = 1 ]; then
  if want throughput; then
    echo "== Warren 3-node cluster (throughput)"
    start_warren_cluster
    run_perf warren "$(wc_amqp_uri 1)" "$(wc_amqp_uri 2)"
    # Where the group's leader was (the queue is gone after the run; the
    # leader of the run is in the nodes' logs only): not recorded.
    stop_warren_cluster
    sleep 3
  fi
  if want idle; then
    echo "== Warren 3-node cluster (idle queues)"
    start_warren_cluster
    run_idle warren "$(wc_amqp_uri 1)" "${WC_PID[1]},${WC_PID[2]},${WC_PID[3]}"
    stop_warren_cluster
  fi
fi

python3 "$root/bench/cluster_table.py" "$out" | tee "$out/table.md"
echo "results in $out"
