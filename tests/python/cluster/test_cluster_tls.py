"""Inter-node TLS (``--cluster-tls``, RabbitMQ's inter-node TLS): every link
between nodes is a mutual TLS connection with the node certificate
(``--tls-cert``/``--tls-key``) chained to ``--tls-ca``, and the cookie
handshake runs inside it. A 3-node cluster forms and replicates over TLS;
the cluster port refuses plain-text peers, TLS clients without a
certificate and nodes whose certificate another CA signed, and says so in
its log; the cluster keeps working meanwhile."""

import os
import shutil
import socket
import ssl
import sys
import tempfile

import pika
import pytest

from cluster_harness import WARREN_BIN, has_queue, started_cluster, wait_for

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tls"))
from certs import make_ca, make_cert  # noqa: E402 - the TLS suite's certificate maker

pytestmark = [
    pytest.mark.skipif(not os.path.exists(WARREN_BIN), reason=f"no warren binary at {WARREN_BIN}"),
    pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl CLI not installed"),
]


@pytest.fixture(scope="module")
def pki():
    d = tempfile.mkdtemp(prefix="warren-cluster-tls-")
    ca = make_ca(d)
    cert, key = make_cert(d, "node", "/O=Warren Test/CN=warren-node", node=True)
    make_ca(d, "rogue", "Rogue CA")
    rogue_cert, rogue_key = make_cert(d, "rogue_node", "/CN=warren-node", ca="rogue", node=True)
    yield {"dir": d, "ca": ca, "cert": cert, "key": key,
           "rogue_cert": rogue_cert, "rogue_key": rogue_key}
    shutil.rmtree(d, ignore_errors=True)


def tls_env(pki, cert=None, key=None):
    # The node certificate also enables the client TLS listeners: off here.
    return {"WARREN_CLUSTER_TLS": "true", "WARREN_TLS_CERT": cert or pki["cert"],
            "WARREN_TLS_KEY": key or pki["key"], "WARREN_TLS_CA": pki["ca"],
            "WARREN_AMQPS_PORT": "0", "WARREN_STOMPS_PORT": "0", "WARREN_MQTTS_PORT": "0"}


@pytest.fixture(scope="module")
def cluster(pki):
    yield from started_cluster(env=tls_env(pki))


def test_cluster_forms_and_replicates_over_tls(cluster):
    n1, n2, n3 = (cluster.node(n) for n in ("n1", "n2", "n3"))
    assert "(TLS)" in n1.log()
    conn = n1.connect()
    ch = conn.channel()
    ch.queue_declare("tls.qq", durable=True, arguments={"x-queue-type": "quorum"})
    ch.confirm_delivery()
    for i in range(20):
        ch.basic_publish("", "tls.qq", b"m%d" % i, pika.BasicProperties(delivery_mode=2))
    conn.close()
    wait_for(lambda: has_queue(n3, "tls.qq"), what="tls.qq on n3")
    conn = n2.connect()
    ch = conn.channel()
    got = []
    for _ in range(20):
        m, _, body = ch.basic_get("tls.qq", auto_ack=True)
        assert m is not None
        got.append(body)
    conn.close()
    assert got == [b"m%d" % i for i in range(20)]


def test_plain_and_certificateless_peers_are_refused(cluster, pki):
    n1 = cluster.node("n1")
    port = n1.cluster_port
    # Plain bytes (what a node without --cluster-tls sends first): the TLS
    # handshake fails and the connection closes.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"\x01warren-cluster-handshake" + b"\0" * 64)
        s.settimeout(5)
        try:
            data = s.recv(4096)
        except ConnectionResetError:
            data = b""
        # Either closed at once or a TLS alert record (content type 21).
        assert data == b"" or data[0] == 21, data[:16]
    # A TLS client that trusts the CA but shows no certificate.
    ctx = ssl.create_default_context(cafile=pki["ca"])
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with pytest.raises((ssl.SSLError, ConnectionResetError, OSError)):
            with ctx.wrap_socket(raw) as s:
                # TLS 1.3: the server's refusal of the missing certificate
                # arrives after the client's side of the handshake finished.
                s.settimeout(5)
                s.sendall(b"\0" * 16)
                if s.recv(1) == b"":
                    raise ConnectionResetError("closed")
    wait_for(lambda: "cluster connection from" in n1.log() and "TLS" in n1.log(),
             what="n1 to log the refused TLS peers")


def tls_client(pki, cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki["ca"])
    ctx.check_hostname = False
    ctx.load_cert_chain(cert, key)
    return ctx


def refused(ctx, port) -> bool:
    """Whether the cluster port ends a TLS connection made with ``ctx``
    that then sends bytes that are no cookie handshake (in the handshake,
    or by closing after it)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:
                s.settimeout(8)
                s.sendall(b"\x01" + b"\0" * 80)
                return s.recv(4096) == b""
    except (ssl.SSLError, ConnectionResetError, BrokenPipeError):
        return True


def test_another_cas_certificate_is_refused_and_the_cookie_still_counts(cluster, pki):
    n1, n2 = cluster.node("n1"), cluster.node("n2")
    # A certificate from a CA the nodes do not trust: the TLS handshake fails.
    assert refused(tls_client(pki, pki["rogue_cert"], pki["rogue_key"]), n1.cluster_port)
    # The right certificate but no cookie proof: TLS succeeds, then the
    # cookie handshake inside it drops the link.
    assert refused(tls_client(pki, pki["cert"], pki["key"]), n1.cluster_port)
    # The cluster still works.
    conn = n1.connect()
    conn.channel().queue_declare("tls.after", durable=True)
    conn.close()
    wait_for(lambda: has_queue(n2, "tls.after"), what="a declare replicated afterwards")
