"""The back end (pika, AMQP): a queue bound to amq.topic with
sensors.*.temperature receives every MQTT sensor's readings; per sensor it
keeps count, min, max and mean, and publishes the summary as JSON to
amq.topic, routing key dashboard.summary, which MQTT clients see as the topic
dashboard/summary. It also serves the dashboard page (and MQTT.js from
node_modules) on http://127.0.0.1:PORT/."""
import json
import os
import pathlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pika

HERE = pathlib.Path(__file__).parent
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
WEB_MQTT_PORT = os.environ.get("WEB_MQTT_PORT", "15675")
FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/mqtt.min.js": ("node_modules/mqtt/dist/mqtt.min.js", "text/javascript"),
}


class Page(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path not in FILES:
            self.send_error(404)
            return
        name, kind = FILES[self.path]
        body = (HERE / name).read_bytes()
        if name == "index.html":
            body = body.replace(b"{{WEB_MQTT_PORT}}", WEB_MQTT_PORT.encode())
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8000"))), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
    ch = conn.channel()
    queue = ch.queue_declare("iot.readings", auto_delete=True).method.queue
    ch.queue_bind(queue, "amq.topic", "sensors.*.temperature")
    stats = {}

    def on_reading(ch, method, props, body):
        r = json.loads(body)
        s = stats.setdefault(r["sensor"], {"count": 0, "sum": 0.0, "min": None, "max": None})
        c = r["celsius"]
        s["count"] += 1
        s["sum"] += c
        s["min"] = c if s["min"] is None else min(s["min"], c)
        s["max"] = c if s["max"] is None else max(s["max"], c)
        summary = {k: {"count": v["count"], "min": v["min"], "max": v["max"],
                       "mean": round(v["sum"] / v["count"], 2)} for k, v in stats.items()}
        ch.basic_publish("amq.topic", "dashboard.summary", json.dumps(summary))
        ch.basic_ack(method.delivery_tag)

    ch.basic_consume(queue, on_reading)
    print(f"dashboard: http://127.0.0.1:{server.server_address[1]}/", flush=True)
    try:
        ch.start_consuming()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
