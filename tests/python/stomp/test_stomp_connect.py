"""CONNECT/STOMP, CONNECTED, refused logins, frames before CONNECT, DISCONNECT."""

import pytest

from stomp_helpers import RawClient, connect, unique


@pytest.mark.parametrize("accept,expected", [
    (None, "1.0"), ("1.0", "1.0"), ("1.1", "1.1"), ("1.2", "1.2"),
    ("1.0,1.1,1.2", "1.2"), ("1.1,1.0", "1.1"),
])
def test_version_negotiation(accept, expected):
    raw = RawClient()
    try:
        hdr = b"" if accept is None else b"accept-version:" + accept.encode() + b"\n"
        raw.send(b"CONNECT\n" + hdr + b"login:guest\npasscode:guest\n\n\x00")
        f = raw.frame()
        assert f.command == "CONNECTED"
        assert f.headers["version"] == expected
        assert f.headers["session"].startswith("session-")
        assert f.headers["heart-beat"] == "0,0"
        assert "server" in f.headers
    finally:
        raw.close()


def test_stomp_command_and_every_version(stomp_clients, version):
    conn, c = stomp_clients(version)
    assert conn.is_connected()
    assert c.connected[0].headers["version"] == version


def test_connect_without_credentials_uses_the_default_user():
    # RabbitMQ's STOMP plugin logs in as guest/guest when CONNECT has no login.
    raw = RawClient()
    try:
        raw.send(b"CONNECT\naccept-version:1.2\n\n\x00")
        assert raw.frame().command == "CONNECTED"
    finally:
        raw.close()


def bad_connect(frame: bytes):
    raw = RawClient()
    try:
        raw.send(frame)
        f = raw.frame()
        assert f.command == "ERROR", f
        return f
    finally:
        raw.close()


def test_bad_password():
    f = bad_connect(b"CONNECT\naccept-version:1.2\nlogin:guest\npasscode:nope\n\n\x00")
    assert f.headers["message"] == "Bad CONNECT"
    assert f.body == b"Access refused for user 'guest'\n"


def test_unknown_user():
    f = bad_connect(b"CONNECT\naccept-version:1.1\nlogin:gust\npasscode:guest\n\n\x00")
    assert f.headers["message"] == "Bad CONNECT"
    assert f.body == b"Access refused for user 'gust'\n"
    assert f.headers["content-type"] == "text/plain"
    assert f.headers["version"] == "1.0,1.1,1.2"


def test_unknown_vhost():
    f = bad_connect(b"CONNECT\naccept-version:1.1\nlogin:guest\npasscode:guest\nhost:" +
                    unique("vh").encode() + b"\n\n\x00")
    assert f.headers["message"] == "Bad CONNECT"
    assert f.body.startswith(b"Virtual host '") and f.body.endswith(b"' access denied")


def test_unsupported_version():
    f = bad_connect(b"CONNECT\naccept-version:100.1\nlogin:guest\npasscode:guest\n\n\x00")
    assert f.headers["message"] == "Version mismatch"
    assert f.body == b"Supported versions are 1.0,1.1,1.2\n"


def test_bad_login_then_frames_are_illegal_until_a_good_connect():
    # RabbitMQ keeps the connection after a refused CONNECT (until its login
    # timeout); the client may try again.
    raw = RawClient()
    try:
        raw.send(b"CONNECT\naccept-version:1.2\nlogin:guest\npasscode:nope\n\n\x00")
        assert raw.frame().headers["message"] == "Bad CONNECT"
        raw.send(b"SEND\ndestination:/queue/x\n\nhi\x00")
        f = raw.frame()
        assert f.headers["message"] == "Illegal command"
        raw.connect()
    finally:
        raw.close()


def test_frame_before_connect_is_illegal():
    raw = RawClient()
    try:
        raw.send(b"SUBSCRIBE\ndestination:/queue/x\nid:1\nreceipt:r\n\n\x00")
        f = raw.frame()
        assert f.command == "ERROR"
        assert f.headers["message"] == "Illegal command"
        assert f.body == b"You must log in using CONNECT first"
        # No receipt, and the connection is still usable.
        raw.connect()
    finally:
        raw.close()


def test_disconnect_with_receipt_closes_cleanly(version):
    raw = RawClient()
    try:
        raw.connect(version)
        raw.send(b"DISCONNECT\nreceipt:bye\n\n\x00")
        f = raw.frame()
        assert f.command == "RECEIPT" and f.headers["receipt-id"] == "bye"
        assert raw.wait_closed(), "the server closes after DISCONNECT"
    finally:
        raw.close()


def test_stomp_py_disconnect_with_receipt(version):
    conn, c = connect(version)
    conn.disconnect(receipt="done")
    assert not conn.is_connected()


def test_second_connect_closes_the_connection():
    raw = RawClient()
    try:
        raw.connect()
        raw.send(b"CONNECT\naccept-version:1.2\nlogin:guest\npasscode:guest\n\n\x00")
        assert raw.wait_closed()
    finally:
        raw.close()
