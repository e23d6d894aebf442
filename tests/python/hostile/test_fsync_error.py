"""fsync error: once the disk reports EIO on fsync of the message log, the
broker logs it and confirms nothing more (no basic.ack for any message
published after the error; they are not nacked either, the publisher waits),
it keeps running, and after kill -9 and a restart (on a healthy disk) every
message it did confirm is there, intact.

Why no confirm, ever again, in this process: after a failed fsync Linux may
drop the dirty pages and report a later fsync as successful without them
("fsyncgate", PostgreSQL 2018), so no later fsync proves anything.

The error is injected with an LD_PRELOAD shim (failsync.c, built here with
the C compiler) that fails fsync/fdatasync on files under the data dir's
``messages/`` once a trigger file exists. The test is skipped when there is
no C compiler or the binary is not dynamically linked.
"""

import os
import shutil
import socket
import struct
import subprocess
import time

import pytest

from rawlogin import _shortstr, channel_method, channel_open, open_connection, read_method

HERE = os.path.dirname(__file__)
QUEUE = "fsync.q"
BEFORE = 200
AFTER = 100


@pytest.fixture(scope="module")
def failsync_so(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the fsync-failing shim")
    out = str(tmp_path_factory.mktemp("failsync") / "failsync.so")
    r = subprocess.run([cc, "-shared", "-fPIC", "-O2", "-o", out,
                        os.path.join(HERE, "failsync.c"), "-ldl"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot build the shim: {r.stderr.strip()}")
    return out


def persistent_publish(ch, routing_key, body):
    method = channel_method(ch, 60, 40, struct.pack(">H", 0) + _shortstr(b"")
                            + _shortstr(routing_key.encode()) + b"\x00")
    # Property flags: delivery-mode only (bit 12), = 2 (persistent).
    header = struct.pack(">HHQHB", 60, 0, len(body), 0x1000, 2)
    return (method + struct.pack(">BHI", 2, ch, len(header)) + header + b"\xce"
            + struct.pack(">BHI", 3, ch, len(body)) + body + b"\xce")


class ConfirmingPublisher:
    """A raw AMQP channel in confirm mode: publishes numbered persistent
    messages and records every delivery tag the broker acked or nacked."""

    def __init__(self, port):
        self.sock = open_connection(port)
        self.buf = bytearray()
        self.sock.sendall(channel_open(1))
        assert read_method(self.sock, self.buf)[:2] == (20, 11)
        # queue.declare durable, then confirm.select.
        self.sock.sendall(channel_method(1, 50, 10, struct.pack(">H", 0)
                                         + _shortstr(QUEUE.encode()) + bytes([0x02])
                                         + struct.pack(">I", 0)))
        assert read_method(self.sock, self.buf)[:2] == (50, 11)
        self.sock.sendall(channel_method(1, 85, 10, b"\x00"))
        assert read_method(self.sock, self.buf)[:2] == (85, 11)
        self.published = 0
        self.acked = set()
        self.nacked = set()

    def publish(self, n):
        frames = []
        for _ in range(n):
            self.published += 1
            frames.append(persistent_publish(1, QUEUE, body(self.published)))
        self.sock.sendall(b"".join(frames))

    def collect(self, seconds):
        """Read confirms for ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.sock.settimeout(left)
            try:
                cls, mid, args = read_method(self.sock, self.buf)
            except socket.timeout:
                return
            if (cls, mid) in ((60, 80), (60, 120)):
                tag, bits = struct.unpack(">QB", args[:9])
                done = self.acked if mid == 80 else self.nacked
                tags = range(1, tag + 1) if bits & 1 else [tag]
                done.update(t for t in tags if t not in self.acked and t not in self.nacked)
            else:
                raise AssertionError(f"unexpected method {(cls, mid)}")

    def wait_confirmed(self, n, timeout=30):
        deadline = time.monotonic() + timeout
        while len(self.acked) + len(self.nacked) < n:
            assert time.monotonic() < deadline, f"{len(self.acked)} of {n} confirmed"
            self.collect(0.2)


def body(i):
    return f"msg-{i:06d}-".encode() + b"\x5a" * 2000


@pytest.mark.timeout(120)
def test_fsync_error_stops_confirms_and_keeps_what_was_confirmed(broker_factory, failsync_so,
                                                                 monkeypatch):
    b = broker_factory()
    trigger = os.path.join(b.root, "fail-fsync")
    monkeypatch.setenv("LD_PRELOAD", failsync_so)
    monkeypatch.setenv("FAILSYNC_TRIGGER", trigger)
    monkeypatch.setenv("FAILSYNC_MATCH", os.path.join(b.data_dir, "messages") + "/")
    b.start()
    with open(f"/proc/{b.pid}/maps") as f:
        if "failsync" not in f.read():
            pytest.skip("the broker binary did not load the LD_PRELOAD shim")
    monkeypatch.delenv("LD_PRELOAD")

    pub = ConfirmingPublisher(b.port)
    pub.publish(BEFORE)
    pub.wait_confirmed(BEFORE)
    assert pub.acked == set(range(1, BEFORE + 1)) and not pub.nacked

    open(trigger, "w").close()
    pub.publish(AFTER)
    pub.collect(3.0)
    deadline = time.monotonic() + 10
    while "message log fsync failed" not in b.log_text():
        assert time.monotonic() < deadline, "the fsync error was not logged"
        time.sleep(0.1)
    after = set(range(BEFORE + 1, BEFORE + AFTER + 1))
    # Nothing published after the error is confirmed, now or later.
    pub.publish(AFTER)
    pub.collect(2.0)
    late = after | set(range(BEFORE + AFTER + 1, BEFORE + 2 * AFTER + 1))
    assert not (pub.acked & late), f"confirmed after the fsync error: {sorted(pub.acked & late)[:10]}"
    assert not pub.nacked, "documented: no nacks, confirms just stop"
    assert b.alive(), "broker died on the fsync error"
    assert "panicked" not in b.log_text()
    confirmed = set(pub.acked)
    pub.sock.close()

    b.kill()
    os.unlink(trigger)
    b.start()
    c = b.connect()
    ch = c.channel()
    got = {}
    while True:
        method, _props, payload = ch.basic_get(QUEUE, auto_ack=True)
        if method is None:
            break
        i = int(payload[4:10])
        assert payload == body(i), f"message {i} corrupted"
        assert i not in got, f"message {i} twice"
        got[i] = True
    c.close()
    missing = confirmed - set(got)
    assert not missing, f"confirmed but lost: {sorted(missing)[:10]}"
    print(f"\n{len(confirmed)} confirmed before the fsync error, all there after kill -9; "
          f"{len(got)} recovered in all (of {pub.published} published)")


PAGED_QUEUE = "fsync.paged"
PAGED = 200
PAGED_BODY = 64 * 1024


def paged_body(i):
    return f"paged-{i:06d}-".encode() + bytes([i % 251]) * (PAGED_BODY - 13)


@pytest.mark.timeout(120)
def test_transient_messages_paged_out_after_an_fsync_error_stay_readable(
        broker_factory, failsync_so, monkeypatch):
    """Transient messages live in the message log once paged out of memory:
    after an fsync error the log must keep writing them (unsynced, and
    nothing confirmed), or they are gone and a consumer reading them back
    waits forever. A 48 MiB watermark makes the queues' windows 4 MiB (see
    warren-core store/budget.rs), so 12.5 MiB of messages are mostly paged."""
    from warren_harness import MiB, toml_config
    b = broker_factory(config=toml_config({"resources": {
        "memory_high_watermark_bytes": 48 * MiB, "disk_free_limit_bytes": 1_000_000}}))
    trigger = os.path.join(b.root, "fail-fsync")
    monkeypatch.setenv("LD_PRELOAD", failsync_so)
    monkeypatch.setenv("FAILSYNC_TRIGGER", trigger)
    monkeypatch.setenv("FAILSYNC_MATCH", os.path.join(b.data_dir, "messages") + "/")
    b.start()
    with open(f"/proc/{b.pid}/maps") as f:
        if "failsync" not in f.read():
            pytest.skip("the broker binary did not load the LD_PRELOAD shim")
    monkeypatch.delenv("LD_PRELOAD")

    open(trigger, "w").close()
    pub = ConfirmingPublisher(b.port)
    pub.publish(1)  # its fsync fails
    deadline = time.monotonic() + 10
    while "message log fsync failed" not in b.log_text():
        assert time.monotonic() < deadline, "the fsync error was not logged"
        pub.collect(0.1)
    assert not pub.acked

    c = b.connect()
    ch = c.channel()
    ch.queue_declare(PAGED_QUEUE)
    for i in range(PAGED):
        ch.basic_publish("", PAGED_QUEUE, paged_body(i))
    deadline = time.monotonic() + 30
    while ch.queue_declare(PAGED_QUEUE, passive=True).method.message_count < PAGED:
        assert time.monotonic() < deadline, "messages not queued"
        time.sleep(0.1)
    got = 0
    while True:
        method, _props, payload = ch.basic_get(PAGED_QUEUE, auto_ack=True)
        if method is None:
            break
        assert payload == paged_body(got), f"message {got} wrong or out of order"
        got += 1
    c.close()
    pub.sock.close()
    print(f"\n{got} of {PAGED} transient 64 KiB messages read back after the fsync error")
    assert got == PAGED, f"{PAGED - got} transient messages lost after the fsync error"
    assert "panicked" not in b.log_text()
