#!/usr/bin/env bash
# realtime-feed end to end (see test_realtime_feed.py). Needs AMQP_URL and
# WEB_STOMP_PORT; FANOUT_LIMIT_MS sets the bound on the median fan-out time.
set -euo pipefail
cd "$(dirname "$0")"
. ../lib.sh
need_apt /usr/bin/chromedriver chromium chromium-driver
need_pip selenium -- selenium==4.51.0
need_npm .
timeout 400 python3 test_realtime_feed.py
echo "realtime-feed: ok"
