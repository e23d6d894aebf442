#!/usr/bin/env bash
# Runs Warren's whole test suite: Rust unit tests, Rust integration tests (lapin
# against the real binary) and the Python scenario tests (pika, kombu) against a
# freshly started broker. Installs what it needs; safe to run repeatedly.
set -euo pipefail
cd "$(dirname "$0")/.."

# Python client libraries used by the scenario tests (stomp.py for STOMP).
if ! python3 -c 'import pika, kombu, celery, pytest, pytest_timeout, stomp, websocket, requests, prometheus_client, paho.mqtt' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi

# mosquitto_pub/mosquitto_sub for the MQTT interoperability test (Debian's
# mosquitto-clients; the test skips itself if they cannot be installed).
if ! command -v mosquitto_sub >/dev/null 2>&1; then
  sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  { sudo_if_needed apt-get update -qq && \
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto-clients >/dev/null; } \
    || echo "mosquitto-clients not installed: the mosquitto interop test will be skipped"
fi

# Each stage's heading says when it started (seconds since this script
# began), so a CI log shows where the time went.
stage() { echo "== [$(( SECONDS / 60 ))m$(( SECONDS % 60 ))s] $*"; }

cargo build --quiet --bin warren
export WARREN_BIN="$PWD/target/debug/warren"

stage "cargo test"
cargo test --workspace --quiet 2>&1

stage "python scenario tests"
data_dir=$(mktemp -d)
pid=
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null || true; fi; rm -rf "$data_dir"' EXIT
# AMQP port 0: the broker binds a free port and logs it (a port picked here
# could be taken by someone else before the broker binds it). STOMP's port 0
# switches STOMP off, so its port is picked here, and if someone takes it first
# (the broker exits: "cannot listen ... (STOMP)") we start again with another.
# Only the AMQP listener line is logged at info level.
for attempt in 1 2 3 4 5; do
  stomp_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  web_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  http_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  prom_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mqtt_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  web_mqtt_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  NO_COLOR=1 "$WARREN_BIN" server --bind 127.0.0.1 --amqp-port 0 --stomp-port "$stomp_port" \
    --web-stomp-port "$web_port" --http-port "$http_port" --prometheus-port "$prom_port" --mqtt-port "$mqtt_port" \
    --web-mqtt-port "$web_mqtt_port" \
    --data-dir "$data_dir" --log warn,warren_amqp::server=info >"$data_dir/warren.log" 2>&1 &
  pid=$!
  port=
  for _ in $(seq 1 600); do
    port=$(sed -n 's/.*AMQP 0-9-1 listener started.*addr=[^ ]*:\([0-9][0-9]*\).*/\1/p' "$data_dir/warren.log" | head -1)
    [ -n "$port" ] && (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$stomp_port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$web_port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$http_port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$prom_port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$mqtt_port") 2>/dev/null \
      && (echo >/dev/tcp/127.0.0.1/"$web_mqtt_port") 2>/dev/null && break
    kill -0 $pid 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 $pid 2>/dev/null || ! grep -q -E -- "(STOMP|HTTP API|Prometheus|MQTT|Web-MQTT)\)" "$data_dir/warren.log"; then
    break
  fi
  echo "STOMP port $stomp_port, $web_port, HTTP port $http_port, Prometheus port $prom_port, MQTT port $mqtt_port or Web-MQTT port $web_mqtt_port was taken; starting the broker again"
done
if [ -z "$port" ] || ! kill -0 $pid 2>/dev/null; then
  echo "the broker did not start:"; cat "$data_dir/warren.log"; exit 1
fi
status=0
# Scenario tests against the broker started above (these same files run against
# RabbitMQ; tests/python/stomp are the STOMP ones, with stomp.py and pika;
# tests/python/management the HTTP API's, with requests, pika and rabbitmqadmin),
# then the durability tests, which start and kill their own brokers.
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2F" STOMP_PORT="$stomp_port" WEB_STOMP_PORT="$web_port" \
  MQTT_PORT="$mqtt_port" WEB_MQTT_PORT="$web_mqtt_port" HTTP_PORT="$http_port" MGMT_URL="http://127.0.0.1:$http_port" PROMETHEUS_URL="http://127.0.0.1:$prom_port" \
  python3 -m pytest tests/python -q -p no:cacheprovider \
  --ignore=tests/python/durability --ignore=tests/python/features --ignore=tests/python/hostile \
  --ignore=tests/python/tls --ignore=tests/python/security --ignore=tests/python/cluster || status=$?
stage "node scenario tests (amqplib)"
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2F" bash tests/node/run.sh || status=$?
stage "browser tests (headless Chromium: EventSource on /sse, @stomp/stompjs on /ws, the management UI)"
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2F" WEB_STOMP_PORT="$web_port" WEB_MQTT_PORT="$web_mqtt_port" \
  HTTP_PORT="$http_port" MGMT_URL="http://127.0.0.1:$http_port" \
  BROWSER_ARTIFACTS="${BROWSER_ARTIFACTS:-$data_dir/browser}" bash tests/browser/run.sh || status=$?
stage "feature tests (TTL, dead-lettering, priorities, policies, tracing, Celery, ...)"
AMQP_URL="amqp://guest:guest@127.0.0.1:$port/%2F" BROKER_KIND=warren \
  python3 -m pytest tests/python/features -q -p no:cacheprovider || status=$?
stage "examples (examples/*/test.sh against a fresh broker of their own) and the Debian package"
WARREN_BIN="$WARREN_BIN" bash examples/run-all.sh || status=$?
bash debian/test.sh || status=$?
stage "TLS tests (AMQPS, STOMPS, MQTTS, HTTPS/WSS, client certificates; own brokers)"
WARREN_BIN="$WARREN_BIN" python3 -m pytest tests/python/tls -q -p no:cacheprovider || status=$?
stage "durability tests (kill -9, torn tails, alarms, backlog)"
python3 -m pytest tests/python/durability -q -p no:cacheprovider || status=$?
stage "hostile-client tests (slowloris, churn, auth floods, alarm floods, disk full)"
python3 -m pytest tests/python/hostile -q -p no:cacheprovider || status=$?
stage "security tests (own brokers on the wildcard address: guest loopback-only, vhost isolation, no passwords in logs, HTTP headers and CSRF)"
python3 -m pytest tests/python/security -q -p no:cacheprovider || status=$?
# The fuzz targets build (niced) while the cluster tests run: those mostly
# wait for elections and restarts, and the build takes minutes.
fuzz_build=
if [ "${FUZZ_SECONDS:-10}" != 0 ]; then
  FUZZ_BUILD_ONLY=1 FUZZ_SECONDS="${FUZZ_SECONDS:-10}" nice -n 19 bash scripts/fuzz.sh > "$data_dir/fuzz-build.log" 2>&1 &
  fuzz_build=$!
fi
stage "cluster tests (3 nodes on loopback and in network namespaces: replicated metadata, kill -9, partitions, metadata and quorum-queue history checks under 12 faults each (WARREN_HISTORY_FAULTS; 60 and 32 recorded), snapshot catch-up, node replacement)"
WARREN_BIN="$WARREN_BIN" WARREN_HISTORY_DIR="$data_dir/cluster-history" WARREN_HISTORY_FAULTS="${WARREN_HISTORY_FAULTS:-12}" python3 -m pytest tests/python/cluster -q -p no:cacheprovider || status=$?
stage "fuzz smoke run (every cargo-fuzz target in fuzz/, stable toolchain, ${FUZZ_SECONDS:-10} s each, two at a time; FUZZ_SECONDS=0 skips)"
if [ -n "$fuzz_build" ] && ! wait "$fuzz_build"; then
  echo "fuzz build failed:"; tail -30 "$data_dir/fuzz-build.log"; status=1
fi
# Two targets at a time: one per core.
FUZZ_SECONDS="${FUZZ_SECONDS:-10}" FUZZ_JOBS="${FUZZ_JOBS:-2}" bash scripts/fuzz.sh || status=$?
stage "done (status $status)"
if [ $status -ne 0 ]; then
  echo "-- broker log (last 50 lines)"; tail -50 "$data_dir/warren.log"
fi
exit $status
