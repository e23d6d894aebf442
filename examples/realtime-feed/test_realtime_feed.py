"""realtime-feed end to end: the feed app, one real browser (headless Chromium,
the app's page, Web-STOMP) and browsers.mjs's 1,000 simulated ones, all friends
of alice; alice posts 11 times; every post must reach all of them. Prints the
fan-out times; the median must stay under FANOUT_LIMIT_MS (default 500: a
generous bound for a debug build on a busy machine; the goal is 50 ms).
Needs AMQP_URL and WEB_STOMP_PORT; run by test.sh."""
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))
from browser import chromium, wait_for  # noqa: E402

HERE = pathlib.Path(__file__).parent
LIMIT = os.environ.get("FANOUT_LIMIT_MS", "500")


def main():
    log = tempfile.NamedTemporaryFile("w+", prefix="feed-app-", suffix=".log")
    app = subprocess.Popen(["node", "feed.mjs"], cwd=HERE, env={**os.environ, "PORT": "0"},
                           stdout=log, stderr=subprocess.STDOUT)
    browser = None
    try:
        url = wait_for("the app", lambda: re.findall(r"http://\S+/", open(log.name).read()))[0]
        urllib.request.urlopen(urllib.request.Request(
            url + "follow?friend=alice", data=b"chromium", method="POST")).read()
        browser = chromium()
        browser.get(url + "?user=chromium")
        wait_for("the page to follow its feed",
                 lambda: browser.find_element("id", "status").text == "following")
        bench = subprocess.run(["node", "browsers.mjs"], cwd=HERE, capture_output=True, text=True,
                               env={**os.environ, "APP_URL": url.rstrip("/"), "LIMIT_MS": LIMIT},
                               timeout=300)
        print(bench.stdout + bench.stderr, end="")
        assert bench.returncode == 0, f"browsers.mjs failed (median over {LIMIT} ms?)"
        texts = lambda: browser.execute_script(  # noqa: E731
            "return [...document.querySelectorAll('li.post .text')].map(e => e.textContent)")
        wait_for("11 posts in Chromium", lambda: len(texts()) == 11, timeout=10)
        assert texts() == [f"post {i}" for i in range(10, 0, -1)] + ["hello, everyone"], texts()
        shot = os.path.join(os.environ.get("BROWSER_ARTIFACTS") or tempfile.gettempdir(),
                            "realtime-feed.png")
        browser.save_screenshot(shot)
        print(f"the Chromium page shows all 11 posts, newest first; screenshot: {shot}")
    finally:
        if browser:
            browser.quit()
        app.kill()


if __name__ == "__main__":
    main()
