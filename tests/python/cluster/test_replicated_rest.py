"""What issue 17 still had node-local, now replicated through the metadata
Raft group (each client on another node than the one it checks):

* an MQTT persistent session's queue and bindings: a device that subscribed
  on n1 reconnects to n2, finds its session (session present) and gets the
  QoS 1 messages published meanwhile through n3; its UNSUBSCRIBE on n2 and
  its clean start on n3 reach every node;
* auto-delete and ``x-expires`` queues: deleted on every node when their
  home deletes them (no ghost left on the others);
* operator policies, global parameters, runtime parameters (management
  API and a definitions import's runtime part) and ``warren ctl
  --amqp-url`` changes (the control exchange);
* ``forget-node``: the forgotten node's classic queues go from the metadata
  and their names can be declared again (as RabbitMQ's
  ``forget_cluster_node``).

The tests run in file order against one cluster (the last one kills n3).
"""

import json
import os
import queue
import subprocess
import uuid

import pika
import pytest

from cluster_harness import WARREN_BIN, started_cluster, wait_for

mqtt = pytest.importorskip("paho.mqtt.client")

pytestmark = pytest.mark.skipif(not os.path.exists(WARREN_BIN),
                                reason=f"no warren binary at {WARREN_BIN}")


@pytest.fixture(scope="module")
def cluster():
    yield from started_cluster(log_tail=3000, mqtt=True)


def queue_names(node, vhost="%2F"):
    return {q["name"] for q in node.api(f"/api/queues/{vhost}")}


def mqtt_client(node, client_id, clean, inbox=None):
    """A connected paho client on `node`; (client, session_present)."""
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                    clean_session=clean, protocol=mqtt.MQTTv311)
    c.username_pw_set("guest", "guest")
    flags = queue.Queue()
    c.on_connect = lambda cl, ud, fl, rc, props: flags.put((fl.session_present, rc))
    if inbox is not None:
        c.on_message = lambda cl, ud, msg: inbox.put(msg)
    c.connect("127.0.0.1", node.mqtt_port, keepalive=30)
    c.loop_start()
    present, rc = flags.get(timeout=10)
    assert not rc.is_failure, rc
    return c, present


def stop(c):
    c.disconnect()
    c.loop_stop()


def mqtt_bindings(node, qname):
    return sorted(b["routing_key"] for b in node.api("/api/bindings/%2F")
                  if b["destination"] == qname and b["source"] == "amq.topic")


def test_mqtt_persistent_session_moves_between_nodes(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    cid = "dev-" + uuid.uuid4().hex[:6]
    qname = f"mqtt-subscription-{cid}qos1"
    c, present = mqtt_client(n1, cid, clean=False)
    assert not present
    done = queue.Queue()
    c.on_subscribe = lambda *a: done.put(True)
    c.subscribe("sensors/+/temp", qos=1)
    done.get(timeout=10)
    stop(c)
    # The session's queue (home n1) and its binding are on every node.
    for n in (n2, n3):
        wait_for(lambda n=n: qname in queue_names(n), what=f"{qname} on {n.name}")
        wait_for(lambda n=n: mqtt_bindings(n, qname) == ["sensors.*.temp"],
                 what=f"binding on {n.name}")
    # Published through n3 while the device is away.
    conn = n3.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    for i in range(3):
        ch.basic_publish("amq.topic", "sensors.a.temp", f"t{i}".encode(),
                         pika.BasicProperties(delivery_mode=2))
    conn.close()
    # The device comes back on n2: its session is there, with the messages.
    inbox = queue.Queue()
    c, present = mqtt_client(n2, cid, clean=False, inbox=inbox)
    assert present
    got = [inbox.get(timeout=15).payload for _ in range(3)]
    assert sorted(got) == [b"t0", b"t1", b"t2"]
    done = queue.Queue()
    c.on_unsubscribe = lambda *a: done.put(True)
    c.unsubscribe("sensors/+/temp")
    done.get(timeout=10)
    stop(c)
    for n in (n1, n3):
        wait_for(lambda n=n: mqtt_bindings(n, qname) == [], what=f"unbound on {n.name}")
    # A clean start on n3 ends the session on every node.
    c, present = mqtt_client(n3, cid, clean=True)
    assert not present
    stop(c)
    for n in (n1, n2, n3):
        wait_for(lambda n=n: qname not in queue_names(n), what=f"{qname} gone on {n.name}")


def test_mqtt_clean_session_queue_stays_local(cluster):
    n1, n2 = cluster.node("n1"), cluster.node("n2")
    cid = "clean-" + uuid.uuid4().hex[:6]
    c, _ = mqtt_client(n1, cid, clean=True)
    done = queue.Queue()
    c.on_subscribe = lambda *a: done.put(True)
    c.subscribe("a/b", qos=1)
    done.get(timeout=10)
    assert f"mqtt-subscription-{cid}qos1" in queue_names(n1)
    assert f"mqtt-subscription-{cid}qos1" not in queue_names(n2)
    stop(c)
    wait_for(lambda: f"mqtt-subscription-{cid}qos1" not in queue_names(n1), what="deleted")


def test_auto_delete_queue_goes_everywhere(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    name = "ad-" + uuid.uuid4().hex[:6]
    conn = n2.connect()
    ch = conn.channel()
    ch.queue_declare(name, auto_delete=True)
    for n in (n1, n3):
        wait_for(lambda n=n: name in queue_names(n), what=f"{name} on {n.name}")
    # A consumer on n1 (forwarded to the home, n2) comes and goes.
    remote = n1.connect()
    rch = remote.channel()
    tag = rch.basic_consume(name, lambda *a: None)
    wait_for(lambda: n2.api(f"/api/queues/%2F/{name}")["consumers"] == 1, what="consumer on home")
    rch.basic_cancel(tag)
    for n in (n1, n2, n3):
        wait_for(lambda n=n: name not in queue_names(n), what=f"{name} gone on {n.name}")
    remote.close()
    # The name is free again everywhere.
    ch.queue_declare(name, durable=True)
    wait_for(lambda: name in queue_names(n3), what="redeclared")
    ch.queue_delete(name)
    conn.close()


def test_expired_queue_goes_everywhere(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    name = "exp-" + uuid.uuid4().hex[:6]
    conn = n1.connect()
    conn.channel().queue_declare(name, arguments={"x-expires": 1500})
    conn.close()
    for n in (n2, n3):
        wait_for(lambda n=n: name in queue_names(n), what=f"{name} on {n.name}")
    for n in (n1, n2, n3):
        wait_for(lambda n=n: name not in queue_names(n), timeout=15,
                 what=f"{name} expired on {n.name}")


def test_operator_policies_and_parameters_replicated(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    assert n1.put("/api/operator-policies/%2F/op1",
                  {"pattern": "^capped", "definition": {"max-length": 7},
                   "apply-to": "queues"}) == 201
    for n in (n2, n3):
        wait_for(lambda n=n: [p["name"] for p in n.api("/api/operator-policies/%2F")] == ["op1"],
                 what=f"operator policy on {n.name}")
    # It caps a queue declared and filled on n3.
    conn = n3.connect()
    ch = conn.channel()
    ch.queue_declare("capped-q")
    ch.confirm_delivery()
    for i in range(10):
        ch.basic_publish("", "capped-q", b"x")
    wait_for(lambda: n3.api("/api/queues/%2F/capped-q")["messages"] == 7,
             what="operator policy applied")
    ch.queue_delete("capped-q")
    conn.close()
    assert n3.delete("/api/operator-policies/%2F/op1") == 204
    for n in (n1, n2):
        wait_for(lambda n=n: n.api("/api/operator-policies/%2F") == [], what="cleared")
    # The same through /api/parameters, and a vhost's limits.
    assert n2.put("/api/parameters/operator_policy/%2F/op2",
                  {"value": {"pattern": "^x", "definition": {"message-ttl": 1000},
                             "priority": 1, "apply-to": "queues"}}) == 201
    wait_for(lambda: [p["name"] for p in n1.api("/api/operator-policies/%2F")] == ["op2"],
             what="parameter-made operator policy on n1")
    assert n3.delete("/api/parameters/operator_policy/%2F/op2") == 204
    wait_for(lambda: n2.api("/api/operator-policies/%2F") == [], what="op2 cleared")
    assert n1.put("/api/parameters/vhost-limits/%2F/limits",
                  {"value": {"max-queues": 100}}) in (201, 204)
    wait_for(lambda: n3.api("/api/vhost-limits/%2F")[0]["value"] == {"max-queues": 100},
             what="limits on n3")
    assert n2.delete("/api/parameters/vhost-limits/%2F/limits") == 204
    wait_for(lambda: n1.api("/api/vhost-limits/%2F") == [], what="limits cleared")
    # Global parameters.
    assert n2.put("/api/global-parameters/gp1", {"value": {"a": 1}}) == 201
    for n in (n1, n3):
        wait_for(lambda n=n: n.api("/api/global-parameters/gp1")["value"] == {"a": 1},
                 what=f"global parameter on {n.name}")
    assert n1.delete("/api/global-parameters/gp1") == 204
    for n in (n2, n3):
        wait_for(lambda n=n: "gp1" not in {g["name"] for g in n.api("/api/global-parameters")},
                 what=f"global parameter gone on {n.name}")


def ctl_amqp(node, *args):
    url = f"amqp://guest:guest@127.0.0.1:{node.port}/%2F"
    r = subprocess.run([WARREN_BIN, "ctl", "--amqp-url", url, *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, r.stdout, r.stderr)
    return r.stdout


def test_ctl_over_amqp_replicated(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    ctl_amqp(n2, "add-vhost", "ctlv")
    for n in (n1, n3):
        wait_for(lambda n=n: "ctlv" in {v["name"] for v in n.api("/api/vhosts")},
                 what=f"vhost on {n.name}")
    ctl_amqp(n3, "set-policy", "ctlp", "^c", json.dumps({"max-length": 3}),
             "--apply-to", "queues")
    wait_for(lambda: [p["name"] for p in n1.api("/api/policies/%2F")] == ["ctlp"],
             what="policy on n1")
    ctl_amqp(n1, "clear-policy", "ctlp")
    wait_for(lambda: n2.api("/api/policies/%2F") == [], what="policy cleared on n2")
    ctl_amqp(n1, "delete-vhost", "ctlv")
    for n in (n2, n3):
        wait_for(lambda n=n: "ctlv" not in {v["name"] for v in n.api("/api/vhosts")},
                 what=f"vhost gone on {n.name}")


def test_definitions_import_runtime_part_replicated(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    defs = {
        "users": [{"name": "imp-user", "password": "pw", "tags": "",
                   "limits": {"max-connections": 4}}],
        "vhosts": [{"name": "imp-v"}],
        "parameters": [
            {"vhost": "imp-v", "component": "vhost-limits", "name": "limits",
             "value": {"max-queues": 9}},
            {"vhost": "imp-v", "component": "operator_policy", "name": "imp-op",
             "value": {"pattern": "^q", "definition": {"max-length": 2},
                       "priority": 0, "apply-to": "queues"}}],
        "global_parameters": [{"name": "imp-gp", "value": "on"}],
    }
    status, _ = n1._request("POST", "/api/definitions", defs)
    assert status in (200, 201, 204), status
    for n in (n2, n3):
        wait_for(lambda n=n: n.api("/api/vhost-limits/imp-v")[0]["value"] == {"max-queues": 9},
                 what=f"imported limits on {n.name}")
        wait_for(lambda n=n: [p["name"] for p in n.api("/api/operator-policies/imp-v")]
                 == ["imp-op"], what=f"imported operator policy on {n.name}")
        wait_for(lambda n=n: n.api("/api/global-parameters/imp-gp")["value"] == "on",
                 what=f"imported global parameter on {n.name}")
        wait_for(lambda n=n: n.api("/api/user-limits/imp-user")
                 == [{"user": "imp-user", "value": {"max-connections": 4}}],
                 what=f"imported user limits on {n.name}")


def test_forget_node_drops_its_classic_queues(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    conn = n3.connect()
    ch = conn.channel()
    ch.queue_declare("on-n3", durable=True)
    ch.queue_declare("on-n3-too", durable=True)
    conn.close()
    for n in (n1, n2):
        wait_for(lambda n=n: {"on-n3", "on-n3-too"} <= queue_names(n), what=f"on {n.name}")
    n3.kill()
    # (n3 may have been the leader: wait for the next one.)
    cluster.wait_leader(n1, not_="n3")
    wait_for(lambda: n1.ctl("forget-node", "n3", check=False).returncode == 0,
             timeout=30, what="forget-node n3")
    for n in (n1, n2):
        wait_for(lambda n=n: not ({"on-n3", "on-n3-too"} & queue_names(n)), timeout=20,
                 what=f"n3's queues gone on {n.name}")
    # Declarable again, now homed on n1, and usable from n2.
    conn = n1.connect()
    ch = conn.channel()
    ch.queue_declare("on-n3", durable=True)
    conn.close()
    conn = n2.connect()
    ch = conn.channel()
    ch.confirm_delivery()
    ch.basic_publish("", "on-n3", b"again", pika.BasicProperties(delivery_mode=2))
    wait_for(lambda: n1.api("/api/queues/%2F/on-n3")["messages"] == 1, what="message on n1")
    conn.close()


def test_mqtt_subscribe_refused_without_majority(cluster):
    # n3 was forgotten above: with n2 down too, n1 is alone in a two-node
    # group, a minority.
    n1, n2 = cluster.node("n1"), cluster.node("n2")
    n2.kill()
    cid = "minority-" + uuid.uuid4().hex[:6]
    c, _ = mqtt_client(n1, cid, clean=False)
    gone = queue.Queue()
    c.on_disconnect = lambda *a: gone.put(True)
    c.subscribe("x/y", qos=1)
    gone.get(timeout=30)  # refused after the read barrier's timeout
    c.disconnect()
    c.loop_stop()
    assert f"mqtt-subscription-{cid}qos1" not in queue_names(n1)
    assert "metadata change refused" in n1.log() or "cannot reach a majority" in n1.log()
