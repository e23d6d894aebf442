"""History checking for cluster fault tests: workloads that record every
operation with its outcome while a fault schedule runs, and checkers that
judge the recorded history against what the healed cluster shows.

A workload has ``run(cluster, stop)`` (client threads until ``stop`` is set),
``history`` (JSON-able records) and ``check(cluster) -> dict`` (raises
AssertionError on a violation, returns a summary). ``run_with_faults`` drives
one workload under a fault schedule and writes the record to
``bench/results/cluster-history/``. ``MetadataWorkload`` is the metadata
Raft group's; ``QuorumWorkload`` (confirmed publishes, manual-ack consumers)
is ready for quorum queues.
"""

import datetime
import json
import os
import random
import threading
import time
from typing import Dict, FrozenSet, List, Optional, Set, Tuple

import pika

from cluster_harness import REPO_ROOT, ApiError, NetCluster, Node, amqp_outcome

# Where run records go (scripts/test.sh points this at its scratch dir; the
# committed records are runs made by hand).
RESULTS_DIR = os.environ.get("WARREN_HISTORY_DIR",
                             os.path.join(REPO_ROOT, "bench", "results", "cluster-history"))

# --- the fault schedule ---------------------------------------------------


def run_faults(cluster: NetCluster, faults: int, stop: threading.Event, schedule: List[Dict],
               rng: random.Random, t0: float) -> None:
    """Apply ``faults`` faults: kill -9 of a random node (restarted 0.3-2 s
    later), and once, at the middle, a partition of a random node for 5-8 s.
    At most one node is down or cut off at a time, so a majority exists
    except while a restarted node catches up."""
    partition_at = faults // 2
    for i in range(faults):
        if stop.is_set():
            break
        victim = rng.choice(cluster.nodes)
        if i == partition_at:
            cluster.partition(victim)
            schedule.append({"t": round(time.time() - t0, 2), "fault": "partition",
                             "node": victim.name})
            time.sleep(rng.uniform(5, 8))
            cluster.heal(victim)
            schedule.append({"t": round(time.time() - t0, 2), "fault": "heal",
                             "node": victim.name})
        else:
            victim.kill()
            schedule.append({"t": round(time.time() - t0, 2), "fault": "kill -9",
                             "node": victim.name})
            time.sleep(rng.uniform(0.3, 2.0))
            victim.start()
            ok = victim.wait_ready()
            schedule.append({"t": round(time.time() - t0, 2), "fault": "restart",
                             "node": victim.name, "ok": ok})
        time.sleep(rng.uniform(0.5, 1.5))


def run_with_faults(cluster: NetCluster, workload, faults: int, seed: int,
                    name: str) -> Dict:
    """Run ``workload`` under ``faults`` faults, heal, check; record the
    schedule, the outcome counts and the verdict as JSON (also when the
    check fails)."""
    rng = random.Random(seed)
    stop = threading.Event()
    schedule: List[Dict] = []
    t0 = time.time()
    workload.t0 = t0
    threads = workload.start(cluster, stop, seed)
    time.sleep(1.0)
    error: Optional[str] = None
    summary: Dict = {}
    try:
        run_faults(cluster, faults, stop, schedule, rng, t0)
        time.sleep(1.0)
    finally:
        # Consumers drain: they stop at their first idle second from now on.
        workload.drain_from = time.time()
        stop.set()
        deadline = time.time() + 30
        for t in threads:
            t.join(timeout=max(0.1, deadline - time.time()))
        cluster.heal()
        for n in cluster.nodes:
            if not n.alive():
                n.start()
                n.wait_ready()
    try:
        cluster.wait_leader(cluster.nodes[0], timeout=30)
        summary = workload.check(cluster)
    except AssertionError as e:
        error = str(e)
    record = {
        "test": name,
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "seed": seed,
        "nodes": [n.name for n in cluster.nodes],
        "faults": sum(1 for s in schedule if s["fault"] in ("kill -9", "partition")),
        "duration_s": round(time.time() - t0, 1),
        "schedule": schedule,
        "outcomes": workload.outcome_counts(),
        "summary": summary,
        "verdict": "ok" if error is None else "violation",
        "violation": error,
        # Every operation only when it helps explain a violation, or asked
        # for with WARREN_HISTORY_FULL=1 (a long run's history is megabytes).
        "history": (workload.history
                    if error is not None or os.environ.get("WARREN_HISTORY_FULL") == "1"
                    else None),
    }
    os.makedirs(RESULTS_DIR, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    path = os.path.join(RESULTS_DIR, f"{name}-{stamp}.json")
    with open(path, "w") as f:
        json.dump(record, f, indent=1)
    record["path"] = path
    if error is not None:
        raise AssertionError(f"{error}\n(record: {path})")
    return record


# --- metadata workload ----------------------------------------------------

Fact = Tuple[str, ...]
World = FrozenSet[Fact]


def apply_op(op: Dict, w: World) -> Optional[World]:
    """The state after ``op`` in world ``w``, or None if the broker would
    refuse it there (a bind to a missing queue or exchange: 404)."""
    s: Set[Fact] = set(w)
    kind = op["op"]
    if kind == "declare_queue":
        s.add(("q", op["queue"]))
    elif kind == "delete_queue":
        s.discard(("q", op["queue"]))
        s = {f for f in s if not (f[0] == "b" and f[1] == op["queue"])}
    elif kind == "declare_exchange":
        s.add(("x", op["exchange"]))
    elif kind == "delete_exchange":
        s.discard(("x", op["exchange"]))
        s = {f for f in s if not (f[0] == "b" and f[2] == op["exchange"])}
    elif kind == "bind":
        if ("q", op["queue"]) not in s or ("x", op["exchange"]) not in s:
            return None
        s.add(("b", op["queue"], op["exchange"], op["key"]))
    elif kind == "unbind":
        # As RabbitMQ 3.10: unbind-ok even if the queue or exchange is missing.
        s.discard(("b", op["queue"], op["exchange"], op["key"]))
    return frozenset(s)


def observed_world(view: Dict[str, List], names: Set[str]) -> World:
    facts: Set[Fact] = set()
    for q in view["queues"]:
        if q in names:
            facts.add(("q", q))
    for x in view["exchanges"]:
        if x in names:
            facts.add(("x", x))
    for q, x, key in view["bindings"]:
        if q in names:
            facts.add(("b", q, x, key))
    return frozenset(facts)


class MetadataWorkload:
    """``clients`` threads declare and delete queues and exchanges and bind
    and unbind them, each operation on a random node over a fresh
    connection. Each client owns its names (``h.cN.q0``...), so its
    operations on them are sequential and the possible states after its
    history can be enumerated: an answered operation happened exactly once,
    a definite error (404) not at all and only where the state explains it;
    a refused (541) or unanswered one may or
    may not have happened (a refused change can still commit if a majority
    got it before the refusal). After healing, every node must show the same
    metadata, and each client's part must be one of its possible states.

    On top, every client also declares and deletes two shared queues
    (``h.shared.qN``): concurrent changes to the same names, where only
    convergence (every node the same) is checked."""

    def __init__(self, clients: int = 4, names: int = 2, prefix: str = "h."):
        self.clients = clients
        self.names = names
        self.prefix = prefix
        self.history: List[Dict] = []
        self._lock = threading.Lock()
        self.t0 = time.time()

    def _names(self, c: int) -> Tuple[List[str], List[str]]:
        return ([f"{self.prefix}c{c}.q{i}" for i in range(self.names)],
                [f"{self.prefix}c{c}.x{i}" for i in range(self.names)])

    def _pick(self, rng: random.Random, c: int) -> Dict:
        qs, xs = self._names(c)
        r = rng.random()
        if r < 0.1:
            return {"op": rng.choice(["declare_queue", "delete_queue"]),
                    "queue": f"{self.prefix}shared.q{rng.randrange(2)}", "shared": True}
        kind = rng.choice(["declare_queue", "delete_queue", "declare_exchange",
                           "delete_exchange", "bind", "bind", "unbind"])
        return {"op": kind, "queue": rng.choice(qs), "exchange": rng.choice(xs),
                "key": rng.choice(["k1", "k2"])}

    @staticmethod
    def _amqp(op: Dict):
        kind = op["op"]
        if kind == "declare_queue":
            return lambda ch: ch.queue_declare(op["queue"], durable=True)
        if kind == "delete_queue":
            return lambda ch: ch.queue_delete(op["queue"])
        if kind == "declare_exchange":
            return lambda ch: ch.exchange_declare(op["exchange"], "direct", durable=True)
        if kind == "delete_exchange":
            return lambda ch: ch.exchange_delete(op["exchange"])
        if kind == "bind":
            return lambda ch: ch.queue_bind(op["queue"], op["exchange"], op["key"])
        return lambda ch: ch.queue_unbind(op["queue"], op["exchange"], op["key"])

    def _client(self, cluster: NetCluster, c: int, stop: threading.Event, seed: int) -> None:
        rng = random.Random(seed * 1000 + c)
        seq = 0
        while not stop.is_set():
            op = self._pick(rng, c)
            node = rng.choice(cluster.nodes)
            start = time.time()
            kind, code, text = amqp_outcome(self._amqp(op), node)
            rec = dict(op, client=c, seq=seq, node=node.name,
                       start=round(start - self.t0, 3), end=round(time.time() - self.t0, 3),
                       outcome=kind, code=code, text=text[:200])
            seq += 1
            with self._lock:
                self.history.append(rec)
            if kind == "unsent":
                time.sleep(0.1)

    def start(self, cluster: NetCluster, stop: threading.Event, seed: int) -> List[threading.Thread]:
        threads = [threading.Thread(target=self._client, args=(cluster, c, stop, seed),
                                    daemon=True) for c in range(self.clients)]
        for t in threads:
            t.start()
        return threads

    def outcome_counts(self) -> Dict[str, int]:
        counts: Dict[str, int] = {}
        for r in self.history:
            counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        return counts

    def possible_worlds(self, c: int) -> Set[World]:
        """Every state client ``c``'s names can be in after its history.
        Counts in ``self.stale_errors`` the definite errors (404) that no
        possible state explains: a node answering from metadata older than
        what the client already saw committed elsewhere."""
        worlds: Set[World] = {frozenset()}
        for r in sorted((r for r in self.history if r["client"] == c and not r.get("shared")),
                        key=lambda r: r["seq"]):
            if r["outcome"] == "unsent":
                continue
            after = {apply_op(r, w) for w in worlds}
            if r["outcome"] == "ok":
                nxt = {w for w in after if w is not None}
                if not nxt:
                    raise AssertionError(
                        f"client {c} op {r['seq']} ({r['op']} on {r['node']}) answered ok, "
                        f"but no possible state allows it: {sorted(map(sorted, worlds))}")
                worlds = nxt
            elif r["outcome"] == "unavailable":
                # The queue's home node was down: checked, nothing changed.
                continue
            elif r["outcome"] == "error":
                # Checked and refused (404...): nothing changed. Keep the
                # states where the broker refuses it, when there are any.
                refused = {w for w, a in zip(worlds, (apply_op(r, w) for w in worlds))
                           if a is None}
                if not refused:
                    self.stale_errors.append(r)
                worlds = refused or worlds
            else:  # refused (541) or unknown: may or may not have happened
                worlds = worlds | {w for w in after if w is not None}
        return worlds

    def check(self, cluster: NetCluster) -> Dict:
        view = cluster.wait_converged(cluster.nodes, self.prefix, timeout=60)
        ok_ops = sum(1 for r in self.history if r["outcome"] == "ok")
        assert ok_ops > 0, "no operation succeeded at all"
        uncertain = 0
        self.stale_errors: List[Dict] = []
        for c in range(self.clients):
            qs, xs = self._names(c)
            names = set(qs) | set(xs)
            worlds = self.possible_worlds(c)
            seen = observed_world(view, names)
            if len(worlds) > 1:
                uncertain += 1
            if seen not in worlds:
                last = [r for r in self.history if r["client"] == c and not r.get("shared")][-8:]
                raise AssertionError(
                    f"client {c}: the healed cluster shows {sorted(seen)}, which no history "
                    f"allows; possible: {[sorted(w) for w in worlds][:6]}; last ops: {last}")
        # A definite error no possible state explains: the node decided on
        # metadata older than what the client had already seen committed.
        assert not self.stale_errors, f"answers from stale metadata: {self.stale_errors[:5]}"
        return {"operations": len(self.history), "ok": ok_ops,
                "clients_with_uncertain_state": uncertain,
                "stale_errors": len(self.stale_errors),
                "stale_error_examples": self.stale_errors[:5], "final": view}


# --- quorum queue workload (waits for x-queue-type: quorum) -------------------


def quorum_supported(node: Node, queue: str = "h.qq.probe") -> bool:
    """Declare a quorum queue and see whether the API shows it as one and a
    consumer can attach (publishing came before consuming: a build may make
    quorum queues that refuse basic.consume with 540 NOT_IMPLEMENTED)."""
    out = amqp_outcome(lambda ch: ch.queue_declare(
        queue, durable=True, arguments={"x-queue-type": "quorum"}), node)
    if out[0] != "ok":
        return False
    try:
        info = node.api(f"/api/queues/%2F/{queue}")
        consume = amqp_outcome(
            lambda ch: ch.basic_consume(queue, lambda *a: None), node)
    except (ApiError, OSError):
        return False
    finally:
        amqp_outcome(lambda ch: ch.queue_delete(queue), node)
    return info.get("type") == "quorum" and consume[0] == "ok"


class QuorumWorkload:
    """Publishers with confirms and consumers with manual acks on quorum
    queues, each connecting to a random node and reconnecting to another
    when its node dies. Checked after healing: every confirmed message was
    consumed at least once, nothing consumed was never published, and per
    (publisher, queue) the messages one consumer session gets without the
    redelivered flag come in publish order (a requeued message may overtake,
    and then carries the flag)."""

    def __init__(self, queues: int = 2, publishers: int = 4, consumers: int = 4,
                 prefix: str = "h.qq."):
        self.queues = [f"{prefix}{i}" for i in range(queues)]
        self.publishers = publishers
        self.consumers = consumers
        self.history: List[Dict] = []  # connection-level events only
        self.confirmed: Dict[Tuple[int, str], List[int]] = {}
        # (publisher, queue, seq, consumer session, redelivered)
        self.consumed: List[Tuple[int, str, int, str, bool]] = []
        self._lock = threading.Lock()
        self.t0 = time.time()
        # Set by run_with_faults when the faults end: from then on a consumer
        # leaves at its first second without a message.
        self.drain_from = float("inf")

    def declare(self, cluster: NetCluster) -> None:
        for q in self.queues:
            deadline = time.time() + 30
            while True:
                out = amqp_outcome(lambda ch, q=q: ch.queue_declare(
                    q, durable=True, arguments={"x-queue-type": "quorum"}), cluster.nodes[0])
                if out[0] == "ok" or time.time() > deadline:
                    break
                time.sleep(0.5)
            assert out[0] == "ok", out

    def _event(self, **kw) -> None:
        with self._lock:
            self.history.append(dict(kw, t=round(time.time() - self.t0, 3)))

    def _publisher(self, cluster: NetCluster, p: int, stop: threading.Event,
                   rng: random.Random) -> None:
        seq = 0
        while not stop.is_set():
            node = rng.choice(cluster.nodes)
            try:
                conn = node.connect()
                ch = conn.channel()
                ch.confirm_delivery()
                self._event(who=f"p{p}", node=node.name, event="connected")
                while not stop.is_set():
                    q = rng.choice(self.queues)
                    props = pika.BasicProperties(delivery_mode=2,
                                                 headers={"pub": p, "seq": seq})
                    # Raises on nack, or on a lost link (then unconfirmed).
                    ch.basic_publish("", q, f"{p}:{seq}".encode(), props, mandatory=True)
                    with self._lock:
                        self.confirmed.setdefault((p, q), []).append(seq)
                    seq += 1
                conn.close()
            except Exception as e:  # noqa: BLE001 - node died / refused: next node
                self._event(who=f"p{p}", node=node.name, event="lost", why=repr(e)[:160])
                seq += 1  # the unconfirmed one may or may not be in the queue
                time.sleep(0.2)

    def _consumer(self, cluster: NetCluster, c: int, stop: threading.Event,
                  rng: random.Random) -> None:
        session = 0
        while not (stop.is_set() and time.time() > self.drain_from):
            session += 1
            node = rng.choice(cluster.nodes)
            q = self.queues[c % len(self.queues)]
            try:
                conn = node.connect()
                ch = conn.channel()
                ch.basic_qos(prefetch_count=50)
                self._event(who=f"c{c}", node=node.name, event="connected")
                for method, props, body in ch.consume(q, inactivity_timeout=1.0):
                    if method is None:
                        if stop.is_set() and time.time() > self.drain_from:
                            break
                        continue
                    h = props.headers or {}
                    with self._lock:
                        self.consumed.append((h.get("pub", -1), q, h.get("seq", -1),
                                              f"c{c}.{session}", bool(method.redelivered)))
                    ch.basic_ack(method.delivery_tag)
                conn.close()
            except Exception as e:  # noqa: BLE001
                self._event(who=f"c{c}", node=node.name, event="lost", why=repr(e)[:160])
                time.sleep(0.2)

    def start(self, cluster: NetCluster, stop: threading.Event, seed: int) -> List[threading.Thread]:
        self.declare(cluster)
        threads = []
        for p in range(self.publishers):
            threads.append(threading.Thread(target=self._publisher, daemon=True, args=(
                cluster, p, stop, random.Random(seed * 100 + p))))
        for c in range(self.consumers):
            threads.append(threading.Thread(target=self._consumer, daemon=True, args=(
                cluster, c, stop, random.Random(seed * 100 + 50 + c))))
        for t in threads:
            t.start()
        return threads

    def outcome_counts(self) -> Dict[str, int]:
        return {"confirmed": sum(len(v) for v in self.confirmed.values()),
                "consumed": len(self.consumed),
                "reconnects": sum(1 for e in self.history if e["event"] == "lost")}

    def check(self, cluster: NetCluster) -> Dict:
        # Drain: consumers keep running (on the healed cluster) until no
        # message came for a while; run_with_faults already stopped them,
        # so drain what is left here.
        for q in self.queues:
            node = cluster.nodes[0]
            conn = node.connect()
            ch = conn.channel()
            while True:
                method, props, _ = ch.basic_get(q, auto_ack=True)
                if method is None:
                    break
                h = props.headers or {}
                self.consumed.append((h.get("pub", -1), q, h.get("seq", -1), "drain",
                                      bool(method.redelivered)))
            conn.close()
        got: Dict[Tuple[int, str], List[int]] = {}
        per_session: Dict[Tuple[int, str, str], List[int]] = {}
        for p, q, seq, who, redelivered in self.consumed:
            got.setdefault((p, q), []).append(seq)
            if not redelivered:
                per_session.setdefault((p, q, who), []).append(seq)
        lost = {k: sorted(set(v) - set(got.get(k, []))) for k, v in self.confirmed.items()}
        lost = {k: v for k, v in lost.items() if v}
        assert not lost, f"confirmed but never consumed: {lost}"
        published = {(p, q) for p in range(self.publishers) for q in self.queues}
        invented = [m for m in self.consumed if (m[0], m[1]) not in published]
        assert not invented, f"consumed but never published: {invented[:10]}"
        for k, seqs in per_session.items():
            assert seqs == sorted(seqs), f"order broken for publisher/queue/session {k}: {seqs[:50]}"
        return self.outcome_counts()
