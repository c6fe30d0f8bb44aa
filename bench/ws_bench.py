"""WebSocket bench: vanilla_async against uvicorn + websockets (short runs, shared machine).

    python bench/ws_bench.py [--seconds 2] [--conns 1000]

Each server runs alone, one worker, pinned to CPU 0 (``taskset -c 0``); the client is this process
on CPU 1, speaking raw pre-masked frames over plain sockets (a library client would be the bottleneck).

* ``echo 1``   round trips per second on one connection (send a 32-byte text frame, read the echo).
* ``echo 64``  the same over 64 connections, each with one message in flight.
* ``bcast N``  N connections idle, then one message that the server sends to all of them: the time
  until the last one has it (the server's app: a text message starting with ``!`` goes to everyone).
* ``KiB/conn`` server RSS growth per idle connection (after N connections and one broadcast), with
  permessage-deflate offered and without.

Every run is at most ``--seconds`` (default 2). Figures vary with the machine's other load.
One run on the shared 2-core machine (1,000 connections; Python 3.11; uvicorn 0.55 + websockets 17.4):

    server          echo 1 /s  echo 64 /s   bcast 1000  KiB/conn  KiB/conn defl
    vanilla             14102       33050       12.7ms       2.3           31.0
    vanilla-trio        12830       20460       10.7ms       6.7           28.9
    uvicorn             16810       22674       29.9ms      24.9          100.0

A miss: one connection's echo is ~15 % behind uvicorn (per message we pay a FrameReader feed, a
ParkingLot unpark, a generator resume and a call_soon'd flush). socketify was not tried (no wheel
here); 10,000 connections were not run (time).
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import subprocess
import sys
import time
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="

OURS = r'''
import sys
from vanilla_async import ServerConfig, Limits, websocket
members = set()
def session(ws):
    members.add(ws)
    try:
        while True:
            msg = yield ws.receive()
            if msg is None:
                return
            if isinstance(msg, str) and msg.startswith("!"):
                websocket.broadcast(members, msg)
            else:
                ws.send(msg)
    finally:
        members.discard(ws)
deflate = websocket.DeflateOptions(server_no_context_takeover=True)
def handler(req, out):
    return websocket.accept(req, out, session, deflate=deflate)
config = ServerConfig(handler=handler, limits=Limits(max_connections=20000))
from vanilla_async.cli import run_app
sys.exit(run_app(config, ["--port", sys.argv[1], "--workers", "1", "--log-level", "WARNING"]))
'''

UVICORN = r'''
import sys, uvicorn
members = set()
async def app(scope, receive, send):
    if scope["type"] != "websocket":
        return
    await receive()
    await send({"type": "websocket.accept"})
    members.add(send)
    try:
        while True:
            event = await receive()
            if event["type"] == "websocket.disconnect":
                return
            text = event.get("text")
            if text is not None and text.startswith("!"):
                for other in list(members):
                    try:
                        await other({"type": "websocket.send", "text": text})
                    except Exception:
                        pass
            elif text is not None:
                await send({"type": "websocket.send", "text": text})
            else:
                await send({"type": "websocket.send", "bytes": event["bytes"]})
    finally:
        members.discard(send)
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), ws="websockets", log_level="warning", lifespan="off")
'''


def masked_text(text: bytes) -> bytes:
    assert len(text) < 126
    return bytes((0x81, 0x80 | len(text))) + b"\0\0\0\0" + text  # an all-zero mask: payload as is


def upgrade(port: int, deflate: bool) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    ext = b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" if deflate else b""
    sock.sendall(b"GET /ws HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n" + ext + b"\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("upgrade refused")
        head += chunk
    assert head.startswith(b"HTTP/1.1 101"), head[:100]
    return sock


def rss_kib(pid: int) -> int:
    total = 0
    for p in [pid] + [int(c) for c in _children(pid)]:
        with open(f"/proc/{p}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


def _children(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return f.read().split()
    except OSError:
        return []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(name: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    code = OURS if name.startswith("vanilla") else UVICORN
    env = dict(os.environ, PYTHONPATH=ROOT)
    if name == "vanilla-trio":
        env["VANILLA_ASYNC_BACKEND"] = "trio"
    proc = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", code, str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"{name} did not start")


def echo(port: int, conns: int, seconds: float) -> float:
    socks = [upgrade(port, False) for _ in range(conns)]
    frame = masked_text(b"x" * 32)
    reply_len = 2 + 32
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ, [0])
        s.send(frame)
    done = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(1):
            sock: Any = key.fileobj
            got = len(sock.recv(65536))
            key.data[0] += got
            while key.data[0] >= reply_len:
                key.data[0] -= reply_len
                done += 1
                sock.send(frame)
    for s in socks:
        s.close()
    return done / seconds


def bcast(pid: int, port: int, conns: int, deflate: bool) -> tuple[float, float]:
    before = rss_kib(pid)
    socks = [upgrade(port, deflate) for _ in range(conns)]
    time.sleep(0.3)
    message = masked_text(b"!" + b"news " * 20)
    start_t = time.monotonic()
    socks[0].sendall(message)
    for s in socks:
        s.settimeout(5)
        s.recv(4096)  # (one small frame: one recv)
    elapsed = time.monotonic() - start_t
    kib = (rss_kib(pid) - before) / conns
    for s in socks:
        s.close()
    return elapsed, kib


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--conns", type=int, default=1000)
    parser.add_argument("--servers", default="vanilla,vanilla-trio,uvicorn")
    args = parser.parse_args()
    os.sched_setaffinity(0, {1})
    print(f"{'server':14} {'echo 1 /s':>10} {'echo 64 /s':>11} {'bcast ' + str(args.conns):>12} "
          f"{'KiB/conn':>9} {'KiB/conn defl':>14}")
    for name in args.servers.split(","):
        proc, port = start(name)
        try:
            one = echo(port, 1, args.seconds)
            many = echo(port, 64, args.seconds)
            t_plain, kib_plain = bcast(proc.pid, port, args.conns, False)
            time.sleep(0.3)
            t_defl, kib_defl = bcast(proc.pid, port, args.conns, True)
            print(f"{name:14} {one:10.0f} {many:11.0f} {t_plain * 1000:10.1f}ms {kib_plain:9.1f} {kib_defl:14.1f}")
        finally:
            proc.terminate()
            proc.wait(10)


if __name__ == "__main__":
    main()
