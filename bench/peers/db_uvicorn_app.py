"""Raw ASGI app (no framework) with an asyncpg pool, for uvicorn + uvloop + httptools: the TechEmpower
database tests, as the peer of ``examples/async_db_pg`` in ``bench/db_bench.py``.

    GET /db                  {"id": N, "randomNumber": M}: one random row of ``world``
    GET /queries?queries=N   a JSON list of N such rows (N clamped to 1..500; missing/invalid -> 1)
    GET /fortunes            every ``fortune`` row plus one added at request time, sorted by message,
                             HTML-escaped, as a ``text/html; charset=utf-8`` table

Connection: asyncpg's defaults, i.e. the ``PGHOST`` / ``PGPORT`` / ``PGDATABASE`` / ``PGUSER``
environment variables (the harness points them at the benchmark cluster's unix socket). Pool size:
``DB_POOL_SIZE`` (default 1; min = max, all connections opened at lifespan startup).

Written to be as fast as asyncpg allows, the way TechEmpower's asyncpg entries are: statements are
prepared once per connection (asyncpg's statement cache), a released connection is *not* reset
(``reset=`` no-op: nothing here changes session state), and ``/queries`` sends its N single-row
SELECTs in one pipelined batch (``Connection.fetchmany``: N Bind/Execute, one Sync, one round trip)
rather than N sequential round trips. JSON is ``json.dumps`` (stdlib, as ours).

The helpers (`parse_queries`, `render_fortunes`, the SQL) are shared with ``db_granian_app.py``.

Run: DB_POOL_SIZE=1 uvicorn db_uvicorn_app:app --workers 1 --loop uvloop --http httptools --no-access-log
"""

from __future__ import annotations

import json
import os
from html import escape
from random import randint, sample
from typing import Any, Awaitable, Callable, Iterable

import asyncpg

POOL_SIZE = int(os.environ.get("DB_POOL_SIZE", "1"))
WORLD_ROWS = 10_000
MAX_QUERIES = 500

READ_ROW_SQL = 'SELECT "randomnumber" FROM "world" WHERE "id" = $1'
READ_FORTUNES_SQL = 'SELECT "id", "message" FROM "fortune"'
ADDITIONAL_FORTUNE = "Additional fortune added at request time."

JSON_TYPE = "application/json"
HTML_TYPE = "text/html; charset=utf-8"

_FORTUNES_HEAD = (
    "<!DOCTYPE html><html><head><title>Fortunes</title></head><body>"
    "<table><tr><th>id</th><th>message</th></tr>"
)
_FORTUNES_TAIL = "</table></body></html>"


def parse_queries(query_string: str) -> int:
    """TechEmpower's rule for ``queries``: an integer clamped to 1..500, anything else -> 1."""
    for part in query_string.split("&"):
        name, _, value = part.partition("=")
        if name == "queries":
            try:
                n = int(value)
            except ValueError:
                return 1
            return 1 if n < 1 else MAX_QUERIES if n > MAX_QUERIES else n
    return 1


def random_ids(n: int) -> list[int]:
    """n distinct random ids in 1..10000 (distinct, as TechEmpower's reference apps pick them)."""
    return sample(range(1, WORLD_ROWS + 1), n)


def render_fortunes(rows: Iterable[tuple[int, str]]) -> str:
    """The fortunes page: rows plus the added fortune, sorted by message, escaped."""
    fortunes = [(r[0], r[1]) for r in rows]
    fortunes.append((0, ADDITIONAL_FORTUNE))
    fortunes.sort(key=lambda f: f[1])
    body = "".join(f"<tr><td>{fid}</td><td>{escape(message)}</td></tr>" for fid, message in fortunes)
    return _FORTUNES_HEAD + body + _FORTUNES_TAIL


async def _no_reset(_connection: asyncpg.Connection) -> None:
    """Pool ``reset=``: skip asyncpg's per-release reset round trip (no session state is ever changed)."""


async def create_pool() -> asyncpg.Pool:
    return await asyncpg.create_pool(min_size=POOL_SIZE, max_size=POOL_SIZE, reset=_no_reset)


# ------------------------------------------------------------------------------------------------ ASGI

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_pool: asyncpg.Pool | None = None


def _headers(content_type: str, body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", content_type.encode()), (b"content-length", str(len(body)).encode())]


async def _lifespan(receive: Receive, send: Send) -> None:
    global _pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            try:
                _pool = await create_pool()
            except Exception as exc:  # noqa: BLE001 - report it through the protocol, uvicorn exits
                await send({"type": "lifespan.startup.failed", "message": f"asyncpg pool: {exc!r}"})
                return
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            if _pool is not None:
                await _pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    pool = _pool
    assert pool is not None
    path = scope["path"]
    if path == "/db":
        row_id = randint(1, WORLD_ROWS)
        async with pool.acquire() as conn:
            number = await conn.fetchval(READ_ROW_SQL, row_id)
        body = json.dumps({"id": row_id, "randomNumber": number}).encode()
        status, ctype = 200, JSON_TYPE
    elif path == "/queries":
        ids = random_ids(parse_queries(scope["query_string"].decode("latin-1")))
        async with pool.acquire() as conn:
            rows = await conn.fetchmany(READ_ROW_SQL, [(i,) for i in ids])
        body = json.dumps([{"id": i, "randomNumber": r[0]} for i, r in zip(ids, rows)]).encode()
        status, ctype = 200, JSON_TYPE
    elif path == "/fortunes":
        async with pool.acquire() as conn:
            rows = await conn.fetch(READ_FORTUNES_SQL)
        body = render_fortunes(rows).encode()
        status, ctype = 200, HTML_TYPE
    else:
        body, status, ctype = b"Not Found", 404, "text/plain"
    await send({"type": "http.response.start", "status": status, "headers": _headers(ctype, body)})
    await send({"type": "http.response.body", "body": body})
