"""vanilla_async.offload over a real server: blocking calls run in the worker's pool while the
loop serves others; results and exceptions come back; the bound sheds with 503; a client that
leaves cancels its queued call and drops its running call's result; shutdown drains."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Generator

import pytest

from reactor import Reactor, Token
from vanilla_async import Request, ServerConfig, respond
from vanilla_async.offload import OffloadBusy, OffloadClosed, Offloader, OffloadRefused
from vanilla_async.testing import TestServer, serve

WAIT = 5.0


class State:
    def __init__(self) -> None:
        self.offloader: Offloader | None = None
        self.gate = threading.Event()  #: /block waits for it
        self.entered = threading.Semaphore(0)  #: released each time a /block call starts in a thread
        self.ran: list[str] = []  #: the calls that really ran, in order (appended from pool threads)
        self.threads = 1
        self.max_queued = 1


def blocking(state: State, tag: str) -> str:
    state.ran.append(tag)
    state.entered.release()
    if not state.gate.wait(WAIT):
        raise TimeoutError("the test never opened the gate")
    return f"done {tag}"


def fail(message: str) -> None:
    raise ValueError(message)


def handler(req: Request, out: bytearray) -> Generator[Token, Any, None] | None:
    state: State = req.state
    if req.path == b"/fast":
        respond(out, 200, b"fast")
        return None
    return offloaded(req, out, state)


def offloaded(req: Request, out: bytearray, state: State) -> Generator[Token, Any, None]:
    assert state.offloader is not None
    call: Callable[[], Any]
    if req.path.startswith(b"/block/"):
        tag = req.path[7:].decode()
        call = lambda: blocking(state, tag)  # noqa: E731
    elif req.path == b"/fail":
        call = lambda: fail("boom from the thread")  # noqa: E731
    else:
        call = threading.get_ident
    try:
        result = yield from state.offloader.run(call)
    except OffloadRefused as exc:
        respond(out, 503, f"{type(exc).__name__}: {exc}", headers=[("Retry-After", "1")])
        return
    except ValueError as exc:
        respond(out, 500, f"ValueError: {exc}")
        return
    respond(out, 200, str(result))


def config(threads: int = 1, max_queued: int = 1) -> tuple[ServerConfig, State]:
    state = State()
    state.threads, state.max_queued = threads, max_queued

    def on_worker_start(st: State, reactor: Reactor) -> None:
        st.offloader = Offloader(reactor, threads=st.threads, max_queued=st.max_queued, name="test-offload")

    def on_worker_stop(st: State) -> None:
        assert st.offloader is not None
        st.offloader.close()

    return ServerConfig(handler=handler, make_state=lambda: state, on_worker_start=on_worker_start,
                        on_worker_stop=on_worker_stop), state


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def wait_until(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.005)


def offloader_of(server: TestServer) -> Offloader:
    assert server.worker is not None
    offloader: Offloader | None = server.worker.state.offloader
    assert offloader is not None
    return offloader


def test_the_pool_starts_lazily_and_runs_calls_off_the_loop_thread() -> None:
    cfg, state = config()
    with serve(cfg) as server:
        assert not offloader_of(server).started  # no thread until the first call
        r = server.request(get("/ident"))
        assert r.status == 200 and int(r.body) != server._thread.ident  # type: ignore[union-attr]
        assert offloader_of(server).started and offloader_of(server).in_flight == 0


def test_other_requests_are_served_while_a_call_blocks() -> None:
    cfg, state = config()
    with serve(cfg) as server:
        slow = server.connect()
        slow.send(get("/block/a"))
        assert state.entered.acquire(timeout=WAIT)
        for _ in range(5):  # the loop is free: these are answered while /block/a holds its thread
            assert server.request(get("/fast")).body == b"fast"
        state.gate.set()
        r = slow.read_response()
        assert (r.status, r.body) == (200, b"done a")


def test_an_exception_in_the_thread_is_raised_in_the_handler() -> None:
    cfg, _ = config()
    with serve(cfg) as server:
        r = server.request(get("/fail"))
        assert (r.status, r.body) == (500, b"ValueError: boom from the thread")
        assert offloader_of(server).in_flight == 0
        assert server.request(get("/ident")).status == 200  # the pool is still healthy


def test_beyond_threads_plus_queue_the_call_is_refused_with_503() -> None:
    cfg, state = config(threads=1, max_queued=1)
    with serve(cfg) as server:
        running, queued = server.connect(), server.connect()
        running.send(get("/block/running"))
        assert state.entered.acquire(timeout=WAIT)
        queued.send(get("/block/queued"))
        wait_until(lambda: offloader_of(server).in_flight == 2, "the second call is queued")
        r = server.request(get("/block/third"))
        assert r.status == 503 and r.header("retry-after") == b"1"
        assert r.body.startswith(b"OffloadBusy:") and b"threads=1, max_queued=1" in r.body
        assert "third" not in state.ran  # refused before anything was submitted
        state.gate.set()
        assert running.read_response().body == b"done running"
        assert queued.read_response().body == b"done queued"
        wait_until(lambda: offloader_of(server).in_flight == 0, "the pool is idle")
        assert state.ran == ["running", "queued"]


def test_a_client_that_leaves_cancels_its_queued_call_and_drops_its_running_result() -> None:
    cfg, state = config(threads=1, max_queued=1)
    with serve(cfg) as server:
        running, queued = server.connect(), server.connect()
        running.send(get("/block/running"))
        assert state.entered.acquire(timeout=WAIT)
        queued.send(get("/block/queued"))
        wait_until(lambda: offloader_of(server).in_flight == 2, "the second call is queued")
        queued.close()  # still queued: cancelled, it never runs
        running.close()  # already running: it finishes, its result is dropped
        wait_until(lambda: offloader_of(server).in_flight == 1, "the queued call is cancelled")
        state.gate.set()
        wait_until(lambda: offloader_of(server).in_flight == 0, "the running call is released")
        assert state.ran == ["running"]
        assert server.request(get("/ident")).status == 200  # the thread is free for the next call
    # (leaving serve() asserted that no connection, task, timer or fd was left behind)


def test_shutdown_drains_accepted_calls_and_refuses_new_ones() -> None:
    cfg, state = config(threads=1, max_queued=1)
    server = TestServer(cfg, grace=WAIT).start()
    try:
        client = server.connect()
        client.send(get("/block/last"))
        assert state.entered.acquire(timeout=WAIT)
        server.shutdown()  # on_worker_stop closes the offloader; the parked handler keeps its call
        wait_until(lambda: offloader_of(server).closed, "the offloader is closed")
        refused = offloader_of(server).run(threading.get_ident)
        with pytest.raises(OffloadClosed, match="shutting down"):
            next(refused)
        state.gate.set()
        r = client.read_response()
        assert (r.status, r.body) == (200, b"done last")  # answered within the grace period
        client.close()
    finally:
        state.gate.set()
        leaks = server.stop()
    server.assert_no_leaks(leaks)


def test_bad_bounds_are_refused() -> None:
    reactor = Reactor("selectors")
    try:
        with pytest.raises(ValueError, match="threads >= 1"):
            Offloader(reactor, threads=0)
    finally:
        reactor.close()
    assert issubclass(OffloadBusy, OffloadRefused) and issubclass(OffloadClosed, OffloadRefused)
