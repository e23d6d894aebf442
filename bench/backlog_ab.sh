#!/usr/bin/env bash
# A/B of two broker binaries on a backlog (issue 16, docs/BENCHMARKS.md): for each
# round and binary, a fresh broker; `warren perf backlog` of N x 16 B transient
# (publish/drain rates, RSS, the messages dir's peak size per message), then
# the same persistent with confirms. Binaries alternate so load drifts hit both.
# Usage: bench/backlog_ab.sh OLD_BIN NEW_BIN [N] [PORT]   (perf is run by NEW_BIN)
set -u
OLD=$1
NEW=$2
N=${3:-300000}
PORT=${4:-34020}
D=${BENCH_DIR:-/work/h16-ab}
for round in 1 2; do
  for name in old new; do
    B=$OLD
    [ "$name" = new ] && B=$NEW
    rm -rf "$D"
    mkdir -p "$D"
    "$B" server --bind 127.0.0.1 --amqp-port "$PORT" --http-port 0 --stomp-port 0 \
      --web-stomp-port 0 --mqtt-port 0 --web-mqtt-port 0 --prometheus-port 0 \
      --data-dir "$D/data" --log warn >"$D/log" 2>&1 &
    P=$!
    sleep 1.5
    (
      peak=0
      while kill -0 "$P" 2>/dev/null; do
        s=$(du -sb "$D/data/messages" 2>/dev/null | cut -f1)
        [ "${s:-0}" -gt "$peak" ] && peak=$s && echo "$peak" >"$D/peak"
        sleep 0.5
      done
    ) &
    S=$!
    for mode in transient persistent; do
      extra=()
      [ "$mode" = persistent ] && extra=(-f -c 1000)
      nice "$NEW" perf backlog --uri "amqp://guest:guest@127.0.0.1:$PORT/%2F" --json --quiet \
        --messages "$N" -s 16 -q 1000 -A 100 "${extra[@]}" --broker-pid "$P" 2>/dev/null |
        python3 -c "import json,sys; r=json.load(sys.stdin); i=r['integrity']; print('$round $name $mode: publish', int(r['publish_rate']), 'drain', int(r['drain_rate']), 'RSS full/peak MiB', r['rss_full_kib']//1024, r['rss_peak_kib']//1024, 'lost', i['lost'], 'reordered', i['reordered'])"
      [ "$mode" = transient ] && echo "$round $name disk peak B/msg: $(python3 -c "print(round($(cat "$D/peak") / $N, 1))")"
    done
    kill "$S" "$P"
    wait "$P" 2>/dev/null
  done
done
rm -rf "$D"
