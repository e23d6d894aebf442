#!/usr/bin/env bash
# Starts a fresh Warren on free loopback ports and runs every example's test.sh
# against it. Each test.sh installs what it needs (idempotent).
#
#   bash examples/run-all.sh            # all examples
#   bash examples/run-all.sh logs patterns
#
# WARREN_BIN picks the binary (default: target/debug/warren, built first).
set -euo pipefail
cd "$(dirname "$0")/.."
examples=("$@")
[ ${#examples[@]} -gt 0 ] || examples=(logs patterns stomp-queues photo-feed realtime-feed iot)
if [ -z "${WARREN_BIN:-}" ]; then
  cargo build --quiet --bin warren
  WARREN_BIN="$PWD/target/debug/warren"
fi
# realtime-feed opens 1,000+ connections to the broker.
[ "$(ulimit -n)" -ge 4096 ] || ulimit -n 4096 2>/dev/null || true
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
data_dir=$(mktemp -d)
pid=
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null || true; fi; rm -rf "$data_dir"' EXIT
# AMQP binds port 0 (the broker picks and logs it); the others are picked here
# and, if someone takes one first, the broker exits and we try again.
for attempt in 1 2 3 4 5; do
  stomp_port=$(free_port); web_port=$(free_port); http_port=$(free_port)
  mqtt_port=$(free_port); web_mqtt_port=$(free_port)
  NO_COLOR=1 "$WARREN_BIN" server --bind 127.0.0.1 --amqp-port 0 --stomp-port "$stomp_port" \
    --web-stomp-port "$web_port" --http-port "$http_port" --prometheus-port 0 \
    --mqtt-port "$mqtt_port" --web-mqtt-port "$web_mqtt_port" \
    --data-dir "$data_dir/data" --log warn,warren_amqp::server=info >"$data_dir/warren.log" 2>&1 &
  pid=$!
  port=
  for _ in $(seq 1 600); do
    port=$(sed -n 's/.*AMQP 0-9-1 listener started.*addr=[^ ]*:\([0-9][0-9]*\).*/\1/p' "$data_dir/warren.log" | head -1)
    [ -n "$port" ] && (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$stomp_port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$web_port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$http_port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$mqtt_port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$web_mqtt_port") 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  kill -0 $pid 2>/dev/null && [ -n "$port" ] && break
  echo "a port was taken; starting the broker again"
done
if [ -z "$port" ] || ! kill -0 $pid 2>/dev/null; then
  echo "the broker did not start:"; cat "$data_dir/warren.log"; exit 1
fi
export AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2F" STOMP_PORT="$stomp_port" \
  WEB_STOMP_PORT="$web_port" HTTP_PORT="$http_port" MQTT_PORT="$mqtt_port" \
  WEB_MQTT_PORT="$web_mqtt_port" WARREN_BIN
passed=0 failed=0 failures=()
for name in "${examples[@]}"; do
  echo "== examples/$name"
  start=$SECONDS
  if bash "examples/$name/test.sh"; then
    passed=$((passed + 1)); echo "-- examples/$name: ok ($((SECONDS - start)) s)"
  else
    failed=$((failed + 1)); failures+=("$name"); echo "-- examples/$name: FAILED ($((SECONDS - start)) s)"
  fi
done
if [ $failed -ne 0 ]; then
  echo "failed: ${failures[*]}"; echo "-- broker log (last 30 lines)"; tail -30 "$data_dir/warren.log"
fi
echo "examples: $passed passed, $failed failed"
[ $failed -eq 0 ]
