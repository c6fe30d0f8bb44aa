"""examples.async_db_pg — the TechEmpower database tests on one pipelined PostgreSQL connection per worker.

Every worker makes one `vanilla_async.pg.Database` after the fork (``make_state``; the DSN comes
from ``DATABASE_URL``) and runs its pump as a clientless task (``on_worker_start``). Handlers are
generators: ``row = yield from db.fetch_one(...)`` parks the request while the worker serves
everyone else, and the queries of all parked requests share the connection, pipelined. JSON is
``json.dumps``. When the database is down, reconnecting, saturated (``DatabaseBusy``) or too
slow (``QueryTimeout``) the answer is **503** with ``Retry-After: 1``.

Endpoints (``GET``; ``HEAD`` gives the same headers; other methods **405**, other paths **404**):

* ``/db`` — one random ``world`` row: ``{"id": 3217, "randomNumber": 2149}``.
* ``/queries?queries=N`` — N random rows as a JSON array; N is clamped to 1..500, and a missing or
  non-numeric N means 1. All N SELECTs go in **one unit** (`Database.run`: one Sync, one round
  trip) rather than N sequential ``fetch_one`` calls: 1.6-5x the throughput at queries=20 (see `world_rows`).
* ``/fortunes`` — every ``fortune`` row plus ``(0, "Additional fortune added at request time.")``,
  sorted by message, as the TechEmpower HTML table; messages are escaped with `html.escape`
  (the ``<script>`` fortune arrives as text), ``Content-Type: text/html; charset=utf-8``.
* ``/updates?queries=N`` — N random rows (N as for ``/queries``) are read in one unit, each gets a
  new random ``randomNumber`` (never its old value), and all the UPDATEs are written in a second
  unit (one Sync: one transaction, all or nothing), in id order so that concurrent requests lock
  rows in the same order and cannot deadlock. The answer is the updated rows.
* ``/user/ID`` — ``{"id": 1, "name": "Ada Lovelace", "updatedAt": "2026-…+00:00"}`` with a strong
  ``ETag: "u<id>-<updated_at in epoch microseconds>"`` and ``Cache-Control: no-cache``. A request whose
  ``If-None-Match`` matches — ``*``, or any tag of the list under weak comparison, so ``W/"u1-…"``
  matches too (RFC 9110 §13.1.2) — gets **304 Not Modified** with no body and the same ``ETag``.
  Changing the row's ``updated_at`` changes the tag. **404** when there is no such user, **400**
  when ID is not a whole number.

Run it without a database: ``python -m examples.async_db_pg --port 8080 --workers 2`` starts a
throwaway PostgreSQL (`vanilla_async.pgcluster.TemporaryCluster`, from the machine's own
``initdb``/``pg_ctl``) in the supervisor before the workers fork, fills it (`schema.setup`), points
``DATABASE_URL`` at it for the workers, and stops and deletes it when the server exits. With a
database: ``DATABASE_URL='host=/run/postgresql dbname=bench' python -m examples.async_db_pg --port
8080`` uses it as it is, and runs `schema.setup` only when one of ``world``, ``fortune`` or ``users``
is missing (setup then drops and recreates all three). Then ``curl -i localhost:8080/queries?queries=5``.
"""

from __future__ import annotations

import html
import json
import random
import re
from datetime import datetime, timedelta, timezone
from operator import itemgetter
from typing import Any, Generator, Iterable, Sequence

from reactor import Reactor, Token
from vanilla_async import Request, ServerConfig, StaticResponse, query_param, respond
from vanilla_async.pg import Database, DatabaseBusy, DatabaseUnavailable, PgGen, QueryTimeout

from .schema import WORLD_ROWS

MAX_QUERIES = 500
ADDITIONAL_FORTUNE = "Additional fortune added at request time."

SELECT_WORLD = "select id, randomnumber from world where id = $1"
UPDATE_WORLD = "update world set randomnumber = $1 where id = $2"
SELECT_FORTUNES = "select id, message from fortune"
SELECT_USER = "select id, name, updated_at from users where id = $1"

JSON = b"application/json"
HTML = b"text/html; charset=utf-8"
RETRY_AFTER = (("Retry-After", "1"),)
_UNAVAILABLE = (DatabaseUnavailable, DatabaseBusy, QueryTimeout)

NOT_FOUND = StaticResponse(404, b"not found; try /db, /queries?queries=5, /fortunes, /updates?queries=5 or /user/1\n")
NOT_ALLOWED = StaticResponse(405, b"only GET and HEAD\n", headers=[("Allow", "GET, HEAD")])

_INT4 = 2**31
_DIGITS = re.compile(rb"[0-9]{1,10}")
_SIGNED = re.compile(rb"-?[0-9]+")
_ENTITY_TAG = re.compile(rb'(?:W/)?"([^"]*)"')
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
_random = random.random

#: What an endpoint computed: status, body, content type, extra headers.
Answer = tuple[int, bytes | str, bytes | None, Sequence[tuple[str, str]]]
#: An endpoint: a generator that yields reactor tokens (through the Database) and returns its Answer.
Endpoint = Generator[Token, Any, Answer]


# -- parsing ---------------------------------------------------------------------------------------


def query_count(query: bytes) -> int:
    """``queries=N`` clamped to 1..500; missing or not a whole number → 1 (TechEmpower's rules)."""
    raw = query_param(query, b"queries")
    if raw is None or _SIGNED.fullmatch(raw) is None:
        return 1
    if len(raw) > 6:  # beyond any clamp bound; no need to convert thousands of digits
        return 1 if raw.startswith(b"-") else MAX_QUERIES
    return min(max(int(raw), 1), MAX_QUERIES)


def random_id() -> int:
    return int(_random() * WORLD_ROWS) + 1


def etag_for(user_id: int, updated_at: datetime | None) -> str:
    """The strong entity tag ``"u<id>-<updated_at in epoch microseconds>"`` (exact integer arithmetic)."""
    if updated_at is None:
        return f'"u{user_id}-none"'
    if updated_at.tzinfo is None:  # a plain timestamp column in someone else's schema: take it as UTC
        updated_at = updated_at.replace(tzinfo=timezone.utc)
    return f'"u{user_id}-{(updated_at - _EPOCH) // _MICROSECOND}"'


def none_match(values: Iterable[bytes], etag: str) -> bool:
    """True when an ``If-None-Match`` field (its values, possibly several lines) matches ``etag``.

    RFC 9110 §13.1.2: ``*`` matches any current representation; otherwise any listed tag matches
    under *weak* comparison — the opaque tags are equal, whether or not either has ``W/``.
    """
    opaque = etag.encode("ascii")[1:-1]
    for value in values:
        if value.strip() == b"*":
            return True
        for match in _ENTITY_TAG.finditer(value):
            if match.group(1) == opaque:
                return True
    return False


# -- the endpoints: generators that return an Answer -------------------------------------------------
def world_row(db: Database) -> Endpoint:
    row = yield from db.fetch_one(SELECT_WORLD, random_id())
    assert row is not None, "the world table has a row for every id in 1..10000"
    return 200, json.dumps({"id": row[0], "randomNumber": row[1]}), JSON, ()


def world_rows(db: Database, count: int) -> Endpoint:
    # One unit, N statements, one Sync: a single round trip to the server, however large N is.
    # Kept over N sequential fetch_one calls (N units, N round trips) after measuring both: one
    # worker pinned to one CPU, wrk -t1 pinned to the other, PostgreSQL 15 on the same 2-CPU VM,
    # 3 s runs, two rounds, /queries?queries=20: at 64 connections 6,470 and 8,520 req/s vs 4,040
    # and 3,790 (avg latency 7.5-9.8 ms vs 16-17 ms); at 1 connection 3,030-3,470 vs 600-690 req/s
    # (0.38 ms vs 1.5-1.7 ms). At queries=1 both are the same path (31-35k req/s either way).
    results = yield from db.run([(SELECT_WORLD, (random_id(),)) for _ in range(count)])
    return 200, json.dumps([{"id": r.rows[0][0], "randomNumber": r.rows[0][1]} for r in results]), JSON, ()


def fortunes(db: Database) -> Endpoint:
    rows: list[tuple[int, str]] = yield from db.fetch(SELECT_FORTUNES)
    rows.append((0, ADDITIONAL_FORTUNE))
    rows.sort(key=itemgetter(1))
    escape = html.escape
    body = "".join([
        "<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table><tr><th>id</th><th>message</th></tr>",
        *[f"<tr><td>{fid}</td><td>{escape(message)}</td></tr>" for fid, message in rows],
        "</table></body></html>",
    ])
    return 200, body, HTML, ()


def updates(db: Database, count: int) -> Endpoint:
    ids = [random_id() for _ in range(count)]
    read = yield from db.run([(SELECT_WORLD, (i,)) for i in ids])
    new: dict[int, int] = {}  # one new value per distinct id, so the answer agrees with the table
    for result in read:
        wid, old = result.rows[0]
        if wid not in new:
            value = random_id()
            while value == old:
                value = random_id()
            new[wid] = value
    # One unit = one transaction. Rows are locked in id order: two concurrent /updates cannot deadlock.
    yield from db.run([(UPDATE_WORLD, (value, wid)) for wid, value in sorted(new.items())])
    return 200, json.dumps([{"id": i, "randomNumber": new[i]} for i in ids]), JSON, ()


def user(db: Database, user_id: int, if_none_match: list[bytes]) -> Endpoint:
    row = yield from db.fetch_one(SELECT_USER, user_id)
    if row is None:
        return 404, f"no user {user_id}\n", b"text/plain; charset=utf-8", ()
    uid, name, updated_at = row
    etag = etag_for(uid, updated_at)
    headers = (("ETag", etag), ("Cache-Control", "no-cache"))
    if if_none_match and none_match(if_none_match, etag):
        return 304, b"", None, headers
    stamp = updated_at.isoformat() if updated_at is not None else None
    return 200, json.dumps({"id": uid, "name": name, "updatedAt": stamp}), JSON, headers


def answer(out: bytearray, work: Endpoint, head: bool) -> Generator[Token, Any, None]:
    """Run an endpoint; answer what it returns, or 503 + ``Retry-After: 1`` when the database is out."""
    try:
        status, body, content_type, headers = yield from work
    except _UNAVAILABLE as exc:
        respond(out, 503, f"database unavailable: {exc}\n", headers=RETRY_AFTER, head=head)
        return
    respond(out, status, body, content_type=content_type, headers=headers, head=head)


# -- the handler and the config --------------------------------------------------------------------
def handler(req: Request, out: bytearray) -> Generator[Token, Any, None] | None:
    method = req.method
    if method != b"GET" and method != b"HEAD":
        NOT_ALLOWED.append_to(out)
        return None
    head = method == b"HEAD"
    path = req.path
    db: Database = req.state
    if path == b"/db":
        return answer(out, world_row(db), head)
    if path == b"/queries":
        return answer(out, world_rows(db, query_count(req.query)), head)
    if path == b"/fortunes":
        return answer(out, fortunes(db), head)
    if path == b"/updates":
        return answer(out, updates(db, query_count(req.query)), head)
    if path.startswith(b"/user/"):
        raw = path[6:]
        if _DIGITS.fullmatch(raw) is None:
            if _SIGNED.fullmatch(raw) is not None:  # a whole number, but no int4 id: nobody has it
                respond(out, 404, f"no user {raw.decode('ascii')[:40]}\n", head=head)
                return None
            respond(out, 400, "the user id must be a whole number: /user/1\n", head=head)
            return None
        user_id = int(raw)
        if user_id >= _INT4:
            respond(out, 404, f"no user {user_id}\n", head=head)
            return None
        return answer(out, user(db, user_id, req.header_values(b"if-none-match")), head)
    NOT_FOUND.append_to(out)
    return None


def make_state(dsn: str | None = None) -> Database:
    """The worker's connection (after the fork): ``dsn``, else ``$DATABASE_URL``."""
    return Database(dsn)


def on_worker_start(db: Database, reactor: Reactor) -> PgGen:
    return db.pump(reactor)  # with the reactor: one flush per loop turn for every request started in it


config = ServerConfig(handler=handler, port=8080, make_state=make_state, on_worker_start=on_worker_start)
