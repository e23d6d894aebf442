#!/usr/bin/env bash
# One message fanned out to N SSE subscribers, on a fresh Warren, Warren only
# (the quick loop for issue 10's "< 100 ms median at 10,000"; bench/compare.sh
# --only sse-fanout-10k runs the same scenario beside RabbitMQ's Web-STOMP).
#
#   bench/sse_fanout.sh [BIN [N [REPEATS]]]    # default target/release/warren 10000 20
#
# env: AMQP_PORT, WEB_PORT (default: free loopback ports), RUNS (default 1:
# that many fresh brokers back to back), PERF (the `warren` whose `perf` is the
# load generator; default BIN), PERF_ARGS (more `warren perf` options, e.g.
# --sse-tasks for the task-per-feed reader). Prints `warren perf`'s summary (the
# per-round lines dropped), the load generator's CPU time, the broker's CPU
# ticks (setup included) and the load average before each run: numbers from a
# loaded machine are not comparable.
set -euo pipefail
BIN=${1:-target/release/warren}; N=${2:-10000}; R=${3:-20}
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}
ulimit -n "$(ulimit -Hn)"
for run in $(seq 1 "${RUNS:-1}"); do
  AMQP=${AMQP_PORT:-$(free_port)}; WEB=${WEB_PORT:-$(free_port)}
  D=$(mktemp -d)
  echo "== run $run: N=$N repeats=$R; load $(cut -d' ' -f1-3 /proc/loadavg)"
  "$BIN" server --bind 127.0.0.1 --amqp-port "$AMQP" --stomp-port 0 --web-stomp-port "$WEB" \
    --http-port 0 --prometheus-port 0 --mqtt-port 0 --web-mqtt-port 0 --data-dir "$D" \
    --log warn >"$D/log" 2>&1 &
  P=$!
  sleep 0.2; kill -0 "$P" 2>/dev/null || { echo "broker did not start:"; cat "$D/log"; exit 1; }
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$WEB") 2>/dev/null && break; sleep 0.1; done
  t0=$(awk '{print $14+$15}' "/proc/$P/stat")
  /usr/bin/time -f "  load generator cpu: user %U s, sys %S s, wall %e s" \
    "${PERF:-$BIN}" perf --uri "amqp://guest:guest@127.0.0.1:$AMQP/%2F" sse-fanout \
    --web-url "http://127.0.0.1:$WEB" --transport sse --subscribers "$N" --repeats "$R" ${PERF_ARGS:-} 2>&1 |
    grep -v "^round" | tail -9 || true
  t1=$(awk '{print $14+$15}' "/proc/$P/stat")
  echo "  broker cpu: $(( (t1 - t0) * 10 )) ms (setup included)"
  kill "$P"; wait "$P" 2>/dev/null || true; rm -rf "$D"
done
