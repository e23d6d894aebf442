"""iot end to end: the aggregator (AMQP) serves the dashboard; headless
Chromium opens it (MQTT.js over Web-MQTT); three MQTT sensors send five
readings each; the page must show every sensor with 5 readings aggregated
over AMQP, its last reading within min..max, and the sensor offline at the end.
Needs AMQP_URL, MQTT_PORT and WEB_MQTT_PORT; run by test.sh."""
import os
import pathlib
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent))
from browser import chromium, wait_for  # noqa: E402

HERE = pathlib.Path(__file__).parent
SENSORS, COUNT = 3, 5


def table(browser):
    return browser.execute_script("""return [...document.querySelectorAll('#sensors tr')].map(tr =>
        Object.fromEntries([...tr.children].map(td => [td.className.split(' ')[0], td.textContent])))""")


def done(browser):
    rows = table(browser)
    return len(rows) == SENSORS and all(
        r["count"] == str(COUNT) and r["state"] == "offline" for r in rows) and rows


def main():
    log = tempfile.NamedTemporaryFile("w+", prefix="iot-aggregator-", suffix=".log")
    app = subprocess.Popen([sys.executable, "aggregator.py"], cwd=HERE,
                           env={**os.environ, "PORT": "0"}, stdout=log, stderr=subprocess.STDOUT)
    browser = None
    try:
        url = wait_for("the aggregator", lambda: re.findall(r"http://\S+/", open(log.name).read()))[0]
        browser = chromium()
        browser.get(url)
        wait_for("the dashboard to connect",
                 lambda: browser.find_element("id", "status").text == "connected")
        subprocess.run([sys.executable, "sensors.py"], cwd=HERE, check=True, timeout=60,
                       env={**os.environ, "SENSORS": str(SENSORS), "COUNT": str(COUNT),
                            "INTERVAL": "0.1"})
        rows = wait_for("5 aggregated readings of 3 offline sensors", lambda: done(browser))
        for r in rows:
            lo, mean, hi, last = (float(r[k]) for k in ("min", "mean", "max", "last"))
            assert lo <= mean <= hi and lo <= last <= hi, r
        assert sorted(r["name"] for r in rows) == [f"sensor-{i}" for i in range(1, SENSORS + 1)]
        artifacts = os.environ.get("BROWSER_ARTIFACTS") or tempfile.gettempdir()
        os.makedirs(artifacts, exist_ok=True)
        shot = os.path.join(artifacts, "iot.png")
        assert browser.save_screenshot(shot)
        print(f"the dashboard shows {SENSORS} sensors, {COUNT} readings each; screenshot: {shot}")
    finally:
        if browser:
            browser.quit()
        app.kill()
        app.wait()


if __name__ == "__main__":
    main()
