import os
import sys

import psycopg

from vanilla_async.cli import run_app

from . import config, ensure_schema

PROG = "python -m examples.database"
if "-h" not in sys.argv and "--help" not in sys.argv:
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        print(f"{PROG}: set DATABASE_URL (e.g. postgresql:///mydb); examples.async_db_pg starts its own cluster",
              file=sys.stderr)
        sys.exit(2)
    try:
        ensure_schema(dsn)  # once, before the workers fork
    except psycopg.Error as exc:
        print(f"{PROG}: cannot prepare the database at $DATABASE_URL: {exc}", file=sys.stderr)
        sys.exit(1)
sys.exit(run_app(config, prog=PROG))
