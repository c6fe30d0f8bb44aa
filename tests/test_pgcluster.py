"""vanilla_async.pgcluster: a real throwaway PostgreSQL server, started, used, restarted, stopped."""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator

import pytest

from vanilla_async import pgcluster
from vanilla_async.errors import VanillaError
from vanilla_async.pgcluster import PgClusterError, TemporaryCluster, find_binaries

if os.environ.get("CI") == "true":
    import psycopg  # CI installs the test extra: a missing psycopg is a failure there
else:
    psycopg = pytest.importorskip("psycopg")

ROOT = Path(__file__).resolve().parent.parent


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie its adopter has not reaped yet counts as dead)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return False
    return data[data.rfind(b")") + 2 :][:1] not in (b"Z", b"X")


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (the postmaster: ``postgres -D <dir>``)."""
    found = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            cmdline = Path(d, "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        pid = int(d.rsplit("/", 1)[1])
        if text.encode() in cmdline and pid != os.getpid() and alive(pid):
            found.append(pid)
    return found


def children_of(pid: int) -> list[int]:
    kids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            data = Path(d, "stat").read_bytes()
        except OSError:
            continue
        if int(data[data.rfind(b")") + 2 :].split()[1]) == pid:
            kids.append(int(d.rsplit("/", 1)[1]))
    return kids


@pytest.fixture(scope="module")
def own_cluster(pg_cluster: TemporaryCluster) -> Iterator[TemporaryCluster]:
    """A cluster of this module's own, for restarts and terminations the session one should not see
    (depends on ``pg_cluster`` only for its skip-or-fail when PostgreSQL is missing)."""
    with TemporaryCluster(dbname="own") as cluster:
        yield cluster


def test_connect_create_insert_select(pg_cluster: TemporaryCluster, pg_dsn: str) -> None:
    assert pg_dsn == pg_cluster.dsn
    assert f"host={pg_cluster.host}" in pg_dsn and f"port={pg_cluster.port}" in pg_dsn
    assert "dbname=vanilla" in pg_dsn and f"user={pg_cluster.user}" in pg_dsn
    assert (Path(pg_cluster.host) / f".s.PGSQL.{pg_cluster.port}").is_socket()
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE t_basic (id int PRIMARY KEY, name text)")
        conn.execute("INSERT INTO t_basic VALUES (1, 'one'), (2, 'två')")
        conn.commit()
        assert conn.execute("SELECT id, name FROM t_basic ORDER BY id").fetchall() == [(1, "one"), (2, "två")]
        row = conn.execute(
            "SELECT current_user, current_database(), current_setting('server_encoding'),"
            " current_setting('fsync'), current_setting('max_connections')"
        ).fetchone()
        assert row == (pg_cluster.user, "vanilla", "UTF8", "off", "200")
        conn.execute("DROP TABLE t_basic")
        conn.commit()


def test_superuser_and_owner_follow_who_runs_it(pg_cluster: TemporaryCluster) -> None:
    owner = os.stat(pg_cluster.datadir).st_uid
    if os.geteuid() == 0:
        assert pg_cluster.user == "postgres"
        assert owner != 0 and owner == os.stat(pg_cluster.directory).st_uid
    else:
        assert owner == os.geteuid()
    assert stat.S_IMODE(os.stat(pg_cluster.directory).st_mode) == 0o700


def test_tcp_port_works_too(pg_cluster: TemporaryCluster) -> None:
    assert pg_cluster.tcp_dsn == pg_cluster.dsn.replace(f"host={pg_cluster.host}", "host=127.0.0.1")
    with socket.create_connection(("127.0.0.1", pg_cluster.port), timeout=5):
        pass
    with psycopg.connect(pg_cluster.tcp_dsn) as conn:
        row = conn.execute("SELECT host(inet_server_addr()), inet_server_port(), current_database()").fetchone()
    assert row == ("127.0.0.1", pg_cluster.port, "vanilla")
    with psycopg.connect(pg_cluster.dsn_for("postgres", tcp=True)) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == ("postgres",)


def test_restart_keeps_data_and_takes_new_connections(own_cluster: TemporaryCluster) -> None:
    with psycopg.connect(own_cluster.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t_restart (v int)")
        conn.execute("INSERT INTO t_restart SELECT generate_series(1, 1000)")
    old = psycopg.connect(own_cluster.dsn, autocommit=True)
    pid, port = own_cluster.pid, own_cluster.port
    t0 = time.monotonic()
    own_cluster.restart()
    took = time.monotonic() - t0
    assert took < 10, took
    assert own_cluster.pid != pid and not alive(pid)
    assert own_cluster.port == port
    with pytest.raises(psycopg.OperationalError):
        old.execute("SELECT 1")
    old.close()
    for dsn in (own_cluster.dsn, own_cluster.tcp_dsn):
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*), sum(v) FROM t_restart").fetchone() == (1000, 500500)


def test_terminate_backends_kills_open_connections(own_cluster: TemporaryCluster) -> None:
    victims = [psycopg.connect(own_cluster.dsn, autocommit=True) for _ in range(3)]
    elsewhere = psycopg.connect(own_cluster.dsn_for("postgres"), autocommit=True)  # another database
    for v in victims:
        assert v.execute("SELECT 1").fetchone() == (1,)
    assert own_cluster.terminate_backends() == 3
    for v in victims:
        with pytest.raises(psycopg.OperationalError):
            v.execute("SELECT 1")
        v.close()
    assert elsewhere.execute("SELECT 1").fetchone() == (1,)  # only current_database()'s sessions go
    elsewhere.close()
    with psycopg.connect(own_cluster.dsn) as conn:
        assert conn.execute("SELECT 2").fetchone() == (2,)
    assert own_cluster.terminate_backends() == 0


def test_stop_leaves_no_process_and_no_directory(
    pg_cluster: TemporaryCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two side paths on the way: without a createdb program the database is made through psycopg,
    # and a port taken between the probe and the server's bind makes start() try another.
    real = find_binaries()
    monkeypatch.setattr(pgcluster, "find_binaries", lambda *a, **k: dataclasses.replace(real, createdb=None))
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    ports = iter([taken.getsockname()[1]])
    free_port = pgcluster._free_port
    monkeypatch.setattr(pgcluster, "_free_port", lambda: next(ports, None) or free_port())
    cluster = TemporaryCluster(dbname="short_lived")
    with pytest.raises(PgClusterError, match="not started"):
        cluster.dsn
    with cluster:
        with pytest.raises(PgClusterError, match="already started"):
            cluster.start()
        directory, datadir, pid = cluster.directory, cluster.datadir, cluster.pid
        bindir = cluster.bindir
        assert alive(pid) and cluster.running
        backends = children_of(pid)
        assert backends  # checkpointer, walwriter, ...
        assert pid in processes_mentioning(str(datadir))  # with the watchdog (/bin/sh)
        assert cluster.port != taken.getsockname()[1] and "Address already in use" in cluster.log_tail(100)
        conn = psycopg.connect(cluster.dsn)  # an open session must not keep it alive
        assert conn.execute("SELECT current_database()").fetchone() == ("short_lived",)
    taken.close()
    assert not cluster.running
    assert not directory.exists()
    assert not alive(pid)
    assert not any(alive(k) for k in backends)
    assert processes_mentioning(str(directory)) == []  # the watchdog has gone too
    status = subprocess.run([bindir / "pg_ctl", "status", "-D", datadir], capture_output=True)
    assert status.returncode != 0  # 3: no server running; 4: no data directory
    conn.close()
    cluster.stop()  # idempotent
    with pytest.raises(PgClusterError):
        cluster.port


def test_start_failure_reports_the_log_and_cleans_up(pg_cluster: TemporaryCluster) -> None:
    cluster = TemporaryCluster(settings={"shared_buffers": "lots"})
    with pytest.raises(PgClusterError, match="pg_ctl start failed") as info:
        cluster.start()
    message = str(info.value)
    assert 'invalid value for parameter "shared_buffers": "lots"' in message  # from the log's tail
    assert isinstance(info.value, VanillaError)
    assert not cluster.running
    logfile = re.search(r"--- (\S+) \(tail\) ---", message)
    assert logfile is not None, message
    assert not Path(logfile.group(1)).parent.exists()  # the directory went with the failure


def test_missing_binaries_say_what_and_how(tmp_path: Path) -> None:
    nowhere = str(tmp_path / "nowhere" / "*" / "bin")
    with pytest.raises(PgClusterError) as info:
        TemporaryCluster(path=str(tmp_path), search_dirs=[nowhere]).start()
    message = str(info.value)
    assert "initdb" in message and "pg_ctl" in message and "postgres" in message
    assert nowhere in message and "apt-get install postgresql" in message
    assert isinstance(info.value, VanillaError)

    half = tmp_path / "half"  # initdb without its server: name what is missing
    half.mkdir()
    make_fake(half, "initdb")
    with pytest.raises(PgClusterError, match=r"half has initdb but no pg_ctl or postgres"):
        find_binaries(path=str(half), search_dirs=[])


def make_fake(d: Path, *names: str) -> None:
    for name in names:
        p = d / name
        p.write_text("#!/bin/sh\nexit 1\n")
        p.chmod(0o755)


def test_binaries_from_path_first_then_highest_version(tmp_path: Path) -> None:
    for version in ("9.6", "10", "16", "15"):
        bindir = tmp_path / "lib" / version / "bin"
        bindir.mkdir(parents=True)
        make_fake(bindir, "initdb", "pg_ctl", "postgres")
    pattern = str(tmp_path / "lib" / "*" / "bin")
    found = find_binaries(path="", search_dirs=[pattern])
    assert found.bindir == tmp_path / "lib" / "16" / "bin"
    assert found.pg_ctl == found.bindir / "pg_ctl"

    onpath = tmp_path / "local-bin"  # symlinks on PATH lead to the real directory
    onpath.mkdir()
    (onpath / "initdb").symlink_to(tmp_path / "lib" / "10" / "bin" / "initdb")
    assert find_binaries(path=str(onpath), search_dirs=[pattern]).bindir == tmp_path / "lib" / "10" / "bin"


def test_a_forked_child_does_not_stop_the_parents_cluster(own_cluster: TemporaryCluster) -> None:
    pid = os.fork()
    if pid == 0:  # what a prefork worker's exit path could do
        try:
            own_cluster.stop()
            own_cluster._atexit_stop()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert own_cluster.running and own_cluster.directory.exists()
    with psycopg.connect(own_cluster.dsn) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def wait_until(condition: Any, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return bool(condition())


def test_a_killed_python_leaks_nothing(pg_cluster: TemporaryCluster) -> None:
    """SIGKILL skips atexit: the watchdog stops the server and removes the directory."""
    code = textwrap.dedent("""
        import sys, time
        from vanilla_async.pgcluster import TemporaryCluster
        c = TemporaryCluster().start()
        print(c.directory, c.pid, flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        directory, pid = proc.stdout.readline().split()
        assert Path(directory).is_dir() and alive(int(pid))
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert wait_until(lambda: not alive(int(pid)) and not Path(directory).exists(), 15)
    # The watchdog (and its rm) exit just after the directory is gone: give them the same bound.
    wait_until(lambda: processes_mentioning(directory) == [], 5)
    assert processes_mentioning(directory) == []


def test_atexit_stops_what_was_not_stopped(pg_cluster: TemporaryCluster) -> None:
    code = textwrap.dedent("""
        from vanilla_async.pgcluster import TemporaryCluster
        c = TemporaryCluster().start()
        print(c.directory, c.pid, flush=True)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    directory, pid = out.stdout.split()
    assert not Path(directory).exists()  # gone by the time the interpreter exited, not later
    assert not alive(int(pid))


@pytest.mark.skipif(os.geteuid() != 0, reason="the non-root path is the ordinary one when not root")
def test_as_an_ordinary_user(pg_cluster: TemporaryCluster) -> None:
    """As root we can also try the non-root path: drop to 'nobody' (after importing everything,
    since this interpreter may live where nobody cannot read) and run a cluster as that user."""
    code = textwrap.dedent("""
        import os, pwd, psycopg, psycopg.rows
        from vanilla_async.pgcluster import TemporaryCluster
        nobody = pwd.getpwnam("nobody")
        os.chdir("/")
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
        with TemporaryCluster() as c:
            with psycopg.connect(c.dsn) as conn:
                user = conn.execute("SELECT current_user").fetchone()[0]
            print(user, os.stat(c.datadir).st_uid == nobody.pw_uid, c.directory)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    user, owned, directory = out.stdout.split()
    assert (user, owned) == ("nobody", "True")
    assert not Path(directory).exists()
