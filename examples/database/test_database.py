"""examples.database against a real PostgreSQL (the ``pg_dsn`` fixture): CRUD through blocking
connections in the offload pool, the loop free meanwhile, 503 when the pool is saturated or the
database fails, and the module as a prefork process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import threading
from typing import Any

from examples._smoke import ROOT
from examples.database import State, ensure_schema, make_config
from vanilla_async.testing import ServerProcess, TestServer, serve


def req(method: str, target: str, doc: Any = None) -> bytes:
    body = b"" if doc is None else json.dumps(doc).encode()
    extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if doc is not None else ""
    return f"{method} {target} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode() + body


def call(server: TestServer, raw: bytes) -> tuple[int, Any]:
    r = server.request(raw)
    return r.status, json.loads(r.body) if r.body.startswith((b"{", b"[")) else r.body


def test_crud_through_the_blocking_pool(pg_dsn: str) -> None:
    ensure_schema(pg_dsn)
    with serve(make_config(pg_dsn, threads=2)) as server:
        status, doc = call(server, req("POST", "/notes", {"text": "hello"}))
        assert status == 201
        assert call(server, req("GET", f"/notes/{doc['id']}")) == (200, {"id": doc["id"], "text": "hello"})
        status, rows = call(server, req("GET", "/notes"))
        assert status == 200 and rows[0]["text"] == "hello"
        assert call(server, req("GET", "/notes/999999999"))[0] == 404
        assert call(server, req("POST", "/notes", {"text": ""}))[0] == 400
        assert server.worker is not None
        state: State = server.worker.state
        state.pool.close()


def test_the_loop_serves_while_a_query_blocks_and_a_full_pool_sheds(pg_dsn: str) -> None:
    ensure_schema(pg_dsn)
    with serve(make_config(pg_dsn, threads=1, max_queued=0)) as server:
        assert server.worker is not None
        state: State = server.worker.state
        entered, gate = threading.Event(), threading.Event()
        original = state.pool.query

        def gated(sql: str, params: Any = ()) -> Any:  # a query that blocks until the test lets it go
            entered.set()
            gate.wait(5)
            return original(sql, params)

        state.pool.query = gated  # type: ignore[method-assign]
        try:
            blocked = server.connect()
            blocked.send(req("GET", "/notes"))
            assert entered.wait(5), "the query never started"
            assert server.request(req("GET", "/healthz")).body == b"ok\n"  # the loop is free
            status, doc = call(server, req("GET", "/notes"))  # the only thread is busy, no queue
            assert status == 503 and doc["error"].startswith("busy")
            gate.set()
            assert blocked.read_response().status == 200
        finally:
            gate.set()
            state.pool.close()


def test_a_database_failure_is_503(pg_dsn: str) -> None:
    with serve(make_config(pg_dsn + " dbname=no_such_database_here", threads=1)) as server:
        status, doc = call(server, req("GET", "/notes"))
        assert status == 503 and "unavailable" in doc["error"]


def test_runs_as_a_module(pg_dsn: str) -> None:
    env = {**os.environ, "DATABASE_URL": pg_dsn}
    with ServerProcess("-m", "examples.database", "--port", "0", "--workers", "2", cwd=ROOT, env=env) as proc:
        conn = http.client.HTTPConnection("127.0.0.1", proc.port(), timeout=10)
        conn.request("POST", "/notes", body=b'{"text": "from a process"}', headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        assert r.status == 201 and json.loads(r.read())["text"] == "from a process"
        conn.close()
        assert proc.stop(signal.SIGTERM) == 0
