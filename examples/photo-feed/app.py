"""The photo feed's web app: the page, uploads, thumbnails. An upload stores the
original and publishes `new_image`; everything else happens in the workers and
in the followers' browsers, which get new pictures from Warren over Web-STOMP.

    AMQP_URL=... WEB_STOMP_PORT=15674 python3 app.py --workers 2   # http://127.0.0.1:8000/?me=bob
"""
import argparse
import json
import os
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from common import DATA, channel, publish

HERE = os.path.dirname(os.path.abspath(__file__))
STATIC = {"/": ("index.html", "text/html"),
          "/stomp.umd.min.js": ("node_modules/@stomp/stompjs/bundles/stomp.umd.min.js",
                                "text/javascript")}
amqp = {"lock": threading.Lock()}  # one AMQP channel, shared by the request threads


class Handler(BaseHTTPRequestHandler):
    def send(self, status, body, ctype="application/json"):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in STATIC:
            name, ctype = STATIC[path]
            with open(os.path.join(HERE, name), "rb") as f:
                return self.send(200, f.read(), ctype)
        if path == "/config.json":
            port = os.environ.get("WEB_STOMP_PORT", "15674")
            return self.send(200, json.dumps({"webStompPort": port}).encode())
        if path.startswith("/thumbs/") and path.endswith(".jpg"):
            thumb = DATA / "thumbs" / os.path.basename(path)
            if thumb.exists():
                return self.send(200, thumb.read_bytes(), "image/jpeg")
        self.send(404, b"not found\n", "text/plain")

    def do_PUT(self):  # PUT /users/<user>/image, the picture as the body
        parts = self.path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "users" or parts[2] != "image":
            return self.send(404, b"not found\n", "text/plain")
        image_id = uuid.uuid4().hex[:12]
        original = DATA / "originals" / f"{image_id}.jpg"
        original.parent.mkdir(parents=True, exist_ok=True)
        original.write_bytes(self.rfile.read(int(self.headers["Content-Length"])))
        event = {"id": image_id, "user": parts[1]}
        with amqp["lock"]:
            if "ch" not in amqp:
                amqp["ch"] = channel()
            publish(amqp["ch"], "new_image", "", event)
        self.send(202, json.dumps(event).encode())

    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=0, help="also start N resizers and a recorder")
    args = p.parse_args()
    channel().connection.close()  # declares the topology before anyone uploads
    worker = os.path.join(HERE, "workers.py")
    for role in ["resize"] * args.workers + ["add-to-user"] * bool(args.workers):
        subprocess.Popen([sys.executable, worker, role])
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"photo feed on http://127.0.0.1:{server.server_address[1]}/", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
