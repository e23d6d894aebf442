"""The cluster port only serves nodes that hold the cluster's cookie.

A 3-node cluster on loopback whose n3 starts with another cookie: n1 and n2
form the cluster, n3 never gets in (cluster-status shows it not running, a
queue declared on n1 never reaches it) and both sides' logs say why; raw
sockets sending garbage, an unauthenticated frame, another handshake version
or nothing at all to the cluster port are dropped while the cluster keeps
working; n3 restarted with the right cookie joins. Standalone starts: a
cookie file readable by others refuses to start (RabbitMQ's "must be
accessible by owner only"), a missing default cookie ($HOME/.warren.cookie)
is created with mode 0600, and a single node (no cluster port) never looks
at it.

The tests run in file order against one cluster.
"""

import os
import socket
import stat
import struct
import subprocess
import tempfile
import time

import pika.exceptions
import pytest

from cluster_harness import WARREN_BIN, Cluster, free_port, has_queue, write_cookie

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")

NODE_GROUP = 2**64 - 1
STATUS_RPC = 1


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(["n1", "n2", "n3"])
    c.node("n3").cookie_file = write_cookie(c.root, "not-the-cluster-cookie")
    c.start()
    try:
        c.wait_leader(c.node("n1"))
        yield c
    finally:
        c.cleanup()


def running(node):
    return {n["name"]: n["running"] for n in node.ctl("cluster-status")["nodes"]}


def wait_for(pred, timeout=20.0, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if pred():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_same_cookie_forms_other_cookie_stays_out(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    conn = n1.connect()
    conn.channel().queue_declare("auth-q1", durable=True)
    conn.close()
    wait_for(lambda: has_queue(n2, "auth-q1"), what="auth-q1 on n2")
    st = running(n1)
    assert st["n1"] and st["n2"], st
    assert not st.get("n3", False), st
    # n3 is up, but never got the cluster's metadata.
    time.sleep(1.0)
    assert n3.alive()
    assert not has_queue(n3, "auth-q1")
    assert n3.api("/api/cluster-status").get("metadata_leader") is None


def test_both_logs_say_why(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    wait_for(lambda: "different cluster cookie" in n3.log(), what="n3's log")
    others = n1.log() + n2.log()
    assert "cluster connection from 127.0.0.1" in others and "'n3'" in others, others[-3000:]
    assert "different cluster cookie" in others


def read_until_closed(s: socket.socket, timeout: float) -> bytes:
    """Everything the node sends until it closes the connection."""
    s.settimeout(timeout)
    got = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            return got
        if not chunk:
            return got
        got += chunk


def test_unauthenticated_bytes_are_dropped(cluster):
    n1, n2 = cluster.node("n1"), cluster.node("n2")
    addr = ("127.0.0.1", n1.cluster_port)
    # Garbage.
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(os.urandom(64))
        assert read_until_closed(s, 8) == b""
    # An old build's status request: a well-formed frame without handshake.
    frame = struct.pack(">BQQB", 0, 1, NODE_GROUP, STATUS_RPC)
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(struct.pack(">I", len(frame)) + frame)
        assert read_until_closed(s, 8) == b""
    # A huge length: no 64 MiB buffer, just a closed link.
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(struct.pack(">I", 0x7FFFFFFF) + b"x" * 100)
        assert read_until_closed(s, 8) == b""
    # Another handshake version: told which one the node speaks.
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(b"WRNC" + bytes([9]) + os.urandom(32) + bytes([2]) + b"zz")
        assert read_until_closed(s, 8) == b"WRNC\x01\x02"
    # The right version but a made-up proof: the node's challenge, then
    # the refusal.
    with socket.create_connection(addr, timeout=5) as s:
        s.sendall(b"WRNC\x01" + os.urandom(32) + bytes([3]) + b"evl")
        s.settimeout(8)
        head = b""
        while len(head) < 6 + 32 + 32 + 1:
            chunk = s.recv(4096)
            assert chunk, head
            head += chunk
        assert head[:6] == b"WRNC\x01\x00"
        s.sendall(b"\x00" + os.urandom(32))
        rest = read_until_closed(s, 8)
        assert rest.endswith(b"\x01"), rest
    # Silence: dropped after the handshake timeout (5 s).
    with socket.create_connection(addr, timeout=5) as s:
        t0 = time.time()
        assert read_until_closed(s, 15) == b""
        assert 3 < time.time() - t0 < 12
    # The cluster still works.
    conn = n2.connect()
    conn.channel().queue_declare("auth-q2", durable=True)
    conn.close()
    wait_for(lambda: has_queue(n1, "auth-q2"), what="auth-q2 on n1")
    st = running(n2)
    assert st["n1"] and st["n2"], st
    assert "cluster connection from 127.0.0.1" in n1.log()


def test_right_cookie_joins(cluster):
    n3 = cluster.node("n3")
    n3.cookie_file = None
    cluster.restart(n3)
    wait_for(lambda: has_queue(n3, "auth-q1") and has_queue(n3, "auth-q2"), timeout=30,
             what="n3 catching up")
    wait_for(lambda: all(running(cluster.node("n1")).values()), what="all running")


# --- standalone starts ----------------------------------------------------

def server_cmd(home_dir, *extra):
    return [WARREN_BIN, "server", "--bind", "127.0.0.1", "--amqp-port", "0",
            "--stomp-port", "0", "--web-stomp-port", "0", "--mqtt-port", "0",
            "--web-mqtt-port", "0", "--prometheus-port", "0", "--http-port", "0",
            "--data-dir", os.path.join(home_dir, "data"), *extra]


def clean_env(home_dir):
    env = dict(os.environ, HOME=home_dir)
    for k in ("WARREN_CLUSTER_COOKIE", "WARREN_CLUSTER_COOKIE_FILE", "WARREN_CLUSTER_PORT",
              "WARREN_SEED_NODES", "WARREN_NODE_NAME"):
        env.pop(k, None)
    return env


def run_until(cmd, env, marker, timeout=12.0):
    """Start, wait until the log shows ``marker`` or the process exits;
    return (exit code or None if still running, log)."""
    log_path = os.path.join(env["HOME"], "out.log")
    with open(log_path, "w") as out:
        p = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env,
                             stdin=subprocess.DEVNULL)
    try:
        deadline = time.time() + timeout
        while time.time() < deadline:
            with open(log_path, errors="replace") as f:
                text = f.read()
            if marker in text or p.poll() is not None:
                break
            time.sleep(0.1)
        return p.poll(), text
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_world_readable_cookie_refuses_to_start():
    with tempfile.TemporaryDirectory() as home:
        bad = write_cookie(home, "a-cookie-value", mode=0o644)
        code, log = run_until(server_cmd(home, "--cluster-port", str(free_port()),
                                         "--cluster-cookie-file", bad),
                              clean_env(home), "listening on")
        assert code == 2, log
        assert f"cookie file {bad} must be accessible by owner only" in log, log
        # The default file too.
        default = os.path.join(home, ".warren.cookie")
        os.rename(bad, default)
        code, log = run_until(server_cmd(home, "--cluster-port", str(free_port())),
                              clean_env(home), "listening on")
        assert code == 2 and "must be accessible by owner only" in log, log


def test_single_node_never_reads_the_cookie():
    with tempfile.TemporaryDirectory() as home:
        bad = write_cookie(home, "a-cookie-value", mode=0o644)
        os.rename(bad, os.path.join(home, ".warren.cookie"))
        code, log = run_until(server_cmd(home), clean_env(home), "AMQP 0-9-1 listener started",
                              timeout=20)
        assert code is None and "AMQP 0-9-1 listener started" in log, log
        assert "cookie" not in log, log


def test_default_cookie_is_created_owner_only():
    with tempfile.TemporaryDirectory() as home:
        code, log = run_until(server_cmd(home, "--cluster-port", str(free_port())),
                              clean_env(home), "listening on")
        assert code is None, log
        path = os.path.join(home, ".warren.cookie")
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert len(open(path).read().strip()) >= 32
        # Both a value and a file: refused, saying so.
        env = dict(clean_env(home), WARREN_CLUSTER_COOKIE="x")
        code, log = run_until(server_cmd(home, "--cluster-port", str(free_port()),
                                         "--cluster-cookie-file", path), env, "listening on")
        assert code == 2 and "set one" in log, log
