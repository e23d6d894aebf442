"""Start, kill, restart and partition the nodes of a local Warren cluster.

Two kinds of cluster:

* ``Cluster``: every node on loopback with its own data dir. AMQP binds port
  0 (read back from the log); the cluster and HTTP ports are picked free
  beforehand because the other nodes (and the test) must know them (racy, so
  a start that finds one taken is retried with new ports for the whole
  cluster). No partitions.
* ``NetCluster``: every node in its own network namespace (``wcl-TAG-NAME``)
  on a bridge (10.77.0.1 is the test, node i is 10.77.0.(10+i)), all on the
  same fixed ports. ``partition(node)`` drops, inside the node's namespace,
  every packet to or from another node (the test's own address stays
  reachable, so the test can watch what an isolated node answers); ``heal``
  removes that rule. Needs root (``ip netns``, ``nft``); ``netns_unusable()``
  says why not, and the tests skip with that reason.

Every node of a cluster is given the cluster's cookie file (``cookie_file``,
in the cluster's temporary directory, never ``$HOME``); ``Node.cookie_file``
overrides it for one node.

Both have ``kill`` (SIGKILL), ``restart`` and ``wait_leader``; ``Node`` has
``connect`` (pika), ``api``/``put``/``delete`` (management API) and ``ctl``
(``warren ctl``).
"""

import base64
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Tuple

import pika

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
WARREN_BIN = os.environ.get("WARREN_BIN", os.path.join(REPO_ROOT, "target", "debug", "warren"))
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_LISTENING = re.compile(r"AMQP 0-9-1 listener started\s+addr=\S*:(\d+)")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ApiError(OSError):
    """A management API answer other than 2xx: status and parsed JSON body.
    An OSError, as urllib's HTTPError is: callers that wait for a queue to
    appear (or go) treat an error answer like an unreachable node."""

    def __init__(self, status: int, body):
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body


def write_cookie(directory: str, value: Optional[str] = None, mode: int = 0o600) -> str:
    """A cookie file (random value unless given) in ``directory``."""
    path = os.path.join(directory, "cookie" if value is None else f"cookie-{os.urandom(4).hex()}")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    with os.fdopen(fd, "w") as f:
        f.write(value if value is not None else os.urandom(24).hex())
    os.chmod(path, mode)
    return path


class Node:
    def __init__(self, cluster: "Cluster", name: str, host: str = "127.0.0.1",
                 netns: Optional[str] = None):
        self.cluster = cluster
        self.name = name
        self.host = host
        self.netns = netns
        self.dir = os.path.join(cluster.root, name)
        os.makedirs(self.dir, exist_ok=True)
        self.cluster_port = 0
        self.http_port = 0
        self.amqp_port = 0  # 0: any, read back from the log
        self.stomp_port = 0  # 0: no STOMP listener
        self.mqtt_port = 0  # 0: no MQTT listener (Cluster.mqtt: one on each node)
        self.port: Optional[int] = None
        self.proc: Optional[subprocess.Popen] = None
        self.runs = 0
        # Other nodes to name as seeds (default: every node of the cluster).
        self.seeds: Optional[List["Node"]] = None
        # This node's cookie file (default: the cluster's).
        self.cookie_file: Optional[str] = None
        # Environment for this node only, over the cluster's.
        self.env: Dict[str, str] = {}

    @property
    def cluster_addr(self) -> str:
        return f"{self.host}:{self.cluster_port}"

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
        peers = self.seeds if self.seeds is not None else self.cluster.nodes
        seeds = ",".join(f"{n.name}@{n.cluster_addr}" for n in peers if n is not self)
        cmd = [WARREN_BIN, "server", "--bind", self.host, "--amqp-port", str(self.amqp_port),
               "--stomp-port", str(self.stomp_port), "--web-stomp-port", "0",
               "--mqtt-port", str(self.mqtt_port),
               "--web-mqtt-port", "0", "--prometheus-port", "0",
               "--http-port", str(self.http_port), "--data-dir", os.path.join(self.dir, "data"),
               "--node-name", self.name, "--cluster-port", str(self.cluster_port),
               "--seed-nodes", seeds, "--log", os.environ.get("WARREN_TEST_LOG", "info,openraft=warn"),
               "--cluster-cookie-file", self.cookie_file or self.cluster.cookie_file]
        if self.cluster.config:
            cmd += ["--config", self.cluster.config]
        if self.netns:
            # `ip netns exec` execs the server: the pid is the server's.
            cmd = ["ip", "netns", "exec", self.netns] + cmd
        self.port = None
        env = dict(os.environ, **self.cluster.env, **self.env)
        # The file given above is the cookie (both at once are refused).
        if "WARREN_CLUSTER_COOKIE" not in self.cluster.env:
            env.pop("WARREN_CLUSTER_COOKIE", None)
        with open(self.log_path, "w") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, env=env)

    def wait_ready(self, timeout: float = 30.0) -> bool:
        deadline = time.time() + timeout
        while time.time() < deadline:
            text = self.log()
            m = _LISTENING.search(text)
            if m and ("HTTP API listener started" in text):
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

    def params(self, **kw) -> pika.ConnectionParameters:
        kw.setdefault("connection_attempts", 1)
        kw.setdefault("blocked_connection_timeout", 30)
        kw.setdefault("socket_timeout", 5)
        return pika.ConnectionParameters(
            self.host, self.port, credentials=pika.PlainCredentials(*self.cluster.user), **kw)

    def connect(self, **kw) -> pika.BlockingConnection:
        return pika.BlockingConnection(self.params(**kw))

    def _request(self, method: str, path: str, body=None, timeout: float = 10):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"http://{self.host}:{self.http_port}{path}",
                                     data=data, method=method)
        auth = base64.b64encode(":".join(self.cluster.user).encode()).decode()
        req.add_header("Authorization", f"Basic {auth}")
        if data is not None:
            req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                raw = r.read()
                return r.status, (json.loads(raw) if raw else None)
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                parsed = json.loads(raw)
            except ValueError:
                parsed = raw.decode(errors="replace")
            raise ApiError(e.code, parsed) from None

    def api(self, path: str, timeout: float = 10):
        return self._request("GET", path, timeout=timeout)[1]

    def put(self, path: str, body: Dict, timeout: float = 10) -> int:
        return self._request("PUT", path, body, timeout=timeout)[0]

    def delete(self, path: str, timeout: float = 10) -> int:
        return self._request("DELETE", path, timeout=timeout)[0]

    def ctl(self, *args: str, check: bool = True):
        r = subprocess.run([WARREN_BIN, "ctl", "--http-url",
                            f"http://{':'.join(self.cluster.user)}@{self.host}:{self.http_port}", *args],
                           capture_output=True, text=True, timeout=60)
        if check:
            assert r.returncode == 0, (args, r.stdout, r.stderr)
            return json.loads(r.stdout)
        return r

    def metadata(self, prefix: str = "", vhost: str = "%2F") -> Dict[str, List]:
        """The queues, exchanges and queue bindings this node knows whose
        names start with ``prefix`` (sorted, for comparing nodes)."""
        qs = sorted(q["name"] for q in self.api(f"/api/queues/{vhost}")
                    if q["name"].startswith(prefix))
        xs = sorted(x["name"] for x in self.api(f"/api/exchanges/{vhost}")
                    if x["name"].startswith(prefix))
        bs = sorted([b["destination"], b["source"], b["routing_key"]]
                    for b in self.api(f"/api/bindings/{vhost}")
                    if b["source"].startswith(prefix) and b["destination_type"] == "queue")
        return {"queues": qs, "exchanges": xs, "bindings": bs}


class Cluster:
    # The client's user, and a config file every node starts with (None).
    user = ("guest", "guest")
    config: Optional[str] = None
    # Extra environment for every node (WARREN_CLUSTER_SNAPSHOT_LOGS...).
    env: Dict[str, str] = {}
    # Give every node an MQTT listener (picked free, as the HTTP port).
    mqtt = False

    def __init__(self, names: List[str]):
        self.root = tempfile.mkdtemp(prefix="warren-cluster-")
        self.cookie_file = write_cookie(self.root)
        self.nodes = [Node(self, n) for n in names]

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def start(self) -> "Cluster":
        for _attempt in range(5):
            for n in self.nodes:
                n.cluster_port = free_port()
                n.http_port = free_port()
                if self.mqtt:
                    n.mqtt_port = free_port()
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
                last = via.api("/api/cluster-status", timeout=5)
                leader = last.get("metadata_leader")
                if leader and leader != not_:
                    return leader
            except (OSError, ApiError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"no metadata leader seen by {via.name}: {last}")

    def wait_converged(self, nodes: List[Node], prefix: str, timeout: float = 30.0
                       ) -> Dict[str, List]:
        """Wait until every node in ``nodes`` shows the same queues, exchanges
        and bindings under ``prefix``; return them (AssertionError with each
        node's view if they never agree)."""
        deadline = time.time() + timeout
        views: Dict[str, object] = {}
        while True:
            views = {}
            for n in nodes:
                try:
                    views[n.name] = n.metadata(prefix)
                except (OSError, ApiError) as e:
                    views[n.name] = f"unreachable: {e}"
            first = next(iter(views.values()))
            if isinstance(first, dict) and all(v == first for v in views.values()):
                return first
            if time.time() > deadline:
                raise AssertionError(f"nodes did not converge: {json.dumps(views, indent=1)}")
            time.sleep(0.3)

    def logs(self) -> str:
        return "\n".join(f"--- {n.name} (run {n.runs})\n{n.log()[-3000:]}" for n in self.nodes)

    def cleanup(self) -> None:
        for n in self.nodes:
            n.kill()
        if os.environ.get("WARREN_KEEP_DATA") != "1":
            shutil.rmtree(self.root, ignore_errors=True)


# --- network namespaces ---------------------------------------------------

# Both can be moved (WARREN_NETNS_SUBNET="10.78.0", WARREN_NETNS_PREFIX="wcb-")
# so that two runs on one machine (two worktrees) do not tear down each
# other's namespaces; keep the prefix 4 characters (interface names <= 15).
SUBNET = os.environ.get("WARREN_NETNS_SUBNET", "10.77.0")
TEST_ADDR = f"{SUBNET}.1"
# Fixed ports inside each node's namespace (the task's range; no clash with
# anything on the host, as each namespace has its own ports).
AMQP_PORT, HTTP_PORT, CLUSTER_PORT = 33001, 33002, 33003
_PREFIX = os.environ.get("WARREN_NETNS_PREFIX", "wcl-")


def _run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=30)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")
    return r


_unusable: Optional[str] = None
_probed = False


def netns_unusable() -> Optional[str]:
    """Why network-namespace clusters cannot run here (None if they can):
    not root, no ``ip``/``nft``, or creating a namespace fails (a container
    without CAP_SYS_ADMIN/CAP_NET_ADMIN)."""
    global _unusable, _probed
    if _probed:
        return _unusable
    _probed = True
    if not os.path.exists(WARREN_BIN):
        _unusable = f"no warren binary at {WARREN_BIN}"
    elif os.geteuid() != 0:
        _unusable = "network-namespace cluster tests need root (ip netns, nft)"
    elif not shutil.which("ip") or not shutil.which("nft"):
        _unusable = "network-namespace cluster tests need iproute2 (ip) and nftables (nft)"
    else:
        probe = f"{_PREFIX}probe{os.getpid() % 100000}"
        r = _run("ip", "netns", "add", probe, check=False)
        if r.returncode != 0:
            _unusable = f"cannot create a network namespace: {r.stderr.strip()}"
        else:
            r = _run("ip", "netns", "exec", probe, "nft", "list", "ruleset", check=False)
            _run("ip", "netns", "del", probe, check=False)
            if r.returncode != 0:
                _unusable = f"nft does not work in a network namespace: {r.stderr.strip()}"
    return _unusable


def remove_stale_namespaces() -> None:
    """Remove what an earlier, killed run of these tests left behind: its
    servers (by pid, found in its own ``wcl-`` namespaces), namespaces and
    bridge. Only the ``wcl-`` names are this harness's."""
    r = _run("ip", "netns", "list", check=False)
    for line in r.stdout.splitlines():
        ns = line.split()[0] if line.split() else ""
        if not ns.startswith(_PREFIX):
            continue
        pids = _run("ip", "netns", "pids", ns, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        _run("ip", "netns", "del", ns, check=False)
    r = _run("ip", "-o", "link", "show", check=False)
    for line in r.stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(_PREFIX):
                _run("ip", "link", "del", name, check=False)


class NetCluster(Cluster):
    """Nodes in their own network namespaces on one bridge (see the module
    comment). One at a time per machine (it owns 10.77.0.0/24)."""

    def __init__(self, names: List[str]):
        self.root = tempfile.mkdtemp(prefix="warren-netcluster-")
        self.cookie_file = write_cookie(self.root)
        # guest may only log in from loopback; the test is not on the
        # nodes' loopback, so every node gets an administrator "wcl" from a
        # config file (in memory on each node, not replicated).
        self.user = ("wcl", "wcl")
        self.config = os.path.join(self.root, "warren.toml")
        with open(self.config, "w") as f:
            f.write('[[users]]\nname = "wcl"\npassword = "wcl"\n'
                    'tags = ["administrator"]\nvhosts = ["/"]\n')
        self.tag = f"{os.getpid() % 10000:04d}"
        self.bridge = f"{_PREFIX}{self.tag}br"
        self.nodes = []
        self.partitioned: Dict[str, float] = {}
        self._next_ip = 10
        remove_stale_namespaces()
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        _run("ip", "addr", "add", f"{TEST_ADDR}/24", "dev", self.bridge)
        _run("ip", "link", "set", self.bridge, "up")
        for name in names:
            self.add_node(name)

    def add_node(self, name: str, seeds: Optional[List[str]] = None) -> Node:
        """A new node (not started) with its own namespace and address;
        ``seeds`` names the nodes it lists as seeds (default: all)."""
        self._next_ip += 1
        ip = f"{SUBNET}.{self._next_ip}"
        ns = f"{_PREFIX}{self.tag}-{name}"
        veth = f"{_PREFIX}{self.tag}{name}"[:15]
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _run("ip", "link", "set", veth, "master", self.bridge)
        _run("ip", "link", "set", veth, "up")
        _run("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        _run("ip", "-n", ns, "link", "set", "eth0", "up")
        _run("ip", "-n", ns, "link", "set", "lo", "up")
        n = Node(self, name, host=ip, netns=ns)
        n.amqp_port, n.http_port, n.cluster_port = AMQP_PORT, HTTP_PORT, CLUSTER_PORT
        if seeds is not None:
            n.seeds = [self.node(s) for s in seeds]
        self.nodes.append(n)
        return n

    def start(self) -> "NetCluster":
        for n in self.nodes:
            n.start()
        for n in self.nodes:
            if not n.wait_ready():
                raise RuntimeError(f"{n.name} did not start:\n{n.log()[-3000:]}")
        return self

    def partition(self, n: Node) -> None:
        """Cut ``n`` off from every other node (packets dropped both ways,
        so open links hang, as in a real partition); the test still reaches
        it."""
        rules = f"""
table inet wclpart {{
  chain in {{ type filter hook input priority 0; policy accept;
    iifname "lo" accept
    ip saddr {TEST_ADDR} accept
    drop
  }}
  chain out {{ type filter hook output priority 0; policy accept;
    oifname "lo" accept
    ip daddr {TEST_ADDR} accept
    drop
  }}
}}
"""
        r = subprocess.run(["ip", "netns", "exec", n.netns, "nft", "-f", "-"], input=rules,
                           capture_output=True, text=True, timeout=30)
        if r.returncode != 0:
            raise RuntimeError(f"nft partition of {n.name}: {r.stderr}")
        self.partitioned[n.name] = time.time()

    def heal(self, n: Optional[Node] = None) -> None:
        """Remove the partition of ``n`` (every partitioned node if None)."""
        for node in ([n] if n else [self.node(x) for x in list(self.partitioned)]):
            _run("ip", "netns", "exec", node.netns, "nft", "delete", "table", "inet", "wclpart",
                 check=False)
            self.partitioned.pop(node.name, None)

    def cleanup(self) -> None:
        for n in self.nodes:
            n.kill()
        for n in self.nodes:
            _run("ip", "netns", "del", n.netns, check=False)
        _run("ip", "link", "del", self.bridge, check=False)
        if os.environ.get("WARREN_KEEP_DATA") != "1":
            shutil.rmtree(self.root, ignore_errors=True)


# --- client calls with their outcome --------------------------------------

def declare_error(node: Node, queue: str, passive: bool = False,
                  durable: bool = True) -> Optional[Tuple[int, str]]:
    """Declare ``queue`` on ``node`` in a fresh connection: None when it is
    declared, else the channel error's (reply code, reply text)."""
    conn = node.connect()
    try:
        conn.channel().queue_declare(queue, passive=passive, durable=durable)
        return None
    except pika.exceptions.ChannelClosedByBroker as e:
        return e.reply_code, e.reply_text
    finally:
        if conn.is_open:
            conn.close()


def has_queue(node: Node, queue: str) -> bool:
    """Whether a passive declare of ``queue`` on ``node`` finds it (404: no;
    any other error fails the test)."""
    err = declare_error(node, queue, passive=True)
    assert err is None or err[0] == 404, err
    return err is None


def publish_confirmed(node: Node, queue: str, bodies) -> None:
    """Publish ``bodies`` persistent to ``queue`` on ``node``, each confirmed."""
    conn = node.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for body in bodies:
        ch.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2))
    conn.close()


def drain(node: Node, queue: str) -> List[bytes]:
    """Every message ``queue`` has ready now, taken with basic.get (no ack)."""
    conn = node.connect()
    ch = conn.channel()
    bodies = []
    while True:
        m, _, body = ch.basic_get(queue, auto_ack=True)
        if m is None:
            break
        bodies.append(body)
    conn.close()
    return bodies


def pump(conn, pred, timeout: float = 10.0) -> bool:
    """Run a blocking connection's callbacks until ``pred()`` holds or
    ``timeout`` passes; ``pred()``'s last answer."""
    deadline = time.time() + timeout
    while not pred() and time.time() < deadline:
        conn.process_data_events(time_limit=0.1)
    return bool(pred())


def hold_deliveries(node: Node, queue: str, prefetch: int):
    """A consumer on ``queue`` at ``node`` that never acks: (connection,
    bodies delivered, basic.cancel frames received)."""
    conn = node.connect()
    ch = conn.channel()
    ch.basic_qos(prefetch_count=prefetch)
    held: List[bytes] = []
    cancelled: List = []
    ch.add_on_cancel_callback(cancelled.append)
    ch.basic_consume(queue, lambda c, m, p, b: held.append(b))
    return conn, held, cancelled


def amqp_outcome(fn, node: Node) -> Tuple[str, Optional[int], str]:
    """Run ``fn(channel)`` on a fresh connection to ``node`` and classify
    the answer: ("ok", None, ""), ("refused", 541, text) for a cluster
    refusal, ("unavailable", 404, text) for a queue whose home node is down, ("error", code, text) for any other broker error (the change
    was checked and not made), ("unknown", None, why) when the link failed
    after the method may have been sent, ("unsent", None, why) when no
    connection could be opened."""
    try:
        conn = node.connect()
    except Exception as e:  # noqa: BLE001 - any failure to connect
        return "unsent", None, repr(e)
    try:
        fn(conn.channel())
        return "ok", None, ""
    except (pika.exceptions.ConnectionClosedByBroker,
            pika.exceptions.ChannelClosedByBroker) as e:
        kind = "refused" if e.reply_code == 541 else "error"
        if e.reply_code == 404 and "home node" in str(e.reply_text):
            # A classic queue whose home node is down (RabbitMQ's 404 text):
            # the queue exists, nothing changed.
            kind = "unavailable"
        return kind, e.reply_code, e.reply_text
    except Exception as e:  # noqa: BLE001 - link lost: outcome unknown
        return "unknown", None, repr(e)
    finally:
        try:
            if conn.is_open:
                conn.close()
        except Exception:  # noqa: BLE001
            pass


@contextlib.contextmanager
def started_netcluster(names=("n1", "n2", "n3"), env=None):
    """A ``NetCluster`` of ``names``, started, with the first node's view of a
    metadata leader; its logs printed if the test fails, removed after."""
    c = NetCluster(list(names))
    if env:
        c.env = env
    try:
        c.start()
        c.wait_leader(c.node(names[0]))
        yield c
    except BaseException:
        print(c.logs())
        raise
    finally:
        c.cleanup()


def started_cluster(names=("n1", "n2", "n3"), log_tail: int = 3000, env=None,
                    mqtt: bool = False):
    """A loopback ``Cluster`` of ``names`` (every node with ``env`` added to
    its environment), started, with the first node's view of a metadata
    leader; the tail of every running node's log printed afterwards (pytest
    shows it for a failed test), removed after. ``mqtt``: every node has an
    MQTT listener (``Node.mqtt_port``)."""
    c = Cluster(list(names))
    c.mqtt = mqtt
    if env:
        c.env = env
    c.start()
    try:
        c.wait_leader(c.node(names[0]))
        yield c
    finally:
        for n in c.nodes:
            if n.proc is not None:
                print(f"--- {n.name} log\n{n.log()[-log_tail:]}")
        c.cleanup()


def wait_for(pred, timeout: float = 10.0, what: str = "condition"):
    """``pred()``'s first truthy answer, polled every 0.2 s; a failed
    assertion, a refused request (``ApiError`` is an ``OSError``), a closed
    AMQP channel or connection or a missing key counts as not yet. Fails the
    test after ``timeout``."""
    deadline = time.time() + timeout
    last = None
    while True:
        try:
            last = pred()
            if last:
                return last
        except (AssertionError, OSError, KeyError, pika.exceptions.AMQPError) as e:
            last = e
        if time.time() >= deadline:
            raise AssertionError(f"timed out waiting for {what}: {last}")
        time.sleep(0.2)
