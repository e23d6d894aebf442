#!/usr/bin/env bash
# The browser tests, in headless Chromium (Debian's package):
# * test_browser_feed.py: the broker's feed page follows a destination with
#   EventSource (/sse); the test injects the vendored @stomp/stompjs bundle and
#   follows the same destination over WebSocket (/ws); a pika publisher sends,
#   the test reads the DOM.
# * test_browser_mqtt.py: the vendored MQTT.js bundle in a page subscribes over
#   MQTT over WebSocket (WEB_MQTT_PORT, /ws); a pika publisher sends to
#   amq.topic, the test reads the DOM.
# * test_management_ui.py: the management web UI (login, queues, publish, the
#   live topology view) against the broker given by the environment.
# * test_ui_*.py: the rest of the UI against brokers the tests start themselves
#   ($WARREN_BIN, default target/debug/warren; AMQP on a kernel-picked port,
#   HTTP and STOMP on picked ports, the rest off): connection and channel
#   pages, admin flows, definitions export/import into a fresh broker, tables
#   with 1,100 queues, the queue and exchange pages, a management user's view.
# With RABBITMQ_MGMT_URL (e.g. http://127.0.0.1:15672) the Admin forms Warren's API
# does not serve yet (topic permissions, limits) also run against RabbitMQ,
# through ui_proxy.py. Screenshots go to $BROWSER_ARTIFACTS. A JavaScript error in the browser
# console fails the test that caused it.
#
#   AMQP_URL=amqp://guest:guest@127.0.0.1:PORT/%2F WEB_STOMP_PORT=P WEB_MQTT_PORT=Q \
#     MGMT_URL=http://127.0.0.1:HTTP_PORT tests/browser/run.sh
#
# Installs what it needs (chromium, chromium-driver, selenium, the locked npm
# packages) when missing; nothing is downloaded when everything is there.
set -euo pipefail
cd "$(dirname "$0")"
sudo_if_needed() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  sudo_if_needed apt-get update -qq
  sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if ! python3 -c 'import selenium, pika, pytest, requests, stomp' 2>/dev/null; then
  python3 -m pip install --quiet --disable-pip-version-check -r requirements.txt
fi
if ! node -e '
  const lock = require("./package-lock.json").packages;
  const ok = ["@stomp/stompjs", "mqtt"].every((p) =>
    require("./node_modules/" + p + "/package.json").version === lock["node_modules/" + p].version);
  process.exit(ok ? 0 : 1);
' 2>/dev/null; then
  npm ci --no-audit --no-fund --silent
fi
export WARREN_BIN="${WARREN_BIN:-$(cd ../.. && pwd)/target/debug/warren}"
exec python3 -m pytest -q -p no:cacheprovider test_browser_feed.py test_browser_mqtt.py test_management_ui.py test_ui_*.py "$@"
