"""Queue length limits: ``x-max-length``, ``x-max-length-bytes`` and the
``x-overflow`` modes, with and without a dead-letter exchange."""

import pika
import pika.exceptions
import pytest

from fhelpers import count, get_all, get_one, publish_confirmed, wait_count

pytestmark = pytest.mark.timeout(20)


@pytest.fixture
def dlx(ch, names):
    """A fanout DLX with one queue bound; returns (exchange, queue)."""
    x = names.exchange("ml-dlx")
    q = names.queue("ml-dead")
    ch.exchange_declare(x, "fanout")
    ch.queue_declare(q)
    ch.queue_bind(q, x)
    return x, q


def _fill(conn, q, n, mandatory=False):
    pch = conn.channel()
    pch.confirm_delivery()
    res = [publish_confirmed(pch, "", q, str(i).encode(), mandatory=mandatory) for i in range(n)]
    pch.close()
    return res


@pytest.mark.parametrize("overflow", [None, "drop-head"])
def test_drop_head_drops_oldest(conn, ch, names, overflow):
    q = names.queue("ml-dh")
    args = {"x-max-length": 2}
    if overflow:
        args["x-overflow"] = overflow
    ch.queue_declare(q, arguments=args)
    assert _fill(conn, q, 5) == ["ack"] * 5      # drop-head never nacks
    assert count(ch, q) == 2
    assert [b for _, _, b in get_all(ch, q)] == [b"3", b"4"]


def test_drop_head_dead_letters_dropped_messages(conn, ch, names, dlx):
    x, dead = dlx
    q = names.queue("ml-dh-dlx")
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-dead-letter-exchange": x})
    _fill(conn, q, 5)
    wait_count(ch, dead, 3)
    got = get_all(ch, dead)
    assert [b for _, _, b in got] == [b"0", b"1", b"2"]
    for method, props, _ in got:
        assert method.exchange == x
        assert method.routing_key == q
        death = props.headers["x-death"][0]
        assert death["reason"] == "maxlen"
        assert death["queue"] == q
        assert props.headers["x-first-death-reason"] == "maxlen"
    assert [b for _, _, b in get_all(ch, q)] == [b"3", b"4"]


def test_reject_publish_nacks_and_does_not_dead_letter(conn, ch, names, dlx):
    x, dead = dlx
    q = names.queue("ml-rp")
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-overflow": "reject-publish",
                                   "x-dead-letter-exchange": x})
    # mandatory too: a rejected publish is nacked, never basic.return'ed
    assert _fill(conn, q, 4, mandatory=True) == ["ack", "ack", "nack", "nack"]
    assert [b for _, _, b in get_all(ch, q)] == [b"0", b"1"]
    assert count(ch, dead) == 0


def test_reject_publish_nack_is_pika_nack_error(conn, names):
    ch = conn.channel()
    ch.confirm_delivery()
    q = names.queue("ml-rp-err")
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    ch.basic_publish("", q, b"fits")
    with pytest.raises(pika.exceptions.NackError) as ei:
        ch.basic_publish("", q, b"rejected", mandatory=True)
    assert ei.value.messages == []      # nacked, not returned
    assert ch.is_open


def test_reject_publish_dlx_nacks_and_dead_letters(conn, ch, names, dlx):
    x, dead = dlx
    q = names.queue("ml-rpdlx")
    ch.queue_declare(q, arguments={"x-max-length": 2, "x-overflow": "reject-publish-dlx",
                                   "x-dead-letter-exchange": x})
    assert _fill(conn, q, 4) == ["ack", "ack", "nack", "nack"]
    wait_count(ch, dead, 2)
    got = get_all(ch, dead)
    assert [b for _, _, b in got] == [b"2", b"3"]
    for _, props, _ in got:
        assert props.headers["x-death"][0]["reason"] == "maxlen"
        assert props.headers["x-death"][0]["queue"] == q
    assert [b for _, _, b in get_all(ch, q)] == [b"0", b"1"]


def test_reject_publish_without_confirms_drops_silently(conn, ch, names):
    q = names.queue("ml-rp-noconf")
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    for i in range(3):
        ch.basic_publish("", q, str(i).encode())
    assert ch.is_open
    assert [b for _, _, b in get_all(ch, q)] == [b"0"]


def test_reject_publish_accepts_again_after_consumption(conn, ch, names):
    q = names.queue("ml-rp-free")
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    assert _fill(conn, q, 2) == ["ack", "nack"]
    get_one(ch, q)
    assert _fill(conn, q, 1) == ["ack"]


def test_unacked_messages_do_not_count_towards_max_length(conn, ch, names):
    q = names.queue("ml-unacked")
    ch.queue_declare(q, arguments={"x-max-length": 1, "x-overflow": "reject-publish"})
    assert _fill(conn, q, 1) == ["ack"]
    method, _, _ = get_one(ch, q, auto_ack=False)      # now unacked, not ready
    assert _fill(conn, q, 2) == ["ack", "nack"]
    # requeueing the unacked one may exceed the limit: it is not dropped
    ch.basic_nack(method.delivery_tag, requeue=True)
    assert sorted(b for _, _, b in get_all(ch, q)) == [b"0", b"0"]


def test_max_length_zero(conn, ch, names, dlx):
    x, dead = dlx
    q_rp = names.queue("ml0-rp")
    q_dh = names.queue("ml0-dh")
    ch.queue_declare(q_rp, arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    ch.queue_declare(q_dh, arguments={"x-max-length": 0, "x-dead-letter-exchange": x})
    assert _fill(conn, q_rp, 1) == ["nack"]
    assert _fill(conn, q_dh, 1) == ["ack"]
    _, props, body = get_one(ch, dead)
    assert body == b"0"
    assert props.headers["x-death"][0]["reason"] == "maxlen"
    assert count(ch, q_dh) == 0


def test_max_length_bytes_counts_body_bytes_only(conn, ch, names):
    q = names.queue("mlb")
    ch.queue_declare(q, arguments={"x-max-length-bytes": 10})
    ch.basic_publish("", q, b"12345")
    ch.basic_publish("", q, b"123456")          # 11 bytes > 10: drops '12345'
    ch.basic_publish("", q, b"1234")            # 10 bytes: fits
    # headers/properties are not counted
    ch.basic_publish("", q, b"", pika.BasicProperties(headers={"big": "x" * 200}))
    assert [b for _, _, b in get_all(ch, q)] == [b"123456", b"1234", b""]


def test_max_length_bytes_message_larger_than_limit(conn, ch, names):
    q_dh = names.queue("mlb-big-dh")
    q_rp = names.queue("mlb-big-rp")
    ch.queue_declare(q_dh, arguments={"x-max-length-bytes": 10})
    ch.queue_declare(q_rp, arguments={"x-max-length-bytes": 10, "x-overflow": "reject-publish"})
    pch = conn.channel()
    pch.confirm_delivery()
    assert publish_confirmed(pch, "", q_dh, b"small") == "ack"
    # drop-head drops everything, including the too-big message itself
    assert publish_confirmed(pch, "", q_dh, b"12345678901") == "ack"
    assert count(ch, q_dh) == 0
    assert publish_confirmed(pch, "", q_rp, b"12345678901") == "nack"
    assert publish_confirmed(pch, "", q_rp, b"1234567890") == "ack"
    assert publish_confirmed(pch, "", q_rp, b"1") == "nack"


def test_max_length_and_bytes_together_first_limit_hit_applies(conn, ch, names):
    q = names.queue("ml-both")
    ch.queue_declare(q, arguments={"x-max-length": 3, "x-max-length-bytes": 6,
                                   "x-overflow": "reject-publish"})
    assert _fill(conn, q, 4) == ["ack", "ack", "ack", "nack"]     # 3 bytes, count limit
    q2 = names.queue("ml-both2")
    ch.queue_declare(q2, arguments={"x-max-length": 3, "x-max-length-bytes": 6,
                                    "x-overflow": "reject-publish"})
    pch = conn.channel()
    pch.confirm_delivery()
    assert [publish_confirmed(pch, "", q2, b"abcd") for _ in range(2)] == ["ack", "nack"]


@pytest.mark.parametrize("args,detail", [
    ({"x-max-length": -1}, "'x-max-length' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    ({"x-max-length-bytes": -1},
     "'x-max-length-bytes' for queue '{q}' in vhost '/': {{value_negative,-1}}"),
    ({"x-overflow": "bogus"}, "'x-overflow' for queue '{q}' in vhost '/': invalid_overflow"),
    ({"x-max-length": "5"},
     "'x-max-length' for queue '{q}' in vhost '/': \"expected integer, got longstr\""),
])
def test_invalid_length_arguments(conn, names, args, detail):
    ch = conn.channel()
    q = names.queue("ml-arg")
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as ei:
        ch.queue_declare(q, arguments=args)
    assert ei.value.reply_code == 406
    assert ei.value.reply_text == "PRECONDITION_FAILED - invalid arg " + detail.format(q=q)
