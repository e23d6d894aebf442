"""Topic permissions and limits in the Admin pages (headless Chromium).

Warren's API gets /api/topic-permissions, /api/vhost-limits and
/api/user-limits in a later phase; until then the pages say the broker does
not support them (checked here), and the forms are exercised against
RabbitMQ's management API through ui_proxy (Warren's UI files, RabbitMQ's
/api) when RABBITMQ_MGMT_URL is set (e.g. http://127.0.0.1:15672, guest
from loopback). Against a Warren that has the endpoints the same flow runs
on Warren. The flow: set a topic permission for a new user on a new vhost,
a max-queues vhost limit and a max-channels user limit, all from the forms;
the API has them; clear them from the tables.
"""

import os
import uuid

import pytest
import requests
from selenium.webdriver.common.by import By

import ui_proxy
from ui import accept_confirm, fill, go, login, main_text, rows, submit, wait_for

RABBITMQ = os.environ.get("RABBITMQ_MGMT_URL")


class Target:
    def __init__(self, ui_url, api_url):
        self.ui_url, self.api_url = ui_url, api_url

    def api(self, method, path, **kw):
        return requests.request(method, self.api_url + "/api" + path, auth=("guest", "guest"), timeout=10, **kw)

    def supports(self):
        return all(self.api("GET", p).status_code == 200 for p in ("/topic-permissions", "/vhost-limits", "/user-limits"))


@pytest.fixture(params=["warren", "rabbitmq"])
def target(request, warren):
    if request.param == "warren":
        t = Target(warren.mgmt_url, warren.mgmt_url)
        if not t.supports():
            pytest.skip("this Warren has no topic-permissions/limits endpoints yet (test_pages_say_unsupported covers it)")
        yield t
        return
    if not RABBITMQ:
        pytest.skip("RABBITMQ_MGMT_URL not set")
    t = Target(None, RABBITMQ.rstrip("/"))
    broken = [p for p in ("/overview", "/vhosts") if t.api("GET", p).status_code != 200]
    if broken:  # e.g. its stats database crashed: the reference broker, not the UI, is at fault
        pytest.skip(f"RabbitMQ's management API fails on {broken}")
    t.ui_url, stop = ui_proxy.start(t.api_url)
    yield t
    stop()


def clear_row(browser, label):
    wait_for(label, lambda: browser.find_element(By.CSS_SELECTOR, f'button[aria-label="{label}"]')).click()
    accept_confirm(browser)


def test_topic_permissions_and_limits(browser, target):
    suffix = uuid.uuid4().hex[:6]
    vhost, user = f"ui-lim-{suffix}", f"ui-lim-user-{suffix}"
    target.api("PUT", f"/vhosts/{vhost}", json={}).raise_for_status()
    target.api("PUT", f"/users/{user}", json={"password": "pw", "tags": ""}).raise_for_status()
    try:
        login(browser, target.ui_url)
        go(browser, target.ui_url, "/admin/permissions")
        form = wait_for("the topic permission form", lambda: browser.find_element(By.ID, "set-topic-permission"))
        fill(form, user=user, vhost=vhost, exchange="amq.topic", write="^orders\\.", read=".*")
        submit(form)
        wait_for("the topic permission row", lambda: [user, vhost, "amq.topic", "^orders\\.", ".*"] in
                 [r[:5] for r in rows(browser, "#topic-permissions table")])
        assert {"user": user, "vhost": vhost, "exchange": "amq.topic", "write": "^orders\\.", "read": ".*"} in \
            target.api("GET", "/topic-permissions").json()

        go(browser, target.ui_url, "/admin/limits")
        form = wait_for("the vhost limit form", lambda: browser.find_element(By.ID, "set-vhost-limit"))
        fill(form, owner=vhost, limit="max-queues", value="25")
        submit(form)
        wait_for("the vhost limit row", lambda: [vhost, "max-queues", "25"] in [r[:3] for r in rows(browser, "#vhost-limits table")])
        form = browser.find_element(By.ID, "set-user-limit")
        fill(form, owner=user, limit="max-channels", value="3")
        submit(form)
        wait_for("the user limit row", lambda: [user, "max-channels", "3"] in [r[:3] for r in rows(browser, "#user-limits table")])
        assert {"vhost": vhost, "value": {"max-queues": 25}} in target.api("GET", "/vhost-limits").json()
        assert {"user": user, "value": {"max-channels": 3}} in target.api("GET", "/user-limits").json()

        clear_row(browser, f"Clear max-queues of {vhost}")
        clear_row(browser, f"Clear max-channels of {user}")
        # (RabbitMQ keeps an entry with an empty value once the last limit is cleared.)
        wait_for("the limits cleared", lambda: not any(x["vhost"] == vhost and x["value"] for x in target.api("GET", "/vhost-limits").json())
                 and not any(x["user"] == user and x["value"] for x in target.api("GET", "/user-limits").json()))
        go(browser, target.ui_url, "/admin/permissions")
        clear_row(browser, f"Clear topic permissions of {user} on {vhost}")
        wait_for("the topic permission cleared", lambda: not any(
            x["user"] == user for x in target.api("GET", "/topic-permissions").json()))
    finally:
        target.api("DELETE", f"/users/{user}")
        target.api("DELETE", f"/vhosts/{vhost}")


def test_pages_say_unsupported_when_the_broker_lacks_the_endpoints(browser, warren):
    if Target(warren.mgmt_url, warren.mgmt_url).supports():
        pytest.skip("this Warren has the endpoints")
    login(browser, warren.mgmt_url)
    go(browser, warren.mgmt_url, "/admin/limits")
    wait_for("the notices", lambda: "does not support vhost limits" in main_text(browser)
             and "does not support user limits" in main_text(browser))
    assert not browser.find_elements(By.ID, "set-vhost-limit")
    go(browser, warren.mgmt_url, "/admin/permissions")
    wait_for("the topic notice", lambda: "does not support topic permissions" in main_text(browser))
