"""examples.https: the handlers, the throwaway certificate, and (once the engine serves TLS) HTTPS end to end."""

from __future__ import annotations

import http.client
import ipaddress
import json
import shutil
import signal
import ssl
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from examples.https import PAGE, config, router, self_signed
from vanilla_async._core.tls import TLSConfig, build_context
from vanilla_async.testing import ServerProcess, call

ROOT = Path(__file__).resolve().parents[2]


def test_handlers_called_directly() -> None:
    raw = call(router, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(PAGE) and b"text/html" in raw
    raw = call(router, b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and json.loads(raw.split(b"\r\n\r\n", 1)[1]) == {"status": "ok"}
    raw = call(router, b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 404 ") and b"application/json" in raw


def test_the_throwaway_certificate_is_usable(tmp_path: Path) -> None:
    assert isinstance(config.tls, TLSConfig) and Path(config.tls.certfile).is_file()
    tls = self_signed(str(tmp_path))
    build_context(tls)  # loads: the key matches the certificate
    assert tls.keyfile is not None and Path(tls.keyfile).stat().st_mode & 0o077 == 0  # the key is private
    cert = x509.load_pem_x509_certificate(Path(tls.certfile).read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert ipaddress.ip_address("127.0.0.1") in san.get_values_for_type(x509.IPAddress)
    # a client that trusts exactly this file verifies it
    client = ssl.create_default_context(cafile=tls.certfile)
    server = build_context(tls)
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    c = client.wrap_bio(c_in, c_out, server_hostname="localhost")
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):  # a bounded in-memory handshake
        for obj, out, peer_in in ((c, c_out, s_in), (s, s_out, c_in)):
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            peer_in.write(out.read())
    assert c.version() == "TLSv1.3" and s.version() == "TLSv1.3"


def test_https_end_to_end() -> None:
    with ServerProcess("-m", "examples.https", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        certfile = proc.wait_for(r"TLS certificate (\S+), key", timeout=30).group(1)
        port = int(proc.wait_for(r"serving https?://127\.0\.0\.1:(\d+)", timeout=30).group(1))
        context = ssl.create_default_context(cafile=certfile)
        conn = http.client.HTTPSConnection("localhost", port, context=context, timeout=5)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.status == 200 and response.read() == PAGE
            conn.request("GET", "/api/hello")  # the same connection: keep-alive over TLS
            response = conn.getresponse()
            assert response.status == 200 and json.loads(response.read())["message"] == "hello over TLS"
        finally:
            conn.close()
        if shutil.which("curl") is not None:
            result = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", certfile,
                                     f"https://localhost:{port}/api/health",
                                     "--resolve", f"localhost:{port}:127.0.0.1"],
                                    capture_output=True, timeout=20)
            assert result.returncode == 0, result.stderr
            assert json.loads(result.stdout) == {"status": "ok"}
        assert proc.stop(signal.SIGTERM) == 0
    assert not Path(certfile).exists()  # the throwaway certificate went with the server
