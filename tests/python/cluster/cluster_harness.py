"""Start, kill and restart the nodes of a local Warren cluster.

Each node gets its own data dir; AMQP binds port 0 (read back from the log),
while the cluster and HTTP ports are picked free beforehand because the
other nodes (and the test) must know them (racy, so a start that finds one
taken is retried with new ports for the whole cluster).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from typing import Dict, List, Optional

import pika

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
WARREN_BIN = os.environ.get("WARREN_BIN", os.path.join(REPO_ROOT, "target", "debug", "warren"))
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LISTENING = re.compile(r"AMQP 0-9-1 listener started\s+addr=\S*:(\d+)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, cluster: "Cluster", name: str):
        self.cluster = cluster
        self.name = name
        self.dir = os.path.join(cluster.root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.cluster_port = 0
        self.http_port = 0
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.runs = 0

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, f"run{self.runs}.log")

    def log(self) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return _ANSI.sub("", f.read())
        except FileNotFoundError:
            return ""

    def start(self) -> None:
        self.runs += 1
        seeds = ",".join(f"{n.name}@127.0.0.1:{n.cluster_port}"
                         for n in self.cluster.nodes if n is not self)
        cmd = [WARREN_BIN, "server", "--bind", "127.0.0.1", "--amqp-port", "0",
               "--stomp-port", "0", "--web-stomp-port", "0", "--mqtt-port", "0",
               "--web-mqtt-port", "0", "--prometheus-port", "0",
               "--http-port", str(self.http_port), "--data-dir", os.path.join(self.dir, "data"),
               "--node-name", self.name, "--cluster-port", str(self.cluster_port),
               "--seed-nodes", seeds, "--log", "info,openraft=warn"]
        self.port = None
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)

    def wait_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = _LISTENING.search(self.log())
            if m and ("HTTP API listener started" in self.log()):
                self.port = int(m.group(1))
                return True
            if self.proc is not None and self.proc.poll() is not None:
                return False
            time.sleep(0.05)
        raise TimeoutError(f"{self.name} did not start:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def connect(self) -> pika.BlockingConnection:
        return pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.port, credentials=pika.PlainCredentials("guest", "guest"),
            connection_attempts=1, blocked_connection_timeout=30))

    def api(self, path: str):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}")
        req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")  # guest:guest
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())

    def put(self, path: str, body: Dict) -> int:
        req = urllib.request.Request(f"http://127.0.0.1:{self.http_port}{path}",
                                     data=json.dumps(body).encode(), method="PUT")
        req.add_header("Authorization", "Basic Z3Vlc3Q6Z3Vlc3Q=")
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status

    def ctl(self, *args: str) -> Dict:
        r = subprocess.run([WARREN_BIN, "ctl", "--http-url",
                            f"http://guest:guest@127.0.0.1:{self.http_port}", *args],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (args, r.stdout, r.stderr)
        return json.loads(r.stdout)


class Cluster:
    def __init__(self, names: List[str]):
        self.root = tempfile.mkdtemp(prefix="warren-cluster-")
        self.nodes = [Node(self, n) for n in names]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def start(self) -> "Cluster":
        for _attempt in range(5):
            for n in self.nodes:
                n.cluster_port = free_port()
                n.http_port = free_port()
            for n in self.nodes:
                n.start()
            if all(n.wait_ready() for n in self.nodes):
                return self
            # A port was taken between picking and binding: all again.
            for n in self.nodes:
                n.kill()
        raise RuntimeError("could not start the cluster:\n" +
                           "\n".join(n.log()[-2000:] for n in self.nodes))

    def restart(self, n: Node) -> None:
        n.kill()
        n.start()
        if not n.wait_ready():
            raise RuntimeError(f"{n.name} did not restart:\n{n.log()[-3000:]}")

    def wait_leader(self, via: Node, timeout: float = 15.0, not_: Optional[str] = None) -> str:
        deadline = time.time() + timeout
        last = None
        while time.time() < deadline:
            try:
                last = via.api("/api/cluster-status")
                leader = last.get("metadata_leader")
                if leader and leader != not_:
                    return leader
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"no metadata leader seen by {via.name}: {last}")

    def cleanup(self) -> None:
        for n in self.nodes:
            n.kill()
        if os.environ.get("WARREN_KEEP_DATA") != "1":
            shutil.rmtree(self.root, ignore_errors=True)
