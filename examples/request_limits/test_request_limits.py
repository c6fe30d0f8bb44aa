"""examples.request_limits over raw sockets: each limit's status, ``Connection: close``, then the close."""

from __future__ import annotations

import dataclasses
import select
import signal
import time
from pathlib import Path

import pytest

from examples.request_limits import LIMITS, MAX_HEADER_FIELDS, config
from vanilla_async.testing import Client, Response, ServerProcess, TestServer, serve

ROOT = Path(__file__).resolve().parents[2]
FAST_TIMEOUTS = config.with_(limits=dataclasses.replace(LIMITS, read_timeout=0.3, idle_timeout=0.6))


def get(target: bytes, *headers: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + target + b" " + version + b"\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def assert_refused(client: Client, status: int, reason: bytes = b"") -> Response:
    """The next response is ``status`` with ``Connection: close``, and the server then closes."""
    r = client.read_response()
    assert r.status == status, (r.status, r.body)
    assert r.closes, f"{status} without Connection: close: {r.headers}"
    assert r.header("content-length") == b"%d" % len(r.body)
    assert reason in r.body, r.body
    assert client.closed_by_server(timeout=3.0), f"the connection stayed open after {status}"
    return r


def send_and_expect(server: TestServer, raw: bytes, status: int, reason: bytes = b"") -> Response:
    with server.connect() as client:
        client.send(raw)
        return assert_refused(client, status, reason)


def test_the_limits_are_the_examples() -> None:
    assert config.limits is LIMITS
    assert (LIMITS.max_request_line, LIMITS.max_header_bytes, LIMITS.max_body_bytes) == (1024, 4096, 16384)


def test_fine_requests_are_served_and_kept_alive() -> None:
    with serve(config) as server, server.connect() as client:
        client.send(get(b"/"))
        r = client.read_response()
        assert (r.status, r.body, r.closes) == (200, b"ok\n", False)
        body = b"x" * LIMITS.max_body_bytes  # exactly at the limit
        client.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        r = client.read_response()
        assert (r.status, r.body) == (200, body)
        client.send(get(b"/nope"))
        assert client.read_response().status == 404


# -- 414 ---------------------------------------------------------------------------------------------
def test_a_request_line_at_the_limit_is_served_one_byte_more_is_414() -> None:
    target = b"/" + b"a" * (LIMITS.max_request_line - len(b"GET  HTTP/1.1") - 1)
    assert len(b"GET " + target + b" HTTP/1.1") == LIMITS.max_request_line
    with serve(config) as server:
        assert server.request(get(target)).status == 404  # framed and handled: only the path is unknown
        send_and_expect(server, get(target + b"a"), 414, b"request line exceeds 1024 bytes")


def test_414_comes_before_the_request_line_ends() -> None:
    """A target that never ends is refused once it passes the limit, not buffered forever."""
    with serve(config) as server, server.connect() as client:
        client.send(b"GET /" + b"a" * 2000)
        assert_refused(client, 414)


# -- 431 ---------------------------------------------------------------------------------------------
def test_one_huge_header_field_is_431() -> None:
    with serve(config) as server:
        send_and_expect(server, get(b"/", b"X-Big: " + b"b" * 5000), 431, b"header section exceeds 4096 bytes")


def test_many_small_header_fields_over_the_byte_limit_are_431() -> None:
    fields = [b"X-F%d: v" % i for i in range(600)]  # ~5.5 KiB of fields: the server's limit
    with serve(config) as server:
        send_and_expect(server, get(b"/", *fields), 431, b"header section exceeds")


def test_431_comes_before_the_head_ends() -> None:
    with serve(config) as server, server.connect() as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Long: " + b"c" * 5000)  # no blank line yet
        assert_refused(client, 431)


def test_too_many_header_fields_is_431_from_the_handlers_policy() -> None:
    """Under the byte limit but over MAX_HEADER_FIELDS: the example's own 431, closing just the same."""
    within = [b"X-F%d: v" % i for i in range(MAX_HEADER_FIELDS - 1)]  # + Host = 32 fields
    with serve(config) as server:
        r = server.request(get(b"/", *within))
        assert r.status == 200 and not r.closes
        send_and_expect(server, get(b"/", *within, b"X-One-More: v"), 431, b"33 header fields; at most 32")


# -- 413 ---------------------------------------------------------------------------------------------
def test_a_declared_body_over_the_limit_is_413_before_it_is_sent() -> None:
    with serve(config) as server:
        head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % (LIMITS.max_body_bytes + 1)
        send_and_expect(server, head, 413, b"exceeds the limit of 16384")  # no body sent: decided from the header


def test_a_huge_declared_length_is_413_not_a_crash() -> None:
    with serve(config) as server:
        head = b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: " + b"9" * 40 + b"\r\n\r\n"
        send_and_expect(server, head, 413)


def test_a_chunked_body_over_the_limit_is_413() -> None:
    piece = b"z" * 4096
    chunks = b"".join(b"%x\r\n" % len(piece) + piece + b"\r\n" for _ in range(5)) + b"0\r\n\r\n"  # 20 KiB
    with serve(config) as server:
        send_and_expect(server, b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks, 413)


# -- 408 ---------------------------------------------------------------------------------------------
def test_a_head_that_stalls_is_408() -> None:
    with serve(FAST_TIMEOUTS) as server, server.connect() as client:
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n")  # ... and the blank line never comes
        assert_refused(client, 408)


def test_a_slowloris_dribble_is_reaped_by_408() -> None:
    """One byte every 50 ms keeps the connection busy, but the read timeout runs from the first byte."""
    raw = get(b"/", *[b"X-Slow-%d: dribble" % i for i in range(10)])
    with serve(FAST_TIMEOUTS) as server, server.connect() as client:
        started = time.monotonic()
        for i in range(len(raw) - 1):  # never the last byte; bounded by the length of raw (~250 * 50 ms)
            client.send(raw[i:i + 1])
            if select.select([client.sock], [], [], 0.05)[0]:
                break
        else:
            raise AssertionError("no answer while dribbling the whole head")
        assert time.monotonic() - started < 2.0
        assert_refused(client, 408)


def test_an_idle_keep_alive_connection_is_closed_without_a_408() -> None:
    with serve(FAST_TIMEOUTS) as server, server.connect() as client:
        client.send(get(b"/"))
        assert client.read_response().status == 200
        assert client.closed_by_server(timeout=3.0)  # idle_timeout: nothing half-sent, so nothing to answer


# -- 501 and 505 -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("coding", [b"gzip, chunked", b"br, chunked", b"x-custom, chunked"])
def test_an_unsupported_transfer_coding_is_501(coding: bytes) -> None:
    with serve(config) as server:
        raw = b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: " + coding + b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        send_and_expect(server, raw, 501, b"unsupported transfer coding")


@pytest.mark.parametrize("raw", [
    get(b"/", version=b"HTTP/2.0"),
    get(b"/", version=b"HTTP/3.0"),
    # (the HTTP/2 connection preface, PRI * HTTP/2.0, switches to HTTP/2 instead: tests/test_h2.py)
])
def test_http_2_and_later_are_505(raw: bytes) -> None:
    with serve(config) as server:
        send_and_expect(server, raw, 505, b"is not supported; use HTTP/1.1")


# -- ordering and processes ------------------------------------------------------------------------------
def test_the_error_follows_the_answers_owed_to_earlier_pipelined_requests() -> None:
    with serve(config) as server, server.connect() as client:
        client.send(get(b"/") + get(b"/", b"X-Big: " + b"b" * 5000) + get(b"/"))
        r = client.read_response()
        assert (r.status, r.body, r.closes) == (200, b"ok\n", False)
        assert_refused(client, 431)  # and the third request is never answered


def test_runs_as_a_module_and_enforces_the_limits() -> None:
    with ServerProcess("-m", "examples.request_limits", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        port = proc.port()
        with Client(("127.0.0.1", port)) as client:
            client.send(get(b"/" + b"a" * 2000))
            assert_refused(client, 414)
        with Client(("127.0.0.1", port)) as client:
            client.send(get(b"/"))
            assert client.read_response().body == b"ok\n"
        assert proc.stop(signal.SIGTERM) == 0
