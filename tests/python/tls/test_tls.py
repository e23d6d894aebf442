"""TLS on every listener (issue 14): AMQPS with pika, STOMP over TLS with
stomp.py, MQTT over TLS with paho, HTTPS with requests, WSS with
websocket-client; client certificates, SASL EXTERNAL, certificate logins,
reload on SIGHUP, and clients that get the handshake wrong."""

import json
import socket
import ssl
import threading
import time
import uuid

import paho.mqtt.client as mqtt
import pika
import pika.exceptions
import pytest
import requests
import stomp
import websocket


def amqps(broker, cert=True, credentials=None, ctx=None):
    ctx = ctx or broker.client_context(cert)
    return pika.BlockingConnection(pika.ConnectionParameters(
        host="localhost", port=broker.ports["amqps"],
        ssl_options=pika.SSLOptions(ctx, "localhost"),
        credentials=credentials or pika.PlainCredentials("guest", "guest"),
        connection_attempts=1, socket_timeout=5))


def connections(broker, wait_for=1):
    deadline = time.monotonic() + 5
    while True:
        r = broker.api("GET", "/api/connections")
        assert r.status_code == 200, r.text
        if len(r.json()) >= wait_for or time.monotonic() > deadline:
            return r.json()
        time.sleep(0.1)


def roundtrip(conn):
    ch = conn.channel()
    q = ch.queue_declare("", exclusive=True).method.queue
    ch.basic_publish("", q, b"over tls")
    for _ in range(50):
        m = ch.basic_get(q, auto_ack=True)
        if m[0] is not None:
            return m[2]
        time.sleep(0.05)
    return None


def test_amqps_with_pika_and_what_management_shows(broker):
    c = amqps(broker)
    assert roundtrip(c) == b"over tls"
    [info] = connections(broker)
    assert info["ssl"] is True
    assert info["ssl_protocol"] == "tlsv1.3"
    assert info["ssl_cipher"] in ("aes_256_gcm", "aes_128_gcm", "chacha20_poly1305")
    assert info["ssl_key_exchange"] == "any"
    assert info["ssl_hash"] == "aead"
    # RabbitMQ's format: RDNs last to first.
    assert info["peer_cert_subject"] == "CN=certuser,O=Warren Test"
    assert info["peer_cert_issuer"] == "CN=Warren Test CA,O=Warren Test"
    assert " - " in info["peer_cert_validity"]
    assert info["auth_mechanism"] == "PLAIN"
    assert info["user"] == "guest"
    c.close()


def test_plain_amqp_connections_show_ssl_false(broker):
    c = pika.BlockingConnection(pika.ConnectionParameters(
        host="127.0.0.1", port=broker.ports["amqp"]))
    [info] = connections(broker)
    assert info["ssl"] is False and info["ssl_protocol"] is None
    c.close()


def test_overview_lists_the_tls_listeners(broker):
    listeners = {l["protocol"]: int(l["port"]) for l in broker.api("GET", "/api/overview").json()["listeners"]}
    assert listeners["amqp/ssl"] == broker.ports["amqps"]
    assert listeners["stomp/ssl"] == broker.ports["stomps"]
    assert listeners["mqtt/ssl"] == broker.ports["mqtts"]
    assert listeners["https"] == broker.ports["http"]
    assert listeners["https/web-stomp"] == broker.ports["web_stomp"]


def test_sasl_external_logs_in_the_certificates_common_name(broker):
    broker.add_user("certuser")
    c = amqps(broker, credentials=pika.credentials.ExternalCredentials())
    assert roundtrip(c) == b"over tls"
    [info] = connections(broker)
    assert info["user"] == "certuser"
    assert info["auth_mechanism"] == "EXTERNAL"
    c.close()


def test_external_refused_for_a_certificate_naming_no_user(broker):
    with pytest.raises(pika.exceptions.ProbableAuthenticationError) as e:
        amqps(broker, credentials=pika.credentials.ExternalCredentials())
    assert "ACCESS_REFUSED" in str(e.value) and "EXTERNAL" in str(e.value)


def test_external_offered_only_with_a_verified_certificate(broker):
    broker.add_user("certuser")
    # TLS without a client certificate: pika finds no EXTERNAL to use.
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        amqps(broker, cert=False, credentials=pika.credentials.ExternalCredentials())
    # Plain TCP: never.
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        pika.BlockingConnection(pika.ConnectionParameters(
            host="127.0.0.1", port=broker.ports["amqp"],
            credentials=pika.credentials.ExternalCredentials(), connection_attempts=1))
    # Without a certificate, PLAIN still works on TLS.
    c = amqps(broker, cert=False)
    [info] = connections(broker)
    assert info["ssl"] is True and info["peer_cert_subject"] is None
    c.close()


def test_certificate_from_an_untrusted_ca_is_refused(broker):
    ctx = ssl.create_default_context(cafile=broker.certs.ca)
    ctx.load_cert_chain(broker.certs.rogue_cert, broker.certs.rogue_key)
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError, OSError)):
        c = amqps(broker, ctx=ctx)
        c.channel()


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = []
        self.got = threading.Event()

    def on_message(self, frame):
        self.messages.append(frame.body)
        self.got.set()


def stomps(broker, cert=True, **connect):
    c = stomp.Connection([("localhost", broker.ports["stomps"])], heartbeats=(0, 0))
    kw = dict(ca_certs=broker.certs.ca)
    if cert:
        kw.update(cert_file=broker.certs.client_cert, key_file=broker.certs.client_key)
    c.set_ssl(for_hosts=[("localhost", broker.ports["stomps"])], **kw)
    c.connect(wait=True, **connect)
    return c


def test_stomp_over_tls_with_login_and_by_certificate(broker):
    broker.add_user("certuser")
    sub = stomps(broker, username="guest", passcode="guest")
    listener = Listener()
    sub.set_listener("l", listener)
    q = f"/queue/tls-{uuid.uuid4().hex[:8]}"
    sub.subscribe(q, id="1")
    # No login header: the certificate's user (RabbitMQ's ssl_cert_login).
    pub = stomps(broker)
    users = {c["user"] for c in connections(broker, wait_for=2)}
    assert users == {"guest", "certuser"}
    pub.send(q, "hello over stomps")
    assert listener.got.wait(5)
    assert listener.messages == ["hello over stomps"]
    infos = connections(broker, wait_for=2)
    assert all(i["ssl"] is True for i in infos)
    assert {i["peer_cert_subject"] for i in infos} == {"CN=certuser,O=Warren Test"}
    pub.disconnect()
    sub.disconnect()


def mqtts_client(broker, client_id, cert=True, username=None, transport="tcp"):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, transport=transport)
    if cert:
        c.tls_set(ca_certs=broker.certs.ca, certfile=broker.certs.client_cert,
                  keyfile=broker.certs.client_key)
    else:
        c.tls_set(ca_certs=broker.certs.ca)
    if username:
        c.username_pw_set(username, "guest")
    return c


def test_mqtt_over_tls_logs_in_by_certificate(broker):
    broker.add_user("certuser")
    got = threading.Event()
    received = []
    connected = []
    sub = mqtts_client(broker, "tls-sub")
    sub.on_connect = lambda c, u, f, rc, p: (connected.append(rc), c.subscribe("tls/t", 1))
    sub.on_subscribe = lambda *a: got.set()
    sub.on_message = lambda c, u, m: (received.append(m.payload), got.set())
    sub.connect("localhost", broker.ports["mqtts"])
    sub.loop_start()
    try:
        assert got.wait(5), connected
        assert connected[0] == 0
        got.clear()
        pub = mqtts_client(broker, "tls-pub", username="guest")
        pub.connect("localhost", broker.ports["mqtts"])
        pub.loop_start()
        pub.publish("tls/t", b"mqtts", qos=1).wait_for_publish(5)
        assert got.wait(5)
        assert received == [b"mqtts"]
        users = sorted(c["user"] for c in connections(broker, wait_for=2))
        assert users == ["certuser", "guest"]
        pub.disconnect()
        pub.loop_stop()
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_mqtt_without_certificate_or_credentials_is_refused(broker):
    codes = []
    done = threading.Event()
    c = mqtts_client(broker, "anon", cert=False)
    c.on_connect = lambda cl, u, f, rc, p: (codes.append(rc), done.set())
    c.connect("localhost", broker.ports["mqtts"])
    c.loop_start()
    try:
        assert done.wait(5)
        assert codes[0].is_failure
    finally:
        c.loop_stop()


def test_https_api_and_plain_http_on_it_fails(broker):
    r = broker.api("GET", "/api/whoami")
    assert r.status_code == 200 and r.json()["name"] == "guest"
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{broker.ports['http']}/api/whoami",
                     auth=("guest", "guest"), timeout=5)


def test_web_stomp_over_wss(broker):
    ws = websocket.create_connection(
        f"wss://localhost:{broker.ports['web_stomp']}/ws",
        sslopt={"ca_certs": broker.certs.ca, "certfile": broker.certs.client_cert,
                "keyfile": broker.certs.client_key}, subprotocols=["v12.stomp"], timeout=5)
    ws.send("CONNECT\naccept-version:1.2\nhost:/\nlogin:guest\npasscode:guest\n\n\x00")
    assert ws.recv().startswith("CONNECTED")
    [info] = connections(broker)
    assert info["protocol"].startswith("Web STOMP") and info["ssl"] is True
    assert info["peer_cert_subject"] == "CN=certuser,O=Warren Test"
    ws.close()


def test_sse_over_https(broker):
    """A feed leaves hyper once its head is written and writes its events on
    the TLS stream itself: they arrive as HTTP chunks, decrypted as usual."""
    ex = "sse-tls-" + uuid.uuid4().hex[:8]
    conn = amqps(broker)
    ch = conn.channel()
    ch.exchange_declare(ex, "fanout")
    r = requests.get(f"https://localhost:{broker.ports['web_stomp']}/sse",
                     params={"destination": f"/exchange/{ex}"}, auth=("guest", "guest"),
                     verify=broker.certs.ca, cert=(broker.certs.client_cert, broker.certs.client_key),
                     stream=True, timeout=10)
    try:
        assert r.status_code == 200 and r.headers["content-type"] == "text/event-stream"
        [info] = [c for c in connections(broker, wait_for=2) if c["protocol"] == "SSE"]
        assert info["ssl"] is True
        ch.basic_publish(ex, "", b"one\ntwo")
        buf = b""
        for chunk in r.iter_content(chunk_size=None):
            buf += chunk
            if b"data: two\n\n" in buf:
                break
        assert b"id: 1\ndata: one\ndata: two\n\n" in buf, buf
    finally:
        r.close()
        conn.close()


def test_web_mqtt_over_wss(broker):
    connected = threading.Event()
    codes = []
    c = mqtts_client(broker, "wss-client", username="guest", transport="websockets")
    c.ws_set_options(path="/ws")
    c.on_connect = lambda cl, u, f, rc, p: (codes.append(rc), connected.set())
    c.connect("localhost", broker.ports["web_mqtt"])
    c.loop_start()
    try:
        assert connected.wait(5) and codes[0] == 0
        [info] = connections(broker)
        assert info["ssl"] is True
    finally:
        c.disconnect()
        c.loop_stop()


def test_fail_if_no_peer_cert_refuses_clients_without_one(make_broker):
    broker = make_broker(verify="peer", fail=True)
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError, OSError)):
        c = amqps(broker, cert=False)
        c.channel()
    # ... and lets clients with one in.
    c = amqps(broker)
    assert roundtrip(c) == b"over tls"
    c.close()


def test_verify_none_asks_for_no_certificate(make_broker):
    broker = make_broker(verify="none")
    c = amqps(broker)  # the client has one, but it is not asked for
    [info] = connections(broker)
    assert info["ssl"] is True and info["peer_cert_subject"] is None
    c.close()


def server_cert_cn(broker) -> str:
    ctx = ssl.create_default_context(cafile=broker.certs.ca)
    with socket.create_connection(("127.0.0.1", broker.ports["amqps"]), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            subject = dict(x[0] for x in s.getpeercert()["subject"])
            return subject["commonName"]


def test_certificates_reload_on_sighup_keeping_open_connections(make_broker, certs, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(open(certs.server_cert, "rb").read())
    key.write_bytes(open(certs.server_key, "rb").read())
    broker = make_broker(cert=str(cert), key=str(key))
    assert server_cert_cn(broker) == "localhost"
    before = amqps(broker)
    cert.write_bytes(open(certs.server2_cert, "rb").read())
    key.write_bytes(open(certs.server2_key, "rb").read())
    broker.hup()
    deadline = time.monotonic() + 10
    while server_cert_cn(broker) != "reloaded.localhost":
        assert time.monotonic() < deadline, broker.log_text()[-2000:]
        time.sleep(0.1)
    assert "TLS certificates reloaded" in broker.log_text()
    # The connection opened before the reload still works.
    assert roundtrip(before) == b"over tls"
    before.close()


def test_a_bad_certificate_file_on_reload_keeps_the_old_one(make_broker, certs, tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(open(certs.server_cert, "rb").read())
    key.write_bytes(open(certs.server_key, "rb").read())
    broker = make_broker(cert=str(cert), key=str(key))
    cert.write_text("not a certificate")
    broker.hup()
    deadline = time.monotonic() + 5
    while "not reloaded" not in broker.log_text():
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert server_cert_cn(broker) == "localhost"


def test_plain_text_to_a_tls_port_is_closed_and_others_are_unaffected(broker):
    working = amqps(broker)
    for port in ("amqps", "stomps", "mqtts"):
        with socket.create_connection(("127.0.0.1", broker.ports[port]), timeout=5) as s:
            s.sendall(b"AMQP\x00\x00\x09\x01" + b"x" * 600)
            s.settimeout(6)
            data = b""
            try:
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            # Nothing but (at most) a TLS alert record, then the close.
            assert data == b"" or data[:1] == b"\x15", data[:20]
    assert roundtrip(working) == b"over tls"
    fresh = amqps(broker)
    assert roundtrip(fresh) == b"over tls"
    fresh.close()
    working.close()


def test_a_silent_client_is_dropped_by_the_handshake_timeout(broker):
    with socket.create_connection(("127.0.0.1", broker.ports["amqps"]), timeout=15) as s:
        started = time.monotonic()
        assert s.recv(1) == b""
        assert 4 <= time.monotonic() - started < 12


def test_tls_versions_and_ciphers_from_the_config_file(make_broker):
    broker = make_broker(config='[tls]\nversions = ["tlsv1.2"]\n'
                                'ciphers = ["ECDHE-RSA-AES128-GCM-SHA256"]\n')
    c = amqps(broker)
    [info] = connections(broker)
    assert info["ssl_protocol"] == "tlsv1.2"
    assert info["ssl_cipher"] == "aes_128_gcm"
    assert info["ssl_key_exchange"] == "ecdhe_rsa"
    c.close()
    only13 = broker.client_context()
    only13.minimum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises((pika.exceptions.AMQPConnectionError, ssl.SSLError, OSError)):
        amqps(broker, ctx=only13).channel()


def test_distinguished_name_logins(make_broker):
    broker = make_broker(config='[tls]\ncert_login_from = "distinguished_name"\n')
    broker.add_user("CN=certuser,O=Warren Test")
    c = amqps(broker, credentials=pika.credentials.ExternalCredentials())
    [info] = connections(broker)
    assert info["user"] == "CN=certuser,O=Warren Test"
    c.close()
