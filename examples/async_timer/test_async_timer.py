"""examples.async_timer over real sockets: parked requests do not block the worker."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pytest

from examples.async_timer import MAX_MS, Delay, config, handler, parse_ms
from vanilla_async import query_param
from vanilla_async.testing import Client, ServerProcess, call, serve

pytestmark = pytest.mark.usefixtures("each_backend")  # every server here runs on each backend

ROOT = Path(__file__).resolve().parents[2]


def get(target: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n"


def test_one_request_waits_at_least_its_delay() -> None:
    with serve(config) as server:
        started = time.monotonic()
        r = server.request(get(b"/delay?ms=150"))
        elapsed = time.monotonic() - started
        assert (r.status, r.body, r.header("x-delay-ms")) == (200, b"delayed 150 ms\n", b"150")
        assert r.header("x-delay-clamped") is None
        assert 0.15 <= elapsed < 1.0


def test_200_concurrent_requests_share_one_worker() -> None:
    """200 clients each wait 200 ms; one blocking worker would need 40 s, a parking one ~0.2 s."""
    with serve(config) as server:
        clients = [server.connect() for _ in range(200)]
        started = time.monotonic()
        for client in clients:
            client.send(get(b"/delay?ms=200"))
        responses = [client.read_response() for client in clients]
        elapsed = time.monotonic() - started
        for client in clients:
            client.close()
    assert all(r.status == 200 and r.body == b"delayed 200 ms\n" for r in responses)
    assert 0.2 <= elapsed < 2.0, f"200 concurrent 200 ms delays took {elapsed:.2f}s"


def test_pipelined_delays_are_answered_in_order() -> None:
    with serve(config) as server:
        responses = server.pipeline([get(b"/delay?ms=120"), get(b"/delay?ms=0"), get(b"/delay?ms=30")])
    assert [r.body for r in responses] == [b"delayed 120 ms\n", b"delayed 0 ms\n", b"delayed 30 ms\n"]


@pytest.mark.parametrize("query, reason", [
    (b"ms=abc", b"ms must be a whole number of milliseconds (0..10000), got 'abc'"),
    (b"ms=1.5", b"got '1.5'"),
    (b"ms=", b"got ''"),
    (b"ms=12abc", b"got '12abc'"),
    (b"other=1", b"missing ms"),
    (b"", b"missing ms"),
])
def test_a_delay_that_is_not_a_whole_number_is_refused_with_400(query: bytes, reason: bytes) -> None:
    with serve(config) as server:
        client = server.connect()
        client.send(get(b"/delay?" + query if query else b"/delay"))
        r = client.read_response()
        assert r.status == 400 and reason in r.body, r.body
        client.send(get(b"/delay?ms=1"))  # a 400 from the handler keeps the connection usable
        assert client.read_response().status == 200


def test_a_negative_delay_is_clamped_to_zero_and_says_so() -> None:
    with serve(config) as server:
        started = time.monotonic()
        r = server.request(get(b"/delay?x=1&ms=-5"))
        assert time.monotonic() - started < 0.5
    assert r.status == 200 and r.body == b"delayed 0 ms (asked for -5; clamped to 0..10000)\n"
    assert (r.header("x-delay-ms"), r.header("x-delay-clamped")) == (b"0", b"-5")


def test_a_delay_above_the_maximum_is_clamped() -> None:
    assert parse_ms(b"99999") == Delay(MAX_MS, "99999", True)
    assert parse_ms(b"10000") == Delay(10_000, "10000", False)
    assert parse_ms(b"007") == Delay(7, "007", False)
    assert parse_ms(b"9" * 5000) == Delay(MAX_MS, "999999999999...", True)  # no 4300-digit int() error
    assert parse_ms(b"-" + b"9" * 50) == Delay(0, "-99999999999...", True)
    # Over the wire: still parked well after 0.3 s (it waits 10 s, not 99.999 s); leaving closes it.
    with serve(config) as server:
        client = server.connect()
        client.send(get(b"/delay?ms=99999"))
        client.sock.settimeout(0.3)
        with pytest.raises(TimeoutError):
            client.sock.recv(1)
        client.close()  # the parked generator is closed; serve() asserts nothing leaked


def test_query_param() -> None:
    assert query_param(b"a=1&ms=2&ms=3", b"ms") == b"2"
    assert query_param(b"ms", b"ms") == b""
    assert query_param(b"xms=1", b"ms") is None


def test_other_paths_and_methods() -> None:
    with serve(config) as server:
        assert server.request(get(b"/")).status == 404
        assert server.request(get(b"/delayed?ms=1")).status == 404
        r = server.request(b"POST /delay?ms=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        assert r.status == 405 and r.header("allow") == b"GET, HEAD"
        r = server.request(get(b"/delay?ms=10", b"HEAD"), method=b"HEAD")
        assert r.status == 200 and r.body == b"" and r.header("content-length") == b"14"


def test_handler_called_directly() -> None:
    raw = call(handler, get(b"/delay?ms=20"))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n\r\ndelayed 20 ms\n")


def test_runs_as_a_module_with_prefork_workers() -> None:
    with ServerProcess("-m", "examples.async_timer", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        with Client(("127.0.0.1", proc.port())) as client:
            client.send(get(b"/delay?ms=50"))
            assert client.read_response().body == b"delayed 50 ms\n"
        assert proc.stop(signal.SIGTERM) == 0
