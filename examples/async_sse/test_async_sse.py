"""examples.async_sse over real sockets (and one real headless browser)."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from examples.async_sse import SseState, handler, lines, make_config, ticks
from vanilla_async import Limits, ShuttingDown
from vanilla_async.sse import Event, decode
from vanilla_async.testing import Browser, Client, ServerProcess, TestServer, call, serve, wait_until

pytestmark = pytest.mark.usefixtures("each_backend")  # every server here runs on each backend

ROOT = Path(__file__).resolve().parents[2]


def get(target: bytes, extra: bytes = b"", method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n"


def fast(**changes: Any) -> TestServer:
    """The app with a 50 ms tick and no heartbeat in sight (unless asked)."""
    settings: dict[str, Any] = {"interval": 0.05, "heartbeat": 5.0, **changes}
    return serve(make_config(**settings))


def state_of(server: TestServer) -> SseState:
    assert server.worker is not None
    state: SseState = server.worker.state
    return state


def wait_for(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    return wait_until(condition, timeout)


def read_until(client: Client, marker: bytes, timeout: float = 2.0) -> bytes:
    """Raw bytes from the socket until ``marker`` shows up (a TimeoutError means it never did)."""
    client.sock.settimeout(timeout)
    seen = b""
    while marker not in seen:
        data = client.sock.recv(65536)
        if not data:
            raise AssertionError(f"connection closed before {marker!r}; got {seen!r}")
        seen += data
    return seen


def ticks_of(*numbers: int) -> list[Event]:
    return [Event(f"tick {n}", "message", str(n)) for n in numbers]


# -- /events ------------------------------------------------------------------------------------------------
def test_ticks_arrive_in_order_with_ids() -> None:
    with fast() as server:
        started = time.monotonic()
        r = server.request(get(b"/events?count=4"))
        elapsed = time.monotonic() - started
        assert state_of(server).streams_finished == 1
    assert r.status == 200 and r.header("content-type") == b"text/event-stream" and not r.closes
    assert r.header("cache-control") == b"no-cache" and r.header("transfer-encoding") == b"chunked"
    assert r.body.startswith(b"retry: 2000\n\n")
    assert decode(r.body) == ticks_of(1, 2, 3, 4)
    assert 4 * 0.05 <= elapsed < 2.0


def test_last_event_id_resumes_after_it() -> None:
    with fast() as server:
        r = server.request(get(b"/events?count=2", b"Last-Event-ID: 7\r\n"))
        assert decode(r.body) == ticks_of(8, 9)
        r = server.request(get(b"/events?count=1", b"Last-Event-ID: nonsense\r\n"))
        assert decode(r.body) == [Event("unknown Last-Event-ID; starting again at 1", "reset"), *ticks_of(1)]


def test_a_heartbeat_comment_goes_out_when_idle() -> None:
    with fast(interval=0.45, heartbeat=0.1) as server:
        r = server.request(get(b"/events?count=1"))
    before_tick = r.body.split(b"data: tick 1")[0]
    assert before_tick.count(b": ping\n") >= 3, r.body
    assert decode(r.body) == ticks_of(1)  # comments are not events


def test_streams_are_exempt_from_the_request_deadline() -> None:
    with serve(make_config(interval=0.05, heartbeat=5.0), limits=Limits(request_timeout=0.1)) as server:
        r = server.request(get(b"/events?count=4"))  # 0.2 s, twice the deadline: req.timeout = inf
        assert decode(r.body) == ticks_of(1, 2, 3, 4)


def test_a_clean_end_leaves_the_connection_usable() -> None:
    with fast() as server:
        client = server.connect()
        client.send(get(b"/events?count=2"))
        r = client.read_response()
        assert r.raw.endswith(b"\r\n0\r\n\r\n") and decode(r.body) == ticks_of(1, 2)
        client.send(get(b"/"))
        assert client.read_response().header("content-type") == b"text/html; charset=utf-8"
        client.send(get(b"/events?count=1", b"Last-Event-ID: 2\r\n"))
        assert decode(client.read_response().body) == ticks_of(3)
        assert state_of(server).streams_finished == 2


def test_a_client_leaving_mid_stream_runs_the_finally_and_leaks_nothing() -> None:
    with fast() as server:
        client = server.connect()
        client.send(get(b"/events?count=1000"))
        read_until(client, b"data: tick 2\n\n")
        state = state_of(server)
        assert (state.streams_started, state.streams_finished) == (1, 0)
        client.close()
        assert wait_for(lambda: state.streams_finished == 1), "the stream's finally did not run"
    # leaving serve() asserted that no connection, task, timer or fd was left behind


def test_shutting_down_sends_a_final_bye_event() -> None:
    state = SseState(interval=10.0)
    out = bytearray()
    stream = ticks(out, state, None, 5)
    next(stream)  # parked on the first tick's timer
    with pytest.raises(StopIteration):
        stream.throw(ShuttingDown())
    body = bytes(out).split(b"\r\n\r\n", 1)[1]
    assert body.endswith(b"0\r\n\r\n") and b"event: bye\ndata: server shutting down\n\n" in body
    assert state.streams_finished == 1


def test_shutting_down_over_a_real_server() -> None:
    """When the grace period ends, the parked stream gets `ShuttingDown` and says ``bye``."""
    with fast(interval=0.05) as server:
        client = server.connect()
        client.send(get(b"/events?count=1000"))
        read_until(client, b"data: tick 1\n\n")
        server.shutdown(grace=0.2)
        rest = client.read_until_closed()
        assert wait_for(lambda: state_of(server).streams_finished == 1)  # its finally ran, in any case
    assert rest.endswith(b"event: bye\ndata: server shutting down\n\n\r\n0\r\n\r\n"), rest


# -- /lines -----------------------------------------------------------------------------------------------
def test_lines_relays_a_subprocess_line_by_line() -> None:
    with fast() as server:
        r = server.request(get(b"/lines"))
        state = state_of(server)
        assert decode(r.body) == [Event(f"line {n}", "line") for n in range(1, 6)]
        assert len(state.children) == 1 and state.streams_finished == 1
        with pytest.raises(ChildProcessError):
            os.waitpid(state.children[0], os.WNOHANG)  # already reaped by the handler
        r = server.request(get(b"/lines?count=2"))
        assert decode(r.body) == [Event("line 1", "line"), Event("line 2", "line")]


def test_lines_sends_a_heartbeat_while_the_child_is_quiet() -> None:
    with fast(heartbeat=0.1, line_interval=0.35) as server:
        r = server.request(get(b"/lines?count=1"))
    assert r.body.split(b"data: line 1")[0].count(b": ping\n") >= 2, r.body
    assert decode(r.body) == [Event("line 1", "line")]


def test_a_client_leaving_lines_mid_stream_kills_the_child() -> None:
    with fast() as server:
        client = server.connect()
        client.send(get(b"/lines?count=1000"))  # 50 s of output
        read_until(client, b"data: line 2\n\n")
        state = state_of(server)
        pid = state.children[0]
        os.kill(pid, 0)  # the child is running
        client.close()
        assert wait_for(lambda: state.streams_finished == 1), "the stream's finally did not run"
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # killed and reaped: no process, not even a zombie
    # leaving serve() asserted that the pipe's fd was closed (no fd leaked)


def test_lines_shutting_down_kills_the_child_too() -> None:
    state = SseState(line_interval=5.0)
    out = bytearray()
    stream = lines(out, state, 3)
    next(stream)  # parked on the pipe
    with pytest.raises(StopIteration):
        stream.throw(ShuttingDown())
    assert b"event: bye" in out and out.endswith(b"0\r\n\r\n")
    with pytest.raises(ProcessLookupError):
        os.kill(state.children[0], 0)


# -- the rest ----------------------------------------------------------------------------------------------
def test_report_stores_json_in_the_worker_state() -> None:
    body = json.dumps({"events": [1, 2]}).encode()
    with fast() as server:
        r = server.request(b"POST /report HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        assert r.status == 204 and r.body == b""
        assert state_of(server).reports == [{"events": [1, 2]}]
        r = server.request(b"POST /report HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nnot")
        assert r.status == 400
        assert server.request(get(b"/report")).status == 405


def test_errors() -> None:
    with fast() as server:
        assert server.request(get(b"/nope")).status == 404
        for bad in (b"0", b"x", b"1001", b""):
            r = server.request(get(b"/events?count=" + bad))
            assert r.status == 400 and b"count must be" in r.body
        assert server.request(get(b"/events", method=b"DELETE")).status == 405
        assert server.request(b"GET /events HTTP/1.0\r\n\r\n").status == 505
        r = server.request(get(b"/events", method=b"HEAD"), method=b"HEAD")
        assert r.status == 200 and r.header("content-type") == b"text/event-stream"
        assert state_of(server).streams_started == 0


def test_index_page_opens_an_event_source() -> None:
    with fast() as server:
        r = server.request(get(b"/"))
    assert r.status == 200 and b"new EventSource(\"/events?count=3\")" in r.body and b"/report" in r.body


def test_handler_called_directly() -> None:
    raw = call(handler, get(b"/events?count=2"), state=SseState(interval=0.01))
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n") and raw.endswith(b"\r\n0\r\n\r\n")
    assert b"id: 1\ndata: tick 1\n\n" in raw and b"id: 2\ndata: tick 2\n\n" in raw


def test_runs_as_a_module_with_prefork_workers() -> None:
    with ServerProcess("-m", "examples.async_sse", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        with Client(("127.0.0.1", proc.port())) as client:
            client.send(get(b"/lines?count=2"))
            assert decode(client.read_response().body) == [Event("line 1", "line"), Event("line 2", "line")]
        assert proc.stop(signal.SIGTERM) == 0


# -- a real browser -----------------------------------------------------------------------------------------
def test_a_headless_browser_receives_the_events_and_reports_them(tmp_path: Path) -> None:
    with fast() as server:
        state = state_of(server)
        with Browser(server.url + "/", tmp_path) as browser:
            assert wait_for(lambda: bool(state.reports), timeout=20), browser.log()
    report = state.reports[0]
    assert report["why"] == "done"
    assert report["events"] == [{"type": "message", "id": str(n), "data": f"tick {n}"} for n in (1, 2, 3)]
