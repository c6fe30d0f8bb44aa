"""vanilla_async.security: the prebuilt header block, its options and its validation."""

from __future__ import annotations

import dataclasses

import pytest

from vanilla_async import Request, StaticResponse
from vanilla_async.security import DEFAULT_CSP, SecurityError, SecurityHeaders
from vanilla_async.testing import serve


def test_default_block() -> None:
    block = SecurityHeaders().block
    assert block == (
        b"Content-Security-Policy: " + DEFAULT_CSP.encode() + b"\r\n"
        b"X-Content-Type-Options: nosniff\r\n"
        b"X-Frame-Options: DENY\r\n"
        b"Referrer-Policy: strict-origin-when-cross-origin\r\n"
        b"Permissions-Policy: camera=(), microphone=(), geolocation=()\r\n"
        b"Cross-Origin-Opener-Policy: same-origin\r\n"
        b"Cross-Origin-Resource-Policy: same-origin\r\n"
    )
    assert b"Strict-Transport-Security" not in block  # off unless asked for: plain HTTP


def test_hsts_options() -> None:
    assert b"Strict-Transport-Security: max-age=31536000; includeSubDomains\r\n" in SecurityHeaders(hsts=True).block
    assert b"Strict-Transport-Security: max-age=600\r\n" in SecurityHeaders(hsts=600, hsts_subdomains=False).block
    assert b"; preload" in SecurityHeaders(hsts=True, hsts_preload=True).block
    with pytest.raises(SecurityError, match="hsts_preload needs"):
        SecurityHeaders(hsts=600, hsts_preload=True)
    with pytest.raises(SecurityError, match="max-age in seconds"):
        SecurityHeaders(hsts=-1)


def test_each_header_can_be_changed_or_dropped() -> None:
    block = SecurityHeaders(csp=None, frame_options=None, coep="require-corp", referrer_policy="no-referrer",
                            extra=(("X-Extra", "1"),)).block
    assert b"Content-Security-Policy" not in block and b"X-Frame-Options" not in block
    assert b"Cross-Origin-Embedder-Policy: require-corp\r\n" in block
    assert b"Referrer-Policy: no-referrer\r\n" in block and block.endswith(b"X-Extra: 1\r\n")
    assert SecurityHeaders(csp_report_only=True).block.startswith(b"Content-Security-Policy-Report-Only: ")


def test_a_value_that_would_split_the_response_is_refused() -> None:
    with pytest.raises(SecurityError, match="CR, LF or NUL"):
        SecurityHeaders(csp="default-src 'self'\r\nSet-Cookie: x=1")
    with pytest.raises(SecurityError, match="invalid header name"):
        SecurityHeaders(extra=(("Bad Name", "x"),))


def test_frozen_and_comparable() -> None:
    a = SecurityHeaders()
    with pytest.raises(dataclasses.FrozenInstanceError):
        a.csp = "x"  # type: ignore[misc]
    assert a == SecurityHeaders() and a != SecurityHeaders(csp=None)


def test_headers_over_a_socket(backend: str) -> None:
    security = SecurityHeaders(hsts=True)
    page = StaticResponse(200, b"hi", headers=security.headers())

    def handler(req: Request, out: bytearray) -> None:
        if req.path == b"/raw":
            out += b"HTTP/1.1 200 OK\r\n"
            security.append_to(out)
            out += b"Content-Length: 2\r\n\r\nok"
        else:
            page.append_to(out)

    with serve(handler, backend=backend) as server:
        for target in (b"/", b"/raw"):
            r = server.request(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n")
            assert r.status == 200
            for name, value in security.headers():
                assert r.header(name) == value.encode(), name
