"""examples.sse: broadcasts reach every subscriber on every worker, exactly once; heartbeats; bye."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import h11
import pytest

from examples.sse import Settings, make_config
from vanilla_async.channels import HostBus, Hub
from vanilla_async.sse import encode_event
from vanilla_async import Limits
from vanilla_async.testing import ServerProcess, TestServer, serve

pytestmark = pytest.mark.usefixtures("each_backend")  # every server here runs on each backend

ROOT = Path(__file__).resolve().parents[2]
MESSAGE = "première ligne\nsecond line\r\n\nfourth line"  # CRLF, an empty line, UTF-8
EXPECTED = "première ligne\nsecond line\n\nfourth line"  # what a client rebuilds from the data lines


# -- an SSE client: h11 decodes the chunked body, a few lines parse the event stream --------------------
@dataclass
class Item:
    kind: str  # "event" or "comment"
    event: str = ""
    data: str = ""
    text: str = ""


class SSEClient:
    def __init__(self, port: int, timeout: float = 5.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.conn = h11.Connection(h11.CLIENT)
        request = self.conn.send(h11.Request(method="GET", target="/events", headers=[("Host", "t")]))
        assert request is not None
        self.sock.sendall(request + (self.conn.send(h11.EndOfMessage()) or b""))
        self.response: h11.Response | None = None
        self.text = ""
        self.items: list[Item] = []
        self.ended = False  # the terminating chunk arrived
        self.closed = False  # the server closed the connection

    def _pump(self) -> None:
        data = self.sock.recv(65536)
        self.conn.receive_data(data)
        if not data:
            self.closed = True
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
                break
            if isinstance(event, h11.Response):
                self.response = event
            elif isinstance(event, h11.Data):
                self.text += bytes(event.data).decode("utf-8")
            elif isinstance(event, h11.EndOfMessage):
                self.ended = True
        while "\n\n" in self.text:
            block, self.text = self.text.split("\n\n", 1)
            item = Item("event", event="message")
            lines: list[str] = []
            for line in block.split("\n"):
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "":
                    item = Item("comment", text=value)
                elif name == "event":
                    item.event = value
                elif name == "data":
                    lines.append(value)
            item.data = "\n".join(lines)
            self.items.append(item)

    def next_item(self, timeout: float = 5.0) -> Item:
        deadline = time.monotonic() + timeout
        read = 0
        while True:
            if len(self.items) > read:
                return self.items[read]
            if self.closed or time.monotonic() > deadline:
                raise AssertionError(f"no SSE item within {timeout}s (closed={self.closed}, got {self.items})")
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            self._pump()

    def take(self, timeout: float = 5.0) -> Item:
        item = self.next_item(timeout)
        self.items.pop(0)
        return item

    def until(self, predicate: str, timeout: float = 5.0) -> list[Item]:
        """Items up to and including the first that matches ``kind:event`` (e.g. ``event:bye``, ``comment:``)."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            item = self.take(max(0.01, deadline - time.monotonic()))
            got.append(item)
            if f"{item.kind}:{item.event}" == predicate:
                return got

    def read_to_close(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.closed:
            assert time.monotonic() < deadline, "the server did not close the stream"
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            self._pump()

    def close(self) -> None:
        self.sock.close()


def post(port: int, target: bytes, body: bytes) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"POST %s HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n%s" % (target, len(body), body))
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="POST", target=target, headers=[("Host", "t"), ("Content-Length", str(len(body)))]))
        conn.send(h11.Data(data=body))
        conn.send(h11.EndOfMessage())
        status, payload = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                payload += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, payload


def subscribe(port: int) -> tuple[SSEClient, int]:
    client = SSEClient(port)
    hello = client.take()
    assert client.response is not None and client.response.status_code == 200
    headers = {k.lower(): v for k, v in client.response.headers}
    assert headers[b"content-type"] == b"text/event-stream" and headers[b"cache-control"] == b"no-cache"
    assert headers[b"x-accel-buffering"] == b"no" and headers[b"transfer-encoding"] == b"chunked"
    assert hello.event == "hello"
    return client, json.loads(hello.data)["worker_pid"]


# -- tests -------------------------------------------------------------------------------------------
def test_encoding_splits_every_line_ending() -> None:
    assert encode_event(b"a\r\nb\rc\nd") == b"data: a\ndata: b\ndata: c\ndata: d\n\n"
    assert encode_event(b"x\n", event="bye") == b"event: bye\ndata: x\ndata: \n\n"
    assert encode_event(b"") == b"data: \n\n"


def test_broadcast_reaches_every_subscriber_on_every_worker_once_then_bye_on_sigterm() -> None:
    with ServerProcess("-m", "examples.sse", "--port", "0", "--workers", "2", env={"SSE_HEARTBEAT": "0.3"},
                       cwd=ROOT) as proc:
        port = proc.port()
        pids = [proc.wait_for(rf"worker {i} started \(pid (\d+)\)").group(1) for i in range(2)]
        sockets = {proc.wait_for(rf"worker pid {pid} receives broadcasts on (\S+)").group(1) for pid in pids}
        rendezvous = {os.path.dirname(path) for path in sockets}
        assert len(sockets) == 2 and len(rendezvous) == 1 and all(os.path.exists(p) for p in sockets)

        # Subscribe until both workers have subscribers (SO_REUSEPORT hashes connections over them).
        subscribers: list[tuple[SSEClient, int]] = []
        while len(subscribers) < 8 or len({pid for _, pid in subscribers}) < 2:
            assert len(subscribers) < 48, "every connection landed on one worker"
            subscribers.append(subscribe(port))
        assert len({pid for _, pid in subscribers}) == 2

        status, body = post(port, b"/broadcast", MESSAGE.encode())
        assert (status, json.loads(body)) == (202, {"id": 1})
        for client, pid in subscribers:
            # everything up to the message, then up to the first heartbeat after it (room for a duplicate)
            items = client.until("event:message") + client.until("comment:")
            messages = [i for i in items if i.kind == "event" and i.event == "message"]
            assert [m.data for m in messages] == [EXPECTED], f"subscriber on worker {pid} got {items}"
            assert items[-1].text == "heartbeat"

        assert post(port, b"/broadcast", b"x" * (64 * 1024 + 1))[0] == 413

        proc.popen.send_signal(signal.SIGTERM)  # (not stop(): the subscribers are read while it drains)
        for client, pid in subscribers:
            items = client.until("event:bye", timeout=3)
            assert all(i.kind == "comment" for i in items[:-1]), items
            client.read_to_close()
            assert client.ended, "the stream ended without its terminating chunk"
            client.close()
        assert proc.wait(10) == 0
        assert "grace period over" not in proc.output  # every stream ended at once, not at the end of the grace period
        assert not any(os.path.exists(d) for d in rendezvous), "the rendezvous directory was left behind"


@pytest.fixture
def rendezvous() -> Iterator[str]:
    path = tempfile.mkdtemp(prefix="sse-")  # short: AF_UNIX paths are limited to 108 bytes
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _subscribers(hub: Hub) -> int:
    return sum(len(channel) for channel in hub.channels.values())


def _hub(server: TestServer) -> Hub:
    assert server.worker is not None
    hub = server.worker.state
    assert isinstance(hub, Hub)
    return hub


def _wait(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_in_process_broadcast_disconnect_and_routes(rendezvous: str) -> None:
    with serve(make_config(Settings(heartbeat=5, rendezvous=rendezvous))) as server:
        hub = _hub(server)
        first, pid = subscribe(server.port)
        second, _ = subscribe(server.port)
        assert pid == os.getpid() and _subscribers(hub) == 2
        assert os.listdir(rendezvous) == [f"{pid}.sock"]
        assert post(server.port, b"/broadcast", b"one\ntwo")[0] == 202
        assert first.take().data == second.take().data == "one\ntwo"
        first.close()  # the server notices and closes the generator: unsubscribed, nothing leaked
        _wait(lambda: _subscribers(hub) == 1)
        assert post(server.port, b"/broadcast", b"three")[0] == 202
        assert second.take().data == "three"
        second.close()
        _wait(lambda: not _subscribers(hub))
        with server.connect() as old:  # HTTP/1.0 has no chunked coding: a close-delimited stream
            old.send(b"GET /events HTTP/1.0\r\n\r\n")
            raw = b""
            while b"\n\n" not in raw.partition(b"\r\n\r\n")[2]:
                raw += old.sock.recv(65536)
            head, _, events = raw.partition(b"\r\n\r\n")
            assert b"Connection: close" in head and b"Transfer-Encoding" not in head
            assert events.startswith(b"event: hello\nretry: 2000\ndata: {")
        _wait(lambda: not _subscribers(hub))
        assert post(server.port, b"/broadcast", b"\xff\xfe")[0] == 400
        assert server.request(b"GET /broadcast HTTP/1.1\r\nHost: t\r\n\r\n").status == 405
        assert server.request(b"POST /events HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").status == 405
        assert server.request(b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n").status == 404
    # the worker removed its socket (the leak check covered the fds); the channel's id counter stays,
    # so ids keep growing across restarts that share this directory
    assert os.listdir(rendezvous) == ["broadcast.seq"]


def test_stale_socket_of_a_dead_worker_is_removed(rendezvous: str) -> None:
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          timeout=10).stdout.strip()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(os.path.join(rendezvous, f"{dead}.sock"))
    stale.close()  # the name stays: as if a worker was SIGKILLed
    with serve(make_config(Settings(rendezvous=rendezvous))) as server:
        assert sorted(os.listdir(rendezvous)) == [f"{os.getpid()}.sock"]  # swept at start
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stale.bind(os.path.join(rendezvous, f"{dead}.sock"))
        stale.close()  # died while we run: removed by the first broadcast that is refused
        assert post(server.port, b"/broadcast", b"hi")[0] == 202
        assert sorted(os.listdir(rendezvous)) == [f"{os.getpid()}.sock", "broadcast.seq"]


def test_bye_as_soon_as_shutdown_begins_and_on_shutting_down(rendezvous: str) -> None:
    server = serve(make_config(Settings(heartbeat=5, rendezvous=rendezvous))).start()
    client, _ = subscribe(server.port)
    started = time.monotonic()
    server.shutdown(grace=30)  # on_worker_stop: every stream says bye now, not after 30 s
    assert client.until("event:bye")[-1].data == "server shutting down"
    client.read_to_close()
    assert client.ended and time.monotonic() - started < 5
    client.close()
    server.assert_no_leaks(server.stop())
    fallback_only = make_config(Settings(heartbeat=5, rendezvous=rendezvous), on_worker_stop=None)
    with serve(fallback_only) as server:
        client, _ = subscribe(server.port)
        server.shutdown(grace=0.2)  # without the hook, ShuttingDown at the end of the grace period says bye
        assert client.until("event:bye")[-1].event == "bye"
        client.read_to_close()
        assert client.ended
        client.close()


def test_streams_are_exempt_from_the_request_deadline(rendezvous: str) -> None:
    limits = Limits(request_timeout=0.2, max_body_bytes=64 * 1024)
    with serve(make_config(Settings(heartbeat=0.1, rendezvous=rendezvous), limits=limits)) as server:
        client, _ = subscribe(server.port)
        time.sleep(0.4)  # past the deadline every other generator handler gets
        assert post(server.port, b"/broadcast", b"still here")[0] == 202
        assert client.until("event:message")[-1].data == "still here"
        client.close()
