"""examples.hexagonal: the same HTTP tests against both adapters, plus the domain on its own.

The Postgres runs get a throwaway cluster for this module (tests/conftest.py's fixtures are not
visible from examples/): skipped without PostgreSQL's server programs, a failure under ``CI=true``.
"""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest

from examples.hexagonal import build_config
from examples.hexagonal.domain import (
    MAX_TITLE,
    InvalidTodo,
    NeedsReactor,
    Step,
    StorageUnavailable,
    Todo,
    TodoNotFound,
    TodoRepository,
    TodoService,
    run_now,
)
from examples.hexagonal.memory import InMemoryTodoRepository
from examples.hexagonal.postgres import PostgresTodoRepository, ensure_schema
from examples.hexagonal.web import App
from vanilla_async import sleep
from vanilla_async.pg import Database
from vanilla_async.pgcluster import TemporaryCluster
from vanilla_async.testing import Client, Response, ServerProcess, TestServer, require_postgres, serve

ROOT = Path(__file__).resolve().parents[2]

# The port is satisfied structurally by both adapters (checked by mypy).
_ports: tuple[type[TodoRepository], ...] = (InMemoryTodoRepository, PostgresTodoRepository)


@pytest.fixture(scope="module")
def cluster() -> Iterator[TemporaryCluster]:
    require_postgres()
    with TemporaryCluster() as c:
        ensure_schema(c.dsn)
        yield c


@pytest.fixture(params=["memory", "postgres"])
def server(request: pytest.FixtureRequest) -> Iterator[TestServer]:
    """A server on the in-memory adapter, or on Postgres with an emptied table (ids start at 1)."""
    if request.param == "memory":
        config = build_config({})
        assert config.workers == 1
    else:
        cluster: TemporaryCluster = request.getfixturevalue("cluster")
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("truncate todos restart identity")
        config = build_config({"DATABASE_URL": cluster.dsn})
    with serve(config) as s:
        yield s


def call(server: TestServer, method: str, target: str, body: Any = None, *, raw: bytes | None = None,
         content_type: bytes = b"application/json") -> Response:
    payload = raw if raw is not None else (b"" if body is None else json.dumps(body).encode())
    head = b"%s %s HTTP/1.1\r\nHost: t\r\n" % (method.encode(), target.encode())
    if payload or method in ("POST", "PATCH"):
        head += b"Content-Type: " + content_type + b"\r\nContent-Length: %d\r\n" % len(payload)
    return server.request(head + b"\r\n" + payload)


def ok(r: Response, status: int = 200) -> Any:
    assert r.status == status, (r.status, r.body)
    assert r.header("content-type") == b"application/json"
    return json.loads(r.body)


def failed(r: Response, status: int) -> str:
    assert r.status == status, (r.status, r.body)
    message = json.loads(r.body)["error"]
    assert isinstance(message, str) and message
    return message


# -- the same HTTP tests on both adapters -----------------------------------------------------------------
def test_create_read_update_delete(server: TestServer) -> None:
    assert ok(call(server, "GET", "/todos")) == []
    r = call(server, "POST", "/todos", {"title": "  buy milk  "})
    assert ok(r, 201) == {"id": 1, "title": "buy milk", "done": False}
    assert r.header("location") == b"/todos/1"
    assert ok(call(server, "POST", "/todos", {"title": "Grüße 👋 an <alle>"}), 201)["id"] == 2
    assert ok(call(server, "GET", "/todos/2")) == {"id": 2, "title": "Grüße 👋 an <alle>", "done": False}
    assert ok(call(server, "PATCH", "/todos/1", {"done": True})) == {"id": 1, "title": "buy milk", "done": True}
    assert ok(call(server, "GET", "/todos")) == [
        {"id": 1, "title": "buy milk", "done": True}, {"id": 2, "title": "Grüße 👋 an <alle>", "done": False}]
    assert ok(call(server, "PATCH", "/todos/1", {"done": False}))["done"] is False
    r = call(server, "DELETE", "/todos/1")
    assert r.status == 204 and r.body == b"" and r.header("content-length") is None
    assert failed(call(server, "GET", "/todos/1"), 404) == "no todo 1"
    assert failed(call(server, "DELETE", "/todos/1"), 404) == "no todo 1"
    assert [t["id"] for t in ok(call(server, "GET", "/todos"))] == [2]
    assert ok(call(server, "POST", "/todos", {"title": "next"}), 201)["id"] == 3  # ids are never reused


@pytest.mark.parametrize("title, reason", [
    ("", "title must not be empty"),
    ("   \t ", "must not be empty"),
    ("x" * (MAX_TITLE + 1), "at most 200 characters, got 201"),
    (42, "title must be a string, got int"),
    (None, "title must be a string, got NoneType"),
    (["a"], "got list"),
    ("line\nbreak", "control characters"),
    ("nul\x00", "control characters"),
])
def test_invalid_titles_are_422(server: TestServer, title: object, reason: str) -> None:
    assert reason in failed(call(server, "POST", "/todos", {"title": title}), 422)
    assert ok(call(server, "GET", "/todos")) == []  # nothing was stored


def test_a_title_at_the_maximum_is_accepted(server: TestServer) -> None:
    assert ok(call(server, "POST", "/todos", {"title": "é" * MAX_TITLE}), 201)["title"] == "é" * MAX_TITLE


@pytest.mark.parametrize("raw, content_type, status, reason", [
    (b"{not json", b"application/json", 400, "not valid JSON"),
    (b"\xff\xfe\xfa", b"application/json", 400, "not valid JSON"),
    (b"[" * 5000 + b"]" * 5000, b"application/json", 400, "not valid JSON"),  # too deep: RecursionError
    (b'["a list"]', b"application/json", 400, "must be a JSON object"),
    (b'{"title": "x"}', b"text/plain", 415, "Content-Type: application/json"),
    (b'{"title": "x"}', b"application/json; charset=utf-8", 201, ""),
])
def test_malformed_bodies(server: TestServer, raw: bytes, content_type: bytes, status: int, reason: str) -> None:
    r = call(server, "POST", "/todos", raw=raw, content_type=content_type)
    if status == 201:
        ok(r, 201)
    else:
        assert reason in failed(r, status)


def test_patch_needs_a_boolean_done(server: TestServer) -> None:
    ok(call(server, "POST", "/todos", {"title": "a"}), 201)
    for body in ({}, {"done": 1}, {"done": "true"}, {"done": None}):
        assert "done" in failed(call(server, "PATCH", "/todos/1", body), 400)
    assert failed(call(server, "PATCH", "/todos/99", {"done": True}), 404) == "no todo 99"


@pytest.mark.parametrize("target", ["/todos/0", "/todos/-1", "/todos/abc", "/todos/01", "/todos/1.5", "/todos/",
                                    "/todos/" + "9" * 19, "/todos/1/x", "/nothing", "/"])
def test_paths_that_name_no_todo_are_404(server: TestServer, target: str) -> None:
    failed(call(server, "GET", target), 404)


def test_the_largest_id_is_looked_up_not_refused(server: TestServer) -> None:
    assert failed(call(server, "GET", "/todos/" + "9" * 18), 404) == "no todo " + "9" * 18


def test_other_methods_are_405_with_allow(server: TestServer) -> None:
    r = call(server, "PUT", "/todos", {"title": "x"})
    assert failed(r, 405) and r.header("allow") == b"GET, POST"
    r = call(server, "POST", "/todos/1", {"title": "x"})
    assert failed(r, 405) and r.header("allow") == b"GET, PATCH, DELETE"


def test_a_body_over_16_kib_is_413_from_the_server(server: TestServer) -> None:
    r = call(server, "POST", "/todos", {"title": "x" * 20_000})
    assert r.status == 413 and r.closes


def test_100_concurrent_creates_get_distinct_ids(server: TestServer) -> None:
    clients = [server.connect() for _ in range(100)]
    for i, client in enumerate(clients):
        body = json.dumps({"title": f"todo {i}"}).encode()
        client.send(b"POST /todos HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                    b"Content-Length: %d\r\n\r\n" % len(body) + body)
    created = [ok(client.read_response(), 201) for client in clients]
    for client in clients:
        client.close()
    assert sorted(t["id"] for t in created) == list(range(1, 101))
    assert all(t["title"] == f"todo {i}" for i, t in enumerate(created))
    assert ok(call(server, "GET", "/todos")) == sorted(created, key=lambda t: t["id"])


def test_pipelined_requests_are_answered_in_order(server: TestServer) -> None:
    body = b'{"title": "p"}'
    post = b"POST /todos HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 14\r\n\r\n" + body
    responses = server.pipeline([post, post, b"GET /todos/2 HTTP/1.1\r\nHost: t\r\n\r\n",
                                 b"DELETE /todos/1 HTTP/1.1\r\nHost: t\r\n\r\n", b"GET /todos HTTP/1.1\r\nHost: t\r\n\r\n"])
    assert [r.status for r in responses] == [201, 201, 200, 204, 200]
    assert json.loads(responses[4].body) == [{"id": 2, "title": "p", "done": False}]


# -- Postgres only ------------------------------------------------------------------------------------------
def close_database(app: App) -> None:
    assert app.database is not None
    app.database.close()


def test_postgres_without_its_pump_is_503_not_a_crash(cluster: TemporaryCluster) -> None:
    """The adapter turns the connection's failure into StorageUnavailable, the web adapter into 503."""
    config = build_config({"DATABASE_URL": cluster.dsn}).with_(
        on_worker_start=None,  # nobody reads the connection: every query fails at once
        on_worker_stop=close_database,  # (the pump would have closed it on its way out)
    )
    with serve(config) as server:
        r = call(server, "GET", "/todos")
        assert "todo database is unavailable" in failed(r, 503) and r.header("retry-after") == b"1"
        assert "pump() is not running" in failed(r, 503)


def test_postgres_with_two_worker_processes_shares_the_todos(cluster: TemporaryCluster) -> None:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("drop table todos")  # python -m examples.hexagonal creates it again
    env = {"DATABASE_URL": cluster.dsn}
    with ServerProcess("-m", "examples.hexagonal", "--port", "0", "--workers", "2", env=env, cwd=ROOT) as proc:
        address = ("127.0.0.1", proc.port())
        with Client(address) as client:
            client.send(b'POST /todos HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n'
                        b'Content-Length: 19\r\n\r\n{"title": "shared"}')
            assert ok(client.read_response(), 201)["id"] == 1
        for _ in range(8):  # new connections land on both workers: every one sees the same table
            with Client(address) as client:
                client.send(b"GET /todos HTTP/1.1\r\nHost: t\r\n\r\n")
                assert ok(client.read_response()) == [{"id": 1, "title": "shared", "done": False}]
        assert proc.stop(signal.SIGTERM) == 0


def test_in_memory_as_a_module() -> None:
    with ServerProcess("-m", "examples.hexagonal", "--port", "0", drop_env=["DATABASE_URL"], cwd=ROOT) as proc:
        address = ("127.0.0.1", proc.port())
        assert "workers=1" in proc.output
        with Client(address) as client:
            client.send(b'POST /todos HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n'
                        b'Content-Length: 17\r\n\r\n{"title": "kept"}')
            assert ok(client.read_response(), 201)["id"] == 1
        with Client(address) as client:
            client.send(b"GET /todos/1 HTTP/1.1\r\nHost: t\r\n\r\n")
            assert ok(client.read_response())["title"] == "kept"
        assert proc.stop(signal.SIGTERM) == 0


# -- the domain, without a server ---------------------------------------------------------------------------
def test_the_service_runs_synchronously_over_the_in_memory_adapter() -> None:
    service = TodoService(InMemoryTodoRepository())
    assert run_now(service.create("a")) == Todo(1, "a")
    assert run_now(service.mark(1, True)) == Todo(1, "a", True)
    assert run_now(service.list_todos()) == [Todo(1, "a", True)]
    run_now(service.delete(1))
    with pytest.raises(TodoNotFound, match="no todo 1"):
        run_now(service.get(1))
    with pytest.raises(InvalidTodo, match="must not be empty"):
        run_now(service.create(" "))


def test_the_in_memory_adapter_never_yields() -> None:
    repo = InMemoryTodoRepository()
    for step in (repo.add("x"), repo.get(1), repo.list_todos(10), repo.set_done(1, True), repo.delete(1)):
        with pytest.raises(StopIteration):
            next(step)  # done on its first step: no token, no reactor round trip


def test_run_now_refuses_a_step_that_waits() -> None:
    closed = []

    def waits() -> Step[int]:
        try:
            yield sleep(0.1)
        finally:
            closed.append(True)
        return 1

    with pytest.raises(NeedsReactor, match="Return it from a generator handler"):
        run_now(waits())
    assert closed == [True]  # the refused step was closed, not left suspended


def test_the_postgres_adapter_through_the_service_on_a_reactor(cluster: TemporaryCluster) -> None:
    """The same service over Postgres: its steps really wait (here driven by a server's worker)."""
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("truncate todos restart identity")
    seen: list[object] = []

    def handler(req: Any, out: bytearray) -> Step[None]:
        service: TodoService = req.state.service
        todo = yield from service.create("from a step")
        seen.append(todo)
        try:
            yield from service.get(todo.id + 1)
        except TodoNotFound as exc:
            seen.append(str(exc))
        out += b"HTTP/1.1 204 No Content\r\n\r\n"

    config = build_config({"DATABASE_URL": cluster.dsn}).with_(handler=handler)
    with serve(config) as server:
        assert server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status == 204
    assert seen == [Todo(1, "from a step"), "no todo 2"]
    # Without a reactor (no pump reads the connection) the adapter cannot answer: a domain error, not a hang.
    service = TodoService(PostgresTodoRepository(Database(cluster.dsn, connect_now=False)))
    with pytest.raises(StorageUnavailable, match="pump"):
        run_now(service.list_todos())
