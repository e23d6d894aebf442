"""Dead-lettering: ``x-dead-letter-exchange`` / ``x-dead-letter-routing-key``,
the reasons ``rejected`` / ``expired`` / ``maxlen``, the exact ``x-death``
header RabbitMQ 3.10 writes, count increments, and cycle detection."""

import datetime
import time

import pika
import pika.compat
import pika.exceptions
import pytest

from fhelpers import count, get_one, pump
from wiretypes import wire_types

pytestmark = pytest.mark.timeout(20)

# RabbitMQ 3.10 writes exactly these headers (no x-last-death-* before 3.13).
DEATH_HEADERS = {"x-death", "x-first-death-exchange", "x-first-death-queue",
                 "x-first-death-reason"}
DEATH_ENTRY_KEYS = {"count", "reason", "queue", "time", "exchange", "routing-keys"}
DEATH_WIRE_TYPES = {
    "count": "l", "reason": "S", "queue": "S", "time": "T", "exchange": "S",
}


@pytest.fixture
def dlx(ch, names):
    x = names.exchange("dl-x")
    q = names.queue("dl-dead")
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    return x, q


def _check_entry(entry, *, reason, queue, exchange, routing_keys, count_=1,
                 original_expiration=None):
    keys = set(DEATH_ENTRY_KEYS)
    if original_expiration is not None:
        keys.add("original-expiration")
    assert set(entry) == keys
    assert entry["reason"] == reason
    assert entry["queue"] == queue
    assert entry["exchange"] == exchange
    assert entry["routing-keys"] == routing_keys
    assert entry["count"] == count_
    assert isinstance(entry["count"], pika.compat.long)
    assert isinstance(entry["time"], datetime.datetime)
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - entry["time"]).total_seconds()) < 60
    if original_expiration is not None:
        assert entry["original-expiration"] == original_expiration


def _check_wire(props, n_entries=1, n_keys=1, original_expiration=False):
    entry = dict(DEATH_WIRE_TYPES, **{"routing-keys": ["S"] * n_keys})
    if original_expiration:
        entry["original-expiration"] = "S"
    types = wire_types(props)
    assert types["x-death"] == [entry] * n_entries
    for k in ("x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"):
        assert types[k] == "S"


def test_rejected_exact_headers(ch, names, dlx):
    x, dead = dlx
    src_x = names.exchange("dl-src")
    q = names.queue("dl-work")
    ch.exchange_declare(src_x, "direct")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    ch.queue_bind(q, src_x, "rk.a")
    props = pika.BasicProperties(content_type="text/plain", correlation_id="c-1",
                                 message_id="m-1", delivery_mode=2, priority=4,
                                 headers={"app": "v", "n": 7})
    ch.basic_publish(src_x, "rk.a", b"payload", props)
    method, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)

    method, p, body = get_one(ch, dead)
    assert body == b"payload"
    # delivered via the DLX, keeping the original routing key
    assert method.exchange == x
    assert method.routing_key == "rk.a"
    assert method.redelivered is False
    # the other properties are preserved
    assert (p.content_type, p.correlation_id, p.message_id, p.delivery_mode, p.priority) == \
        ("text/plain", "c-1", "m-1", 2, 4)
    assert set(p.headers) == DEATH_HEADERS | {"app", "n"}
    assert p.headers["app"] == "v" and p.headers["n"] == 7
    assert len(p.headers["x-death"]) == 1
    _check_entry(p.headers["x-death"][0], reason="rejected", queue=q, exchange=src_x,
                 routing_keys=["rk.a"])
    assert p.headers["x-first-death-reason"] == "rejected"
    assert p.headers["x-first-death-queue"] == q
    assert p.headers["x-first-death-exchange"] == src_x
    _check_wire(p)


def test_nack_multiple_requeue_false_dead_letters_all(ch, names, dlx):
    x, dead = dlx
    q = names.queue("dl-nack")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    for i in range(3):
        ch.basic_publish("", q, b"%d" % i)
    tags = [get_one(ch, q, auto_ack=False)[0].delivery_tag for _ in range(3)]
    ch.basic_nack(tags[-1], multiple=True, requeue=False)
    got = []
    while len(got) < 3:
        got.append(get_one(ch, dead))
    assert [b for _, _, b in got] == [b"0", b"1", b"2"]
    for _, p, _ in got:
        _check_entry(p.headers["x-death"][0], reason="rejected", queue=q, exchange="",
                     routing_keys=[q])


def test_requeue_true_does_not_dead_letter(ch, names, dlx):
    x, dead = dlx
    q = names.queue("dl-requeue")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    ch.basic_publish("", q, b"m")
    method, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=True)
    method, _, _ = get_one(ch, q, auto_ack=False)
    assert method.redelivered is True
    ch.basic_nack(method.delivery_tag, requeue=True)
    method, _, _ = get_one(ch, q)
    assert method.redelivered is True
    assert count(ch, dead) == 0


def test_dead_letter_routing_key_and_cc(ch, names):
    """x-dead-letter-routing-key replaces the routing key; routing-keys keeps
    the original ones including CC; the CC header itself is removed and the
    per-message expiration moves to original-expiration."""
    x = names.exchange("dl-direct")
    dead = names.queue("dl-rk-dead")
    q = names.queue("dl-rk")
    cc_q = names.queue("dl-cc")
    ch.exchange_declare(x, "direct")
    ch.queue_declare(dead)
    ch.queue_bind(dead, x, "new-rk")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x,
                                   "x-dead-letter-routing-key": "new-rk"})
    ch.queue_declare(cc_q)
    ch.basic_publish("", q, b"m", pika.BasicProperties(
        expiration="100000", headers={"CC": [cc_q], "BCC": ["nowhere"], "keep": 1}))
    assert get_one(ch, cc_q)[2] == b"m"
    method, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_nack(method.delivery_tag, requeue=False)
    method, p, _ = get_one(ch, dead)
    assert method.routing_key == "new-rk"
    assert method.exchange == x
    assert p.expiration is None
    assert set(p.headers) == DEATH_HEADERS | {"keep"}        # CC and BCC gone
    _check_entry(p.headers["x-death"][0], reason="rejected", queue=q, exchange="",
                 routing_keys=[q, cc_q], original_expiration="100000")
    _check_wire(p, n_keys=2, original_expiration=True)


def test_expired_queue_ttl(ch, names, dlx):
    x, dead = dlx
    q = names.queue("dl-qttl")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x, "x-message-ttl": 50})
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"a": 1}))
    method, p, body = get_one(ch, dead)
    assert method.routing_key == q
    assert set(p.headers) == DEATH_HEADERS | {"a"}
    # no original-expiration: the message itself had none
    _check_entry(p.headers["x-death"][0], reason="expired", queue=q, exchange="",
                 routing_keys=[q])
    assert p.headers["x-first-death-reason"] == "expired"
    _check_wire(p)


def test_expired_per_message_ttl(ch, names, dlx):
    x, dead = dlx
    q = names.queue("dl-mttl")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    ch.basic_publish("", q, b"m", pika.BasicProperties(expiration="50"))
    _, p, _ = get_one(ch, dead)
    assert p.expiration is None                       # removed ...
    _check_entry(p.headers["x-death"][0], reason="expired", queue=q, exchange="",
                 routing_keys=[q], original_expiration="50")   # ... and kept here
    assert set(p.headers) == DEATH_HEADERS
    _check_wire(p, original_expiration=True)


def test_maxlen(ch, names, dlx):
    x, dead = dlx
    q = names.queue("dl-maxlen")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x, "x-max-length": 1})
    ch.basic_publish("", q, b"old")
    ch.basic_publish("", q, b"new")
    _, p, body = get_one(ch, dead)
    assert body == b"old"
    _check_entry(p.headers["x-death"][0], reason="maxlen", queue=q, exchange="",
                 routing_keys=[q])
    assert p.headers["x-first-death-reason"] == "maxlen"
    _check_wire(p)


def test_retry_loop_increments_counts(ch, names):
    """work --reject--> wait (TTL) --expire--> work ...: each (queue, reason)
    pair keeps one x-death entry whose count grows; the most recent death is
    first; 'time' stays that of the first such death; x-first-death-* never
    change."""
    work = names.queue("dl-loop-work")
    wait = names.queue("dl-loop-wait")
    ch.queue_declare(work, arguments={"x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": wait})
    ch.queue_declare(wait, arguments={"x-dead-letter-exchange": "",
                                      "x-dead-letter-routing-key": work,
                                      "x-message-ttl": 30})
    ch.basic_publish("", work, b"job", pika.BasicProperties(headers={"h": "v"}))
    seen = []
    for _ in range(4):
        method, p, _ = get_one(ch, work, auto_ack=False)
        seen.append((method, p))
        ch.basic_reject(method.delivery_tag, requeue=False)
    assert seen[0][1].headers == {"h": "v"}
    for n, (method, p) in enumerate(seen[1:], start=1):
        assert method.exchange == ""
        assert method.routing_key == work
        h = p.headers
        assert set(h) == DEATH_HEADERS | {"h"}
        deaths = h["x-death"]
        assert [(d["queue"], d["reason"], d["count"]) for d in deaths] == \
            [(wait, "expired", n), (work, "rejected", n)]
        _check_entry(deaths[0], reason="expired", queue=wait, exchange="",
                     routing_keys=[wait], count_=n)
        _check_entry(deaths[1], reason="rejected", queue=work, exchange="",
                     routing_keys=[work], count_=n)
        assert (h["x-first-death-queue"], h["x-first-death-reason"],
                h["x-first-death-exchange"]) == (work, "rejected", "")
        _check_wire(p, n_entries=2)
    first_times = seen[1][1].headers["x-death"]
    last_times = seen[-1][1].headers["x-death"]
    assert [d["time"] for d in last_times] == [d["time"] for d in first_times]


def test_expired_cycle_back_to_same_queue_is_dropped(ch, names):
    """A queue whose DLX routes expired messages back to itself: the copy for
    the queue is dropped (cycle without rejection); other targets get it."""
    loop_x = names.exchange("dl-cycle-x")
    q = names.queue("dl-cycle")
    spy = names.queue("dl-cycle-spy")
    ch.exchange_declare(loop_x, "fanout")
    ch.queue_declare(q, arguments={"x-message-ttl": 30, "x-dead-letter-exchange": loop_x})
    ch.queue_declare(spy)
    ch.queue_bind(q, loop_x)
    ch.queue_bind(spy, loop_x)
    ch.basic_publish("", q, b"m")
    _, p, _ = get_one(ch, spy)
    assert [(d["queue"], d["reason"], d["count"]) for d in p.headers["x-death"]] == \
        [(q, "expired", 1)]
    time.sleep(0.15)
    assert count(ch, q) == 0
    assert count(ch, spy) == 0


def test_expired_cycle_between_two_queues_is_dropped(ch, names):
    """a (ttl) -> b (ttl) -> a: dropped when it would re-enter a."""
    xa = names.exchange("dl-cyc-xa")     # a's DLX: routes to b and spy_b
    xb = names.exchange("dl-cyc-xb")     # b's DLX: routes to a and spy_a
    a = names.queue("dl-cyc-a")
    b = names.queue("dl-cyc-b")
    spy_a = names.queue("dl-cyc-spy-a")
    spy_b = names.queue("dl-cyc-spy-b")
    for x in (xa, xb):
        ch.exchange_declare(x, "fanout")
    ch.queue_declare(a, arguments={"x-message-ttl": 30, "x-dead-letter-exchange": xa})
    ch.queue_declare(b, arguments={"x-message-ttl": 30, "x-dead-letter-exchange": xb})
    for q in (spy_a, spy_b):
        ch.queue_declare(q)
    ch.queue_bind(b, xa)
    ch.queue_bind(spy_b, xa)
    ch.queue_bind(a, xb)
    ch.queue_bind(spy_a, xb)
    ch.basic_publish("", a, b"m")
    _, p, _ = get_one(ch, spy_a)      # died in a, then in b
    assert [(d["queue"], d["reason"]) for d in p.headers["x-death"]] == \
        [(b, "expired"), (a, "expired")]
    time.sleep(0.15)
    assert [count(ch, q) for q in (a, b, spy_a, spy_b)] == [0, 0, 0, 1]


def test_missing_dlx_drops_silently(ch, names):
    q = names.queue("dl-nodlx")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": "does-not-exist.wt-none"})
    ch.basic_publish("", q, b"m")
    method, _, _ = get_one(ch, q, auto_ack=False)
    ch.basic_reject(method.delivery_tag, requeue=False)
    assert count(ch, q) == 0
    assert ch.is_open


def test_purge_and_delete_do_not_dead_letter(ch, names, dlx):
    x, dead = dlx
    q = names.queue("dl-purge")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    ch.basic_publish("", q, b"1")
    ch.basic_publish("", q, b"2")
    assert ch.queue_purge(q).method.message_count == 2
    ch.basic_publish("", q, b"3")
    ch.queue_delete(q)
    time.sleep(0.05)
    assert count(ch, dead) == 0


def test_unacked_on_channel_close_are_requeued_not_dead_lettered(connections, names):
    conn = connections()
    ch = conn.channel()
    x = names.exchange("dl-close-x")
    dead = names.queue("dl-close-dead")
    q = names.queue("dl-close")
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(dead)
    ch.queue_bind(dead, x)
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x})
    ch.basic_publish("", q, b"m")
    c2 = connections().channel()
    get_one(c2, q, auto_ack=False)
    c2.close()
    method, _, _ = get_one(ch, q)
    assert method.redelivered is True
    assert count(ch, dead) == 0


def test_dlrk_without_dlx_is_invalid(conn, names):
    ch = conn.channel()
    q = names.queue("dl-arg")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments={"x-dead-letter-routing-key": "k"})
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == (
        f"PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue '{q}' "
        "in vhost '/': routing_key_but_no_dlx_defined")


def test_dead_letter_to_consumer(conn, ch, names, dlx):
    """Dead-lettered messages reach a consumer of the DLX queue (push path)."""
    x, dead = dlx
    q = names.queue("dl-push")
    ch.queue_declare(q, arguments={"x-dead-letter-exchange": x, "x-message-ttl": 20})
    got = []
    ch.basic_consume(dead, lambda c, m, p, b: got.append(p.headers["x-death"][0]["reason"]),
                     auto_ack=True)
    ch.basic_publish("", q, b"m")
    deadline = time.monotonic() + 5
    while not got and time.monotonic() < deadline:
        pump(conn, 0.02)
    assert got == ["expired"]
