"""examples.database — a blocking PostgreSQL pool (psycopg's synchronous connections) used from
handlers through `vanilla_async.offload`, for drivers and libraries that only block.

``GET /notes``          200, the notes as a JSON list (newest first, at most 100)
``POST /notes``         201 + ``Location``, body ``{"text": str}`` (1..500 characters)
``GET /notes/:id``      200 / 404
``GET /healthz``        200 ``ok`` without touching the database (served while every thread waits)

The table is ``db_example_notes`` (a name of its own: it may share a database with other examples).

Compare `examples.async_db_pg`, which drives one pipelined connection from the reactor and needs
no thread. Here each worker holds a `BlockingPool` of ``threads`` synchronous connections — one
per pool thread, opened lazily in the thread that first needs one — and every query runs in the
worker's `Offloader`: ``rows = yield from state.offloader.run(state.pool.query, sql, params)``.
The handler parks; the loop serves others. When every thread is busy and the queue is full the
request gets **503** with ``Retry-After``; a database error gets **503** and the connection is
replaced. On shutdown the offloader drains (accepted queries finish and are answered); the
connections close when the worker process exits.

The schema (`ensure_schema`) is created once, before the workers fork (``__main__``), under an
advisory lock so that concurrent starts do not race.

Run: ``DATABASE_URL=postgresql:///mydb python -m examples.database --port 8080 --workers 2``, then
``curl -H 'Content-Type: application/json' -d '{"text": "hi"}' localhost:8080/notes``.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any, Generator, Sequence

import psycopg

from reactor import Reactor, Token
from vanilla_async import Request, ServerConfig, respond
from vanilla_async.offload import Offloader, OffloadRefused
from vanilla_async.routing import Params, Router

__all__ = ("BlockingPool", "State", "config", "ensure_schema", "make_config")

log = logging.getLogger("examples.database")
JSON = b"application/json"
SCHEMA = """
select pg_advisory_xact_lock(727274);
create table if not exists db_example_notes (id bigserial primary key, text text not null,
                                  created timestamptz not null default now());
"""


def ensure_schema(dsn: str) -> None:
    with psycopg.connect(dsn) as conn:
        conn.execute(SCHEMA)


class BlockingPool:
    """One synchronous connection per pool thread (thread-local), opened on first use."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._local = threading.local()
        self._all: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()

    def _conn(self) -> psycopg.Connection[Any]:
        conn: psycopg.Connection[Any] | None = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            conn = psycopg.connect(self.dsn, autocommit=True, connect_timeout=5)
            self._local.conn = conn
            with self._lock:
                self._all.append(conn)
        return conn

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run ``sql`` in this thread's connection (blocking); the rows, or [] for no result set."""
        conn = self._conn()
        try:
            cur = conn.execute(sql, params)
            return cur.fetchall() if cur.description is not None else []
        except psycopg.OperationalError:
            conn.close()  # replaced on the next call
            raise

    def close(self) -> None:
        with self._lock:
            conns, self._all = self._all, []
        for conn in conns:
            conn.close()


class State:
    def __init__(self, dsn: str, threads: int, max_queued: int) -> None:
        self.pool = BlockingPool(dsn)
        self.threads = threads
        self.max_queued = max_queued
        self.offloader: Offloader | None = None


def send(out: bytearray, status: int, doc: Any, headers: list[tuple[str, str]] | None = None) -> None:
    respond(out, status, json.dumps(doc, default=str), content_type=JSON, headers=headers or ())


def query(req: Request, out: bytearray, sql: str,
          params: Sequence[Any] = ()) -> Generator[Token, Any, list[tuple[Any, ...]] | None]:
    """The rows, or None after answering 503 (busy, shutting down, or the database failed)."""
    state: State = req.state
    assert state.offloader is not None, "on_worker_start makes the offloader"
    try:
        return (yield from state.offloader.run(state.pool.query, sql, params))
    except OffloadRefused as exc:
        send(out, 503, {"error": f"busy: {exc}"}, [("Retry-After", "1")])
    except psycopg.Error as exc:
        log.warning("query failed: %s", exc)
        send(out, 503, {"error": "the database is unavailable; retry shortly"}, [("Retry-After", "1")])
    return None


router = Router(not_found=lambda req, out: send(out, 404, {"error": "try /notes"}))


@router.get("/healthz")
def healthz(req: Request, out: bytearray) -> None:
    respond(out, 200, b"ok\n")


@router.get("/notes")
def list_notes(req: Request, out: bytearray) -> Generator[Token, Any, None]:
    rows = yield from query(req, out, "select id, text, created from db_example_notes order by id desc limit 100")
    if rows is not None:
        send(out, 200, [{"id": i, "text": t, "created": c.isoformat()} for i, t, c in rows])


@router.post("/notes")
def create_note(req: Request, out: bytearray) -> Generator[Token, Any, None]:
    try:
        doc = json.loads(bytes(req.body))
    except (ValueError, RecursionError):
        doc = None
    if not isinstance(doc, dict) or set(doc) != {"text"} or not isinstance(doc["text"], str) \
            or not 1 <= len(doc["text"]) <= 500:
        send(out, 400, {"error": 'expected {"text": string of 1..500 characters}'})
        return
    rows = yield from query(req, out, "insert into db_example_notes (text) values (%s) returning id", (doc["text"],))
    if rows is not None:
        send(out, 201, {"id": rows[0][0], "text": doc["text"]}, [("Location", f"/notes/{rows[0][0]}")])


@router.get("/notes/:id")
def get_note(req: Request, out: bytearray, params: Params) -> Generator[Token, Any, None]:
    raw = params["id"]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        send(out, 404, {"error": f"no note {raw!r}"})
        return
    rows = yield from query(req, out, "select id, text from db_example_notes where id = %s", (int(raw),))
    if rows is None:
        return
    if not rows:
        send(out, 404, {"error": f"no note {raw!r}"})
        return
    send(out, 200, {"id": rows[0][0], "text": rows[0][1]})


def on_worker_start(state: State, reactor: Reactor) -> None:
    state.offloader = Offloader(reactor, threads=state.threads, max_queued=state.max_queued, name="pg-blocking")


def on_worker_stop(state: State) -> None:
    if state.offloader is not None:
        state.offloader.close()  # accepted queries finish; the connections close at exit


def make_config(dsn: str | None = None, *, threads: int = 4, max_queued: int = 64, **fields: Any) -> ServerConfig:
    """The app for ``dsn`` (default: ``$DATABASE_URL`` read when each worker starts)."""

    def make_state() -> State:
        return State(dsn or os.environ.get("DATABASE_URL", ""), threads, max_queued)

    fields.setdefault("port", 8080)
    return ServerConfig(handler=router, make_state=make_state, on_worker_start=on_worker_start,
                        on_worker_stop=on_worker_stop, **fields)


config = make_config()
