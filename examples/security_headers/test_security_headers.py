"""examples.security_headers over real sockets: every header on every kind of response."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from examples.security_headers import SECURITY, config
from vanilla_async.testing import Client, ServerProcess, serve

EXPECTED = {
    b"content-security-policy": b"default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'",
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"strict-origin-when-cross-origin",
    b"permissions-policy": b"camera=(), microphone=(), geolocation=()",
    b"cross-origin-opener-policy": b"same-origin",
    b"cross-origin-resource-policy": b"same-origin",
}
TARGETS = [(b"GET", b"/", 200), (b"GET", b"/api/status", 200), (b"GET", b"/static/app.js", 200),
           (b"GET", b"/nope", 404), (b"DELETE", b"/", 405), (b"GET", b"/static/missing.js", 404),
           (b"HEAD", b"/", 200)]


@pytest.mark.parametrize("method, target, status", TARGETS)
def test_every_response_carries_every_header(method: bytes, target: bytes, status: int) -> None:
    with serve(config) as server:
        r = server.request(method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert r.status == status
    for name, value in EXPECTED.items():
        assert r.header(name) == value, (target, name)
    assert r.header("strict-transport-security") is None  # plain HTTP: not sent unless BEHIND_TLS=1
    assert sum(1 for k, _ in r.headers if k == b"x-frame-options") == 1


def test_hsts_behind_tls_in_a_process_and_curl() -> None:
    with ServerProcess("-m", "examples.security_headers", "--port", "0", "--workers", "2",
                       env={"BEHIND_TLS": "1"}) as proc:
        port = proc.port()
        with Client(("127.0.0.1", port)) as client:
            client.send(b"GET /api/status HTTP/1.1\r\nHost: t\r\n\r\n")
            r = client.read_response()
        assert r.header("strict-transport-security") == b"max-age=31536000; includeSubDomains"
        assert all(r.header(name) == value for name, value in EXPECTED.items())
        curl = shutil.which("curl")
        if curl is not None:
            done = subprocess.run([curl, "-s", "-D", "-", "-o", "/dev/null", "--max-time", "5",
                                   f"http://127.0.0.1:{port}/"], capture_output=True, timeout=10)
            lines = done.stdout.lower()
            assert b"strict-transport-security: max-age=31536000" in lines
            assert all(name + b": " + value.lower() in lines for name, value in EXPECTED.items())
        assert proc.stop() == 0
    assert SECURITY.block.count(b"\r\n") == len(EXPECTED)
