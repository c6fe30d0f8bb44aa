"""vanilla_async.pg against a real PostgreSQL (a throwaway cluster per test session)."""

from __future__ import annotations

import datetime
import decimal
import time
from typing import Any, Callable, Generator, Iterator

import psycopg
import pytest

from vanilla_async import Limits, Request, ServerConfig, respond, sleep
from vanilla_async.pg import Database, DatabaseBusy, DatabaseError, QueryTimeout
from vanilla_async.pgcluster import TemporaryCluster
from vanilla_async.testing import TestServer, serve

pytestmark = pytest.mark.usefixtures("each_backend")  # every server here runs on each backend

Gen = Generator[Any, Any, None]
Query = Callable[[Request, Database], Generator[Any, Any, bytes]]


@pytest.fixture
def world(pg_cluster: TemporaryCluster) -> str:
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as conn:
        conn.execute("drop table if exists world; create table world(id int primary key, n int not null)")
        conn.execute("insert into world select i, i * 10 from generate_series(1, 1000) i")
        conn.execute("drop table if exists notes; create table notes(id serial primary key, body text unique)")
    return pg_cluster.dsn


def db_server(dsn: str, query: Query, **db_options: Any) -> TestServer:
    """A server whose handler runs ``query(req, db)`` and answers its bytes (503 on DatabaseError)."""

    def handler(req: Request, out: bytearray) -> Gen:
        try:
            body = yield from query(req, req.state)
        except DatabaseError as exc:
            respond(out, 503, f"{type(exc).__name__}: {exc}")
            return
        except psycopg.Error as exc:
            respond(out, 500, f"{type(exc).__name__}")
            return
        respond(out, 200, body)

    config = ServerConfig(handler=handler, make_state=lambda: Database(dsn, **db_options),
                          on_worker_start=lambda db, reactor: db.pump(reactor), limits=Limits(max_connections=1000))
    return serve(config)


def get(path: bytes) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n"


def by_id(req: Request, db: Database) -> Generator[Any, Any, bytes]:
    row = yield from db.fetch_one("select id, n from world where id = $1", int(req.query or b"1"))
    return repr(row).encode()


def test_rows_are_decoded_and_parameters_bound(world: str) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        row = yield from db.fetch_one(
            "select $1::int, $2::text, $3::numeric, $4::bool, $5::date, null::int", 7, "it's; drop table world",
            decimal.Decimal("1.50"), True, datetime.date(2026, 11, 23))
        n = yield from db.execute("insert into notes(body) values ($1)", "x'); drop table world; --")
        stored = yield from db.fetch("select body from notes")
        return repr((row, n, stored)).encode()

    with db_server(world, query) as server:
        body = server.request(get(b"/")).body.decode()
    assert body == repr(((7, "it's; drop table world", decimal.Decimal("1.50"), True, datetime.date(2026, 11, 23), None),
                         1, [("x'); drop table world; --",)]))


def test_fifo_routing_under_200_concurrent_requests(world: str) -> None:
    with db_server(world, by_id) as server:
        clients = [server.connect() for _ in range(200)]
        for i, client in enumerate(clients, 1):
            client.send(get(b"/?%d" % i))
        assert [c.read_response().body for c in clients] == [repr((i, i * 10)).encode() for i in range(1, 201)]
        assert server.worker is not None and server.worker.state.in_flight == 0


def test_pipelined_requests_on_one_connection(world: str) -> None:
    with db_server(world, by_id) as server:
        responses = server.pipeline([get(b"/?%d" % i) for i in range(1, 51)])
    assert [r.body for r in responses] == [repr((i, i * 10)).encode() for i in range(1, 51)]


def test_an_sql_error_fails_only_its_own_request(world: str) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        if req.path == b"/bad":
            yield from db.fetch("select * from no_such_table where id = $1", 1)
        return (yield from by_id(req, db))

    with db_server(world, query) as server:
        clients = [server.connect() for _ in range(30)]
        for i, client in enumerate(clients, 1):
            client.send(get(b"/bad" if i % 3 == 0 else b"/?%d" % i))
        for i, client in enumerate(clients, 1):
            r = client.read_response()
            if i % 3 == 0:
                assert (r.status, r.body) == (500, b"UndefinedTable")
            else:
                assert (r.status, r.body) == (200, repr((i, i * 10)).encode())


def test_run_is_one_transaction(world: str) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        try:
            yield from db.run([("insert into notes(body) values ($1)", ["a"]), ("insert into notes(body) values ($1)", ["a"])])
        except psycopg.errors.UniqueViolation:
            pass
        count = yield from db.fetch_one("select count(*) from notes")
        results = yield from db.run([("update world set n = n + 1 where id <= $1", [3]), ("select sum(n) from world where id <= 3", [])])
        return repr((count, results[0].rowcount, results[1].rows)).encode()

    with db_server(world, query) as server:
        assert server.request(get(b"/")).body == b"((0,), 3, [(63,)])"  # the first unit rolled back whole


def test_a_client_that_leaves_mid_query_leaves_the_connection_healthy(world: str) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        if req.path == b"/slow":
            yield from db.fetch("select pg_sleep(0.3)")
        return (yield from by_id(req, db))

    with db_server(world, query) as server:
        leaving = server.connect()
        leaving.send(get(b"/slow"))
        time.sleep(0.05)
        leaving.close()  # its generator is closed; its result must still be read and dropped in order
        assert server.request(get(b"/?9")).body == b"(9, 90)"
        assert server.worker is not None and server.worker.state.in_flight == 0


def test_query_deadline(world: str) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        if req.path == b"/slow":
            yield from db.fetch("select pg_sleep(1)", timeout=0.2)
        return (yield from by_id(req, db))

    with db_server(world, query) as server:
        started = time.monotonic()
        r = server.request(get(b"/slow"))
        assert r.status == 503 and r.body.startswith(b"QueryTimeout") and time.monotonic() - started < 0.9
        assert server.request(get(b"/?4")).body == b"(4, 40)"  # the slow result was dropped in order


def test_shedding_beyond_the_in_flight_cap(world: str) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        yield from db.fetch("select pg_sleep(0.5)")  # the first frees its slot after 0.5 s (they run one by one)
        return b"ok"

    with db_server(world, query, max_in_flight=5) as server:
        # One request first: the connection's own setup (it counts as in flight while it runs) is
        # over before the twelve arrive, so exactly five of them fit.
        assert server.request(get(b"/")).status == 200
        clients = [server.connect() for _ in range(12)]
        for client in clients:
            client.send(get(b"/"))
        answers = sorted((r.status, r.body) for r in (c.read_response() for c in clients))
    statuses = [status for status, _ in answers]
    assert statuses.count(200) == 5 and statuses.count(503) == 7, answers  # (the 503s say why)


def test_terminated_backend_fails_waiters_with_503_then_reconnects(world: str, pg_cluster: TemporaryCluster) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        if req.path == b"/slow":
            yield from db.fetch("select pg_sleep(5)")
        return (yield from by_id(req, db))

    with db_server(world, query) as server:
        waiters = [server.connect() for _ in range(5)]
        for client in waiters:
            client.send(get(b"/slow"))
        time.sleep(0.2)
        pg_cluster.terminate_backends()
        assert [c.read_response().status for c in waiters] == [503] * 5
        deadline = time.monotonic() + 5
        while server.request(get(b"/?2")).status != 200 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.request(get(b"/?2")).body == b"(2, 20)"
        assert server.worker is not None and server.worker.state.connects == 2


def test_server_restart_mid_load_then_recovery(world: str, pg_cluster: TemporaryCluster) -> None:
    with db_server(world, by_id) as server:
        assert server.request(get(b"/?1")).status == 200
        pg_cluster.restart()
        statuses = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            status = server.request(get(b"/?3")).status
            statuses.append(status)
            if status == 200:
                break
            time.sleep(0.05)
        assert statuses[-1] == 200 and set(statuses) <= {200, 503}
        assert server.request(get(b"/?3")).body == b"(3, 30)"


def test_listen_notify_reaches_a_clientless_task(world: str) -> None:
    received: list[str] = []

    def on_worker_start(db: Database, reactor: Any) -> list[Iterator[Any]]:
        def listen() -> Gen:
            listener = db.listener("news")
            while True:
                payload = yield from listener.get()
                if payload is not None:
                    received.append(payload)

        return [db.pump(reactor), listen()]

    def handler(req: Request, out: bytearray) -> None:
        respond(out, 200, ",".join(received))

    config = ServerConfig(handler=handler, make_state=lambda: Database(world), on_worker_start=on_worker_start)
    with serve(config) as server:
        time.sleep(0.2)
        with psycopg.connect(world, autocommit=True) as conn:
            conn.execute("select pg_notify('news', 'one')")
            conn.execute("select pg_notify('news', 'two')")
        deadline = time.monotonic() + 3
        while len(received) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.request(get(b"/")).body == b"one,two"


def test_no_database_url_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DATABASE_URL", raising=False)
    with pytest.raises(DatabaseError, match="DATABASE_URL"):
        Database()


def test_db_calls_compose_with_other_tokens(world: str) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        yield sleep(0.01)
        a = yield from db.fetch_one("select n from world where id = $1", 1)
        yield sleep(0.01)
        b = yield from db.fetch_one("select n from world where id = $1", 2)
        return repr((a, b)).encode()

    with db_server(world, query) as server:
        assert server.request(get(b"/")).body == b"((10,), (20,))"


def test_shedding_error_type() -> None:
    assert issubclass(DatabaseBusy, DatabaseError) and issubclass(QueryTimeout, DatabaseError)


def test_a_missing_pump_is_a_clear_error_not_a_hang(world: str) -> None:
    def handler(req: Request, out: bytearray) -> Gen:
        try:
            yield from req.state.fetch("select 1")
        except DatabaseError as exc:
            respond(out, 503, str(exc))

    config = ServerConfig(handler=handler, make_state=lambda: Database(world))  # no on_worker_start: no pump
    with serve(config) as server:
        r = server.request(get(b"/"))
        assert r.status == 503 and b"return db.pump(reactor) from on_worker_start" in r.body
        assert server.worker is not None
        server.worker.state.close()



def test_without_the_reactor_every_request_flushes_on_its_own(world: str) -> None:
    config = ServerConfig(handler=lambda req, out: _one(req, out), make_state=lambda: Database(world),
                          on_worker_start=lambda db, reactor: db.pump())  # no reactor: the unbatched path

    with serve(config) as server:
        responses = server.pipeline([get(b"/?%d" % i) for i in range(1, 21)])
    assert [r.body for r in responses] == [repr((i, i * 10)).encode() for i in range(1, 21)]


def _one(req: Request, out: bytearray) -> Gen:
    body = yield from by_id(req, req.state)
    respond(out, 200, body)


def test_syncs_are_queued_without_a_flush_when_libpq_allows() -> None:
    import vanilla_async.pg as pg_module

    # psycopg-binary bundles a libpq >= 17 here, so the batched path must really be in use.
    assert pg_module._send_pipeline_sync is not None


def test_a_parameter_that_cannot_be_converted_never_shifts_results_to_the_next_request(world: str) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        if req.path == b"/bad":
            yield from db.run([("select 1::int", ()), ("select $1::text", (object(),))])
        row = yield from db.fetch_one("select 42, 'answer'")
        return repr(row).encode()

    with db_server(world, query) as server:
        assert server.request(get(b"/bad")).status == 500  # psycopg.ProgrammingError: cannot adapt
        assert server.request(get(b"/")).body == b"(42, 'answer')"


def test_a_value_python_cannot_load_fails_only_its_request(world: str) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        if req.path == b"/bad":
            yield from db.fetch("select 'infinity'::timestamptz")
        return (yield from by_id(req, db))

    with db_server(world, query) as server:
        assert server.request(get(b"/bad")).status == 500  # psycopg.DataError while loading the row
        assert server.request(get(b"/?6")).body == b"(6, 60)"  # the pump and the connection are fine


def test_the_prepared_statement_cache_is_bounded(world: str) -> None:
    def query(req: Request, db: Database) -> Generator[Any, Any, bytes]:
        total = 0
        for i in range(20):
            row = yield from db.fetch_one(f"select {i} + $1::int", 1)
            total += row[0]
        return b"%d %d" % (total, len(db._prepared))

    with db_server(world, query, max_prepared=5) as server:
        assert server.request(get(b"/")).body == b"210 5"
