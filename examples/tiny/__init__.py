"""examples.tiny — the benchmark target: ``GET /`` → ``Hello, World!``; ``GET /json`` → ~1 KB of JSON.

Run: ``python -m examples.tiny --port 8080 --workers 2``.
"""

from __future__ import annotations

import json

from vanilla_async import Request, ServerConfig, StaticResponse, respond

from .payload import PAYLOAD

HELLO = StaticResponse(200, b"Hello, World!", content_type=b"text/plain")
NOT_FOUND = StaticResponse(404, b"Not Found\n", content_type=b"text/plain")


def handler(req: Request, out: bytearray) -> None:
    target = req.target
    if target == b"/":
        HELLO.append_to(out)
    elif target == b"/json":
        respond(out, 200, json.dumps(PAYLOAD).encode(), content_type=b"application/json")
    else:
        NOT_FOUND.append_to(out)


config = ServerConfig(handler=handler, port=8080)
