"""Torn / corrupted tail of the message log: after a SIGKILL the last segment
is damaged by hand (truncated, overwritten, or followed by garbage).  The
broker must start, keep every intact message in order, warn about the damage,
and serve new traffic."""

import os
import random

import pytest

from warren_harness import (drain, last_record, passive_queue, publish_confirmed,
                            records)

N = 500
QUEUE = "torn.q"


def _truncate_into_last_record(path, off, ln, rnd):
    """Cut the file a few bytes before the end of its last record."""
    cut = rnd.randint(1, min(7, ln - 1))
    with open(path, "r+b") as f:
        f.truncate(off + ln - cut)
    return f"truncated {path} to {off + ln - cut} (last record [{off}, {off + ln}) cut by {cut})"


def _corrupt_last_record(path, off, ln, rnd):
    """Flip bytes inside the last record's payload: checksum mismatch."""
    start = off + 8 + (ln - 8) // 2
    count = min(4, off + ln - start)
    with open(path, "r+b") as f:
        f.seek(start)
        old = f.read(count)
        f.seek(start)
        f.write(bytes(b ^ 0xA5 for b in old))
    return f"xor-ed {count} payload bytes at {start} of last record [{off}, {off + ln}) in {path}"


def _append_garbage(path, off, ln, rnd):
    """Random bytes right after the last record (overwriting zeroed/preallocated
    space if there is any, else extending the file)."""
    garbage = bytes(rnd.randrange(256) for _ in range(61))
    # A zero length field reads as "zeroed space", not as damage: avoid it.
    garbage = b"\x17\x00\x00\x00" + garbage
    with open(path, "r+b") as f:
        f.seek(off + ln)
        f.write(garbage)
    return f"wrote {len(garbage)} garbage bytes at {off + ln} (end of last record) in {path}"


CASES = {
    "truncated": (_truncate_into_last_record, N - 1),
    "checksum": (_corrupt_last_record, N - 1),
    "garbage_appended": (_append_garbage, N),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(CASES))
def test_damaged_tail_recovers_prefix(broker, case):
    """Publish 500 confirmed persistent messages, SIGKILL, damage the tail of
    the last non-empty segment, restart twice.  Expect: the broker starts, logs a
    warning, recovers an in-order prefix of the published messages with at least
    499 of them (all 500 when garbage only follows the last record), the same
    after a second restart, and a new publish/consume round trip works."""
    damage, at_least = CASES[case]
    rnd = random.Random(case)
    conn = broker.connect()
    conn.channel().queue_declare(QUEUE, durable=True)
    bodies = [f"torn-{n:04d}".encode() + b"." * 40 for n in range(N)]
    publish_confirmed(conn, "", QUEUE, bodies)
    broker.kill()

    path, off, ln = last_record(broker.messages_dir)
    what = damage(path, off, ln, rnd)
    print(what)
    if case != "garbage_appended":
        # The damaged record no longer reads back as valid.
        assert (off, ln) not in list(records(path))

    broker.start()
    warnings = broker.log_lines(level="WARN") + broker.log_lines(level="ERROR")
    print("warnings:", *warnings, sep="\n  ")
    assert warnings, "the broker did not log a warning about the damaged log"
    assert broker.alive()

    conn = broker.connect()
    count = passive_queue(conn, QUEUE)
    assert count is not None, "durable queue lost"
    conn.close()
    # A second recovery must see the same log (no damage left that is read
    # differently, nothing resurrected or lost).
    broker.restart()
    conn = broker.connect()
    assert passive_queue(conn, QUEUE) == count, "second restart changed the message count"
    got = [g.body for g in drain(conn, QUEUE)]
    print(f"{case}: published={N} recovered={len(got)} (count after 1st restart {count})")
    assert got == bodies[:len(got)], "recovered messages are not an in-order prefix"
    assert len(got) >= at_least, f"only {len(got)} of {N} messages recovered"

    # New traffic works.
    publish_confirmed(conn, "", QUEUE, [b"after-recovery"])
    ch = conn.channel()
    method, _props, body = ch.basic_get(QUEUE, auto_ack=False)
    assert method is not None and body == b"after-recovery"
    ch.basic_ack(method.delivery_tag)
    conn.close()
    assert broker.alive()
