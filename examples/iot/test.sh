#!/usr/bin/env bash
# iot end to end (see test_iot.py). Needs AMQP_URL, MQTT_PORT and WEB_MQTT_PORT.
set -euo pipefail
cd "$(dirname "$0")"
. ../lib.sh
: "${MQTT_PORT:=1883}" "${WEB_MQTT_PORT:=15675}"
export MQTT_PORT WEB_MQTT_PORT
need_apt /usr/bin/chromedriver chromium chromium-driver
need_pip pika paho.mqtt selenium -- pika==1.4.4 paho-mqtt==2.1.0 selenium==4.51.0
need_npm .
timeout 200 python3 test_iot.py
echo "iot: ok"
