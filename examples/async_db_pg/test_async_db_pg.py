"""examples.async_db_pg against a real PostgreSQL: a throwaway cluster for this module.

(tests/conftest.py's ``pg_cluster`` is not visible from examples/, so the fixture is repeated here:
skipped without PostgreSQL's server programs, a failure under ``CI=true``.)
"""

from __future__ import annotations

import functools
import html
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import psycopg
import pytest

from examples.async_db_pg import ADDITIONAL_FORTUNE, config, etag_for, make_state, none_match, query_count
from examples.async_db_pg.schema import FORTUNES, USERS, WORLD_ROWS, ensure_schema, missing_tables, setup
from vanilla_async.pgcluster import TemporaryCluster
from vanilla_async.testing import Client, Response, ServerProcess, TestServer, require_postgres, serve

pytestmark = pytest.mark.usefixtures("each_backend")  # every server here runs on each backend

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster() -> Iterator[TemporaryCluster]:
    """One cluster for the module, filled by `setup`. Prepared transactions let a test hold a lock
    without a session (one that `terminate_backends` would end)."""
    require_postgres()
    with TemporaryCluster(settings={"max_prepared_transactions": 4}) as c:
        setup(c.dsn)
        yield c


@pytest.fixture
def server(cluster: TemporaryCluster) -> Iterator[TestServer]:
    with serve(config.with_(make_state=functools.partial(make_state, cluster.dsn))) as s:
        yield s


def get(target: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def world(cluster: TemporaryCluster) -> dict[int, int]:
    with psycopg.connect(cluster.dsn) as conn:
        return dict(conn.execute("select id, randomnumber from world").fetchall())


def rows_of(r: Response) -> list[dict[str, int]]:
    assert r.status == 200 and r.header("content-type") == b"application/json", (r.status, r.body)
    value = json.loads(r.body)
    rows = value if isinstance(value, list) else [value]
    for row in rows:
        assert set(row) == {"id", "randomNumber"} and 1 <= row["id"] <= WORLD_ROWS, row
    return rows


# -- schema ------------------------------------------------------------------------------------------
def test_setup_is_idempotent_and_ensure_schema_runs_it_only_when_tables_are_missing(cluster: TemporaryCluster) -> None:
    other = cluster.dsn_for("other")
    with psycopg.connect(cluster.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute("drop database if exists other")
        conn.execute("create database other")
    assert missing_tables(other) == ["world", "fortune", "users"]
    assert ensure_schema(other) is True
    setup(other)  # twice: the same state again
    with psycopg.connect(other, autocommit=True) as conn:
        assert conn.execute("select count(*), min(randomnumber) >= 1, max(randomnumber) <= 10000 from world").fetchone() == (
            WORLD_ROWS, True, True)
        assert conn.execute("select id, message from fortune order by id").fetchall() == list(FORTUNES)
        assert conn.execute("select id, name from users order by id").fetchall() == list(USERS)
        conn.execute("update world set randomnumber = -1 where id = 1")
    assert ensure_schema(other) is False  # tables there: the data is left alone
    with psycopg.connect(other, autocommit=True) as conn:
        assert conn.execute("select randomnumber from world where id = 1").fetchone() == (-1,)
        conn.execute("drop table users")
    assert missing_tables(other) == ["users"] and ensure_schema(other) is True and missing_tables(other) == []
    with psycopg.connect(cluster.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute("drop database other")


# -- /db and /queries ----------------------------------------------------------------------------------
def test_db_answers_one_real_row(server: TestServer, cluster: TemporaryCluster) -> None:
    table = world(cluster)
    seen = set()
    for _ in range(20):
        (row,) = rows_of(server.request(get(b"/db")))
        assert table[row["id"]] == row["randomNumber"]
        seen.add(row["id"])
    assert len(seen) > 10  # random ids, not one fixed row
    r = server.request(get(b"/db", method=b"HEAD"), method=b"HEAD")
    assert r.status == 200 and r.body == b"" and int(r.header("content-length") or 0) > 20


@pytest.mark.parametrize("query, count", [
    (b"queries=0", 1), (b"queries=501", 500), (b"queries=abc", 1), (b"", 1), (b"queries=", 1),
    (b"queries=-3", 1), (b"queries=7", 7), (b"queries=500", 500), (b"x=2&queries=3", 3),
    (b"queries=" + b"9" * 5000, 500), (b"queries=1.5", 1),
])
def test_queries_are_clamped_and_every_row_is_real(server: TestServer, cluster: TemporaryCluster, query: bytes, count: int) -> None:
    assert query_count(query) == count
    rows = rows_of(server.request(get(b"/queries?" + query if query else b"/queries")))
    assert len(rows) == count
    table = world(cluster)
    assert all(table[row["id"]] == row["randomNumber"] for row in rows)
    if count == 500:
        assert len({row["id"] for row in rows}) > 400  # independently random ids


def test_200_concurrent_db_requests(server: TestServer, cluster: TemporaryCluster) -> None:
    table = world(cluster)
    clients = [server.connect() for _ in range(200)]
    for client in clients:
        client.send(get(b"/db"))
    responses = [client.read_response() for client in clients]
    for client in clients:
        client.close()
    for r in responses:
        (row,) = rows_of(r)
        assert table[row["id"]] == row["randomNumber"]
    assert server.worker is not None and server.worker.state.in_flight == 0


# -- /fortunes -----------------------------------------------------------------------------------------
def test_fortunes_page(server: TestServer) -> None:
    r = server.request(get(b"/fortunes"))
    assert r.status == 200 and r.header("content-type") == b"text/html; charset=utf-8"
    page = r.body.decode("utf-8")
    rows = re.findall(r"<tr><td>(\d+)</td><td>(.*?)</td></tr>", page)
    assert len(rows) == 13
    messages = [html.unescape(m) for _, m in rows]
    assert messages == sorted(messages)
    assert [int(i) for i, _ in rows] == [11, 4, 5, 2, 8, 0, 3, 7, 10, 6, 9, 1, 12]
    assert dict((int(i), html.unescape(m)) for i, m in rows) == {**dict(FORTUNES), 0: ADDITIONAL_FORTUNE}
    assert "<script>" not in page and "&lt;script&gt;alert(&quot;This should not be displayed" in page
    assert "<tr><td>12</td><td>フレームワークのベンチマーク</td></tr>" in page
    assert f"<tr><td>0</td><td>{ADDITIONAL_FORTUNE}</td></tr>" in page
    assert page.startswith("<!DOCTYPE html><html><head><title>Fortunes</title></head><body><table>"
                           "<tr><th>id</th><th>message</th></tr><tr><td>11</td>")
    assert page.endswith("</td></tr></table></body></html>")
    assert int(r.header("content-length") or 0) == len(r.body)


# -- /updates ------------------------------------------------------------------------------------------
def test_updates_write_new_values_and_answer_them(server: TestServer, cluster: TemporaryCluster) -> None:
    before = world(cluster)
    rows = rows_of(server.request(get(b"/updates?queries=20")))
    after = world(cluster)
    assert len(rows) == 20
    for row in rows:
        assert after[row["id"]] == row["randomNumber"] != before[row["id"]]
    changed = {i for i in before if before[i] != after[i]}
    assert changed == {row["id"] for row in rows}  # exactly those rows, nothing else
    assert len(rows_of(server.request(get(b"/updates?queries=0")))) == 1
    assert len(rows_of(server.request(get(b"/updates?queries=zz")))) == 1


def test_concurrent_updates_do_not_deadlock(server: TestServer, cluster: TemporaryCluster) -> None:
    clients = [server.connect() for _ in range(30)]
    for client in clients:
        client.send(get(b"/updates?queries=50"))
    responses = [client.read_response() for client in clients]
    for client in clients:
        client.close()
    assert [len(rows_of(r)) for r in responses] == [50] * 30
    after = world(cluster)
    last = {row["id"]: row["randomNumber"] for r in responses for row in rows_of(r)}
    assert all(1 <= after[i] <= WORLD_ROWS for i in last)


# -- /user/ID ------------------------------------------------------------------------------------------
def test_user_etag_and_conditional_get(server: TestServer, cluster: TemporaryCluster) -> None:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        row = conn.execute("select updated_at from users where id = 1").fetchone()
        assert row is not None
        stamp = row[0]
        micros = conn.execute("select (extract(epoch from updated_at) * 1000000)::bigint from users where id = 1").fetchone()
        assert micros is not None
    etag = b'"u1-%d"' % micros[0]
    assert etag_for(1, stamp).encode() == etag

    r = server.request(get(b"/user/1"))
    assert r.status == 200 and r.header("etag") == etag and r.header("content-type") == b"application/json"
    assert json.loads(r.body) == {"id": 1, "name": "Ada Lovelace", "updatedAt": stamp.isoformat()}
    for value in [etag, b'"nope", ' + etag + b', "other"', b"*", b"W/" + etag, b' W/"x" ,W/' + etag]:
        r = server.request(get(b"/user/1", b"If-None-Match: " + value))
        assert (r.status, r.body, r.header("etag"), r.header("content-length")) == (304, b"", etag, None), value
    r = server.request(get(b"/user/1", b'If-None-Match: "nope"', b"If-None-Match: " + etag))  # two field lines
    assert r.status == 304
    r = server.request(get(b"/user/1", b'If-None-Match: "u1-0", "u2-' + etag[4:]))
    assert r.status == 200 and r.header("etag") == etag
    r = server.request(get(b"/user/4"))
    assert r.status == 200 and json.loads(r.body)["name"] == "Kurt Gödel" and r.header("etag") != etag

    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("update users set updated_at = updated_at + interval '1 millisecond' where id = 1")
    r = server.request(get(b"/user/1", b"If-None-Match: " + etag))
    new_etag = b'"u1-%d"' % (micros[0] + 1000)
    assert r.status == 200 and r.header("etag") == new_etag and json.loads(r.body)["id"] == 1
    assert server.request(get(b"/user/1", b"If-None-Match: " + new_etag)).status == 304


@pytest.mark.parametrize("target, status", [
    (b"/user/999", 404), (b"/user/0", 404), (b"/user/-1", 404), (b"/user/99999999999", 404), (b"/user/2147483648", 404),
    (b"/user/abc", 400), (b"/user/1.5", 400), (b"/user/", 400), (b"/user/1a", 400), (b"/user/1/x", 400),
    (b"/nope", 404), (b"/users/1", 404),
])
def test_user_errors(server: TestServer, target: bytes, status: int) -> None:
    r = server.request(get(target))
    assert r.status == status and r.header("etag") is None, (target, r.status, r.body)


def test_other_methods_are_405(server: TestServer) -> None:
    r = server.request(b"POST /db HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    assert r.status == 405 and r.header("allow") == b"GET, HEAD"


def test_none_match() -> None:
    assert none_match([b'"a", W/"b"'], '"b"') and none_match([b"*"], '"z"') and none_match([b' * '], '"z"')
    assert not none_match([b'"a, b"'], '"a"') and not none_match([b""], '"a"') and not none_match([b"W/a"], '"a"')


# -- the database goes away ------------------------------------------------------------------------------
def test_outage_answers_503_with_retry_after_then_recovers(server: TestServer, cluster: TemporaryCluster) -> None:
    assert server.request(get(b"/db")).status == 200
    # Hold a lock on `world` in a prepared transaction (no session: terminate_backends cannot free it),
    # so the requests are surely in flight when the connection is killed.
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("begin")
        conn.execute("lock table world in access exclusive mode")
        conn.execute("prepare transaction 'outage'")
    try:
        waiters = [server.connect() for _ in range(5)]
        for client in waiters:
            client.send(get(b"/db"))
        client = waiters[0]
        client.send(get(b"/fortunes"))  # pipelined behind a parked request; fortune is not locked
        time.sleep(0.3)
        assert server.worker is not None and server.worker.state.in_flight >= 5
        assert cluster.terminate_backends() >= 1
        responses = [c.read_response() for c in waiters]
        assert [(r.status, r.header("retry-after")) for r in responses] == [(503, b"1")] * 5
        assert all(r.body.startswith(b"database unavailable: ") for r in responses)
        assert client.read_response().status in (200, 503)
    finally:
        with psycopg.connect(cluster.dsn, autocommit=True) as conn:
            conn.execute("rollback prepared 'outage'")
    deadline = time.monotonic() + 5
    while server.request(get(b"/db")).status != 200:
        assert time.monotonic() < deadline, "no recovery within 5 s"
        time.sleep(0.05)
    for c in waiters:
        c.close()
    rows_of(server.request(get(b"/queries?queries=10")))
    assert server.request(get(b"/fortunes")).status == 200
    assert server.worker is not None and server.worker.state.connects == 2


# -- python -m examples.async_db_pg -----------------------------------------------------------------------
def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                pass
    return found


def _gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return True
    return stat[stat.rfind(")") + 2:][:1] in ("Z", "X")  # a zombie waiting for init counts as gone


def test_runs_as_a_module_with_an_embedded_cluster() -> None:
    require_postgres()
    with ServerProcess("-m", "examples.async_db_pg", "--port", "0", "--workers", "2", drop_env=["DATABASE_URL"],
                       cwd=ROOT) as proc:
        port = proc.port()
        found = [m for line in proc.lines if (m := re.search(r"embedded PostgreSQL in (\S+) \(postmaster pid (\d+)\)", line))]
        assert found, proc.output
        directory = Path(found[0].group(1))
        postmaster = int((directory / "data" / "postmaster.pid").read_text().split()[0])
        assert postmaster == int(found[0].group(2)) and not _gone(postmaster)
        assert _processes_mentioning(str(directory))  # the postmaster (-D <dir>/data) and the watchdog
        for _ in range(6):  # separate connections: SO_REUSEPORT spreads them over both workers
            with Client(("127.0.0.1", port)) as client:
                client.send(get(b"/db"))
                rows_of(client.read_response())
        assert proc.stop(signal.SIGTERM) == 0, proc.output
        assert "embedded PostgreSQL stopped and removed" in proc.output
        assert not directory.exists()
        assert _gone(postmaster)
        assert _processes_mentioning(str(directory)) == []


def test_runs_as_a_module_on_database_url_creating_missing_tables(cluster: TemporaryCluster) -> None:
    with psycopg.connect(cluster.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute("drop database if exists viaurl")
        conn.execute("create database viaurl")
    with ServerProcess("-m", "examples.async_db_pg", "--port", "0", "--workers", "2",
                       env={"DATABASE_URL": cluster.dsn_for("viaurl")}, cwd=ROOT) as proc:
        port = proc.port()
        assert "created the tables world, fortune and users" in proc.output, proc.output
        assert "embedded" not in proc.output
        with Client(("127.0.0.1", port)) as client:
            client.send(get(b"/fortunes"))
            assert client.read_response().body.count(b"<tr><td>") == 13
        assert proc.stop(signal.SIGTERM) == 0, proc.output
    assert missing_tables(cluster.dsn_for("viaurl")) == []
    with psycopg.connect(cluster.dsn_for("postgres"), autocommit=True) as conn:
        conn.execute("drop database viaurl")


def test_no_database_url_and_no_postgres_is_a_clear_error() -> None:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    code = ("import sys, vanilla_async.pgcluster as p\n"
            "def nowhere(*a, **k): raise p.PgClusterError('PostgreSQL server programs not found')\n"
            "p.find_binaries = nowhere\n"
            "from examples.async_db_pg.__main__ import main\n"
            "sys.exit(main(['--port', '0']))\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1 and "no embedded PostgreSQL either" in proc.stderr, proc.stderr


def test_an_unreachable_database_url_is_a_clear_error(tmp_path: Path) -> None:
    env = dict(os.environ, DATABASE_URL=f"host={tmp_path} port=1 dbname=nowhere connect_timeout=2")
    proc = subprocess.run([sys.executable, "-m", "examples.async_db_pg", "--port", "0"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=20)
    assert proc.returncode == 1 and "cannot prepare the database at $DATABASE_URL" in proc.stderr, proc.stderr
