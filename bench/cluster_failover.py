#!/usr/bin/env python3
"""Quorum-queue leader failover time on a local 3-node Warren cluster.

    bench/cluster_failover.py [--kills 20] [--bin target/release/warren] [--base 33500]

Starts n1..n3 on loopback (the port layout of scripts/cluster_nodes.sh:
AMQP BASE+10.., cluster BASE+20.., HTTP BASE+30..), declares one quorum
queue, then --kills times: reads the queue's leader from the management API,
publishes one confirmed message through a survivor to make sure the group
works, `kill -9`s the leader's process and at once publishes one persistent
message with confirms through a surviving node (a connection opened before
the kill); a nack or a dropped connection means publish again. The failover
time is from the kill to the first basic.ack: a new leader committed a
publish on a majority. The killed node is restarted and the next round waits
until the queue shows three online members again.

Writes a JSON record (every round: killed node, whether it was also the
metadata leader, failover seconds, the new leader) to
bench/results/cluster-failover-<UTC time>.json and prints median/max.
"""

import argparse
import base64
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import shutil
import urllib.request

import pika

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))


# The benchmark cluster's own cookie (never the user's $HOME/.warren.cookie).
COOKIE = f"failover-{os.getpid()}-{time.time_ns()}"


class Node:
    def __init__(self, i, base, root, binary):
        self.i = i
        self.name = f"n{i}"
        self.amqp = base + 10 + i - 1
        self.cluster = base + 20 + i - 1
        self.http = base + 30 + i - 1
        self.dir = os.path.join(root, self.name)
        self.log = os.path.join(root, f"{self.name}.log")
        self.bin = binary
        self.proc = None

    def start(self, nodes):
        seeds = ",".join(f"{n.name}@127.0.0.1:{n.cluster}" for n in nodes if n is not self)
        cmd = [self.bin, "server", "--bind", "127.0.0.1", "--amqp-port", str(self.amqp),
               "--http-port", str(self.http), "--stomp-port", "0", "--web-stomp-port", "0",
               "--mqtt-port", "0", "--web-mqtt-port", "0", "--prometheus-port", "0",
               "--data-dir", self.dir, "--node-name", self.name,
               "--cluster-port", str(self.cluster), "--seed-nodes", seeds, "--log", LOG]
        out = open(self.log, "a")
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=dict(os.environ, NO_COLOR="1",
                                              WARREN_CLUSTER_COOKIE=COOKIE))

    def kill9(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill9()

    def api(self, path, timeout=3):
        req = urllib.request.Request(f"http://127.0.0.1:{self.http}{path}")
        req.add_header("Authorization", "Basic " + base64.b64encode(b"guest:guest").decode())
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.load(r)

    def connect(self):
        return pika.BlockingConnection(pika.ConnectionParameters(
            "127.0.0.1", self.amqp, credentials=pika.PlainCredentials("guest", "guest"),
            connection_attempts=1, socket_timeout=5, blocked_connection_timeout=60))


def wait_until(pred, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # a node still starting or just killed
            last = e
        time.sleep(0.1)
    raise TimeoutError(f"{what} (last error: {last})")


def queue_info(nodes, queue):
    for n in nodes:
        if n.proc and n.proc.poll() is None:
            try:
                return n.api(f"/api/queues/%2F/{queue}")
            except Exception:
                continue
    return None


def publish_confirmed(state, factory, body, deadline):
    """Publish one persistent message with confirms until a basic.ack; the
    time of that ack. `state` holds the connection and channel (opened
    before the timed part); after a dropped connection it reconnects
    through `factory`."""
    while time.monotonic() < deadline:
        try:
            if state.get("conn") is None or state["conn"].is_closed:
                state["conn"] = factory()
                state["ch"] = None
            if state.get("ch") is None or state["ch"].is_closed:
                state["ch"] = state["conn"].channel()
                state["ch"].confirm_delivery()
            state["ch"].basic_publish("", QUEUE, body, pika.BasicProperties(delivery_mode=2))
            return time.monotonic()
        except pika.exceptions.NackError:
            continue  # nacked: try again
        except Exception:
            state["conn"] = None
            time.sleep(0.02)
    raise TimeoutError("no confirmed publish")


QUEUE = "failover-qq"
# openraft's own election timer logs "do trigger election" at info; the fast
# path (warren_cluster::failover) logs "called N election(s)". Counted per
# run: timer elections beyond the kills' would be spurious ones (flapping).
LOG = "warn,openraft::core::raft_core=info,warren_cluster::failover=info"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "warren"))
    ap.add_argument("--base", type=int, default=33500)
    ap.add_argument("--out", default=None)
    ap.add_argument("--load-seconds", type=int, default=0,
                    help="first run `warren perf` (quorum queue, 2 x 200 confirms in flight, "
                         "1 KiB) this long with no fault, and count the elections it caused")
    ap.add_argument("--keep-logs", default=None, help="copy the nodes' logs to this directory")
    a = ap.parse_args()

    root = tempfile.mkdtemp(prefix="warren-failover.")
    nodes = [Node(i, a.base, root, a.bin) for i in (1, 2, 3)]
    rounds = []
    load_run = None
    error = None
    started = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    uptime_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    try:
        for n in nodes:
            n.start(nodes)
        wait_until(lambda: all(n.api("/api/cluster-status").get("metadata_leader") for n in nodes),
                   60, "no metadata leader")
        if a.load_seconds:
            before = sum(open(n.log, errors="replace").read().count("do trigger election")
                         for n in nodes)
            perf = subprocess.run(
                [a.bin, "perf", "--uri", f"amqp://guest:guest@127.0.0.1:{nodes[0].amqp}",
                 "--queue-type", "quorum", "--queues", "1", "-x", "2", "-y", "0", "-s", "1024",
                 "-f", "-c", "200", "-z", str(a.load_seconds), "--json"],
                capture_output=True, text=True)
            after = sum(open(n.log, errors="replace").read().count("do trigger election")
                        for n in nodes)
            load_run = {"seconds": a.load_seconds, "timer_elections": after - before,
                        "uptime": subprocess.run(["uptime"], capture_output=True,
                                                 text=True).stdout.strip()}
            try:
                load_run["perf"] = {k: v for k, v in json.loads(perf.stdout).items()
                                    if not isinstance(v, (list, dict))}
            except ValueError:
                load_run["perf_error"] = (perf.stderr or perf.stdout)[-500:]
            print(f"load run: {load_run}", flush=True)
        c = nodes[0].connect()
        c.channel().queue_declare(QUEUE, durable=True, arguments={"x-queue-type": "quorum"})
        c.close()
        wait_until(lambda: len((queue_info(nodes, QUEUE) or {}).get("online", [])) == 3,
                   60, "quorum queue not online on 3 nodes")
        for r in range(a.kills):
            info = wait_until(lambda: (lambda q: q if q and q.get("leader")
                                       and len(q.get("online", [])) == 3 else None)(
                                           queue_info(nodes, QUEUE)),
                              90, "queue without a leader or 3 online members")
            leader = info["leader"]
            victim = next(n for n in nodes if n.name == leader)
            survivors = [n for n in nodes if n is not victim]
            meta_leader = survivors[0].api("/api/cluster-status").get("metadata_leader")
            # The group works before the kill (and the survivor's connection
            # is open: the timed part has no connection setup in it).
            via = survivors[r % 2]
            state = {}
            publish_confirmed(state, via.connect, b"before", time.monotonic() + 60)
            t_kill = time.monotonic()
            victim.kill9()
            t_ack = publish_confirmed(state, via.connect, b"after", time.monotonic() + 120)
            failover = t_ack - t_kill
            try:
                state["conn"].close()
            except Exception:
                pass
            new = queue_info(survivors, QUEUE) or {}
            rounds.append({"round": r + 1, "killed": leader,
                           "killed_was_metadata_leader": meta_leader == leader,
                           "published_via": via.name, "failover_s": round(failover, 3),
                           "new_leader": new.get("leader")})
            print(f"round {r + 1}: killed {leader} (metadata leader: {meta_leader == leader}), "
                  f"confirmed publish via {via.name} after {failover:.2f} s, "
                  f"new leader {new.get('leader')}", flush=True)
            victim.start(nodes)
            wait_until(lambda: victim.api("/api/overview"), 60, f"{victim.name} not back")
    except Exception as e:  # recorded with the rounds done so far
        error = f"{type(e).__name__}: {e}"
        print(f"stopped: {error}", file=sys.stderr)
    finally:
        for n in nodes:
            n.stop()
        full = {n.name: open(n.log, errors="replace").read() for n in nodes
                if os.path.exists(n.log)}
        logs = {k: v[-2000:] for k, v in full.items()}
        if a.keep_logs:
            os.makedirs(a.keep_logs, exist_ok=True)
            for n in nodes:
                if os.path.exists(n.log):
                    shutil.copy(n.log, a.keep_logs)
        elections = {k: {"timer": v.count("do trigger election"),
                         "fast": v.count("election(s) in the groups it led")}
                     for k, v in full.items()}
        shutil.rmtree(root, ignore_errors=True)
    times = [x["failover_s"] for x in rounds]
    record = {
        "what": "quorum queue leader kill -9 -> first confirmed publish via a survivor",
        "started_utc": started,
        "uptime_before": uptime_before,
        "uptime_after": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "binary": a.bin,
        "commit": subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                 capture_output=True, text=True).stdout.strip(),
        "kills": len(rounds),
        "median_s": round(statistics.median(times), 3) if times else None,
        "max_s": max(times) if times else None,
        "min_s": min(times) if times else None,
        "elections": elections,
        "load_run": load_run,
        "rounds": rounds,
    }
    if error or len(rounds) < a.kills:
        record["error"] = error
        record["log_tails"] = logs
    out = a.out or os.path.join(ROOT, "bench", "results", f"cluster-failover-{started}.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump(record, f, indent=2)
    print(f"failover over {len(rounds)} kills: median {record['median_s']} s, "
          f"max {record['max_s']} s; elections {elections} (record: {out})")
    return 0 if len(rounds) == a.kills else 1


if __name__ == "__main__":
    sys.exit(main())
