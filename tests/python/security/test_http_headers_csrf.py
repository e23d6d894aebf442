"""The management API's browser protections (crates/warren-http/src/security.rs):
security headers on every response, and cross-site state-changing requests
refused while programs (requests, curl, rabbitmqadmin) and the UI (same
origin) work unchanged.

RabbitMQ 3.10 sends ``cache-control: no-cache`` and a CSP without
``frame-ancestors`` on API responses, and accepts a cross-origin PUT with
credentials; Warren is stricter there on purpose.
"""

import shutil
import subprocess

import pytest
import requests

G = ("guest", "guest")


@pytest.fixture(scope="module")
def base(v4):
    return f"http://127.0.0.1:{v4.http_port}"


def check_headers(r, api=True):
    h = r.headers
    assert h.get("x-content-type-options") == "nosniff"
    assert h.get("x-frame-options") == "DENY"
    assert "frame-ancestors 'none'" in h.get("content-security-policy", "")
    assert h.get("referrer-policy") == "same-origin"
    if api:
        assert h.get("cache-control") == "no-store"


def test_security_headers(base):
    check_headers(requests.get(base + "/api/overview", auth=G, timeout=10))
    # Errors too: unauthenticated, not found, bad body.
    check_headers(requests.get(base + "/api/overview", timeout=10))
    check_headers(requests.get(base + "/api/queues/%2F/no-such", auth=G, timeout=10))
    check_headers(requests.put(base + "/api/queues/%2F/x", data="{", auth=G, timeout=10))
    # The UI's pages.
    check_headers(requests.get(base + "/", timeout=10), api=False)


def test_cross_site_state_changes_are_refused(base):
    q = base + "/api/queues/%2F/csrf-q"
    for headers in ({"Origin": "http://evil.example"},
                    {"Origin": "null"},
                    {"Origin": base.replace("127.0.0.1", "localhost")},
                    {"Sec-Fetch-Site": "cross-site"},
                    {"Sec-Fetch-Site": "same-site"}):
        for method in ("PUT", "POST", "DELETE"):
            r = requests.request(method, q, json={}, auth=G, headers=headers, timeout=10)
            assert r.status_code == 403, (method, headers, r.status_code, r.text)
            assert r.json()["error"] == "forbidden"
            check_headers(r)
    assert requests.get(q, auth=G, timeout=10).status_code == 404
    # Reading cross-origin is not state-changing (and CORS keeps the answer
    # from the other page anyway).
    r = requests.get(base + "/api/overview", auth=G, headers={"Origin": "http://evil.example"},
                     timeout=10)
    assert r.status_code == 200
    assert "access-control-allow-origin" not in r.headers


def test_same_origin_and_programs_still_work(base):
    q = base + "/api/queues/%2F/csrf-ok"
    # The UI: same origin, fetch metadata says so.
    r = requests.put(q, json={}, auth=G, timeout=10,
                     headers={"Origin": base, "Sec-Fetch-Site": "same-origin",
                              "X-Requested-With": "XMLHttpRequest"})
    assert r.status_code in (201, 204), r.text
    # requests without any browser header, and without a content type.
    r = requests.put(q, data="{}", auth=G, timeout=10)
    assert r.status_code in (201, 204), r.text
    assert requests.delete(q, auth=G, timeout=10).status_code == 204


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
def test_curl_still_works(base):
    # curl -d sends application/x-www-form-urlencoded: accepted, as RabbitMQ.
    url = base + "/api/queues/%2F/csrf-curl"
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u",
                          "guest:guest", "-X", "PUT", "-d", '{"durable":false}', url],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout in ("201", "204"), out
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-u",
                          "guest:guest", "-X", "DELETE", url],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout == "204", out


def test_rabbitmqadmin_still_works(base, v4):
    exe = shutil.which("rabbitmqadmin")
    if exe is None:
        pytest.skip("rabbitmqadmin not installed")
    args = [exe, "-H", "127.0.0.1", "-P", str(v4.http_port), "-u", "guest", "-p", "guest"]
    r = subprocess.run(args + ["declare", "queue", "name=csrf-admin", "durable=false"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run(args + ["delete", "queue", "name=csrf-admin"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
