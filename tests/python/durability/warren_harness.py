"""Harness for the durability suite: start / kill / restart a Warren broker
process on a private port and data dir, plus small AMQP and on-disk helpers.

Only the contract from GitHub issue 4 is assumed:
- ``warren server --bind 127.0.0.1 --amqp-port P --stomp-port S --data-dir D [--config F] --log info``
  (``S`` is 0, no STOMP listener, unless the broker was made with ``stomp=True``)
- message log segments ``D/messages/NNNNNNNN.seg``, each record framed as
  ``[len u32 LE][crc32c(payload) u32 LE][payload]``.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from typing import Dict, Iterator, List, Optional, Tuple

import pika
import pika.exceptions

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
# The binary of this checkout unless told otherwise (scripts/test.sh sets it).
WARREN_BIN = os.environ.get("WARREN_BIN", os.path.join(REPO_ROOT, "target", "debug", "warren"))
KEEP_DATA = os.environ.get("WARREN_KEEP_DATA") == "1"

NOT_FOUND = 404
RESOURCE_LOCKED = 405

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
# The line the broker logs once it has bound its AMQP port.
_LISTENING = re.compile(r"AMQP 0-9-1 listener started\s+addr=\S*:(\d+)")
# What the broker logs (then exits) when the STOMP port it was given is taken.
_STOMP_TAKEN = re.compile(r"cannot listen on \S+ \(((Web-)?STOMP|HTTP API|MQTT)\)")

MiB = 1024 * 1024


def free_port() -> int:
    """A port that was free a moment ago.  Racy (anyone may take it before it
    is used): brokers started by :class:`Broker` bind port 0 instead."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def toml_config(sections: Dict[str, Dict[str, object]]) -> str:
    """Render ``{"resources": {"memory_high_watermark_bytes": 1}}`` as TOML."""
    out = []
    for name, keys in sections.items():
        out.append(f"[{name}]")
        for k, v in keys.items():
            if isinstance(v, bool):
                v = "true" if v else "false"
            elif isinstance(v, str):
                v = '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
            out.append(f"{k} = {v}")
        out.append("")
    return "\n".join(out)


class Broker:
    """One broker "installation": a data dir that outlives broker processes.

    ``start()`` launches a process (new port each time), ``kill()`` sends
    SIGKILL, ``stop()`` a graceful signal, ``restart()`` is kill+start.
    Every process's stderr goes to its own log file under ``self.root``.
    """

    def __init__(self, root: str, config: Optional[str] = None, label: str = "warren",
                 stomp: bool = False, web: bool = False, http: bool = False,
                 mqtt: bool = False, web_mqtt: bool = False):
        self.root = root
        self.stomp = stomp
        self.mqtt = mqtt
        self.mqtt_port: int = 0
        # MQTT over WebSocket listener (port picked like STOMP's; 0 = off).
        self.web_mqtt = web_mqtt
        self.web_mqtt_port: int = 0
        self.stomp_port: int = 0
        # Web-STOMP/SSE listener (port picked like STOMP's; 0 = off).
        self.web = web
        self.web_port: int = 0
        # Management HTTP API listener (port picked like STOMP's; 0 = off).
        self.http = http
        self.http_port: int = 0
        self.label = label
        self.data_dir = os.path.join(root, "data")
        os.makedirs(self.data_dir, exist_ok=True)
        self.config_path: Optional[str] = None
        if config is not None:
            self.set_config(config)
        self.proc: Optional[subprocess.Popen] = None
        self.port: Optional[int] = None
        self.logs: List[str] = []
        self.exit_codes: List[int] = []

    # -- process control ----------------------------------------------------
    def set_config(self, text: str) -> None:
        self.config_path = os.path.join(self.root, "warren.toml")
        with open(self.config_path, "w") as f:
            f.write(text)

    @property
    def messages_dir(self) -> str:
        return os.path.join(self.data_dir, "messages")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = 60.0) -> "Broker":
        """Start a broker process and wait until it serves AMQP.

        The broker binds port 0 (the kernel picks a free port) and the port is
        read from its log: picking a free port here and handing it over would
        race with every other process on the machine (a port that is free when
        picked can be taken before the broker binds it, and then the test might
        even talk to someone else's broker listening there)."""
        assert not self.alive(), "broker already running"
        for attempt in range(5):
            self.port = None
            log_path = os.path.join(self.root, f"broker-{len(self.logs) + 1}.log")
            self.logs.append(log_path)
            # STOMP port 0 switches STOMP off, so a broker that needs it gets a
            # port picked here: racy, so a start that finds it taken (the
            # broker exits) is retried with another one.
            self.stomp_port = free_port() if self.stomp else 0
            self.web_port = free_port() if self.web else 0
            self.http_port = free_port() if self.http else 0
            self.mqtt_port = free_port() if self.mqtt else 0
            self.web_mqtt_port = free_port() if self.web_mqtt else 0
            cmd = [WARREN_BIN, "server", "--bind", "127.0.0.1", "--amqp-port", "0",
                   "--stomp-port", str(self.stomp_port),
                   "--web-stomp-port", str(self.web_port),
                   "--http-port", str(self.http_port), "--prometheus-port", "0",
                   "--mqtt-port", str(self.mqtt_port),
                   "--web-mqtt-port", str(self.web_mqtt_port),
                   "--data-dir", self.data_dir,
                   "--log", "info"]
            if self.config_path:
                cmd += ["--config", self.config_path]
            env = dict(os.environ, NO_COLOR="1")
            for k in ("WARREN_CONFIG", "WARREN_BIND", "WARREN_AMQP_PORT", "WARREN_STOMP_PORT",
                      "WARREN_WEB_STOMP_PORT", "WARREN_HTTP_PORT", "WARREN_MQTT_PORT", "WARREN_WEB_MQTT_PORT", "WARREN_PROMETHEUS_PORT",
                      "WARREN_DATA_DIR", "RUST_LOG"):
                env.pop(k, None)
            self.proc = _spawn(cmd, log_path, env)
            try:
                self._wait_ready(timeout)
                return self
            except _StompPortTaken:
                if attempt == 4:
                    raise AssertionError(
                        f"no free STOMP port in 5 attempts; log:\n{tail(self.log_text(-1))}")
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            rc = self.proc.poll()
            if rc is not None:
                self.exit_codes.append(rc)
                self.proc = None
                if (self.stomp or self.web or self.http or self.mqtt) and _STOMP_TAKEN.search(self.log_text(-1)):
                    raise _StompPortTaken()
                raise AssertionError(
                    f"broker exited during startup with code {rc}; log:\n{tail(self.log_text(-1))}")
            if self.port is None:
                m = _LISTENING.search(self.log_text(-1))
                if m:
                    self.port = int(m.group(1))
            if self.port is not None:
                try:
                    c = pika.BlockingConnection(self.params(socket_timeout=2, stack_timeout=5))
                    c.close()
                    return
                except (pika.exceptions.AMQPError, OSError):
                    pass
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"broker not accepting AMQP connections after {timeout}s; log:\n"
                    f"{tail(self.log_text(-1))}")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the broker and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.exit_codes.append(self.proc.wait(10))
        self.proc = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> Optional[int]:
        """Graceful stop with ``sig``; returns the exit code, or None if the
        broker had to be SIGKILLed after ``timeout`` seconds."""
        assert self.alive(), "broker is not running"
        self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        self.exit_codes.append(rc)
        self.proc = None
        return rc

    def restart(self, timeout: float = 30.0) -> "Broker":
        self.kill()
        return self.start(timeout)

    def cleanup(self) -> None:
        try:
            self.kill()
        except Exception:
            pass
        # Shown by pytest only when the test failed.
        for i, path in enumerate(self.logs):
            print(f"----- {self.label} process {i + 1} log ({path}) -----")
            print(tail(self._read(path), 60))
        if not KEEP_DATA:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- observation -------------------------------------------------------
    @staticmethod
    def _read(path: str) -> str:
        try:
            with open(path, "rb") as f:
                return _ANSI.sub("", f.read().decode("utf-8", "replace"))
        except FileNotFoundError:
            return ""

    def log_text(self, run: int = -1) -> str:
        """Log of process ``run`` (index into the start history; -1 = latest)."""
        return self._read(self.logs[run]) if self.logs else ""

    def log_lines(self, run: int = -1, level: Optional[str] = None) -> List[str]:
        lines = self.log_text(run).splitlines()
        if level:
            lines = [ln for ln in lines if re.search(rf"\b{level}\b", ln)]
        return lines

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS in /proc status")

    # -- AMQP ------------------------------------------------------------------
    def params(self, **overrides) -> pika.ConnectionParameters:
        kw = dict(host="127.0.0.1", port=self.port,
                  credentials=pika.PlainCredentials("guest", "guest"),
                  connection_attempts=1, socket_timeout=5, stack_timeout=10,
                  blocked_connection_timeout=None)
        kw.update(overrides)
        return pika.ConnectionParameters(**kw)

    def connect(self, **overrides) -> pika.BlockingConnection:
        return pika.BlockingConnection(self.params(**overrides))


class _StompPortTaken(Exception):
    pass


def _spawn(cmd, log_path, env, patience: float = 60.0) -> subprocess.Popen:
    """Popen, retrying while the binary is missing or busy (someone is
    re-linking it with cargo right now)."""
    deadline = time.monotonic() + patience
    while True:
        try:
            with open(log_path, "wb") as logf:
                return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf,
                                        stderr=subprocess.STDOUT, env=env)
        except OSError as e:  # ENOENT, ETXTBSY, ENOEXEC
            if time.monotonic() > deadline:
                raise AssertionError(f"cannot run {cmd[0]}: {e}")
            time.sleep(0.5)


def tail(text: str, n: int = 40) -> str:
    return "\n".join(text.splitlines()[-n:])


def new_broker_root(prefix: str = "warren-dur-") -> str:
    return tempfile.mkdtemp(prefix=prefix)


# -- AMQP helpers ------------------------------------------------------------

PERSISTENT = pika.BasicProperties(delivery_mode=2)
TRANSIENT = pika.BasicProperties(delivery_mode=1)


def passive_queue(conn: pika.BlockingConnection, name: str) -> Optional[int]:
    """Message count of queue ``name``, or None if it does not exist (404).
    405 (another connection's exclusive queue) counts as existing: -1."""
    ch = conn.channel()
    try:
        return ch.queue_declare(name, passive=True).method.message_count
    except pika.exceptions.ChannelClosedByBroker as e:
        if e.reply_code == NOT_FOUND:
            return None
        if e.reply_code == RESOURCE_LOCKED:
            return -1
        raise
    finally:
        if ch.is_open:
            ch.close()


def exchange_exists(conn: pika.BlockingConnection, name: str) -> bool:
    ch = conn.channel()
    try:
        ch.exchange_declare(name, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        if e.reply_code == NOT_FOUND:
            return False
        raise
    ch.close()
    return True


class Got:
    __slots__ = ("body", "redelivered", "properties")

    def __init__(self, body: bytes, redelivered: bool, properties):
        self.body = body
        self.redelivered = redelivered
        self.properties = properties

    def __repr__(self):
        return f"Got({self.body[:40]!r}, redelivered={self.redelivered})"


def drain(conn: pika.BlockingConnection, queue: str, *, prefetch: int = 1000,
          ack_every: int = 250, idle_timeout: float = 15.0,
          expected: Optional[int] = None) -> List[Got]:
    """Consume (manual acks, ``multiple=True`` every ``ack_every``) every message
    of ``queue`` in delivery order, then check with ``basic_get`` that it is empty.

    Stops when ``expected`` messages arrived (default: the passive-declare message
    count) or when nothing arrives for ``idle_timeout`` seconds.  Not for
    auto-delete queues (cancelling the consumer deletes them).
    """
    ch = conn.channel()
    if expected is None:
        expected = ch.queue_declare(queue, passive=True).method.message_count
    ch.basic_qos(prefetch_count=prefetch)
    out: List[Got] = []
    last_tag = 0
    unacked = 0
    if expected > 0:
        for method, props, body in ch.consume(queue, auto_ack=False,
                                              inactivity_timeout=idle_timeout):
            if method is None:
                break
            out.append(Got(body, method.redelivered, props))
            last_tag = method.delivery_tag
            unacked += 1
            if unacked >= ack_every:
                ch.basic_ack(last_tag, multiple=True)
                unacked = 0
            if len(out) >= expected:
                break
        if unacked:
            ch.basic_ack(last_tag, multiple=True)
        ch.cancel()
    # Anything left (more than the count said)?  Collect it too, so the caller
    # sees the whole content of the queue.
    while True:
        method, props, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            break
        out.append(Got(body, method.redelivered, props))
    ch.close()
    return out


def publish_confirmed(conn: pika.BlockingConnection, exchange: str, routing_key: str,
                      bodies, props=PERSISTENT, mandatory: bool = False) -> int:
    """Publish each body on a fresh confirm-mode channel; every basic_publish
    returns only after the broker's ack.  Returns how many were confirmed."""
    ch = conn.channel()
    ch.confirm_delivery()
    n = 0
    for b in bodies:
        ch.basic_publish(exchange, routing_key, b, props, mandatory=mandatory)
        n += 1
    ch.close()
    return n


BARRIER_QUEUE = "log-barrier"


def log_barrier(conn: pika.BlockingConnection) -> None:
    """Return once the acks (and purges) this connection's earlier operations
    caused are in the message log, so that a SIGKILL cannot lose them.

    The broker appends acks to its log without waiting (a lost ack only means a
    redelivery, as in RabbitMQ), so killing it right after an ack can bring the
    message back.  Its log writer takes appends in batches, in order, and
    writes a batch's acks just after confirming the batch's publishes.  So two
    confirmed persistent publishes in a row: the first one's batch may still
    carry those acks, the second one goes in a later batch, confirmed only after
    that.  (One publish is not enough: SIGKILL right after its confirm lost an
    ack about once in 30 runs on a loaded machine.)  The two messages stay in
    the durable queue :data:`BARRIER_QUEUE`: drain it where the log must empty.
    """
    conn.channel().queue_declare(BARRIER_QUEUE, durable=True)
    publish_confirmed(conn, "", BARRIER_QUEUE, [b"barrier-1", b"barrier-2"])


# -- on-disk helpers -------------------------------------------------------------

def _crc32c_table():
    poly = 0x82F63B78
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    t = _CRC32C
    for b in data:
        crc = t[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def segment_files(messages_dir: str) -> List[str]:
    """Segment paths (``NNNNNNNN.seg``) sorted by number."""
    if not os.path.isdir(messages_dir):
        return []
    names = [n for n in os.listdir(messages_dir) if re.fullmatch(r"\d{8}\.seg", n)]
    return [os.path.join(messages_dir, n) for n in sorted(names, key=lambda n: int(n[:8]))]


def dir_size(path: str) -> int:
    """Total size of the files under ``path``, from one consistent scan.

    The broker renames and deletes files while we look (compaction writes
    ``X.compact`` and renames it over ``X``; drained segments are deleted), so
    a file listed may be gone when we stat it.  Skipping it would undercount (its
    replacement may have been listed under its old name or not at all), so such
    a scan is thrown away and repeated."""
    for _attempt in range(1000):
        total = 0
        vanished = False
        for dirpath, _dirs, files in os.walk(path):
            for f in files:
                try:
                    total += os.path.getsize(os.path.join(dirpath, f))
                except FileNotFoundError:
                    vanished = True
        if not vanished:
            return total
        time.sleep(0.01)
    raise AssertionError(f"files under {path} kept vanishing while being measured")


def records(path: str) -> Iterator[Tuple[int, int]]:
    """(offset, total length) of each well-framed record with a valid crc32c,
    from the start of the segment until the first record that is not (zero
    length = preallocated/zeroed space, short, or checksum mismatch)."""
    with open(path, "rb") as f:
        data = f.read()
    off = 0
    while off + 8 <= len(data):
        ln = int.from_bytes(data[off:off + 4], "little")
        crc = int.from_bytes(data[off + 4:off + 8], "little")
        if ln == 0 or off + 8 + ln > len(data):
            return
        if crc32c(data[off + 8:off + 8 + ln]) != crc:
            return
        yield off, 8 + ln
        off += 8 + ln


def last_record(messages_dir: str) -> Tuple[str, int, int]:
    """(segment path, offset, total length) of the last valid record in the
    last segment that has any."""
    for path in reversed(segment_files(messages_dir)):
        recs = list(records(path))
        if recs:
            off, ln = recs[-1]
            return path, off, ln
    raise AssertionError(f"no records in any segment under {messages_dir}: "
                         f"{os.listdir(messages_dir) if os.path.isdir(messages_dir) else 'missing'}")


class RssSampler(threading.Thread):
    """Samples a broker's VmRSS every ``interval`` seconds until stopped."""

    def __init__(self, broker: Broker, interval: float = 0.05):
        super().__init__(daemon=True, name="rss-sampler")
        self.broker = broker
        self.interval = interval
        self.max_rss = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            try:
                self.max_rss = max(self.max_rss, self.broker.rss_bytes())
                self.samples += 1
            except (OSError, AssertionError):
                pass
            self._halt.wait(self.interval)

    def stop(self) -> int:
        self._halt.set()
        self.join(5)
        return self.max_rss
