"""A short epoll-vs-io_uring comparison of `examples.tiny` (one worker) under ``wrk``.

Run from the repository root: ``python -m examples.io_uring_demo.measure [--rounds 3] [--seconds 5]``.
Needs ``wrk`` and ``taskset`` (Debian: ``wrk``, ``util-linux``) and two cores: the server is pinned
to core 0, wrk (one thread, 64 keep-alive connections, plaintext ``GET /``) to core 1. Backends
alternate within each round, so drift of a shared machine hits both alike. For each run it prints
requests/s and the worker's CPU time per request (utime+stime from ``/proc/PID/stat`` before and
after); then the io_uring/epoll ratios per round. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ("main",)

ROOT = Path(__file__).resolve().parents[2]
TICK = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime (fields 14 and 15 of stat(5))


def _worker_pid(supervisor: int, deadline: float) -> int:
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{supervisor}/task/{supervisor}/children") as f:
                children = f.read().split()
        except FileNotFoundError:
            children = []
        if children:
            return int(children[0])
        time.sleep(0.05)
    raise RuntimeError("the server forked no worker")


def _wait_listening(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def run_once(backend: str, port: int, seconds: int) -> tuple[float, float]:
    """(requests/s, worker CPU µs per request) for one wrk run against a fresh server."""
    server = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "examples.tiny", "--backend", backend, "--workers", "1",
         "--port", str(port), "--log-level", "WARNING"], cwd=ROOT)
    try:
        deadline = time.monotonic() + 15
        _wait_listening(port, deadline)
        worker = _worker_pid(server.pid, deadline)
        before = _cpu_seconds(worker)
        out = subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s", f"http://127.0.0.1:{port}/"],
                             capture_output=True, text=True, timeout=seconds + 30, check=True).stdout
        cpu = _cpu_seconds(worker) - before
        total = re.search(r"(\d+) requests in", out)
        rate = re.search(r"Requests/sec:\s+([\d.]+)", out)
        if total is None or rate is None:
            raise RuntimeError(f"cannot read wrk's output:\n{out}")
        return float(rate.group(1)), cpu / int(total.group(1)) * 1e6
    finally:
        server.terminate()
        server.wait(timeout=15)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m examples.io_uring_demo.measure")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--port", type=int, default=18080)
    args = parser.parse_args(argv)
    ratios: list[tuple[float, float]] = []
    for round_ in range(1, args.rounds + 1):
        results: dict[str, tuple[float, float]] = {}
        for backend in ("epoll", "io_uring") if round_ % 2 else ("io_uring", "epoll"):
            results[backend] = run_once(backend, args.port, args.seconds)
            rps, us = results[backend]
            print(f"round {round_} {backend:8s} {rps:10.0f} req/s {us:7.2f} µs CPU/req", flush=True)
        ratio = (results["io_uring"][0] / results["epoll"][0], results["io_uring"][1] / results["epoll"][1])
        ratios.append(ratio)
        print(f"round {round_} io_uring/epoll: req/s x{ratio[0]:.3f}, CPU/req x{ratio[1]:.3f}", flush=True)
    n = len(ratios)
    print(f"mean io_uring/epoll over {n} rounds: req/s x{sum(r[0] for r in ratios) / n:.3f}, "
          f"CPU/req x{sum(r[1] for r in ratios) / n:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
