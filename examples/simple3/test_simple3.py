"""examples.simple3 over real sockets: CRUD through the response builder, ETag/304, errors, and
the module as a prefork process answering `http.client`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from examples._smoke import running
from examples.simple3 import Reply, config
from vanilla_async import ResponseError
from vanilla_async.testing import TestServer, call, serve


def req(method: str, target: str, doc: Any = None, extra: str = "") -> bytes:
    body = b"" if doc is None else json.dumps(doc).encode()
    head = f"{method} {target} HTTP/1.1\r\nHost: t\r\n{extra}"
    if doc is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return head.encode() + b"\r\n" + body


def doc_of(server: TestServer, raw: bytes) -> tuple[int, Any]:
    r = server.request(raw)
    return r.status, json.loads(r.body) if r.body else None


def test_crud_through_the_builder() -> None:
    with serve(config) as server:
        r = server.request(req("POST", "/books", {"title": "Dune", "author": "Herbert"}))
        assert (r.status, r.header("location"), r.header("content-type")) == (201, b"/books/1", b"application/json")
        doc_of(server, req("POST", "/books", {"title": "Emma", "author": "Austen"}))
        assert [b["title"] for b in doc_of(server, req("GET", "/books?author=Austen"))[1]] == ["Emma"]
        assert doc_of(server, req("PATCH", "/books/1", {"title": "Dune Messiah"}))[1]["title"] == "Dune Messiah"
        assert doc_of(server, req("DELETE", "/books/2")) == (204, None)
        assert doc_of(server, req("GET", "/books/2")) == (404, {"error": "no book '2'"})


def test_etag_and_304() -> None:
    with serve(config) as server:
        server.request(req("POST", "/books", {"title": "Dune", "author": "Herbert"}))
        r = server.request(req("GET", "/books/1"))
        tag = r.header("etag")
        assert r.status == 200 and tag is not None and tag.startswith(b'"')
        r = server.request(req("GET", "/books/1", extra=f"If-None-Match: {tag.decode()}\r\n"))
        assert (r.status, r.body, r.header("etag")) == (304, b"", tag)
        server.request(req("PATCH", "/books/1", {"author": "F. Herbert"}))
        assert server.request(req("GET", "/books/1", extra=f"If-None-Match: {tag.decode()}\r\n")).status == 200


def test_errors_share_one_shape() -> None:
    with serve(config) as server:
        assert doc_of(server, req("POST", "/books", {"title": "x"}))[0] == 400
        assert doc_of(server, req("PATCH", "/books/1", {"title": "x"}))[0] == 404
        assert doc_of(server, req("GET", "/x")) == (404, {"error": "no such endpoint; try /books"})


def test_the_builder_refuses_header_injection() -> None:
    with pytest.raises(ResponseError, match="CR, LF or NUL"):
        call(lambda r, o: Reply(200).header("X-Evil", "a\r\nSet-Cookie: x=1").send(o), b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")


def test_runs_as_a_module() -> None:
    with running("simple3") as conn:
        conn.request("GET", "/books")
        r = conn.getresponse()
        assert (r.status, json.loads(r.read())) == (200, [])
