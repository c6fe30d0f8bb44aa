"""examples.hexagonal — ports and adapters: one todo service, stored in memory or in PostgreSQL.

Layout (dependencies point inwards, towards the domain):

* `domain` — `Todo`, the use cases (`TodoService`), the repository **port** (`TodoRepository`, a
  ``typing.Protocol``) and the domain's errors. No HTTP, no SQL, no reactor.
* `memory` — adapter: `InMemoryTodoRepository`, a dict per worker process.
* `postgres` — adapter: `PostgresTodoRepository`, on the worker's pipelined
  `vanilla_async.pg.Database` connection.
* `web` — the HTTP adapter: routes, JSON, status codes; composes the app for each worker.

Every repository and service method is a generator returning its result (see `domain`), so the
same service runs synchronously over the in-memory adapter (the handler drives it with
`run_now` and returns ``None``) and parked on the reactor over Postgres (the handler returns the
generator). `build_config` picks the adapter: ``DATABASE_URL`` set → Postgres, else in-memory.

API (JSON in and out; errors are ``{"error": "..."}``):

* ``GET /todos`` — every todo in id order (at most 1000).
* ``POST /todos`` ``{"title": "buy milk"}`` — **201** with the todo and ``Location: /todos/ID``.
* ``GET /todos/ID`` — the todo. ``PATCH /todos/ID`` ``{"done": true}`` — the updated todo.
  ``DELETE /todos/ID`` — **204**.
* **404** for an unknown id, **422** for a title that is empty, blank, over 200 characters, not a
  string, or holds control characters; **400** for a body that is not a JSON object (or a
  ``done`` that is not a boolean); **415** without ``Content-Type: application/json``; **405**
  (with ``Allow``) for other methods; **413** for a body over 16 KiB; **503** (``Retry-After``)
  when the database is unavailable.

Run in memory (one worker: each worker would have its own store):
``python -m examples.hexagonal --port 8080``. On PostgreSQL (the table is created if missing):
``DATABASE_URL='host=/run/postgresql dbname=todo' python -m examples.hexagonal --port 8080 --workers 2``.
Then ``curl -si localhost:8080/todos -H 'Content-Type: application/json' -d '{"title": "milk"}'``.
"""

from __future__ import annotations

import functools
import os
from typing import Mapping

from vanilla_async import Limits, ServerConfig

from .web import handler, memory_app, postgres_app, start_pump

LIMITS = Limits(max_body_bytes=16 * 1024)


def build_config(environ: Mapping[str, str]) -> ServerConfig:
    """The server for ``environ``: Postgres when it has a ``DATABASE_URL``, else in memory (one worker)."""
    dsn = environ.get("DATABASE_URL")
    if dsn:
        return ServerConfig(handler=handler, port=8080, limits=LIMITS,
                            make_state=functools.partial(postgres_app, dsn), on_worker_start=start_pump)
    return ServerConfig(handler=handler, port=8080, limits=LIMITS, make_state=memory_app, workers=1)


config = build_config(os.environ)
