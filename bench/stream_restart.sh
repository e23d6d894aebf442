#!/usr/bin/env bash
# Stream recovery at scale (issue 16, docs/BENCHMARKS.md): N x SIZE B into one
# stream queue with confirms (`warren perf stream`), the broker SIGKILLed as
# soon as /api/queues shows all N, then restarted: time until it accepts
# connections, until /api/queues shows the stream with all N, until a consumer
# gets offset 0 (`first`) and one near the end (a seek); RSS sampled every
# 50 ms from the restart on, and VmHWM.
# Usage: bench/stream_restart.sh BROKER_BIN N [PORT_BASE] [SIZE]
# Data goes to $BENCH_DIR (default /work/h16-stream), deleted at the end.
set -euo pipefail
BIN=$1
N=$2
BASE=${3:-34200}
SIZE=${4:-16}
DIR=${BENCH_DIR:-/work/h16-stream}
AMQP=$BASE
HTTP=$((BASE + 1))
URI="amqp://guest:guest@127.0.0.1:$AMQP/%2F"
rm -rf "$DIR"
mkdir -p "$DIR"
pid=
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$DIR"' EXIT

start() {
  nice "$BIN" server --bind 127.0.0.1 --amqp-port "$AMQP" --http-port "$HTTP" --stomp-port 0 \
    --web-stomp-port 0 --mqtt-port 0 --web-mqtt-port 0 --prometheus-port 0 \
    --data-dir "$DIR/data" --log info >>"$DIR/broker.log" 2>&1 &
  pid=$!
}
wait_listening() {
  local t0
  t0=$(date +%s.%N)
  until (exec 3<>/dev/tcp/127.0.0.1/"$AMQP") 2>/dev/null; do sleep 0.01; done
  echo "$(date +%s.%N) - $t0" | bc
}
rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
total() {
  curl -s -u guest:guest "http://127.0.0.1:$HTTP/api/queues" 2>/dev/null |
    python3 -c 'import json,sys; print(sum(q.get("messages") or 0 for q in json.load(sys.stdin)))' 2>/dev/null || echo 0
}

echo "== $BIN, stream of $N x $SIZE B; $(uptime)"
start
wait_listening >/dev/null
t0=$(date +%s.%N)
nice "$BIN" perf stream --uri "$URI" --messages "$N" -s "$SIZE" --confirm 1000 -y 1 \
  >"$DIR/perf.out" 2>&1 &
perfpid=$!
until [ "$(total)" -ge "$N" ]; do
  kill -0 "$perfpid" 2>/dev/null || { cat "$DIR/perf.out"; exit 1; }
  sleep 0.2
done
echo "published $N in $(echo "$(date +%s.%N) - $t0" | bc) s (until /api/queues showed them)"
echo "broker RSS with the stream $(rss_mib "$pid") MiB, VmHWM $(hwm_mib "$pid") MiB"
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
kill "$perfpid" 2>/dev/null || true
wait "$perfpid" 2>/dev/null || true
disk=$(du -sb "$DIR/data/messages" | cut -f1)
echo "disk at kill $((disk / 1000000)) MB = $(echo "scale=1; $disk / $N" | bc) B/msg"
start
t=$(wait_listening)
t0=$(date +%s.%N)
( peak=0; while kill -0 "$pid" 2>/dev/null; do
    r=$(rss_mib "$pid" 2>/dev/null || echo 0); peak=$(echo "if ($r > $peak) $r else $peak" | bc)
    echo "$peak" >"$DIR/rss.peak"; sleep 0.05; done ) &
rss_sampler=$!
until [ "$(total)" -ge "$N" ]; do sleep 0.05; done
avail=$(echo "$(date +%s.%N) - $t0 + $t" | bc)
echo "restart: listening after ${t}s, /api/queues shows $N after ${avail}s, VmHWM $(hwm_mib "$pid") MiB"
python3 - "$AMQP" "$HTTP" "$N" "$t" "$t0" <<'EOF' || echo "(the consumer failed)"
import json, sys, time, urllib.request, pika
amqp, http, n, t, t0 = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
req = urllib.request.Request(f"http://127.0.0.1:{http}/api/queues")
req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
q = [x["name"] for x in json.load(urllib.request.urlopen(req)) if (x.get("messages") or 0) > 0][0]
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", amqp))
def first_of(offset):
    # Nothing acked, cancelled or closed: pika nacks what it holds on
    # cancel/close, which a stream refuses (as RabbitMQ's do); the process
    # exits abruptly at the end instead.
    ch = c.channel()
    ch.basic_qos(prefetch_count=1)
    got, s = [], time.time()
    def on(chan, m, p, b):
        if not got:
            got.append((p.headers["x-stream-offset"], time.time() - s))
    ch.basic_consume(q, on, arguments={"x-stream-offset": offset})
    while not got and time.time() - s < 60:
        c.process_data_events(time_limit=0.05)
    assert got, f"nothing from offset {offset}"
    return got[0]
for off in ["first", n - 1000, n // 2]:
    got, took = first_of(off)
    print(f"offset {off}: got offset {got} in {took:.3f} s; {time.time() - t0 + t:.2f} s after the restart", flush=True)
import os
os._exit(0)
EOF
sleep 2
echo "restart: listening after ${t}s, /api/queues shows $N after ${avail}s," \
  "RSS peak $(cat "$DIR/rss.peak") MiB, 2 s later $(rss_mib "$pid") MiB, VmHWM $(hwm_mib "$pid") MiB"
grep "message log recovered" "$DIR/broker.log" | tail -1
kill "$rss_sampler" 2>/dev/null || true
kill "$pid"; wait "$pid" || true
