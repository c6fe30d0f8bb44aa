"""examples.chunked_streaming: chunk framing checked by h11 and curl, backpressure, trailers, HTTP/1.0."""

from __future__ import annotations

import hashlib
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import h11
import pytest

from examples.chunked_streaming import LIMITS, PIECE, big_body, config
from vanilla_async.testing import Client, ServerProcess, TestServer, serve

ROOT = Path(__file__).resolve().parents[2]
CURL = shutil.which("curl")
#: the most a /big response may hold unsent: the high-water mark, one more chunk (with its framing), the head
MAX_UNSENT = LIMITS.output_high_water + PIECE + 1024


def get(target: bytes, version: bytes = b"HTTP/1.1", *headers: bytes) -> bytes:
    host = b"Host: t\r\n" if version == b"HTTP/1.1" else b""
    return b"GET " + target + b" " + version + b"\r\n" + host + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


@dataclass
class Exchange:
    """One response as h11 (a strict client) saw it: chunks as framed on the wire, when each arrived, trailers."""

    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    chunks: list[bytes] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)  #: monotonic time each chunk was complete
    trailers: dict[bytes, bytes] = field(default_factory=dict)
    ended_at: float = 0.0

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


def fetch(sock: socket.socket, target: str, *, stall: float = 0.0, timeout: float = 20.0) -> Exchange:
    """GET ``target`` on ``sock`` with h11 (``TE: trailers``); first read nothing for ``stall`` seconds."""
    conn = h11.Connection(h11.CLIENT)
    sock.sendall(conn.send(h11.Request(method="GET", target=target, headers=[("Host", "t"), ("TE", "trailers")])))
    sock.sendall(conn.send(h11.EndOfMessage()))
    if stall:
        time.sleep(stall)
    result = Exchange()
    piece = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            assert time.monotonic() < deadline, f"the response did not end within {timeout}s"
            conn.receive_data(sock.recv(1 << 20))
        elif isinstance(event, h11.Response):
            result.status, result.headers = event.status_code, {k.lower(): v for k, v in event.headers}
        elif isinstance(event, h11.Data):
            assert not (event.chunk_start and piece), "h11 saw a new chunk start inside another"
            piece += event.data
            if event.chunk_end:
                result.chunks.append(bytes(piece))
                result.arrived.append(time.monotonic())
                piece.clear()
        elif isinstance(event, h11.EndOfMessage):
            result.trailers = {k.lower(): v for k, v in event.headers}
            result.ended_at = time.monotonic()
            return result
        else:
            raise AssertionError(f"unexpected {event!r}")


def fetch_new(server: TestServer, target: str, **kw: float) -> Exchange:
    with server.connect() as client:
        return fetch(client.sock, target, **kw)


def split_head(raw: bytes) -> tuple[dict[bytes, bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")[1:]
    return {k.strip().lower(): v.strip() for k, _, v in (line.partition(b":") for line in lines)}, body


def assert_big(x: Exchange, mb: int) -> None:
    assert x.status == 200 and x.headers[b"transfer-encoding"] == b"chunked" and b"content-length" not in x.headers
    assert x.headers[b"trailer"] == b"X-Content-SHA256, X-Max-Unsent"
    body = x.body
    assert len(body) == mb << 20 and body == big_body(mb)
    assert set(x.trailers) == {b"x-content-sha256", b"x-max-unsent"}
    assert x.trailers[b"x-content-sha256"] == hashlib.sha256(body).hexdigest().encode()
    assert int(x.trailers[b"x-max-unsent"]) <= MAX_UNSENT, x.trailers


# -- piece by piece --------------------------------------------------------------------------------------
def test_ticks_arrive_one_chunk_at_a_time() -> None:
    with serve(config) as server, server.connect() as client:
        x = fetch(client.sock, "/ticks?n=4&ms=150")
        assert x.status == 200 and x.headers[b"transfer-encoding"] == b"chunked"
        assert b"content-length" not in x.headers and x.trailers == {}
        assert x.chunks == [b"tick 0\n", b"tick 1\n", b"tick 2\n", b"tick 3\n"]  # one chunk per piece
        # Three 150 ms pauses lie between the first chunk and the last: each left when it was written,
        # not all together at the end.
        assert x.arrived[-1] - x.arrived[0] >= 0.4, x.arrived
        assert x.ended_at - x.arrived[0] >= 0.4
        # The body is self-delimiting: the connection serves the next request.
        assert fetch(client.sock, "/ticks?n=1").chunks == [b"tick 0\n"]


def test_pipelined_streams_are_answered_in_order() -> None:
    with serve(config) as server:
        first, second = server.pipeline([get(b"/ticks?n=3&ms=20"), get(b"/ticks?n=2&ms=0")])
    assert (first.body, second.body) == (b"tick 0\ntick 1\ntick 2\n", b"tick 0\ntick 1\n")
    assert first.raw.endswith(b"7\r\ntick 2\n\r\n0\r\n\r\n")


# -- a large body, backpressure, trailers ------------------------------------------------------------------
def test_a_large_body_streams_whole_with_its_trailers() -> None:
    with serve(config) as server:
        assert_big(fetch_new(server, "/big?mb=4"), 4)
        x = fetch_new(server, "/big")  # default: 8 MiB
        assert_big(x, 8)
        assert len(x.chunks) == (8 << 20) // PIECE and {len(c) for c in x.chunks} == {PIECE}


def test_a_reader_that_stops_reading_is_held_back_not_cut_and_costs_bounded_memory() -> None:
    """The client reads nothing for 0.5 s while 16 MiB are due. The generator is held once its output
    backs up past the high-water mark: the server never holds more than that plus one chunk, the
    connection survives (past max_output_buffer = 1 MiB it would be cut), and every byte arrives."""
    with serve(config) as server:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)  # (before connect: a small window)
        sock.settimeout(10)
        sock.connect(server.address)
        with sock:
            x = fetch(sock, "/big?mb=16", stall=0.5)
        assert_big(x, 16)
        unsent = int(x.trailers[b"x-max-unsent"])
        assert unsent > LIMITS.output_high_water, f"the output never backed up ({unsent} bytes): nothing was tested"


def test_a_client_that_leaves_mid_stream_ends_the_generator() -> None:
    with serve(config) as server:
        for target in (b"/big?mb=64", b"/ticks?n=1000&ms=100"):
            client = server.connect()
            client.send(get(target))
            assert len(client.sock.recv(65536)) > 0
            client.close()
            deadline = time.monotonic() + 3.0
            while server.worker is not None and server.worker.conns:  # (read from this thread: a dict's len)
                assert time.monotonic() < deadline, "the connection outlived its client by 3 s"
                time.sleep(0.02)
    # leaving the block asserted that no task, timer or fd was left behind


# -- HTTP/1.0: close-delimited -------------------------------------------------------------------------------
@pytest.mark.parametrize("target, body", [
    (b"/ticks?n=3&ms=10", b"tick 0\ntick 1\ntick 2\n"),
    (b"/big?mb=1", big_body(1)),
])
def test_http_1_0_gets_a_close_delimited_body_without_chunks(target: bytes, body: bytes) -> None:
    with serve(config) as server, server.connect() as client:
        client.send(get(target, b"HTTP/1.0"))
        raw = client.read_until_closed()
    headers, received = split_head(raw)
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"transfer-encoding" not in headers and b"content-length" not in headers and b"trailer" not in headers
    assert headers[b"connection"] == b"close"
    assert received == body  # everything until the close, and nothing else (no chunk sizes, no trailers)


def test_http_1_0_response_parses_as_close_delimited() -> None:
    with serve(config) as server, server.connect() as client:
        client.send(get(b"/ticks?n=2&ms=0", b"HTTP/1.0"))
        r = client.read_response()  # h11: no framing headers -> the body runs until the server closes
        assert r.body == b"tick 0\ntick 1\n" and r.closes and client.eof


# -- curl ----------------------------------------------------------------------------------------------------
def curl(*args: str) -> bytes:
    assert CURL is not None
    return subprocess.run([CURL, "-s", "--max-time", "20", *args], capture_output=True, check=True).stdout


@pytest.mark.skipif(CURL is None, reason="curl is not installed")
def test_curl_sees_the_chunks_and_the_trailers() -> None:
    with serve(config) as server:
        url = server.url
        assert curl("--raw", f"{url}/ticks?n=3&ms=10") == b"7\r\ntick 0\n\r\n7\r\ntick 1\n\r\n7\r\ntick 2\n\r\n0\r\n\r\n"
        assert curl(f"{url}/ticks?n=3&ms=10") == b"tick 0\ntick 1\ntick 2\n"  # decoded
        raw = curl("--raw", f"{url}/big?mb=1")
        digest = hashlib.sha256(big_body(1)).hexdigest().encode()
        tail = raw[raw.rindex(b"\r\n0\r\n") + 2:]
        assert tail.startswith(b"0\r\nX-Content-SHA256: " + digest + b"\r\nX-Max-Unsent: ") and tail.endswith(b"\r\n\r\n")
        assert curl(f"{url}/big?mb=1") == big_body(1)
        headers, body = split_head(curl("-i", "--http1.0", f"{url}/ticks?n=2&ms=0"))
        assert b"transfer-encoding" not in headers and body == b"tick 0\ntick 1\n"


# -- bad requests and the module -------------------------------------------------------------------------------
@pytest.mark.parametrize("target, reason", [
    (b"/ticks?n=0", b"n must be a whole number in 1..1000, got '0'"),
    (b"/ticks?n=1001", b"n must be"),
    (b"/ticks?ms=-1", b"ms must be a whole number in 0..10000"),
    (b"/ticks?ms=1e3", b"ms must be"),
    (b"/big?mb=0", b"mb must be a whole number in 1..256"),
    (b"/big?mb=" + b"9" * 30, b"mb must be"),
])
def test_bad_parameters_are_400(target: bytes, reason: bytes) -> None:
    with serve(config) as server:
        r = server.request(get(target))
        assert r.status == 400 and reason in r.body, r.body


def test_other_paths_and_methods() -> None:
    with serve(config) as server:
        assert server.request(get(b"/nope")).status == 404
        r = server.request(b"POST /big HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        assert r.status == 405 and r.header("allow") == b"GET"


def test_runs_as_a_module() -> None:
    with ServerProcess("-m", "examples.chunked_streaming", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        with Client(("127.0.0.1", proc.port())) as client:
            assert_big(fetch(client.sock, "/big?mb=1"), 1)
        assert proc.stop(signal.SIGTERM) == 0
