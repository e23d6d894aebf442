"""Warren's UI files served next to another broker's management API: a small
HTTP server that serves crates/warren-http/ui/ and forwards /api/... to
`upstream` (RabbitMQ's management listener). The same pages then run
against RabbitMQ, so a test can check the UI against the reference broker,
or use API endpoints Warren does not have yet."""

import http.server
import os
import threading
import urllib.error
import urllib.request

UI_DIR = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "crates", "warren-http", "ui"))
FORWARDED = ("authorization", "content-type", "x-reason", "x-requested-with")


def start(upstream):
    """Start the server on a free loopback port; returns (base_url, stop)."""

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=UI_DIR, **kw)

        def forward(self):
            n = int(self.headers.get("content-length") or 0)
            req = urllib.request.Request(upstream + self.path, data=self.rfile.read(n) if n else None, method=self.command)
            for k in FORWARDED:
                if self.headers.get(k):
                    req.add_header(k, self.headers[k])
            try:
                resp = urllib.request.urlopen(req, timeout=30)
            except urllib.error.HTTPError as e:
                resp = e
            data = resp.read()
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.headers.get("Content-Type", "application/json"))
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path.startswith("/api/"):
                return self.forward()
            return super().do_GET()

        do_PUT = do_POST = do_DELETE = forward

        def guess_type(self, path):
            return "text/javascript" if path.endswith(".js") else super().guess_type(path)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server.shutdown
