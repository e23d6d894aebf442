"""Vhosts, users and permissions created at runtime with ``warren ctl`` (as
with ``rabbitmqctl``): RabbitMQ's configure/write/read regex permissions are
enforced on AMQP operations (403 on the channel, other channels and
connections unaffected), everything survives kill -9, and deletions stick
after a restart too.  Only administrators may manage them."""

import subprocess

import pika
import pika.exceptions
import pytest

from warren_harness import WARREN_BIN

pytestmark = pytest.mark.timeout(90)

VHOST = "feeds"
USER, PASSWORD = "feeder", "s3cret"
# RabbitMQ's "How Permissions Work": configure/write only on feed.*, read on all.
CONF, WRITE, READ = r"^feed\..*", r"^feed\..*", ".*"

ACCESS_REFUSED = 403
NOT_ALLOWED = 530
CONNECTION_FORCED = 320


def ctl(broker, *args, user="guest", password="guest", check=True):
    """Run ``warren ctl`` against ``broker``; returns (exit code, output)."""
    url = f"amqp://{user}:{password}@127.0.0.1:{broker.port}/%2F"
    r = subprocess.run([WARREN_BIN, "ctl", "--amqp-url", url, *args],
                       capture_output=True, text=True, timeout=30)
    if check:
        assert r.returncode == 0, f"warren ctl {' '.join(args)}: {r.stdout}{r.stderr}"
    return r.returncode, r.stdout + r.stderr


def connect(broker, user=USER, password=PASSWORD, vhost=VHOST):
    return broker.connect(credentials=pika.PlainCredentials(user, password),
                          virtual_host=vhost)


def refused(conn, op):
    """Run ``op(channel)`` on a fresh channel; return the 403 text it must fail with."""
    ch = conn.channel()
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        op(ch)
        # A publish is asynchronous: a round trip makes its refusal arrive.
        ch.queue_declare("feed.sync", passive=True)
    assert e.value.reply_code == ACCESS_REFUSED, e.value
    return e.value.reply_text


def check_enforced(broker):
    """The restricted user can do what its permissions allow, and gets
    RabbitMQ's 403 for the rest, without losing its other channels."""
    conn = connect(broker)
    keep = conn.channel()  # must survive the refusals on other channels
    keep.queue_declare("feed.sync")
    keep.exchange_declare("feed.x", "topic")
    keep.queue_declare("feed.q", durable=True)
    keep.queue_bind("feed.q", "feed.x", "k.#")   # write feed.q, read feed.x
    keep.confirm_delivery()
    keep.basic_publish("feed.x", "k.1", b"hello", pika.BasicProperties(delivery_mode=2))
    method, _props, body = keep.basic_get("feed.q", auto_ack=True)   # read
    assert body == b"hello"
    keep.queue_purge("feed.q")                                        # read

    assert refused(conn, lambda ch: ch.queue_declare("other.q")) == (
        f"ACCESS_REFUSED - access to queue 'other.q' in vhost '{VHOST}' refused for user '{USER}'")
    text = refused(conn, lambda ch: ch.queue_declare("", exclusive=True))
    assert "access to queue 'amq.gen-" in text
    assert refused(conn, lambda ch: ch.exchange_declare("other.x", "fanout")) == (
        f"ACCESS_REFUSED - access to exchange 'other.x' in vhost '{VHOST}' refused for user '{USER}'")
    # The default exchange is checked as amq.default (write ^feed\. does not match).
    assert refused(conn, lambda ch: ch.basic_publish("", "feed.q", b"x")) == (
        f"ACCESS_REFUSED - access to exchange 'amq.default' in vhost '{VHOST}' refused for user '{USER}'")
    assert "exchange 'amq.fanout'" in refused(
        conn, lambda ch: ch.exchange_bind("amq.fanout", "feed.x", "k"))
    assert refused(conn, lambda ch: ch.queue_delete("other.q")).startswith(
        "ACCESS_REFUSED - access to queue 'other.q'")
    # The good channel still works after all these refusals.
    keep.basic_publish("feed.x", "k.2", b"still", pika.BasicProperties(delivery_mode=2))
    assert keep.queue_declare("feed.q", passive=True).method.message_count == 1
    keep.queue_purge("feed.q")
    conn.close()


def test_users_vhosts_permissions_survive_restart(broker):
    assert ctl(broker, "add-vhost", VHOST)[0] == 0
    ctl(broker, "add-vhost", VHOST)   # like rabbitmqctl: adding it again is fine
    ctl(broker, "add-user", USER, PASSWORD)
    rc, out = ctl(broker, "add-user", USER, "x", check=False)
    assert rc != 0 and f'User \\"{USER}\\" already exists' in out
    ctl(broker, "set-permissions", "-p", VHOST, USER, CONF, WRITE, READ)
    ctl(broker, "set-user-tags", USER, "monitoring")
    # guest has no permission on the new vhost: 530.
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        broker.connect(virtual_host=VHOST)
    assert "access to vhost 'feeds' refused for user 'guest'" in str(e.value)

    # Another user's connection on another vhost is unaffected by the refusals.
    bystander = broker.connect()
    bch = bystander.channel()
    bch.queue_declare("bystander")
    check_enforced(broker)
    bch.basic_publish("", "bystander", b"ok")
    assert bch.queue_declare("bystander", passive=True).method.message_count == 1
    bystander.close()

    broker.kill()
    broker.start()

    rc, out = ctl(broker, "list-vhosts")
    assert f'"{VHOST}"' in out
    _, out = ctl(broker, "list-users")
    assert f'"{USER}"' in out and '"monitoring"' in out
    _, out = ctl(broker, "list-permissions", "-p", VHOST)
    assert r'"^feed\\..*"' in out
    _, out = ctl(broker, "list-user-permissions", USER)
    assert f'"vhost": "{VHOST}"' in out
    check_enforced(broker)
    # The durable queue declared by the user came back too.
    conn = connect(broker)
    assert conn.channel().queue_declare("feed.q", passive=True).method.message_count == 0
    conn.close()

    # Permissions changed at runtime apply to open connections.
    conn = connect(broker)
    ctl(broker, "set-permissions", "-p", VHOST, USER, ".*", ".*", ".*")
    conn.channel().queue_declare("other.q")
    ctl(broker, "clear-permissions", "-p", VHOST, USER)
    assert "queue 'other.q'" in refused(conn, lambda ch: ch.queue_declare("other.q", durable=False))
    conn.close()
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError):
        connect(broker)
    ctl(broker, "set-permissions", "-p", VHOST, USER, CONF, WRITE, READ)

    # change-password: the old one stops working, the new one survives a restart.
    ctl(broker, "change-password", USER, "n3w")
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        connect(broker)
    broker.kill()
    broker.start()
    connect(broker, password="n3w").close()


def test_delete_user_and_vhost(broker):
    ctl(broker, "add-vhost", VHOST)
    ctl(broker, "add-user", USER, PASSWORD)
    ctl(broker, "set-permissions", "-p", VHOST, USER, ".*", ".*", ".*")
    ctl(broker, "set-permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    guest = broker.connect(virtual_host=VHOST)
    ch = guest.channel()
    ch.queue_declare("dq", durable=True)
    ch.exchange_declare("dx", "fanout", durable=True)
    ch.queue_bind("dq", "dx")
    ch.confirm_delivery()
    ch.basic_publish("dx", "", b"m", pika.BasicProperties(delivery_mode=2))

    # Deleting a user closes its connections (320) and survives a restart.
    user_conn = connect(broker)
    ctl(broker, "delete-user", USER)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        user_conn.process_data_events(time_limit=2)
        user_conn.channel()
    assert e.value.reply_code == CONNECTION_FORCED
    assert "user 'feeder' is deleted" in e.value.reply_text
    rc, out = ctl(broker, "delete-user", USER, check=False)
    assert rc != 0 and 'User \\"feeder\\" does not exist' in out

    # Deleting a vhost closes its connections and deletes its durable contents.
    ctl(broker, "delete-vhost", VHOST)
    with pytest.raises(pika.exceptions.ConnectionClosedByBroker) as e:
        guest.process_data_events(time_limit=2)
        guest.channel()
    assert e.value.reply_code == CONNECTION_FORCED
    assert "vhost 'feeds' is down" in e.value.reply_text
    rc, out = ctl(broker, "delete-vhost", VHOST, check=False)
    assert rc != 0 and "Virtual host 'feeds' does not exist" in out

    broker.kill()
    broker.start()
    _, out = ctl(broker, "list-vhosts")
    assert f'"{VHOST}"' not in out
    _, out = ctl(broker, "list-users")
    assert f'"{USER}"' not in out
    with pytest.raises(pika.exceptions.ProbableAccessDeniedError) as e:
        broker.connect(virtual_host=VHOST)
    assert "530" in str(e.value) and f"vhost {VHOST} not found" in str(e.value)
    # Re-creating the vhost gives an empty one: the old durable queue is gone.
    ctl(broker, "add-vhost", VHOST)
    ctl(broker, "set-permissions", "-p", VHOST, "guest", ".*", ".*", ".*")
    c = broker.connect(virtual_host=VHOST)
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as e:
        c.channel().queue_declare("dq", passive=True)
    assert e.value.reply_code == 404
    c.close()


def test_only_administrators_manage_users(broker):
    ctl(broker, "add-user", "pm", "pm")
    ctl(broker, "set-user-tags", "pm", "policymaker")
    ctl(broker, "set-permissions", "-p", "/", "pm", ".*", ".*", ".*")
    for args in (["add-user", "x", "y"], ["add-vhost", "v"], ["list-users"],
                 ["set-permissions", "pm", ".*", ".*", ".*"], ["delete-user", "guest"]):
        rc, out = ctl(broker, *args, user="pm", password="pm", check=False)
        assert rc != 0 and "administrator tag required" in out, (args, out)
    # A policymaker still manages policies.
    ctl(broker, "list-policies", user="pm", password="pm")
    # Tags changed at runtime apply at once.
    ctl(broker, "set-user-tags", "pm", "administrator")
    ctl(broker, "list-users", user="pm", password="pm")
    ctl(broker, "set-user-tags", "pm")
    rc, _ = ctl(broker, "list-policies", user="pm", password="pm", check=False)
    assert rc != 0


def test_guest_deleted_stays_deleted(broker):
    """Like RabbitMQ, guest is created on the first start only."""
    ctl(broker, "add-user", "admin", "admin")
    ctl(broker, "set-user-tags", "admin", "administrator")
    ctl(broker, "set-permissions", "-p", "/", "admin", ".*", ".*", ".*")
    ctl(broker, "delete-user", "guest", user="admin", password="admin")
    broker.kill()
    _restart_with_admin(broker)
    with pytest.raises(pika.exceptions.ProbableAuthenticationError):
        broker.connect()
    _, out = ctl(broker, "list-users", user="admin", password="admin")
    assert '"guest"' not in out and '"admin"' in out


def _restart_with_admin(broker):
    """Start the broker, waiting for it with the admin user (guest is gone)."""
    original = broker.params

    def params(**overrides):
        overrides.setdefault("credentials", pika.PlainCredentials("admin", "admin"))
        return original(**overrides)

    broker.params = params
    try:
        broker.start()
    finally:
        broker.params = original
