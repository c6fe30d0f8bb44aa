"""examples.efficient_date — V's "efficient date": a per-worker ``Date`` refreshed lazily, on demand.

`examples.date_header` shows the library's way: a timer refreshes the cached Date line every
second in every worker, busy or idle. This example does it the other way round, as V's vanilla
example does: the worker keeps the formatted line and the second it was made for, and a request
that finds the clock in a new second formats it again — at most once a second per worker, and
never in a worker that serves nothing. A hand-written response then copies the cached bytes.

``GET /``         a response built by hand with the lazily refreshed ``Date`` (no ``respond``)
``GET /stats``    JSON: this worker's ``requests`` and ``refreshes`` (how often it formatted)

The cost of freshness is one ``int(time.time())`` and a comparison per response; formatting
(``email.utils.formatdate``-style, a few µs) happens once per second at most.

Run: ``python -m examples.efficient_date --port 8080 --workers 2``, then ``curl -si localhost:8080/``.
"""

from __future__ import annotations

import json
import time
from typing import Callable

from vanilla_async import Request, ServerConfig

__all__ = ("LazyDate", "config", "handler")

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def imf_fixdate(seconds: int) -> bytes:
    """RFC 9110 §5.6.7 IMF-fixdate, e.g. ``Sun, 06 Nov 1994 08:49:37 GMT``."""
    t = time.gmtime(seconds)
    return b"%s, %02d %s %04d %02d:%02d:%02d GMT" % (
        _DAYS[t.tm_wday].encode(), t.tm_mday, _MONTHS[t.tm_mon - 1].encode(), t.tm_year, t.tm_hour, t.tm_min, t.tm_sec)


class LazyDate:
    """The ``Date: ...\\r\\n`` line for the current second, formatted only when a request needs it."""

    __slots__ = ("_clock", "_line", "_second", "refreshes")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._second = -1
        self._line = b""
        self.refreshes = 0

    def line(self) -> bytes:
        now = int(self._clock())
        if now != self._second:
            self._second = now
            self._line = b"Date: " + imf_fixdate(now) + b"\r\n"
            self.refreshes += 1
        return self._line


class State:
    """Per worker (``make_state``, after the fork)."""

    def __init__(self) -> None:
        self.date = LazyDate()
        self.requests = 0


BODY = b"the Date header was formatted at most once this second in this worker\n"


def handler(req: Request, out: bytearray) -> None:
    state: State = req.state
    state.requests += 1
    if req.path == b"/":
        body = BODY
        ctype = b"text/plain"
    elif req.path == b"/stats":
        body = json.dumps({"requests": state.requests, "refreshes": state.date.refreshes}).encode()
        ctype = b"application/json"
    else:
        out += b"HTTP/1.1 404 Not Found\r\n" + state.date.line() + b"Content-Length: 10\r\n\r\nnot found\n"
        return
    out += b"HTTP/1.1 200 OK\r\n"
    out += state.date.line()
    out += b"Content-Type: " + ctype + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
    if req.method != b"HEAD":
        out += body


config = ServerConfig(handler=handler, port=8080, make_state=State)
