"""vanilla_async.websocket end to end: real clients over real sockets on 127.0.0.1, every backend.

The `websockets` library (sync client) with and without compression; raw frames built by hand for
every protocol error, checking the close code we send; size edges; keepalive; shutdown; leaks.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from vanilla_async import (
    Limits,
    ParkingLot,
    Request,
    ShuttingDown,
    first,
    park,
    respond,
    sleep,
    websocket,
)
from vanilla_async.testing import TestServer, serve, wait_until

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
UPGRADE = (b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")


def echo(ws: websocket.WebSocket) -> websocket.SessionGen:
    while True:
        msg = yield ws.receive()
        if msg is None:
            return
        ws.send(msg)


def app(session: Callable[[websocket.WebSocket], websocket.SessionGen] = echo, **accept: Any) -> Any:
    def handler(req: Request, out: bytearray) -> Any:
        if req.path == b"/ws":
            return websocket.accept(req, out, session, **accept)
        respond(out, 200, b"plain http\n")
        return None

    return handler


def url(server: TestServer) -> str:
    return f"ws://127.0.0.1:{server.port}/ws"




# -- raw frames -------------------------------------------------------------------------------------
def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv: int = 0, masked: bool = True,
          mask: bytes = b"\x01\x02\x03\x04") -> bytes:
    b0 = (0x80 if fin else 0) | rsv | opcode
    n = len(payload)
    if n < 126:
        head = bytes((b0, (0x80 if masked else 0) | n))
    elif n < 65536:
        head = bytes((b0, (0x80 if masked else 0) | 126)) + struct.pack("!H", n)
    else:
        head = bytes((b0, (0x80 if masked else 0) | 127)) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


class Raw:
    """A hand-driven WebSocket client: sends raw frames, parses the server's frames."""

    def __init__(self, server: TestServer, upgrade: bytes = UPGRADE) -> None:
        self.sock = socket.create_connection(server.address, timeout=5)
        self.sock.sendall(upgrade)
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            assert chunk, self.buf
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        self.head = head

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    def read_frame(self) -> tuple[int, bytes] | None:
        if not self._need(2):
            return None
        b0, b1 = self.buf[0], self.buf[1]
        n, pos = b1 & 0x7F, 2
        if n == 126:
            self._need(4)
            n, pos = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            self._need(10)
            n, pos = struct.unpack("!Q", self.buf[2:10])[0], 10
        assert self._need(pos + n)
        payload, self.buf = self.buf[pos:pos + n], self.buf[pos + n:]
        return b0 & 0x0F, payload

    def close_code(self) -> int | None:
        """Read frames until the server's Close; its code (None: empty); then the TCP close."""
        for _ in range(1000):
            got = self.read_frame()
            assert got is not None, "connection closed without a Close frame"
            op, payload = got
            if op == 0x8:
                return struct.unpack("!H", payload[:2])[0] if payload else None
        raise AssertionError("no Close frame")

    def closed(self) -> bool:
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True

    def close(self) -> None:
        self.sock.close()


# -- the websockets library -------------------------------------------------------------------------
@pytest.mark.parametrize("compression", ["deflate", None])
def test_echo_text_binary_and_fragments_with_the_websockets_client(backend: str, compression: str | None) -> None:
    with serve(app(), backend=backend) as server:
        with connect(url(server), compression=compression, max_size=None) as client:
            negotiated = [e.name for e in client.protocol.extensions]
            assert negotiated == (["permessage-deflate"] if compression else [])
            client.send("héllo")
            assert client.recv(timeout=5) == "héllo"
            client.send(b"\x00\xffbinary")
            assert client.recv(timeout=5) == b"\x00\xffbinary"
            client.send(["frag", "men", "ted ✓"])  # one message in three frames
            assert client.recv(timeout=5) == "fragmented ✓"
            client.ping(b"are you there")  # answered by the connection, not the session
            for size in (0, 125, 126, 65535, 65536, 1 << 20):
                data = os.urandom(size)
                client.send(data)
                assert client.recv(timeout=10) == data, size
        assert client.close_code == 1000


def test_bad_upgrades_get_plain_http_and_the_connection_stays_http(backend: str) -> None:
    with serve(app(origins=["http://ok.example"]), backend=backend) as server:
        with server.connect() as c:
            c.send(UPGRADE.replace(b"Version: 13", b"Version: 8"))
            r = c.read_response()
            assert r.status == 426 and r.header("sec-websocket-version") == b"13"
            c.send(UPGRADE.replace(b"Upgrade: websocket\r\n", b""))
            assert c.read_response().status == 400
            c.send(UPGRADE.replace(b"\r\n\r\n", b"\r\nOrigin: http://evil.example\r\n\r\n"))
            assert c.read_response().status == 403
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # the same connection: still HTTP
            assert c.read_response().body == b"plain http\n"


# -- protocol errors: the close code we send --------------------------------------------------------
ERRORS = {
    "unmasked": (frame(0x1, b"hi", masked=False), 1002),
    "rsv2": (frame(0x1, b"hi", rsv=0x20), 1002),
    "rsv1 without deflate": (frame(0x1, b"hi", rsv=0x40), 1002),
    "opcode 3": (frame(0x3, b"hi"), 1002),
    "opcode 0xB": (frame(0xB, b""), 1002),
    "fragmented ping": (frame(0x9, b"x", fin=False), 1002),
    "ping over 125": (frame(0x9, b"x" * 126), 1002),
    "continuation without start": (frame(0x0, b"x"), 1002),
    "text inside a message": (frame(0x1, b"a", fin=False) + frame(0x1, b"b"), 1002),
    "bad utf-8 split over fragments": (frame(0x1, b"ok \xe2\x82", fin=False) + frame(0x0, b"\x28"), 1007),
    "bad utf-8": (frame(0x1, b"\xff"), 1007),
    "close code 1005": (frame(0x8, struct.pack("!H", 1005)), 1002),
    "close code 999": (frame(0x8, struct.pack("!H", 999)), 1002),
    "close code 1004": (frame(0x8, struct.pack("!H", 1004)), 1002),
    "close with 1 byte": (frame(0x8, b"\x03"), 1002),
    "close reason bad utf-8": (frame(0x8, struct.pack("!H", 1000) + b"\xff"), 1007),
    "frame too big": (frame(0x2, b"x" * 2000), 1009),
    "message too big": (frame(0x2, b"x" * 600, fin=False) + frame(0x0, b"x" * 600), 1009),
}


@pytest.mark.parametrize("case", list(ERRORS))
def test_protocol_errors_close_with_the_right_code(backend: str, case: str) -> None:
    data, code = ERRORS[case]
    limits = Limits(ws_max_frame=1024, ws_max_message=1024)
    with serve(app(), backend=backend, limits=limits) as server:
        raw = Raw(server)
        raw.send(frame(0x1, b"before"))
        assert raw.read_frame() == (0x1, b"before")
        raw.send(data)
        assert raw.close_code() == code
        assert raw.closed()
        raw.close()


def test_per_endpoint_max_message(backend: str) -> None:
    with serve(app(max_message=100), backend=backend) as server:
        with connect(url(server), compression=None) as client:
            client.send("x" * 100)
            assert client.recv(timeout=5) == "x" * 100
            client.send("x" * 101)
            with pytest.raises(ConnectionClosed):
                client.recv(timeout=5)
        assert client.close_code == 1009


def test_a_zip_bomb_gets_1009(backend: str) -> None:
    with serve(app(), backend=backend, limits=Limits(ws_max_message=64 * 1024)) as server:
        with connect(url(server), compression="deflate", max_size=None) as client:
            client.send(b"\x00" * (4 << 20))  # 4 MiB of zeros: a few KiB on the wire
            with pytest.raises(ConnectionClosed):
                client.recv(timeout=5)
        assert client.close_code == 1009


def test_close_is_echoed_with_its_code_and_the_session_sees_none(backend: str) -> None:
    ended: list[Any] = []

    def session(ws: websocket.WebSocket) -> websocket.SessionGen:
        try:
            msg = yield ws.receive()
            ended.append((msg, ws.close_code, ws.close_reason))
        finally:
            ended.append("finally")

    with serve(app(session), backend=backend) as server:
        raw = Raw(server)
        raw.send(frame(0x8, struct.pack("!H", 4001) + b"bye"))
        assert raw.close_code() == 4001
        assert raw.closed()
        raw.close()
        assert wait_until(lambda: "finally" in ended)
    assert ended == [(None, 4001, "bye"), "finally"]


def test_ping_is_answered_between_fragments(backend: str) -> None:
    with serve(app(), backend=backend) as server:
        raw = Raw(server)
        raw.send(frame(0x1, b"one ", fin=False) + frame(0x9, b"p") + frame(0x0, b"two"))
        assert raw.read_frame() == (0xA, b"p")
        assert raw.read_frame() == (0x1, b"one two")
        raw.close()


def test_a_session_that_raises_closes_with_1011(backend: str) -> None:
    def broken(ws: websocket.WebSocket) -> websocket.SessionGen:
        yield ws.receive()
        raise RuntimeError("boom")

    with serve(app(broken), backend=backend) as server:
        with connect(url(server)) as client:
            client.send("x")
            with pytest.raises(ConnectionClosed):
                client.recv(timeout=5)
        assert client.close_code == 1011


def test_receive_races_a_parking_lot_and_a_timer(backend: str) -> None:
    lot = ParkingLot()

    def session(ws: websocket.WebSocket) -> websocket.SessionGen:
        ws.send("ready")
        while True:
            index, value = yield first(ws.receive(), park(lot), sleep(0.2))
            if index == 0:
                if value is None:
                    return
                ws.send(f"msg:{value}")
            elif index == 1:
                ws.send(f"lot:{value}")
            else:
                ws.send("tick")

    with serve(app(session), backend=backend) as server:
        with connect(url(server)) as client:
            assert client.recv(timeout=5) == "ready"
            server.call(lambda: lot.unpark("news"))
            assert client.recv(timeout=5) == "lot:news"
            assert client.recv(timeout=5) == "tick"  # nothing came for 0.2 s: the timer arm won
            for i in range(20):  # queued while it was busy: each delivered, in order, none lost to the timer
                client.send(str(i))
            replies: list[str] = []
            while len(replies) < 20:
                reply = client.recv(timeout=5)
                if reply != "tick":
                    replies.append(str(reply))
            assert replies == [f"msg:{i}" for i in range(20)]


def test_receive_queue_bound_stops_reading_so_tcp_pushes_back(backend: str) -> None:
    gate = ParkingLot()
    got: list[int] = []

    def slow(ws: websocket.WebSocket) -> websocket.SessionGen:
        yield park(gate)  # not receiving at all until told
        while True:
            msg = yield ws.receive()
            if msg is None:
                return
            got.append(len(msg))

    limits = Limits(ws_queue_bytes=64 * 1024, ws_queue_messages=8)
    with serve(app(slow), backend=backend, limits=limits) as server:
        raw = Raw(server)
        raw.sock.setblocking(False)
        payload = frame(0x2, b"x" * 16384)
        stream = payload * 4000  # 64 MiB on offer: far more than socket buffers hold
        offset = 0
        stalls = 0
        while stalls < 3 and offset < len(stream):
            try:
                offset += raw.sock.send(stream[offset:offset + 65536])
                stalls = 0
            except BlockingIOError:
                stalls += 1
                time.sleep(0.1)
        assert offset < len(stream), "the server kept reading: no pushback"
        frames = -(-offset // len(payload))  # the last one may be partly sent: finish it
        server.call(lambda: gate.unpark())
        raw.sock.settimeout(5)
        raw.sock.sendall(stream[offset:frames * len(payload)])
        assert wait_until(lambda: len(got) == frames), (len(got), frames)
        assert set(got) == {16384}
        raw.close()


# -- keepalive -----------------------------------------------------------------------------------------
def test_keepalive_closes_a_silent_client_with_1011(backend: str) -> None:
    limits = Limits(ws_ping_interval=0.2, ws_ping_timeout=0.3, idle_timeout=0.2)
    with serve(app(), backend=backend, limits=limits) as server:
        raw = Raw(server)  # never answers pings
        started = time.monotonic()
        op, payload = raw.read_frame() or (0, b"")
        assert op == 0x9  # a ping
        assert raw.close_code() == 1011
        assert 0.3 < time.monotonic() - started < 4
        raw.close()


def test_keepalive_never_closes_a_client_busy_uploading(backend: str) -> None:
    limits = Limits(ws_ping_interval=0.2, ws_ping_timeout=0.2, idle_timeout=0.2, ws_max_message=64 << 20,
                    ws_max_frame=64 << 20)
    received: list[int] = []

    def sink(ws: websocket.WebSocket) -> websocket.SessionGen:
        while True:
            msg = yield ws.receive()
            if msg is None:
                return
            received.append(len(msg))
            ws.send("got")

    with serve(app(sink), backend=backend, limits=limits) as server:
        raw = Raw(server)  # never answers pings, but keeps sending one big message slowly
        body = frame(0x2, b"u" * (1 << 20))
        start = time.monotonic()
        for i in range(0, len(body), 64 * 1024):  # ~1.6 s: many ping timeouts long
            raw.send(body[i:i + 64 * 1024])
            time.sleep(0.1)
        assert time.monotonic() - start > 1.0
        while True:
            op, payload = raw.read_frame() or (0x8, b"")
            if op != 0x9:
                break
        assert (op, payload) == (0x1, b"got") and received == [1 << 20]
        raw.close()


# -- lifecycle ------------------------------------------------------------------------------------------
def test_shutdown_sends_1001_and_lets_the_session_say_goodbye(backend: str) -> None:
    def session(ws: websocket.WebSocket) -> websocket.SessionGen:
        try:
            while True:
                msg = yield ws.receive()
                if msg is None:
                    return
        except ShuttingDown:
            ws.send("goodbye")

    server = serve(app(session), backend=backend).start()
    with connect(url(server)) as client:
        time.sleep(0.05)
        server.shutdown(grace=2)
        assert client.recv(timeout=5) == "goodbye"
        with pytest.raises(ConnectionClosed):
            client.recv(timeout=5)
    assert client.close_code == 1001
    server.assert_no_leaks(server.stop())


def test_a_vanishing_client_closes_the_session_at_once(backend: str) -> None:
    ended: list[str] = []

    def session(ws: websocket.WebSocket) -> websocket.SessionGen:
        try:
            while True:
                yield sleep(60)  # not even receiving: the connection notices on its own
        finally:
            ended.append("finally")

    with serve(app(session), backend=backend) as server:
        for how in ("fin", "rst", "half-close"):
            raw = Raw(server)
            if how == "rst":
                raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                raw.close()
            elif how == "half-close":
                raw.sock.shutdown(socket.SHUT_WR)
            else:
                raw.close()
            assert wait_until(lambda: len(ended) == ("fin", "rst", "half-close").index(how) + 1), how
            raw.close()


def test_a_thousand_clients_reset_mid_frame_leak_nothing(backend: str) -> None:
    with serve(app(), backend=backend, limits=Limits(max_connections=2000)) as server:
        partial = frame(0x2, b"y" * 1000)[:500]
        for _ in range(10):
            socks = []
            for _ in range(100):
                s = socket.create_connection(server.address, timeout=5)
                s.sendall(UPGRADE + partial)
                socks.append(s)
            for s in socks:
                s.recv(200)  # the 101
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                s.close()
        worker = server.worker
        assert worker is not None
        assert wait_until(lambda: not worker.conns), len(worker.conns)
    # leaving serve() asserted no connection, task, timer or fd was left behind


def test_broadcast_encodes_once_and_reaches_every_socket(backend: str) -> None:
    members: list[websocket.WebSocket] = []

    def member(ws: websocket.WebSocket) -> websocket.SessionGen:
        members.append(ws)
        try:
            while True:
                msg = yield ws.receive()
                if msg is None:
                    return
                websocket.broadcast(members, msg)
        finally:
            members.remove(ws)

    deflate = websocket.DeflateOptions(server_no_context_takeover=True)
    with serve(app(member, deflate=deflate), backend=backend) as server:
        with contextlib.ExitStack() as stack:
            clients = [stack.enter_context(connect(url(server), compression="deflate" if i % 2 else None))
                       for i in range(6)]
            assert wait_until(lambda: len(members) == 6)
            clients[0].send("to all " * 50)
            for c in clients:
                assert c.recv(timeout=5) == "to all " * 50
