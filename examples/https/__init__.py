"""examples.https — a page and a small JSON API over HTTPS.

``GET /``            an HTML page that calls the API
``GET /api/health``  200 ``{"status": "ok"}``
``GET /api/hello``   200 ``{"message": "hello over TLS", "pid": <worker pid>}``
anything else        404 ``{"error": ...}``

Run: ``python -m examples.https --port 8443 --workers 2``. With no ``--ssl-certfile`` it serves a
throwaway self-signed certificate (ECDSA P-256, for ``localhost``, ``127.0.0.1`` and ``::1``, valid
for 30 days) made at startup in a fresh temporary directory and removed when the server exits; the
startup log names it (``TLS certificate /tmp/vanilla-https-…/selfsigned.pem``), so a client can trust
exactly that file: ``curl --cacert /tmp/vanilla-https-…/selfsigned.pem https://localhost:8443/``.
With your own certificate: ``--ssl-certfile cert.pem --ssl-keyfile key.pem`` (uvicorn's flags).
"""

from __future__ import annotations

import atexit
import datetime
import ipaddress
import json
import os
import shutil
import tempfile
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from vanilla_async import Request, ServerConfig, TLSConfig, respond
from vanilla_async.routing import Router

__all__ = ["config", "router", "self_signed", "PAGE"]

JSON = b"application/json"
PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>vanilla_async over HTTPS</title></head>
<body>
<h1>Hello over HTTPS</h1>
<p>This page and <a href="/api/hello">/api/hello</a> are served by vanilla_async through TLS.</p>
<pre id="api">loading /api/hello ...</pre>
<script>
fetch("/api/hello").then(r => r.json()).then(doc => {
  document.getElementById("api").textContent = JSON.stringify(doc, null, 2);
});
</script>
</body></html>
"""


def send(out: bytearray, status: int, doc: Any) -> None:
    respond(out, status, json.dumps(doc), content_type=JSON)


router = Router(not_found=lambda req, out: send(out, 404, {"error": "no such page; try / or /api/hello"}))


@router.get("/")
def page(req: Request, out: bytearray) -> None:
    respond(out, 200, PAGE, content_type=b"text/html; charset=utf-8")


@router.get("/api/health")
def health(req: Request, out: bytearray) -> None:
    send(out, 200, {"status": "ok"})


@router.get("/api/hello")
def hello(req: Request, out: bytearray) -> None:
    send(out, 200, {"message": "hello over TLS", "pid": os.getpid()})


def self_signed(directory: str, days: int = 30) -> TLSConfig:
    """Write a self-signed ECDSA P-256 certificate for localhost into ``directory``; its `TLSConfig`.

    The certificate is its own trust anchor: give its file to a client as the CA (``curl --cacert``).
    """
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "vanilla_async example (throwaway)")])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([
            x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    certfile, keyfile = os.path.join(directory, "selfsigned.pem"), os.path.join(directory, "selfsigned.key")
    with open(certfile, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    fd = os.open(keyfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    return TLSConfig(certfile=certfile, keyfile=keyfile)


def _throwaway() -> TLSConfig:
    """A self-signed certificate in a fresh temporary directory, removed when this process exits."""
    directory = tempfile.mkdtemp(prefix="vanilla-https-")
    owner = os.getpid()  # forked workers inherit the atexit hook: only the creator removes the files

    def remove() -> None:
        if os.getpid() == owner:
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    return self_signed(directory)


config = ServerConfig(handler=router, port=8443, tls=_throwaway())
