"""The prefork server and the CLI, as real processes: ports, workers, crash restarts, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from vanilla_async import ConfigError, ServerConfig
from vanilla_async.testing import Client, ServerProcess

ROOT = Path(__file__).resolve().parent.parent
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


@pytest.fixture
def procs() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for proc in started:
        proc.kill()


def fetch(port: int, raw: bytes = GET) -> bytes:
    with Client(("127.0.0.1", port)) as client:
        client.send(raw)
        return client.read_response().body


def test_example_tiny_serves_with_prefork_workers_and_stops_on_sigterm(procs: list[ServerProcess]) -> None:
    proc = ServerProcess("-m", "examples.tiny", "--port", "0", "--workers", "2", cwd=ROOT)
    procs.append(proc)
    port = proc.port()
    proc.wait_for(r"backend=epoll, workers=2")
    proc.wait_for(r"worker 1 started")
    assert all(fetch(port) == b"Hello, World!" for _ in range(20))
    assert proc.stop(signal.SIGTERM) == 0
    assert proc.output.count("shutting down") == 2 and "stopped" in proc.output


def test_sigint_also_stops_cleanly(procs: list[ServerProcess]) -> None:
    proc = ServerProcess("-m", "examples.tiny", "--port", "0", "--workers", "1", cwd=ROOT)
    procs.append(proc)
    assert fetch(proc.port()) == b"Hello, World!"
    assert proc.stop(signal.SIGINT) == 0


def test_crashed_worker_is_replaced_and_the_others_keep_serving(procs: list[ServerProcess]) -> None:
    proc = ServerProcess("-m", "examples.tiny", "--port", "0", "--workers", "2", cwd=ROOT)
    procs.append(proc)
    port = proc.port()
    victim = int(proc.wait_for(r"worker 0 started \(pid (\d+)\)").group(1))
    proc.wait_for(r"worker 1 started")
    os.kill(victim, signal.SIGKILL)
    proc.wait_for(rf"worker 0 \(pid {victim}\) died")
    proc.lines.clear()  # only lines logged after the death count from here on
    replacement = int(proc.wait_for(r"worker 0 started \(pid (\d+)\)").group(1))
    assert replacement != victim
    assert all(fetch(port) == b"Hello, World!" for _ in range(20))
    assert proc.stop() == 0


def test_workers_exit_when_the_supervisor_is_killed(procs: list[ServerProcess]) -> None:
    proc = ServerProcess("-m", "examples.tiny", "--port", "0", "--workers", "2", cwd=ROOT)
    procs.append(proc)
    proc.port()
    pids = [int(proc.wait_for(rf"worker {i} started \(pid (\d+)\)").group(1)) for i in range(2)]
    proc.popen.kill()
    proc.popen.wait()
    deadline = time.monotonic() + 5
    alive = pids
    while alive and time.monotonic() < deadline:
        time.sleep(0.05)
        alive = [pid for pid in pids if Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]]
    assert not alive, f"orphaned workers still running: {alive}"


def test_cli_serves_a_module_attribute_and_honours_vanilla_workers(procs: list[ServerProcess]) -> None:
    proc = ServerProcess("-m", "vanilla_async", "examples.tiny:handler", "--port", "0", "--backend", "selectors",
                         "--log-level", "INFO", env={"VANILLA_WORKERS": "3"}, cwd=ROOT)
    procs.append(proc)
    port = proc.port()
    proc.wait_for(r"backend=selectors, workers=3")
    assert fetch(port, b"GET /json HTTP/1.1\r\nHost: t\r\n\r\n").startswith(b'{"message": "Hello, World!"')
    assert proc.stop() == 0


@pytest.mark.parametrize("how", ["flag", "environment"])
def test_cli_runs_the_trio_backend(procs: list[ServerProcess], how: str) -> None:
    flag = ["--backend", "trio"] if how == "flag" else []
    env = {"VANILLA_ASYNC_BACKEND": "trio"} if how == "environment" else {}
    proc = ServerProcess("-m", "vanilla_async", "examples.tiny:handler", "--port", "0", "--workers", "2", *flag,
                         env=env, cwd=ROOT)
    procs.append(proc)
    port = proc.port()
    proc.wait_for(r"backend=trio, workers=2")
    for _ in range(4):
        assert fetch(port, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").endswith(b"Hello, World!")
    assert proc.stop() == 0  # SIGTERM reaches trio workers through the reactor's signal handling


def test_cli_reports_a_bad_target_clearly() -> None:
    result = subprocess.run([sys.executable, "-m", "vanilla_async", "examples.tiny:nope", "--port", "0"],
                            cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "has no attribute 'nope'" in result.stderr


def test_graceful_stop_waits_for_a_slow_request(procs: list[ServerProcess], tmp_path: Path) -> None:
    app = tmp_path / "slow_app.py"
    app.write_text(
        "from vanilla_async import respond, sleep\n"
        "def handler(req, out):\n"
        "    if req.path == b'/slow':\n"
        "        return slow(out)\n"
        "    respond(out, 200, b'fast')\n"
        "def slow(out):\n"
        "    yield sleep(0.5)\n"
        "    respond(out, 200, b'slow done')\n"
    )
    proc = ServerProcess("-m", "vanilla_async", "slow_app:handler", "--port", "0", "--workers", "1",
                env={"PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}, cwd=ROOT)
    procs.append(proc)
    port = proc.port()
    proc.wait_for("worker 0 started")
    with Client(("127.0.0.1", port)) as client:
        client.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
        time.sleep(0.1)
        proc.popen.send_signal(signal.SIGTERM)
        assert client.read_response().body == b"slow done"
    assert proc.popen.wait(15) == 0  # the first SIGTERM is enough: drained, then exited cleanly


def test_worker_count_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    def handler(req: object, out: bytearray) -> None:
        return None

    assert ServerConfig(handler=handler, workers=4).worker_count() == 4
    monkeypatch.setenv("VANILLA_WORKERS", "5")
    assert ServerConfig(handler=handler).worker_count() == 5
    monkeypatch.delenv("VANILLA_WORKERS")
    assert ServerConfig(handler=handler).worker_count() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("VANILLA_WORKERS", "many")
    with pytest.raises(ConfigError, match="VANILLA_WORKERS"):
        ServerConfig(handler=handler).worker_count()
    with pytest.raises(ConfigError, match="port"):
        ServerConfig(handler=handler, port=70000)


def test_server_shutdown_from_another_thread_returns_cleanly(tmp_path: Path) -> None:
    script = tmp_path / "embed.py"
    script.write_text(
        "import logging, threading, urllib.request\n"
        "from vanilla_async import Server, ServerConfig, respond\n"
        "def handler(req, out):\n"
        "    respond(out, 200, b'embedded')\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "server = Server(ServerConfig(handler=handler, port=0, workers=2))\n"
        "def probe():\n"
        "    body = urllib.request.urlopen(server.url + '/', timeout=5).read()\n"
        "    print('BODY', body.decode(), flush=True)\n"
        "    server.shutdown(grace=0.5)\n"
        "threading.Timer(1.0, probe).start()\n"
        "print('EXIT', server.run(), flush=True)\n"
    )
    result = subprocess.run([sys.executable, str(script)], cwd=ROOT, capture_output=True, text=True, timeout=30,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert "BODY embedded" in result.stdout and "EXIT 0" in result.stdout, result.stderr


def test_repeated_stop_signals_still_end_in_a_clean_exit(procs: list[ServerProcess]) -> None:
    proc = ServerProcess("-m", "examples.tiny", "--port", "0", "--workers", "2", cwd=ROOT)
    procs.append(proc)
    assert fetch(proc.port()) == b"Hello, World!"
    deadline = time.monotonic() + 5
    while proc.popen.poll() is None and time.monotonic() < deadline:  # Ctrl-C held down, as it were
        proc.popen.send_signal(signal.SIGTERM)
        time.sleep(0.005)
    assert proc.wait(10) == 0, proc.output
