"""rabbitmqadmin (RabbitMQ's CLI over this API, Debian's /usr/bin/rabbitmqadmin
3.10.8) against the broker: list, declare, publish, get, delete."""

import json
import os
import shutil
import subprocess
import urllib.parse

import pytest

from mgmt_helpers import MGMT_URL, unique, wait_for

ADMIN = os.environ.get("RABBITMQADMIN", shutil.which("rabbitmqadmin") or "/usr/bin/rabbitmqadmin")


@pytest.fixture(scope="module")
def admin():
    if not os.path.exists(ADMIN):
        pytest.skip("rabbitmqadmin is not installed (apt-get install rabbitmq-server)")
    u = urllib.parse.urlparse(MGMT_URL)

    def run(*args, check=True):
        cmd = ["python3", ADMIN, "-H", u.hostname, "-P", str(u.port or 15672),
               "-u", "guest", "-p", "guest", *args]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        if check:
            assert p.returncode == 0, (cmd, p.stdout, p.stderr)
        return p
    return run


def test_declare_list_publish_get_delete(admin, api):
    q = unique("mq-admin")
    x = unique("mx-admin")
    try:
        admin("declare", "queue", f"name={q}", "durable=true")
        admin("declare", "exchange", f"name={x}", "type=fanout")
        admin("declare", "binding", f"source={x}", f"destination={q}")
        names = [r["name"] for r in json.loads(admin("-f", "raw_json", "list", "queues").stdout)]
        assert q in names
        assert x in admin("list", "exchanges").stdout
        assert q in admin("list", "bindings").stdout
        out = admin("publish", f"exchange={x}", "routing_key=any", "payload=hello admin").stdout
        assert "Message published" in out
        out = admin("publish", "exchange=amq.default", "routing_key=nowhere-xyz", "payload=lost").stdout
        assert "not routed" in out.lower()
        got = json.loads(admin("-f", "raw_json", "get", f"queue={q}", "ackmode=ack_requeue_false").stdout)
        assert got[0]["payload"] == "hello admin"
        assert wait_for(lambda: api.get(f"/api/queues/%2F/{q}").json().get("messages") == 0)
        assert "overview" not in admin("show", "overview").stderr
        admin("list", "users")
        admin("list", "vhosts")
        admin("list", "policies")
        admin("delete", "binding", f"source={x}", f"destination={q}", "destination_type=queue",
              "properties_key=~")
        admin("delete", "queue", f"name={q}")
        admin("delete", "exchange", f"name={x}")
        assert api.get(f"/api/queues/%2F/{q}").status_code == 404
    finally:
        api.delete(f"/api/queues/%2F/{q}")
        api.delete(f"/api/exchanges/%2F/{x}")


def test_export_and_import(admin, api, tmp_path):
    f = tmp_path / "defs.json"
    admin("export", str(f))
    d = json.loads(f.read_text())
    assert "queues" in d and "users" in d
    admin("import", str(f))


def test_operator_policies_vhost_limits_and_parameters(admin, api):
    """rabbitmqadmin's operator_policy, vhost_limit and parameter types."""
    name, vhost = unique("op-admin"), unique("vh-admin")
    assert api.put(f"/api/vhosts/{vhost}").status_code == 201
    try:
        admin("-V", vhost, "declare", "operator_policy", f"name={name}", "pattern=^op",
              'definition={"max-length": 5}', "apply-to=queues")
        listed = json.loads(admin("-V", vhost, "-f", "raw_json", "list", "operator_policies").stdout)
        assert [(p["name"], p["definition"]) for p in listed] == [(name, {"max-length": 5})]
        admin("-V", vhost, "delete", "operator_policy", f"name={name}")
        admin("declare", "vhost_limit", f"vhost={vhost}", "name=max-queues", "value=100")
        limits = json.loads(admin("-f", "raw_json", "list", "vhost_limits").stdout)
        assert {"vhost": vhost, "value": {"max-queues": 100}} in limits
        params = json.loads(admin("-f", "raw_json", "list", "parameters").stdout)
        assert any(p["vhost"] == vhost and p["component"] == "vhost-limits" for p in params)
        admin("delete", "vhost_limit", f"vhost={vhost}", "name=max-queues")
        assert api.get(f"/api/vhost-limits/{vhost}").json() == []
        # A component no plugin provides: refused, as by RabbitMQ without it.
        p = admin("-V", vhost, "declare", "parameter", "component=federation-upstream",
                  f"name={name}", 'value={"uri": "amqp://x"}', check=False)
        assert p.returncode != 0
    finally:
        api.delete(f"/api/vhosts/{vhost}")
