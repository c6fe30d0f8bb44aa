"""Raw ASGI app (no framework) for uvicorn + uvloop + httptools.

Run: uvicorn uvicorn_app:app --workers 1 --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable

from common import HELLO, PAYLOAD

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_PLAIN_HEADERS = [(b"content-type", b"text/plain"), (b"content-length", str(len(HELLO)).encode())]


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    path = scope["path"]
    if path == "/":
        status, headers, body = 200, _PLAIN_HEADERS, HELLO
    elif path == "/json":
        body = json.dumps(PAYLOAD).encode()
        status = 200
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    else:
        body = b"Not Found"
        status, headers = 404, [(b"content-type", b"text/plain"), (b"content-length", b"9")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
