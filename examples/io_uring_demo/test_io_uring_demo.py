"""examples.io_uring_demo over real sockets: in-process on io_uring, and as ``python -m`` through
the CLI (``--backend io_uring`` accepted, the counters served); skipped where the kernel refuses
io_uring (the reason is the backend's own error message)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from examples.io_uring_demo import config
from reactor._uring import uring_unavailable_reason
from vanilla_async.testing import Client, ServerProcess, serve

ROOT = Path(__file__).resolve().parents[2]
REASON = uring_unavailable_reason()
pytestmark = pytest.mark.skipif(REASON is not None, reason=str(REASON))


def get(target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def test_the_tiny_app_on_io_uring() -> None:
    with serve(config, backend="io_uring") as server:
        r = server.request(get("/"))
        assert (r.status, r.body) == (200, b"Hello, World!")
        assert server.request(get("/json")).header("content-type") == b"application/json"
        counters = json.loads(server.request(get("/uring")).body)
        assert counters["backend"] == "io_uring"
        assert counters["multishot_restarts"] == 0 and counters["stale_completions"] >= 0
        assert counters["registrations"] >= 3  # the wake-up socket, the listener, this connection


def test_keep_alive_and_pipelining_on_io_uring() -> None:
    with serve(config, backend="io_uring") as server, server.connect() as client:
        for _ in range(3):  # edge-triggered multishot polls: each arrival on the same connection is seen
            client.send(get("/") * 4)
            assert [client.read_response().body for _ in range(4)] == [b"Hello, World!"] * 4


@pytest.mark.parametrize("backend", ["io_uring", "epoll"])
def test_run_through_the_cli(backend: str) -> None:
    with ServerProcess("-m", "examples.io_uring_demo", "--port", "0", "--workers", "1", "--backend", backend,
                       cwd=ROOT, drop_env=["VANILLA_ASYNC_BACKEND"]) as proc:
        with Client(("127.0.0.1", proc.port())) as client:
            client.send(get("/uring"))
            assert json.loads(client.read_response().body)["backend"] == backend
        assert proc.stop(signal.SIGTERM) == 0
