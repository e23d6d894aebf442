#!/bin/bash
# Issue 16, docs/BENCHMARKS.md: NQ (1,000) durable queues x PER (100k) persistent 16 B
# messages (one fanout publish reaches all of them): RSS once all are queued, then
# kill -9 at once (before perf's cleanup deletes the queues) and restart: time until
# the listen socket is up (connections wait in its backlog until the broker accepts),
# until /api/queues answers, RSS and lengths then; a basic.get from each queue.
# Usage: bench/many_queues_restart.sh BROKER_BIN   (NQ, PER, BENCH_DIR; ports 17400-17401)
set -u
BIN=${1:?usage: many_queues_restart.sh BROKER_BIN}
DIR=${BENCH_DIR:-/work/h16-many}
NQ=${NQ:-1000}
PER=${PER:-100000}
rm -rf $DIR; mkdir -p $DIR
trap '[ -n "${pid:-}" ] && kill -9 $pid 2>/dev/null; kill ${perfpid:-0} 2>/dev/null; rm -rf $DIR' EXIT
start() {
  nice $BIN server --bind 127.0.0.1 --amqp-port 17400 --http-port 17401 --stomp-port 0 --web-stomp-port 0 --mqtt-port 0 --web-mqtt-port 0 --prometheus-port 0 --data-dir $DIR/data --log info >> $DIR/broker.log 2>&1 &
  pid=$!
  t0=$(date +%s.%N)
  until (exec 3<>/dev/tcp/127.0.0.1/17400) 2>/dev/null; do sleep 0.01; done
  t=$(echo "$(date +%s.%N) - $t0" | bc)
}
total() { curl -s -u guest:guest http://127.0.0.1:17401/api/queues | python3 -c 'import json,sys; q=json.load(sys.stdin); print(sum(x["messages"] for x in q), len(q))' 2>/dev/null || echo "0 0"; }
st() { awk '/VmRSS|VmHWM/ {printf "%s %.1f MiB ", $1, $2/1024}' /proc/$pid/status; }
echo "== $NQ x $PER; $(uptime)"
start
echo "idle: $(st)"
t1=$(date +%s)
nice $BIN perf --uri amqp://guest:guest@127.0.0.1:17400/%2F -x 1 -y 0 --queues $NQ -t fanout -f -c 1000 -C $PER -s 16 -z 7200 > $DIR/perf.out 2>&1 &
perfpid=$!
want=$((NQ * PER))
peak=0
while :; do
  set -- $(total)
  r=$(awk '/VmRSS/ {print int($2/1024)}' /proc/$pid/status); [ "$r" -gt "$peak" ] && peak=$r
  [ "${1:-0}" -ge $want ] && break
  kill -0 $perfpid 2>/dev/null || { echo "perf ended early"; cat $DIR/perf.out; break; }
  sleep 1
done
echo "all $1 queued in $2 queues after $(( $(date +%s) - t1 )) s; RSS now: $(st); sampled peak ${peak} MiB"
kill -9 $pid; wait $pid 2>/dev/null; kill $perfpid 2>/dev/null; wait $perfpid 2>/dev/null
start
cpu=$(awk '{printf "%.2f", ($14 + $15) / 100}' /proc/$pid/stat)
echo "restart: listening after ${t}s (CPU ${cpu}s); $(st)"
# The last confirm window (1,000 publishes x NQ copies) may not be durable: wait for any.
until [ "$(total | cut -d" " -f1)" -gt 0 ]; do sleep 0.05; done
echo "restart: /api/queues shows $(total) after $(echo "$(date +%s.%N) - $t0" | bc)s; $(st)"
sed 's/\x1b\[[0-9;]*m//g' $DIR/broker.log | grep "message log recovered" | tail -1
python3 - <<'EOF'
import json, time, urllib.request, pika
req = urllib.request.Request("http://127.0.0.1:17401/api/queues")
req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
qs = [x["name"] for x in json.load(urllib.request.urlopen(req)) if x["messages"] > 0]
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", 17400))
ch = c.channel()
t0 = time.monotonic()
for q in qs:
    while ch.basic_get(q, auto_ack=False)[0] is None:
        time.sleep(0.01)
print(f"a basic.get from each of {len(qs)} queues in {time.monotonic() - t0:.1f} s (unacked)")
c.close()
EOF
echo "after a get from each queue: $(st)"
sleep 3
echo "3 s later: $(st)"
