"""examples.graceful_shutdown: SIGTERM to a real 2-worker server drains, refuses, says bye, exits 0."""

from __future__ import annotations

import logging
import re
import signal
import socket
import time
from pathlib import Path

import h11
import pytest

from examples.graceful_shutdown import MAX_MS, config, parse_ms
from vanilla_async import sse
from vanilla_async.testing import Client, Response, ServerProcess, serve

ROOT = Path(__file__).resolve().parents[2]
GRACE = 2.5


def get(target: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n"


class Stream:
    """A client of ``/stream``: h11 checks the chunked framing; `sse.decode` gives the events."""

    def __init__(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.conn = h11.Connection(h11.CLIENT)
        self.sock.sendall(self.conn.send(h11.Request(method="GET", target="/stream", headers=[("Host", "t")])))
        self.sock.sendall(self.conn.send(h11.EndOfMessage()))
        self.status = 0
        self.headers: dict[bytes, bytes] = {}
        self.text = b""
        self.ended = False

    def events(self) -> list[sse.Event]:
        return sse.decode(self.text.decode("utf-8"))

    def read_until(self, done: str, timeout: float = 10.0) -> list[sse.Event]:
        """Read until an event whose data contains ``done`` (or the end of the body); bounded by ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self.ended and not any(done in e.data for e in self.events()):
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                assert time.monotonic() < deadline, f"no {done!r} within {timeout}s; got {self.text!r}"
                self.conn.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                self.status, self.headers = event.status_code, dict(event.headers)
            elif isinstance(event, h11.Data):
                self.text += event.data
            elif isinstance(event, h11.EndOfMessage):
                self.ended = True
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError(f"the stream was cut without its last chunk after {self.text!r}")
        return self.events()

    def read_to_end(self, timeout: float = 10.0) -> list[sse.Event]:
        return self.read_until("\0never\0", timeout)

    def closed_by_server(self) -> bool:
        return self.sock.recv(1) == b""

    def close(self) -> None:
        self.sock.close()


def connection_refused(port: int, within: float = 2.0) -> bool:
    """True once a new connection to ``port`` is refused (bounded: the listener closes just after the log line)."""
    deadline = time.monotonic() + within
    while True:
        try:
            probe = socket.create_connection(("127.0.0.1", port), timeout=1.0)
        except ConnectionRefusedError:
            return True
        except ConnectionResetError:
            # Queued at a listener that closed during the handshake (create_connection's timeout
            # makes connect non-blocking, so the reset shows up here): look again.
            probe = None
        if probe is not None:
            probe.close()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def wait_for_lines(proc: ServerProcess, pattern: str, count: int, timeout: float = 10.0) -> None:
    """Wait until ``count`` log lines have matched ``pattern`` (each is removed from ``proc.lines``)."""
    regex = re.compile(pattern)
    deadline = time.monotonic() + timeout
    for _ in range(count):
        proc.wait_for(pattern, max(0.1, deadline - time.monotonic()))
        index = next(i for i, line in enumerate(proc.lines) if regex.search(line))
        del proc.lines[index]


def assert_slow_answered_during_drain(r: Response, ms: int) -> None:
    assert (r.status, r.body) == (200, b"slept %d ms\n" % ms), (r.status, r.body)
    assert r.header("x-draining") == b"yes", "it finished before the shutdown began: the test proves nothing"


# -- the real thing: a prefork server and SIGTERM ----------------------------------------------------------
def test_sigterm_drains_in_flight_requests_refuses_new_ones_and_says_bye_to_streams() -> None:
    argv = ("-m", "examples.graceful_shutdown", "--port", "0", "--workers", "2", "--grace", str(GRACE))
    with ServerProcess(*argv, cwd=ROOT) as proc:
        port = proc.port()
        address = ("127.0.0.1", port)
        streams = [Stream(address) for _ in range(4)]
        for stream in streams:
            assert stream.read_until("tick 1")[0].data == "tick 1" and stream.status == 200
        slow = [Client(address, timeout=10) for _ in range(16)]  # new connections: spread over both workers
        for client in slow:
            client.send(get(b"/slow?ms=1500"))
        too_slow = Client(address, timeout=10)
        too_slow.send(get(b"/slow?ms=30000"))
        wait_for_lines(proc, r"slow request parked for \d+ ms", 17)  # every one is in flight now

        proc.popen.send_signal(signal.SIGTERM)
        stopped_at = time.monotonic()
        proc.wait_for(r"worker 0 shutting down")
        proc.wait_for(r"worker 1 shutting down")
        assert connection_refused(port), "a new connection was accepted after both workers began shutting down"

        # In-flight requests finish normally inside the grace period, then their connections close.
        responses = [client.read_response() for client in slow]
        for r in responses:
            assert_slow_answered_during_drain(r, 1500)
        assert time.monotonic() - stopped_at < GRACE, "the slow requests were held until the grace period ended"
        assert all(client.closed_by_server() for client in slow)
        pids = {r.header("x-worker-pid") for r in responses}
        assert len(pids) == 2, f"all 16 in-flight requests were on one worker ({pids}); the test needs both"

        # Streams keep streaming while the server drains, then get a final event when the grace period ends.
        for stream in streams:
            events = stream.read_to_end()
            assert stream.ended and stream.closed_by_server()
            assert events[-1] == sse.Event("server shutting down", "bye", events[-2].id)
            assert any(e.data.endswith("(draining)") for e in events), "no tick was sent during the drain"
            ticks = [e.data.split()[1] for e in events[:-1]]
            assert ticks == [str(n) for n in range(1, len(ticks) + 1)], ticks
            stream.close()
        # A request that could not finish within the grace period is told so, not just cut.
        r = too_slow.read_response()
        assert (r.status, r.header("retry-after"), r.closes) == (503, b"1", True)
        assert too_slow.closed_by_server()
        assert time.monotonic() - stopped_at >= GRACE - 0.2  # the bye came when the grace period ended
        too_slow.close()
        for client in slow:
            client.close()

        assert proc.wait(timeout=GRACE + 10) == 0
        assert "grace period over" in proc.output and "Traceback" not in proc.output


def test_sigterm_with_nothing_in_flight_exits_at_once() -> None:
    with ServerProcess("-m", "examples.graceful_shutdown", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        port = proc.port()
        with Client(("127.0.0.1", port)) as client:  # an idle keep-alive connection is simply closed
            client.send(get(b"/pid"))
            assert client.read_response().body.strip().isdigit()
            started = time.monotonic()
            assert proc.stop(signal.SIGTERM) == 0
            assert time.monotonic() - started < 5.0  # well under the 5 s default grace: nothing to wait for
            assert client.closed_by_server()


# -- the same, in one worker in this process (fast, with the leak checks) ------------------------------------
def test_shutdown_in_a_test_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "examples.graceful_shutdown")
    with serve(config) as server:
        stream = Stream(server.address)
        assert stream.read_until("tick 2")[-1].data == "tick 2"
        slow = server.connect()
        slow.send(get(b"/slow?ms=300"))
        doomed = server.connect()
        doomed.send(get(b"/slow?ms=20000"))
        deadline = time.monotonic() + 5
        while sum("slow request parked" in m for m in caplog.messages) < 2:  # both parked now
            assert time.monotonic() < deadline, caplog.messages
            time.sleep(0.01)
        server.shutdown(grace=1.0)
        assert_slow_answered_during_drain(slow.read_response(), 300)
        events = stream.read_to_end()
        assert any("(draining)" in e.data for e in events) and events[-1].event == "bye"
        r = doomed.read_response()
        assert r.status == 503 and b"server shutting down" in r.body
        stream.close()
    # leaving the block asserted that no connection, task, timer or fd was left behind


@pytest.mark.parametrize("raw, ms", [
    (None, 1000), (b"0", 0), (b"250", 250), (b"%d" % MAX_MS, MAX_MS), (b"%d" % (MAX_MS + 1), None),
    (b"-1", None), (b"1.5", None), (b"", None), (b"9" * 50, None),
])
def test_parse_ms(raw: bytes | None, ms: int | None) -> None:
    assert parse_ms(raw) == ms


def test_bad_requests() -> None:
    with serve(config) as server:
        r = server.request(get(b"/slow?ms=abc"))
        assert r.status == 400 and b"whole number" in r.body
        assert server.request(get(b"/nope")).status == 404
        r = server.request(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        assert r.status == 405 and r.header("allow") == b"GET"
