"""Definitions export and import through the UI (headless Chromium).

Objects made on the session's broker (a vhost, a user with tags and
permissions, a durable topic exchange, a queue with arguments, a binding, a
policy) are exported with Admin › Definitions › Download: the browser saves a
definitions.json file holding them. A fresh, empty broker then imports that
file through its own UI (file upload), and its pages show the objects: the
vhost in the picker, the queue and exchange in their tables, the binding on
the queue's page, the user in Users; the API agrees. Screenshot:
definitions-imported.png.
"""

import glob
import json
import os
import uuid

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from ui import click_link, flash_text, go, login, rows, screenshot, wait_for


def make_objects(w, suffix):
    v = f"defs-{suffix}"
    names = {"vhost": v, "user": f"defs-user-{suffix}", "exchange": f"orders-{suffix}",
             "queue": f"orders.eu-{suffix}", "policy": f"ttl-{suffix}"}
    calls = [
        ("PUT", f"/vhosts/{v}", {}),
        ("PUT", f"/users/{names['user']}", {"password": "pw", "tags": "monitoring"}),
        ("PUT", f"/permissions/{v}/{names['user']}", {"configure": "^orders", "write": ".*", "read": ".*"}),
        ("PUT", f"/permissions/{v}/guest", {"configure": ".*", "write": ".*", "read": ".*"}),
        ("PUT", f"/exchanges/{v}/{names['exchange']}", {"type": "topic", "durable": True}),
        ("PUT", f"/queues/{v}/{names['queue']}", {"durable": True, "arguments": {"x-max-length": 100}}),
        ("POST", f"/bindings/{v}/e/{names['exchange']}/q/{names['queue']}", {"routing_key": "order.eu.*"}),
        ("PUT", f"/policies/{v}/{names['policy']}", {"pattern": "^orders", "apply-to": "queues", "definition": {"message-ttl": 60000}}),
    ]
    for method, path, body in calls:
        r = w.api(method, path, json=body)
        assert r.status_code in (200, 201, 204), (path, r.status_code, r.text)
    return names


def downloaded(directory):
    files = [f for f in glob.glob(os.path.join(directory, "*.json"))]
    return files[0] if len(files) == 1 and not glob.glob(os.path.join(directory, "*.crdownload")) else None


def test_export_downloads_a_file_that_imports_into_a_fresh_broker(browser, warren, fresh_warren):
    n = make_objects(warren, uuid.uuid4().hex[:6])
    login(browser, warren.mgmt_url)
    go(browser, warren.mgmt_url, "/admin/definitions")
    wait_for("the export button", lambda: browser.find_element(By.ID, "export")).click()
    path = wait_for("the downloaded file", lambda: downloaded(browser.download_dir))
    assert os.path.basename(path).startswith("warren_definitions")
    with open(path) as f:
        defs = json.load(f)
    assert {"name": n["vhost"]}.items() <= next(v for v in defs["vhosts"] if v["name"] == n["vhost"]).items()
    assert any(u["name"] == n["user"] for u in defs["users"])
    assert any(q["name"] == n["queue"] and q["vhost"] == n["vhost"] and q["arguments"] == {"x-max-length": 100} for q in defs["queues"])
    assert any(e["name"] == n["exchange"] and e["type"] == "topic" for e in defs["exchanges"])
    assert any(b["source"] == n["exchange"] and b["destination"] == n["queue"] and b["routing_key"] == "order.eu.*" for b in defs["bindings"])
    assert any(p["name"] == n["policy"] for p in defs["policies"])

    fresh = fresh_warren()
    assert fresh.api("GET", f"/vhosts/{n['vhost']}").status_code == 404
    browser.delete_all_cookies()
    browser.execute_script("sessionStorage.clear()")
    login(browser, fresh.mgmt_url)
    go(browser, fresh.mgmt_url, "/admin/definitions")
    wait_for("the file input", lambda: browser.find_element(By.ID, "import-file")).send_keys(path)
    browser.find_element(By.ID, "import").click()
    wait_for("the import notice", lambda: "imported" in flash_text(browser))

    # The vhost is in the picker; its queue, exchange and binding in the pages.
    wait_for("the vhost in the picker", lambda: n["vhost"] in [o.text for o in Select(browser.find_element(By.ID, "vhost-select")).options])
    go(browser, fresh.mgmt_url, "/queues")
    wait_for("the imported queue", lambda: browser.find_element(By.LINK_TEXT, n["queue"]))
    row = next(r for r in rows(browser, "#queues") if r[0] == n["queue"])
    assert row[1] == n["vhost"]
    screenshot(browser, "definitions-imported.png")
    click_link(browser, n["queue"])
    wait_for("the binding on the queue page", lambda: any(
        r[0] == n["exchange"] and r[1] == "order.eu.*" for r in rows(browser, "#queue-bindings table")))
    go(browser, fresh.mgmt_url, "/exchanges")
    wait_for("the imported exchange", lambda: browser.find_element(By.LINK_TEXT, n["exchange"]))
    go(browser, fresh.mgmt_url, "/admin/users")
    wait_for("the imported user", lambda: any(r[0] == n["user"] and r[1] == "monitoring" for r in rows(browser, "#users table")))
    go(browser, fresh.mgmt_url, "/admin/policies")
    wait_for("the imported policy", lambda: any(r[1] == n["policy"] for r in rows(browser, "#policies table")))

    assert fresh.api("GET", f"/queues/{n['vhost']}/{n['queue']}").json()["arguments"] == {"x-max-length": 100}
    assert fresh.api("GET", "/whoami", user=(n["user"], "pw")).json()["name"] == n["user"]
