"""The PostgreSQL adapter of the `TodoRepository` port, over `vanilla_async.pg.Database`.

Each method queues its statement on the worker's one pipelined connection and parks the request
(``yield from db.fetch_one(...)``) until the row comes back; the worker serves everyone else
meanwhile. Parameters are always bound. The connection's own failures — down, reconnecting,
saturated, too slow, or its pump not running — are translated into the domain's
`StorageUnavailable`; an SQL error (a bug: the domain validated the input) propagates as it is.

`ensure_schema` creates the table with a short-lived blocking connection: run it once, before the
workers start (``python -m examples.hexagonal`` does), not in every worker.
"""

from __future__ import annotations

from typing import Any

import psycopg

from vanilla_async.pg import Database, DatabaseError

from .domain import Step, StorageUnavailable, Todo

SCHEMA = """
create table if not exists todos (
    id bigserial primary key,
    title text not null check (length(title) between 1 and 200),
    done boolean not null default false
)
"""
_COLUMNS = "id, title, done"
INSERT = f"insert into todos (title) values ($1) returning {_COLUMNS}"
SELECT_ONE = f"select {_COLUMNS} from todos where id = $1"
SELECT_ALL = f"select {_COLUMNS} from todos order by id limit $1"
UPDATE_DONE = f"update todos set done = $2 where id = $1 returning {_COLUMNS}"
DELETE = "delete from todos where id = $1"


def ensure_schema(dsn: str) -> None:
    """Create the ``todos`` table if it is missing (idempotent)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)


def _todo(row: tuple[Any, ...] | None) -> Todo | None:
    return None if row is None else Todo(int(row[0]), str(row[1]), bool(row[2]))


class PostgresTodoRepository:
    """`TodoRepository` on the worker's pipelined connection (``db.pump`` must run on the worker)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def add(self, title: str) -> Step[Todo]:
        todo = _todo((yield from self._fetch_one(INSERT, title)))
        assert todo is not None  # INSERT ... RETURNING always returns the row
        return todo

    def get(self, todo_id: int) -> Step[Todo | None]:
        return _todo((yield from self._fetch_one(SELECT_ONE, todo_id)))

    def list_todos(self, limit: int) -> Step[list[Todo]]:
        try:
            rows = yield from self.db.fetch(SELECT_ALL, limit)
        except DatabaseError as exc:
            raise StorageUnavailable(f"the todo database is unavailable: {exc}") from exc
        return [Todo(int(r[0]), str(r[1]), bool(r[2])) for r in rows]

    def set_done(self, todo_id: int, done: bool) -> Step[Todo | None]:
        return _todo((yield from self._fetch_one(UPDATE_DONE, todo_id, done)))

    def delete(self, todo_id: int) -> Step[bool]:
        try:
            count = yield from self.db.execute(DELETE, todo_id)
        except DatabaseError as exc:
            raise StorageUnavailable(f"the todo database is unavailable: {exc}") from exc
        return bool(count)

    def _fetch_one(self, sql: str, *params: Any) -> Step[tuple[Any, ...] | None]:
        try:
            row: tuple[Any, ...] | None = yield from self.db.fetch_one(sql, *params)
        except DatabaseError as exc:
            raise StorageUnavailable(f"the todo database is unavailable: {exc}") from exc
        return row
