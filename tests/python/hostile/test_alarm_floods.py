"""The memory alarm holds across protocols: STOMP and MQTT publishers flooding
64 KiB messages (plus an AMQP consumer whose socket is never read) make the
broker raise its alarm; the publishers' sockets are then no longer read (what
they can write stalls), the broker's RSS stays under the watermark plus a fixed
margin, consumers still get messages, and once the queues are drained the
publishers are read again.

RabbitMQ 3.10 does the same for its STOMP and MQTT plugins (their connections
are blocked like AMQP ones: the socket is not read while an alarm is on).
"""

import selectors
import socket
import struct
import threading
import time

import pytest

from warren_harness import MiB, toml_config

# Queues keep a window of up to 8 MiB of messages each in RAM and page the
# rest to disk. By default all windows together get 1/16 of the watermark, and
# a flood is paged out as fast as it comes (test_memory_budget.py): the alarm
# then comes and goes, which is fine but not testable as a stall. Here the
# windows are set to 64 MiB (`queue_window_bytes`): 8 queues with full windows
# hold more than the watermark, so once they fill, paging cannot bring the
# broker back under it and the alarm stays on until they are drained: the
# worst case for the alarm.
WATERMARK = 48 * MiB
WINDOWS = 64 * MiB
# RSS may pass the watermark by the windows (64 MiB here, bodies and
# properties) and the message log's pending writes (4 MiB at this
# watermark), plus what arrives between two checks of the alarm (every
# 50 ms) and allocator slack.
MARGIN = 96 * MiB
BODY = b"\xab" * (64 * 1024)
STOMP_PUBLISHERS = 4
MQTT_PUBLISHERS = 4


def stomp_send_frame(queue):
    head = (f"SEND\ndestination:/amq/queue/{queue}\ncontent-length:{len(BODY)}\n\n").encode()
    return head + BODY + b"\x00"


def mqtt_varint(n):
    out = bytearray()
    while True:
        b, n = n % 128, n // 128
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def mqtt_connect(client_id):
    var = (b"\x00\x04MQTT\x04" + bytes([0x02 | 0x80 | 0x40]) + b"\x00\x3c"
           + struct.pack(">H", len(client_id)) + client_id
           + b"\x00\x05guest" + b"\x00\x05guest")
    return b"\x10" + mqtt_varint(len(var)) + var


def mqtt_publish(topic):
    var = struct.pack(">H", len(topic)) + topic + BODY
    return b"\x30" + mqtt_varint(len(var)) + var


def bytes_read(pid):
    """Bytes the broker process has read so far (all read/recv calls): while
    its publishers are blocked it must not grow by more than a few frames.
    (What the clients manage to write is no measure: loopback socket buffers
    grow to megabytes and fill slowly on a loaded machine.)"""
    with open(f"/proc/{pid}/io") as f:
        for line in f:
            if line.startswith("rchar:"):
                return int(line.split()[1])
    raise AssertionError("no rchar in /proc/PID/io")


class Flooder:
    """A raw socket that writes ``frame`` over and over, as fast as the
    broker reads, counting what it got rid of."""

    def __init__(self, port, login, frame):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.sendall(login)
        self.sock.settimeout(10)
        reply = self.sock.recv(4096)
        assert reply, "login refused"
        self.sock.setblocking(False)
        self.frame = frame
        self.pending = memoryview(b"")
        self.written = 0

    def pump(self):
        try:
            while True:
                if not self.pending:
                    self.pending = memoryview(self.frame)
                n = self.sock.send(self.pending)
                self.pending = self.pending[n:]
                self.written += n
        except (BlockingIOError, InterruptedError):
            pass


class FloodLoop(threading.Thread):
    def __init__(self, flooders):
        super().__init__(daemon=True)
        self.flooders = flooders
        self.stop = threading.Event()
        self.error = None

    def run(self):
        sel = selectors.DefaultSelector()
        for f in self.flooders:
            sel.register(f.sock, selectors.EVENT_WRITE, f)
        try:
            while not self.stop.is_set():
                for key, _ in sel.select(timeout=0.05):
                    key.data.pump()
        except OSError as e:
            self.error = e

    def written(self):
        return sum(f.written for f in self.flooders)


@pytest.mark.timeout(180)
def test_memory_alarm_blocks_stomp_and_mqtt_publishers_and_bounds_rss(broker_factory):
    b = broker_factory(
        config=toml_config({"resources": {"memory_high_watermark_bytes": WATERMARK,
                                          "disk_free_limit_bytes": 1_000_000},
                             "storage": {"queue_window_bytes": WINDOWS}}),
        stomp=True, mqtt=True).start()
    setup = b.connect()
    ch = setup.channel()
    queues = [f"flood.{i}" for i in range(8)]
    for q in queues:
        ch.queue_declare(q)
        ch.queue_bind(q, "amq.topic", routing_key=f"flood.{q[-1]}")

    # A consumer that never reads its socket: what the broker holds for it is
    # bounded by the connection's outbound high-water mark.
    slow = b.connect()
    sch = slow.channel()
    sch.basic_consume(queues[0], lambda *a: None, auto_ack=False)

    stomp_login = b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00"
    flooders = [Flooder(b.stomp_port, stomp_login, stomp_send_frame(queues[i % 8]))
                for i in range(STOMP_PUBLISHERS)]
    flooders += [Flooder(b.mqtt_port, mqtt_connect(f"flood{i}".encode()),
                         mqtt_publish(f"flood/{(i + 4) % 8}".encode()))
                 for i in range(MQTT_PUBLISHERS)]
    loop = FloodLoop(flooders)
    peak = [0]
    sampling = threading.Event()

    def sample():
        while not sampling.is_set():
            peak[0] = max(peak[0], b.rss_bytes())
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while "resource alarm: low on memory" not in b.log_text():
            assert b.alive(), "broker died"
            assert time.monotonic() < deadline, (
                f"no memory alarm after 60 s; {loop.written() / MiB:.0f} MiB written, "
                f"RSS {b.rss_bytes() / MiB:.0f} MiB")
            time.sleep(0.1)
        # Blocked: the publishers' writes stall (what is in flight in socket
        # buffers is read before the block takes hold).
        time.sleep(1.0)
        r1 = bytes_read(b.pid)
        time.sleep(2.0)
        stalled = bytes_read(b.pid) - r1
        assert stalled < 4 * len(BODY) * len(flooders), \
            f"publishers still read while blocked: {stalled / MiB:.1f} MiB in 2 s"
        assert b.rss_bytes() <= WATERMARK + MARGIN

        # Consumers keep working during the alarm; draining frees the memory.
        cons = b.connect()
        cch = cons.channel()
        method, _, body = cch.basic_get(queues[1], auto_ack=True)
        assert method is not None and body == BODY
        for q in queues:
            cch.queue_purge(q)
        # ... and the publishers are read again.
        deadline = time.monotonic() + 60
        w3 = loop.written()
        while loop.written() - w3 < 16 * len(BODY):
            assert time.monotonic() < deadline, "publishers not read again after the alarm"
            for q in queues:
                cch.queue_purge(q)
            time.sleep(0.2)
        cons.close()
    finally:
        loop.stop.set()
        loop.join(10)
        sampling.set()
        sampler.join()
        for f in flooders:
            f.sock.close()
    print(f"\nwatermark {WATERMARK / MiB:.0f} MiB: peak RSS {peak[0] / MiB:.0f} MiB, "
          f"{loop.written() / MiB:.0f} MiB published by {len(flooders)} STOMP/MQTT "
          f"publishers, broker read {stalled} bytes in 2 s while blocked")
    assert loop.error is None, loop.error
    assert peak[0] <= WATERMARK + MARGIN, peak[0] / MiB
    assert b.alive()


@pytest.mark.timeout(180)
def test_memory_alarm_holds_against_huge_headers(broker_factory):
    """STOMP SENDs whose weight is in their headers (8 headers of 64 KiB, an
    empty body): held as message properties, they count against the queues'
    in-memory windows like bodies (they did not: windows kept thousands of
    them and RSS reached 315-425 MiB under load); the publishers are blocked
    and RSS stays under the same bound as for bodies."""
    b = broker_factory(
        config=toml_config({"resources": {"memory_high_watermark_bytes": WATERMARK,
                                          "disk_free_limit_bytes": 1_000_000},
                             "storage": {"queue_window_bytes": WINDOWS}}),
        stomp=True).start()
    setup = b.connect()
    ch = setup.channel()
    queues = [f"hdr.{i}" for i in range(8)]
    for q in queues:
        ch.queue_declare(q)
    stomp_login = b"CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00"
    big = "".join(f"x-big-{k}:{'h' * 65536}\n" for k in range(8)).encode()
    flooders = [Flooder(b.stomp_port, stomp_login,
                        f"SEND\ndestination:/amq/queue/{queues[i]}\n".encode() + big + b"\n\x00")
                for i in range(8)]
    loop = FloodLoop(flooders)
    peak = 0
    loop.start()
    try:
        deadline = time.monotonic() + 60
        while "resource alarm: low on memory" not in b.log_text():
            assert time.monotonic() < deadline, (
                f"no alarm; {loop.written() / MiB:.0f} MiB written, RSS {b.rss_bytes() / MiB:.0f}")
            peak = max(peak, b.rss_bytes())
            time.sleep(0.05)
        for _ in range(20):
            peak = max(peak, b.rss_bytes())
            time.sleep(0.05)
        r1 = bytes_read(b.pid)
        for _ in range(40):
            peak = max(peak, b.rss_bytes())
            time.sleep(0.05)
        stalled = bytes_read(b.pid) - r1
        with open(f"/proc/{b.pid}/status") as f:
            kinds = " ".join(ln.split(":")[0] + "=" + ln.split()[1] for ln in f
                             if ln.startswith(("RssAnon", "RssFile", "RssShmem")))
    finally:
        loop.stop.set()
        loop.join(10)
        for f in flooders:
            f.sock.close()
    print(f"\nhuge headers: {loop.written() / MiB:.0f} MiB sent, peak RSS {peak / MiB:.0f} MiB "
          f"(watermark {WATERMARK / MiB:.0f}), {stalled} bytes read in 2 s while blocked; "
          f"at the end {kinds} kB")
    assert b.alive()
    setup.close()
    assert peak <= WATERMARK + MARGIN, f"peak RSS {peak / MiB:.0f} MiB"
    # A connection whose first SEND came after the alarm was raised kept being
    # read (its reader had already seen the alarm while not yet a publisher):
    # 33-159 MB in 2 s in 1 run of 6. Readers now look again when a batch makes
    # the connection a publisher.
    assert stalled < 4 * len(flooders[0].frame) * len(flooders), \
        f"publishers still read while blocked: {stalled} bytes in 2 s"
