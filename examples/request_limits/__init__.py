"""examples.request_limits — configuring `Limits`, and what each limit answers on the wire.

The server enforces every bound itself, before a handler runs (see `vanilla_async.Limits`):

* a request line (method, target, version) over 1 KiB → **414 URI Too Long** (``max_request_line``);
* a header section over 4 KiB, however it is made up (one long field or many short ones) →
  **431 Request Header Fields Too Large** (``max_header_bytes``); both are answered as soon as the
  limit is passed, without waiting for the line or the head to end;
* a declared body over 16 KiB → **413 Content Too Large** (``max_body_bytes``), decided from
  Content-Length before the body is read; a chunked body is counted as it is decoded;
* a request still incomplete 2 s after its first byte → **408 Request Timeout** (``read_timeout``),
  never renewed, so a slowloris client dribbling bytes is reaped (an idle keep-alive connection,
  with nothing half-sent, is just closed after ``idle_timeout``);
* a transfer coding other than chunked (``Transfer-Encoding: gzip, chunked``) → **501 Not Implemented**;
* ``HTTP/2.0`` (or any major version other than 1, the HTTP/2 preface included) →
  **505 HTTP Version Not Supported**.

Every one of those answers is self-delimiting, carries ``Connection: close``, and the server then
closes the connection (a lingering close: it stops sending, discards what the client still sends
for a moment, then closes, so the client reads the error instead of a reset).

The server does not count header fields, only their bytes. This example adds an application
policy on top, in the handler: more than ``MAX_HEADER_FIELDS`` (32) fields → **431** with
``Connection: close`` too (``req.keep_alive = False``), the same answer the server gives.
Counting costs one pass over the head (`Request.header_items`), paid only by this handler.

Endpoints: ``GET /`` → ``ok``; ``POST /echo`` → the request body back. Anything else **404**,
other methods on those paths **405**.

Run: ``python -m examples.request_limits --port 8080``, then
``curl -si localhost:8080/$(head -c 2000 /dev/zero | tr '\\0' a)`` (414) or
``head -c 20000 /dev/zero | curl -si localhost:8080/echo --data-binary @-`` (413).
"""

from __future__ import annotations

from vanilla_async import Limits, Request, ServerConfig, StaticResponse, respond

LIMITS = Limits(
    max_request_line=1024,
    max_header_bytes=4096,
    max_body_bytes=16 * 1024,
    read_timeout=2.0,
    idle_timeout=30.0,
)
MAX_HEADER_FIELDS = 32

OK = StaticResponse(200, b"ok\n")
NOT_FOUND = StaticResponse(404, b"not found; try GET / or POST /echo\n")
GET_ONLY = StaticResponse(405, b"/ only answers GET and HEAD\n", headers=[("Allow", "GET, HEAD")])
POST_ONLY = StaticResponse(405, b"/echo only answers POST\n", headers=[("Allow", "POST")])


def handler(req: Request, out: bytearray) -> None:
    fields = len(req.header_items())
    if fields > MAX_HEADER_FIELDS:
        req.keep_alive = False  # the server closes after this response, as it does for its own 431
        respond(out, 431, f"{fields} header fields; at most {MAX_HEADER_FIELDS} are accepted\n", close=True)
        return
    path = req.path
    method = req.method
    if path == b"/":
        if method == b"GET":
            OK.append_to(out)
        elif method == b"HEAD":
            respond(out, 200, b"ok\n", head=True)
        else:
            GET_ONLY.append_to(out)
    elif path == b"/echo":
        if method == b"POST":
            respond(out, 200, req.body, content_type=b"application/octet-stream")
        else:
            POST_ONLY.append_to(out)
    else:
        NOT_FOUND.append_to(out)


config = ServerConfig(handler=handler, port=8080, limits=LIMITS)
