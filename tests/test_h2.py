"""HTTP/2 (h2c with prior knowledge) end to end: real clients (curl, h2load, the ``h2`` package as a
strict client, hand-built frames for the attacks) against a real server, on every backend."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any, Generator

import h2.config
import h2.connection
import h2.events
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes, Settings
from hyperframe.frame import ContinuationFrame, Frame, GoAwayFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame

from reactor import sleep
from vanilla_async import FileBody, Limits, Request, ShuttingDown, respond
from vanilla_async._core.h2 import PREFACE, ResponseError, ResponseParser, h1_head
from vanilla_async.testing import TestServer, serve

REQ = [(":method", "GET"), (":scheme", "http"), (":authority", "t"), (":path", "/")]


def req(path: str, method: str = "GET", extra: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":authority", "t"), (":path", path)] + (extra or [])


class H2Client:
    """A strict HTTP/2 client over a real socket (the ``h2`` package; its own validation on)."""

    def __init__(self, server: TestServer, *, validate: bool = True, window: int | None = None) -> None:
        self.sock = socket.create_connection(server.address, timeout=5)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                           validate_outbound_headers=validate, normalize_outbound_headers=validate)
        self.h2 = h2.connection.H2Connection(config)
        if window is not None:
            self.h2.local_settings = Settings(client=True, initial_values={SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.h2.initiate_connection()
        self.flush()
        self.events: list[Any] = []
        self.bodies: dict[int, bytearray] = {}
        self.heads: dict[int, dict[bytes, bytes]] = {}
        self.ended: set[int] = set()
        self.reset: dict[int, int] = {}
        self.goaway: Any = None
        self.closed = False
        self.inbuf = b""

    def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def request(self, headers: list[tuple[str, str]], body: bytes | None = None) -> int:
        sid = self.h2.get_next_available_stream_id()
        self.h2.send_headers(sid, headers, end_stream=body is None)
        if body is not None:
            self.h2.send_data(sid, body, end_stream=True)
        self.flush()
        return sid

    def pump(self, timeout: float = 5.0, ack: bool = True) -> bool:
        """Read one chunk and process it; False on EOF."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.closed = True
            return False
        # The h2 client stops at a GOAWAY (its state machine closes), though RFC 9113 §6.8 lets the
        # streams it spares finish: take GOAWAY frames out here and give h2 the rest.
        self.inbuf += data
        feed = b""
        while len(self.inbuf) >= 9:
            header, length = Frame.parse_frame_header(memoryview(self.inbuf[:9]))
            if len(self.inbuf) < 9 + length:
                break
            raw, self.inbuf = self.inbuf[:9 + length], self.inbuf[9 + length:]
            if isinstance(header, GoAwayFrame):
                header.parse_body(memoryview(raw[9:]))
                self.goaway = header
            else:
                feed += raw
        for event in self.h2.receive_data(feed):
            self.events.append(event)
            if isinstance(event, h2.events.ResponseReceived):
                self.heads[event.stream_id] = dict(event.headers)
            elif isinstance(event, h2.events.DataReceived):
                self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
                if ack and event.flow_controlled_length:
                    self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                self.ended.add(event.stream_id)
            elif isinstance(event, h2.events.StreamReset):
                self.reset[event.stream_id] = event.error_code
        try:
            self.flush()
        except OSError:
            pass
        return True

    def until(self, cond: Any, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not cond():
            left = deadline - time.monotonic()
            assert left > 0, f"timed out; events so far: {self.events[-8:]}"
            if not self.pump(left):
                assert cond(), f"the server closed the connection; events: {self.events[-8:]}"
                return

    def get(self, headers: list[tuple[str, str]], body: bytes | None = None) -> tuple[int, bytes]:
        sid = self.request(headers, body)
        self.until(lambda: sid in self.ended or sid in self.reset)
        assert sid not in self.reset, f"stream {sid} was reset ({self.reset[sid]})"
        return int(self.heads[sid][b":status"]), bytes(self.bodies.get(sid, b""))

    def close(self) -> None:
        self.sock.close()


def raw_conn(server: TestServer) -> socket.socket:
    sock = socket.create_connection(server.address, timeout=5)
    sock.sendall(PREFACE + SettingsFrame(0).serialize())
    return sock


def read_goaway(sock: socket.socket, timeout: float = 5.0) -> int | None:
    """Read until the server closes; the error code of its GOAWAY (None if none came)."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.data_to_send()
    code = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(1 << 20)
        except (ConnectionResetError, socket.timeout):
            break
        if not data:
            break
        try:
            for event in client.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    code = event.error_code
        except h2.exceptions.ProtocolError:
            break
    return code


def encode(fields: list[tuple[bytes, bytes]]) -> bytes:
    from hpack import Encoder
    return bytes(Encoder().encode(fields))


# -- handlers -----------------------------------------------------------------------------------------------
def _handlers(tmp: str, events: list[str]) -> Any:
    path = os.path.join(tmp, "f.bin")
    blob = bytes(range(256)) * 1000  # 256 000 bytes
    with open(path, "wb") as f:
        f.write(blob)

    def handler(req: Request, out: bytearray) -> Any:
        p = req.path
        if p == b"/echo":
            respond(out, 200, b"%s %s %s|%s|%s" % (req.method, req.path, req.query, req.header(b"x-a") or b"",
                                                  bytes(req.body)), headers=[("Connection", "keep-alive")])
            return None
        if p == b"/cookie":
            respond(out, 200, req.header(b"cookie") or b"")
            return None
        if p == b"/chunked":
            def chunked() -> Generator[Any, Any, None]:
                out.extend(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n")
                for i in range(5):
                    out.extend(b"3\r\n%03d\r\n" % i)
                    yield sleep(0.005)
                out.extend(b"0\r\n\r\n")
            return chunked()
        if p == b"/file":
            out += b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(blob)
            return FileBody(os.open(path, os.O_RDONLY), 0, len(blob))
        if p == b"/big":
            respond(out, 200, blob)
            return None
        if p == b"/sse" or p == b"/forever":
            def ticks() -> Generator[Any, Any, None]:
                out.extend(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
                try:
                    for i in range(10_000_000):
                        data = b"data: %d\n\n" % i
                        out.extend(b"%x\r\n%s\r\n" % (len(data), data))
                        events.append(f"tick {i}")
                        yield sleep(0.02 if p == b"/sse" else 0)
                except ShuttingDown:
                    data = b"event: bye\ndata: bye\n\n"
                    out.extend(b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
                finally:
                    events.append(f"closed {p.decode()}")
            return ticks()
        if p == b"/slow":
            def slow() -> Generator[Any, Any, None]:
                try:
                    yield sleep(0.3)
                    respond(out, 200, b"slow done")
                finally:
                    events.append("slow closed")
            return slow()
        if p == b"/hang":
            def hang() -> Generator[Any, Any, None]:
                try:
                    yield sleep(60)
                finally:
                    events.append("hang closed")
            return hang()
        if p == b"/crash":
            raise RuntimeError("boom")
        if p == b"/garbage":
            out += b"HTP/1.1 200\r\n\r\n"
            return None
        respond(out, 200, b"hello")
        return None

    return handler, blob


@pytest.fixture
def tmp() -> Generator[str, None, None]:
    with tempfile.TemporaryDirectory() as d:
        yield d


# -- units: the two translations ------------------------------------------------------------------------------
def test_h1_head_joins_cookies_maps_authority_and_sets_length() -> None:
    head = h1_head([(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"ex:1"), (b":path", b"/a?b"),
                    (b"cookie", b"a=1"), (b"x", b"y"), (b"cookie", b"b=2"), (b"content-length", b"99")], 3)
    assert head == b"POST /a?b HTTP/1.1\r\nhost: ex:1\r\nx: y\r\ncookie: a=1; b=2\r\ncontent-length: 3\r\n\r\n"


def test_response_parser_is_incremental_and_strict() -> None:
    raw = b"HTTP/1.1 200 OK\r\nConnection: close\r\nKeep-Alive: 5\r\nX-A: b\r\nTransfer-Encoding: chunked\r\n\r\n" \
          b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    for cut in range(len(raw)):
        parser = ResponseParser(False)
        out, body = bytearray(raw[:cut]), bytearray()
        heads = parser.feed(out, body, False)
        out += raw[cut:]
        heads += parser.feed(out, body, True)
        assert parser.done and body == b"abcde" and len(heads) == 1
        assert heads[0].fields == [(b":status", b"200"), (b"x-a", b"b")]
    for bad in (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nabc", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc",
                b"nonsense\r\n\r\n", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                b"HTTP/1.1 200 OK\r\nBad Field: x\r\n\r\n"):
        with pytest.raises(ResponseError):
            ResponseParser(False).feed(bytearray(bad), bytearray(), True)


# -- real clients ---------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_prior_knowledge_same_handler_as_http1(backend: str, tmp: str) -> None:
    handler, blob = _handlers(tmp, [])
    with serve(handler, backend=backend) as server:
        def curl(*args: str) -> bytes:
            return subprocess.run(["curl", "-sS", "--http2-prior-knowledge", "--max-time", "10", *args],
                                  check=True, capture_output=True).stdout
        url = server.url
        assert curl("-H", "X-A: 1", "-d", "body!", url + "/echo?q=1") == b"POST /echo q=1|1|body!"
        assert curl("-w", "%{http_version}", "-o", "/dev/null", url + "/echo") == b"2"
        assert curl(url + "/chunked") == b"000001002003004"
        assert curl(url + "/file") == blob
        head = curl("-I", url + "/file")
        assert head.startswith(b"HTTP/2 200") and b"content-length: 256000" in head.lower()
        assert curl(url + "/echo") == subprocess.run(["curl", "-sS", url + "/echo"], check=True,
                                                     capture_output=True).stdout  # HTTP/1.1: the same answer


@pytest.mark.skipif(shutil.which("h2load") is None, reason="h2load (nghttp2-client) is not installed")
def test_h2load_many_concurrent_streams(backend: str) -> None:
    with serve(lambda req, out: respond(out, 200, b"hello"), backend=backend) as server:
        result = subprocess.run(["h2load", "-c", "4", "-m", "16", "-n", "2000", server.url + "/"],
                                capture_output=True, text=True, timeout=60)
        assert "2000 succeeded, 0 failed, 0 errored" in result.stdout, result.stdout


def test_bodies_headers_cookies_and_head(backend: str, tmp: str) -> None:
    handler, blob = _handlers(tmp, [])
    with serve(handler, backend=backend) as server:
        client = H2Client(server)
        assert client.get(req("/echo?x=y", "PUT", [("x-a", "v")]), b"data") == (200, b"PUT /echo x=y|v|data")
        assert client.get(req("/cookie", extra=[("cookie", "a=1"), ("cookie", "b=2")])) == (200, b"a=1; b=2")
        assert client.get(req("/big")) == (200, blob)  # more than the default 64 KiB window: flow control
        assert client.get(req("/file")) == (200, blob)
        assert client.get(req("/file", "HEAD")) == (200, b"")
        assert client.heads[max(client.heads)][b"content-length"] == b"256000"
        sid = client.request(req("/chunked"))
        client.until(lambda: sid in client.ended)
        assert client.bodies[sid] == b"000001002003004"
        assert b"transfer-encoding" not in client.heads[sid] and b"connection" not in client.heads[sid]
        assert client.get(req("/crash"))[0] == 500
        assert client.get(req("/garbage"))[0] == 500
        assert client.get(req("/")) == (200, b"hello")  # the connection survived all of it
        client.close()


def test_sse_keeps_ticking_while_other_streams_complete(backend: str, tmp: str) -> None:
    events: list[str] = []
    handler, _ = _handlers(tmp, events)
    with serve(handler, backend=backend) as server:
        client = H2Client(server)
        sse = client.request(req("/sse"))
        client.until(lambda: client.bodies.get(sse, b"").count(b"\n\n") >= 2)
        slow = client.request(req("/slow"))
        quick = [client.request(req("/")) for _ in range(20)]
        client.until(lambda: all(s in client.ended for s in quick))  # answered while /slow and /sse are parked
        assert slow not in client.ended
        client.until(lambda: slow in client.ended)
        before = client.bodies[sse].count(b"\n\n")
        client.until(lambda: client.bodies[sse].count(b"\n\n") >= before + 3)
        assert sse not in client.ended
        client.close()


def test_rst_stream_closes_that_streams_generator_only(backend: str, tmp: str) -> None:
    events: list[str] = []
    handler, _ = _handlers(tmp, events)
    with serve(handler, backend=backend) as server:
        client = H2Client(server)
        a = client.request(req("/sse"))
        b = client.request(req("/hang"))
        client.until(lambda: a in client.heads)
        client.h2.reset_stream(b, ErrorCodes.CANCEL)
        client.flush()
        deadline = time.monotonic() + 5
        while "hang closed" not in events and time.monotonic() < deadline:
            client.pump(0.05) if False else time.sleep(0.01)
        assert "hang closed" in events and "closed /sse" not in events
        n = client.bodies[a].count(b"\n\n")
        client.until(lambda: client.bodies[a].count(b"\n\n") > n + 2)  # the other stream goes on
        client.close()


def test_request_deadline_answers_504_on_that_stream(backend: str, tmp: str) -> None:
    events: list[str] = []
    handler, _ = _handlers(tmp, events)
    with serve(handler, backend=backend, limits=Limits(request_timeout=0.2)) as server:
        client = H2Client(server)
        assert client.get(req("/hang"))[0] == 504
        assert "hang closed" in events
        assert client.get(req("/")) == (200, b"hello")
        client.close()


def test_graceful_shutdown_sends_goaway_and_lets_open_streams_finish(backend: str, tmp: str) -> None:
    events: list[str] = []
    handler, _ = _handlers(tmp, events)
    server = serve(handler, backend=backend, grace=3.0).start()
    client = H2Client(server)
    slow = client.request(req("/slow"))
    time.sleep(0.05)
    server.shutdown()
    client.until(lambda: client.goaway is not None)
    assert client.goaway.error_code == ErrorCodes.NO_ERROR
    client.until(lambda: slow in client.ended)
    assert bytes(client.bodies[slow]) == b"slow done"
    while client.pump(5):
        pass  # then the server closes
    client.close()
    leaks = server.stop()
    server.assert_no_leaks(leaks)


def test_grace_over_gives_sse_its_last_word(backend: str, tmp: str) -> None:
    events: list[str] = []
    handler, _ = _handlers(tmp, events)
    server = serve(handler, backend=backend, grace=0.3).start()
    client = H2Client(server)
    sse = client.request(req("/sse"))
    client.until(lambda: sse in client.heads)
    server.shutdown()
    client.until(lambda: sse in client.ended or client.closed)
    assert client.bodies[sse].endswith(b"event: bye\ndata: bye\n\n")
    client.close()
    leaks = server.stop()
    server.assert_no_leaks(leaks)


# -- flow control --------------------------------------------------------------------------------------------
def test_closed_window_holds_the_generator_and_a_zero_window_reader_is_reset(backend: str, tmp: str) -> None:
    events: list[str] = []
    handler, _ = _handlers(tmp, events)
    with serve(handler, backend=backend, limits=Limits(write_timeout=0.5)) as server:
        client = H2Client(server, window=0)  # never opens a stream window: the zero-window slow reader
        sid = client.request(req("/forever"))
        client.until(lambda: sid in client.heads)
        time.sleep(0.2)
        ticks = sum(1 for e in events if e.startswith("tick"))
        assert ticks < 100_000, "the generator ran on although no byte could be sent: no backpressure"
        other = H2Client(server)
        assert other.get(req("/")) == (200, b"hello")  # nobody else starves
        client.until(lambda: sid in client.reset, timeout=5)  # reset after write_timeout without window
        assert client.reset[sid] == ErrorCodes.CANCEL
        assert "closed /forever" in events
        other.close()
        client.close()


# -- limits and attacks --------------------------------------------------------------------------------------
def test_invalid_preface_gets_goaway_protocol_error(backend: str) -> None:
    with serve(lambda req, out: respond(out, 200, b"x"), backend=backend) as server:
        sock = socket.create_connection(server.address, timeout=5)
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + SettingsFrame(0).serialize())
        assert read_goaway(sock) == ErrorCodes.PROTOCOL_ERROR
        sock.close()
        assert server.request(b"PRI * HTTP/3.0\r\n\r\n").status == 505  # not the preface: HTTP/1.1's answer
        with server.connect() as c:  # the preface after an HTTP/1.1 request on the same connection: 505
            c.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert c.read_response().status == 200
            c.send(PREFACE)
            assert c.read_response(b"PRI").status == 505


def test_malformed_requests_are_stream_errors(backend: str) -> None:
    with serve(lambda req, out: respond(out, 200, b"ok"), backend=backend) as server:
        client = H2Client(server, validate=False)
        bad = [req("/", extra=[("X-Upper", "1")]), req("/", extra=[("connection", "close")]),
               req("/", extra=[("transfer-encoding", "chunked")]), req("/", extra=[("te", "gzip")]),
               [("x", "1")] + req("/"), [(":method", "GET"), (":path", "/")],
               req("/", extra=[(":status", "200")]), req("/", extra=[("x", " padded")])]
        for headers in bad:
            sid = client.request(headers)
            client.until(lambda: sid in client.reset)
            assert client.reset[sid] == ErrorCodes.PROTOCOL_ERROR, headers
        assert client.get(req("/", extra=[("te", "trailers")])) == (200, b"ok")  # the connection lives on
        assert client.goaway is None
        client.close()


def test_settings_advertise_the_limits_and_the_stream_limit_holds(backend: str) -> None:
    limits = Limits(h2_max_concurrent_streams=5, h2_header_table_size=1024)
    with serve(lambda req, out: respond(out, 200, b"ok"), backend=backend, limits=limits) as server:
        client = H2Client(server)
        client.until(lambda: any(isinstance(e, h2.events.RemoteSettingsChanged) for e in client.events))
        settings = client.h2.remote_settings
        assert settings.max_concurrent_streams == 5 and settings.header_table_size == 1024
        assert settings.max_header_list_size == limits.h2_max_header_list_size
        client.close()
        sock = raw_conn(server)  # a client ignoring the limit: more HEADERS than allowed streams
        fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"t"), (b":path", b"/")]
        block = encode(fields)
        sock.sendall(b"".join(HeadersFrame(sid, block, flags=["END_HEADERS"]).serialize() for sid in range(1, 20, 2)))
        assert read_goaway(sock) == ErrorCodes.PROTOCOL_ERROR
        sock.close()


def test_header_list_too_large_and_hpack_table_size_update_too_large(backend: str) -> None:
    limits = Limits(h2_max_header_list_size=4096)
    with serve(lambda req, out: respond(out, 200, b"ok"), backend=backend, limits=limits) as server:
        sock = raw_conn(server)
        fields = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"t"), (b":path", b"/"),
                  (b"x-big", b"a" * 8000)]
        sock.sendall(HeadersFrame(1, encode(fields), flags=["END_HEADERS", "END_STREAM"]).serialize())
        assert read_goaway(sock) is not None  # COMPRESSION_ERROR or PROTOCOL_ERROR: the connection ends
        sock.close()
        sock = raw_conn(server)
        # a dynamic table size update (001xxxxx, 5-bit prefix) to 1 MiB > our 4096
        update = bytes([0x3F, 0xE1, 0xFF, 0x3F])
        sock.sendall(HeadersFrame(1, update + encode(fields[:4]), flags=["END_HEADERS", "END_STREAM"]).serialize())
        assert read_goaway(sock) is not None
        sock.close()


def test_rapid_reset_gets_enhance_your_calm_and_others_are_served(backend: str, tmp: str) -> None:
    events: list[str] = []
    handler, _ = _handlers(tmp, events)
    with serve(handler, backend=backend, limits=Limits(h2_max_resets=50)) as server:
        sock = raw_conn(server)
        block = encode([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"t"), (b":path", b"/hang")])
        frames = b"".join(HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]).serialize()
                          + RstStreamFrame(sid, error_code=ErrorCodes.CANCEL).serialize() for sid in range(1, 400, 2))
        sock.sendall(frames)
        assert read_goaway(sock) == ErrorCodes.ENHANCE_YOUR_CALM
        sock.close()
        assert "hang closed" not in events  # reset in the same read: the handler never ran
        other = H2Client(server)
        assert other.get(req("/")) == (200, b"hello")
        other.close()


def test_continuation_flood_ends_the_connection(backend: str) -> None:
    with serve(lambda req, out: respond(out, 200, b"ok"), backend=backend) as server:
        sock = raw_conn(server)
        block = encode([(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"t"), (b":path", b"/")])
        frames = [HeadersFrame(1, block).serialize()]  # no END_HEADERS: CONTINUATION follows, forever
        frames += [ContinuationFrame(1, b"").serialize() for _ in range(500)]
        try:
            sock.sendall(b"".join(frames))
        except OSError:
            pass
        assert read_goaway(sock) is not None
        sock.close()
        assert H2Client(server).get(req("/")) == (200, b"ok")


@pytest.mark.parametrize("kind", ["ping", "settings"])
def test_ping_and_settings_floods_get_enhance_your_calm(backend: str, kind: str) -> None:
    with serve(lambda req, out: respond(out, 200, b"ok"), backend=backend, limits=Limits(h2_max_control_frames=100)) \
            as server:
        sock = raw_conn(server)
        one = PingFrame(0, opaque_data=b"12345678").serialize() if kind == "ping" else SettingsFrame(0).serialize()
        sock.sendall(one * 500)
        assert read_goaway(sock) == ErrorCodes.ENHANCE_YOUR_CALM
        sock.close()


def test_upload_over_the_body_limit_gets_413(backend: str) -> None:
    with serve(lambda req, out: respond(out, 200, b"%d" % len(req.body)), backend=backend,
               limits=Limits(max_body_bytes=1000)) as server:
        client = H2Client(server)
        assert client.get(req("/", "POST"), b"x" * 999) == (200, b"999")
        sid = client.request(req("/", "POST"), b"x" * 5000)
        client.until(lambda: sid in client.ended or sid in client.reset)
        assert client.heads[sid][b":status"] == b"413"
        client.close()


# -- the examples, unchanged, over h2c -------------------------------------------------------------------------
def test_examples_json_api_and_async_sse_over_h2c(backend: str) -> None:
    from examples import async_sse, json_api

    with serve(json_api.config, backend=backend) as server:
        client = H2Client(server)
        assert client.get(req("/api/health")) == (200, b'{"status": "ok"}') or \
            client.get(req("/api/health"))[0] == 200
        status, _ = client.get(req("/api/notes", "POST", [("content-type", "application/json")]), b'{"text": "hi"}')
        assert status == 201
        status, body = client.get(req("/api/notes"))
        assert status == 200 and b"hi" in body
        client.close()
    with serve(async_sse.make_config(interval=0.02, heartbeat=5.0), backend=backend) as server:
        client = H2Client(server)
        a = client.request(req("/events"))
        b = client.request(req("/events"))
        client.until(lambda: all(client.bodies.get(s, b"").count(b"\n\n") >= 3 for s in (a, b)))
        client.close()


@pytest.mark.parametrize("name", ["tiny", "simple", "simple2", "simple3", "veb_like", "redirects", "etag",
                                  "security_headers", "static_assets", "compression", "url_form", "cors",
                                  "date_header", "efficient_date", "conformance", "rate_limit", "ip_block"])
def test_more_examples_answer_the_same_over_h2c_as_over_http11(name: str) -> None:
    """The same handler, unchanged: GET / gives the same status and body over HTTP/1.1 and h2c."""
    import importlib

    module = importlib.import_module(f"examples.{name}")
    with serve(module.config) as server:
        with server.connect() as http11:
            http11.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # (the h2 client sends :authority t)
            expected = http11.read_response()
        client = H2Client(server)
        status, body = client.get(req("/"))
        client.close()
    assert (status, body) == (expected.status, expected.body), name
