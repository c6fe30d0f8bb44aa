"""examples.date_header — the cached ``Date`` header every response carries (RFC 9110 §6.6.1).

An origin server with a clock must send ``Date`` in every 2xx-4xx response, as an IMF-fixdate
(``Sun, 06 Nov 1994 08:49:37 GMT``). Formatting one costs a few microseconds, which is a lot on a
path that answers ``Hello, World!`` in about eight; so each worker formats it **once a second**,
from a timer on its reactor that fires just after every wall-clock second, and every response
copies the cached line (`vanilla_async.date_header`). A `StaticResponse` keeps its complete bytes
and rebuilds them only when that cached line has changed.

Endpoints (``GET`` and ``HEAD``; other methods **405**, other paths **404**):

* ``/`` — a `StaticResponse`: the same bytes for a whole second, then rebuilt with the new Date.
* ``/date`` — ``respond`` with the cached value in the body as well (``text/plain``), so a client
  can see that the header and the cached value are the same thing.
* ``/raw`` — a response written by hand, byte by byte, the way a handler that skips `respond`
  does it: it must append ``date_header()`` itself.

Run: ``python -m examples.date_header --port 8080 --workers 2``, then
``curl -si localhost:8080/date; sleep 1; curl -si localhost:8080/date``.
"""

from __future__ import annotations

from vanilla_async import Request, ServerConfig, StaticResponse, date_header, respond

HELLO = StaticResponse(200, b"look at the Date header\n")
NOT_FOUND = StaticResponse(404, b"not found; try /, /date or /raw\n")
NOT_ALLOWED = StaticResponse(405, b"only GET and HEAD\n", headers=[("Allow", "GET, HEAD")])

_RAW_BODY = b"hand-written response\n"
_RAW_HEAD = b"HTTP/1.1 200 OK\r\n"
_RAW_REST = b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n" % len(_RAW_BODY)


def cached_date() -> bytes:
    """The cached Date value (``b"Sun, 06 Nov 1994 08:49:37 GMT"``), without name and CRLF."""
    return date_header()[6:-2]


def handler(req: Request, out: bytearray) -> None:
    method = req.method
    if method != b"GET" and method != b"HEAD":
        NOT_ALLOWED.append_to(out)
        return
    head = method == b"HEAD"
    path = req.path
    if path == b"/":
        if head:
            respond(out, 200, b"look at the Date header\n", head=True)
        else:
            HELLO.append_to(out)
    elif path == b"/date":
        respond(out, 200, cached_date() + b"\n", head=head)
    elif path == b"/raw":
        out += _RAW_HEAD
        out += date_header()  # the cached "Date: ...\r\n" line: a hand-built response must add it
        out += _RAW_REST
        if not head:
            out += _RAW_BODY
    else:
        NOT_FOUND.append_to(out)


config = ServerConfig(handler=handler, port=8080)
