"""photo-feed end to end: bob's browser (headless Chromium) follows alice; a
client uploads alice's picture; the resizer working on it is killed mid-job; the
job goes to the other resizer, is done once, and the thumbnail appears in bob's
page. Needs AMQP_URL and WEB_STOMP_PORT; run by test.sh."""
import io
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

from PIL import Image

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))
from browser import chromium, wait_for  # noqa: E402

HERE = pathlib.Path(__file__).parent
DATA = pathlib.Path(tempfile.mkdtemp(prefix="photo-feed-"))
ENV = {**os.environ, "DATA_DIR": str(DATA), "PYTHONUNBUFFERED": "1"}


def start(*args, log, **env):
    out = open(DATA / log, "w")
    return subprocess.Popen([sys.executable, *args], cwd=HERE, env={**ENV, **env},
                            stdout=out, stderr=subprocess.STDOUT)


def log(name):
    path = DATA / name
    return path.read_text() if path.exists() else ""


def main():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    procs = [start("app.py", "--port", str(port), log="app.log")]
    wait_for("the app", lambda: "photo feed on" in log("app.log"))
    procs.append(start("workers.py", "add-to-user", log="recorder.log"))
    slow = start("workers.py", "resize", log="resizer1.log", RESIZE_SECONDS="30")
    procs.append(slow)
    wait_for("the workers", lambda: "ready" in log("resizer1.log") and "ready" in log("recorder.log"))
    browser = chromium()
    try:
        browser.get(f"http://127.0.0.1:{port}/?me=bob")
        status = lambda: browser.find_element("id", "status").text  # noqa: E731
        wait_for("the page to connect", lambda: status() == "connected")
        browser.find_element("id", "who").send_keys("alice")
        browser.find_element("css selector", "#follow button").click()
        wait_for("bob to follow alice", lambda: status() == "following alice")

        picture = io.BytesIO()
        Image.new("RGB", (1200, 800), (200, 80, 40)).save(picture, "JPEG")
        req = urllib.request.Request(f"http://127.0.0.1:{port}/users/alice/image",
                                     data=picture.getvalue(), method="PUT")
        image_id = json.load(urllib.request.urlopen(req))["id"]
        wait_for("the first resizer to start", lambda: f"resizing {image_id}" in log("resizer1.log"))
        slow.send_signal(signal.SIGKILL)
        print(f"killed resizer 1 in the middle of {image_id}")
        procs.append(start("workers.py", "resize", log="resizer2.log"))
        wait_for("the second resizer to finish", lambda: f"resized {image_id}" in log("resizer2.log"))
        assert f"resizing {image_id} (redelivered)" in log("resizer2.log")

        img = wait_for("the picture in bob's page", lambda: browser.find_elements(
            "css selector", f"img.photo[data-id='{image_id}']"))[0]
        size = wait_for("the thumbnail to load", lambda: browser.execute_script(
            "const i = arguments[0]; return i.complete && i.naturalWidth && [i.naturalWidth, i.naturalHeight];",
            img))
        print(f"bob's page shows alice's picture {image_id} as a {size[0]}x{size[1]} thumbnail")
        assert size == [200, 133], size
        shots = pathlib.Path(os.environ.get("BROWSER_ARTIFACTS") or tempfile.gettempdir())
        shots.mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(shots / "photo-feed.png"))
        time.sleep(0.5)  # anything done twice would show up by now
        assert len(browser.find_elements("css selector", "img.photo")) == 1
        recorded = json.loads((DATA / "users" / "alice.json").read_text())
        assert [r["id"] for r in recorded] == [image_id]
        assert log("resizer1.log").count(f"resized {image_id}") == 0
        assert log("recorder.log").count(f"added {image_id}") == 1
        print("the job was redelivered and done once; screenshot:", shots / "photo-feed.png")
    except BaseException:
        for name in ("app.log", "resizer1.log", "resizer2.log", "recorder.log"):
            print(f"--- {name}\n{log(name)}", end="")
        raise
    finally:
        browser.quit()
        for p in procs:
            p.kill()
        if not os.environ.get("KEEP_DATA"):
            shutil.rmtree(DATA, ignore_errors=True)


if __name__ == "__main__":
    main()
