"""h2c bench: ``h2load -c 64 -m 16`` against ours, hypercorn (h2) and granian (HTTP/2), each for a few seconds.

Pinned: the server on CPU 0, h2load on CPU 1 (a shared 2-core machine: keep runs short). Reports
req/s, the ratio to ours, and the server's CPU µs per request (from /proc/<pid>/stat, utime+stime,
over the measured run). Peers run from ``bench/.venv`` if they are installed there (skipped if not).

    python bench/h2_bench.py [--duration 4] [--only ours,hypercorn,granian]
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

ROOT = Path(__file__).resolve().parents[1]
PEERS = ROOT / "bench" / "peers"
VENV = ROOT / "bench" / ".venv" / "bin"
TICK = os.sysconf("SC_CLK_TCK")

HYPERCORN_APP = '''
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"Hello, World!"})
'''

OURS_APP = '''
import sys
from vanilla_async import StaticResponse, ServerConfig
from vanilla_async.cli import run_app
HELLO = StaticResponse(200, b"Hello, World!", content_type=b"text/plain")
def handler(req, out):
    HELLO.append_to(out)
sys.exit(run_app(ServerConfig(handler=handler), prog="h2bench"))
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def tree(pid: int) -> list[int]:
    out = [pid]
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                if Path(p, "stat").read_text().rsplit(")", 1)[1].split()[1] == str(pid):
                    out += tree(int(p.name))
            except OSError:
                pass
    return out


def launch(name: str, port: int, scratch: Path) -> subprocess.Popen[bytes] | None:
    pin = ["taskset", "-c", "0"]
    if name == "ours":
        (scratch / "ours_app.py").write_text(OURS_APP)
        argv = [sys.executable, str(scratch / "ours_app.py"), "--port", str(port), "--workers", "1"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cwd = ROOT
    elif name == "hypercorn":
        if not (VENV / "hypercorn").exists():
            return None
        (scratch / "hc_app.py").write_text(HYPERCORN_APP)
        argv = [str(VENV / "hypercorn"), "--bind", f"127.0.0.1:{port}", "--workers", "1", "hc_app:app"]
        env, cwd = dict(os.environ), scratch
    elif name == "granian":
        if not (VENV / "granian").exists():
            return None
        argv = [str(VENV / "granian"), "--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--runtime-threads", "1", "--http", "2", "--no-ws", "granian_app:app"]
        env, cwd = {**os.environ, "PYTHONPATH": str(PEERS)}, PEERS
    else:
        raise SystemExit(f"unknown server {name!r}")
    proc = subprocess.Popen(pin + argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(port)
    return proc


def run(name: str, duration: float, scratch: Path) -> dict[str, float] | None:
    port = free_port()
    proc = launch(name, port, scratch)
    if proc is None:
        return None
    try:
        url = f"http://127.0.0.1:{port}/"
        subprocess.run(["taskset", "-c", "1", "h2load", "-c", "8", "-m", "4", "-n", "2000", url],
                       capture_output=True, timeout=30)  # warm-up
        pids = tree(proc.pid)
        cpu0 = cpu_seconds(pids)
        res = subprocess.run(["taskset", "-c", "1", "h2load", "-c", "64", "-m", "16", "-D", str(int(duration)), url],
                             capture_output=True, text=True, timeout=duration + 30)
        cpu = cpu_seconds(pids) - cpu0
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            print(f"{name}: did not stop within 10 s of SIGTERM; killed", file=sys.stderr)
            proc.kill()
            proc.wait()
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", res.stdout)
    rps = re.search(r"finished in [\d.]+\w+, ([\d.]+) req/s", res.stdout)
    if not done or not rps:
        print(res.stdout, res.stderr, file=sys.stderr)
        return None
    ok = int(done.group(2))
    return {"rps": float(rps.group(1)), "ok": ok, "cpu_us": cpu / ok * 1e6 if ok else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=float, default=4.0)
    ap.add_argument("--only", default="ours,hypercorn,granian")
    args = ap.parse_args()
    scratch = Path(os.environ.get("TMPDIR", "/tmp")) / "h2bench"
    scratch.mkdir(exist_ok=True)
    results = {}
    for name in args.only.split(","):
        results[name] = run(name, min(args.duration, 5.0), scratch)
    ours = results.get("ours")
    for name, r in results.items():
        if r is None:
            print(f"{name:10} skipped (not installed in bench/.venv, or h2load failed)")
            continue
        ratio = f"ours/{name} = {ours['rps'] / r['rps']:.2f}x" if ours and name != "ours" else ""
        print(f"{name:10} {r['rps']:10.0f} req/s  {r['cpu_us']:7.1f} µs CPU/req  ({r['ok']:.0f} ok)  {ratio}")


if __name__ == "__main__":
    main()
