"""examples.graceful_shutdown — SIGTERM drains in-flight requests and says goodbye to streams.

Theory of operation
-------------------
SIGTERM (or SIGINT) reaches the supervisor, which forwards SIGTERM to every worker. Each worker
then, in order (`Worker.begin_shutdown` in the engine):

1. **closes its listening socket** — new connections are refused by the kernel from now on (the
   supervisor keeps the port bound but never listens on it);
2. calls ``ServerConfig.on_worker_stop(state)`` — here it only flips `Lifecycle.draining`, which
   the handlers report, so one can see what ran during the drain;
3. closes idle keep-alive connections, and marks the others *closing*: a request being read,
   parked or sent is finished, then its connection is closed (no new request is read from it);
4. when the last connection is gone — or when ``ServerConfig.grace`` seconds have passed — exits.

When the grace period ends, `vanilla_async.ShuttingDown` is **thrown into every generator still
parked** at its ``yield``. A stream catches it to send a last event and end its body cleanly; a
slow request that could not finish in time catches it to answer **503** with ``Retry-After``
instead of being cut off without a word. Whatever they append is flushed, then the connection
closes. The process exits with status 0 once every worker has.

Here a stream holds its worker for the whole grace period (it only ends on ``ShuttingDown``). To
let streams end as soon as the shutdown begins, unpark them from ``on_worker_stop`` instead (see
examples/sse).

Endpoints (``GET``; other methods **405**, other paths **404**):

* ``/slow?ms=N`` — parks for N ms (0..60000, default 1000), then ``200 slept N ms``. Headers:
  ``X-Worker-Pid`` (which worker answered) and ``X-Draining: yes`` when the shutdown had begun
  by the time it answered. If the grace period ends first: **503**, ``Retry-After: 1``.
* ``/stream`` — an event stream: ``data: tick N`` every 0.2 s (``tick N (draining)`` once the
  shutdown has begun) until the grace period ends, then ``event: bye`` and a clean end.
* ``/pid`` — the worker's pid.

Run: ``python -m examples.graceful_shutdown --port 8080 --workers 2 --grace 5`` (``--grace``
defaults to 5 s), then ``curl -N localhost:8080/stream & curl localhost:8080/slow?ms=3000 &``
and ``kill -TERM <the server's pid>``.
"""

from __future__ import annotations

import logging
import math
import os
import re
from typing import Any, Generator

from reactor import Token
from vanilla_async import Request, ServerConfig, ShuttingDown, StaticResponse, query_param, respond, sleep, sse

log = logging.getLogger("examples.graceful_shutdown")

GRACE = 5.0
DEFAULT_MS = 1000
MAX_MS = 60_000
TICK_SECONDS = 0.2

_DIGITS = re.compile(rb"[0-9]{1,6}")
NOT_FOUND = StaticResponse(404, b"not found; try /slow?ms=1000, /stream or /pid\n")
NOT_ALLOWED = StaticResponse(405, b"only GET\n", headers=[("Allow", "GET")])
RETRY_LATER = (("Retry-After", "1"),)


class Lifecycle:
    """A worker's shutdown state (its ``req.state``): ``draining`` from the moment shutdown begins."""

    __slots__ = ("draining", "pid")

    def __init__(self) -> None:
        self.draining = False
        self.pid = os.getpid()  # made after the fork: the worker's own pid

    def begin_shutdown(self) -> None:
        """``on_worker_stop``: the worker stopped accepting; in-flight requests still run."""
        self.draining = True
        log.info("worker pid %d draining", self.pid)


def parse_ms(raw: bytes | None) -> int | None:
    """The delay for ``/slow``: ``DEFAULT_MS`` when absent, ``None`` when not a whole number in range."""
    if raw is None:
        return DEFAULT_MS
    if _DIGITS.fullmatch(raw) is None or int(raw) > MAX_MS:
        return None
    return int(raw)


def handler(req: Request, out: bytearray) -> Generator[Token, Any, None] | None:
    if req.method != b"GET":
        NOT_ALLOWED.append_to(out)
        return None
    path = req.path
    state: Lifecycle = req.state
    if path == b"/slow":
        ms = parse_ms(query_param(req.query, b"ms"))
        if ms is None:
            respond(out, 400, f"ms must be a whole number of milliseconds, 0..{MAX_MS}\n")
            return None
        return slow(out, state, ms)
    if path == b"/stream":
        req.timeout = math.inf  # endless: no request deadline (a departed client is still noticed)
        return stream(out, state)
    if path == b"/pid":
        respond(out, 200, f"{state.pid}\n")
        return None
    NOT_FOUND.append_to(out)
    return None


def slow(out: bytearray, state: Lifecycle, ms: int) -> Generator[Token, Any, None]:
    """Park for ``ms``; answer 200 — or 503 if the grace period ends first."""
    log.info("slow request parked for %d ms", ms)
    try:
        yield sleep(ms / 1000)
    except ShuttingDown:
        respond(out, 503, f"server shutting down before {ms} ms were up; retry\n", headers=RETRY_LATER, close=True)
        return
    headers: list[tuple[str, str | int]] = [("X-Worker-Pid", state.pid)]
    if state.draining:
        headers.append(("X-Draining", "yes"))
    respond(out, 200, f"slept {ms} ms\n", headers=headers)


def stream(out: bytearray, state: Lifecycle) -> Generator[Token, Any, None]:
    """Tick until the grace period ends (`ShuttingDown`), then a final ``bye`` event and a clean end."""
    sse.start(out, headers=[("X-Worker-Pid", state.pid)])
    n = 0
    try:
        while True:
            n += 1
            sse.event(out, f"tick {n} (draining)" if state.draining else f"tick {n}", id=n)
            yield sleep(TICK_SECONDS)
    except ShuttingDown:
        sse.event(out, "server shutting down", event="bye")
    sse.end(out)


def make_state() -> Lifecycle:
    return Lifecycle()


config = ServerConfig(handler=handler, port=8080, grace=GRACE, make_state=make_state,
                      on_worker_stop=Lifecycle.begin_shutdown)
