"""SSE fan-out: N concurrent streams on ONE worker, broadcast latency and memory per stream.

Both servers expose ``GET /events`` (subscribe) and ``POST /broadcast`` (deliver the body to
every subscriber): ours is ``examples.sse``; the peer is sse-starlette on uvicorn + uvloop
(bench/peers/sse_starlette_app.py). Server on CPU 0, this client on CPU 1.

1. open N streams (in waves) and wait for each stream's response head;
2. RSS per stream = (RSS of the server's process tree with N streams − before) / N;
3. K broadcasts, one at a time: the clock starts just before the POST is sent and stops, per
   subscriber, when the message *arrived* in its socket — the kernel's receive timestamp
   (SO_TIMESTAMPNS), so the pure-Python client's own time to read N sockets is not counted.
   Reported: p50/p99 over every (subscriber, broadcast) pair and the mean time until *all* N
   subscribers had a message.

The **floor** (``bare``): a minimal epoll server in this file (``--bare-server PORT``) that answers
``GET /events`` with a head and, on ``POST /broadcast``, ``send``\ s the same framed event to every
stream in a plain loop — no framework, no generators: what the fan-out cannot beat. Ours should
have every subscriber served within 1.5x of its time, measured in the same run.

**Cross-host** (``pg-cross``, needs PostgreSQL's server programs): two instances of
``examples.sse --bus postgres`` on one temporary cluster, ``--cross-streams`` subscribers on B,
broadcasts posted to A: the latency through NOTIFY.

    python3 bench/sse_bench.py [--streams 10000] [--broadcasts 20] [--only bare,ours,pg-cross,sse-starlette]
"""

from __future__ import annotations

import argparse
import http.client
import logging
import os
import re
import resource
import select
import socket
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux value; not exported by Python 3.11
BENCH = ROOT / "bench"
log = logging.getLogger("sse_bench")


def tree(pid: int) -> list[int]:
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry))
            except OSError:
                pass
    return pids


def rss_kib(pid: int) -> int:
    total = 0
    for p in tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def bare_server(port: int) -> None:
    """The floor: accept, answer GET /events with a head, POST /broadcast with a loop of sends."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    listener = socket.create_server(("127.0.0.1", port), backlog=4096)
    listener.setblocking(False)
    ep = select.epoll()
    ep.register(listener.fileno(), select.EPOLLIN)
    conns: dict[int, socket.socket] = {}
    streams: list[socket.socket] = []
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    while True:
        for fd, _ in ep.poll():
            if fd == listener.fileno():
                while True:
                    try:
                        sock, _ = listener.accept()
                    except BlockingIOError:
                        break
                    sock.setblocking(False)
                    conns[sock.fileno()] = sock
                    ep.register(sock.fileno(), select.EPOLLIN)
                continue
            sock = conns[fd]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            if not data:
                ep.unregister(fd)
                conns.pop(fd).close()
                if sock in streams:
                    streams.remove(sock)
                continue
            if data.startswith(b"GET /events"):
                sock.send(head)
                streams.append(sock)
            elif data.startswith(b"POST /broadcast"):
                body = data.partition(b"\r\n\r\n")[2]
                event = b"id: 1\ndata: " + body + b"\n\n"
                framed = b"%x\r\n%s\r\n" % (len(event), event)
                for stream in streams:  # the loop being measured
                    try:
                        stream.send(framed)
                    except OSError:
                        pass
                sock.send(b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")


def start(name: str, port: int, env_extra: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    if name == "bare":
        cmd = [sys.executable, str(Path(__file__).resolve()), "--bare-server", str(port)]
        cwd = ROOT
    elif name in ("ours", "pg-a", "pg-b"):
        cmd = [sys.executable, "-m", "examples.sse", "--port", str(port), "--workers", "1", "--log-level", "WARNING"]
        cwd = ROOT
    else:
        cmd = [str(BENCH / ".venv/bin/python"), "-m", "uvicorn", "sse_starlette_app:app", "--port", str(port),
               "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
        cwd = BENCH / "peers"
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env_extra or {})}
    proc = subprocess.Popen(["taskset", "-c", "0", *cmd], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{name} did not start on port {port}")


def subscribe(port: int, count: int) -> list[socket.socket]:
    request = b"GET /events HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n"
    socks: list[socket.socket] = []
    for start_at in range(0, count, 500):
        wave = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(min(500, count - start_at))]
        for s in wave:
            s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            s.sendall(request)
        for s in wave:
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(4096)
                if not chunk:
                    raise RuntimeError("server closed a stream before its head")
                head += chunk
            if not head.startswith(b"HTTP/1.1 200"):
                raise RuntimeError(f"subscribe failed: {head[:60]!r}")
            s.setblocking(False)
        socks += wave
    return socks


def broadcast_round(port: int, socks: list[socket.socket], tag: bytes) -> tuple[list[float], float]:
    ep = select.epoll()
    by_fd = {s.fileno(): s for s in socks}
    for fd in by_fd:
        ep.register(fd, select.EPOLLIN)
    tails = dict.fromkeys(by_fd, b"")
    arrivals: list[float] = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    t0 = time.time()  # the kernel stamps packets with CLOCK_REALTIME
    conn.request("POST", "/broadcast", body=tag)
    answer = conn.getresponse()
    answer.read()
    if not 200 <= answer.status < 300:
        raise RuntimeError(f"POST /broadcast answered {answer.status} {answer.reason}")
    pending = set(by_fd)
    deadline = time.monotonic() + 20
    while pending and time.monotonic() < deadline:
        for fd, _ in ep.poll(0.5):
            if fd not in pending:
                continue
            try:
                data, ancillary, _flags, _addr = by_fd[fd].recvmsg(65536, 1024)
            except BlockingIOError:
                continue
            seen = tails[fd] + data
            if tag in seen:
                stamp = next((c for level, kind, c in ancillary if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS), None)
                if stamp is None:
                    raise RuntimeError("no SO_TIMESTAMPNS receive timestamp: the kernel did not stamp the packet")
                seconds, nanos = struct.unpack("qq", stamp[:16])
                arrivals.append(seconds + nanos / 1e9 - t0)
                pending.discard(fd)
                ep.unregister(fd)
            tails[fd] = seen[-64:]
    everyone = max(arrivals) if arrivals else float("inf")
    ep.close()
    conn.close()
    if pending:
        raise RuntimeError(f"{len(pending)} subscribers never received {tag!r}")
    return arrivals, everyone


def cross_host(streams: int, rounds: int) -> dict[str, float]:
    """Publish on instance A, receive on instance B's ``streams`` subscribers, through PostgreSQL."""
    from vanilla_async.pgcluster import TemporaryCluster

    with TemporaryCluster() as cluster:
        env = {"DATABASE_URL": cluster.dsn, "SSE_BUS": "postgres"}
        a, b = start("pg-a", 18390, env), start("pg-b", 18391, env)
        try:
            time.sleep(1.0)  # both receivers LISTENing
            socks = subscribe(18391, streams)
            time.sleep(0.5)
            samples: list[float] = []
            alls: list[float] = []
            for k in range(rounds):
                lat, everyone = broadcast_round(18390, socks, b"x-%06d" % k)
                samples += lat
                alls.append(everyone)
            for s in socks:
                s.close()
        finally:
            for proc in (a, b):
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
    samples.sort()
    result = {"streams": streams, "rss_per_stream_kib": 0.0, "p50_ms": samples[len(samples) // 2] * 1e3,
              "p99_ms": samples[int(len(samples) * 0.99) - 1] * 1e3, "all_ms": statistics.mean(alls) * 1e3}
    log.info("pg-cross: %s", {k: round(v, 2) for k, v in result.items()})
    return result


def run(name: str, port: int, streams: int, rounds: int) -> dict[str, float]:
    if name == "pg-cross":
        return cross_host(streams, rounds)
    proc = start(name, port)
    try:
        time.sleep(0.5)
        before = rss_kib(proc.pid)
        socks = subscribe(port, streams)
        time.sleep(0.5)
        after = rss_kib(proc.pid)
        samples: list[float] = []
        alls: list[float] = []
        for k in range(rounds):
            lat, everyone = broadcast_round(port, socks, b"msg-%06d" % k)
            samples += lat
            alls.append(everyone)
        for s in socks:
            s.close()
        samples.sort()
        result = {
            "streams": streams,
            "rss_per_stream_kib": (after - before) / streams,
            "p50_ms": samples[len(samples) // 2] * 1e3,
            "p99_ms": samples[int(len(samples) * 0.99) - 1] * 1e3,
            "all_ms": statistics.mean(alls) * 1e3,
        }
        log.info("%s: %s", name, {k: round(v, 2) for k, v in result.items()})
        return result
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=10_000)
    parser.add_argument("--broadcasts", type=int, default=20)
    parser.add_argument("--only", default="bare,ours,pg-cross,sse-starlette")
    parser.add_argument("--cross-streams", type=int, default=1000)
    parser.add_argument("--bare-server", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(BENCH / "results" / "SSE.md"))
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.sched_setaffinity(0, {1})
    results = {}
    for i, name in enumerate(args.only.split(",")):
        streams = args.cross_streams if name == "pg-cross" else args.streams
        results[name] = run(name, 18300 + i, streams, args.broadcasts)
    lines = [
        f"# SSE fan-out, {args.streams:,} streams on one worker ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})", "",
        f"Server on CPU 0, client on CPU 1; {args.broadcasts} broadcasts, one at a time. Latency = from just before",
        "`POST /broadcast` until the message arrived in a subscriber's socket (the kernel's receive timestamp).", "",
        "| server | streams | RSS per stream | p50 | p99 | until all had it (mean) |", "|---|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        lines.append(f"| {name} | {int(r['streams']):,} | {r['rss_per_stream_kib']:.1f} KiB | {r['p50_ms']:.1f} ms | "
                     f"{r['p99_ms']:.1f} ms | {r['all_ms']:.1f} ms |")
    if "ours" in results and "bare" in results:
        ratio = results["ours"]["all_ms"] / results["bare"]["all_ms"]
        lines += ["", f"Until all had it, ours ÷ the bare send loop: {ratio:.2f} (target <= 1.5)."]
    if "ours" in results and "sse-starlette" in results:
        o, p = results["ours"], results["sse-starlette"]
        lines += ["", f"p99 latency ours ÷ sse-starlette: {o['p99_ms'] / p['p99_ms']:.2f}; RSS per stream ours ÷ "
                  f"sse-starlette: {o['rss_per_stream_kib'] / p['rss_per_stream_kib']:.2f}. Target: p99 < 100 ms."]
    Path(args.out).write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
