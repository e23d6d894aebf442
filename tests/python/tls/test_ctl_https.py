"""`warren ctl` against a management API served over HTTPS (`--http-tls`):
``--http-url https://...`` with ``--tls-ca`` (or env ``WARREN_CTL_TLS_CA``),
``--tls-insecure``, and a client certificate (``--tls-cert``/``--tls-key``)
for a listener that requires one. A certificate from another CA is refused,
and so is https:// without a way to check the server."""

import json
import os
import subprocess

from conftest import WARREN_BIN


def ctl(broker, *args, env=None, url_host="localhost"):
    url = f"https://guest:guest@{url_host}:{broker.ports['http']}"
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("WARREN_")}
    run_env.update(env or {})
    return subprocess.run([WARREN_BIN, "ctl", "--http-url", url, *args],
                          capture_output=True, text=True, timeout=60, env=run_env)


def vhost_names(broker):
    r = broker.api("GET", "/api/vhosts")
    assert r.status_code == 200, r.text
    return {v["name"] for v in r.json()}


def test_ctl_over_https_checks_the_server_certificate(broker):
    certs = broker.certs
    r = ctl(broker, "--tls-ca", certs.ca, "add-vhost", "via-https")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] is True
    assert "via-https" in vhost_names(broker)
    # The CA from the environment; an IP address as the server name (the
    # test certificate has it as a subjectAltName).
    r = ctl(broker, "list-vhosts", env={"WARREN_CTL_TLS_CA": certs.ca}, url_host="127.0.0.1")
    assert r.returncode == 0, r.stderr
    assert "via-https" in r.stdout
    # No CA and not --tls-insecure: refused before connecting.
    r = ctl(broker, "list-vhosts")
    assert r.returncode != 0 and "--tls-ca" in r.stderr, (r.returncode, r.stderr)
    # A CA that did not sign the server's certificate: the handshake fails.
    rogue_ca = os.path.join(certs.dir, "rogue_certificate.pem")
    r = ctl(broker, "--tls-ca", rogue_ca, "list-vhosts")
    assert r.returncode != 0 and "certificate" in r.stderr.lower(), r.stderr
    # --tls-insecure: any certificate.
    r = ctl(broker, "--tls-insecure", "delete-vhost", "via-https")
    assert r.returncode == 0, r.stderr
    assert "via-https" not in vhost_names(broker)


def test_ctl_over_https_with_a_client_certificate(make_broker):
    broker = make_broker(verify="peer", fail=True)
    certs = broker.certs
    r = ctl(broker, "--tls-ca", certs.ca, "list-vhosts")
    assert r.returncode != 0, "a listener requiring a certificate let ctl in without one"
    r = ctl(broker, "--tls-ca", certs.ca, "--tls-cert", certs.client_cert,
            "--tls-key", certs.client_key, "list-vhosts")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["ok"] is True


def test_plain_http_url_to_a_tls_api_fails_cleanly(broker):
    url = f"http://guest:guest@127.0.0.1:{broker.ports['http']}"
    r = subprocess.run([WARREN_BIN, "ctl", "--http-url", url, "list-vhosts"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert "panicked" not in r.stderr
