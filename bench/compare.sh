#!/usr/bin/env bash
# Side-by-side benchmark: the same `warren perf` scenarios against RabbitMQ and
# against Warren, on this machine, one broker at a time.
#
#   bench/compare.sh [--update-docs] [--only NAME[,NAME...]] [--reuse-rabbitmq] [--cluster]
#
# * --cluster (or --only qq-3node) also runs the cluster row, bench/cluster.sh:
#   a 3-node RabbitMQ 3.10 cluster and a 3-node Warren cluster on this
#   machine, one after the other; a quorum queue with 1 KiB persistent
#   messages and confirms (msg/s, p99 confirm latency, ratio) and RSS per
#   idle quorum queue per node. Its results go to <results>/cluster/ and its
#   table is appended to table.md. --only qq-3node runs nothing else.
# * Installs RabbitMQ from Debian's packages if it is missing.
# * By default starts a private RabbitMQ node for the benchmark
#   (warrenbench@localhost on port 5673, data in a temporary directory), and
#   restarts it before every scenario, exactly as it does Warren: every number
#   of both brokers comes from a fresh process. A node that has already served
#   work keeps the memory its VM grabbed, which would make RSS deltas
#   meaningless, and restarting the shared node on 5672 would disturb whoever
#   else uses it. --reuse-rabbitmq (or RABBIT_URI=...) measures a running
#   broker instead (default the one on localhost:5672, started if down).
# * The private node gets its own enabled-plugins file: none, except for
#   STOMP scenarios (stomp-*), which enable rabbitmq_stomp on port 61614 (the
#   shared node may use 61613, 5672 and 25672). Warren gets a free STOMP port
#   for those. With --reuse-rabbitmq, STOMP scenarios use RABBIT_STOMP_URI
#   (default stomp://guest:guest@127.0.0.1:61613/).
# * Web scenarios (web-idle-*, sse-fanout-*) enable rabbitmq_web_stomp on
#   port 15684 instead (never 15674, the shared node's; 15675 is Web-MQTT's
#   default), STOMP again on 61614; Warren gets a free web port. RabbitMQ has
#   no SSE: scenarios with --transport sse run on Warren only, and the table
#   compares them with RabbitMQ's Web-STOMP run of the same group
#   (web-idle-10k-sse with web-idle-10k, sse-fanout-10k with sse-fanout-10k-ws).
#   --only takes a group name for all of its runs. With --reuse-rabbitmq, web
#   scenarios use RABBIT_WEB_URL (default ws://127.0.0.1:15674/ws).
# * MQTT scenarios (mqtt-*) enable rabbitmq_mqtt on port 18830 (never 1883,
#   the shared node's) and run a third broker too: mosquitto (Debian package,
#   /usr/sbin/mosquitto, installed if missing), our own instance on port 18831
#   with a generated config (no persistence, max_connections -1, unlimited
#   queued messages so that a slow subscriber is not a lost message), never
#   the system service. Warren gets a free MQTT port. All three speak MQTT
#   3.1.1. With --reuse-rabbitmq, MQTT scenarios use RABBIT_MQTT_URI (default
#   mqtt://guest:guest@127.0.0.1:1883/).
# * TLS scenarios (tls-*): test certificates are made with openssl in a
#   temporary directory (a CA and a server certificate for 127.0.0.1); the
#   private node gets an AMQPS listener on port 5675 (listeners.ssl, verify
#   none) with them, Warren --amqps-port on a free port with the same ones.
#   perf connects with amqps:// and --tls-ca.
# * Builds Warren in release mode; a fresh Warren (temporary data directory,
#   free port) is started for each scenario.
# * Runs each scenario against RabbitMQ, then against Warren, never both at
#   once (the machine has few cores), with a pause in between.
# * Writes every report (JSON) and log to bench/results/<UTC time>/, then a
#   Markdown table (table.md) with the ratio Warren/RabbitMQ and the targets;
#   --update-docs also splices it into docs/BENCHMARKS.md.
#
# Environment: DURATION (seconds per throughput scenario, default 10),
# RABBIT_URI (implies --reuse-rabbitmq), RABBIT_STOMP_URI, RABBIT_WEB_URL, RABBIT_MQTT_URI,
# CARGO_TARGET_DIR, OUT (results dir).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

update_docs=0
cluster=0
only=""
reuse_rabbit=0
[ -n "${RABBIT_URI:-}" ] && reuse_rabbit=1
while [ $# -gt 0 ]; do
  case "$1" in
    --update-docs) update_docs=1 ;;
    --only) only="$2"; shift ;;
    --reuse-rabbitmq) reuse_rabbit=1 ;;
    --cluster) cluster=1 ;;
    -h|--help) sed -n '2,54p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
  shift
done

duration=${DURATION:-10}
target_dir=${CARGO_TARGET_DIR:-$root/target}
out=${OUT:-$root/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$out"

# Only the cluster row: nothing of the single-node set-up below is needed.
if [ "$only" = qq-3node ]; then
  OUT="$out/cluster" DURATION="${CLUSTER_DURATION:-20}" exec bash "$root/bench/cluster.sh"
fi

sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

# --- RabbitMQ -----------------------------------------------------------------
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  echo "== installing RabbitMQ (Debian package)"
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server
fi

# Each can be moved with BENCH_RABBIT_NODE / BENCH_RABBIT_PORT /
# BENCH_RABBIT_DIST_PORT / BENCH_RABBIT_STOMP_PORT / BENCH_RABBIT_WEB_PORT /
# BENCH_RABBIT_MQTT_PORT / BENCH_RABBIT_TLS_PORT / BENCH_MOSQUITTO_PORT (a
# machine where each user has a port range; two runs at once need two node
# names). BENCH_PORT_RANGE=LOW-HIGH makes Warren's free ports come from there.
bench_node=${BENCH_RABBIT_NODE:-warrenbench@localhost}
bench_port=${BENCH_RABBIT_PORT:-5673}
bench_dist_port=${BENCH_RABBIT_DIST_PORT:-$((bench_port + 20000))}
# STOMP listener of the private node; never 61613 (the shared node's).
bench_stomp_port=${BENCH_RABBIT_STOMP_PORT:-61614}
# Web-STOMP listener of the private node; never 15674 (the shared node's).
bench_web_port=${BENCH_RABBIT_WEB_PORT:-15684}
# MQTT listeners of the private node and of mosquitto; never 1883 (the shared node's).
bench_mqtt_port=${BENCH_RABBIT_MQTT_PORT:-18830}
# AMQPS listener of the private node (never 5671, RabbitMQ's default).
bench_tls_port=${BENCH_RABBIT_TLS_PORT:-5675}
tls_dir=""
mosquitto_port=${BENCH_MOSQUITTO_PORT:-18831}
rabbit_mqtt_uri=""
rabbit_dir=""
rabbit_pid=""
rabbit_uri=""
rabbit_stomp_uri=""
rabbit_web_url=""
rabbit_tls_uri=""
rabbitmqctl_node() { sudo_if_needed rabbitmqctl -n "$1" "${@:2}"; }
node_pid() { rabbitmqctl_node "$1" eval 'list_to_integer(os:getpid()).' 2>/dev/null | tr -dc '0-9'; }

stop_rabbit() {
  if [ $reuse_rabbit = 0 ] && [ -n "$rabbit_dir" ]; then
    rabbitmqctl_node "$bench_node" stop >/dev/null 2>&1 || true
    # `stop` returns once the node is down; make sure the VM is gone too.
    if [ -n "$rabbit_pid" ]; then
      for _ in $(seq 1 100); do kill -0 "$rabbit_pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -rf "$rabbit_dir"
    rabbit_dir=""
    rabbit_pid=""
  fi
}

start_rabbit() { # [stomp|web]: also enable rabbitmq_stomp / rabbitmq_web_stomp (private node only)
  local stomp=${1:-}
  if [ $reuse_rabbit = 1 ]; then
    if [ -z "$rabbit_uri" ]; then
      rabbit_uri=${RABBIT_URI:-amqp://guest:guest@127.0.0.1:5672/%2F}
      rabbit_stomp_uri=${RABBIT_STOMP_URI:-stomp://guest:guest@127.0.0.1:61613/}
      rabbit_web_url=${RABBIT_WEB_URL:-ws://127.0.0.1:15674/ws}
      rabbit_mqtt_uri=${RABBIT_MQTT_URI:-mqtt://guest:guest@127.0.0.1:1883/}
      rabbit_tls_uri=${RABBIT_TLS_URI:-amqps://guest:guest@127.0.0.1:5671/%2F}
      if [ -z "${RABBIT_URI:-}" ] && ! sudo_if_needed rabbitmqctl status >/dev/null 2>&1; then
        echo "== starting RabbitMQ"
        sudo_if_needed rabbitmq-server -detached
        sudo_if_needed rabbitmqctl await_startup --timeout 120 >/dev/null
      fi
      rabbit_pid=${RABBIT_PID:-$(node_pid "rabbit@$(hostname -s)")}
      [ -n "$rabbit_pid" ] || rabbit_pid=$(pgrep -f 'beam.smp.*rabbit' | head -1)
    fi
    return
  fi
  stop_rabbit
  rabbit_dir=$(mktemp -d /tmp/rabbitmq-bench.XXXXXX)
  chmod 777 "$rabbit_dir"
  # Its own plugins file and config: /etc/rabbitmq/enabled_plugins belongs to
  # the shared node (and may enable STOMP on 61613, which this node must not
  # try to bind).
  if [ "$stomp" = stomp ]; then
    echo '[rabbitmq_stomp].' >"$rabbit_dir/enabled_plugins"
    echo "stomp.listeners.tcp.1 = 127.0.0.1:$bench_stomp_port" >"$rabbit_dir/rabbitmq.conf"
  elif [ "$stomp" = web ]; then
    # Web-STOMP pulls in rabbitmq_stomp, whose listener must not take 61613.
    echo '[rabbitmq_web_stomp].' >"$rabbit_dir/enabled_plugins"
    {
      echo "stomp.listeners.tcp.1 = 127.0.0.1:$bench_stomp_port"
      echo "web_stomp.tcp.port = $bench_web_port"
      echo "web_stomp.tcp.ip = 127.0.0.1"
    } >"$rabbit_dir/rabbitmq.conf"
  elif [ "$stomp" = tls ]; then
    echo '[].' >"$rabbit_dir/enabled_plugins"
    {
      echo "listeners.ssl.1 = 127.0.0.1:$bench_tls_port"
      echo "ssl_options.cacertfile = $tls_dir/ca_certificate.pem"
      echo "ssl_options.certfile = $tls_dir/server_certificate.pem"
      echo "ssl_options.keyfile = $tls_dir/server_key.pem"
      echo "ssl_options.verify = verify_none"
    } >"$rabbit_dir/rabbitmq.conf"
  elif [ "$stomp" = mqtt ]; then
    echo '[rabbitmq_mqtt].' >"$rabbit_dir/enabled_plugins"
    echo "mqtt.listeners.tcp.1 = 127.0.0.1:$bench_mqtt_port" >"$rabbit_dir/rabbitmq.conf"
  else
    echo '[].' >"$rabbit_dir/enabled_plugins"
    : >"$rabbit_dir/rabbitmq.conf"
  fi
  chmod 644 "$rabbit_dir/enabled_plugins" "$rabbit_dir/rabbitmq.conf"
  # Start the node as the rabbitmq user without going through su/PAM (which is
  # what Debian's rabbitmq-server wrapper does, and which resets the open-file
  # limit to 1024: too few for the 1000-connection scenario). The node
  # inherits this script's raised limit instead.
  local nofile
  nofile=$(ulimit -Hn)
  [ "$nofile" = unlimited ] && nofile=65536
  [ "$nofile" -gt 65536 ] && nofile=65536
  (
    ulimit -n "$nofile" 2>/dev/null || true
    cd /var/lib/rabbitmq
    sudo_if_needed env HOME=/var/lib/rabbitmq RABBITMQ_NODENAME="$bench_node" \
      RABBITMQ_NODE_PORT="$bench_port" RABBITMQ_DIST_PORT="$bench_dist_port" \
      RABBITMQ_MNESIA_BASE="$rabbit_dir/mnesia" RABBITMQ_LOG_BASE="$rabbit_dir/log" \
      RABBITMQ_PID_FILE="$rabbit_dir/pid" \
      RABBITMQ_ENABLED_PLUGINS_FILE="$rabbit_dir/enabled_plugins" \
      RABBITMQ_CONFIG_FILE="$rabbit_dir/rabbitmq.conf" \
      setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups \
      /usr/lib/rabbitmq/bin/rabbitmq-server -detached >/dev/null 2>&1
  )
  # -detached returns before the node has registered; wait for it to answer.
  local ok=0
  for _ in $(seq 1 120); do
    if rabbitmqctl_node "$bench_node" await_startup --timeout 5 >/dev/null 2>&1; then ok=1; break; fi
    sleep 1
  done
  if [ $ok = 0 ]; then
    echo "RabbitMQ node $bench_node did not start; logs in $rabbit_dir/log" >&2
    exit 1
  fi
  rabbit_pid=$(node_pid "$bench_node")
  rabbit_uri="amqp://guest:guest@127.0.0.1:$bench_port/%2F"
  rabbit_stomp_uri="stomp://guest:guest@127.0.0.1:$bench_stomp_port/"
  rabbit_web_url="ws://127.0.0.1:$bench_web_port/ws"
  rabbit_mqtt_uri="mqtt://guest:guest@127.0.0.1:$bench_mqtt_port/"
  local plugin_port=""
  [ "$stomp" = mqtt ] && plugin_port=$bench_mqtt_port
  [ "$stomp" = stomp ] && plugin_port=$bench_stomp_port
  [ "$stomp" = web ] && plugin_port=$bench_web_port
  [ "$stomp" = tls ] && plugin_port=$bench_tls_port
  rabbit_tls_uri="amqps://guest:guest@127.0.0.1:$bench_tls_port/%2F"
  if [ -n "$plugin_port" ]; then
    # The plugin's listener comes up after await_startup; wait for it.
    for _ in $(seq 1 100); do
      (echo >/dev/tcp/127.0.0.1/"$plugin_port") 2>/dev/null && break
      sleep 0.1
    done
  fi
}

start_rabbit
if [ $reuse_rabbit = 1 ]; then ctl_node="rabbit@$(hostname -s)"; else ctl_node=$bench_node; fi
rabbit_version=$(rabbitmqctl_node "$ctl_node" version 2>/dev/null | tail -1)
erlang_version=$(rabbitmqctl_node "$ctl_node" eval 'erlang:system_info(otp_release).' 2>/dev/null | tr -d '"')
rabbit_mode=$([ $reuse_rabbit = 1 ] && echo "running broker $rabbit_uri (not restarted)" || echo "private node, fresh for every scenario")
stop_rabbit

# --- mosquitto (MQTT scenarios) ------------------------------------------------
if ! [ -x /usr/sbin/mosquitto ]; then
  echo "== installing mosquitto (Debian package; its service is not used)"
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto
fi
# (-h exits with status 3.)
mosquitto_version=$( (/usr/sbin/mosquitto -h 2>/dev/null || true) | head -1 | sed 's/^mosquitto version //')
mosquitto_pid=""
mosquitto_dir=""
mosquitto_uri="mqtt://guest:guest@127.0.0.1:$mosquitto_port/"
stop_mosquitto() {
  if [ -n "$mosquitto_pid" ]; then
    kill "$mosquitto_pid" 2>/dev/null || true
    wait "$mosquitto_pid" 2>/dev/null || true
    mosquitto_pid=""
  fi
  if [ -n "$mosquitto_dir" ]; then rm -rf "$mosquitto_dir"; mosquitto_dir=""; fi
}
start_mosquitto() {
  stop_mosquitto
  mosquitto_dir=$(mktemp -d /tmp/mosquitto-bench.XXXXXX)
  chmod 755 "$mosquitto_dir"
  # Runs in the foreground as our child (not the Debian service); as root it
  # drops to the mosquitto user. No persistence: a transient benchmark, as
  # Warren's and RabbitMQ's MQTT queues are here.
  cat >"$mosquitto_dir/mosquitto.conf" <<EOF
listener $mosquitto_port 127.0.0.1
allow_anonymous true
persistence false
max_connections -1
max_queued_messages 0
log_dest stderr
log_type error
log_type warning
EOF
  /usr/sbin/mosquitto -c "$mosquitto_dir/mosquitto.conf" >"$mosquitto_dir/mosquitto.log" 2>&1 &
  mosquitto_pid=$!
  for _ in $(seq 1 100); do
    (echo >/dev/tcp/127.0.0.1/"$mosquitto_port") 2>/dev/null && break
    sleep 0.1
  done
}

# --- Warren -------------------------------------------------------------------
echo "== building Warren (release)"
cargo build --release -p warren --quiet
warren="$target_dir/release/warren"
# The commit: from git, or from a COMMIT file when run from an exported tree.
if commit=$(git rev-parse --short HEAD 2>/dev/null); then
  git diff --quiet HEAD 2>/dev/null || commit="$commit+local changes"
else
  commit=$(cut -c1-7 COMMIT 2>/dev/null || echo unknown)
fi
warren_version="$("$warren" --version) ($commit)"

# A thousand idle connections need a thousand file descriptors on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

warren_pid=""
warren_dir=""
warren_uri=""
warren_stomp_uri=""
warren_web_url=""
warren_http_url=""
stop_warren() {
  if [ -n "$warren_pid" ]; then
    kill "$warren_pid" 2>/dev/null || true
    wait "$warren_pid" 2>/dev/null || true
    warren_pid=""
  fi
  if [ -n "$warren_dir" ]; then rm -rf "$warren_dir"; warren_dir=""; fi
}
trap 'stop_warren; stop_rabbit; stop_mosquitto; [ -z "$tls_dir" ] || rm -rf "$tls_dir"' EXIT
make_tls_certs() { # a CA and a server certificate for 127.0.0.1/localhost, readable by rabbitmq
  [ -n "$tls_dir" ] && return
  tls_dir=$(mktemp -d /tmp/warren-bench-tls.XXXXXX)
  chmod 755 "$tls_dir"
  (
    cd "$tls_dir"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca_key.pem -out ca_certificate.pem \
      -days 30 -subj "/CN=Warren bench CA" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server_key.pem -out server.csr \
      -subj "/CN=localhost" 2>/dev/null
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' >server.ext
    openssl x509 -req -in server.csr -CA ca_certificate.pem -CAkey ca_key.pem -CAcreateserial \
      -out server_certificate.pem -days 30 -extfile server.ext 2>/dev/null
    chmod 644 ./*.pem
  )
}
free_port() {
  python3 - "${BENCH_PORT_RANGE:-}" <<'PY'
import random, socket, sys
spec = sys.argv[1]
ports = [0]
if spec:
    lo, hi = map(int, spec.split("-"))
    ports = random.sample(range(lo, hi + 1), hi - lo + 1)
for p in ports:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    print(s.getsockname()[1])
    break
PY
}
start_warren() { # [stomp|web|http|mqtt]: also listen for STOMP / Web-STOMP and SSE / the management API / MQTT, on a free port
  stop_warren
  warren_dir=$(mktemp -d /tmp/warren-bench.XXXXXX)
  local port stomp_port=0 web_port=0 http_port=0 mqtt_port=0 tls_port=0 tls_args=()
  port=$(free_port)
  if [ "${1:-}" = tls ]; then
    tls_port=$(free_port)
    tls_args=(--tls-cert "$tls_dir/server_certificate.pem" --tls-key "$tls_dir/server_key.pem"
      --amqps-port "$tls_port" --stomps-port 0 --mqtts-port 0)
  fi
  [ "${1:-}" = stomp ] && stomp_port=$(free_port)
  [ "${1:-}" = web ] && web_port=$(free_port)
  [ "${1:-}" = http ] && http_port=$(free_port)
  [ "${1:-}" = mqtt ] && mqtt_port=$(free_port)
  "$warren" server --bind 127.0.0.1 --amqp-port "$port" --stomp-port "$stomp_port" --web-stomp-port "$web_port" --http-port "$http_port" --mqtt-port "$mqtt_port" --web-mqtt-port 0 --prometheus-port 0 --data-dir "$warren_dir/data" --log warn "${tls_args[@]}" \
    >"$warren_dir/warren.log" 2>&1 &
  warren_pid=$!
  for _ in $(seq 1 100); do
    (echo >/dev/tcp/127.0.0.1/"$port") 2>/dev/null &&
      { [ "$stomp_port" = 0 ] || (echo >/dev/tcp/127.0.0.1/"$stomp_port") 2>/dev/null; } &&
      { [ "$web_port" = 0 ] || (echo >/dev/tcp/127.0.0.1/"$web_port") 2>/dev/null; } &&
      { [ "$http_port" = 0 ] || (echo >/dev/tcp/127.0.0.1/"$http_port") 2>/dev/null; } &&
      { [ "$mqtt_port" = 0 ] || (echo >/dev/tcp/127.0.0.1/"$mqtt_port") 2>/dev/null; } &&
      { [ "$tls_port" = 0 ] || (echo >/dev/tcp/127.0.0.1/"$tls_port") 2>/dev/null; } && break
    sleep 0.1
  done
  warren_uri="amqp://guest:guest@127.0.0.1:$port/%2F"
  warren_stomp_uri="stomp://guest:guest@127.0.0.1:$stomp_port/"
  warren_web_url="ws://127.0.0.1:$web_port/ws"
  warren_http_url="http://guest:guest@127.0.0.1:$http_port"
  warren_mqtt_uri="mqtt://guest:guest@127.0.0.1:$mqtt_port/"
  warren_tls_uri="amqps://guest:guest@127.0.0.1:$tls_port/%2F"
}

# --- machine ------------------------------------------------------------------
{
  echo "date_utc=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "nproc=$(nproc)"
  echo "cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
  echo "ram_gib=$(awk '/MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)"
  echo "kernel=$(uname -r)"
  echo "os=$(. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME")"
  echo "rabbitmq=$rabbit_version"
  echo "rabbitmq_mode=$rabbit_mode"
  echo "mosquitto=$mosquitto_version"
  echo "erlang=$erlang_version"
  echo "warren=$warren_version"
  echo "rustc=$(rustc --version)"
  echo "duration_s=$duration"
} >"$out/machine.txt"
cat "$out/machine.txt"

# --- scenarios ----------------------------------------------------------------
# name | perf arguments ("PID" is replaced by the broker's pid)
scenarios=(
  "tp-1p1c|-x 1 -y 1 --queues 1 -s 16 -a -z $duration"
  "tp-4p4c|-x 4 -y 4 --queues 4 -s 16 -a -z $duration"
  "latency-10k|-x 1 -y 1 --queues 1 -s 16 -a -r 10000 -z $duration"
  "tp-1p1c-safe|-x 1 -y 1 --queues 1 -s 16 -f -c 1000 -q 1000 -A 100 -z $duration"
  "fanout-1000|fanout --queues 1000 --repeats 20"
  "connections-1000|connections --connections 1000 --broker-pid PID"
  "queues-4000|queues --queues 4000 --broker-pid PID"
  "backlog-500k|backlog --messages 500000 -s 16 -a --broker-pid PID"
  # Stream queues (x-queue-type: stream): publish with confirms (window 1000)
  # of 1 KiB messages; replay from first of 16 B messages by 1 consumer, then
  # by 10 at once (broker RSS growth during the replay).
  "stream-publish-1k|stream --messages 200000 -s 1024 --confirm 1000 -y 1 --broker-pid PID"
  "stream-replay-16b|stream --messages 2000000 -s 16 --confirm 1000 -y 1 -q 2000 -A 1000 --broker-pid PID"
  "stream-replay-10c|stream --messages 2000000 -s 16 --confirm 1000 -y 10 -q 2000 -A 1000 --broker-pid PID"
  # STOMP (RabbitMQ's rabbitmq_stomp plugin vs Warren's adapter): SEND to
  # /queue, SUBSCRIBE with ack:client, prefetch-count 1000, a cumulative ACK
  # every 100 messages (the consumer settings of tp-1p1c-safe).
  "stomp-1p1c|--protocol stomp -x 1 -y 1 --queues 1 -s 16 --stomp-ack client -q 1000 -A 100 -z $duration"
  # Web (WEBURL is replaced by the broker's web listener): 10,000 idle
  # subscribers, one connection and one /topic/ queue each, over Web-STOMP
  # (both brokers) and SSE (Warren only); one message fanned out to 10,000
  # SSE (Warren only) and Web-STOMP (both) subscribers of a fanout exchange.
  "web-idle-10k|web-idle --web-url WEBURL --transport ws --subscribers 10000 --broker-pid PID"
  "web-idle-10k-sse|web-idle --web-url WEBURL --transport sse --subscribers 10000 --broker-pid PID"
  "sse-fanout-10k|sse-fanout --web-url WEBURL --transport sse --subscribers 10000 --repeats 20"
  "sse-fanout-10k-ws|sse-fanout --web-url WEBURL --transport ws --subscribers 10000 --repeats 20"
  # Management API polling (Warren only; HTTPURL is replaced by Warren's
  # management API): 1 producer publishing with 10,000 queues declared, no
  # consumer, once without and once with the API polled every second as
  # RabbitMQ's UI does (/api/overview, /api/queues page 1 of 100). The table
  # reports the publish-rate drop (target < 5%) and the API's response times.
  "api-poll-10k|-x 1 -y 0 --queues 10000 -s 16 -z $duration"
  "api-poll-10k-poll|-x 1 -y 0 --queues 10000 -s 16 -z $duration --poll-api HTTPURL --poll-interval 1s"
  # MQTT 3.1.1 (RabbitMQ's rabbitmq_mqtt, mosquitto, Warren): 1 publisher ->
  # 1 subscriber of its topic at QoS 0 and QoS 1 (at most 1000 PUBLISHes
  # without PUBACK; the subscriber PUBACKs every message); idle connections
  # (connect rate to CONNACK and RSS per connection; 16,000 because the hard
  # open-files limit here is 20,000 per process, for the broker and for perf,
  # and RabbitMQ stops accepting at ~17,300 with it);
  # fan-in: 10,000 publishers at 1 msg/s each (starts spread over the second)
  # to one subscriber.
  "mqtt-qos0-1p1c|--protocol mqtt --qos 0 -x 1 -y 1 -s 16 -z $duration"
  "mqtt-qos1-1p1c|--protocol mqtt --qos 1 -c 1000 -x 1 -y 1 -s 16 -z $duration"
  "mqtt-idle-16k|mqtt-connections --protocol mqtt --connections 16000 --concurrency 64 --source-addresses 8 --broker-pid PID"
  "mqtt-fanin-10k|--protocol mqtt --qos 0 -x 10000 -y 1 -s 16 -r 1 -z $duration"
  # AMQPS (TLS 1.3, AES-256-GCM, both brokers' defaults): tp-1p1c over TLS
  # (TLSCA is replaced by the test CA). The table compares Warren over TLS
  # with RabbitMQ over TLS and with Warren's plain tp-1p1c of the same run.
  "tls-1p1c|--tls-ca TLSCA -x 1 -y 1 --queues 1 -s 16 -a -z $duration"
)

run_one() { # name broker uri pid web_url args...
  local name=$1 broker=$2 uri=$3 pid=$4 web_url=$5
  shift 5
  local args="${*//PID/$pid}"
  args="${args//WEBURL/$web_url}"
  args="${args//HTTPURL/$warren_http_url}"
  args="${args//TLSCA/$tls_dir/ca_certificate.pem}"
  local base="$out/$name.$broker"
  echo "-- $name on $broker: warren perf $args  (loadavg $(cut -d' ' -f1-3 /proc/loadavg))"
  {
    echo "command: warren perf --uri '$uri' --json $args"
    echo "loadavg before: $(cat /proc/loadavg)"
  } >"$base.log"
  local status=0
  # shellcheck disable=SC2086
  "$warren" perf --uri "$uri" --json $args >"$base.json" 2>>"$base.log" || status=$?
  echo "exit status: $status" >>"$base.log"
  if [ $status -ne 0 ]; then
    echo "   exit status $status (see $base.log)"
  fi
}

for entry in "${scenarios[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  # A group is the name without a -sse/-ws suffix: --only web-idle-10k runs
  # web-idle-10k and web-idle-10k-sse.
  group=${name%-sse}
  group=${group%-ws}
  group=${group%-poll}
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]] && [[ ",$only," != *",$group,"* ]]; then continue; fi
  proto=""
  [[ " $args " == *" --protocol stomp "* ]] && proto=stomp
  [[ " $args " == *" --web-url "* ]] && proto=web
  [[ " $args " == *" --protocol mqtt "* ]] && proto=mqtt
  # The api-poll scenarios compare Warren with itself (polled or not).
  [[ $name == api-poll-* ]] && proto=http
  if [[ " $args " == *" --tls-ca "* ]]; then proto=tls; make_tls_certs; fi
  # RabbitMQ has no Server-Sent Events.
  if [[ " $args " != *" --transport sse "* ]] && [ "$proto" != http ]; then
    start_rabbit $proto
    case $proto in stomp) uri=$rabbit_stomp_uri ;; mqtt) uri=$rabbit_mqtt_uri ;; tls) uri=$rabbit_tls_uri ;; *) uri=$rabbit_uri ;; esac
    run_one "$name" rabbitmq "$uri" "$rabbit_pid" "$rabbit_web_url" $args
    stop_rabbit
    sleep 3
  fi
  if [ "$proto" = mqtt ]; then
    start_mosquitto
    run_one "$name" mosquitto "$mosquitto_uri" "$mosquitto_pid" "" $args
    stop_mosquitto
    sleep 3
  fi
  start_warren $proto
  case $proto in stomp) uri=$warren_stomp_uri ;; mqtt) uri=$warren_mqtt_uri ;; tls) uri=$warren_tls_uri ;; *) uri=$warren_uri ;; esac
  run_one "$name" warren "$uri" "$warren_pid" "$warren_web_url" $args
  stop_warren
  sleep 3
done

python3 "$root/bench/table.py" "$out" >"$out/table.md"

# The cluster row: its own script, its own brokers (3 + 3 nodes on their own
# ports; the private single node above is stopped by now).
if [ $cluster = 1 ] || [[ ",$only," == *",qq-3node,"* ]]; then
  stop_warren
  WARREN_BIN="$warren" OUT="$out/cluster" DURATION="${CLUSTER_DURATION:-20}" \
    bash "$root/bench/cluster.sh" || echo "bench/cluster.sh failed (see $out/cluster)"
  if [ -s "$out/cluster/table.md" ]; then
    { echo; echo "Cluster (bench/cluster.sh):"; echo; cat "$out/cluster/table.md"; } >>"$out/table.md"
  fi
fi
echo
cat "$out/table.md"
echo
echo "results in $out"

if [ $update_docs = 1 ] && [ -n "$only" ]; then
  echo "not updating docs/BENCHMARKS.md: --only ran a subset, and the table there is the full run's" >&2
  echo "(add the rows from $out/table.md by hand)" >&2
elif [ $update_docs = 1 ]; then
  python3 - "$root/docs/BENCHMARKS.md" "$out/table.md" <<'EOF'
import sys
doc, table = sys.argv[1], open(sys.argv[2]).read()
begin, end = "<!-- results:begin -->", "<!-- results:end -->"
text = open(doc).read()
i, j = text.index(begin) + len(begin), text.index(end)
open(doc, "w").write(text[:i] + "\n" + table.rstrip() + "\n" + text[j:])
EOF
  echo "updated docs/BENCHMARKS.md"
fi
