"""Memory per idle keep-alive connection: N connections to one worker of examples.tiny, all answered.

For each N (default 1,000, 5,000, 10,000) a fresh server (one worker process) is started; N
connections are opened in batches of 500, each batch answered (``GET /``) before the next; then
every connection asks again, all at once. Reported: the worker's VmRSS before and with the N idle
connections (from /proc/<worker pid>/status), the delta per connection, the worker's fd count, the
kernel's TCP memory (/proc/net/sockstat, both ends of every connection: client and server are on
this machine), and the time for the all-at-once round.

    python3 bench/keepalive_10k.py [--counts 1000,5000,10000]

Needs RLIMIT_NOFILE >= N + 500 in both processes (raised here up to the hard limit). Prints a
markdown table (pasted into bench/results/HARDENING.md).
"""

from __future__ import annotations

import argparse
import logging
import re
import resource
import selectors
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GET = b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n"
ANSWER_END = b"Hello, World!"
log = logging.getLogger("keepalive_10k")


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def tcp_mem_kib() -> int:
    """The kernel's TCP buffer memory, all sockets (pages in /proc/net/sockstat)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            fields = line.split()
            return int(fields[fields.index("mem") + 1]) * (resource.getpagesize() // 1024)
    return 0


def start() -> tuple[subprocess.Popen[str], int, int]:
    """examples.tiny, one worker: (process, port, worker pid)."""
    proc = subprocess.Popen([sys.executable, "-m", "examples.tiny", "--port", "0", "--workers", "1"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    port = pid = 0
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not (port and pid):
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        if m := re.search(r"worker 0 started \(pid (\d+)\)", line):
            pid = int(m.group(1))
        if m := re.search(r"serving http://127\.0\.0\.1:(\d+)", line):
            port = int(m.group(1))
    if not (port and pid):
        proc.kill()
        raise RuntimeError("examples.tiny did not start; run it by hand to see why")
    return proc, port, pid


def ask_all(socks: list[socket.socket], timeout: float = 60.0) -> int:
    """Send GET / on every socket, read until each answer ends; returns how many were answered."""
    pending: dict[int, bytes] = {}
    with selectors.DefaultSelector() as sel:
        for i, sock in enumerate(socks):
            sock.send(GET)
            pending[i] = b""
            sel.register(sock, selectors.EVENT_READ, i)
        deadline = time.monotonic() + timeout
        done = 0
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(0.5):
                i = key.data
                data = socks[i].recv(65536)
                buf = pending[i] + data
                if buf.startswith(b"HTTP/1.1 200") and buf.endswith(ANSWER_END):
                    del pending[i]
                    sel.unregister(socks[i])
                    done += 1
                elif not data:
                    raise RuntimeError(f"connection {i} closed: {buf[:100]!r}")
                else:
                    pending[i] = buf
    return done


def measure(count: int) -> dict[str, float]:
    proc, port, pid = start()
    socks: list[socket.socket] = []
    try:
        warm = socket.create_connection(("127.0.0.1", port))
        for _ in range(50):
            warm.sendall(GET)
            buf = b""
            while not buf.endswith(ANSWER_END):
                buf += warm.recv(65536)
        warm.close()
        time.sleep(0.3)
        rss0, fds0, tcp0 = status_kib(pid, "VmRSS"), len(list(Path(f"/proc/{pid}/fd").iterdir())), tcp_mem_kib()
        while len(socks) < count:
            batch = []
            for _ in range(min(500, count - len(socks))):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.setblocking(False)
                batch.append(s)
            socks += batch
            if ask_all(batch) != len(batch):
                raise RuntimeError("a batch was not answered")
        time.sleep(0.3)
        rss1, fds1, tcp1 = status_kib(pid, "VmRSS"), len(list(Path(f"/proc/{pid}/fd").iterdir())), tcp_mem_kib()
        started = time.monotonic()
        answered = ask_all(socks)
        round_s = time.monotonic() - started
        rss2 = status_kib(pid, "VmRSS")
        return {"count": count, "answered": answered, "rss0": rss0, "rss1": rss1, "rss2": rss2, "fds": fds1 - fds0,
                "per_conn": (rss1 - rss0) * 1024 / count, "tcp_kib": tcp1 - tcp0, "round_s": round_s}
    finally:
        for s in socks:
            s.close()
        proc.terminate()
        proc.wait(20)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="1000,5000,10000")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    counts = [int(c) for c in args.counts.split(",")]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(counts) + 500
    if hard != resource.RLIM_INFINITY and hard < need:
        log.error("RLIMIT_NOFILE hard limit %d < %d: raise it (ulimit -Hn) first", hard, need)
        return 2
    if soft != resource.RLIM_INFINITY and soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    rows = [measure(c) for c in counts]
    lines = [
        "| connections | answered (all at once) | worker RSS before → with them | RSS per idle connection | "
        "worker fds added | kernel TCP memory | all-at-once round |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(f"| {r['count']:,.0f} | {r['answered']:,.0f} | {r['rss0'] / 1024:.1f} → {r['rss1'] / 1024:.1f} MiB | "
                     f"{r['per_conn']:,.0f} B | {r['fds']:,.0f} | {r['tcp_kib']:,.0f} KiB | {r['round_s']:.2f} s |")
    sys.stdout.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
