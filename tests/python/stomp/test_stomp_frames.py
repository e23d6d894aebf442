"""Frame-level edge cases on raw sockets: bodies with NUL (content-length),
CR LF line endings, frames split across writes, heart-beat EOLs between
frames, and what happens to input that cannot be parsed."""

import time

import pytest

from stomp_helpers import RawClient, unique


@pytest.fixture
def pair(names):
    """A connected raw client subscribed to a fresh queue, and the queue."""
    q = names.track_queue(unique("raw"))
    raw = RawClient()
    raw.connect("1.2")
    raw.send(b"SUBSCRIBE\ndestination:/queue/" + q.encode() + b"\nid:s\nreceipt:sub\n\n\x00")
    assert raw.frame().headers["receipt-id"] == "sub"
    yield raw, q
    raw.close()


def test_content_length_body_with_nul(pair):
    raw, q = pair
    body = b"before\x00after\x00"
    raw.send(b"SEND\ndestination:/queue/" + q.encode() + b"\ncontent-length:" +
             str(len(body)).encode() + b"\n\n" + body + b"\x00")
    m = raw.frame()
    assert m.command == "MESSAGE"
    assert m.body == body
    assert m.headers["content-length"] == str(len(body))


def test_crlf_line_endings(pair):
    raw, q = pair
    raw.send(b"SEND\r\ndestination:/queue/" + q.encode() + b"\r\nreceipt:r\r\n\r\ncrlf\x00\r\n")
    frames = [raw.frame(), raw.frame()]
    assert {f.command for f in frames} == {"RECEIPT", "MESSAGE"}
    assert [f.body for f in frames if f.command == "MESSAGE"] == [b"crlf"]


def test_frame_split_across_writes(pair):
    raw, q = pair
    frame = (b"SEND\ndestination:/queue/" + q.encode() +
             b"\ncontent-length:5\nreceipt:split\n\nhello\x00")
    for i in range(0, len(frame), 3):
        raw.send(frame[i:i + 3])
        time.sleep(0.005)
    got = [raw.frame(), raw.frame()]
    assert {f.command for f in got} == {"RECEIPT", "MESSAGE"}
    assert [f.body for f in got if f.command == "MESSAGE"] == [b"hello"]


def test_many_frames_in_one_write_and_eols_between(pair):
    raw, q = pair
    frames = b"".join(b"\n\r\nSEND\ndestination:/queue/" + q.encode() + b"\n\n" +
                      str(i).encode() + b"\x00" for i in range(50))
    raw.send(frames + b"\n\n")
    got = [raw.frame() for _ in range(50)]
    assert [f.body for f in got] == [str(i).encode() for i in range(50)]


def test_escaped_headers_round_trip_in_1_2(pair):
    raw, q = pair
    raw.send(b"SEND\ndestination:/queue/" + q.encode() +
             b"\nweird\\cname:a\\nb\\\\c\\rd\n\nx\x00")
    m = raw.frame()
    assert m.headers["weird:name"] == "a\nb\\c\rd"


def test_unparsable_frame_closes_the_connection_others_unaffected(warren, names):
    q = names.track_queue(unique("other"))
    other = RawClient()
    other.connect("1.2")
    other.send(b"SUBSCRIBE\ndestination:/queue/" + q.encode() + b"\nid:s\nreceipt:s\n\n\x00")
    assert other.frame().headers["receipt-id"] == "s"
    bad = RawClient()
    try:
        bad.connect("1.2")
        # A CR not followed by LF cannot be parsed.
        bad.send(b"SEND\rX\ndestination:/queue/x\n\nx\x00")
        f = bad.frame()
        if warren:
            # Issue 10 asks for an ERROR frame before the close.
            assert f is not None and f.command == "ERROR", f
            assert f.headers["message"] == "Invalid frame"
        else:
            # RabbitMQ 3.10 closes without a word.
            assert f is None
        assert bad.wait_closed()
        other.send(b"SEND\ndestination:/queue/" + q.encode() + b"\n\nstill fine\x00")
        m = other.frame()
        assert m.command == "MESSAGE" and m.body == b"still fine"
    finally:
        bad.close()
        other.close()


def test_oversized_headers_are_refused(warren):
    if not warren:
        pytest.skip("RabbitMQ 3.10 has no header size limit (3.12 added stomp.max_frame_size)")
    bad = RawClient()
    other = RawClient()
    try:
        bad.connect("1.2")
        other.connect("1.2")
        huge = b"x" * (1024 * 1024 + 10)
        try:
            bad.send(b"SEND\ndestination:/queue/x\nbig:" + huge + b"\n\nx\x00")
        except (BrokenPipeError, ConnectionResetError):
            pass
        f = bad.frame()
        assert f is not None and f.command == "ERROR", f
        assert f.headers["message"] == "Invalid frame"
        assert b"headers longer than" in f.body
        assert bad.wait_closed()
        other.send(b"BEGIN\ntransaction:t\nreceipt:alive\n\n\x00")
        assert other.frame().headers["receipt-id"] == "alive"
    finally:
        bad.close()
        other.close()


def test_unparsable_frame_before_connect(warren):
    raw = RawClient()
    try:
        raw.send(b"CONNECT\nbad header without colon\n\n\x00")
        f = raw.frame()
        if warren:
            assert f is not None and f.headers["message"] == "Invalid frame"
        assert raw.wait_closed()
    finally:
        raw.close()
