"""Test certificates made with the openssl CLI at test time: a CA, server
certificates for localhost/127.0.0.1, client certificates with a chosen CN,
and a client certificate from a CA the broker does not trust."""

import os
import subprocess


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def make_ca(d: str, name: str = "ca", cn: str = "Warren Test CA") -> str:
    key, cert = os.path.join(d, f"{name}_key.pem"), os.path.join(d, f"{name}_certificate.pem")
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", cert, "-days", "30", "-subj", f"/O=Warren Test/CN={cn}")
    return cert


def make_cert(d: str, name: str, subject: str, ca: str = "ca", server: bool = False,
              node: bool = False) -> tuple:
    """(certificate, key) signed by ``ca``; ``subject`` as openssl's -subj.
    ``node``: a cluster node's, used both ways (server and client)."""
    key, csr = os.path.join(d, f"{name}_key.pem"), os.path.join(d, f"{name}.csr")
    cert, ext = os.path.join(d, f"{name}_certificate.pem"), os.path.join(d, f"{name}.ext")
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
         "-subj", subject)
    with open(ext, "w") as f:
        if node:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        elif server:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        else:
            f.write("extendedKeyUsage=clientAuth\n")
    _run("openssl", "x509", "-req", "-in", csr, "-CA", os.path.join(d, f"{ca}_certificate.pem"),
         "-CAkey", os.path.join(d, f"{ca}_key.pem"), "-CAcreateserial", "-out", cert,
         "-days", "30", "-extfile", ext)
    return cert, key


class Certs:
    def __init__(self, d: str):
        self.dir = d
        self.ca = make_ca(d)
        self.server_cert, self.server_key = make_cert(d, "server", "/O=Warren Test/CN=localhost",
                                                      server=True)
        # A second server certificate (another CN) for the reload test.
        self.server2_cert, self.server2_key = make_cert(d, "server2",
                                                        "/O=Warren Test/CN=reloaded.localhost",
                                                        server=True)
        self.client_cert, self.client_key = make_cert(d, "client", "/O=Warren Test/CN=certuser")
        make_ca(d, "rogue", "Rogue CA")
        self.rogue_cert, self.rogue_key = make_cert(d, "rogue_client", "/CN=certuser", ca="rogue")
