"""`vanilla_async.trio.serve`: the server as a task of a trio program, stopped by cancellation."""

from __future__ import annotations

from typing import Any, Generator

import h11
import pytest
import trio
import trio.testing

from vanilla_async import Limits, Request, ServerConfig, ShuttingDown, respond, sleep
from vanilla_async.errors import ConfigError
from vanilla_async.trio import serve


async def fetch(port: int, target: str = "/") -> tuple[int, bytes]:
    """One request with trio's own sockets, parsed by h11 (strict)."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        await stream.send_all(conn.send(h11.Request(method="GET", target=target, headers=[("Host", "t")])))
        await stream.send_all(conn.send(h11.EndOfMessage()))
        status, body = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += bytes(event.data)
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                return status, body


def app(req: Request, out: bytearray) -> Generator[Any, Any, None] | None:
    if req.path == b"/slow":
        return slow(out)
    if req.path == b"/stream":
        return stream(out)
    respond(out, 200, b"hello from trio")
    return None


def slow(out: bytearray) -> Generator[Any, Any, None]:
    yield sleep(0.3)
    respond(out, 200, b"slow done")


def stream(out: bytearray) -> Generator[Any, Any, None]:
    out += b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\nfirst\n"
    try:
        yield sleep(3600)
    except ShuttingDown:
        out += b"bye\n"


@pytest.mark.trio
async def test_serves_next_to_the_programs_own_tasks() -> None:
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0.005)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ticker)
        port = await nursery.start(serve, ServerConfig(handler=app, host="127.0.0.1", port=0))
        before = ticks
        results = []

        async def client(target: str) -> None:
            results.append(await fetch(port, target))

        async with trio.open_nursery() as clients:
            for _ in range(5):
                clients.start_soon(client, "/slow")
            for _ in range(20):
                clients.start_soon(client, "/")
        assert sorted(results) == [(200, b"hello from trio")] * 20 + [(200, b"slow done")] * 5
        assert ticks - before >= 10, "the program's own task did not run while requests were parked"
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_cancellation_drains_requests_in_progress_then_refuses_new_ones() -> None:
    config = ServerConfig(handler=app, host="127.0.0.1", port=0, grace=0.5)
    outcome: list[tuple[int, bytes]] = []
    async with trio.open_nursery() as outer:
        server_scope = trio.CancelScope()

        async def run_server(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with server_scope:
                await serve(config, task_status=task_status)

        port = await outer.start(run_server)

        async def slow_client() -> None:
            outcome.append(await fetch(port, "/slow"))

        outer.start_soon(slow_client)
        raw = await trio.open_tcp_stream("127.0.0.1", port)  # a stream that only ends at shutdown
        await raw.send_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        await trio.sleep(0.1)  # both requests are parked now
        server_scope.cancel()
        with trio.fail_after(5):
            streamed = b""
            while chunk := await raw.receive_some(65536):
                streamed += chunk
        await raw.aclose()
    assert outcome == [(200, b"slow done")]  # it finished although the server was cancelled meanwhile
    assert streamed.endswith(b"first\nbye\n")  # the grace period ended with ShuttingDown: a last word
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", port)


@pytest.mark.trio
async def test_timeouts_run_on_a_virtual_clock(autojump_clock: trio.testing.MockClock) -> None:
    limits = Limits(request_timeout=30.0)

    def parked_forever(req: Request, out: bytearray) -> Generator[Any, Any, None]:
        yield sleep(10_000)

    config = ServerConfig(handler=parked_forever, host="127.0.0.1", port=0, limits=limits)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(lambda task_status: serve(config, clock=trio.current_time, task_status=task_status))
        t0 = trio.current_time()
        status, _ = await fetch(port)
        assert status == 504 and trio.current_time() - t0 == pytest.approx(30.0, abs=1.0)
        nursery.cancel_scope.cancel()


@pytest.mark.trio
async def test_more_than_one_worker_is_a_clear_error() -> None:
    with pytest.raises(ConfigError, match="one worker"):
        await serve(ServerConfig(handler=app, workers=2))
    with pytest.raises(ConfigError, match="trio backend"):
        await serve(ServerConfig(handler=app, backend="epoll"))
