"""``python -m examples.hexagonal [--port P] [--workers N] ...``.

With ``DATABASE_URL`` set, the ``todos`` table is created (if missing) here, once, before the
workers fork. Without it the todos live in memory, in each worker: more than one worker then
means as many separate stores, so the example warns.
"""

from __future__ import annotations

import os
import sys

import psycopg

from vanilla_async.cli import run_app

from . import config
from .postgres import ensure_schema

PROG = "python -m examples.hexagonal"


def main() -> int:
    args = sys.argv[1:]
    dsn = os.environ.get("DATABASE_URL")
    if dsn and "-h" not in args and "--help" not in args:
        try:
            ensure_schema(dsn)
        except psycopg.Error as exc:
            print(f"{PROG}: cannot prepare the todos table at $DATABASE_URL: {exc}", file=sys.stderr)
            return 1
    elif not dsn and any(arg.startswith("--workers") for arg in args):
        print(f"{PROG}: warning: without DATABASE_URL every worker keeps its own todos in memory", file=sys.stderr)
    return run_app(config, args, prog=PROG)


sys.exit(main())
