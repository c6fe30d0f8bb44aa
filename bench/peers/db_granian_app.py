"""RSGI app for granian with an asyncpg pool: the TechEmpower database tests, as the peer of
``examples/async_db_pg`` in ``bench/db_bench.py``. Same endpoints, SQL, output and tuning as
``db_uvicorn_app.py`` (whose helpers it imports; that module imports no server): ``/db``,
``/queries?queries=N``, ``/fortunes``.

The pool (``DB_POOL_SIZE`` connections, default 1, from the ``PG*`` environment variables) is opened
in ``__rsgi_init__`` on the worker's event loop before it serves, and closed in ``__rsgi_del__``.

Run: DB_POOL_SIZE=1 granian --interface rsgi --workers 1 --loop uvloop db_granian_app:app
"""

from __future__ import annotations

import asyncio
import json
from random import randint
from typing import Any

import asyncpg
from db_uvicorn_app import (
    HTML_TYPE,
    JSON_TYPE,
    READ_FORTUNES_SQL,
    READ_ROW_SQL,
    WORLD_ROWS,
    create_pool,
    parse_queries,
    random_ids,
    render_fortunes,
)

_JSON = [("content-type", JSON_TYPE)]
_HTML = [("content-type", HTML_TYPE)]
_MISSING = [("content-type", "text/plain")]


class App:
    def __init__(self) -> None:
        self.pool: asyncpg.Pool | None = None

    def __rsgi_init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = loop.run_until_complete(create_pool())

    def __rsgi_del__(self, loop: asyncio.AbstractEventLoop) -> None:
        if self.pool is not None:
            loop.run_until_complete(self.pool.close())

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        if scope.proto != "http":  # websockets are disabled (--no-ws)
            return
        pool = self.pool
        assert pool is not None
        path = scope.path
        if path == "/db":
            row_id = randint(1, WORLD_ROWS)
            async with pool.acquire() as conn:
                number = await conn.fetchval(READ_ROW_SQL, row_id)
            protocol.response_str(200, _JSON, json.dumps({"id": row_id, "randomNumber": number}))
        elif path == "/queries":
            ids = random_ids(parse_queries(scope.query_string))
            async with pool.acquire() as conn:
                rows = await conn.fetchmany(READ_ROW_SQL, [(i,) for i in ids])
            protocol.response_str(200, _JSON, json.dumps([{"id": i, "randomNumber": r[0]} for i, r in zip(ids, rows)]))
        elif path == "/fortunes":
            async with pool.acquire() as conn:
                rows = await conn.fetch(READ_FORTUNES_SQL)
            protocol.response_str(200, _HTML, render_fortunes(rows))
        else:
            protocol.response_bytes(404, _MISSING, b"Not Found")


app = App()
