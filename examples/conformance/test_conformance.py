"""examples.conformance: the README's conformance claims, checked against a real application.

* the project's request-smuggling corpus (tests/test_smuggling.py), whole and in pieces: the exact
  error with ``Connection: close`` then a close, and the app sees only what a correct parser sees;
* h11 as the client: requests h11 generates are served and echoed exactly, every response parses;
* the README's list: keep-alive, HTTP/1.0 close, pipelining in order, 100-continue, chunked with
  trailers, 400/413/414/431/501/505 each with ``Connection: close``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import socket
from pathlib import Path
from types import ModuleType
from typing import Any

import h11
import pytest

from examples._smoke import running
from examples.conformance import Seen, config
from vanilla_async.testing import Client, TestServer, serve

ROOT = Path(__file__).resolve().parents[2]


def _smuggling() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_smuggling_corpus", ROOT / "tests" / "test_smuggling.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SMUGGLING = _smuggling()


def seen(server: TestServer) -> list[bytes]:
    assert server.worker is not None
    state: Seen = server.worker.state
    return state.seen


@pytest.mark.parametrize("pieces", [1, 9], ids=["whole", "pieces"])
def test_the_smuggling_corpus_against_the_app(pieces: int) -> None:
    assert len(SMUGGLING.CASES) >= 100
    with serve(config) as server:
        for case in SMUGGLING.CASES:
            targets = seen(server)
            targets.clear()
            SMUGGLING._check(server.address, targets, case, pieces)


def h11_exchange(server: TestServer, requests: list[tuple[h11.Request, bytes]]) -> list[tuple[h11.Response, bytes]]:
    """Send requests made by h11's client state machine, one after another on one connection."""
    conn = h11.Connection(h11.CLIENT)
    answers: list[tuple[h11.Response, bytes]] = []
    with socket.create_connection(server.address, timeout=5) as sock:
        for request, body in requests:
            data = conn.send(request) or b""
            if body:
                data += conn.send(h11.Data(data=body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
            sock.sendall(data)
            response: h11.Response | None = None
            received = b""
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    conn.receive_data(sock.recv(65536))
                elif isinstance(event, h11.Response):
                    response = event
                elif isinstance(event, h11.Data):
                    received += event.data
                elif isinstance(event, h11.EndOfMessage):
                    break
            assert response is not None
            answers.append((response, received))
            conn.start_next_cycle()
    return answers


def test_h11_as_the_client() -> None:
    body = b"x" * 3000
    requests = [
        (h11.Request(method="GET", target="/a?b=c", headers=[("Host", "t"), ("X-Multi", "1"), ("X-Multi", "2")]), b""),
        (h11.Request(method="POST", target="/cl", headers=[("Host", "t"), ("Content-Length", str(len(body)))]), body),
        (h11.Request(method="POST", target="/chunked", headers=[("Host", "t"), ("Transfer-Encoding", "chunked")]), body),
        (h11.Request(method="HEAD", target="/head", headers=[("Host", "t")]), b""),
    ]
    with serve(config) as server:
        answers = h11_exchange(server, requests)
        assert seen(server) == [b"/a?b=c", b"/cl", b"/chunked", b"/head"]
    docs: list[dict[str, Any]] = [json.loads(data) for _, data in answers[:3]]
    assert all(r.status_code == 200 for r, _ in answers) and answers[3][1] == b""
    assert [h for h in docs[0]["headers"] if h[0].lower() == "x-multi"] == [["x-multi", "1"], ["x-multi", "2"]]
    for doc in docs[1:]:
        assert (doc["body_length"], doc["body_sha256"]) == (len(body), hashlib.sha256(body).hexdigest())


def test_keep_alive_http10_and_pipelining() -> None:
    with serve(config) as server:
        responses = server.pipeline([b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i for i in range(20)])
        assert [r.header("x-target") for r in responses] == [b"/%d" % i for i in range(20)]
        assert not any(r.closes for r in responses)
        with Client(server.address) as client:
            client.send(b"GET /old HTTP/1.0\r\n\r\n")
            assert client.read_response().status == 200 and client.closed_by_server()


def test_expect_continue_and_chunked_trailers() -> None:
    with serve(config) as server, Client(server.address) as client:
        client.send(b"POST /up HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
        interim = client.sock.recv(1024)  # the server asks for the body before it is sent
        assert interim.startswith(b"HTTP/1.1 100 Continue\r\n") and interim.endswith(b"\r\n\r\n")
        client.send(b"hello")
        r = client.read_response(b"POST")
        assert r.status == 200 and json.loads(r.body)["body_length"] == 5
        client.send(b"POST /t HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;ext=1\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n")
        assert json.loads(client.read_response(b"POST").body)["body_length"] == 3


@pytest.mark.parametrize("raw, status", [
    (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n b\r\n\r\n", 400),  # obs-fold
    (b"GET / HTTP/1.1\nHost: t\n\n", 400),  # bare LF
    (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5000\r\n\r\n", 413),  # decided before reading the body
    (b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: t\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 3000 + b"\r\n\r\n", 431),
    (b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    (b"GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
])
def test_errors_close_the_connection_and_never_reach_the_app(raw: bytes, status: int) -> None:
    with serve(config) as server, Client(server.address) as client:
        client.send(raw)
        r = client.read_response()
        assert (r.status, r.closes) == (status, True)
        assert client.closed_by_server()
        assert seen(server) == []


def test_runs_as_a_module() -> None:
    with running("conformance") as conn:
        conn.request("GET", "/x?y=1")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("X-Target") == "/x?y=1" and json.loads(r.read())["version"] == "HTTP/1.1"
