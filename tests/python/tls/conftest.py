"""Fixtures for the TLS suite: certificates made at test time and Warren
brokers with TLS listeners (AMQPS, STOMPS, MQTTS, HTTPS/WSS) on free
loopback ports. These tests start their own brokers (``WARREN_BIN``,
default this checkout's target/debug/warren) and need no running broker."""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from certs import Certs  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
WARREN_BIN = os.environ.get("WARREN_BIN", os.path.join(REPO_ROOT, "target", "debug", "warren"))
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
PORTS = ("amqp", "amqps", "stomps", "mqtts", "http", "web_stomp", "web_mqtt")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TlsBroker:
    """A Warren process with TLS listeners. ``ports['amqps']`` etc."""

    def __init__(self, root: str, certs: Certs, extra_args=(), config: str = ""):
        self.root, self.certs = root, certs
        self.extra_args, self.config = list(extra_args), config
        self.proc = None
        self.ports = {}
        self.log_path = os.path.join(root, "warren.log")

    def start(self) -> "TlsBroker":
        for _ in range(8):
            self.ports = {k: free_port() for k in PORTS}
            p = self.ports
            cmd = [WARREN_BIN, "server", "--bind", "127.0.0.1", "--data-dir",
                   os.path.join(self.root, "data"),
                   "--amqp-port", str(p["amqp"]), "--stomp-port", "0", "--mqtt-port", "0",
                   "--prometheus-port", "0", "--http-port", str(p["http"]),
                   "--web-stomp-port", str(p["web_stomp"]), "--web-mqtt-port", str(p["web_mqtt"]),
                   "--amqps-port", str(p["amqps"]), "--stomps-port", str(p["stomps"]),
                   "--mqtts-port", str(p["mqtts"]), "--log", "info"] + self.extra_args
            if self.config:
                path = os.path.join(self.root, "warren.toml")
                with open(path, "w") as f:
                    f.write(self.config)
                cmd += ["--config", path]
            env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
            env["NO_COLOR"] = "1"
            self.log = open(self.log_path, "a")
            self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=self.log, env=env)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if "MQTT (TLS) listener started" in self.log_text() and self._accepting():
                    return self
                time.sleep(0.05)
            if self.proc.poll() is None:
                self.stop()
                raise AssertionError(f"broker did not start:\n{self.log_text()[-3000:]}")
            if "cannot listen" not in self.log_text():
                raise AssertionError(f"broker exited:\n{self.log_text()[-3000:]}")
            # A picked port was taken meanwhile: try others.
            open(self.log_path, "w").close()
        raise AssertionError("no free ports in 8 attempts")

    def _accepting(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.ports["amqps"]), timeout=1).close()
            return True
        except OSError:
            return False

    def log_text(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return _ANSI.sub("", f.read())

    def hup(self) -> None:
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None

    # -- client helpers ------------------------------------------------------
    def client_context(self, cert: bool = True) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=self.certs.ca)
        if cert:
            ctx.load_cert_chain(self.certs.client_cert, self.certs.client_key)
        return ctx

    def api(self, method: str, path: str, **kw):
        import requests
        return requests.request(method, f"https://localhost:{self.ports['http']}{path}",
                                auth=("guest", "guest"), verify=self.certs.ca, timeout=10, **kw)

    def add_user(self, name: str) -> None:
        """A user without a password (certificate logins only), full access to /."""
        from urllib.parse import quote
        r = self.api("PUT", f"/api/users/{quote(name, safe='')}", json={"password": "", "tags": ""})
        assert r.status_code in (201, 204), r.text
        r = self.api("PUT", f"/api/permissions/%2F/{quote(name, safe='')}",
                     json={"configure": ".*", "write": ".*", "read": ".*"})
        assert r.status_code in (201, 204), r.text


@pytest.fixture(scope="session", autouse=True)
def _broker_reachable():
    """Overrides the parent suite's check that ``AMQP_URL`` is reachable."""
    yield


@pytest.fixture(scope="session")
def certs():
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not installed")
    d = tempfile.mkdtemp(prefix="warren-tls-certs-")
    yield Certs(d)
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def warren_bin():
    if not os.path.exists(WARREN_BIN):
        pytest.skip(f"warren binary not found at {WARREN_BIN}")
    return WARREN_BIN


@pytest.fixture
def make_broker(certs, warren_bin):
    """make_broker(verify="peer", fail=False, extra=[...], config="...")"""
    made = []

    def make(verify: str = "peer", fail: bool = False, extra=(), config: str = "",
             cert=None, key=None) -> TlsBroker:
        root = tempfile.mkdtemp(prefix="warren-tls-")
        args = ["--http-tls", "--tls-cert", cert or certs.server_cert,
                "--tls-key", key or certs.server_key, "--tls-ca", certs.ca,
                "--tls-verify", verify]
        if fail:
            args.append("--tls-fail-if-no-peer-cert")
        b = TlsBroker(root, certs, args + list(extra), config)
        made.append((b, root))
        return b.start()

    yield make
    for b, root in made:
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def broker(make_broker):
    """verify=peer, client certificates optional."""
    return make_broker()
