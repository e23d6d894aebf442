#!/usr/bin/env bash
# stomp-queues: the priority work queue over STOMP (ACK/NACK, BEGIN/COMMIT/ABORT).
# Needs STOMP_PORT (and AMQP_URL, to start from an empty queue).
set -euo pipefail
cd "$(dirname "$0")"
. ../lib.sh
need_pip stomp pika -- stomp.py==9.0.0 pika==1.4.4
export STOMP_PORT="${STOMP_PORT:-61613}"
python3 -c '
import os, pika
pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"])).channel().queue_delete("jobs")'
python3 producer.py
out=$(timeout 60 python3 worker.py --idle 2)
echo "$out"
expected="done   'charge card' (priority 9)
failed 'flaky job' (priority 7): NACK
done   'flaky job' (priority 7) on the second try
done   'send email' (priority 5)
done   'batch A 1' (priority 3)
done   'batch A 2' (priority 3)
done   'batch A 3' (priority 3)
done   'resize video' (priority 1)"
if [ "$out" != "$expected" ]; then
  echo "FAIL: expected the jobs by priority, the NACKed one again, batch A once, no batch B:"
  echo "$expected"; exit 1
fi

# The tailable topic: a stream read from the start, then tailed from "next".
python3 -c '
import os, pika
pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"])).channel().queue_delete("events")'
python3 tail.py publish "event 1" "event 2" "event 3"
out=$(timeout 60 python3 tail.py follow --offset first --count 3)
echo "$out"
[ "$out" = "offset 0: event 1
offset 1: event 2
offset 2: event 3" ] || { echo "FAIL: replay from first"; exit 1; }
fifo=$(mktemp -u); mkfifo "$fifo"
timeout 60 python3 tail.py follow --offset next --count 2 --ready >"$fifo" &
follower=$!
exec 3<"$fifo"; rm -f "$fifo"
read -r -u 3 line && [ "$line" = following ] || { echo "FAIL: follower did not start"; exit 1; }
python3 tail.py publish "event 4" "event 5"
tailed=$(cat <&3); wait $follower
echo "$tailed"
[ "$tailed" = "offset 3: event 4
offset 4: event 5" ] || { echo "FAIL: tailing from next"; exit 1; }
again=$(timeout 60 python3 tail.py follow --offset first --count 5 | tail -1)
[ "$again" = "offset 4: event 5" ] || { echo "FAIL: reading removed events"; exit 1; }
echo "stomp-queues: ok"
