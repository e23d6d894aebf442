"""Admin pages in a real browser (headless Chromium, the session's own broker):
everything done through the UI's forms and buttons, then checked with the
HTTP API, by connecting with pika as the new user, and by logging in as it.

* a virtual host, a user with tags, its permissions and a policy
  (max-length 2 on ^lim\\. queues) created in the Admin pages: the API has
  them, pika as that user works in that vhost (the policy caps a queue at 2
  messages) and is refused elsewhere, the user logs in and, being a
  policymaker, sees Admin with only Policies; Edit changes its tags and keeps
  its password; then everything is deleted from the UI.
* a `management` user sees only the vhosts it has permissions on, no Admin
  tab, and a refusal at Admin's address; logging out forgets the session.
Screenshots: admin-users.png, admin-policies.png, management-user.png.
"""

import time
import uuid

import pika
import pika.exceptions
import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from ui import accept_confirm, fill, flash_text, go, login, rows, screenshot, submit, wait_for


def logout(browser):
    browser.find_element(By.ID, "logout").click()
    wait_for("the login form", lambda: browser.find_element(By.ID, "login").is_displayed())


def row_of(browser, table_css, first_cell):
    return wait_for(f"row {first_cell} in {table_css}",
                    lambda: next((r for r in rows(browser, table_css) if r and r[0] == first_cell), None))


def delete_button(browser, label):
    browser.find_element(By.CSS_SELECTOR, f'button[aria-label="{label}"]').click()
    accept_confirm(browser)


def test_vhost_user_permissions_policy_through_the_ui(browser, warren):
    suffix = uuid.uuid4().hex[:6]
    vhost, user, password, policy = f"ui-vh-{suffix}", f"ui-user-{suffix}", f"pw-{suffix}", f"cap-{suffix}"
    base = warren.mgmt_url
    login(browser, base)

    # A virtual host.
    go(browser, base, "/admin/vhosts")
    form = wait_for("the add-vhost form", lambda: browser.find_element(By.ID, "add-vhost"))
    fill(form, name=vhost, description="made in the browser")
    submit(form)
    row_of(browser, "#vhosts table", vhost)

    # A user with two tags.
    go(browser, base, "/admin/users")
    form = wait_for("the add-user form", lambda: browser.find_element(By.ID, "add-user"))
    fill(form, name=user, password=password, tags="management, policymaker")
    submit(form)
    assert row_of(browser, "#users table", user)[1].split() == ["management", "policymaker"]
    screenshot(browser, "admin-users.png")

    # Its permissions on the new vhost.
    go(browser, base, "/admin/permissions")
    form = wait_for("the permission form", lambda: browser.find_element(By.ID, "set-permission"))
    wait_for("the new user in the form", lambda: user in [o.text for o in Select(form.find_element(By.NAME, "user")).options])
    fill(form, user=user, vhost=vhost, configure=".*", write=".*", read=".*")
    submit(form)
    wait_for("the permission row", lambda: [user, vhost, ".*", ".*", ".*"] in [r[:5] for r in rows(browser, "#permissions table")])

    # A policy on it.
    go(browser, base, "/admin/policies")
    form = wait_for("the policy form", lambda: browser.find_element(By.ID, "add-policy"))
    fill(form, vhost=vhost, name=policy, pattern="^lim\\.", definition="max-length=2")
    Select(form.find_element(By.NAME, "apply-to")).select_by_visible_text("queues")
    submit(form)
    row = wait_for("the policy row", lambda: next((r for r in rows(browser, "#policies table") if r[1] == policy), None))
    assert row[0] == vhost and row[2] == "^lim\\." and row[3] == "queues" and '"max-length":2' in row[4]
    screenshot(browser, "admin-policies.png")

    # The API has all of it.
    assert warren.api("GET", f"/vhosts/{vhost}").status_code == 200
    assert sorted(warren.api("GET", f"/users/{user}").json()["tags"]) == ["management", "policymaker"]
    perm = warren.api("GET", f"/permissions/{vhost}/{user}").json()
    assert (perm["configure"], perm["write"], perm["read"]) == (".*", ".*", ".*")
    pol = warren.api("GET", f"/policies/{vhost}/{policy}").json()
    assert pol["definition"] == {"max-length": 2} and pol["apply-to"] == "queues"

    # pika as the new user: works in its vhost, where the policy caps the queue...
    conn = warren.connect(user, password, vhost)
    ch = conn.channel()
    ch.queue_declare("lim.q")
    ch.confirm_delivery()
    for i in range(5):
        ch.basic_publish("", "lim.q", f"{i}".encode())
    assert ch.queue_declare("lim.q", passive=True).method.message_count == 2
    conn.close()
    # ...and has no access to "/".
    with pytest.raises((pika.exceptions.ProbableAccessDeniedError, pika.exceptions.ConnectionClosedByBroker)):
        warren.connect(user, password, "/")

    # It logs in; a policymaker gets Admin with Policies only.
    logout(browser)
    login(browser, base, user, password)
    assert browser.find_element(By.CSS_SELECTOR, '#nav a[data-tab="admin"]').is_displayed()
    go(browser, base, "/queues")
    wait_for("its queue", lambda: browser.find_element(By.LINK_TEXT, "lim.q"))
    go(browser, base, "/admin")
    wait_for("the policies tab", lambda: [a.text for a in browser.find_elements(By.CSS_SELECTOR, "nav.subnav a")] == ["Policies"])
    row_of(browser, "#policies table", vhost)
    logout(browser)

    # Edit: new tags, empty password (kept).
    login(browser, base)
    go(browser, base, "/admin/users")
    wait_for("the edit button", lambda: browser.find_element(By.CSS_SELECTOR, f'button[aria-label="Edit user {user}"]')).click()
    assert browser.find_element(By.ID, "user-name").get_attribute("value") == user
    tags = browser.find_element(By.ID, "user-tags")
    assert tags.get_attribute("value") == "management, policymaker"
    tags.clear()
    tags.send_keys("monitoring")
    submit(browser.find_element(By.ID, "add-user"))
    wait_for("the new tags", lambda: warren.api("GET", f"/users/{user}").json()["tags"] == ["monitoring"])
    assert warren.api("GET", "/whoami", user=(user, password)).json()["name"] == user

    # Delete it all from the UI.
    go(browser, base, "/admin/policies")
    row_of(browser, "#policies table", vhost)
    delete_button(browser, f"Delete policy {policy}")
    wait_for("the policy gone", lambda: warren.api("GET", f"/policies/{vhost}/{policy}").status_code == 404)
    go(browser, base, "/admin/permissions")
    row_of(browser, "#permissions table", user)
    delete_button(browser, f"Clear permissions of {user} on {vhost}")
    wait_for("the permission gone", lambda: warren.api("GET", f"/permissions/{vhost}/{user}").status_code == 404)
    go(browser, base, "/admin/users")
    row_of(browser, "#users table", user)
    delete_button(browser, f"Delete user {user}")
    wait_for("the user gone", lambda: warren.api("GET", f"/users/{user}").status_code == 404)
    go(browser, base, "/admin/vhosts")
    row_of(browser, "#vhosts table", vhost)
    delete_button(browser, f"Delete virtual host {vhost}")
    wait_for("the vhost gone", lambda: warren.api("GET", f"/vhosts/{vhost}").status_code == 404)
    wait_for("the vhost off the picker", lambda: vhost not in [o.text for o in Select(browser.find_element(By.ID, "vhost-select")).options])
    assert "Deleted" in flash_text(browser)


def test_user_without_a_management_tag_cannot_log_in(browser, warren):
    user = f"ui-notag-{uuid.uuid4().hex[:6]}"
    warren.api("PUT", f"/users/{user}", json={"password": "pw", "tags": ""}).raise_for_status()
    try:
        login(browser, warren.mgmt_url, user, "pw", expect_shell=False)
        wait_for("the refusal", lambda: "Not management user" in browser.find_element(By.ID, "login-error").text)
        assert not browser.find_element(By.ID, "shell").is_displayed()
    finally:
        warren.api("DELETE", f"/users/{user}")


def test_management_user_sees_only_its_vhosts(browser, warren):
    suffix = uuid.uuid4().hex[:6]
    mine, other, user = f"ui-mine-{suffix}", f"ui-other-{suffix}", f"ui-mgmt-{suffix}"
    for v in (mine, other):
        assert warren.api("PUT", f"/vhosts/{v}", json={}).status_code in (201, 204)
        assert warren.api("PUT", f"/queues/{v}/q-in-{v}", json={"durable": False}).status_code in (201, 204)
    warren.api("PUT", f"/users/{user}", json={"password": "pw", "tags": "management"}).raise_for_status()
    warren.api("PUT", f"/permissions/{mine}/{user}", json={"configure": ".*", "write": ".*", "read": ".*"}).raise_for_status()
    base = warren.mgmt_url
    try:
        login(browser, base, user, "pw")
        assert not browser.find_element(By.CSS_SELECTOR, '#nav a[data-tab="admin"]').is_displayed()
        options = [o.text for o in Select(browser.find_element(By.ID, "vhost-select")).options]
        assert options == ["All", mine]
        go(browser, base, "/queues")
        wait_for("its queue", lambda: browser.find_element(By.LINK_TEXT, f"q-in-{mine}"))
        names = [r[0] for r in rows(browser, "#queues")]
        assert names == [f"q-in-{mine}"], names
        go(browser, base, "/exchanges")
        wait_for("exchanges", lambda: rows(browser, "#exchanges"))
        assert {r[1] for r in rows(browser, "#exchanges")} == {mine}
        screenshot(browser, "management-user.png")
        for page in ("/admin", "/admin/users", "/admin/definitions"):
            go(browser, base, page)
            wait_for(f"the refusal at {page}", lambda: browser.find_element(By.ID, "not-authorised").is_displayed())
            assert not browser.find_elements(By.ID, "add-user")
        # The API agrees: no users list for it.
        assert warren.api("GET", "/users", user=(user, "pw")).status_code == 401
        # Logging out forgets the credentials: a reload shows the login form.
        browser.find_element(By.ID, "logout").click()
        browser.refresh()
        wait_for("the login form", lambda: browser.find_element(By.ID, "login").is_displayed())
        assert not browser.find_element(By.ID, "shell").is_displayed()
        assert browser.execute_script("return sessionStorage.getItem('warren.auth')") is None
    finally:
        warren.api("DELETE", f"/users/{user}")
        for v in (mine, other):
            warren.api("DELETE", f"/vhosts/{v}")
