"""examples.simple2 over real sockets: CRUD, the helpers' errors (400/404/409/415), and the module
run as a prefork process answering `http.client`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from examples._smoke import running
from examples.simple2 import config
from vanilla_async.testing import TestServer, serve


def req(method: str, target: str, doc: Any = None, *, raw: bytes | None = None, ctype: str = "application/json") -> bytes:
    body = raw if raw is not None else (b"" if doc is None else json.dumps(doc).encode())
    head = f"{method} {target} HTTP/1.1\r\nHost: t\r\n"
    if method in ("POST", "PUT"):
        head += f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def call(server: TestServer, raw: bytes) -> tuple[int, Any]:
    r = server.request(raw)
    return r.status, json.loads(r.body) if r.body else None


def test_crud() -> None:
    with serve(config) as server:
        assert call(server, req("GET", "/users")) == (200, [])
        r = server.request(req("POST", "/users", {"name": "Ada", "email": "ada@x.org"}))
        assert r.status == 201 and r.header("location") == b"/users/1"
        assert call(server, req("GET", "/users/1")) == (200, {"id": 1, "name": "Ada", "email": "ada@x.org"})
        assert call(server, req("PUT", "/users/1", {"name": "Ada L", "email": "ada@x.org"}))[1]["name"] == "Ada L"
        assert call(server, req("DELETE", "/users/1")) == (204, None)
        assert call(server, req("GET", "/users/1")) == (404, {"error": "no user 1"})


@pytest.mark.parametrize("raw, ctype, status, needle", [
    (b"{", "application/json", 400, "not valid JSON"),
    (b'{"name": "a"}', "application/json", 400, "exactly the fields"),
    (b'{"name": "", "email": "a@b"}', "application/json", 400, "name must be"),
    (b'{"name": "a", "email": 5}', "application/json", 400, "email must be"),
    (b'{"name": "a", "email": "nope"}', "application/json", 400, "must contain @"),
    (b"name=a", "application/x-www-form-urlencoded", 415, "application/json"),
])
def test_helpers_turn_bad_input_into_json_errors(raw: bytes, ctype: str, status: int, needle: str) -> None:
    with serve(config) as server:
        got, doc = call(server, req("POST", "/users", raw=raw, ctype=ctype))
        assert got == status and needle in doc["error"], doc
        assert call(server, req("GET", "/users")) == (200, [])


def test_duplicate_email_is_409_and_unknown_ids_404() -> None:
    with serve(config) as server:
        call(server, req("POST", "/users", {"name": "a", "email": "a@b"}))
        assert call(server, req("POST", "/users", {"name": "b", "email": "a@b"}))[0] == 409
        for target in ("/users/9", "/users/x", "/users/-1"):
            assert call(server, req("GET", target))[0] == 404
        assert call(server, req("GET", "/nope"))[1] == {"error": "no such endpoint; try /users"}


def test_runs_as_a_module() -> None:
    with running("simple2") as conn:
        conn.request("POST", "/users", body=b'{"name": "a", "email": "a@b"}', headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 201 and json.loads(r.read())["name"] == "a"
