#!/usr/bin/env bash
# Backlog numbers of issue 16 for one broker binary (docs/BENCHMARKS.md):
#   1. transient backlog: `warren perf backlog` (publish N x 16 B, drain), with the
#      data dir's peak size sampled meanwhile;
#   2. persistent backlog: N x 16 B persistent with confirms, the broker SIGKILLed as
#      soon as all are queued, then restarted: time until it accepts connections,
#      until /api/queues shows the queue with all its messages, RSS peak meanwhile.
#   3. after the restart: time until `basic.get` returns the queue's head (RSS
#      sampled every 50 ms from the restart on).
# Usage: bench/backlog_restart.sh BROKER_BIN N [PORT_BASE]   (PERF_BIN: the
# `warren` that runs perf, default BROKER_BIN; SKIP_TRANSIENT=1 skips step 1).
# Data goes to $BENCH_DIR (default /work/h16-bench), deleted at the end.
set -euo pipefail
BIN=$1
N=$2
BASE=${3:-34100}
PERF=${PERF_BIN:-$BIN}
DIR=${BENCH_DIR:-/work/h16-bench}
AMQP=$BASE
HTTP=$((BASE + 1))
URI="amqp://guest:guest@127.0.0.1:$AMQP/%2F"
rm -rf "$DIR"
mkdir -p "$DIR"
pid=
# Never leave a broker or a multi-GB data dir behind (also on a failure).
trap '[ -n "$pid" ] && kill -9 "$pid" 2>/dev/null; rm -rf "$DIR"' EXIT

start() {
  nice "$BIN" server --bind 127.0.0.1 --amqp-port "$AMQP" --http-port "$HTTP" --stomp-port 0 \
    --web-stomp-port 0 --mqtt-port 0 --web-mqtt-port 0 --prometheus-port 0 \
    --data-dir "$DIR/data" --log info >>"$DIR/broker.log" 2>&1 &
  pid=$!
}

# Seconds until the AMQP port accepts a connection.
wait_listening() {
  local t0
  t0=$(date +%s.%N)
  until (exec 3<>/dev/tcp/127.0.0.1/"$AMQP") 2>/dev/null; do sleep 0.01; done
  echo "$(date +%s.%N) - $t0" | bc
}

rss_mib() { awk '/VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mib() { awk '/VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

# Sample the peak of the messages dir's size (bytes) into $DIR/disk.peak.
disk_sampler() {
  local peak=0 s
  while kill -0 "$1" 2>/dev/null; do
    s=$(du -sb "$DIR/data/messages" 2>/dev/null | cut -f1 || echo 0)
    [ "${s:-0}" -gt "$peak" ] && peak=$s && echo "$peak" >"$DIR/disk.peak"
    sleep 1
  done
}

echo "== $BIN, $N messages; $(uptime)"
if [ "${SKIP_TRANSIENT:-0}" != 1 ]; then
start
wait_listening >/dev/null
disk_sampler "$pid" &
sampler=$!
nice "$PERF" perf backlog --uri "$URI" --json --quiet --messages "$N" -s 16 -q 1000 -A 100 \
  --broker-pid "$pid" --data-dir "$DIR/data" >"$DIR/transient.json"
kill "$sampler" 2>/dev/null || true
python3 - "$DIR/transient.json" "$DIR/disk.peak" "$N" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
peak = int(open(sys.argv[2]).read())
n = int(sys.argv[3])
print(f"transient: publish {r['publish_rate']:,.0f} msg/s, drain {r['drain_rate']:,.0f} msg/s, "
      f"RSS full {r['rss_full_kib'] / 1024:.1f} MiB, peak {r['rss_peak_kib'] / 1024:.1f} MiB, "
      f"after {r['rss_after_drain_kib'] / 1024:.1f} MiB; disk peak {peak / 1e6:.0f} MB "
      f"= {peak / n:.1f} B/msg ({peak / n - 16:.1f} over the payload); data dir after draining "
      f"{r['disk_after_drain'] / 1024:.0f} KiB; integrity {r['integrity']}")
EOF
kill "$pid"; wait "$pid" || true
fi

# Persistent: kill -9 as soon as perf reports the backlog complete.
rm -rf "$DIR/data"
start
wait_listening >/dev/null
rm -f "$DIR/disk.peak"
disk_sampler "$pid" &
sampler=$!
nice "$PERF" perf backlog --uri "$URI" --messages "$N" -s 16 -f -c 1000 -q 1000 -A 1000 \
  --drain-timeout 1 2>"$DIR/persistent.err" >/dev/null &
perfpid=$!
until grep -q "draining" "$DIR/persistent.err" 2>/dev/null; do
  kill -0 "$perfpid" 2>/dev/null || { cat "$DIR/persistent.err"; exit 1; }
  sleep 0.005
done
kill -9 "$pid"; wait "$pid" 2>/dev/null || true
kill "$sampler" 2>/dev/null || true
kill "$perfpid" 2>/dev/null || true
wait "$perfpid" 2>/dev/null || true
grep published "$DIR/persistent.err" || true
disk=$(du -sb "$DIR/data/messages" | cut -f1)
echo "persistent: disk at kill $((disk / 1000000)) MB = $(echo "scale=1; $disk / $N" | bc) B/msg"
start
t=$(wait_listening)
t0=$(date +%s.%N)
( peak=0; while kill -0 "$pid" 2>/dev/null; do
    r=$(rss_mib "$pid" 2>/dev/null || echo 0); peak=$(echo "if ($r > $peak) $r else $peak" | bc)
    echo "$peak" >"$DIR/rss.peak"; sleep 0.05; done ) &
rss_sampler=$!
while :; do
  n=$(curl -s -u guest:guest "http://127.0.0.1:$HTTP/api/queues" 2>/dev/null |
    python3 -c 'import json,sys; print(sum(q["messages"] for q in json.load(sys.stdin)))' 2>/dev/null || echo 0)
  [ "${n:-0}" -gt 0 ] && break
  sleep 0.05
done
avail=$(echo "$(date +%s.%N) - $t0 + $t" | bc)
# A consumer gets the queue's head (basic.get, then requeued).
python3 - "$AMQP" "$HTTP" <<'EOF'
import json, sys, time, urllib.request, pika
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}/api/queues")
req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
q = [x["name"] for x in json.load(urllib.request.urlopen(req)) if x["messages"] > 0][0]
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1])))
ch = c.channel()
while True:
    m, _, _ = ch.basic_get(q, auto_ack=False)
    if m is not None:
        ch.basic_nack(m.delivery_tag, requeue=True)
        break
    time.sleep(0.01)
c.close()
EOF
got=$(echo "$(date +%s.%N) - $t0 + $t" | bc)
sleep 2
echo "restart: listening after ${t}s, /api/queues shows $n messages after ${avail}s," \
  "first message (basic.get) after ${got}s, RSS peak $(cat "$DIR/rss.peak") MiB, 2 s later $(rss_mib "$pid") MiB"
echo "VmHWM (peak RSS since the restart) $(hwm_mib "$pid") MiB"
# Optionally drain RECOVERY_DRAIN recovered messages: RSS while the backlog is read back.
if [ "${RECOVERY_DRAIN:-0}" -gt 0 ]; then
  python3 - "$AMQP" "$HTTP" "$RECOVERY_DRAIN" <<'EOF'
import json, sys, time, urllib.request, pika
req = urllib.request.Request(f"http://127.0.0.1:{sys.argv[2]}/api/queues")
req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
q = [x["name"] for x in json.load(urllib.request.urlopen(req)) if x["messages"] > 0][0]
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1])))
ch = c.channel()
ch.basic_qos(prefetch_count=1000)
n, want, t0 = 0, int(sys.argv[3]), time.monotonic()
for m, _p, _b in ch.consume(q, auto_ack=False, inactivity_timeout=30):
    assert m is not None, f"stalled after {n}"
    n += 1
    if n % 1000 == 0 or n == want:
        ch.basic_ack(m.delivery_tag, multiple=True)
    if n == want:
        break
print(f"drained {n} recovered messages in {time.monotonic() - t0:.1f} s")
c.close()
EOF
  echo "after draining: RSS $(rss_mib "$pid") MiB, VmHWM $(hwm_mib "$pid") MiB"
fi
grep "message log recovered" "$DIR/broker.log" | tail -1
kill "$rss_sampler" 2>/dev/null || true
kill "$pid"; wait "$pid" || true
rm -rf "$DIR"
