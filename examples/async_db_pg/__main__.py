"""``python -m examples.async_db_pg [--port P] [--workers N] ...``: serve the example.

With ``DATABASE_URL`` set: use that database, creating the tables only when one is missing
(`schema.ensure_schema`). Without it: start a `TemporaryCluster` here, in the supervisor, before
any worker forks; fill it (`schema.setup`); export its DSN as ``DATABASE_URL`` for the workers; and
stop it (and delete its directory) when the server exits, whatever the reason. The cluster's own
``atexit`` hook and watchdog cover the exits a ``finally`` cannot.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType
from typing import NoReturn, Sequence

import psycopg

from vanilla_async.cli import run_app
from vanilla_async.pgcluster import PgClusterError, TemporaryCluster

from . import config
from .schema import ensure_schema, setup

PROG = "python -m examples.async_db_pg"


def _say(message: str) -> None:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)  # logging is configured later, by run_app


def _exit_on_signal(signum: int, frame: FrameType | None) -> NoReturn:
    # SIGTERM while the cluster starts: unwind through the finally that stops it. (Once run_app
    # serves, the supervisor blocks SIGTERM and takes it with sigtimedwait; this never runs then.)
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if "-h" in args or "--help" in args:
        return run_app(config, args, prog=PROG)
    dsn = os.environ.get("DATABASE_URL")
    if dsn:
        try:
            created = ensure_schema(dsn)
        except psycopg.Error as exc:
            _say(f"cannot prepare the database at $DATABASE_URL: {exc}")
            return 1
        if created:
            _say("created the tables world, fortune and users in $DATABASE_URL")
        return run_app(config, args, prog=PROG)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    cluster = TemporaryCluster()
    try:
        try:
            cluster.start()
        except PgClusterError as exc:
            _say(f"no DATABASE_URL, and no embedded PostgreSQL either: {exc}")
            return 1
        os.environ["DATABASE_URL"] = cluster.dsn  # inherited by the workers at the fork
        _say(f"no DATABASE_URL: started an embedded PostgreSQL in {cluster.directory} (postmaster pid {cluster.pid})")
        setup(cluster.dsn)
        return run_app(config, args, prog=PROG)
    finally:
        if cluster.running:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # let the stop finish; we are exiting anyway
            cluster.stop()
            _say("embedded PostgreSQL stopped and removed")


if __name__ == "__main__":
    sys.exit(main())
