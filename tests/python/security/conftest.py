"""Fixtures for the security suite (GitHub issue 14).

These tests start their own Warren processes (``WARREN_BIN``, default this
checkout's ``target/debug/warren``) with every listener on, bound to the
wildcard address, logging at debug level, so that they can

* connect from a non-loopback address of this machine (an address of a
  network interface other than ``lo``: the kernel then uses it as the
  client's source address, so the broker sees a remote peer; tests that need
  one skip when the machine has none);
* connect over IPv6 and see IPv4 clients as IPv4-mapped IPv6 addresses (a
  broker bound to ``::`` is dual-stack on Linux);
* read the broker's whole debug log afterwards (passwords must not be in it).
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

HERE = os.path.dirname(__file__)
sys.path.insert(0, HERE)
REPO_ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
WARREN_BIN = os.environ.get("WARREN_BIN", os.path.join(REPO_ROOT, "target", "debug", "warren"))

_LISTENING = re.compile(r"AMQP 0-9-1 listener started\s+addr=\S*:(\d+)")
_TAKEN = re.compile(r"cannot listen on \S+ \(")


@pytest.fixture(scope="session", autouse=True)
def _broker_reachable():
    """Overrides the parent suite's check of ``AMQP_URL``: this suite runs its
    own brokers."""
    yield


def free_port(family=socket.AF_INET6) -> int:
    """A port free on every address a moment ago (racy: a start that finds it
    taken is retried)."""
    host = "::" if family == socket.AF_INET6 else "0.0.0.0"
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def local_addresses():
    """(IPv4, IPv6) non-loopback, non-link-local addresses of this machine."""
    v4, v6 = [], []
    try:
        out = subprocess.run(["ip", "-j", "addr"], capture_output=True, text=True,
                             timeout=5).stdout
        for link in json.loads(out or "[]"):
            if link.get("ifname") == "lo" or "UP" not in link.get("flags", []):
                continue
            for a in link.get("addr_info", []):
                if a.get("scope") != "global":
                    continue
                (v4 if a.get("family") == "inet" else v6).append(a["local"])
    except (OSError, ValueError, subprocess.SubprocessError):
        pass
    return v4, v6


class Warren:
    """A broker process with every listener on, bound to ``bind``."""

    def __init__(self, bind: str):
        self.bind = bind
        self.root = tempfile.mkdtemp(prefix="warren-sec-")
        self.log_path = os.path.join(self.root, "warren.log")
        self.proc = None
        family = socket.AF_INET6 if ":" in bind else socket.AF_INET
        for _ in range(5):
            ports = [free_port(family) for _ in range(6)]
            (self.stomp_port, self.web_stomp_port, self.http_port, self.mqtt_port,
             self.web_mqtt_port, self.prom_port) = ports
            cmd = [WARREN_BIN, "server", "--bind", bind, "--amqp-port", "0",
                   "--stomp-port", str(self.stomp_port),
                   "--web-stomp-port", str(self.web_stomp_port),
                   "--http-port", str(self.http_port),
                   "--prometheus-port", "0",
                   "--mqtt-port", str(self.mqtt_port),
                   "--web-mqtt-port", str(self.web_mqtt_port),
                   "--data-dir", os.path.join(self.root, "data"),
                   "--log", "debug"]
            env = dict(os.environ, NO_COLOR="1")
            for k in list(env):
                if k.startswith("WARREN_") or k == "RUST_LOG":
                    env.pop(k)
            log = open(self.log_path, "w")
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            log.close()
            if self._wait():
                return
        raise AssertionError("broker did not start:\n" + self.log()[-3000:])

    def _wait(self) -> bool:
        deadline = time.monotonic() + 60
        self.amqp_port = None
        while time.monotonic() < deadline:
            text = self.log()
            if self.proc.poll() is not None:
                if _TAKEN.search(text):
                    return False
                raise AssertionError("broker exited:\n" + text[-3000:])
            m = _LISTENING.search(text)
            if m:
                self.amqp_port = int(m.group(1))
                if all(self._open(p) for p in self.ports()):
                    return True
            time.sleep(0.05)
        raise AssertionError("broker not ready:\n" + self.log()[-3000:])

    def ports(self):
        return [self.amqp_port, self.stomp_port, self.web_stomp_port, self.http_port,
                self.mqtt_port, self.web_mqtt_port]

    @staticmethod
    def _open(port) -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def warren_bin():
    if not os.path.exists(WARREN_BIN):
        pytest.skip(f"warren binary not found at {WARREN_BIN}")
    return WARREN_BIN


@pytest.fixture(scope="session")
def dual(warren_bin):
    """A broker bound to ``::`` (IPv6 and, dual-stack, IPv4-mapped)."""
    b = Warren("::")
    yield b
    b.stop()


@pytest.fixture(scope="session")
def v4(warren_bin):
    """A broker bound to ``0.0.0.0`` (plain IPv4 sockets)."""
    b = Warren("0.0.0.0")
    yield b
    b.stop()
