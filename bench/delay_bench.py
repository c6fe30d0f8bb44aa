"""Many concurrent parked requests: N clients each ask ``GET /delay?ms=200`` of examples.async_timer.

The server (one worker) runs on CPU 0, this client on CPU 1. All N connections are opened
first (not timed); then every request is sent in one burst and the clock runs until the last
response is complete. A server that parks requests on its reactor finishes in ~200 ms plus its
per-request overhead; one that blocks a worker per request would need N × 200 ms.

    python3 bench/delay_bench.py [--counts 1000,10000] [--ms 200]

Targets (issue: async in depth): 1,000 in < 0.5 s, 10,000 in < 1.5 s. Writes bench/results/DELAY.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import resource
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
log = logging.getLogger("delay_bench")


def tree_ticks(pid: int) -> int:
    """utime+stime (clock ticks) of ``pid`` and its children."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total


def start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        ["taskset", "-c", "0", sys.executable, "-m", "examples.async_timer", "--port", "0", "--workers", "1"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if m := re.search(r"serving http://127\.0\.0\.1:(\d+)", line):
            return proc, int(m.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise RuntimeError("examples.async_timer did not start; run it by hand to see why")


def connect_all(port: int, count: int) -> list[socket.socket]:
    socks: list[socket.socket] = []
    for start in range(0, count, 500):  # waves, so the listen backlog never overflows
        wave = []
        for _ in range(min(500, count - start)):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            wave.append(s)
        ep = select.epoll()
        for s in wave:
            ep.register(s.fileno(), select.EPOLLOUT)
        pending = len(wave)
        deadline = time.monotonic() + 10
        while pending and time.monotonic() < deadline:
            for fd, _ in ep.poll(1):
                ep.unregister(fd)
                pending -= 1
        ep.close()
        if pending:
            raise RuntimeError(f"{pending} connections did not complete")
        socks += wave
    return socks


def burst(socks: list[socket.socket], ms: int) -> float:
    """Send every request, then read until every response is complete; returns seconds."""
    request = b"GET /delay?ms=%d HTTP/1.1\r\nHost: bench\r\n\r\n" % ms
    ep = select.epoll()
    bufs: dict[int, bytes] = {}
    by_fd = {s.fileno(): s for s in socks}
    started = time.monotonic()
    for s in socks:
        s.send(request)
        ep.register(s.fileno(), select.EPOLLIN)
        bufs[s.fileno()] = b""
    remaining = len(socks)
    deadline = started + 30
    while remaining and time.monotonic() < deadline:
        for fd, _ in ep.poll(1):
            data = by_fd[fd].recv(65536)
            buf = bufs[fd] + data
            bufs[fd] = buf
            head, sep, body = buf.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            if not data or (sep and m and len(body) >= int(m.group(1))):
                if not buf.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"unexpected response {buf[:80]!r}")
                ep.unregister(fd)
                remaining -= 1
    elapsed = time.monotonic() - started
    ep.close()
    if remaining:
        raise RuntimeError(f"{remaining} responses missing after 30 s")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1000,10000")
    parser.add_argument("--ms", type=int, default=200)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "DELAY.md"))
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.sched_setaffinity(0, {1})
    rows = []
    for count in [int(c) for c in args.counts.split(",")]:
        proc, port = start_server()
        try:
            socks = connect_all(port, count)
            ticks0 = tree_ticks(proc.pid)
            elapsed = burst(socks, args.ms)
            cpu = (tree_ticks(proc.pid) - ticks0) / os.sysconf("SC_CLK_TCK")
            for s in socks:
                s.close()
            target = {1000: 0.5, 10000: 1.5}.get(count)
            verdict = "" if target is None else ("met" if elapsed < target else f"missed by {elapsed - target:.2f} s")
            rows.append((count, elapsed, cpu, target, verdict))
            log.info("%d × /delay?ms=%d: %.3f s, server CPU %.3f s (%.0f µs/request) %s",
                     count, args.ms, elapsed, cpu, cpu / count * 1e6, verdict)
        finally:
            proc.terminate()
            proc.wait(10)
    lines = [
        f"# Concurrent parked requests ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
        f"One worker on CPU 0 (examples.async_timer), client on CPU 1; every request `GET /delay?ms={args.ms}`,",
        "connections opened first, then all requests sent in one burst; time until the last response.", "",
        "| concurrent requests | total time | target | server CPU | CPU µs/request |", "|---:|---:|---:|---:|---:|",
    ]
    for count, elapsed, cpu, target, verdict in rows:
        goal = f"< {target} s ({verdict})" if target else "—"
        lines.append(f"| {count:,} | {elapsed:.3f} s | {goal} | {cpu:.2f} s | {cpu / count * 1e6:.0f} |")
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
