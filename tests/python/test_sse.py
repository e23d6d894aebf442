"""Server-Sent Events feeds (``GET /sse?destination=...`` on the Web-STOMP
port): Warren only, RabbitMQ has no such thing. Skipped unless
``WEB_STOMP_PORT`` is set (scripts/test.sh sets it for the broker it starts).

A feed is a STOMP session with one auto-ack SUBSCRIBE: the destination,
permissions and queues are STOMP's; the answer is an HTTP status (401 with
``WWW-Authenticate``, 403, 404, 400, each with a one-line text body) or a
``text/event-stream`` of ``id:``/``event:``/``data:`` events, with a comment
line (``:``) at the start and whenever 7.5-15 s pass without output.

Users and vhosts are made with ``warren ctl`` (tests/python/features/mgmt.py).
"""

import os
import socket
import sys
import threading
import time
import uuid

import pika
import pika.exceptions
import pytest
import requests

from helpers import ConsumerThread, unique, wait_until

if "WEB_STOMP_PORT" not in os.environ:
    pytest.skip("WEB_STOMP_PORT is not set (SSE feeds are Warren's only)",
                allow_module_level=True)

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "features"))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "stomp"))

HOST = os.environ.get("STOMP_HOST", "127.0.0.1")
WEB_PORT = int(os.environ["WEB_STOMP_PORT"])
URL = f"http://{HOST}:{WEB_PORT}/sse"
GUEST = ("guest", "guest")
# As everywhere in the suite: generous for what should happen at once.
TIMEOUT = 15.0
# The longest a feed may stay silent before its comment line (15 s), and some.
SILENCE = 16.0


class Feed:
    """One ``GET /sse`` streamed by a reader thread that parses events.

    ``events``: dicts with ``id``, ``event`` (None without an ``event:``
    line), ``data`` (the ``data:`` lines joined by LF, as an EventSource
    does) and ``lines`` (the raw lines). ``comments``: arrival times of
    comment lines. ``ended``: the broker ended the stream."""

    def __init__(self, destination=None, auth=GUEST, **params):
        if destination is not None:
            params["destination"] = destination
        self.opened = time.monotonic()
        self.response = requests.get(URL, params=params, auth=auth, stream=True,
                                     timeout=(TIMEOUT, 60))
        self.status = self.response.status_code
        self.cond = threading.Condition()
        self.events = []
        self.comments = []
        self.ended = False
        self.error = None
        self._closing = False
        self._thread = None
        if self.status == 200:
            self._thread = threading.Thread(target=self._read, daemon=True)
            self._thread.start()

    def _read(self):
        buf = b""
        lines = []
        try:
            for chunk in self.response.iter_content(chunk_size=None):
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    lines = self._line(line.decode(), lines)
        except Exception as e:  # the stream broke (or we closed it)
            if not self._closing:
                self.error = e
        finally:
            with self.cond:
                self.ended = True
                self.cond.notify_all()

    def _line(self, line, lines):
        if line == "":
            if lines:
                ev = {"id": None, "event": None, "data": None, "lines": lines}
                data = []
                for ln in lines:
                    field, _, value = ln.partition(":")
                    value = value[1:] if value.startswith(" ") else value
                    if field == "data":
                        data.append(value)
                    else:
                        ev[field] = value
                ev["data"] = "\n".join(data)
                with self.cond:
                    self.events.append(ev)
                    self.cond.notify_all()
            return []
        if line.startswith(":"):
            with self.cond:
                self.comments.append(time.monotonic())
                self.cond.notify_all()
            return lines
        return lines + [line]

    def wait_for(self, predicate, timeout=TIMEOUT):
        with self.cond:
            return self.cond.wait_for(predicate, timeout)

    def wait_events(self, n, timeout=TIMEOUT):
        assert self.wait_for(lambda: len(self.events) >= n, timeout), \
            f"expected {n} events, got {self.events} (ended={self.ended}, error={self.error!r})"
        return self.events[:n]

    def wait_ended(self, timeout=TIMEOUT):
        return self.wait_for(lambda: self.ended, timeout)

    def data(self):
        with self.cond:
            return [e["data"] for e in self.events]

    def close(self):
        """Hang up as a browser does: the connection goes."""
        self._closing = True
        try:
            # The reader thread is blocked in recv on this socket: shut it down
            # so that the broker sees the connection close now.
            self.response.raw.connection.sock.shutdown(socket.SHUT_RDWR)
        except (AttributeError, OSError):
            pass
        self.response.close()
        if self._thread is not None:
            self._thread.join(5)


@pytest.fixture
def feeds():
    """Factory: ``feeds(destination, **params)`` -> Feed, closed at teardown."""
    made = []

    def make(*args, **kw):
        f = Feed(*args, **kw)
        made.append(f)
        return f

    yield make
    for f in made:
        f.close()


def opened(feed):
    """Assert a feed is streaming: 200, text/event-stream, and output at once:
    a comment line, or the first events when messages were waiting."""
    assert feed.status == 200, (feed.status, feed.response.text)
    assert feed.response.headers["Content-Type"] == "text/event-stream"
    assert feed.response.headers["Cache-Control"] == "no-cache"
    assert feed.wait_for(lambda: feed.comments or feed.events), "no output at the start"
    return feed


def refused(status, params, auth=GUEST):
    r = requests.get(URL, params=params, auth=auth, timeout=TIMEOUT)
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert r.text.endswith("\n"), r.text
    return r


@pytest.fixture(scope="module")
def ctl():
    import mgmt
    return mgmt.WarrenCtl("/")


@pytest.fixture
def user(ctl):
    """A new user (password "secret") with no permissions, deleted afterwards."""
    name = f"sse-user-{uuid.uuid4().hex[:10]}"
    ctl.add_user(name, "secret")
    yield name
    try:
        ctl.delete_user(name)
    except Exception:
        pass


def consumer_count(ch, queue):
    return ch.queue_declare(queue, passive=True).method.consumer_count


def queue_gone(conn, queue):
    ch = conn.channel()
    try:
        ch.queue_declare(queue, passive=True)
    except pika.exceptions.ChannelClosedByBroker as e:
        assert e.reply_code == 404
        return True
    ch.close()
    return False


# -- refusals ----------------------------------------------------------------------

def test_no_credentials_is_401_with_a_challenge():
    r = refused(401, {"destination": "/topic/x"}, auth=None)
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Warren"'
    assert r.text == "credentials required\n"


def test_bad_credentials_are_401():
    r = refused(401, {"destination": "/topic/x"}, auth=("guest", "wrong"))
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Warren"'
    assert r.text == "bad credentials\n"
    r = refused(401, {"destination": "/topic/x"}, auth=("nobody-" + uuid.uuid4().hex, "x"))
    assert r.headers["WWW-Authenticate"] == 'Basic realm="Warren"'


def test_a_vhost_the_user_cannot_use_is_403(user):
    r = refused(403, {"destination": "/topic/x"}, auth=(user, "secret"))
    assert r.text == f"access to vhost '/' refused for user '{user}'\n"
    r = refused(403, {"destination": "/topic/x", "vhost": "no-such-vhost"})
    assert r.text == "access to vhost 'no-such-vhost' refused for user 'guest'\n"


def test_a_refused_destination_is_403(user, ctl, names, ch, feeds):
    # May read queues named sse-ok*, nothing else.
    ctl.set_permissions(user, ".*", ".*", "^sse-ok")
    ok = names.track_queue(unique("sse-ok"))
    other = names.track_queue(unique("sse-no"))
    for q in (ok, other):
        ch.queue_declare(q, durable=True)
    r = refused(403, {"destination": f"/amq/queue/{other}"}, auth=(user, "secret"))
    assert r.text == (f"ACCESS_REFUSED - access to queue '{other}' in vhost '/' "
                      f"refused for user '{user}'\n")
    refused(403, {"destination": f"/queue/{other}"}, auth=(user, "secret"))
    # The permitted queue streams.
    f = opened(feeds(f"/amq/queue/{ok}", auth=(user, "secret")))
    ch.basic_publish("", ok, b"allowed")
    assert f.wait_events(1)[0]["data"] == "allowed"


def test_bad_or_missing_destination_is_400():
    r = refused(400, {})
    assert r.text == "missing destination\n"
    r = refused(400, {"destination": "/bogus/x"})
    assert r.text.startswith("Unknown destination: '/bogus/x' is not a valid destination.")
    r = refused(400, {"destination": "/topic/x", "events": "nope"})
    assert r.text == "events must be routing-key or message, not 'nope'\n"


def test_missing_queue_or_exchange_is_404():
    r = refused(404, {"destination": "/amq/queue/missing-" + uuid.uuid4().hex})
    assert r.text.startswith("NOT_FOUND - no queue 'missing-")
    r = refused(404, {"destination": "/exchange/missing-" + uuid.uuid4().hex})
    assert r.text.startswith("NOT_FOUND - no exchange 'missing-")


# -- events ------------------------------------------------------------------------

def test_topic_feed_events_are_named_by_routing_key(feeds, ch):
    key = unique("news").replace("-", "")
    f = opened(feeds(f"/topic/{key}.#"))
    # Nothing to send yet: a comment line starts the stream.
    assert f.comments and not f.events
    ch.basic_publish("amq.topic", f"{key}.eu", b"first")
    ch.basic_publish("amq.topic", f"{key}.us", b"second")
    ch.basic_publish("amq.topic", "elsewhere", b"not for us")
    ch.basic_publish("amq.topic", f"{key}", b"third")
    events = f.wait_events(3)
    assert [e["lines"] for e in events] == [
        ["id: 1", f"event: {key}.eu", "data: first"],
        ["id: 2", f"event: {key}.us", "data: second"],
        ["id: 3", f"event: {key}", "data: third"],
    ]


def test_fanout_exchange_feed_has_no_event_line(feeds, ch, names):
    x = names.track_exchange(unique("sse-fan"))
    ch.exchange_declare(x, "fanout")
    f = opened(feeds(f"/exchange/{x}"))
    ch.basic_publish(x, "", b"one")
    ch.basic_publish(x, "", b"two")
    events = f.wait_events(2)
    assert [e["lines"] for e in events] == [["id: 1", "data: one"], ["id: 2", "data: two"]]


def test_multi_line_body_is_several_data_lines_and_ids_increase(feeds, ch, names):
    x = names.track_exchange(unique("sse-ml"))
    ch.exchange_declare(x, "fanout")
    f = opened(feeds(f"/exchange/{x}"))
    bodies = [b"a\nb", b"crlf\r\nand cr\rend", b"", "ünïcødé ✓".encode(), b"trailing\n"]
    for b in bodies:
        ch.basic_publish(x, "", b)
    events = f.wait_events(len(bodies))
    assert [e["id"] for e in events] == ["1", "2", "3", "4", "5"]
    assert events[0]["lines"] == ["id: 1", "data: a", "data: b"]
    assert events[1]["lines"] == ["id: 2", "data: crlf", "data: and cr", "data: end"]
    # An empty body is one empty data line (the event still fires).
    assert events[2]["lines"] == ["id: 3", "data: "]
    assert events[4]["lines"] == ["id: 5", "data: trailing", "data: "]
    # What an EventSource would hand the page: line ends as LF.
    assert f.data() == ["a\nb", "crlf\nand cr\nend", "", "ünïcødé ✓", "trailing\n"]


def test_events_message_drops_the_event_line(feeds, ch):
    key = unique("plain").replace("-", "")
    f = opened(feeds(f"/topic/{key}", events="message"))
    ch.basic_publish("amq.topic", key, b"x")
    [e] = f.wait_events(1)
    assert e["lines"] == ["id: 1", "data: x"]


def test_queue_feed_competes_with_an_amqp_consumer(feeds, ch, names):
    q = names.track_queue(unique("sse-q"))
    ch.queue_declare(q, durable=True)
    ch.basic_publish("", q, b"waiting")
    f = opened(feeds(f"/queue/{q}"))
    # A message already in the queue is delivered; the event is the routing key.
    [e] = f.wait_events(1)
    assert e["lines"] == ["id: 1", f"event: {q}", "data: waiting"]
    amqp = ConsumerThread(q, auto_ack=True).start_and_wait()
    try:
        wait_until(lambda: consumer_count(ch, q) == 2, message="two consumers")
        sent = [f"m{i}" for i in range(10)]
        for b in sent:
            ch.basic_publish("", q, b.encode())
        wait_until(lambda: len(f.events) - 1 + amqp.count == 10,
                   message="10 deliveries over the feed and the AMQP consumer")
        over_sse = f.data()[1:]
        over_amqp = [b.decode() for b in amqp.bodies()]
        # Each message once, to one of the two consumers.
        assert sorted(over_sse + over_amqp) == sorted(sent)
        assert over_sse and over_amqp, (over_sse, over_amqp)
    finally:
        amqp.stop()


# -- SUBSCRIBE headers as query parameters --------------------------------------------

def test_x_queue_name_names_the_topic_queue(feeds, conn, ch, names):
    qname = names.track_queue(unique("sse-named"))
    key = unique("k").replace("-", "")
    f = opened(feeds(f"/topic/{key}", **{"x-queue-name": qname}))
    assert consumer_count(ch, qname) == 1
    ch.basic_publish("amq.topic", key, b"via named queue")
    assert f.wait_events(1)[0]["data"] == "via named queue"
    # Closing the feed removes its consumer, so the auto-delete queue goes.
    f.close()
    wait_until(lambda: queue_gone(conn, qname), timeout=20,
               message="the feed's auto-delete queue to go")


def test_durable_topic_subscription_keeps_messages_while_the_feed_is_closed(feeds, ch, names):
    from stomp_helpers import subscription_queue
    key = unique("d").replace("-", "")
    sub = {"durable": "true", "auto-delete": "false", "id": unique("sub")}
    qname = names.track_queue(subscription_queue(key, sub["id"]))
    f = opened(feeds(f"/topic/{key}", **sub))
    # RabbitMQ's STOMP name for the subscription's queue, durable.
    ch.queue_declare(qname, durable=True, passive=True)
    ch.basic_publish("amq.topic", key, b"m0")
    assert f.wait_events(1)[0]["data"] == "m0"
    f.close()
    wait_until(lambda: consumer_count(ch, qname) == 0, timeout=20,
               message="the closed feed's consumer to go")
    # Away: messages wait in the subscription's queue.
    for b in (b"m1", b"m2"):
        ch.basic_publish("amq.topic", key, b)
    wait_until(lambda: ch.queue_declare(qname, passive=True).method.message_count == 2,
               message="2 messages kept")
    # Back with the same id: they are there, and a new feed counts from 1.
    f2 = opened(feeds(f"/topic/{key}", **sub))
    events = f2.wait_events(2)
    assert [(e["id"], e["data"]) for e in events] == [("1", "m1"), ("2", "m2")]


# -- the end of a feed ---------------------------------------------------------------

def test_closing_a_queue_feed_removes_its_consumer(feeds, ch, names):
    """The broker notices the gone browser (within 15 s: at the latest, its
    next comment line fails); from then on the queue's messages go to the
    other consumers."""
    q = names.track_queue(unique("sse-bye"))
    ch.queue_declare(q, durable=True)
    f = opened(feeds(f"/queue/{q}"))
    assert consumer_count(ch, q) == 1
    f.close()
    wait_until(lambda: consumer_count(ch, q) == 0, timeout=20,
               message="the closed feed's consumer to go")
    ch.basic_publish("", q, b"kept")
    wait_until(lambda: ch.queue_declare(q, passive=True).method.message_count == 1,
               message="the message to stay in the queue")


def test_deleting_the_vhost_ends_the_feed(ctl, feeds):
    vhost = f"sse-vhost-{uuid.uuid4().hex[:10]}"
    ctl.add_vhost(vhost)
    try:
        ctl.set_permissions("guest", ".*", ".*", ".*", vhost=vhost)
        f = opened(feeds("/topic/anything", vhost=vhost))
        ctl.delete_vhost(vhost)
        assert f.wait_ended(), "the stream ends"
        assert f.error is None, f.error
    finally:
        try:
            ctl.delete_vhost(vhost)
        except Exception:
            pass


def test_deleting_the_user_ends_the_feed(ctl, user, feeds):
    ctl.set_permissions(user, ".*", ".*", ".*")
    f = opened(feeds("/topic/anything", auth=(user, "secret")))
    ctl.delete_user(user)
    assert f.wait_ended(), "the stream ends"
    # And the user can no longer open one.
    refused(401, {"destination": "/topic/anything"}, auth=(user, "secret"))


@pytest.mark.slow
def test_comment_line_after_silence(feeds):
    """Waits up to 16 s: an idle feed sends a comment line (keeps proxies from
    closing it, and lets the broker notice a browser that went away)."""
    f = opened(feeds("/topic/" + unique("idle").replace("-", "")))
    assert len(f.comments) == 1 and not f.events
    first = f.comments[0]
    assert f.wait_for(lambda: len(f.comments) >= 2, timeout=SILENCE + 4), "no second comment"
    gap = f.comments[1] - first
    assert 5 <= gap <= SILENCE, gap
    assert not f.events and not f.ended


# -- the wire, below requests ----------------------------------------------------------

def raw_feed(path, version="1.1", method="GET"):
    """A feed over a plain socket: returns (socket, head, rest-of-what-was-read)."""
    import base64
    s = socket.create_connection((HOST, WEB_PORT), timeout=TIMEOUT)
    auth = base64.b64encode(b"guest:guest").decode()
    s.sendall(f"{method} {path} HTTP/{version}\r\nHost: x\r\nAuthorization: Basic {auth}\r\n\r\n"
              .encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        got = s.recv(4096)
        assert got, buf
        buf += got
    head, rest = buf.split(b"\r\n\r\n", 1)
    return s, head.decode().lower(), rest


def read_until(s, buf, needle):
    while needle not in buf:
        got = s.recv(4096)
        if not got:
            break
        buf += got
    return buf


def test_http11_feed_is_one_chunk_per_event(ch, names):
    """The feed writes its own chunked framing after hyper sent the head."""
    x = names.track_exchange(unique("sse-wire"))
    ch.exchange_declare(x, "fanout")
    s, head, rest = raw_feed(f"/sse?destination=/exchange/{x}")
    try:
        assert head.startswith("http/1.1 200") and "transfer-encoding: chunked" in head, head
        rest = read_until(s, rest, b":\n\n\r\n")
        assert rest == b"3\r\n:\n\n\r\n", rest
        ch.basic_publish(x, "", b"hello")
        event = b"id: 1\ndata: hello\n\n"
        rest = read_until(s, rest, event + b"\r\n")
        assert rest == b"3\r\n:\n\n\r\n" + b"%x\r\n" % len(event) + event + b"\r\n", rest
    finally:
        s.close()


def test_http10_feed_is_close_delimited(ch, names):
    x = names.track_exchange(unique("sse-wire10"))
    ch.exchange_declare(x, "fanout")
    s, head, rest = raw_feed(f"/sse?destination=/exchange/{x}", version="1.0")
    try:
        assert " 200 " in head.splitlines()[0] and "transfer-encoding" not in head, head
        rest = read_until(s, rest, b":\n\n")
        ch.basic_publish(x, "", b"plain")
        rest = read_until(s, rest, b"data: plain\n\n")
        assert rest == b":\n\nid: 1\ndata: plain\n\n", rest
    finally:
        s.close()


def test_head_gets_the_head_only(ch, names):
    x = names.track_exchange(unique("sse-head"))
    ch.exchange_declare(x, "fanout")
    s, head, rest = raw_feed(f"/sse?destination=/exchange/{x}", method="HEAD")
    try:
        assert head.startswith("http/1.1 200") and "text/event-stream" in head, head
        assert rest == b""
    finally:
        s.close()


def test_a_client_closing_its_socket_ends_the_feed(conn, ch, names):
    """The feed reads its socket only to see the client go: at EOF its
    queue (a /topic/ subscription's own) goes at once."""
    q = names.track_queue(unique("sse-eof"))
    s, head, rest = raw_feed(f"/sse?destination=/topic/{q}&x-queue-name={q}")
    assert head.startswith("http/1.1 200"), head
    assert consumer_count(ch, q) == 1
    s.close()
    wait_until(lambda: queue_gone(conn, q), message="the feed's queue to go")
