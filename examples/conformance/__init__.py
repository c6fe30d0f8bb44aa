"""examples.conformance — a strict echo application for checking the server's HTTP/1.1 claims.

Every request is answered **200** with ``X-Target: <the request-target>`` and a JSON echo of what
the handler was given: method, target, version, headers, body length and SHA-256. Each worker
records the targets it was handed (``state.seen``), so a test can tell exactly which requests
reached the application — the evidence for "a smuggled request never reaches the handler".

The limits are deliberately tight (`LIMITS`: request line 1 KiB, headers 2 KiB, body 4 KiB,
read timeout 3 s) so that 414/431/413/408 are cheap to provoke. Its tests replay the project's
request-smuggling corpus (tests/test_smuggling.py) against this app, run h11 as a client against
it (h11-generated requests in, every response parsed by h11), and check the README's list: keep-alive
and HTTP/1.0 close, pipelining in order, ``100-continue``, chunked bodies with trailers, and the
errors 400/413/414/431/501/505, each with ``Connection: close``.

Run: ``python -m examples.conformance --port 8080``, then
``printf 'GET /a HTTP/1.1\\r\\nHost: x\\r\\n\\r\\nGET /b HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' | nc localhost 8080``.
"""

from __future__ import annotations

import hashlib
import json

from vanilla_async import Limits, Request, ServerConfig

__all__ = ("LIMITS", "Seen", "config", "handler")

LIMITS = Limits(max_request_line=1024, max_header_bytes=2048, max_body_bytes=4096, read_timeout=3.0)


class Seen:
    """Per worker: the request-targets the application was handed, in order."""

    def __init__(self) -> None:
        self.seen: list[bytes] = []


def handler(req: Request, out: bytearray) -> None:
    state: Seen = req.state
    state.seen.append(req.target)
    body = bytes(req.body)
    echo = json.dumps({
        "method": req.method.decode("latin-1"), "version": req.version.decode("latin-1"), "target": req.target.decode("latin-1"),
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in req.header_items()],
        "body_length": len(body), "body_sha256": hashlib.sha256(body).hexdigest(),
    }).encode()
    out += b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Target: %s\r\nContent-Length: %d\r\n\r\n" % (
        req.target, len(echo))
    if req.method != b"HEAD":
        out += echo


config = ServerConfig(handler=handler, port=8080, make_state=Seen, limits=LIMITS)
