# Start and stop a local 3-node Warren cluster from bash (sourced, not run).
#
#   . scripts/cluster_nodes.sh
#   wc_start BIN DIR BASE [full]    # nodes n1..n3; ports from BASE (below);
#                                   # 1 if one is taken (try another BASE)
#   wc_stop                         # SIGTERM (then SIGKILL) the nodes it started, rm DIR
#
# Used by the cluster benchmarks (bench/cluster.sh, bench/cluster_failover.sh)
# and by tests/python/cluster/run_suites_on_cluster.sh. Fixed ports, so that
# a run on a machine where each user has a port range stays inside it:
# node i (1..3) listens on
#   AMQP BASE+10+i-1, cluster BASE+20+i-1, HTTP API BASE+30+i-1,
# and with `full`, n2 (only n2: the node the protocol suites talk to) also on
#   STOMP BASE+40, Web-STOMP BASE+50, MQTT BASE+60, Web-MQTT BASE+70,
#   Prometheus BASE+80.
# Every other listener is switched off (port 0). After wc_start:
# WC_PID[i], WC_AMQP[i], WC_HTTP[i], WC_DIR; wc_amqp_uri i, wc_http_url i.
# Only the processes started here are ever signalled (by pid).

WC_PID=()
WC_AMQP=()
WC_HTTP=()
WC_CLUSTER=()
WC_DIR=""
WC_BIN=""
WC_BASE=0
WC_FULL=""
WC_LOG_LEVEL=${WC_LOG_LEVEL:-warn,warren_amqp::server=info}

wc_amqp_uri() { echo "amqp://guest:guest@127.0.0.1:${WC_AMQP[$1]}/%2F"; }
wc_http_url() { echo "http://guest:guest@127.0.0.1:${WC_HTTP[$1]}"; }

wc_port_open() { (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wc_start_node i: start node n$i (its data in $WC_DIR/n$i, log appended to
# $WC_DIR/n$i.log). Used for the first start and for restarts after a kill.
wc_start_node() {
  local i=$1 seeds="" j extra=()
  for j in 1 2 3; do
    [ "$j" = "$i" ] && continue
    seeds+="${seeds:+,}n$j@127.0.0.1:${WC_CLUSTER[$j]}"
  done
  if [ "$WC_FULL" = full ] && [ "$i" = 2 ]; then
    extra=(--stomp-port $((WC_BASE + 40)) --web-stomp-port $((WC_BASE + 50))
      --mqtt-port $((WC_BASE + 60)) --web-mqtt-port $((WC_BASE + 70))
      --prometheus-port $((WC_BASE + 80)))
  else
    extra=(--stomp-port 0 --web-stomp-port 0 --mqtt-port 0 --web-mqtt-port 0 --prometheus-port 0)
  fi
  # A cookie of this cluster's own (never the user's $HOME/.warren.cookie).
  [ -n "${WC_COOKIE:-}" ] || WC_COOKIE=wc-$RANDOM$RANDOM$RANDOM
  WARREN_CLUSTER_COOKIE=$WC_COOKIE NO_COLOR=1 "$WC_BIN" server --bind 127.0.0.1 --amqp-port "${WC_AMQP[$i]}" \
    --http-port "${WC_HTTP[$i]}" "${extra[@]}" \
    --data-dir "$WC_DIR/n$i" --node-name "n$i" --cluster-port "${WC_CLUSTER[$i]}" \
    --seed-nodes "$seeds" --log "$WC_LOG_LEVEL" >>"$WC_DIR/n$i.log" 2>&1 &
  WC_PID[$i]=$!
}

# wc_wait_node i [timeout_s]: until its AMQP and HTTP ports answer.
wc_wait_node() {
  local i=$1 t=${2:-60} k
  for k in $(seq 1 $((t * 10))); do
    if wc_port_open "${WC_AMQP[$i]}" && wc_port_open "${WC_HTTP[$i]}"; then return 0; fi
    kill -0 "${WC_PID[$i]}" 2>/dev/null || { echo "n$i exited; log:" >&2; tail -20 "$WC_DIR/n$i.log" >&2; return 1; }
    sleep 0.1
  done
  echo "n$i did not open its ports in ${t}s" >&2
  return 1
}

# wc_metadata_leader i: the metadata leader as node i sees it (empty if none).
wc_metadata_leader() {
  curl -s -m 3 "$(wc_http_url "$1")/api/cluster-status" 2>/dev/null |
    python3 -c 'import json,sys
try: print(json.load(sys.stdin).get("metadata_leader") or "")
except Exception: print("")' 2>/dev/null
}

wc_start() { # BIN DIR BASE [full]
  WC_BIN=$1 WC_DIR=$2 WC_BASE=$3 WC_FULL=${4:-}
  mkdir -p "$WC_DIR"
  local i p
  for i in 1 2 3; do
    WC_AMQP[$i]=$((WC_BASE + 10 + i - 1))
    WC_CLUSTER[$i]=$((WC_BASE + 20 + i - 1))
    WC_HTTP[$i]=$((WC_BASE + 30 + i - 1))
  done
  # Every port must be bindable now (these lie in Linux's ephemeral range:
  # another process's outgoing or loopback socket may hold one for long).
  local ports=("${WC_AMQP[@]}" "${WC_CLUSTER[@]}" "${WC_HTTP[@]}")
  [ "$WC_FULL" = full ] && ports+=($((WC_BASE + 40)) $((WC_BASE + 50)) $((WC_BASE + 60)) $((WC_BASE + 70)) $((WC_BASE + 80)))
  if ! python3 - "${ports[@]}" <<'PY'
import socket, sys
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind(("127.0.0.1", int(p)))
    except OSError:
        print(f"port {p} is taken", file=sys.stderr)
        sys.exit(1)
    finally:
        s.close()
PY
  then
    echo "pick another base (now $WC_BASE)" >&2
    return 1
  fi
  for i in 1 2 3; do wc_start_node "$i"; done
  for i in 1 2 3; do
    # These ports lie in Linux's ephemeral range: a client's outgoing socket
    # can hold one for a moment. A node that could not listen is started again.
    local attempt
    for attempt in 1 2 3 4 5; do
      wc_wait_node "$i" && break
      grep -q 'Address already in use' "$WC_DIR/n$i.log" || return 1
      [ "$attempt" = 5 ] && return 1
      echo "n$i: a port was taken, starting it again" >&2
      sleep 1
      wc_start_node "$i"
    done
  done
  # Formed: every node names the same metadata leader.
  local k l1 l2 l3
  for k in $(seq 1 300); do
    l1=$(wc_metadata_leader 1) l2=$(wc_metadata_leader 2) l3=$(wc_metadata_leader 3)
    if [ -n "$l1" ] && [ "$l1" = "$l2" ] && [ "$l2" = "$l3" ]; then return 0; fi
    sleep 0.2
  done
  echo "the cluster did not elect a metadata leader in 60 s" >&2
  return 1
}

# wc_kill i: SIGKILL node i (kill -9), and reap it.
wc_kill() {
  local pid=${WC_PID[$1]:-}
  [ -n "$pid" ] || return 0
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  WC_PID[$1]=""
}

wc_stop() {
  local i pid
  for i in 1 2 3; do
    pid=${WC_PID[$i]:-}
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
  done
  for i in 1 2 3; do
    pid=${WC_PID[$i]:-}
    [ -n "$pid" ] || continue
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    WC_PID[$i]=""
  done
  if [ -n "$WC_DIR" ] && [ -z "${WC_KEEP:-}" ]; then rm -rf "$WC_DIR"; fi
}
