"""examples.cors — a small JSON API that browsers on other origins may call (CORS, Fetch standard).

`policy.with_cors` wraps the app: preflights (``OPTIONS`` with ``Access-Control-Request-Method``)
are answered **204** with ``Access-Control-Allow-Origin`` (the origin echoed, never ``*`` with
credentials), ``-Allow-Methods``, ``-Allow-Headers``, ``-Max-Age`` and ``Vary: Origin`` — or
**403** without any CORS header when the origin, method or a requested header is not allowed.
Actual requests from an allowed origin get ``Access-Control-Allow-Origin`` (and
``-Allow-Credentials``, ``-Expose-Headers``) inserted into the app's response, streamed ones
included; a disallowed origin gets the response without them, so the browser hides it.

App routes: ``GET /api/items`` (JSON), ``POST /api/items`` (echoes the JSON body, 201),
``GET /api/stream`` (a chunked stream from a generator handler), ``OPTIONS /api/items`` without
``Access-Control-Request-Method`` (a plain OPTIONS: 204 with ``Allow``); anything else 404/405.

Run: ``CORS_ORIGINS=http://localhost:3000 CORS_CREDENTIALS=1 python -m examples.cors --port 8080``
(read at start), then
``curl -i -X OPTIONS -H 'Origin: http://localhost:3000' -H 'Access-Control-Request-Method: POST'
-H 'Access-Control-Request-Headers: content-type' localhost:8080/api/items``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Generator, Mapping

from vanilla_async import Request, ServerConfig, StaticResponse, respond, sleep

from .policy import CorsConfigError, CorsPolicy, Handler, insert_after_status_line, with_cors

__all__ = ("CorsConfigError", "CorsPolicy", "app", "config", "insert_after_status_line", "make_config",
           "policy_from_env", "with_cors")

ITEMS = StaticResponse(200, json.dumps([{"id": 1, "name": "apple"}, {"id": 2, "name": "pear"}]) + "\n",
                       content_type=b"application/json", headers=[("X-Total-Count", "2")])
NOT_FOUND = StaticResponse(404, b"not found; try /api/items\n")


def app(req: Request, out: bytearray) -> Generator[Any, Any, None] | None:
    """The API, unaware of CORS."""
    path, method = req.path, req.method
    if path == b"/api/items":
        if method == b"GET" or method == b"HEAD":
            ITEMS.append_to(out)
        elif method == b"POST":
            try:
                item = json.loads(bytes(req.body))
            except ValueError:
                respond(out, 400, b"the body must be JSON\n")
                return None
            respond(out, 201, json.dumps(item) + "\n", content_type=b"application/json")
        elif method == b"OPTIONS":
            respond(out, 204, headers=[("Allow", "GET, HEAD, POST, OPTIONS")])
        else:
            respond(out, 405, b"use GET or POST\n", headers=[("Allow", "GET, HEAD, POST, OPTIONS")])
        return None
    if path == b"/api/stream" and method == b"GET":
        return stream(out)
    NOT_FOUND.append_to(out)
    return None


def stream(out: bytearray) -> Generator[Any, Any, None]:
    out += b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
    for i in range(3):
        out += b"7\r\ntick %d\n\r\n" % i
        yield sleep(0.01)
    out += b"0\r\n\r\n"


def policy_from_env(env: Mapping[str, str] = os.environ) -> CorsPolicy:
    """``CORS_ORIGINS`` (comma-separated; default ``http://localhost:3000``), ``CORS_CREDENTIALS`` (``1``)."""
    origins = [o.strip() for o in env.get("CORS_ORIGINS", "http://localhost:3000").split(",") if o.strip()]
    return CorsPolicy.of(
        origins, methods=("GET", "HEAD", "POST"), headers=("Content-Type", "Authorization", "X-Request-Id"),
        expose=("X-Total-Count",), credentials=env.get("CORS_CREDENTIALS", "") == "1", max_age=600,
    )


def make_config(policy: CorsPolicy | None = None, application: Handler = app, **fields: Any) -> ServerConfig:
    """The example's config; ``policy=None`` reads the environment now (before the workers fork)."""
    fields.setdefault("port", 8080)
    return ServerConfig(handler=with_cors(application, policy or policy_from_env()), **fields)


config = make_config()
