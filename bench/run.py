#!/usr/bin/env python3
"""Benchmark harness: vanilla_async ("ours") against a bare epoll loop, uvicorn, granian, socketify and nginx.

Every server runs alone, with one worker, pinned to CPU 0; wrk runs pinned to CPU 1; all traffic goes to
127.0.0.1 and every step is bounded in time. Results land in ``bench/results/`` (RESULTS.md, results.json,
chart.png) and the markdown report is printed to stdout.

    python bench/run.py [--duration 8] [--only ours,granian] [--workloads plaintext-c64,json-c64] [--out DIR]
    python bench/run.py --only ours,uvicorn,granian,nginx --report TLS.md
        --workloads plaintext-c64,https-c64,https-handshakes

HTTPS workloads run each server's TLS variant (ServerDef.build_tls) with one throwaway ECDSA P-256
certificate per run (make_certificates); full handshakes are driven by this file's own client
(handshake_client, ``--handshake-client``), because h2load and wrk resume sessions.

See bench/README.md for what is measured and how to read it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import logging
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

log = logging.getLogger("bench")

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
PEERS_DIR = BENCH_DIR / "peers"
VENV_DIR = BENCH_DIR / ".venv"
VENV_PYTHON = VENV_DIR / "bin" / "python"
REQUIREMENTS = BENCH_DIR / "requirements.txt"
PIPELINE_LUA = BENCH_DIR / "pipeline.lua"

SERVER_CPU = "0"
WRK_CPU = "1"
STARTUP_TIMEOUT_S = 20.0
STOP_GRACE_S = 5.0
WARMUP_S = 1
APT_TIMEOUT_S = 600
PIP_TIMEOUT_S = 900
EXPECTED_PLAIN = b"Hello, World!"


# ----------------------------------------------------------------------------------------------------------
# Data model
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workload:
    name: str
    path: str
    connections: int
    pipeline: int = 1  # requests per write (1 = plain keep-alive)
    tls: bool = False  # HTTPS against the server's TLS variant (ServerDef.build_tls)
    handshakes: bool = False  # one new connection (full TLS handshake) per request: handshake_client

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"


WORKLOADS: tuple[Workload, ...] = (
    Workload("plaintext-c64", "/", 64),
    Workload("plaintext-c256", "/", 256),
    Workload("pipelined16-c64", "/", 64, pipeline=16),
    Workload("json-c64", "/json", 64),
    Workload("https-c64", "/", 64, tls=True),
    Workload("https-handshakes", "/", 16, tls=True, handshakes=True),
)
#: what runs without --workloads (`make bench`); the HTTPS ones are asked for by name (see bench/README.md)
DEFAULT_WORKLOADS = ("plaintext-c64", "plaintext-c256", "pipelined16-c64", "json-c64")


@dataclass
class LaunchSpec:
    """What to exec for one server: argv (without the taskset prefix), extra env, cwd, notes."""

    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path = REPO_ROOT
    note: str = ""


@dataclass(frozen=True)
class ServerDef:
    name: str
    title: str
    build: Callable[[int, Path, "Tools"], LaunchSpec]  # (port, scratch dir, tools) -> launch spec
    build_tls: Callable[[int, Path, "Tools"], LaunchSpec] | None = None  # the HTTPS variant; None = no TLS rows


@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_us: float | None
    p99_us: float | None
    errors: dict[str, int]
    raw: str


@dataclass
class Measurement:
    server: str
    workload: str
    ok: bool
    reason: str = ""
    rps: float | None = None
    requests: int | None = None
    p50_us: float | None = None
    p99_us: float | None = None
    cpu_ticks: int | None = None
    cpu_us_per_req: float | None = None
    cpu_util: float | None = None  # server tree CPU seconds per wall second of the run (1.0 = one core saturated)
    wrk_util: float | None = None  # the same for wrk; ≥ ~0.95 means wrk, not the server, was the bottleneck
    other_server_cpu: float | None = None  # share of the server's CPU taken by other processes (noise)
    other_wrk_cpu: float | None = None  # share of wrk's CPU taken by other processes (noise)
    errors: dict[str, int] = field(default_factory=dict)
    wrk_command: str = ""
    wrk_output: str = ""


@dataclass(frozen=True)
class CertFiles:
    """The run's throwaway ECDSA P-256 PKI (one CA, one server certificate for 127.0.0.1/localhost)."""

    ca: Path  # the CA certificate: what the harness's own checks trust
    cert: Path  # the server certificate alone (a leaf issued straight by the root sends no chain)
    key: Path  # the server's PKCS#8 private key (granian only reads PKCS#8)


@dataclass
class Tools:
    wrk: str
    nginx: str | None
    taskset: str
    python: str  # the interpreter that runs ours and the bare loop (real path, not a pyenv shim)
    venv_python: str | None  # peers; None when the venv could not be set up
    certs: CertFiles | None = None  # set by main() when an HTTPS workload was asked for


class BenchError(RuntimeError):
    """A problem that stops the whole run (missing tool, bad arguments)."""


# ----------------------------------------------------------------------------------------------------------
# Subprocess helpers
# ----------------------------------------------------------------------------------------------------------


def run_cmd(argv: list[str], timeout: float, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """subprocess.run with a mandatory timeout, text output and a log line."""
    log.debug("$ %s", " ".join(argv))
    return subprocess.run(argv, timeout=timeout, text=True, capture_output=True, check=False, **kwargs)


def tail(text: str, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


# ----------------------------------------------------------------------------------------------------------
# Tools
# ----------------------------------------------------------------------------------------------------------


def _which(name: str, extra_dirs: tuple[str, ...] = ("/usr/sbin", "/sbin")) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _apt_install(packages: list[str], state: dict[str, bool]) -> bool:
    if os.geteuid() != 0:
        log.error("need %s but not root: run `sudo apt-get install -y %s` and retry", packages, " ".join(packages))
        return False
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if not state.get("updated"):
        log.info("apt-get update ...")
        res = run_cmd(["apt-get", "update", "-q"], APT_TIMEOUT_S, env=env)
        if res.returncode != 0:
            log.warning("apt-get update failed (%s); trying install anyway", tail(res.stderr))
        state["updated"] = True
    log.info("apt-get install -y %s ...", " ".join(packages))
    res = run_cmd(["apt-get", "install", "-y", "-q", *packages], APT_TIMEOUT_S, env=env)
    if res.returncode != 0:
        log.warning("apt-get install %s failed: %s", " ".join(packages), tail(res.stderr))
        return False
    return True


def _resolve_python() -> str:
    """The real `python3` on PATH (resolving pyenv shims so that the measured pid IS the interpreter)."""
    override = os.environ.get("BENCH_PYTHON")
    candidate = override or shutil.which("python3") or sys.executable
    try:
        res = run_cmd([candidate, "-c", "import sys; print(sys.executable)"], 30)
        if res.returncode == 0 and res.stdout.strip():
            return res.stdout.strip()
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("could not resolve %s (%s); using %s", candidate, exc, sys.executable)
    return sys.executable


def _pinned_requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in REQUIREMENTS.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def _venv_missing_packages() -> list[str]:
    pins = _pinned_requirements()
    probe = (
        "import json, importlib.metadata as m\n"
        f"pins = {pins!r}\n"
        "bad = []\n"
        "for name, want in pins.items():\n"
        "    try:\n"
        "        have = m.version(name)\n"
        "    except m.PackageNotFoundError:\n"
        "        have = None\n"
        "    if have != want:\n"
        "        bad.append(name)\n"
        "print(json.dumps(bad))\n"
    )
    res = run_cmd([str(VENV_PYTHON), "-c", probe], 60)
    if res.returncode != 0:
        return list(pins)
    return list(json.loads(res.stdout))


def ensure_venv(python: str, install: bool) -> str | None:
    """Create bench/.venv and install requirements.txt into it unless everything pinned is already there."""
    usable = VENV_PYTHON.exists() and run_cmd([str(VENV_PYTHON), "-c", "pass"], 60).returncode == 0
    if not usable:
        if not install:
            log.error("%s missing or broken and --no-install given; peers will be skipped", VENV_DIR)
            return None
        log.info("creating virtualenv %s", VENV_DIR)
        res = run_cmd([python, "-m", "venv", "--clear", str(VENV_DIR)], 300)
        if res.returncode != 0:
            log.error("`%s -m venv %s` failed: %s (on Debian: apt-get install python3-venv)",
                      python, VENV_DIR, tail(res.stderr))
            return None
    missing = _venv_missing_packages()
    if missing:
        if not install:
            log.error("venv lacks %s and --no-install given; affected peers will fail", missing)
            return str(VENV_PYTHON)
        log.info("pip installing %s into %s (missing/mismatched: %s)", REQUIREMENTS.name, VENV_DIR, missing)
        res = run_cmd([str(VENV_PYTHON), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                       "-r", str(REQUIREMENTS)], PIP_TIMEOUT_S)
        if res.returncode != 0:
            log.error("pip install -r %s failed: %s", REQUIREMENTS, tail(res.stderr))
    else:
        log.info("venv %s up to date", VENV_DIR)
    return str(VENV_PYTHON)


def ensure_tools(install: bool = True) -> Tools:
    """Make sure wrk, nginx, taskset and the peer venv exist (apt/pip installs are idempotent)."""
    apt_state: dict[str, bool] = {}
    wrk = _which("wrk")
    if wrk is None and install:
        _apt_install(["wrk"], apt_state)
        wrk = _which("wrk")
    if wrk is None:
        raise BenchError("wrk not found: install it with `apt-get install -y wrk` (Debian) and retry")

    nginx = _which("nginx")
    if nginx is None and install:
        if not _apt_install(["nginx-light"], apt_state):
            _apt_install(["nginx"], apt_state)
        nginx = _which("nginx")
    if nginx is None:
        log.warning("nginx not found (apt-get install -y nginx-light); the nginx row will be 'failed'")

    taskset = _which("taskset")
    if taskset is None:
        raise BenchError("taskset not found: install util-linux (`apt-get install -y util-linux`)")
    if not {0, 1} <= os.sched_getaffinity(0):
        raise BenchError(f"need CPUs 0 and 1 available (server on 0, wrk on 1); have {sorted(os.sched_getaffinity(0))}")

    python = _resolve_python()
    venv_python = ensure_venv(python, install)
    return Tools(wrk=wrk, nginx=nginx, taskset=taskset, python=python, venv_python=venv_python)


def make_certificates(directory: Path) -> CertFiles:
    """A throwaway CA and a server certificate for 127.0.0.1 and localhost, all ECDSA P-256, with openssl(1).

    Everyone gets the same key type so that the handshake's signature costs the same for every server
    (ECDSA P-256 signs in a few µs; RSA-2048 would cost ~1 ms and swamp everything else).
    """
    openssl = _which("openssl")
    if openssl is None:
        raise BenchError("openssl not found: apt-get install -y openssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr",
                                                           "server.pem"))
    ext = directory / "server.ext"
    ext.write_text("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                   "extendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n")
    genkey = [openssl, "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"]
    steps = [
        [*genkey, "-out", str(ca_key)],
        [openssl, "req", "-x509", "-new", "-key", str(ca_key), "-sha256", "-days", "2", "-subj", "/CN=bench throwaway CA",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
         "-out", str(ca)],
        [*genkey, "-out", str(key)],
        [openssl, "req", "-new", "-key", str(key), "-subj", "/CN=localhost", "-out", str(csr)],
        [openssl, "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
         "-sha256", "-days", "2", "-extfile", str(ext), "-out", str(cert)],
    ]
    for argv in steps:
        res = run_cmd(argv, 60)
        if res.returncode != 0:
            raise BenchError(f"`{' '.join(argv)}` failed: {tail(res.stderr)}")
    log.info("ECDSA P-256 CA and server certificate in %s", directory)
    return CertFiles(ca=ca, cert=cert, key=key)


def _need_certs(tools: Tools) -> CertFiles:
    if tools.certs is None:
        raise BenchError("no certificates: main() makes them when an https-* workload is selected")
    return tools.certs


# ----------------------------------------------------------------------------------------------------------
# Server definitions
# ----------------------------------------------------------------------------------------------------------


def _python_env(*extra_paths: Path) -> dict[str, str]:
    paths = [str(REPO_ROOT), *(str(p) for p in extra_paths)]
    if os.environ.get("PYTHONPATH"):
        paths.append(os.environ["PYTHONPATH"])
    return {"PYTHONPATH": os.pathsep.join(paths), "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


def _need_venv(tools: Tools) -> str:
    if tools.venv_python is None:
        raise BenchError(f"peer virtualenv {VENV_DIR} unavailable (see earlier log lines)")
    return tools.venv_python


def build_ours(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
    return LaunchSpec([tools.python, "-m", "examples.tiny", "--port", str(port), "--workers", "1"], _python_env())


def _with_ssl_flags(build: Callable[[int, Path, Tools], LaunchSpec], cert_flag: str = "--ssl-certfile",
                    key_flag: str = "--ssl-keyfile") -> Callable[[int, Path, Tools], LaunchSpec]:
    """The TLS variant of a server whose command line takes certificate and key flags (uvicorn's names
    by default: ours and uvicorn share them)."""

    def build_tls(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
        certs = _need_certs(tools)
        spec = build(port, scratch, tools)
        flags = [cert_flag, str(certs.cert), key_flag, str(certs.key)]
        argv = spec.argv[:-1] + flags + spec.argv[-1:] if spec.argv[-1].endswith(":app") else spec.argv + flags
        return LaunchSpec(argv, spec.env, spec.cwd, spec.note)

    return build_tls


def build_ours_base(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
    """The same app from another checkout (``$VANILLA_BENCH_BASE``, e.g. a ``git worktree`` of main
    before a change): before and after measured in one run, as the engine's issues ask."""
    base = os.environ.get("VANILLA_BENCH_BASE")
    if not base or not (Path(base) / "vanilla_async").is_dir():
        raise BenchError("ours-base needs VANILLA_BENCH_BASE=<a checkout of the project>, e.g. "
                         "git worktree add /tmp/base <ref>")
    env = _python_env()
    env["PYTHONPATH"] = env["PYTHONPATH"].replace(str(REPO_ROOT), base, 1)
    return LaunchSpec([tools.python, "-m", "examples.tiny", "--port", str(port), "--workers", "1"], env, cwd=Path(base),
                      note=f"base checkout {base}")


def build_ours_trio(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
    try:  # the measured interpreter is the bare python3; lend it the trio this harness runs with
        import trio
    except ImportError as exc:
        raise BenchError("ours-trio needs trio: run the bench from the project's venv (make bench)") from exc
    site = Path(trio.__file__).resolve().parent.parent
    return LaunchSpec([tools.python, "-m", "examples.tiny", "--port", str(port), "--workers", "1", "--backend", "trio"],
                      _python_env(site))


def build_ours_uring(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
    return LaunchSpec([tools.python, "-m", "examples.tiny", "--port", str(port), "--workers", "1", "--backend",
                       "io_uring"], _python_env())


def build_bare(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
    return LaunchSpec([tools.python, str(BENCH_DIR / "bare_epoll.py"), "--port", str(port)], _python_env())


def build_uvicorn(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
    py = _need_venv(tools)
    argv = [py, "-m", "uvicorn", "uvicorn_app:app", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
            "--loop", "uvloop", "--http", "httptools", "--no-access-log", "--log-level", "warning"]
    return LaunchSpec(argv, _python_env(PEERS_DIR))


_GRANIAN_HELP: dict[str, str] = {}


def _granian_help(granian: str) -> str:
    if granian not in _GRANIAN_HELP:
        res = run_cmd([granian, "--help"], 60)
        _GRANIAN_HELP[granian] = res.stdout + res.stderr
    return _GRANIAN_HELP[granian]


def build_granian(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
    py = _need_venv(tools)
    granian = str(Path(py).parent / "granian")
    helptext = _granian_help(granian)
    argv = [granian, "--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    optional = [
        ("--runtime-threads", ["--runtime-threads", "1"]),
        ("--no-ws", ["--no-ws"]),
        ("--http ", ["--http", "1"]),
        ("--log-level", ["--log-level", "warning"]),
        ("--no-access-log", ["--no-access-log"]),
    ]
    used = []
    for marker, args in optional:
        if marker in helptext:
            argv += args
            used.append(args[0])
    argv.append("granian_app:app")
    return LaunchSpec(argv, _python_env(PEERS_DIR), note=f"optional flags found in --help: {' '.join(used)}")


def build_socketify(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
    py = _need_venv(tools)
    return LaunchSpec([py, str(PEERS_DIR / "socketify_app.py"), "--port", str(port)], _python_env(PEERS_DIR))


def _nginx_string(text: str) -> str:
    """Quote text for an nginx single-quoted string; '$' cannot be escaped there."""
    if "$" in text:
        raise BenchError("JSON payload contains '$', which nginx `return` would treat as a variable")
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def build_nginx(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
    return _nginx(port, scratch, tools, tls=False)


def build_nginx_tls(port: int, scratch: Path, tools: Tools) -> LaunchSpec:
    return _nginx(port, scratch, tools, tls=True)


def _nginx(port: int, scratch: Path, tools: Tools, tls: bool) -> LaunchSpec:
    if tools.nginx is None:
        raise BenchError("nginx not installed (apt-get install -y nginx-light)")
    payload_json = _load_payload_json(tools)
    for sub in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (scratch / "tmp" / sub).mkdir(parents=True, exist_ok=True)
    conf = scratch / "nginx.conf"
    listen, ssl = f"127.0.0.1:{port} backlog=1024", ""
    if tls:  # HTTP/1.1 only (no `http2`), the protocols and session defaults of a stock nginx 1.22+
        certs = _need_certs(tools)
        listen += " ssl"
        ssl = (f"ssl_certificate {certs.cert}; ssl_certificate_key {certs.key}; "
               "ssl_protocols TLSv1.2 TLSv1.3;")
    conf.write_text(f"""\
worker_processes 1;
daemon off;
master_process on;
pid {scratch}/nginx.pid;
error_log {scratch}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {scratch}/tmp/client_body;
    proxy_temp_path {scratch}/tmp/proxy;
    fastcgi_temp_path {scratch}/tmp/fastcgi;
    uwsgi_temp_path {scratch}/tmp/uwsgi;
    scgi_temp_path {scratch}/tmp/scgi;
    keepalive_requests 100000000;
    keepalive_timeout 65;
    server {{
        listen {listen};
        {ssl}
        location = / {{ default_type text/plain; return 200 "Hello, World!"; }}
        location = /json {{ default_type application/json; return 200 {_nginx_string(payload_json)}; }}
    }}
}}
""")
    argv = [tools.nginx, "-p", str(scratch), "-e", str(scratch / "error.log"), "-c", str(conf)]
    return LaunchSpec(argv, {}, cwd=scratch, note="JSON is a static string (json.dumps(PAYLOAD) done once)")


def _load_payload_json(tools: Tools) -> str:
    code = ("import json, sys; sys.path.insert(0, sys.argv[1]); from common import PAYLOAD; "
            "sys.stdout.write(json.dumps(PAYLOAD))")
    res = run_cmd([tools.python, "-c", code, str(PEERS_DIR)], 30, env={**os.environ, **_python_env()})
    if res.returncode != 0:
        raise BenchError(f"cannot load examples/tiny/payload.py: {tail(res.stderr)}")
    return res.stdout


SERVERS: tuple[ServerDef, ...] = (
    ServerDef("ours", "vanilla_async (python3 -m examples.tiny)", build_ours, _with_ssl_flags(build_ours)),
    ServerDef("ours-base", "vanilla_async from $VANILLA_BENCH_BASE (before a change)", build_ours_base,
              _with_ssl_flags(build_ours_base)),
    ServerDef("ours-trio", "vanilla_async on the trio backend (examples.tiny --backend trio)", build_ours_trio,
              _with_ssl_flags(build_ours_trio)),
    ServerDef("ours-io_uring", "vanilla_async on the io_uring backend (examples.tiny --backend io_uring)",
              build_ours_uring, _with_ssl_flags(build_ours_uring)),
    ServerDef("bare", "bare pure-Python epoll loop (bench/bare_epoll.py)", build_bare),
    ServerDef("uvicorn", "uvicorn + uvloop + httptools, raw ASGI", build_uvicorn, _with_ssl_flags(build_uvicorn)),
    ServerDef("granian", "granian, RSGI", build_granian,
              _with_ssl_flags(build_granian, "--ssl-certificate", "--ssl-keyfile")),
    ServerDef("socketify", "socketify.py", build_socketify),
    ServerDef("nginx", "nginx (static responses)", build_nginx, build_nginx_tls),
)


# ----------------------------------------------------------------------------------------------------------
# Process tree CPU accounting
# ----------------------------------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime ticks) of pid from /proc/PID/stat, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # comm (field 2) may contain spaces/parens: split after the LAST ')'.
    rest = raw[raw.rfind(")") + 2:].split()
    # rest[0] is field 3 (state); field N is rest[N - 3].
    return int(rest[1]), int(rest[11]) + int(rest[12])


def tree_pids(root: int) -> list[int]:
    """root plus all live descendants, found through the ppid links in /proc/*/stat."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read_stat(int(entry))
            if stat is not None:
                children.setdefault(stat[0], []).append(int(entry))
    pids, todo = [], [root]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo.extend(children.get(pid, []))
    return pids


def cpu_ticks_of_tree(root: int) -> int:
    """Sum of utime+stime (clock ticks) over the live process tree rooted at root."""
    total = 0
    for pid in tree_pids(root):
        stat = _read_stat(pid)
        if stat is not None:
            total += stat[1]
    return total


@dataclass(frozen=True)
class CpuTimes:
    """One CPU's counters from /proc/stat, in clock ticks."""

    tasks: int  # user + nice + system + steal: time given to processes (or stolen by the hypervisor)
    busy: int  # everything but idle and iowait (adds irq + softirq, e.g. loopback packet processing)
    total: int


def cpu_times() -> dict[int, CpuTimes]:
    """Per-CPU counters from /proc/stat, keyed by CPU number."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *fields = line.split()
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
            total = user + nice + system + idle + iowait + irq + softirq + steal
            out[int(name[3:])] = CpuTimes(user + nice + system + steal, total - idle - iowait, total)
    return out


def other_load(before: CpuTimes, after: CpuTimes, own_ticks: float) -> float:
    """Share of one CPU's time that went to processes other than ours (own_ticks) between two samples."""
    total = after.total - before.total
    return max(0.0, (after.tasks - before.tasks - own_ticks) / total) if total > 0 else 0.0


def children_cpu_ticks() -> float:
    """utime+stime of our reaped children (wrk), in clock ticks."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (usage.ru_utime + usage.ru_stime) * CLK_TCK


def background_busy(window_s: float = 1.0) -> str:
    """How busy each CPU is with other people's work during window_s before we start any load."""
    try:
        before = cpu_times()
        time.sleep(window_s)
        after = cpu_times()
    except OSError as exc:
        return f"unknown ({exc})"
    parts = []
    for cpu, a in sorted(after.items()):
        b = before.get(cpu, a)
        parts.append(f"cpu{cpu} {100 * (a.busy - b.busy) / max(a.total - b.total, 1):.0f}%")
    return ", ".join(parts)


# ----------------------------------------------------------------------------------------------------------
# Server lifecycle
# ----------------------------------------------------------------------------------------------------------


@dataclass
class RunningServer:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    argv: list[str]
    note: str = ""
    tls: ssl.SSLContext | None = None  # the client context that trusts the run's CA, for an HTTPS server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _http_get(port: int, path: str, timeout: float = 2.0,
              tls: ssl.SSLContext | None = None) -> tuple[int, bytes, str]:
    conn = (http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout, context=tls) if tls
            else http.client.HTTPConnection("127.0.0.1", port, timeout=timeout))
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read(), resp.getheader("Content-Type") or ""
    finally:
        conn.close()


def client_context(certs: CertFiles) -> ssl.SSLContext:
    """What the harness's own checks use: verifies the chain against the run's CA and the IP SAN."""
    ctx = ssl.create_default_context(cafile=str(certs.ca))
    ctx.set_alpn_protocols(["http/1.1"])
    return ctx


def tls_summary(port: int, tls: ssl.SSLContext) -> str:
    """Version, suite, ALPN and certificate key of one verified handshake, as a note for the report."""
    with socket.create_connection(("127.0.0.1", port), timeout=2.0) as raw:
        with tls.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
            cipher = conn.cipher()
            der = conn.getpeercert(binary_form=True) or b""
            return (f"{conn.version()} {cipher[0] if cipher else '?'}, ALPN {conn.selected_alpn_protocol()}, "
                    f"certificate {len(der)} B DER")


def _log_tail(path: Path) -> str:
    try:
        return tail(path.read_text(errors="replace"), 3)
    except OSError:
        return ""


def wait_ready(server: RunningServer, timeout: float = STARTUP_TIMEOUT_S) -> None:
    """Block until the server accepts TCP and answers GET / with 200; raise BenchError otherwise."""
    deadline = time.monotonic() + timeout
    last = "no attempt yet"
    while time.monotonic() < deadline:
        rc = server.proc.poll()
        if rc is not None:
            raise BenchError(f"exited with rc={rc} during startup: {_log_tail(server.log_path) or 'no output'}")
        try:
            with socket.create_connection(("127.0.0.1", server.port), timeout=1.0):
                pass
            status, _, _ = _http_get(server.port, "/", tls=server.tls)
            if status == 200:
                return
            last = f"GET / answered {status}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        time.sleep(0.1)
    raise BenchError(f"not ready after {timeout:.0f}s ({last}); log: {_log_tail(server.log_path) or 'empty'}")


def sanity_check(server: RunningServer) -> list[str]:
    """Compare / and /json with what the benchmark expects; return human-readable warnings."""
    problems = []
    try:
        status, body, ctype = _http_get(server.port, "/", tls=server.tls)
        if status != 200 or body != EXPECTED_PLAIN or not ctype.startswith("text/plain"):
            problems.append(f"GET / -> {status} {ctype!r} {body[:40]!r}")
        status, body, ctype = _http_get(server.port, "/json", tls=server.tls)
        if status != 200 or not ctype.startswith("application/json"):
            problems.append(f"GET /json -> {status} {ctype!r}")
        else:
            json.loads(body)
        if server.tls is not None:
            server.note = "; ".join(filter(None, [server.note, tls_summary(server.port, server.tls)]))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        problems.append(f"sanity check failed: {type(exc).__name__}: {exc}")
    for problem in problems:
        log.warning("%s: %s", server.name, problem)
    return problems


def start_server(sdef: ServerDef, tools: Tools, scratch: Path, log_dir: Path, tls: bool = False) -> RunningServer:
    """Launch sdef (its TLS variant if tls) pinned to SERVER_CPU in its own session; wait until it serves GET /."""
    port = free_port()
    build = sdef.build_tls if tls else sdef.build
    if build is None:
        raise BenchError(f"{sdef.name} has no TLS variant in this harness")
    spec = build(port, scratch, tools)
    argv = [tools.taskset, "-c", SERVER_CPU, *spec.argv]
    log_path = log_dir / f"{sdef.name}{'-tls' if tls else ''}.log"
    log.info("starting %s on 127.0.0.1:%d: %s", sdef.name, port, " ".join(argv))
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(argv, cwd=spec.cwd, env={**os.environ, **spec.env}, stdin=subprocess.DEVNULL,
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    server = RunningServer(sdef.name, proc, port, log_path, argv, spec.note,
                           client_context(_need_certs(tools)) if tls else None)
    try:
        wait_ready(server)
    except BaseException:
        stop_server(server)
        raise
    return server


def _signal_tree(pids: list[int], pgid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def stop_server(server: RunningServer) -> None:
    """SIGTERM the server's process group and tree, SIGKILL whatever is left after STOP_GRACE_S."""
    pid = server.proc.pid
    pids = tree_pids(pid)
    _signal_tree(pids, pid, signal.SIGTERM)
    try:
        server.proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        log.warning("%s did not exit %ss after SIGTERM; sending SIGKILL", server.name, STOP_GRACE_S)
    deadline = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < deadline and any(_read_stat(p) is not None for p in pids if p != pid):
        time.sleep(0.05)
    leftovers = [p for p in pids if _read_stat(p) is not None]
    if leftovers:
        _signal_tree(leftovers, pid, signal.SIGKILL)
    try:
        server.proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        log.error("%s (pid %d) survived SIGKILL?", server.name, pid)


# ----------------------------------------------------------------------------------------------------------
# wrk
# ----------------------------------------------------------------------------------------------------------

_UNIT_US = {"us": 1.0, "ms": 1e3, "s": 1e6, "m": 60e6, "h": 3600e6}


def _to_us(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"unknown wrk duration {text!r}")
    return float(match.group(1)) * _UNIT_US[match.group(2)]


def parse_wrk(output: str) -> WrkResult:
    """Parse `wrk --latency` output: requests, duration, req/s, p50/p99 (µs), socket errors, non-2xx."""
    done = re.search(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h)", output)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if not done or not rps:
        raise ValueError(f"unexpected wrk output: {tail(output, 8) or '(empty)'}")
    pct = {m.group(1): _to_us(m.group(2)) or None for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+(?:us|ms|s|m|h))\s*$",
                                                                  output, re.M)}
    errors: dict[str, int] = {}
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if sock:
        for key, value in zip(("connect", "read", "write", "timeout"), sock.groups()):
            if int(value):
                errors[key] = int(value)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors["non-2xx"] = int(non2xx.group(1))
    return WrkResult(requests=int(done.group(1)), seconds=_to_us(done.group(2) + done.group(3)) / 1e6,
                     rps=float(rps.group(1)), p50_us=pct.get("50"), p99_us=pct.get("99"), errors=errors,
                     raw=output)


def wrk_argv(tools: Tools, workload: Workload, port: int, duration: int) -> list[str]:
    argv = [tools.taskset, "-c", WRK_CPU, tools.wrk, "-t1", f"-c{workload.connections}", f"-d{duration}s",
            "--latency"]
    if workload.pipeline > 1:
        argv += ["-s", str(PIPELINE_LUA)]
    argv.append(f"{workload.scheme}://127.0.0.1:{port}{workload.path}")
    if workload.pipeline > 1:
        argv += ["--", str(workload.pipeline)]
    return argv


def handshake_argv(tools: Tools, workload: Workload, port: int, duration: int) -> list[str]:
    """This file's own bounded handshake client (`handshake_client`), pinned to the load generator's CPU."""
    return [tools.taskset, "-c", WRK_CPU, tools.python, str(Path(__file__).resolve()), "--handshake-client",
            str(port), str(workload.connections), str(duration), workload.path]


def load_argv(tools: Tools, workload: Workload, port: int, duration: int) -> list[str]:
    """The load generator's command for a workload: wrk, or the handshake client for https-handshakes."""
    if workload.handshakes:
        return handshake_argv(tools, workload, port, duration)
    return wrk_argv(tools, workload, port, duration)


def run_wrk(tools: Tools, workload: Workload, port: int, duration: int) -> WrkResult:
    if workload.handshakes:
        return run_handshakes(tools, workload, port, duration)
    argv = wrk_argv(tools, workload, port, duration)
    res = run_cmd(argv, timeout=duration + 30)
    if res.returncode != 0:
        raise BenchError(f"wrk exited {res.returncode}: {tail(res.stderr or res.stdout)}")
    return parse_wrk(res.stdout)


def _percentile(sorted_values: list[float], pct: float) -> float | None:
    if not sorted_values:
        return None
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * pct / 100))]


HANDSHAKE_REQUEST = "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"


def handshake_client(port: int, connections: int, duration: float, path: str) -> dict[str, Any]:
    """The https-handshakes load: `connections` threads, each in a loop of TCP connect, a full TLS handshake,
    one `GET path` with `Connection: close`, read to EOF, close, until `duration` has passed.

    Full handshakes on purpose: every connection gets a fresh ``SSLObject`` and is never given a session,
    so neither TLS 1.2 session IDs nor TLS 1.3 tickets are offered (``session_reused`` is counted to prove
    it). h2load and wrk both resume (nginx's ``$ssl_session_reused`` logged ``r`` for 98 % of their
    `Connection: close` requests), so they would measure resumption, not the full handshake. Latency is the
    whole cycle, connect to EOF. Blocking threads rather than a selector loop: OpenSSL releases the GIL
    in the handshake, and the Python per connection stays a few calls.
    """
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # as wrk and h2load: the CertificateVerify signature is still checked
    ctx.set_alpn_protocols(["http/1.1"])
    request = HANDSHAKE_REQUEST.format(path=path).encode()
    started = time.monotonic()
    stop = started + duration
    latencies: list[float] = []
    errors: dict[str, int] = {}
    resumed = [0]
    lock = threading.Lock()

    def loop() -> None:
        mine: list[float] = []
        mine_errors: dict[str, int] = {}
        reused = 0
        while time.monotonic() < stop:
            t0 = time.perf_counter()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=10.0) as raw:
                    with ctx.wrap_socket(raw) as conn:
                        reused += bool(conn.session_reused)
                        conn.sendall(request)
                        chunks = []
                        while chunk := conn.recv(65536):
                            chunks.append(chunk)
                head = b"".join(chunks)[:12]
                if head != b"HTTP/1.1 200":
                    kind = "non-2xx" if head.startswith(b"HTTP/") else "bad response"
                    mine_errors[kind] = mine_errors.get(kind, 0) + 1
                    continue
                mine.append((time.perf_counter() - t0) * 1e6)
            except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
                kind = "timeout" if isinstance(exc, TimeoutError) else type(exc).__name__
                mine_errors[kind] = mine_errors.get(kind, 0) + 1
        with lock:
            latencies.extend(mine)
            resumed[0] += reused
            for key, value in mine_errors.items():
                errors[key] = errors.get(key, 0) + value

    threads = [threading.Thread(target=loop, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(duration + 30)
    seconds = time.monotonic() - started
    latencies.sort()
    if resumed[0]:
        errors["resumed (not a full handshake)"] = resumed[0]
    return {"requests": len(latencies), "seconds": seconds, "p50_us": _percentile(latencies, 50),
            "p99_us": _percentile(latencies, 99), "errors": errors}


def run_handshakes(tools: Tools, workload: Workload, port: int, duration: int) -> WrkResult:
    res = run_cmd(handshake_argv(tools, workload, port, duration), timeout=duration + 60)
    if res.returncode != 0:
        raise BenchError(f"handshake client exited {res.returncode}: {tail(res.stderr or res.stdout)}")
    data = json.loads(res.stdout)
    seconds = float(data["seconds"])
    text = (f"{data['requests']} full handshakes in {seconds:.2f}s, p50 {fmt_us(data['p50_us'])}, "
            f"p99 {fmt_us(data['p99_us'])}, errors {data['errors']}")
    return WrkResult(requests=int(data["requests"]), seconds=seconds, rps=data["requests"] / seconds,
                     p50_us=data["p50_us"], p99_us=data["p99_us"], errors=dict(data["errors"]), raw=text)


def measure(server: RunningServer, tools: Tools, workload: Workload, duration: int) -> Measurement:
    """Warm up, then one timed wrk run with CPU ticks of the server tree sampled right before and after."""
    command = " ".join(load_argv(tools, workload, server.port, duration))
    if (rc := server.proc.poll()) is not None:
        return Measurement(server.name, workload.name, False, f"server exited rc={rc}", wrk_command=command)
    try:
        run_wrk(tools, workload, server.port, WARMUP_S)
        cpus_before, wrk_before = cpu_times(), children_cpu_ticks()
        before = cpu_ticks_of_tree(server.proc.pid)
        result = run_wrk(tools, workload, server.port, duration)
        after = cpu_ticks_of_tree(server.proc.pid)
        cpus_after, wrk_ticks = cpu_times(), children_cpu_ticks() - wrk_before
    except (BenchError, ValueError, subprocess.TimeoutExpired, OSError) as exc:
        return Measurement(server.name, workload.name, False, f"{type(exc).__name__}: {exc}", wrk_command=command)
    if result.requests == 0:
        return Measurement(server.name, workload.name, False, "wrk completed 0 requests", wrk_command=command,
                           wrk_output=result.raw, errors=result.errors)
    ticks = after - before
    server_cpu, wrk_cpu = int(SERVER_CPU), int(WRK_CPU)
    # wrk's coordinated-omission correction assumes one request in flight per connection; with pipelining it
    # smears synthetic samples below the histogram minimum and the percentiles come out as 0 or garbage.
    latency_ok = workload.pipeline == 1
    return Measurement(
        server=server.name, workload=workload.name, ok=True, rps=result.rps, requests=result.requests,
        p50_us=result.p50_us if latency_ok else None, p99_us=result.p99_us if latency_ok else None, cpu_ticks=ticks,
        cpu_us_per_req=ticks * 1e6 / CLK_TCK / result.requests,
        cpu_util=ticks / CLK_TCK / result.seconds if result.seconds else None,
        wrk_util=wrk_ticks / CLK_TCK / result.seconds if result.seconds else None,
        other_server_cpu=other_load(cpus_before[server_cpu], cpus_after[server_cpu], ticks),
        other_wrk_cpu=other_load(cpus_before[wrk_cpu], cpus_after[wrk_cpu], wrk_ticks),
        errors=result.errors,
        wrk_command=command, wrk_output=result.raw,
    )


# ----------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------


def machine_info() -> dict[str, str]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        nproc = run_cmd(["nproc"], 10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        nproc = str(os.cpu_count())
    return {"nproc": nproc, "cpu": model, "kernel": platform.release(), "python": platform.python_version(),
            "busy_before": background_busy()}


def tool_versions(tools: Tools) -> dict[str, str]:
    versions: dict[str, str] = {}

    def version_of(argv: list[str], pattern: str) -> str:
        try:
            res = run_cmd(argv, 30)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"unknown ({exc})"
        match = re.search(pattern, res.stdout + res.stderr)
        return match.group(1) if match else "unknown"

    versions["wrk"] = version_of([tools.wrk, "-v"], r"wrk (\S+)")
    versions["nginx"] = version_of([tools.nginx, "-v"], r"nginx/(\S+)") if tools.nginx else "not installed"
    versions["python (ours, bare)"] = version_of([tools.python, "-V"], r"Python (\S+)")
    if tools.venv_python:
        probe = ("import importlib.metadata as m\nfor n in ('uvicorn','uvloop','httptools','granian','socketify'):\n"
                 "    try: print(n, m.version(n))\n    except m.PackageNotFoundError: print(n, 'missing')")
        try:
            res = run_cmd([tools.venv_python, "-c", probe], 30)
            for line in res.stdout.splitlines():
                name, _, version = line.partition(" ")
                versions[name] = version
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("could not read peer versions: %s", exc)
    return versions


def fmt_us(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 1000:
        return f"{value:.0f} µs"
    if value < 1e6:
        return f"{value / 1e3:.2f} ms"
    return f"{value / 1e6:.2f} s"


NOISE_THRESHOLD = 0.10
WRK_BOUND_THRESHOLD = 0.95


def is_noisy(m: Measurement | None) -> bool:
    return m is not None and max(m.other_server_cpu or 0, m.other_wrk_cpu or 0) >= NOISE_THRESHOLD


def _load_bound(m: Measurement | None) -> bool:
    return m is not None and m.wrk_util is not None and m.wrk_util >= WRK_BOUND_THRESHOLD


def fmt_flags(m: Measurement) -> str:
    """wrk errors plus warnings that make a row's numbers less trustworthy."""
    flags = [f"{k} {v}" for k, v in m.errors.items()]
    if m.wrk_util is not None and m.wrk_util >= WRK_BOUND_THRESHOLD:
        client = "client" if m.workload == "https-handshakes" else "wrk"
        flags.append(f"{client}-bound ({m.wrk_util * 100:.0f}% of CPU {WRK_CPU})")
    if is_noisy(m):
        flags.append(f"⚠ shared cores: others used {(m.other_server_cpu or 0) * 100:.0f}% of CPU {SERVER_CPU}, "
                     f"{(m.other_wrk_cpu or 0) * 100:.0f}% of CPU {WRK_CPU}")
    return "; ".join(flags) or "—"


def _get(results: dict[str, dict[str, Measurement]], server: str, workload: str) -> Measurement | None:
    m = results.get(workload, {}).get(server)
    return m if m is not None and m.ok else None


#: (label, (workload, server) of the numerator, (workload, server) of the denominator, attribute, op, target)
TARGETS: tuple[tuple[str, tuple[str, str], tuple[str, str], str, str, float], ...] = (
    ("plaintext-c64 req/s: ours ÷ granian", ("plaintext-c64", "ours"), ("plaintext-c64", "granian"), "rps", ">=", 1.5),
    ("plaintext-c64 req/s: ours ÷ socketify", ("plaintext-c64", "ours"), ("plaintext-c64", "socketify"), "rps",
     ">=", 1.0),
    ("pipelined16-c64 req/s: ours ÷ socketify", ("pipelined16-c64", "ours"), ("pipelined16-c64", "socketify"),
     "rps", ">=", 2.0),
    ("plaintext-c64 CPU µs/req: ours ÷ bare", ("plaintext-c64", "ours"), ("plaintext-c64", "bare"),
     "cpu_us_per_req", "<=", 1.3),
    ("https-c64 req/s: ours ÷ granian", ("https-c64", "ours"), ("https-c64", "granian"), "rps", ">=", 1.3),
    ("CPU µs/req: ours https-c64 ÷ ours plaintext-c64", ("https-c64", "ours"), ("plaintext-c64", "ours"),
     "cpu_us_per_req", "<=", 1.5),
    ("https-handshakes handshakes/s: ours ÷ granian", ("https-handshakes", "ours"), ("https-handshakes", "granian"),
     "rps", ">=", 1.0),
    # the client-independent view of the same: server CPU per full handshake, theirs over ours (≥ 1 = we spend less)
    ("https-handshakes CPU µs/handshake: granian ÷ ours", ("https-handshakes", "granian"),
     ("https-handshakes", "ours"), "cpu_us_per_req", ">=", 1.0),
)


def compute_targets(results: dict[str, dict[str, Measurement]], workloads: list[str]) -> list[dict[str, Any]]:
    """The headline targets whose workloads were run, each with value, PASS/MISS/N/A and margin."""
    out = []
    for label, (wa, sa), (wb, sb), attr, op, target in TARGETS:
        if wa not in workloads or wb not in workloads:
            continue
        ours, other = _get(results, sa, wa), _get(results, sb, wb)
        peer = sb
        row: dict[str, Any] = {"label": label, "target": f"{op} {target}", "value": None, "verdict": "N/A",
                               "margin": ""}
        a = getattr(ours, attr) if ours else None
        b = getattr(other, attr) if other else None
        if a is None or b is None or b == 0:
            missing = [n for n, m in ((sa, a), (peer, b)) if m is None]
            row["margin"] = f"no data for {', '.join(missing) or peer}"
        else:
            ratio = a / b
            passed = ratio >= target if op == ">=" else ratio <= target
            # positive = on the right side of the target, whichever direction the target points
            diff = (ratio - target) if op == ">=" else (target - ratio)
            rel = (ratio / target - 1) if op == ">=" else (target / ratio - 1)
            margin = f"{diff:+.2f} ({abs(rel) * 100:.0f}% {'headroom' if passed else 'short'})"
            if any(is_noisy(m) for m in (ours, other)):
                margin += " ⚠ noisy: shared cores during one of the runs"
            if attr == "rps" and any(_load_bound(m) for m in (ours, other)):
                margin += " ⚠ load-generator-bound: compare CPU µs/req"
            row.update(value=ratio, verdict="PASS" if passed else "MISS", margin=margin)
        out.append(row)
    return out


def render_markdown(meta: dict[str, Any], results: dict[str, dict[str, Measurement]],
                    server_notes: dict[str, str], targets: list[dict[str, Any]]) -> str:
    lines = [
        "# vanilla_async benchmark results",
        "",
        f"- date: {meta['date']}",
        f"- machine: {meta['machine']['nproc']} CPUs, {meta['machine']['cpu']}, kernel {meta['machine']['kernel']}; "
        f"background CPU use in the 1 s before the run: {meta['machine']['busy_before']} "
        "(well above 0 = someone else shares the cores; numbers get noisier)",
        f"- duration: {meta['duration']} s per measured run (+{WARMUP_S} s unmeasured warm-up), "
        f"server pinned to CPU {SERVER_CPU}, wrk pinned to CPU {WRK_CPU}, 1 worker/process per server",
        f"- CPU µs/req: utime+stime of the server's live process tree (/proc/PID/stat), "
        f"CLK_TCK={CLK_TCK} → {1000 / CLK_TCK:.0f} ms resolution; trust it only with durations ≥ 5 s",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        "How to read:",
        "",
        "- Ratios within one run are the signal; absolute numbers on a shared 2-core machine are not.",
        "- `server CPU`: the server tree's CPU time per second of the run. ~100% = CPU-bound on its core; well "
        "below = it waited (on wrk, or on a stall of its own).",
        f"- `wrk-bound`: wrk used ≥ {WRK_BOUND_THRESHOLD:.0%} of its core, so req/s is wrk's ceiling there; compare "
        "CPU µs/req instead.",
        f"- `⚠ shared cores`: other processes took ≥ {NOISE_THRESHOLD:.0%} of a benchmark core during that run; "
        "rerun on a quiet machine before trusting the row (CPU µs/req suffers least).",
        "",
        "## Commands",
        "",
        "```",
    ]
    for name, cmd in meta["server_commands"].items():
        lines.append(f"{name:10s} {cmd}")
    lines.append("")
    for name, cmd in meta["wrk_commands"].items():
        lines.append(f"{name:16s} {cmd}")
    lines += ["```", ""]
    if server_notes:
        lines += ["Notes:", ""]
        lines += [f"- **{name}**: {note}" for name, note in server_notes.items()]
        lines.append("")

    for workload in meta["workloads"]:
        lines += [f"## {workload}", "",
                  "| server | req/s | p50 | p99 | CPU µs/req | ours ÷ this | server CPU | notes |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        ours = _get(results, "ours", workload)
        for server in meta["servers"]:
            m = results.get(workload, {}).get(server)
            if m is None:
                continue
            if not m.ok:
                reason = m.reason.replace("|", "/").replace("\n", " ")
                reason = reason if len(reason) <= 160 else reason[:157] + "..."
                lines.append(f"| {server} | failed: {reason} | | | | | | |")
                continue
            ratio = f"{ours.rps / m.rps:.2f}×" if ours and ours.rps and m.rps else "n/a"
            cpu = f"{m.cpu_us_per_req:.1f}" if m.cpu_us_per_req is not None else "—"
            util = f"{m.cpu_util * 100:.0f}%" if m.cpu_util is not None else "—"
            lines.append(f"| {server} | {m.rps:,.0f} | {fmt_us(m.p50_us)} | {fmt_us(m.p99_us)} | {cpu} | {ratio} "
                         f"| {util} | {fmt_flags(m)} |")
        if workload == "https-handshakes":
            lines += ["", "One full TLS handshake per request (new connection, `Connection: close`, no session "
                      "offered: `handshake_client` in bench/run.py): req/s = handshakes/s, CPU µs/req = server CPU "
                      "per handshake+request, p50/p99 = the whole cycle from TCP connect to EOF. When the client "
                      "is bound to its core the server CPU per handshake is the number that compares servers."]
        if workload == "https-c64":
            lines += ["", "Keep-alive HTTPS: the 64 handshakes happen in wrk's first milliseconds (and in the "
                      "unmeasured warm-up); the measured run is record encryption and decryption."]
        if any(w.pipeline > 1 for w in WORKLOADS if w.name == workload):
            lines += ["", "p50/p99 not shown: wrk's coordinated-omission correction assumes one request in flight "
                      "per connection and corrupts the latency histogram under pipelining. req/s counts every "
                      "response."]
        lines.append("")

    lines += ["## Targets", "", "| check | target | value | verdict | margin |", "|---|---|---:|---|---|"]
    for t in targets:
        value = f"{t['value']:.2f}" if t["value"] is not None else "—"
        lines.append(f"| {t['label']} | {t['target']} | {value} | **{t['verdict']}** | {t['margin']} |")
    lines.append("")
    return "\n".join(lines)


def render_chart(results_json: Path, png: Path) -> None:
    """Grouped bars of req/s per workload per server (needs matplotlib; runs inside bench/.venv)."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    data = json.loads(results_json.read_text())
    workloads: list[str] = data["meta"]["workloads"]
    servers: list[str] = data["meta"]["servers"]
    width = 0.8 / max(len(servers), 1)
    fig, ax = plt.subplots(figsize=(13, 6.5), dpi=110)
    peak = 0.0
    for i, server in enumerate(servers):
        values = []
        for workload in workloads:
            m = data["results"].get(workload, {}).get(server)
            values.append(m["rps"] if m and m["ok"] and m["rps"] else 0.0)
        peak = max([peak, *values])
        xs = [w + (i - (len(servers) - 1) / 2) * width for w in range(len(workloads))]
        bars = ax.bar(xs, values, width, label=server)
        for bar, value in zip(bars, values):
            label = f"{value / 1000:.0f}k" if value else "failed"
            ax.annotate(label, (bar.get_x() + bar.get_width() / 2, value), xytext=(0, 2),
                        textcoords="offset points", ha="center", va="bottom", fontsize=7, rotation=90)
    ax.set_xticks(range(len(workloads)))
    ax.set_xticklabels(workloads, fontsize=10)
    ax.set_ylabel("requests / second (higher is better)")
    ax.set_ylim(0, peak * 1.18 if peak else 1)
    ax.yaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:.0f}k"))
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    meta = data["meta"]
    ax.set_title(f"1 worker on CPU {SERVER_CPU}, wrk -t1 on CPU {WRK_CPU}, {meta['duration']} s per run — "
                 f"{meta['date']}", fontsize=10)
    ax.legend(ncol=len(servers), loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    fig.tight_layout()
    fig.savefig(png)
    plt.close(fig)


def write_chart(tools: Tools, results_json: Path, png: Path) -> None:
    try:
        import matplotlib  # noqa: F401, PLC0415
    except ImportError:
        if tools.venv_python is None:
            log.error("no matplotlib and no venv: chart skipped")
            return
        res = run_cmd([tools.venv_python, str(Path(__file__).resolve()), "--render-chart", str(results_json),
                       str(png)], 120)
        if res.returncode != 0:
            log.error("chart rendering failed: %s", tail(res.stderr))
        return
    render_chart(results_json, png)


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


def _pick(kind: str, wanted: str | None, available: list[str]) -> list[str]:
    if not wanted:
        return available
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise BenchError(f"unknown {kind} {unknown}; choose from {', '.join(available)}")
    return [n for n in available if n in names]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=8, help="seconds per measured wrk run (default 8; ≥5 for CPU)")
    p.add_argument("--only", help=f"comma-separated servers ({','.join(s.name for s in SERVERS)})")
    p.add_argument("--workloads", help=f"comma-separated workloads ({','.join(w.name for w in WORKLOADS)}; "
                                       f"default {','.join(DEFAULT_WORKLOADS)})")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="output dir (default bench/results)")
    p.add_argument("--report", default="RESULTS.md",
                   help="report file name in --out (default RESULTS.md, with results.json and chart.png; "
                        "another name X.md writes x.json and x.png beside it)")
    p.add_argument("--no-install", action="store_true", help="never apt-get/pip install; fail what is missing")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--render-chart", nargs=2, metavar=("RESULTS_JSON", "PNG"), help=argparse.SUPPRESS)
    p.add_argument("--handshake-client", nargs=4, metavar=("PORT", "CONNECTIONS", "SECONDS", "PATH"),
                   help=argparse.SUPPRESS)
    return p.parse_args(argv)


def _install_signal_handlers() -> None:
    def handler(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop servers

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def bench_server(sdef: ServerDef, tools: Tools, workloads: list[Workload], duration: int, out: Path,
                 results: dict[str, dict[str, Measurement]], commands: dict[str, str], notes: dict[str, str]) -> None:
    """Run every workload against sdef: its cleartext variant for the http ones, then its TLS variant for the
    https ones (servers without one are left out of those tables). Failures are recorded, not raised."""
    plain = [w for w in workloads if not w.tls]
    secure = [w for w in workloads if w.tls] if sdef.build_tls is not None else []
    for tls, group in ((False, plain), (True, secure)):
        if group:
            _bench_variant(sdef, tls, tools, group, duration, out, results, commands, notes)


def _bench_variant(sdef: ServerDef, tls: bool, tools: Tools, workloads: list[Workload], duration: int, out: Path,
                   results: dict[str, dict[str, Measurement]], commands: dict[str, str],
                   notes: dict[str, str]) -> None:
    """Start one server (cleartext or TLS), run the workloads against it, stop it."""
    label = f"{sdef.name} (TLS)" if tls else sdef.name
    with tempfile.TemporaryDirectory(prefix=f"bench-{sdef.name}-") as tmp:
        try:
            server = start_server(sdef, tools, Path(tmp), out, tls=tls)
        except (BenchError, OSError, ValueError) as exc:
            reason = str(exc)
            log.error("%s failed to start: %s", label, reason)
            commands[label] = "(not started)"
            for w in workloads:
                results[w.name][sdef.name] = Measurement(sdef.name, w.name, False, reason)
            return
        try:
            command = " ".join(server.argv).replace(str(server.port), "PORT").replace(tmp, "$TMPDIR")
            if tools.certs is not None:
                command = command.replace(str(tools.certs.cert.parent), "$CERTS")
            commands[label] = command
            problems = sanity_check(server)
            note = "; ".join(filter(None, [server.note, *problems]))
            if note:
                notes[label] = note
            for w in workloads:
                log.info("%s / %s: %ds (+%ds warm-up)", label, w.name, duration, WARMUP_S)
                m = measure(server, tools, w, duration)
                results[w.name][sdef.name] = m
                if m.ok:
                    log.info("%s / %s: %.0f req/s, p99 %s, %.1f CPU µs/req, server CPU %.0f%%, load CPU %.0f%%; %s",
                             label, w.name, m.rps or 0, fmt_us(m.p99_us), m.cpu_us_per_req or 0,
                             (m.cpu_util or 0) * 100, (m.wrk_util or 0) * 100, fmt_flags(m))
                else:
                    log.error("%s / %s failed: %s", label, w.name, m.reason)
        finally:
            stop_server(server)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    if args.render_chart:
        render_chart(Path(args.render_chart[0]), Path(args.render_chart[1]))
        return 0
    if args.handshake_client:
        port, conns, secs, path = args.handshake_client
        sys.stdout.write(json.dumps(handshake_client(int(port), int(conns), float(secs), path)))
        return 0
    try:
        servers = _pick("server", args.only, [s.name for s in SERVERS
                                              if s.name != "ours-base" or os.environ.get("VANILLA_BENCH_BASE")])
        workload_names = _pick("workload", args.workloads or ",".join(DEFAULT_WORKLOADS),
                               [w.name for w in WORKLOADS])
        if args.duration < 1:
            raise BenchError("--duration must be ≥ 1 second")
        if args.duration < 5:
            log.warning("--duration %d < 5 s: CPU µs/req has only %d ms resolution, expect noise",
                        args.duration, 1000 // CLK_TCK)
        tools = ensure_tools(install=not args.no_install)
    except BenchError as exc:
        log.error("%s", exc)
        return 2
    _install_signal_handlers()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    workloads = [w for w in WORKLOADS if w.name in workload_names]
    scratch = tempfile.TemporaryDirectory(prefix="bench-run-")  # the run's certificates; removed at exit
    if any(w.tls for w in workloads):
        try:
            tools.certs = make_certificates(Path(scratch.name) / "certs")
        except BenchError as exc:
            log.error("%s", exc)
            return 2
    results: dict[str, dict[str, Measurement]] = {w.name: {} for w in workloads}
    commands: dict[str, str] = {}
    notes: dict[str, str] = {}
    machine = machine_info()  # before any load, so loadavg shows what else runs on the box
    started = time.monotonic()
    for sdef in SERVERS:
        if sdef.name in servers:
            bench_server(sdef, tools, workloads, args.duration, out, results, commands, notes)
    if "nginx" in servers:
        notes.setdefault("nginx", "JSON is a static string (json.dumps(PAYLOAD) done once at config time)")
    log.info("all servers done in %.0f s", time.monotonic() - started)

    meta = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine,
        "duration": args.duration,
        "warmup": WARMUP_S,
        "clk_tck": CLK_TCK,
        "servers": servers,
        "workloads": workload_names,
        "versions": tool_versions(tools),
        "server_commands": commands,
        "wrk_commands": {w.name: " ".join(load_argv(tools, w, 0, args.duration)).replace(":0/", ":PORT/")
                         .replace("--handshake-client 0 ", "--handshake-client PORT ")
                         for w in workloads},
    }
    targets = compute_targets(results, workload_names)
    markdown = render_markdown(meta, results, notes, targets)
    stem = args.report.removesuffix(".md")
    results_json = out / ("results.json" if stem == "RESULTS" else f"{stem.lower()}.json")
    chart = out / ("chart.png" if stem == "RESULTS" else f"{stem.lower()}.png")
    results_json.write_text(json.dumps({
        "meta": meta,
        "notes": notes,
        "targets": targets,
        "results": {w: {s: asdict(m) for s, m in per.items()} for w, per in results.items()},
    }, indent=2, ensure_ascii=False))
    (out / f"{stem}.md").write_text(markdown)
    write_chart(tools, results_json, chart)
    log.info("wrote %s, %s, %s", out / f"{stem}.md", results_json, chart)
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # servers were already stopped by the finally blocks on the way up
        log.error("interrupted; every server started was stopped, no results written")
        sys.exit(130)
