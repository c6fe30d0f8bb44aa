"""examples.logging — an access-log middleware and structured JSON logs, through the standard
`logging` module only.

``GET /``             200 ``hello``
``GET /slow``         a generator handler parked 20 ms (logged when it really ends)
``GET /items/:id``    200 JSON / 404
``GET /boom``         the handler raises: the server answers 500 and logs the traceback — as JSON

**Access log.** `access_logged` wraps the router. For a sync handler it reads the status from the
bytes the handler appended (`vanilla_async.streaming.status_at`); for a generator handler it
relays the generator (`vanilla_async.streaming.relay`) and logs in its ``finally``, so a request
whose client left is logged too (``"outcome": "closed"``). One record per request on the
``examples.logging.access`` logger, with structured fields in ``extra={"http": {...}}``: method,
path, status, bytes, duration_ms, worker pid, client address.

**JSON lines.** `JsonFormatter` turns every record — the server's own (``vanilla_async.*``), the
access log, tracebacks — into one JSON object per line: ``ts`` (RFC 3339, UTC), ``level``,
``logger``, ``msg``, the ``http`` fields when present, and ``exc`` with the formatted traceback.
`configure` installs it on the root logger before the CLI's ``basicConfig`` (which then does
nothing), so a log shipper reads stderr line by line.

Run: ``python -m examples.logging --port 8080 --workers 2``, then ``curl localhost:8080/slow``.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
import sys
import time
from typing import Any, Generator, TextIO

from vanilla_async import Request, ServerConfig, respond, sleep
from vanilla_async.routing import Params, Router
from vanilla_async.streaming import measured

__all__ = ("JsonFormatter", "access_logged", "config", "configure", "router")

access_log = logging.getLogger("examples.logging.access")
app_log = logging.getLogger("examples.logging.app")


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ``extra={"http": {...}}`` fields are kept as an object."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": datetime.datetime.fromtimestamp(record.created, datetime.timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
            "pid": record.process,
        }
        http = getattr(record, "http", None)
        if isinstance(http, dict):
            doc["http"] = http
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def configure(stream: TextIO = sys.stderr, level: int = logging.INFO) -> logging.Handler:
    """Send every log record to ``stream`` as JSON lines (call before the CLI configures logging)."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(level)
    return handler


def _client(req: Request) -> str:
    peer = req.peer()
    return f"{peer[0]}:{peer[1]}" if peer else "-"


def _log(req: Request, status: int, size: int, started: float, outcome: str) -> None:
    fields = {"method": req.method.decode("latin-1"), "path": req.path.decode("latin-1"), "status": status,
              "bytes": size, "duration_ms": round((time.perf_counter() - started) * 1000, 3), "outcome": outcome,
              "worker": os.getpid(), "client": _client(req)}
    access_log.info("%s %s %s", fields["method"], fields["path"], status or "-", extra={"http": fields})


def access_logged(handler: Any) -> Any:
    """Wrap a handler (a `Router` here): one access-log record per request, sync or generator
    (`vanilla_async.streaming.measured`: a generator is logged when it ends, however it ends)."""
    return measured(handler, lambda req, status, size, outcome, started: _log(req, status, size, started, outcome))


router = Router()


@router.get("/")
def hello(req: Request, out: bytearray) -> None:
    respond(out, 200, b"hello\n")


@router.get("/slow")
def slow(req: Request, out: bytearray) -> Generator[Any, Any, None]:
    yield sleep(0.02)
    respond(out, 200, b"slow\n")


@router.get("/items/:id")
def item(req: Request, out: bytearray, params: Params) -> None:
    if params["id"] != "1":
        app_log.warning("unknown item requested", extra={"http": {"item": params["id"]}})
        respond(out, 404, b'{"error": "no such item"}', content_type=b"application/json")
        return
    respond(out, 200, b'{"id": 1}', content_type=b"application/json")


@router.get("/boom")
def boom(req: Request, out: bytearray) -> None:
    raise RuntimeError("boom: a bug in a handler")


config = ServerConfig(handler=access_logged(router), port=8080)
