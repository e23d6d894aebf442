"""Users, vhosts and permissions are the broker's: a STOMP client meets the
same refusals as an AMQP one, as RabbitMQ reports them through its plugin."""

import os
import sys

import pytest

from stomp_helpers import RawClient, unique

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "features"))


@pytest.fixture
def user(warren):
    import mgmt
    m = mgmt.WarrenCtl("/") if warren else mgmt.RabbitMQCtl("/")
    name = unique("stomp-user")
    m.add_user(name, "secret")
    yield m, name
    m.delete_user(name)


def login(name):
    raw = RawClient()
    raw.send(b"CONNECT\naccept-version:1.2\nlogin:" + name.encode() +
             b"\npasscode:secret\nhost:/\n\n\x00")
    return raw, raw.frame()


def test_no_access_to_the_vhost(user):
    _, name = user
    raw, f = login(name)
    try:
        assert f.command == "ERROR"
        assert f.headers["message"] == "Bad CONNECT"
        assert f.body == b"Virtual host '/' access denied"
    finally:
        raw.close()


def test_refused_queue_closes_the_connection(user):
    m, name = user
    m.set_permissions(name, "^stomp-ok", ".*", ".*")
    raw, f = login(name)
    try:
        assert f.command == "CONNECTED"
        q = unique("forbidden")
        raw.send(b"SEND\ndestination:/queue/" + q.encode() + b"\nreceipt:r\n\nx\x00")
        f = raw.frame()
        assert f.command == "ERROR"
        assert f.headers["message"] == "access_refused"
        assert f.body == (f"ACCESS_REFUSED - access to queue '{q}' in vhost '/' "
                          f"refused for user '{name}'").encode()
        assert raw.wait_closed()
    finally:
        raw.close()


def test_refused_publish(user, names, ch):
    m, name = user
    q = names.track_queue(unique("stomp-ok"))
    ch.queue_declare(q, durable=True)
    # May declare and read, not write to the default exchange.
    m.set_permissions(name, ".*", "^nothing$", ".*")
    raw, f = login(name)
    try:
        raw.send(b"SEND\ndestination:/queue/" + q.encode() + b"\n\nx\x00")
        f = raw.frame()
        assert f.headers["message"] == "access_refused"
        assert f.body == (b"ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' "
                          b"refused for user '" + name.encode() + b"'")
        assert raw.wait_closed()
    finally:
        raw.close()
