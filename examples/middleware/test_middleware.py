"""examples.middleware over real sockets: auth (401), RBAC (403), custom 404, and the access log."""

from __future__ import annotations

import json
import logging
import re

import pytest

from examples.middleware import AnyHandler, Middleware, Result, access_log, compose, config
from vanilla_async import Request, respond
from vanilla_async.testing import call, serve


def get(target: bytes, token: str | None = None, method: bytes = b"GET") -> bytes:
    auth = f"Authorization: Bearer {token}\r\n".encode() if token is not None else b""
    return method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n" + auth + b"\r\n"


def test_public_authenticated_and_admin_routes() -> None:
    with serve(config) as server:
        assert server.request(get(b"/")).body == b"hello\n"
        r = server.request(get(b"/api/me", "bob-token"))
        assert (r.status, json.loads(r.body)) == (200, {"user": "bob", "role": "reader"})
        r = server.request(get(b"/admin/stats", "alice-token"))
        assert (r.status, json.loads(r.body)) == (200, {"users": 2})
        r = server.request(get(b"/api/slow", "alice-token"))
        assert (r.status, json.loads(r.body)) == (200, {"slept_ms": 20})


@pytest.mark.parametrize("authorization", [None, "Bearer nope", "Basic YWxpY2U6eA==", "Bearer", "bearer  "])
def test_missing_or_wrong_tokens_get_401_with_a_challenge(authorization: str | None) -> None:
    header = f"Authorization: {authorization}\r\n".encode() if authorization is not None else b""
    with serve(config) as server:
        for target in (b"/api/me", b"/api/slow", b"/admin/stats"):
            r = server.request(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n" + header + b"\r\n")
            assert r.status == 401 and r.header("www-authenticate") == b'Bearer realm="examples"', target
            assert "bearer token" in json.loads(r.body)["error"]


def test_a_lowercase_scheme_is_accepted_and_a_reader_is_forbidden_from_admin() -> None:
    with serve(config) as server:
        r = server.request(b"GET /api/me HTTP/1.1\r\nHost: t\r\nAuthorization: bearer alice-token\r\n\r\n")
        assert r.status == 200
        r = server.request(get(b"/admin/stats", "bob-token"))
        assert r.status == 403 and json.loads(r.body) == {"error": "this needs the 'admin' role"}


def test_custom_404_and_router_405() -> None:
    with serve(config) as server:
        r = server.request(get(b"/nowhere"))
        assert r.status == 404 and json.loads(r.body) == {"error": "nothing at /nowhere"}
        r = server.request(get(b"/api/me", "alice-token", b"DELETE"))
        assert r.status == 405 and r.header("allow") == b"GET, HEAD, OPTIONS"


def test_access_log_has_one_line_per_request(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=access_log.name)
    with serve(config) as server:
        server.pipeline([get(b"/"), get(b"/api/slow", "alice-token"), get(b"/admin/stats", "bob-token"),
                         get(b"/missing")])
    lines = [r.getMessage() for r in caplog.records if r.name == access_log.name]
    pattern = re.compile(r"(\S+) (\S+) (\S+) (\d+) [0-9.]+ms user=(\S+)")
    parsed = [pattern.fullmatch(line) for line in lines]
    assert all(parsed), lines
    assert [m.group(1, 2, 3, 5) for m in parsed if m] == [
        ("GET", "/", "200", "-"), ("GET", "/api/slow", "200", "alice"), ("GET", "/admin/stats", "403", "bob"),
        ("GET", "/missing", "404", "-")]
    sizes = [int(m.group(4)) for m in parsed if m]
    assert all(size > 100 for size in sizes)  # whole responses (head + body) were counted


def test_compose_order_outermost_first() -> None:
    seen: list[str] = []

    def tag(name: str) -> Middleware:
        def middleware(handler: AnyHandler) -> AnyHandler:
            def wrapper(req: Request, out: bytearray) -> Result:
                seen.append(name)
                return handler(req, out)
            return wrapper
        return middleware

    app = compose(lambda req, out: respond(out, 200, b"x"), tag("a"), tag("b"), tag("c"))
    assert call(app, get(b"/")).endswith(b"\r\n\r\nx") and seen == ["a", "b", "c"]
