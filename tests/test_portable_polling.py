"""The selectors backend without epoll: the poll(2) and select(2) selectors, as on BSD-style systems.

On Linux `selectors.DefaultSelector` is epoll, so the end-to-end suite's ``selectors`` runs use
epoll underneath. Here the same backend runs over `PollSelector` and `SelectSelector` — the
level-triggered, register/modify/unregister polling that kqueue-less or epoll-less platforms get —
with a real HTTP worker serving real clients (keep-alive, pipelining, a parked generator).
"""

from __future__ import annotations

import http.client
import selectors
import threading
from typing import Any, Generator

import pytest

from reactor import Reactor
from reactor._backends import SelectorsBackend
from vanilla_async import Request, ServerConfig, respond, sleep
from vanilla_async._core.worker import Worker
from vanilla_async.testing import Client

SELECTORS = [selectors.PollSelector, selectors.SelectSelector]


def handler(req: Request, out: bytearray) -> Generator[Any, Any, None] | None:
    if req.path == b"/parked":
        return parked(out)
    respond(out, 200, b"path " + req.path)
    return None


def parked(out: bytearray) -> Generator[Any, Any, None]:
    yield sleep(0.05)
    respond(out, 200, b"woke")


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda cls: cls.__name__)
def test_a_worker_serves_over_poll_and_select(selector: type[selectors.BaseSelector]) -> None:
    reactor = Reactor(SelectorsBackend(selector()))
    worker = Worker(ServerConfig(handler=handler, host="127.0.0.1", port=0), reactor=reactor)
    worker.start()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", worker.port, timeout=5)
        for path in ("/a", "/parked", "/b"):  # one keep-alive connection
            conn.request("GET", path)
            response = conn.getresponse()
            assert response.status == 200
            assert response.read() == (b"woke" if path == "/parked" else b"path " + path.encode())
        conn.close()
        with Client(("127.0.0.1", worker.port), 5.0) as client:  # pipelined behind a parked request
            client.send(b"GET /parked HTTP/1.1\r\nHost: t\r\n\r\nGET /c HTTP/1.1\r\nHost: t\r\n\r\n")
            assert client.read_response().body == b"woke"
            assert client.read_response().body == b"path /c"
    finally:
        reactor.call_soon_threadsafe(worker.begin_shutdown)
        thread.join(5)
    assert not thread.is_alive()
    assert worker.final_leaks == {"connections": 0, "tasks": 0, "timers": 0, "watched_fds": 0, "callbacks": 0}
