#!/usr/bin/env bash
# patterns: runs every pattern script against the broker; each asserts what it
# prints (control_bus and wire_tap also use the HTTP API on HTTP_PORT).
set -euo pipefail
cd "$(dirname "$0")"
. ../lib.sh
need_pip pika requests -- pika==1.4.4 requests==2.34.2
export HTTP_PORT="${HTTP_PORT:-15672}"
for script in competing_consumers pubsub rpc control_bus detour wire_tap smart_proxy; do
  echo "-- $script.py"
  timeout 60 python3 "$script.py"
done
echo "patterns: ok"
