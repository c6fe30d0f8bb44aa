"""examples.async_timer — a generator handler that parks on a timer without blocking its worker.

``GET /delay?ms=N`` parks the request on ``sleep(N / 1000)`` and then answers ``200 delayed N ms``.
While it is parked the worker keeps serving everyone else, so 200 concurrent ``/delay?ms=200``
requests on one worker all finish after about 200 ms, not 40 s.

* ``N`` must be a whole number (``-?[0-9]+``): anything else (missing, ``abc``, ``1.5``) → **400**
  with a message saying what is expected.
* ``N`` is clamped to ``0..10000``; a clamped request says so in its body
  (``delayed 10000 ms (asked for 99999; clamped to 0..10000)``) and in ``X-Delay-Clamped: 99999``
  (the value as sent).
  ``X-Delay-Ms`` always carries the delay actually used.
* Another method on ``/delay`` → **405** (``Allow: GET, HEAD``); any other path → **404**.

Run: ``python -m examples.async_timer --port 8080 --workers 2``, then
``curl -i 'http://127.0.0.1:8080/delay?ms=250'``.
"""

from __future__ import annotations

import re
from typing import Any, Generator, NamedTuple

from reactor import Token
from vanilla_async import Request, ServerConfig, StaticResponse, query_param, respond, sleep

MAX_MS = 10_000
_WHOLE = re.compile(rb"-?[0-9]+")

NOT_FOUND = StaticResponse(404, b"not found; try GET /delay?ms=250\n")
NOT_ALLOWED = StaticResponse(405, b"/delay only answers GET and HEAD\n", headers=[("Allow", "GET, HEAD")])


class Delay(NamedTuple):
    ms: int  #: the delay used, in 0..MAX_MS
    asked: str  #: the value as the client sent it (shortened when absurdly long)
    clamped: bool  #: the value asked for was outside 0..MAX_MS


def parse_ms(raw: bytes | None) -> Delay | str:
    """The delay to use, or the reason the value is refused (for a 400)."""
    if raw is None:
        return "missing ms: use /delay?ms=N with N a whole number of milliseconds (0..10000)"
    if _WHOLE.fullmatch(raw) is None:
        shown = raw[:40].decode("latin-1")
        return f"ms must be a whole number of milliseconds (0..10000), got {shown!r}"
    asked = raw.decode("ascii")
    if len(asked) > 12:  # no need to convert a huge number (int() refuses past 4300 digits anyway)
        return Delay(0 if asked.startswith("-") else MAX_MS, asked[:12] + "...", True)
    value = int(asked)
    ms = min(max(value, 0), MAX_MS)
    return Delay(ms, asked, ms != value)


def handler(req: Request, out: bytearray) -> Generator[Token, Any, None] | None:
    if req.path != b"/delay":
        NOT_FOUND.append_to(out)
        return None
    method = req.method
    if method != b"GET" and method != b"HEAD":
        NOT_ALLOWED.append_to(out)
        return None
    delay = parse_ms(query_param(req.query, b"ms"))
    if isinstance(delay, str):
        respond(out, 400, delay + "\n", head=method == b"HEAD")
        return None
    return delayed(out, delay, head=method == b"HEAD")


def delayed(out: bytearray, delay: Delay, *, head: bool = False) -> Generator[Token, Any, None]:
    """Park for ``delay.ms`` milliseconds (the worker serves others meanwhile), then answer."""
    ms = delay.ms
    yield sleep(ms / 1000)
    if delay.clamped:
        respond(out, 200, f"delayed {ms} ms (asked for {delay.asked}; clamped to 0..{MAX_MS})\n",
                headers=[("X-Delay-Ms", ms), ("X-Delay-Clamped", delay.asked)], head=head)
    else:
        respond(out, 200, f"delayed {ms} ms\n", headers=[("X-Delay-Ms", ms)], head=head)


config = ServerConfig(handler=handler, port=8080)
