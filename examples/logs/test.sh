#!/usr/bin/env bash
# logs: distributed logging over a topic exchange (PHP and Python listeners)
# and batch processing (PHP publisher, four Python workers).
set -euo pipefail
cd "$(dirname "$0")"
. ../lib.sh
need_apt /usr/share/php/PhpAmqpLib/autoload.php php-cli php-amqplib
need_pip pika -- pika==1.4.4
tmp=$(mktemp -d); pids=()
trap 'kill ${pids[@]} 2>/dev/null || true; rm -rf "$tmp"' EXIT
# Start from empty queues (a rerun against the same broker).
python3 -c '
import os, pika
ch = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"])).channel()
for q in ("server1-logs", "error-logs", "video-desc-queue"): ch.queue_delete(q)'

wait_line() {  # wait_line FILE TEXT: until FILE has a line with TEXT (10 s)
  for _ in $(seq 100); do grep -q -- "$2" "$1" 2>/dev/null && return; sleep 0.1; done
  echo "timed out waiting for '$2' in $1:"; cat "$1"; return 1
}

echo "-- distributed logging"
php consumer.php error-logs '#.error' 2 >"$tmp/php.out" & pids+=($!)
python3 consumer.py server1-logs 'server1.#' --idle 2 >"$tmp/py.out" & pids+=($!)
wait_line "$tmp/php.out" listening; wait_line "$tmp/py.out" listening
python3 producer.py >"$tmp/producer.out"
wait "${pids[@]}"; pids=()
sed 's/^/php: /' "$tmp/php.out"; sed 's/^/python: /' "$tmp/py.out"
errors=$(grep -c '\.error: ' "$tmp/php.out" || true)
server1=$(grep -c '^server1\.' "$tmp/py.out" || true)
[ "$errors" = 6 ] && ! grep -q -e '\.info: ' -e '\.warning: ' "$tmp/php.out" \
  || { echo "FAIL: the PHP listener should get the 6 errors only"; exit 1; }
[ "$server1" = 9 ] && ! grep -q '^server2' "$tmp/py.out" \
  || { echo "FAIL: the Python listener should get server1's 9 lines only"; exit 1; }

echo "-- batch processing"
for i in 1 2 3 4; do
  python3 batch_worker.py "$tmp/xml" --idle 3 >"$tmp/worker$i.out" & pids+=($!)
done
php batch_publish.php 40
wait "${pids[@]}"; pids=()
files=$(ls "$tmp/xml" | wc -l)
busy=$(for i in 1 2 3 4; do [ -s "$tmp/worker$i.out" ] && echo x; done | wc -l)
jobs=$(cat "$tmp"/worker*.out | wc -l)
echo "$files XML files, $jobs jobs done, by $busy workers"
[ "$files" = 40 ] && [ "$jobs" = 40 ] || { echo "FAIL: expected 40 jobs done once each"; exit 1; }
[ "$busy" -ge 2 ] || { echo "FAIL: the work was not shared"; exit 1; }
grep -q '<title>Video 7</title>' "$tmp/xml/video-7.xml"
echo "logs: ok"
