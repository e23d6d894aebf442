"""MQTT.js (npm `mqtt`, vendored in tests/browser/node_modules by run.sh; no
CDN) in headless Chromium connects to ws://127.0.0.1:WEB_MQTT_PORT/ws
(subprotocol `mqtt`), subscribes with a wildcard, and shows what a pika
publisher sends to amq.topic over AMQP.

Environment: AMQP_URL and WEB_MQTT_PORT (RabbitMQ's Web-MQTT: 15675).
"""

import http.server
import os
import pathlib
import threading
import uuid

import pytest

from test_browser_feed import inject, texts, wait_for

HERE = pathlib.Path(__file__).parent
WEB_MQTT_PORT = int(os.environ.get("WEB_MQTT_PORT", "15675"))
MQTTJS = HERE / "node_modules/mqtt/dist/mqtt.min.js"


class BlankPage(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"<!doctype html><html><head><title>MQTT.js</title></head><body></body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def page_url():
    """A page on 127.0.0.1: Chromium blocks an about:blank (public) page from
    opening a WebSocket to a loopback address (local network access checks),
    as it would a page on the internet."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BlankPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_mqttjs_over_websocket_gets_amqp_messages(browser, channel, page_url):
    sensor = f"sensor{uuid.uuid4().hex[:8]}"
    browser.get(page_url)
    browser.execute_script(
        "window.mqttUrl = arguments[0]; window.mqttTopic = arguments[1];",
        f"ws://127.0.0.1:{WEB_MQTT_PORT}/ws", f"iot/{sensor}/+")
    inject(browser, MQTTJS)
    inject(browser, HERE / "mqtt_feed.js")
    state = wait_for("the MQTT subscription",
                     lambda: (browser.execute_script("return window.mqttState") or "")
                     .startswith(("subscribed", "refused", "error")) and
                     browser.execute_script("return window.mqttState"))
    assert state == "subscribed:1"
    readings = ["21.5", "ünïcødé ✓", "22.0"]
    for r in readings:
        channel.basic_publish("amq.topic", f"iot.{sensor}.temperature", r.encode())
    channel.basic_publish("amq.topic", f"iot.other{sensor}.temperature", b"not mine")
    wait_for("3 MQTT messages", lambda: len(texts(browser, "li.mqtt-message")) == 3)
    assert texts(browser, "li.mqtt-message") == readings
    topics = browser.execute_script(
        "return Array.from(document.querySelectorAll('li.mqtt-message')).map(e => e.dataset.topic);")
    assert topics == [f"iot/{sensor}/temperature"] * 3
