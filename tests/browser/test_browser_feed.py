"""A real browser follows a per-user feed from Warren with no gateway.

Seed 003's feed: a user's posts go to a fanout exchange `<user>_feedExchange`;
a follower's browser gets them live. Headless Chromium opens the broker's own
feed page (GET / on the Web-STOMP port, Basic auth from the URL), which follows
the exchange with an `EventSource` on /sse; the test injects the vendored
@stomp/stompjs bundle (tests/browser/node_modules, installed by run.sh; no CDN)
and stomp_feed.js, which follows the same exchange over STOMP over WebSocket
(/ws). A pika publisher sends over AMQP; the test reads both lists back from
the DOM.

Environment: AMQP_URL (the broker's AMQP listener) and WEB_STOMP_PORT.
A screenshot of the page is saved in $BROWSER_ARTIFACTS (default: a temporary
directory) for a human to look at.
"""

import os
import pathlib
import tempfile
import time
import uuid


HERE = pathlib.Path(__file__).parent
WEB_PORT = int(os.environ.get("WEB_STOMP_PORT", "15674"))
STOMPJS = HERE / "node_modules/@stomp/stompjs/bundles/stomp.umd.min.js"
TIMEOUT = 20.0


def wait_for(what, predicate, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def inject(driver, path):
    """Run a script file in the page's global scope, as a <script> element would."""
    driver.execute_script(
        "const s = document.createElement('script'); s.text = arguments[0];"
        "document.head.appendChild(s);", path.read_text())


def texts(driver, css):
    return driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.textContent);",
        css)


def test_a_followers_browser_gets_the_feed_over_sse_and_web_stomp(browser, channel):
    user = f"alice{uuid.uuid4().hex[:8]}"
    exchange = f"{user}_feedExchange"
    channel.exchange_declare(exchange, "fanout", auto_delete=True)
    destination = f"/exchange/{exchange}"
    browser.get(f"http://guest:guest@127.0.0.1:{WEB_PORT}/?destination={destination}")
    status = lambda: browser.find_element("id", "status").text  # noqa: E731
    wait_for("the EventSource to open", lambda: status().startswith("following"))
    inject(browser, STOMPJS)
    inject(browser, HERE / "stomp_feed.js")
    wait_for("the STOMP subscription",
             lambda: browser.execute_script("return window.stompState") == "subscribed")

    posts = ["first post", "ünïcødé ✓", "two\nlines"]
    for p in posts:
        channel.basic_publish(exchange, "", p.encode())
    wait_for("3 SSE messages", lambda: len(texts(browser, "li.message")) == 3)
    wait_for("3 STOMP messages", lambda: len(texts(browser, "li.stomp-message")) == 3)
    assert texts(browser, "li.message") == posts
    assert texts(browser, "li.stomp-message") == posts
    artifacts = os.environ.get("BROWSER_ARTIFACTS") or tempfile.mkdtemp(prefix="warren-browser-")
    os.makedirs(artifacts, exist_ok=True)
    browser.save_screenshot(os.path.join(artifacts, "feed.png"))


def test_events_are_named_by_routing_key(browser, channel):
    """The default feed names each event after the routing key, so a page can
    listen per key; an unnamed listener (onmessage) sees only empty keys."""
    browser.get(f"http://guest:guest@127.0.0.1:{WEB_PORT}/?destination=/topic/unused")
    topic = f"news{uuid.uuid4().hex[:8]}"
    browser.execute_script("""
        window.got = [];
        const es = new EventSource('/sse?destination=' + encodeURIComponent(arguments[0]));
        es.addEventListener(arguments[1], (e) => window.got.push([e.type, e.data, e.lastEventId]));
        es.onmessage = (e) => window.got.push(['message', e.data, e.lastEventId]);
        es.onopen = () => { window.opened = true; };
    """, f"/topic/{topic}.*", f"{topic}.sport")
    wait_for("the EventSource to open", lambda: browser.execute_script("return window.opened"))
    channel.basic_publish("amq.topic", f"{topic}.sport", b"goal")
    channel.basic_publish("amq.topic", f"{topic}.weather", b"rain")
    channel.basic_publish("amq.topic", f"{topic}.sport", b"match")
    wait_for("2 events", lambda: len(browser.execute_script("return window.got")) >= 2)
    time.sleep(0.3)
    assert browser.execute_script("return window.got") == [
        [f"{topic}.sport", "goal", "1"], [f"{topic}.sport", "match", "3"]]
