from __future__ import annotations

import json

from examples.tiny import handler
from examples.tiny.payload import PAYLOAD
from vanilla_async.testing import call, serve


def test_hello_world_over_a_real_socket() -> None:
    with serve(handler) as server:
        r = server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert (r.status, r.body, r.header("content-type")) == (200, b"Hello, World!", b"text/plain")
        r = server.request(b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n")
        assert r.header("content-type") == b"application/json" and json.loads(r.body) == PAYLOAD
        assert server.request(b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n").status == 404


def test_handler_called_directly() -> None:
    raw = call(handler, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\nHello, World!")
