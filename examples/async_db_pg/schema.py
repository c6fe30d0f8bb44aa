"""The example's tables, made with blocking psycopg once at startup (never from a handler).

`setup(dsn)` drops and recreates all three tables, so calling it twice gives the same state:

* ``world(id int primary key, randomnumber int not null)``: 10,000 rows, ``randomnumber`` random
  in 1..10000 (the TechEmpower "World" table).
* ``fortune(id int primary key, message text not null)``: the 12 classic TechEmpower fortunes,
  ``<script>`` and Japanese ones included.
* ``users(id int primary key, name text, updated_at timestamptz not null)``: a few rows for
  ``/user/ID``; ``updated_at`` is the version its ``ETag`` is derived from.

`ensure_schema(dsn)` runs `setup` only when one of the tables is missing (what
``python -m examples.async_db_pg`` does with ``DATABASE_URL`` set, so an existing database keeps its data).
"""

from __future__ import annotations

import psycopg

WORLD_ROWS = 10_000
TABLES = ("world", "fortune", "users")

#: The TechEmpower fortunes, verbatim (https://github.com/TechEmpower/FrameworkBenchmarks, "Fortunes").
FORTUNES: tuple[tuple[int, str], ...] = (
    (1, "fortune: No such file or directory"),
    (2, "A computer scientist is someone who fixes things that aren't broken."),
    (3, "After enough decimal places, nobody gives a damn."),
    (4, "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1"),
    (5, "A computer program does what you tell it to do, not what you want it to do."),
    (6, "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen"),
    (7, "Any program that runs right is obsolete."),
    (8, "A list is only as strong as its weakest link. — Donald Knuth"),
    (9, "Feature: A bug with seniority."),
    (10, "Computers make very fast, very accurate mistakes."),
    (11, '<script>alert("This should not be displayed in a browser alert box.");</script>'),
    (12, "フレームワークのベンチマーク"),
)

USERS: tuple[tuple[int, str], ...] = (
    (1, "Ada Lovelace"),
    (2, "Alan Turing"),
    (3, "Grace Hopper"),
    (4, "Kurt Gödel"),
    (5, "Barbara Liskov"),
)


def setup(dsn: str) -> None:
    """(Re)create ``world``, ``fortune`` and ``users`` with their rows, in one transaction."""
    with psycopg.connect(dsn) as conn:  # the with block commits on success, rolls back on error
        conn.execute("drop table if exists world, fortune, users")
        conn.execute("create table world(id int primary key, randomnumber int not null)")
        conn.execute(
            "insert into world(id, randomnumber)"
            " select i, 1 + floor(random() * %s)::int from generate_series(1, %s) i",
            (WORLD_ROWS, WORLD_ROWS),
        )
        conn.execute("create table fortune(id int primary key, message text not null)")
        with conn.cursor() as cur:
            cur.executemany("insert into fortune(id, message) values (%s, %s)", FORTUNES)
            conn.execute("create table users(id int primary key, name text, updated_at timestamptz not null default now())")
            cur.executemany("insert into users(id, name) values (%s, %s)", USERS)
        conn.execute("analyze world, fortune, users")  # plans from real statistics from the first query


def missing_tables(dsn: str) -> list[str]:
    """The example's tables that ``dsn``'s database lacks (looked up on its search_path)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select " + ", ".join(f"to_regclass('{t}')" for t in TABLES)).fetchone()
    assert row is not None
    return [table for table, found in zip(TABLES, row) if found is None]


def ensure_schema(dsn: str) -> bool:
    """Run `setup` when any of the tables is missing (it then recreates all three); True if it did."""
    if not missing_tables(dsn):
        return False
    setup(dsn)
    return True
