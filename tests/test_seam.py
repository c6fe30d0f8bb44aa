"""The transport/protocol seam: a handler hands its connection to another protocol after a ``101``,
and that protocol gets the connection's backpressure, deadlines, disconnect detection, shutdown and
leak accounting — checked with a small test-only protocol over real sockets on every backend.

Also here: HEAD is safe whatever the handler wrote, and the two defects issue 11 names.
"""

from __future__ import annotations

import os
import socket
import tempfile
import time
from typing import Any, Generator

import pytest

from reactor import sleep
from vanilla_async import FileBody, Limits, Request, StaticResponse, respond
from vanilla_async._core.connection import ConnTask, Connection
from vanilla_async._core.handler import Takeover
from vanilla_async._core.protocol import Protocol
from vanilla_async.testing import call, serve

SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: lineecho\r\nConnection: Upgrade\r\n\r\n"
UPGRADE = b"GET /echo HTTP/1.1\r\nHost: t\r\nUpgrade: lineecho\r\nConnection: Upgrade\r\n\r\n"


class LineEcho(Protocol):
    """Echo each line. ``STREAM n`` streams n numbered lines from a generator (backpressure);
    ``QUIT`` says BYE and closes. At shutdown it says ``BYE`` and closes."""

    __slots__ = ("buf", "task", "events")

    def __init__(self, events: list[str]) -> None:
        self.buf = b""
        self.task: ConnTask | None = None
        self.events = events

    def connection_made(self, conn: Connection) -> None:
        super().connection_made(conn)
        self.events.append("made")
        conn.out += b"READY\n"
        self._touch()

    def _touch(self) -> None:
        conn = self.conn
        conn.deadline = conn.worker.reactor.now + conn.worker.limits.idle_timeout

    def data_received(self, data: bytes) -> None:
        self._touch()
        self.buf += data
        while b"\n" in self.buf:
            line, _, self.buf = self.buf.partition(b"\n")
            if line == b"QUIT":
                self.conn.out += b"BYE\n"
                self.conn.finish()
                return
            if line.startswith(b"STREAM "):
                self._stream(int(line.split()[1]))
            else:
                self.conn.out += line + b"\n"
        self.conn.flush()

    def _stream(self, count: int) -> None:
        events = self.events

        def lines() -> Generator[Any, Any, None]:
            try:
                for i in range(count):
                    self.conn.out += b"%08d" % i + b"x" * 1000 + b"\n"
                    events.append(f"line {i}")
                    yield sleep(0)
                self.conn.out += b"END\n"
            finally:
                events.append("stream closed")

        conn = self.conn
        task = ConnTask(lines(), conn, "stream")
        self.task = task
        conn.produce(task)
        conn.worker.reactor.start(task)

    def shutdown(self, now: float, last_call: float) -> None:
        self.conn.out += b"BYE\n"
        self.conn.finish()

    def connection_lost(self) -> None:
        self.events.append("lost")
        if self.task is not None:
            self.conn.worker.reactor.cancel(self.task)


def _upgrading_handler(events: list[str], *, generator: bool = False) -> Any:
    def sync(req: Request, out: bytearray) -> Any:
        if req.header(b"upgrade") != b"lineecho":
            respond(out, 426, b"upgrade required\n", headers=[("Upgrade", "lineecho")])
            return None
        out += SWITCH
        return Takeover(LineEcho(events))

    def gen(req: Request, out: bytearray) -> Generator[Any, Any, Any]:
        yield sleep(0.01)
        return sync(req, out)

    return gen if generator else sync


def _read_until(sock: socket.socket, marker: bytes, limit: int = 1 << 24) -> bytes:
    data = bytearray()  # (linear: a 30 MB stream read into bytes += would be quadratic)
    while len(data) < limit:
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        data += chunk
        if data.find(marker, max(0, len(data) - len(chunk) - len(marker))) >= 0:
            break
    return bytes(data)


@pytest.mark.parametrize("generator", [False, True], ids=["sync", "generator"])
def test_takeover_after_101_gets_every_later_byte(backend: str, generator: bool) -> None:
    events: list[str] = []
    with serve(_upgrading_handler(events, generator=generator), backend=backend) as server:
        with server.connect() as client:
            # the first line rides in the same packet as the upgrade request: it must not be lost
            client.send(UPGRADE + b"hello\n")
            data = _read_until(client.sock, b"hello\n")
            assert data.startswith(SWITCH), data
            assert data[len(SWITCH):] == b"READY\nhello\n"
            client.send(b"split")
            time.sleep(0.02)
            client.send(b" line\nQUIT\n")
            rest = _read_until(client.sock, b"BYE\n")
            assert rest == b"split line\nBYE\n"
            assert client.sock.recv(10) == b""  # the protocol finished: the connection closed
    assert events[0] == "made" and events[-1] == "lost"


def test_takeover_backpressure_holds_the_protocols_generator(backend: str) -> None:
    events: list[str] = []
    limits = Limits(output_high_water=64 * 1024, max_output_buffer=64 << 20)
    with serve(_upgrading_handler(events), backend=backend, limits=limits) as server:
        with server.connect() as client:
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)
            client.send(UPGRADE)
            _read_until(client.sock, b"READY\n")
            client.send(b"STREAM 30000\n")  # ~30 MB, more than the socket buffers hold; nobody reads yet
            time.sleep(0.5)
            produced = sum(1 for e in events if e.startswith("line"))
            assert produced < 30000, "the stream ran on although nobody read: no backpressure"
            data = _read_until(client.sock, b"END\n", limit=64 << 20)
            assert data.endswith(b"END\n") and data.count(b"\n") == 30001
            assert events.count("stream closed") == 1


def test_takeover_client_vanishing_closes_the_protocols_generator(backend: str) -> None:
    events: list[str] = []
    with serve(_upgrading_handler(events), backend=backend) as server:
        client = server.connect()
        client.send(UPGRADE)
        _read_until(client.sock, b"READY\n")
        client.send(b"STREAM 1000000\n")
        _read_until(client.sock, b"\n")
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # RST
        worker = server.worker
        assert worker is not None
        deadline = time.monotonic() + 5
        while (worker.conns or "lost" not in events) and time.monotonic() < deadline:
            time.sleep(0.01)  # (the worker thread closes it: wait, bounded)
        assert "lost" in events and "stream closed" in events
        assert not worker.conns


def test_takeover_idle_deadline_is_the_connections(backend: str) -> None:
    events: list[str] = []
    limits = Limits(idle_timeout=0.3)
    with serve(_upgrading_handler(events), backend=backend, limits=limits) as server:
        with server.connect() as client:
            client.send(UPGRADE)
            _read_until(client.sock, b"READY\n")
            started = time.monotonic()
            client.sock.settimeout(5)
            assert client.sock.recv(100) == b""  # closed by the sweep, not by us
            assert 0.2 < time.monotonic() - started < 3
    assert events[-1] == "lost"


def test_takeover_shutdown_goes_through_the_protocol(backend: str) -> None:
    events: list[str] = []
    server = serve(_upgrading_handler(events), backend=backend).start()
    client = server.connect()
    client.send(UPGRADE)
    _read_until(client.sock, b"READY\n")
    server.shutdown()
    assert _read_until(client.sock, b"BYE\n").endswith(b"BYE\n")
    assert client.sock.recv(10) == b""
    leaks = server.stop()
    server.assert_no_leaks(leaks)
    assert events[-1] == "lost"


def test_a_handler_returning_garbage_gets_500_naming_what_is_allowed(backend: str, caplog: pytest.LogCaptureFixture) -> None:
    with serve(lambda req, out: 42, backend=backend) as server:
        response = server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert response.status == 500
    assert "Takeover" in caplog.text and "FileBody" in caplog.text


# -- HEAD is safe whatever the handler wrote ---------------------------------------------------------
_STATIC = StaticResponse(200, b"static body\n")


def _file(tmp: str) -> str:
    path = os.path.join(tmp, "f.txt")
    with open(path, "wb") as f:
        f.write(b"file body\n")
    return path


def head_handlers(tmp: str) -> dict[str, Any]:
    path = _file(tmp)

    def static(req: Request, out: bytearray) -> None:
        _STATIC.append_to(out)

    def plain_respond(req: Request, out: bytearray) -> None:
        respond(out, 200, b"respond body\n")

    def raw(req: Request, out: bytearray) -> None:
        out += b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nraw body\n"

    def streamed(req: Request, out: bytearray) -> Generator[Any, Any, None]:
        out += b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        for part in (b"one", b"two"):
            out += b"%x\r\n%s\r\n" % (len(part), part)
            yield sleep(0.01)
        out += b"0\r\n\r\n"

    def file(req: Request, out: bytearray) -> FileBody:
        out += b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
        return FileBody(os.open(path, os.O_RDONLY), 0, 10)

    return {"static": static, "respond": plain_respond, "raw": raw, "streamed": streamed, "file": file}


@pytest.mark.parametrize("kind", ["static", "respond", "raw", "streamed", "file"])
def test_head_never_carries_a_body_and_keeps_pipelining_framed(backend: str, kind: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        handler = head_handlers(tmp)[kind]
        with serve(handler, backend=backend) as server:
            with server.connect() as client:
                client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n"
                            b"HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                # h11 as a strict client: a HEAD response has no body; had we sent one, the next
                # response would start inside it and fail to parse.
                first = client.read_response(b"HEAD")
                second = client.read_response(b"GET")
                third = client.read_response(b"HEAD")
                assert client.read_until_closed() == b""  # nothing after the last head
    assert [r.status for r in (first, second, third)] == [200, 200, 200]
    assert first.body == b"" and third.body == b"" and second.body != b""
    if kind != "streamed":
        assert first.header("content-length") == str(len(second.body)).encode()  # kept as the handler wrote it
        assert first.raw.endswith(b"\r\n\r\n")


def test_testing_call_honours_head_like_the_server() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for kind, handler in head_handlers(tmp).items():
            raw = call(handler, b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert raw.endswith(b"\r\n\r\n"), (kind, raw)


# -- the two defects ----------------------------------------------------------------------------------
def test_http10_never_gets_100_continue_even_after_the_head_cache_saw_the_request(backend: str) -> None:
    head = b"POST /up HTTP/1.0\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
    with serve(lambda req, out: respond(out, 200, bytes(req.body)), backend=backend) as server:
        assert server.request(head + b"hello").body == b"hello"  # complete: the cache remembers this head
        with server.connect() as client:
            client.send(head + b"he")  # the same head, its body incomplete
            client.sock.settimeout(0.3)
            with pytest.raises(socket.timeout):
                client.sock.recv(100)  # RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
            client.sock.settimeout(5)
            client.send(b"llo")
            response = client.read_response(b"POST")
            assert response.status == 200 and response.body == b"hello" and response.informational == []


def test_testing_call_sends_a_file_returned_by_a_generator_and_closes_it() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = _file(tmp)
        fds: list[int] = []

        def handler(req: Request, out: bytearray) -> Generator[Any, Any, FileBody]:
            yield sleep(0.001)
            out += b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"
            fd = os.open(path, os.O_RDONLY)
            fds.append(fd)
            return FileBody(fd, 0, 10)

        assert call(handler, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").endswith(b"\r\n\r\nfile body\n")
        assert call(handler, b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n").endswith(b"Content-Length: 10\r\n\r\n")
        for fd in fds:
            with pytest.raises(OSError):
                os.fstat(fd)  # closed by call(), as the server closes it


def test_head_after_empty_lines_is_still_head(backend: str) -> None:
    """RFC 9112 §2.2 lets a server skip empty lines before a request line: HEAD is still HEAD."""
    with serve(lambda req, out: _STATIC.append_to(out), backend=backend) as server:
        with server.connect() as client:
            client.send(b"\r\nHEAD / HTTP/1.1\r\nHost: t\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert client.read_response(b"HEAD").body == b""
            assert client.read_response(b"GET").body == b"static body\n"
