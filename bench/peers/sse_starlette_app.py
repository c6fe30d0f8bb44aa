"""The SSE peer: sse-starlette on uvicorn, the same two endpoints as examples.sse.

``GET /events`` subscribes (one bounded asyncio.Queue per subscriber); ``POST /broadcast`` puts
its body into every queue and answers 202. Run with one uvicorn worker, uvloop + httptools:
``uvicorn sse_starlette_app:app --workers 1 --loop uvloop --http httptools --no-access-log``.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from sse_starlette.sse import EventSourceResponse
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

subscribers: set[asyncio.Queue[str]] = set()


async def events(request: Request) -> EventSourceResponse:
    queue: asyncio.Queue[str] = asyncio.Queue(maxsize=64)
    subscribers.add(queue)

    async def stream() -> AsyncIterator[dict[str, str]]:
        try:
            yield {"comment": "subscribed"}
            while True:
                yield {"data": await queue.get()}
        finally:
            subscribers.discard(queue)

    return EventSourceResponse(stream(), ping=15)


async def broadcast(request: Request) -> Response:
    body = (await request.body()).decode()
    for queue in list(subscribers):
        if not queue.full():
            queue.put_nowait(body)
    return Response(status_code=202, content=f"{len(subscribers)}\n")


app = Starlette(routes=[Route("/events", events), Route("/broadcast", broadcast, methods=["POST"])])
