"""examples.http2 — eight `EventSource` streams on one page, all ticking, over one HTTP/2 connection.

Over HTTP/1.1 a browser opens at most six connections per origin, so the seventh and eighth
`EventSource` would hang; over HTTP/2 every stream shares one connection. The handler is an ordinary
vanilla_async handler (the SSE generator is the same one HTTP/1.1 uses): the server speaks HTTP/2 to
clients that start with the HTTP/2 preface (h2c with prior knowledge today; ALPN ``h2`` with TLS).

``GET /``            the page (eight ``EventSource('/ticks?n=i')``)
``GET /ticks?n=I``   an SSE stream: one event per ``INTERVAL`` seconds, tagged with the stream's number
``POST /report``     the page reports, once every stream ticked twice, the protocol the browser used
                     (``nextHopProtocol``) and what each stream got (kept in the worker's state)

Run: ``python -m examples.http2 --port 8080``, then
``curl --http2-prior-knowledge -N http://127.0.0.1:8080/ticks?n=1``
(``h2load -c 1 -m 8 -n 8 ...`` shows the streams share one connection).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Generator

from reactor import sleep
from vanilla_async import Request, ServerConfig, ShuttingDown, StaticResponse, respond
from vanilla_async.sse import encode_event

__all__ = ("INTERVAL", "State", "config", "handler", "ticks")

INTERVAL = 0.5
STREAMS = 8
PAGE = StaticResponse(200, (Path(__file__).with_name("index.html")).read_bytes(), content_type=b"text/html; charset=utf-8")
NOT_FOUND = StaticResponse(404, b"not found; try / or /ticks?n=1\n")
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n"


def _chunk(out: bytearray, data: bytes) -> None:
    out += b"%x\r\n%s\r\n" % (len(data), data)


def ticks(out: bytearray, name: bytes, interval: float = INTERVAL, count: int | None = None) -> Generator[Any, Any, None]:
    """One SSE stream (chunked, as over HTTP/1.1): ``tick`` events until the client leaves."""
    out += HEAD
    i = 0
    try:
        while count is None or i < count:
            _chunk(out, encode_event(f"{name.decode('ascii', 'replace')} {i}", id=i))
            i += 1
            yield sleep(interval)
        out += b"0\r\n\r\n"
    except ShuttingDown:
        _chunk(out, encode_event("bye", event="bye"))
        out += b"0\r\n\r\n"


class State:
    """Per worker: what browsers reported (``POST /report``, the last 100) — the browser test reads it."""

    def __init__(self) -> None:
        self.reports: list[Any] = []


def handler(req: Request, out: bytearray) -> Generator[Any, Any, None] | None:
    if req.path == b"/":
        PAGE.append_to(out)
        return None
    if req.path == b"/report" and req.method == b"POST":
        try:
            report = json.loads(bytes(req.body))
        except ValueError:
            respond(out, 400, b"the report must be a JSON document\n")
            return None
        if isinstance(req.state, State):
            req.state.reports = [*req.state.reports[-99:], report]
        respond(out, 204)
        return None
    if req.path == b"/ticks":
        n = req.query.partition(b"n=")[2].partition(b"&")[0] or b"0"
        if not n.isdigit() or len(n) > 3:
            n = b"0"
        count = req.query.partition(b"count=")[2].partition(b"&")[0]
        return ticks(out, b"stream " + n, count=int(count) if count.isdigit() and len(count) < 6 else None)
    NOT_FOUND.append_to(out)
    return None


config = ServerConfig(handler=handler, port=8080, make_state=State)
