#!/bin/bash
# The MQTT rows of bench/compare.sh by hand, in one run: RabbitMQ (an already running node,
# RABBIT_MQTT_URI, default the shared node on :1883; throughput only), mosquitto and Warren (own
# instances on free ports in 35100-35999). Usage: bench/mqtt-rows.sh path/to/release/warren
# Reports in /tmp/h12/cmp (OUT to change), one summary file.
BIN=$1; OUT=${OUT:-/tmp/h12/cmp}; mkdir -p $OUT
fp() { python3 -c 'import socket,random
for _ in range(200):
    p=random.randint(35100,35999); s=socket.socket()
    try: s.bind(("127.0.0.1",p)); print(p); break
    except OSError: pass'; }
start_mosq() {
  MP=$(fp); MD=$(mktemp -d /tmp/mqtt-rows-mosq.XXXX); chmod 755 $MD
  printf "listener $MP 127.0.0.1\nallow_anonymous true\npersistence false\nmax_connections -1\nmax_queued_messages 0\n" > $MD/m.conf
  /usr/sbin/mosquitto -c $MD/m.conf > $MD/log 2>&1 & MPID=$!; sleep 1; URI=mqtt://guest:guest@127.0.0.1:$MP/; PID=$MPID
}
stop_mosq() { kill $MPID; wait $MPID 2>/dev/null; rm -rf $MD; }
start_w() {
  WP=$(fp); WD=$(mktemp -d /tmp/mqtt-rows-warren.XXXX)
  $BIN server --bind 127.0.0.1 --data-dir $WD --amqp-port 0 --stomp-port 0 --web-stomp-port 0 --mqtt-port $WP --web-mqtt-port 0 --http-port 0 --prometheus-port 0 --log warn > $WD.log 2>&1 & WPID=$!
  for i in $(seq 50); do (echo >/dev/tcp/127.0.0.1/$WP) 2>/dev/null && break; sleep 0.2; done; sleep 0.5
  URI=mqtt://guest:guest@127.0.0.1:$WP/; PID=$WPID
}
stop_w() { kill $WPID; wait $WPID 2>/dev/null; rm -rf $WD $WD.log; }
run() { # name broker args...
  local name=$1 b=$2; shift 2
  echo "== $name $b load: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a $OUT/summary
  nice $BIN perf --uri $URI "$@" 2>&1 | tail -12 > $OUT/$name-$b.txt
  grep -E "received|published|p99|p50|per connection|connections/s|latency" $OUT/$name-$b.txt | head -8 | tee -a $OUT/summary
}
: > $OUT/summary
for sc in qos0 qos1; do
  if [ $sc = qos0 ]; then A="--protocol mqtt --qos 0 -x 1 -y 1 -s 16 -z 10"; else A="--protocol mqtt --qos 1 -c 1000 -x 1 -y 1 -s 16 -z 10"; fi
  URI=${RABBIT_MQTT_URI:-mqtt://guest:guest@127.0.0.1:1883/}; run $sc rabbitmq $A
  start_mosq; run $sc mosquitto $A; stop_mosq
  start_w; run $sc warren $A; stop_w
done
start_mosq; run idle10k mosquitto mqtt-connections --protocol mqtt --connections 10000 --concurrency 64 --source-addresses 4 --broker-pid $PID; stop_mosq
start_w; run idle10k warren mqtt-connections --protocol mqtt --connections 10000 --concurrency 64 --source-addresses 4 --broker-pid $PID; stop_w
start_mosq; run fanin mosquitto --protocol mqtt --qos 0 -x 10000 -y 1 -s 16 -r 1 -z 10; stop_mosq
start_w; run fanin warren --protocol mqtt --qos 0 -x 10000 -y 1 -s 16 -r 1 -z 10; stop_w
