"""Policies (set out of band through mgmt.py) applying queue features
to matching queues, and how they combine with queue arguments:

* message-ttl, max-length, max-length-bytes, expires: the LOWER of policy and
  argument wins;
* overflow, dead-letter-exchange, dead-letter-routing-key: the ARGUMENT wins;
* max-priority is not a policy key at all (rejected);
* of several matching policies only the highest-priority one applies (no merge).
"""

import time
import uuid

import pika
import pytest

from mgmt import MgmtError, Policies
from fhelpers import count, get_all, get_one, publish_confirmed
from helpers import connect, wait_until

pytestmark = pytest.mark.timeout(30)

UID = uuid.uuid4().hex[:10]


def prefix(kind):
    return f"pol-{kind}.{UID}."


def pattern(kind):
    return "^" + prefix(kind).replace(".", r"\.")


DLX = f"pol-dlx.{UID}"
DLX2 = f"pol-dlx2.{UID}"

# The policies' message-ttl and expires (ms).  The arguments they are compared
# with are 20 / 50 ms and 60 s: the gaps leave a loaded machine plenty of slack.
POLICY_TTL = 1000
POLICY_EXPIRES = 1000


@pytest.fixture(scope="module")
def policies(mgmt):
    p = Policies(mgmt)
    try:
        p.set(
            (f"wt-ttl-{UID}", pattern("ttl"), {"message-ttl": POLICY_TTL}),
            (f"wt-len-{UID}", pattern("len"),
             {"max-length": 2, "overflow": "reject-publish", "dead-letter-exchange": DLX}),
            (f"wt-bytes-{UID}", pattern("bytes"), {"max-length-bytes": 10}),
            (f"wt-exp-{UID}", pattern("exp"), {"expires": POLICY_EXPIRES}),
            (f"wt-dlx-{UID}", pattern("dlx"),
             {"dead-letter-exchange": DLX, "dead-letter-routing-key": "pol-rk"}),
            (f"wt-prio-lo-{UID}", pattern("prio"), {"max-length": 1}, 1),
            (f"wt-prio-hi-{UID}", pattern("prio"), {"message-ttl": 60000}, 2),
        )
        yield p
    finally:
        p.clear_all()


@pytest.fixture(scope="module")
def dlx_queues(policies):
    """Direct exchanges DLX and DLX2 (names fixed per module run), each with
    one queue; tests bind the routing keys they expect."""
    conn = connect()
    ch = conn.channel()
    qs = {}
    for x in (DLX, DLX2):
        ch.exchange_declare(x, "direct")
        q = f"{x}.dead"
        ch.queue_declare(q)
        qs[x] = q
    yield ch, qs
    for x, q in qs.items():
        ch.queue_delete(q)
        ch.exchange_delete(x)
    conn.close()


def _bind_all(ch, x, q, keys):
    for k in keys:
        ch.queue_bind(q, x, k)


def _pub(conn, q, n):
    pch = conn.channel()
    pch.confirm_delivery()
    res = [publish_confirmed(pch, "", q, b"%d" % i) for i in range(n)]
    pch.close()
    return res


def test_message_ttl_policy_and_lower_value_wins(ch, names, policies):
    plain = names.track_queue(prefix("ttl") + "plain")
    arg_short = names.track_queue(prefix("ttl") + "short")
    arg_long = names.track_queue(prefix("ttl") + "long")
    other = names.queue("pol-nomatch")
    ch.queue_declare(plain)
    ch.queue_declare(arg_short, arguments={"x-message-ttl": 20})
    ch.queue_declare(arg_long, arguments={"x-message-ttl": 60000})
    ch.queue_declare(other)
    queues = (plain, arg_short, arg_long, other)
    ch.confirm_delivery()
    for q in queues:
        ch.basic_publish("", q, b"m")
    # The 20 ms argument wins over the policy; the policy's TTL has not passed.
    wait_until(lambda: count(ch, arg_short) == 0, message="20 ms TTL to expire the message")
    assert [count(ch, q) for q in queues] == [1, 0, 1, 1]
    # Then the policy's TTL expires plain's message, and arg_long's (60 s).
    wait_until(lambda: [count(ch, q) for q in queues] == [0, 0, 0, 1],
               message=f"the {POLICY_TTL} ms policy TTL to expire the messages")


def test_max_length_overflow_dlx_policy(conn, ch, names, policies, dlx_queues):
    dch, dead = dlx_queues
    dead_q = dead[DLX]
    dch.queue_purge(dead_q)
    q = names.track_queue(prefix("len") + "plain")
    ch.queue_declare(q)
    _bind_all(dch, DLX, dead_q, [q])
    assert _pub(conn, q, 3) == ["ack", "ack", "nack"]   # policy reject-publish
    assert count(dch, dead_q) == 0                       # reject-publish: no DL


def test_max_length_lower_value_wins(conn, ch, names, policies):
    q5 = names.track_queue(prefix("len") + "arg5")
    q1 = names.track_queue(prefix("len") + "arg1")
    ch.queue_declare(q5, arguments={"x-max-length": 5})
    ch.queue_declare(q1, arguments={"x-max-length": 1})
    assert _pub(conn, q5, 3) == ["ack", "ack", "nack"]
    assert _pub(conn, q1, 2) == ["ack", "nack"]


def test_overflow_and_dlx_arguments_win(conn, ch, names, policies, dlx_queues):
    dch, dead = dlx_queues
    dh = names.track_queue(prefix("len") + "dh")
    dh2 = names.track_queue(prefix("len") + "dh2")
    rpdlx = names.track_queue(prefix("len") + "rpdlx")
    _bind_all(dch, DLX, dead[DLX], [dh, rpdlx])
    _bind_all(dch, DLX2, dead[DLX2], [dh2])
    ch.queue_declare(dh, arguments={"x-overflow": "drop-head"})
    ch.queue_declare(dh2, arguments={"x-overflow": "drop-head",
                                     "x-dead-letter-exchange": DLX2})
    ch.queue_declare(rpdlx, arguments={"x-overflow": "reject-publish-dlx"})
    assert _pub(conn, dh, 4) == ["ack"] * 4
    assert _pub(conn, dh2, 4) == ["ack"] * 4
    assert _pub(conn, rpdlx, 4) == ["ack", "ack", "nack", "nack"]
    assert [b for _, _, b in get_all(ch, dh)] == [b"2", b"3"]
    got = []
    while len(got) < 4:
        got.append(get_one(dch, dead[DLX]))
    assert sorted((m.routing_key, b) for m, _, b in got) == \
        sorted([(dh, b"0"), (dh, b"1"), (rpdlx, b"2"), (rpdlx, b"3")])
    assert all(p.headers["x-death"][0]["reason"] == "maxlen" for _, p, _ in got)
    got2 = [get_one(dch, dead[DLX2]) for _ in range(2)]
    assert [(m.routing_key, b) for m, _, b in got2] == [(dh2, b"0"), (dh2, b"1")]


def test_max_length_bytes_policy(conn, ch, names, policies):
    q = names.track_queue(prefix("bytes") + "plain")
    q_arg = names.track_queue(prefix("bytes") + "arg")
    ch.queue_declare(q)
    ch.queue_declare(q_arg, arguments={"x-max-length-bytes": 4})
    for body in (b"12345", b"123456"):
        ch.basic_publish("", q, body)
        ch.basic_publish("", q_arg, body[:3])
    assert [b for _, _, b in get_all(ch, q)] == [b"123456"]
    assert [b for _, _, b in get_all(ch, q_arg)] == [b"123"]


def _deletion_times(ch, queues, timeout=15.0):
    """Seconds until each queue is deleted, probing by publishing with
    mandatory (which, unlike a declare or get, does not count as use)."""
    t0 = time.monotonic()
    gone = {}
    while len(gone) < len(queues):
        assert time.monotonic() - t0 < timeout, f"not deleted: {set(queues) - set(gone)}"
        for q in queues:
            if q not in gone and publish_confirmed(ch, "", q, b"p", mandatory=True) == "returned":
                gone[q] = time.monotonic() - t0
        time.sleep(0.005)
    return gone


def test_expires_policy_lower_value_wins(conn, names, policies):
    ch = conn.channel()
    ch.confirm_delivery()
    plain = names.track_queue(prefix("exp") + "plain")
    long_arg = names.track_queue(prefix("exp") + "long")
    short_arg = names.track_queue(prefix("exp") + "short")
    ch.queue_declare(short_arg, arguments={"x-expires": 50})
    ch.queue_declare(plain)
    ch.queue_declare(long_arg, arguments={"x-expires": 60000})
    gone = _deletion_times(ch, [short_arg, plain, long_arg])
    assert gone[short_arg] < 0.5                  # argument 50 < policy 1000
    assert 0.5 < gone[plain] < 10                 # policy 1000
    assert 0.5 < gone[long_arg] < 10              # policy 1000 < argument 60000


def test_dead_letter_routing_key_policy_and_argument_wins(ch, names, policies, dlx_queues):
    dch, dead = dlx_queues
    dead_q = dead[DLX]
    _bind_all(dch, DLX, dead_q, ["pol-rk", "arg-rk"])
    q = names.track_queue(prefix("dlx") + "plain")
    q_arg = names.track_queue(prefix("dlx") + "arg")
    ch.queue_declare(q)
    ch.queue_declare(q_arg, arguments={"x-dead-letter-exchange": DLX,
                                       "x-dead-letter-routing-key": "arg-rk"})
    for target in (q, q_arg):
        ch.basic_publish("", target, target.encode())
        method, _, _ = get_one(ch, target, auto_ack=False)
        ch.basic_reject(method.delivery_tag, requeue=False)
    got = [get_one(dch, dead_q) for _ in range(2)]
    assert sorted((m.routing_key, b) for m, _, b in got) == \
        sorted([("pol-rk", q.encode()), ("arg-rk", q_arg.encode())])


def test_only_highest_priority_policy_applies(conn, ch, names, policies):
    q = names.track_queue(prefix("prio") + "q")
    ch.queue_declare(q)
    # the priority-1 policy's max-length 1 is NOT merged in
    assert _pub(conn, q, 3) == ["ack"] * 3
    assert count(ch, q) == 3


def test_max_priority_is_not_a_policy_key(mgmt):
    with pytest.raises(MgmtError):
        mgmt.set_policy(f"wt-bad-{UID}", pattern("bad"), {"max-priority": 5})
    with pytest.raises(MgmtError):
        mgmt.set_policy(f"wt-bad-{UID}", pattern("bad"), {"max-length": "a"})


def test_policy_applies_to_existing_queue_and_clearing_removes_it(conn, ch, names, mgmt):
    q = names.track_queue(prefix("late") + "q")
    ch.queue_declare(q)
    assert _pub(conn, q, 2) == ["ack", "ack"]
    ch.queue_purge(q)
    p = Policies(mgmt)
    name = f"wt-late-{UID}"
    try:
        p.set((name, pattern("late"), {"max-length": 1, "overflow": "reject-publish"}))
        deadline = time.monotonic() + 15
        while True:      # applied asynchronously to existing queues
            ch.queue_purge(q)
            if _pub(conn, q, 2) == ["ack", "nack"]:
                break
            assert time.monotonic() < deadline, "policy never applied"
            time.sleep(0.02)
        p.clear(name)
        deadline = time.monotonic() + 15
        while True:
            ch.queue_purge(q)
            if _pub(conn, q, 2) == ["ack", "ack"]:
                break
            assert time.monotonic() < deadline, "policy never removed"
            time.sleep(0.02)
    finally:
        p.clear_all()


def test_ttl_policy_is_not_shown_as_expiration(ch, names, policies):
    q = names.track_queue(prefix("ttl") + "prop")
    ch.queue_declare(q)
    ch.basic_publish("", q, b"m", pika.BasicProperties(headers={"a": 1}))
    _, props, _ = get_one(ch, q)
    assert props.expiration is None
