"""The deployment flags (uvicorn's names) as real server processes, and the per-connection request
limit over real sockets: --uds, --fd and systemd's LISTEN_FDS, --reload, --limit-max-requests,
--limit-concurrency, --access-log, --header, --factory, --version, --timeout-keep-alive."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vanilla_async import Limits, respond, sleep
from vanilla_async._core.http1 import insert_close
from vanilla_async.testing import Client, ServerProcess, serve

ROOT = Path(__file__).resolve().parent.parent
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
SLOW = b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"

APP = '''
import os
from vanilla_async import ServerConfig, respond, sleep

BODY = "v1"


def slow(req, out):
    yield sleep(0.5)
    respond(out, 200, "slow")


def handler(req, out):
    if req.path == b"/slow":
        return slow(req, out)
    if req.path == b"/missing":
        respond(out, 404, "no")
        return None
    respond(out, 200, f"{BODY} {os.getpid()}")


config = ServerConfig(handler=handler, grace=5.0)


def make():
    return ServerConfig(handler=handler, port=0, grace=5.0)
'''

#: systemd-socket-activate in a few lines: bind, put the socket at fd 3, say so in LISTEN_FDS /
#: LISTEN_PID (this pid: exec keeps it), exec the server. argv[1] "fd" passes ``--fd 3`` instead.
ACTIVATE = '''
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
s.listen(128)
if s.fileno() != 3:
    os.dup2(s.fileno(), 3)
    s.close()
os.set_inheritable(3, True)
args = sys.argv[2:]
if sys.argv[1] == "fd":
    args += ["--fd", "3"]
else:
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "vanilla_async", *args])
'''


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    (tmp_path / "cf_app.py").write_text(APP)
    return tmp_path


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        proc.kill()


def start(procs: list[ServerProcess], app_dir: Path, *args: str, target: str = "cf_app:config",
          cwd: Path | None = None) -> ServerProcess:
    proc = ServerProcess("-m", "vanilla_async", target, *args,
                         env={"PYTHONPATH": f"{app_dir}{os.pathsep}{ROOT}"}, cwd=cwd or ROOT)
    procs.append(proc)
    return proc


def get(port: int, raw: bytes = GET) -> Any:
    with Client(("127.0.0.1", port)) as client:
        client.send(raw)
        return client.read_response()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# -- where to listen ------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_uds_serves_every_worker_with_its_mode_and_is_removed_at_exit(procs: list[ServerProcess], app_dir: Path) -> None:
    path = str(app_dir / "s.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a crashed server's leftover: replaced
    stale.bind(path)
    stale.close()
    proc = start(procs, app_dir, "--uds", path, "--uds-mode", "0o660", "--workers", "2")
    proc.wait_for(r"serving unix:" + re.escape(path), timeout=30)
    mode = os.stat(path).st_mode
    assert stat.S_ISSOCK(mode) and stat.S_IMODE(mode) == 0o660
    bodies = set()
    for _ in range(10):
        result = subprocess.run(["curl", "-sS", "--max-time", "5", "--unix-socket", path, "http://localhost/"],
                                capture_output=True, text=True, timeout=10, check=True)
        assert result.stdout.startswith("v1 ")
        bodies.add(result.stdout)
    # A second server on the same live path is refused, naming the problem.
    second = start(procs, app_dir, "--uds", path)
    assert second.wait() == 2 and "another server is listening" in second.output
    assert proc.stop() == 0
    assert not os.path.exists(path)


@pytest.mark.parametrize("how", ["systemd", "fd"])
def test_inherited_socket_systemd_activation_and_fd(procs: list[ServerProcess], app_dir: Path, how: str) -> None:
    proc = ServerProcess("-c", ACTIVATE, how, "cf_app:config", "--workers", "2",
                         env={"PYTHONPATH": f"{app_dir}{os.pathsep}{ROOT}"}, cwd=ROOT)
    procs.append(proc)
    port = proc.port()
    if how == "systemd":
        proc.wait_for(r"systemd socket activation: serving on fd 3")
    pids = {get(port).body.split()[1] for _ in range(20)}
    assert pids and all(pid.isdigit() for pid in pids)
    assert proc.stop() == 0


def test_fd_that_is_not_a_listening_socket_is_refused(app_dir: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vanilla_async", "cf_app:config", "--fd", "0"], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": f"{app_dir}{os.pathsep}{ROOT}"},
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "--fd 0" in result.stderr


# -- --reload --------------------------------------------------------------------------------------------
def test_reload_restarts_the_server_with_the_new_code(procs: list[ServerProcess], app_dir: Path) -> None:
    port = free_port()
    proc = start(procs, app_dir, "--reload", "--port", str(port), "--workers", "2", target="cf_app:handler",
                 cwd=app_dir)
    proc.wait_for(rf"serving http://127\.0\.0\.1:{port}", timeout=30)
    assert get(port).body.startswith(b"v1 ")
    time.sleep(0.1)  # (a new mtime for a coarse filesystem clock)
    (app_dir / "cf_app.py").write_text(APP.replace('BODY = "v1"', 'BODY = "v2"'))
    proc.wait_for(r"cf_app\.py changed; restarting", timeout=10)
    deadline = time.monotonic() + 20
    body = b""
    while time.monotonic() < deadline:
        try:
            body = get(port).body
        except OSError:
            body = b""  # (between the old server's exit and the new one's bind)
        if body.startswith(b"v2 "):
            break
        time.sleep(0.1)
    assert body.startswith(b"v2 "), proc.output
    assert proc.stop() == 0
    assert "never use it in production" in proc.output


# -- limits ----------------------------------------------------------------------------------------------
def _uds_get(path: str, raw: bytes) -> tuple[int, bytes]:
    """One request over a unix socket, read to the server's close: (status, body)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(5)
        sock.connect(path)
        sock.sendall(raw)
        data = bytearray()
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_limit_max_requests_replaces_workers_without_a_failed_request(procs: list[ServerProcess], app_dir: Path) -> None:
    # Over the shared unix socket: on TCP, a retiring worker's own SO_REUSEPORT listener can reset a
    # connection the kernel completed in the instant before it closed, unless the host sets
    # net.ipv4.tcp_migrate_req=1 (docs/howto/deploy.md); a test cannot promise what the host decides.
    path = str(app_dir / "retire.sock")
    proc = start(procs, app_dir, "--uds", path, "--workers", "2", "--limit-max-requests", "200")
    proc.wait_for(r"serving unix:" + re.escape(path), timeout=30)
    failures: list[str] = []
    pids: set[bytes] = set()
    lock = threading.Lock()
    raw = b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"

    sent = [0]
    deadline = time.monotonic() + 30

    def lane() -> None:  # until replacements have answered too (bounded: 30 s)
        while time.monotonic() < deadline and (sent[0] < 2000 or len(pids) <= 2):
            try:
                status, body = _uds_get(path, raw)
            except Exception as exc:  # noqa: BLE001 - counted: the test says none may fail
                with lock:
                    failures.append(repr(exc))
                continue
            with lock:
                sent[0] += 1
                if status != 200:
                    failures.append(f"status {status}")
                pids.add(body.split()[1])

    lanes = [threading.Thread(target=lane) for _ in range(4)]
    for thread in lanes:
        thread.start()
    for thread in lanes:
        thread.join(60)
    assert not failures, failures[:5]
    proc.wait_for(r"worker \d \(pid \d+\) retired", timeout=10)
    assert len(pids) > 2, proc.output  # replacements served too
    assert proc.stop() == 0


def test_limit_concurrency_answers_503_beyond_n_in_flight(procs: list[ServerProcess], app_dir: Path) -> None:
    proc = start(procs, app_dir, "--port", "0", "--workers", "1", "--limit-concurrency", "2")
    port = proc.port()
    with Client(("127.0.0.1", port)) as a, Client(("127.0.0.1", port)) as b, Client(("127.0.0.1", port)) as c:
        a.send(SLOW)
        b.send(SLOW)
        time.sleep(0.2)  # both parked (0.5 s each)
        c.send(GET)
        busy = c.read_response()
        assert busy.status == 503 and busy.header("retry-after") == b"1" and not busy.closes
        assert a.read_response().status == 200 and b.read_response().status == 200
        c.send(GET)  # the same connection, now under the limit
        assert c.read_response().status == 200
    assert proc.stop() == 0


def test_timeout_keep_alive_closes_an_idle_connection(procs: list[ServerProcess], app_dir: Path) -> None:
    proc = start(procs, app_dir, "--port", "0", "--workers", "1", "--timeout-keep-alive", "0.3")
    port = proc.port()
    with Client(("127.0.0.1", port)) as client:
        client.send(GET)
        assert client.read_response().status == 200
        began = time.monotonic()
        assert client.closed_by_server(timeout=5)
        assert time.monotonic() - began < 4  # 0.3 s, swept a few times a second (the default is 60 s)
    assert proc.stop() == 0


# -- access log, headers, factory, version -----------------------------------------------------------
@pytest.mark.parametrize("fmt", ["common", "json"])
def test_access_log_one_line_per_response(procs: list[ServerProcess], app_dir: Path, fmt: str) -> None:
    proc = start(procs, app_dir, "--port", "0", "--workers", "1", "--access-log", "--access-log-format", fmt)
    port = proc.port()
    assert get(port, b"GET /missing?x=1 HTTP/1.1\r\nHost: t\r\n\r\n").status == 404
    assert get(port, SLOW).status == 200
    if fmt == "json":
        line = proc.wait_for(r'^\{.*"target": "/missing\?x=1"').string
        doc = json.loads(line)
        assert doc["method"] == "GET" and doc["status"] == 404 and doc["bytes"] > 0 and doc["duration_ms"] >= 0
        assert doc["client"].startswith("127.0.0.1:")
        slow = json.loads(proc.wait_for(r'^\{.*"target": "/slow"').string)
        assert slow["status"] == 200 and slow["duration_ms"] >= 450  # logged when the generator ended
    else:
        proc.wait_for(r'^127\.0\.0\.1 - - \[[^]]+\] "GET /missing\?x=1 HTTP/1\.1" 404 \d+ [\d.]+ms$')
        match = proc.wait_for(r'"GET /slow HTTP/1\.1" 200 \d+ ([\d.]+)ms$')
        assert float(match.group(1)) >= 450
    assert proc.stop() == 0


def test_no_access_log_by_default(procs: list[ServerProcess], app_dir: Path) -> None:
    proc = start(procs, app_dir, "--port", "0", "--workers", "1")
    assert get(proc.port()).status == 200
    assert proc.stop() == 0
    assert '"GET / HTTP/1.1"' not in proc.output


def test_header_is_added_to_every_response(procs: list[ServerProcess], app_dir: Path) -> None:
    proc = start(procs, app_dir, "--port", "0", "--workers", "1", "--header", "Server: vanilla-test",
                 "--header", "X-Frame-Options:DENY")
    port = proc.port()
    for raw in (GET, SLOW, b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n"):
        with Client(("127.0.0.1", port)) as client:
            client.send(raw)
            response = client.read_response(raw.split(b" ")[0])
        assert response.header("server") == b"vanilla-test" and response.header("x-frame-options") == b"DENY"
        assert response.raw.startswith(b"HTTP/1.1 200 OK\r\nServer: vanilla-test\r\nX-Frame-Options: DENY\r\n")
    assert proc.stop() == 0


def test_bad_header_is_refused(app_dir: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "vanilla_async", "cf_app:config", "--header", "Bad Name: x"],
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": f"{app_dir}{os.pathsep}{ROOT}"},
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2 and "invalid header name" in result.stderr


def test_factory(procs: list[ServerProcess], app_dir: Path) -> None:
    proc = start(procs, app_dir, "--factory", "--workers", "1", target="cf_app:make")
    assert get(proc.port()).body.startswith(b"v1 ")  # (make() chose port 0)
    assert proc.stop() == 0
    bad = start(procs, app_dir, "--factory", target="cf_app:BODY")
    assert bad.wait() == 2 and "not a callable" in bad.output


def test_version() -> None:
    result = subprocess.run([sys.executable, "-m", "vanilla_async", "--version"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0 and re.match(r"vanilla-async \S+ \(CPython ", result.stdout)


# -- the per-connection request limit over a real socket -------------------------------------------------
def hello(req: Any, out: bytearray) -> None:
    respond(out, 200, b"hi")


def parked(req: Any, out: bytearray) -> Any:
    yield sleep(0.01)
    respond(out, 200, b"late")


def test_max_requests_per_connection_closes_after_n() -> None:
    with serve(hello, limits=Limits(max_requests_per_connection=3)) as server:
        client = server.connect()
        for n in range(1, 4):
            client.send(GET)
            response = client.read_response()
            assert response.status == 200 and response.closes == (n == 3)
        assert client.closed_by_server()
        # A new connection starts counting again.
        second = server.connect()
        second.send(GET)
        assert not second.read_response().closes


def test_max_requests_per_connection_pipelined_stops_at_the_last() -> None:
    with serve(hello, limits=Limits(max_requests_per_connection=2)) as server:
        client = server.connect()
        client.send(GET * 5)
        first, last = client.read_responses(2)
        assert not first.closes and last.closes
        assert client.closed_by_server()  # the three requests behind it are not answered


def test_max_requests_per_connection_generator_handler() -> None:
    with serve(parked, limits=Limits(max_requests_per_connection=1)) as server:
        client = server.connect()
        client.send(GET)
        response = client.read_response()
        assert response.body == b"late" and response.closes
        assert client.closed_by_server()


def test_unlimited_by_default_and_no_duplicate_connection_header() -> None:
    def closing(req: Any, out: bytearray) -> None:
        respond(out, 200, b"bye", close=True)

    with serve(hello) as server:
        client = server.connect()
        for _ in range(50):
            client.send(GET)
            assert not client.read_response().closes
    with serve(closing, limits=Limits(max_requests_per_connection=1)) as server:
        response = server.request(GET)
        assert response.raw.lower().count(b"connection: close") == 1


def test_insert_close_skips_interim_heads() -> None:
    out = bytearray(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert insert_close(out, 0)
    assert out.endswith(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
    assert not insert_close(bytearray(b"partial"), 0)
