"""SSE feeds of a stream queue (Warren only): event ids are stream offsets,
and an EventSource reconnecting with ``Last-Event-ID`` resumes at the next
offset. Skipped unless ``WEB_STOMP_PORT`` is set."""

import os

import pytest
import requests

from streamlib import make_stream

if "WEB_STOMP_PORT" not in os.environ:
    pytest.skip("WEB_STOMP_PORT is not set (SSE feeds are Warren's only)",
                allow_module_level=True)

URL = f"http://{os.environ.get('STOMP_HOST', '127.0.0.1')}:{os.environ['WEB_STOMP_PORT']}/sse"


def read_events(queue, n, headers=None, **params):
    """The first `n` events (id, data) of a feed of `queue`."""
    r = requests.get(URL, params={"destination": f"/amq/queue/{queue}", **params},
                     headers=headers or {}, auth=("guest", "guest"), stream=True,
                     timeout=(10, 10))
    assert r.status_code == 200, r.text
    events, cur = [], {}
    try:
        for raw in r.iter_lines(decode_unicode=True):
            if raw == "":
                if "data" in cur:
                    events.append((int(cur["id"]), cur["data"]))
                    if len(events) >= n:
                        break
                cur = {}
            elif not raw.startswith(":"):
                k, _, v = raw.partition(": ")
                cur[k] = v
    finally:
        r.close()
    return events


@pytest.fixture
def stream(names):
    return make_stream(names, [b"e%d" % i for i in range(10)])


def test_event_ids_are_offsets(stream):
    assert read_events(stream, 10, **{"x-stream-offset": "first"}) == \
        [(i, "e%d" % i) for i in range(10)]


def test_last_event_id_resumes_at_next_offset(stream):
    first = read_events(stream, 4, **{"x-stream-offset": "first"})
    assert [i for i, _ in first] == [0, 1, 2, 3]
    # What an EventSource sends when it reconnects.
    rest = read_events(stream, 6, headers={"Last-Event-ID": "3"},
                       **{"x-stream-offset": "first"})
    assert rest == [(i, "e%d" % i) for i in range(4, 10)]
