"""SIGTERM under load, repeated: how many requests that were written to an established connection
get no answer because the shutdown raced them.

Each run starts a server process (two workers; ``/`` answers at once, ``/slow`` parks 0.5 s), runs
24 client threads asking ``/`` and 8 asking ``/slow`` (a new connection per request), sends SIGTERM
once the load is steady, and classifies every request: *accepted* (connected, request written) or
refused; accepted ones answered 200 or lost (reset / closed with no answer). A server that drains
properly loses none. tests/test_hardening.py asserts the part that holds today (requests in progress
at the signal all complete) and, as strict xfails, the three races counted here.

    python3 bench/storms.py [--runs 20] [--pythonpath DIR]

``--pythonpath DIR`` runs the server from another checkout (e.g. one with a proposed fix applied).
Prints a markdown summary (pasted into bench/results/HARDENING.md).
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("storms")

APP = '''
import os
from vanilla_async import ServerConfig, respond, sleep


def handler(req, out):
    if req.path == b"/slow":
        return slow(out)
    respond(out, 200, b"fast")


def slow(out):
    yield sleep(0.5)
    respond(out, 200, b"slow")


config = ServerConfig(handler=handler, grace=10.0)
'''


class Run(NamedTuple):
    accepted: int
    answered: int
    lost: int
    refused: int
    exit_code: int


def lane(port: int, path: bytes, until: threading.Event, tally: list[str]) -> None:
    raw = b"GET " + path + b" HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
    for _ in range(20_000):
        if until.is_set():
            return
        try:
            sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            tally.append("refused")
            until.wait(0.01)
            continue
        with sock:
            try:
                sock.sendall(raw)
            except OSError:
                tally.append("refused")
                continue
            data = b""
            try:
                while chunk := sock.recv(65536):
                    data += chunk
            except OSError:
                pass
            tally.append("answered" if data.startswith(b"HTTP/1.1 200") and data.endswith((b"fast", b"slow")) else "lost")


def one_run(app_dir: Path, pythonpath: str) -> Run:
    env = {**os.environ, "PYTHONPATH": f"{app_dir}{os.pathsep}{pythonpath}"}
    proc = subprocess.Popen([sys.executable, "-m", "vanilla_async", "storm_app:config", "--port", "0", "--workers", "2"],
                            cwd=pythonpath, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    port = 0
    deadline = time.monotonic() + 20
    while not port and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if m := re.search(r"serving http://127\.0\.0\.1:(\d+)", line):
            port = int(m.group(1))
        elif not line and proc.poll() is not None:
            raise RuntimeError("the server did not start")
    tally: list[str] = []
    until = threading.Event()
    threads = [threading.Thread(target=lane, args=(port, p, until, tally)) for p in [b"/"] * 24 + [b"/slow"] * 8]
    for t in threads:
        t.start()
    time.sleep(0.8)
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(30)
    until.set()
    for t in threads:
        t.join(30)
    proc.stdout.read()
    answered, lost, refused = tally.count("answered"), tally.count("lost"), tally.count("refused")
    return Run(answered + lost, answered, lost, refused, code)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--pythonpath", default=str(ROOT), help="checkout to run the server from")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "storm_app.py").write_text(APP)
        runs = []
        for i in range(args.runs):
            runs.append(one_run(Path(tmp), args.pythonpath))
            log.info("run %d: %s", i + 1, runs[-1])
    lost_runs = sum(r.lost > 0 for r in runs)
    sys.stdout.write(
        f"| server | runs | accepted requests | lost | runs with a loss | worst run | exit codes |\n"
        f"|---|---:|---:|---:|---:|---:|---|\n"
        f"| {args.pythonpath} | {len(runs)} | {sum(r.accepted for r in runs):,} | {sum(r.lost for r in runs)} | "
        f"{lost_runs} | {max(r.lost for r in runs)} | {sorted({r.exit_code for r in runs})} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
