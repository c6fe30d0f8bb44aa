"""examples.websocket_echo over real sockets, as a prefork process, and in headless Chromium."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from websockets.sync.client import connect

from examples.websocket_echo import config
from vanilla_async.testing import Browser, Client, ServerProcess, serve, wait_until

pytestmark = pytest.mark.usefixtures("each_backend")  # every server here runs on each backend

ROOT = Path(__file__).resolve().parents[2]


def test_echo_in_process() -> None:
    with serve(config) as server:
        with connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
            ws.send(b"\x01\x02")
            assert ws.recv(timeout=5) == b"\x01\x02"
        assert b"new WebSocket" in server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").body


def test_runs_as_a_module_with_prefork_workers() -> None:
    with ServerProcess("-m", "examples.websocket_echo", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        port = proc.port()
        for _ in range(4):
            with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                ws.send("via a worker")
                assert ws.recv(timeout=5) == "via a worker"
        with Client(("127.0.0.1", port)) as client:
            client.send(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n")
            assert client.read_response().status == 404
        assert proc.stop(signal.SIGTERM) == 0


def test_headless_chromium_echoes_through_the_page(tmp_path: Path) -> None:
    with serve(config) as server:
        assert server.worker is not None
        reports: list[dict[str, str]] = server.worker.state
        with Browser(server.url + "/", tmp_path) as browser:
            assert wait_until(lambda: bool(reports), 20, 0.05), browser.log()
    assert reports[0]["echo"] == "hello, echo"
    assert reports[0]["extensions"].startswith("permessage-deflate")  # Chromium offers it; we accept
