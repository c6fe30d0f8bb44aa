"""examples.websocket_chat: a message reaches every member of its room on every worker, no one else."""

from __future__ import annotations

import contextlib
import json
import signal
import tempfile
from pathlib import Path

import pytest
from websockets.sync.client import ClientConnection, connect

from examples.websocket_chat import make_config
from vanilla_async.testing import ServerProcess, serve

pytestmark = pytest.mark.usefixtures("each_backend")  # every server here runs on each backend

ROOT = Path(__file__).resolve().parents[2]


def join(port: int, room: str, stack: contextlib.ExitStack) -> tuple[ClientConnection, int]:
    ws = stack.enter_context(connect(f"ws://127.0.0.1:{port}/ws?room={room}"))
    hello = json.loads(ws.recv(timeout=5))
    assert hello["room"] == room
    return ws, int(hello["worker_pid"])


def test_a_message_reaches_every_member_on_two_workers() -> None:
    with ServerProcess("-m", "examples.websocket_chat", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        port = proc.port()
        with contextlib.ExitStack() as stack:
            members: list[tuple[ClientConnection, int]] = []
            for _ in range(60):  # SO_REUSEPORT hashes connections over the workers: join until both serve one
                members.append(join(port, "blue", stack))
                if len({pid for _, pid in members}) == 2 and len(members) >= 3:
                    break
            assert len({pid for _, pid in members}) == 2, "every connection landed on one worker"
            other, _ = join(port, "green", stack)
            members[0][0].send("hello, blue ✓")
            for ws, _ in members:
                assert json.loads(ws.recv(timeout=5)) == {"room": "blue", "text": "hello, blue ✓"}
            members[-1][0].send("second")
            for ws, _ in members:
                assert json.loads(ws.recv(timeout=5))["text"] == "second"
            with pytest.raises(TimeoutError):
                other.recv(timeout=0.3)  # another room hears nothing
        assert proc.stop(signal.SIGTERM) == 0


def test_in_process_room_rules() -> None:
    with tempfile.TemporaryDirectory() as rendezvous:
        with serve(make_config(rendezvous)) as server:
            assert server.request(b"GET /ws?room=no%20spaces HTTP/1.1\r\nHost: t\r\n\r\n").status == 400
            assert b"new WebSocket" in server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").body
            with connect(f"ws://127.0.0.1:{server.port}/ws?room=r1") as ws:
                ws.recv(timeout=5)
                ws.send("x" * 20000)  # over the endpoint's 16 KiB
                with pytest.raises(Exception):
                    ws.recv(timeout=5)
            assert ws.close_code == 1009
            with connect(f"ws://127.0.0.1:{server.port}/ws?room=r1") as ws:
                ws.recv(timeout=5)
                ws.send(b"binary")
                with pytest.raises(Exception):
                    ws.recv(timeout=5)
            assert ws.close_code == 1003
            assert server.worker is not None and not server.worker.state.rooms  # members left their rooms
