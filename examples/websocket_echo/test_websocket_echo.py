"""examples.websocket_echo over real sockets, as a prefork process, and in headless Chromium."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from websockets.sync.client import connect

from examples.async_sse.test_async_sse import stop_process_group
from examples.websocket_echo import config
from vanilla_async.testing import Client, ServerProcess, serve

pytestmark = pytest.mark.usefixtures("each_backend")  # every server here runs on each backend

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"


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
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI") == "true":
            pytest.fail(f"{CHROMIUM} is missing; CI must install it (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
    with serve(config) as server:
        assert server.worker is not None
        reports: list[dict[str, str]] = server.worker.state
        log_path = tmp_path / "chromium.log"
        with open(log_path, "wb") as log:
            browser = subprocess.Popen(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}", server.url + "/"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
            )
        try:
            deadline = time.monotonic() + 20
            while not reports and time.monotonic() < deadline:
                time.sleep(0.05)
        finally:
            stop_process_group(browser)
        assert reports, f"no report from the browser within 20 s; chromium said:\n{log_path.read_text()[-3000:]}"
    assert reports[0]["echo"] == "hello, echo"
    assert reports[0]["extensions"].startswith("permessage-deflate")  # Chromium offers it; we accept
