"""examples.async_sse — Server-Sent Events from a timer and from a subprocess's output.

Routes
------
``GET /events[?count=N]``
    An event stream of ``tick N`` events with ``id: N``, one every ``interval`` seconds. A client
    that reconnects with ``Last-Event-ID: 7`` gets ``tick 8`` next (browsers do that by
    themselves); an id that is not a number gets an ``event: reset`` and starts again at 1 (the
    spec has no "your id is too old" signal, so the application says it — whatwg/html#8297). When
    nothing was written for ``heartbeat`` seconds a ``: ping`` comment goes out, so proxies keep
    the connection and a vanished client shows up as a failed write. After ``count`` events
    (default 10, at most 1000) the stream ends with the terminating chunk, and the connection
    serves the next request. On shutdown (`ShuttingDown`, when the grace period ends) a final
    ``event: bye`` is sent.
``GET /lines[?count=N]``
    Relays the stdout of a child process line by line as ``event: line`` events: the child prints
    ``line 1`` … ``line N`` (default 5) every ``line_interval`` seconds; the handler waits on the
    pipe with ``yield readable(fd)`` and ends the stream at EOF. The child is killed and reaped,
    and the pipe closed, in a ``finally`` — so a client that disconnects mid-stream leaves no
    process and no fd behind.
``GET /``
    ``index.html``: opens ``EventSource('/events?count=3')``, and POSTs what it received to
    ``/report`` as JSON.
``POST /report``
    Stores the JSON body in the worker's state (``state.reports``, the last 100) and answers 204.

Configure with `make_config` (``interval``, ``heartbeat``, …); each worker gets an `SseState`.

Run: ``python -m examples.async_sse --port 8080 --workers 2``, open http://127.0.0.1:8080/, or
``curl -N http://127.0.0.1:8080/events?count=3`` and ``curl -N -H 'Last-Event-ID: 7' …``.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator

from reactor import Token
from vanilla_async import (
    Request,
    ServerConfig,
    ShuttingDown,
    StaticResponse,
    query_param,
    readable,
    respond,
    sleep_until,
    sse,
)

Stream = Generator[Token, Any, None]

MAX_COUNT = 1000
MAX_REPORTS = 100
MAX_LINE = 64 * 1024

INDEX = StaticResponse(200, (Path(__file__).parent / "index.html").read_bytes(), content_type=b"text/html; charset=utf-8")
NOT_FOUND = StaticResponse(404, b"not found; try /, /events or /lines\n")
NEEDS_HTTP11 = StaticResponse(505, b"event streams need HTTP/1.1 (chunked transfer coding)\n")

#: The child process behind ``/lines``: prints ``line 1`` .. ``line N``, one every ``pause`` seconds.
LINES_SCRIPT = (
    "import sys, time\n"
    "count, pause = int(sys.argv[1]), float(sys.argv[2])\n"
    "for i in range(1, count + 1):\n"
    "    time.sleep(pause)\n"
    "    print(f'line {i}', flush=True)\n"
)


@dataclass
class SseState:
    """Per-worker settings and bookkeeping (made after the fork by ``make_state``)."""

    interval: float = 1.0  #: seconds between ticks on /events
    heartbeat: float = 15.0  #: a ``: ping`` comment after this many idle seconds
    count: int = 10  #: ticks per /events response unless ``?count=N``
    retry_ms: int = 2000  #: the reconnection delay announced to clients
    line_interval: float = 0.05  #: seconds between the child's lines on /lines
    line_count: int = 5  #: lines per /lines response unless ``?count=N``
    reports: list[Any] = field(default_factory=list)  #: JSON bodies POSTed to /report
    streams_started: int = 0
    streams_finished: int = 0  #: streams whose ``finally`` ran (ended, disconnected or shut down)
    children: list[int] = field(default_factory=list)  #: pids of the /lines children, in order


def make_config(
    *, interval: float = 1.0, heartbeat: float = 15.0, count: int = 10, retry_ms: int = 2000,
    line_interval: float = 0.05, line_count: int = 5, port: int = 8080, grace: float = 5.0,
) -> ServerConfig:
    """A `ServerConfig` for this app; every worker gets a fresh `SseState` with these settings."""

    def make_state() -> SseState:
        return SseState(interval=interval, heartbeat=heartbeat, count=count, retry_ms=retry_ms,
                        line_interval=line_interval, line_count=line_count)

    return ServerConfig(handler=handler, make_state=make_state, port=port, grace=grace)


def parse_count(req: Request, default: int) -> int | None:
    """``?count=N`` (1..MAX_COUNT), ``default`` when absent, None when invalid."""
    raw = query_param(req.query, b"count")
    if raw is None:
        return default
    if not raw.isdigit() or len(raw) > 6 or not 1 <= int(raw) <= MAX_COUNT:
        return None
    return int(raw)


def handler(req: Request, out: bytearray) -> Stream | None:
    path = req.path
    method = req.method
    state: SseState = req.state
    if path == b"/report":
        if method != b"POST":
            respond(out, 405, b"POST a JSON body here\n", headers=[("Allow", "POST")])
            return None
        try:
            report = json.loads(bytes(req.body))
        except ValueError:
            respond(out, 400, b"the report must be a JSON document\n")
            return None
        state.reports.append(report)
        del state.reports[:-MAX_REPORTS]
        respond(out, 204)
        return None
    if method != b"GET" and method != b"HEAD":
        respond(out, 405, b"only GET here\n", headers=[("Allow", "GET, HEAD")])
        return None
    if path == b"/":
        INDEX.append_to(out)
        return None
    if path != b"/events" and path != b"/lines":
        NOT_FOUND.append_to(out)
        return None
    if method == b"HEAD":
        respond(out, 200, content_type=sse.CONTENT_TYPE, headers=[("Cache-Control", "no-cache")], head=True)
        return None
    if req.minor == 0:
        NEEDS_HTTP11.append_to(out)
        return None
    count = parse_count(req, state.count if path == b"/events" else state.line_count)
    if count is None:
        respond(out, 400, f"count must be a whole number in 1..{MAX_COUNT}\n")
        return None
    # A stream may outlive Limits.request_timeout (if one is set): no deadline for it. A vanished
    # client is still noticed (EOF while parked, or a failed heartbeat write) and so is a stalled one
    # (the write timeout and max_output_buffer).
    req.timeout = math.inf
    if path == b"/events":
        return ticks(out, state, req.last_event_id, count)
    return lines(out, state, count)


def ticks(out: bytearray, state: SseState, last_event_id: bytes | None, count: int) -> Stream:
    """``tick N`` every ``state.interval`` seconds, resuming after ``last_event_id``; ``count`` events."""
    sse.start(out, retry=state.retry_ms)
    first = 1
    if last_event_id is not None:
        if last_event_id.isdigit() and len(last_event_id) <= 15:
            first = int(last_event_id) + 1
        else:
            sse.event(out, "unknown Last-Event-ID; starting again at 1", event="reset")
    state.streams_started += 1
    try:
        now = time.monotonic()
        next_tick = now + state.interval
        quiet_since = now
        n = first
        while n < first + count:
            ping_at = quiet_since + state.heartbeat
            if ping_at < next_tick:
                yield sleep_until(ping_at)
                sse.comment(out, "ping")
                quiet_since = ping_at
                continue
            yield sleep_until(next_tick)  # whatever was appended so far leaves while we wait
            sse.event(out, f"tick {n}", id=n)
            quiet_since = next_tick
            next_tick += state.interval  # a fixed schedule: no drift from the time spent running
            n += 1
        sse.end(out)
    except ShuttingDown:
        sse.event(out, "server shutting down", event="bye")
        sse.end(out)
    finally:
        state.streams_finished += 1


def lines(out: bytearray, state: SseState, count: int) -> Stream:
    """Relay a child process's stdout, one ``line`` event per complete line, until EOF."""
    child = subprocess.Popen(
        [sys.executable, "-u", "-c", LINES_SCRIPT, str(count), str(state.line_interval)],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
    )
    state.children.append(child.pid)
    state.streams_started += 1
    assert child.stdout is not None
    fd = child.stdout.fileno()
    try:
        os.set_blocking(fd, False)
        sse.start(out, retry=state.retry_ms)
        pending = b""
        while True:
            ready = yield readable(fd, timeout=state.heartbeat)
            if not ready:
                sse.comment(out, "ping")
                continue
            try:
                data = os.read(fd, 65536)
            except BlockingIOError:
                continue
            if not data:
                break
            *complete, pending = (pending + data).split(b"\n")
            for line in complete:
                sse.event(out, line.removesuffix(b"\r"), event="line")
            if len(pending) > MAX_LINE:  # a line that never ends: send it in pieces
                sse.event(out, pending, event="line")
                pending = b""
        if pending:
            sse.event(out, pending, event="line")
        sse.end(out)
    except ShuttingDown:
        sse.event(out, "server shutting down", event="bye")
        sse.end(out)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait()  # reaped (after a kill this is immediate): no zombie
        child.stdout.close()
        state.streams_finished += 1


config = make_config()
