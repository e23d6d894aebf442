"""Disk faults, on a small tmpfs the test mounts as the broker's data dir
(skipped where mounting is not permitted):

* disk alarm: a persistent publisher with confirms fills the disk until free
  space drops under ``disk_free_limit`` → ``connection.blocked``, no more
  confirms; purging the queue frees the space → ``connection.unblocked`` and
  publishing resumes;
* disk full (ENOSPC) with the alarm out of the way: writes fail → the broker
  logs it, never panics, and confirms nothing it did not write; once space
  returns, the writes are retried and confirmed; after kill -9 every
  confirmed message is there.

RabbitMQ 3.10 blocks publishers on its disk alarm the same way
(``disk_free_limit``, checked periodically). Its behaviour on ENOSPC with the
alarm off was not tried here (it would need the shared node's data dir).
"""

import os
import subprocess
import threading
import time

import pika
import pytest

from warren_harness import MiB, PERSISTENT, toml_config

BODY = b"\xcd" * (128 * 1024)
WINDOW = 8


@pytest.fixture
def tmpfs_broker(broker_factory):
    made = []

    def make(size_mib, config):
        b = broker_factory(config=config)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mib}m", "tmpfs",
                            b.data_dir], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
        made.append(b)
        return b

    yield make
    for b in made:
        b.kill()
        subprocess.run(["umount", "-l", b.data_dir], capture_output=True)


class Publisher(threading.Thread):
    """Publishes ``BODY`` persistently to ``queue`` with confirms (``WINDOW``
    in flight) on a SelectConnection, recording blocked/unblocked."""

    def __init__(self, params, queue):
        super().__init__(daemon=True)
        self.params, self.queue = params, queue
        self.blocked, self.unblocked = threading.Event(), threading.Event()
        self.ready = threading.Event()
        self.published = self.confirmed = self.nacked = 0
        self.pending = set()
        self.error = None
        self.conn = self.ch = None
        self.paused = False

    def run(self):
        try:
            self.conn = pika.SelectConnection(self.params, on_open_callback=self._open,
                                              on_open_error_callback=self._fail,
                                              on_close_callback=self._fail)
            self.conn.add_on_connection_blocked_callback(lambda *_: self.blocked.set())
            self.conn.add_on_connection_unblocked_callback(self._unblocked)
            self.conn.ioloop.start()
        except BaseException as e:  # noqa: BLE001
            self.error = e

    def _fail(self, _conn, err):
        self.error = self.error or err
        self.conn.ioloop.stop()

    def _open(self, conn):
        conn.channel(on_open_callback=self._channel)

    def _channel(self, ch):
        self.ch = ch
        ch.confirm_delivery(ack_nack_callback=self._confirm, callback=self._ready)

    def _ready(self, _frame):
        self.ready.set()
        self._pump()

    def _unblocked(self, *_):
        self.unblocked.set()
        self._pump()

    def _confirm(self, frame):
        m = frame.method
        if isinstance(m, pika.spec.Basic.Nack):
            self.nacked += 1
        tags = [t for t in self.pending if t <= m.delivery_tag] if m.multiple \
            else [m.delivery_tag]
        for t in tags:
            if t in self.pending:
                self.pending.discard(t)
                self.confirmed += 1
        self._pump()

    def _pump(self):
        while not self.paused and self.ch and self.ch.is_open and len(self.pending) < WINDOW:
            self.ch.basic_publish("", self.queue, BODY, PERSISTENT)
            self.published += 1
            self.pending.add(self.published)

    def resume(self):
        def go():
            self.paused = False
            self._pump()
        self.conn.ioloop.add_callback_threadsafe(go)

    def stop(self):
        def close():
            self.paused = True
            if self.conn.is_open:
                self.conn.close()
        if self.conn is not None:
            self.conn.ioloop.add_callback_threadsafe(close)
        self.join(10)


def wait_for(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.05)


def settle(pub, quiet=1.5, timeout=30):
    """Wait until no confirm arrived for ``quiet`` seconds; return the count."""
    deadline = time.monotonic() + timeout
    last, since = pub.confirmed, time.monotonic()
    while time.monotonic() - since < quiet:
        time.sleep(0.1)
        if pub.confirmed != last:
            last, since = pub.confirmed, time.monotonic()
        assert time.monotonic() < deadline, "confirms never settled"
    return last


def count_on_restart(b, queue):
    b.kill()
    b.start()
    c = b.connect()
    n = c.channel().queue_declare(queue, durable=True, passive=True).method.message_count
    c.close()
    return n


@pytest.mark.timeout(120)
def test_disk_alarm_blocks_publishers_and_recovers(tmpfs_broker):
    b = tmpfs_broker(64, toml_config({"resources": {"disk_free_limit_bytes": 24 * MiB}})).start()
    c = b.connect()
    ch = c.channel()
    ch.queue_declare("disk.q", durable=True)
    pub = Publisher(b.params(), "disk.q")
    pub.start()
    assert pub.ready.wait(30), pub.error
    wait_for(lambda: pub.blocked.is_set() or pub.error, 60, "connection.blocked")
    assert pub.error is None, pub.error
    confirmed = settle(pub)
    time.sleep(1.0)
    assert pub.confirmed == confirmed, "confirms while blocked"
    assert not pub.unblocked.is_set()
    assert "low on disk" in b.log_text()

    # Space returns: the queue is purged, its segments reclaimed.
    ch.queue_purge("disk.q")
    wait_for(lambda: pub.unblocked.is_set(), 60, "connection.unblocked")
    wait_for(lambda: pub.confirmed > confirmed + WINDOW, 30, "confirms after unblocking")
    pub.stop()
    assert pub.nacked == 0
    c.close()


@pytest.mark.timeout(120)
def test_disk_full_never_confirms_unwritten_and_recovers(tmpfs_broker):
    # The alarm is out of the way (1 byte), so the writes themselves hit ENOSPC.
    b = tmpfs_broker(48, toml_config({"resources": {"disk_free_limit_bytes": 1}})).start()
    c = b.connect()
    c.channel().queue_declare("full.q", durable=True)
    c.close()
    # Leave ~12 MiB free, held by a file the test deletes to make room later.
    filler = os.path.join(b.data_dir, "filler")
    st = os.statvfs(b.data_dir)
    free = st.f_bavail * st.f_frsize
    with open(filler, "wb") as f:
        f.write(b"\0" * (free - 12 * MiB))

    pub = Publisher(b.params(), "full.q")
    pub.start()
    assert pub.ready.wait(30), pub.error
    wait_for(lambda: "message log write failed" in b.log_text() or pub.error, 60,
             "a failed write")
    assert pub.error is None, pub.error
    confirmed = settle(pub)
    assert pub.published > confirmed, "everything confirmed though the disk is full"
    assert b.alive(), "broker died on ENOSPC"
    assert "panicked" not in b.log_text()

    # Room again: the unwritten records are retried and confirmed.
    os.unlink(filler)
    wait_for(lambda: pub.confirmed > confirmed + WINDOW // 2, 60,
             "confirms after space returned")
    pub.paused = True
    final = settle(pub)
    pub.stop()
    assert pub.nacked == 0
    on_disk = count_on_restart(b, "full.q")
    print(f"\ndisk full: {confirmed} confirmed before ENOSPC, {final} in the end, "
          f"{on_disk} after kill -9")
    assert on_disk >= final, (on_disk, final)
    assert "panicked" not in "".join(b.log_text(i) for i in range(len(b.logs)))
