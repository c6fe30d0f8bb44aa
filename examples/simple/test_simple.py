"""examples.simple over real sockets: CRUD through the router, 400/404/405/415; and a subprocess
smoke test of every example of this set (routing, forms, cookies, redirects), run as ``python -m``."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from examples.simple import config
from vanilla_async.testing import Client, ServerProcess, TestServer, serve

ROOT = Path(__file__).resolve().parents[2]


def req(method: str, target: str, doc: Any = None, *, raw: bytes | None = None,
        content_type: str = "application/json") -> bytes:
    body = raw if raw is not None else (b"" if doc is None else json.dumps(doc).encode())
    head = f"{method} {target} HTTP/1.1\r\nHost: t\r\n"
    if body or method in ("POST", "PUT"):
        head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def call(server: TestServer, raw: bytes) -> tuple[int, Any, dict[bytes, bytes]]:
    r = server.request(raw)
    return r.status, json.loads(r.body) if r.body else None, dict(r.headers)


@pytest.mark.parametrize("backend", ["epoll", "selectors"])
def test_create_read_update_delete(backend: str) -> None:
    with serve(config, backend=backend) as server:
        assert call(server, req("GET", "/items"))[:2] == (200, [])
        status, doc, headers = call(server, req("POST", "/items", {"name": "pen", "price": 1.5}))
        assert (status, doc, headers[b"location"]) == (201, {"id": 1, "name": "pen", "price": 1.5}, b"/items/1")
        assert call(server, req("POST", "/items", {"name": "ink", "price": 3}))[1]["id"] == 2
        assert call(server, req("GET", "/items/1"))[:2] == (200, {"id": 1, "name": "pen", "price": 1.5})
        status, doc, _ = call(server, req("PUT", "/items/1", {"name": "pen", "price": 2}))
        assert (status, doc) == (200, {"id": 1, "name": "pen", "price": 2.0})
        assert [i["name"] for i in call(server, req("GET", "/items"))[1]] == ["pen", "ink"]
        r = server.request(req("DELETE", "/items/1"))
        assert (r.status, r.body, r.header("content-length")) == (204, b"", None)
        assert call(server, req("GET", "/items/1"))[:2] == (404, {"error": "no item '1'"})
        assert call(server, req("DELETE", "/items/1"))[0] == 404
        assert [i["id"] for i in call(server, req("GET", "/items"))[1]] == [2]


@pytest.mark.parametrize("body, status, message", [
    (b"{not json", 400, "not valid JSON"),
    (b"[1, 2]", 400, "expected exactly"),
    (b'{"name": "x"}', 400, "expected exactly"),
    (b'{"name": "x", "price": 1, "extra": true}', 400, "expected exactly"),
    (b'{"name": "", "price": 1}', 400, "name must be"),
    (b'{"name": 5, "price": 1}', 400, "name must be"),
    (b'{"name": "x", "price": -1}', 400, "price must be"),
    (b'{"name": "x", "price": "1"}', 400, "price must be"),
    (b'{"name": "x", "price": true}', 400, "price must be"),
    (b'{"name": "x", "price": NaN}', 400, "price must be"),
    (b"[" * 100_000, 400, "not valid JSON"),
])
def test_bad_bodies_get_400_with_a_reason(body: bytes, status: int, message: str) -> None:
    with serve(config) as server:
        for target in ("/items",):
            got, doc, _ = call(server, req("POST", target, raw=body))
            assert got == status and message in doc["error"], doc
        assert call(server, req("GET", "/items"))[1] == []  # nothing was stored


def test_wrong_content_type_gets_415_and_unknown_ids_404() -> None:
    with serve(config) as server:
        status, doc, _ = call(server, req("POST", "/items", raw=b"name=x", content_type="application/x-www-form-urlencoded"))
        assert status == 415 and "application/json" in doc["error"]
        call(server, req("POST", "/items", {"name": "a", "price": 0}))
        for target in ("/items/99", "/items/abc", "/items/-1", "/items/1.0", "/items/%31x", "/items/" + "9" * 40):
            assert call(server, req("GET", target))[0] == 404, target
        assert call(server, req("PUT", "/items/99", {"name": "a", "price": 0}))[0] == 404


def test_router_answers_405_404_head_and_options() -> None:
    with serve(config) as server:
        r = server.request(req("DELETE", "/items"))
        assert r.status == 405 and r.header("allow") == b"GET, HEAD, OPTIONS, POST"
        r = server.request(req("POST", "/items/1", {"name": "a", "price": 0}))
        assert r.status == 405 and r.header("allow") == b"DELETE, GET, HEAD, OPTIONS, PUT"
        assert server.request(req("GET", "/nothing")).status == 404
        r = server.request(req("HEAD", "/items"), method=b"HEAD")
        assert r.status == 200 and r.body == b"" and r.header("content-length") == b"2"
        assert server.request(req("OPTIONS", "/items/5")).header("allow") == b"DELETE, GET, HEAD, OPTIONS, PUT"


def test_pipelined_crud_is_answered_in_order() -> None:
    with serve(config) as server:
        responses = server.pipeline([req("POST", "/items", {"name": "a", "price": 1}), req("GET", "/items/1"),
                                     req("DELETE", "/items/1"), req("GET", "/items/1")])
    assert [r.status for r in responses] == [201, 200, 204, 404]


# -- every example of this set, as a real prefork process -------------------------------------------------
SMOKE = [
    ("simple", b"GET /items HTTP/1.1\r\nHost: t\r\n\r\n", 200, b"[]"),
    ("json_api", b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n", 200, b'"ok"'),
    ("url_form", b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", 200, b"<form"),
    ("cookies_sessions", b"GET /me HTTP/1.1\r\nHost: t\r\n\r\n", 401, b"not logged in"),
    ("csrf", b"POST /transfer HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", 403, b"CSRF"),
    ("middleware", b"GET /api/me HTTP/1.1\r\nHost: t\r\n\r\n", 401, b"bearer token"),
    ("redirects", b"GET /docs HTTP/1.1\r\nHost: t\r\n\r\n", 308, b"/docs/"),
]


@pytest.mark.parametrize("name, raw, status, needle", SMOKE, ids=[s[0] for s in SMOKE])
def test_runs_as_a_module_with_prefork_workers(name: str, raw: bytes, status: int, needle: bytes) -> None:
    with ServerProcess("-m", f"examples.{name}", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        with Client(("127.0.0.1", proc.port())) as client:
            client.send(raw)
            r = client.read_response()
            assert r.status == status and needle in r.body, (name, r.status, r.body)
        assert proc.stop(signal.SIGTERM) == 0
