#!/usr/bin/env bash
# photo-feed end to end in headless Chromium (see test_photo_feed.py).
# Needs AMQP_URL and WEB_STOMP_PORT.
set -euo pipefail
cd "$(dirname "$0")"
. ../lib.sh
need_apt /usr/bin/chromedriver chromium chromium-driver
need_pip pika PIL selenium -- pika==1.4.4 pillow==12.0.0 selenium==4.51.0
need_npm .
python3 -c '
import os, pika
ch = pika.BlockingConnection(pika.URLParameters(os.environ["AMQP_URL"])).channel()
for q in ("resize", "add_to_user"): ch.queue_delete(q)'
timeout 120 python3 test_photo_feed.py
echo "photo-feed: ok"
