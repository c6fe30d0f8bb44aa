#!/usr/bin/env python3
"""Database benchmark: examples/async_db_pg ("ours": one pipelined connection per worker) against
uvicorn + asyncpg and granian + asyncpg, on the TechEmpower database tests.

    python3 bench/db_bench.py [--duration 8] [--rounds 2] [--only ours,uvicorn,granian] [--pools 1,4]
                              [--workloads db,queries20,fortunes] [--pg-cpu 1|none] [--out DIR]

Default run: 5 servers × 3 workloads × 2 rounds × (8 + 2) s ≈ 5.5 minutes.

One throwaway PostgreSQL cluster (`vanilla_async.pgcluster.TemporaryCluster`) serves every server;
it is filled once (``examples.async_db_pg.schema.setup``: ``world`` 10,000 rows, ``fortune``) and
pinned to CPU 1, next to wrk (see FAIRNESS below). Each server runs alone, one worker/process, pinned
to CPU 0, connected over the cluster's unix socket:

- ours: ``python3 -m examples.async_db_pg --port P --workers 1`` with ``DATABASE_URL``: 1 connection.
- uvicorn+asyncpg: ``bench/peers/db_uvicorn_app.py`` (raw ASGI, uvloop, httptools), asyncpg pool.
- granian+asyncpg: ``bench/peers/db_granian_app.py`` (RSGI, uvloop), asyncpg pool.

Each peer runs twice: with a pool of 1 connection (the same connection budget as ours) and with 4.
Before measuring, every server's /db, /queries and /fortunes answers are checked against the
database; a workload whose check fails is not measured. wrk (``-t1 -c64 --latency``, pinned to CPU 1,
2 s unmeasured warm-up) measures req/s and latency; /proc gives the CPU time of the server's process
tree and of the PostgreSQL cluster's, per request. The machine is shared, so every server/workload is
measured ``--rounds`` times (servers interleaved) and the best round that nobody else disturbed is
reported, with every round's req/s beside it. Results: ``bench/results/DB.md`` (also printed)
and ``bench/results/db.json``. Target: /db req/s ours ≥ 2× the best peer (either pool size).

Reuses bench/run.py (wrk runner and parser, /proc accounting, process lifecycle, venv handling).
"""

from __future__ import annotations

import argparse
import datetime as dt
import html
import http.client
import json
import logging
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
for _p in (str(BENCH_DIR), str(REPO_ROOT)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import run as harness  # noqa: E402  bench/run.py
from run import (  # noqa: E402
    CLK_TCK,
    SERVER_CPU,
    WRK_CPU,
    BenchError,
    Measurement,
    RunningServer,
    Tools,
    Workload,
    cpu_times,
    fmt_us,
    other_load,
    run_cmd,
    stop_server,
    tail,
    tree_pids,
)

log = logging.getLogger("db_bench")

PEERS_DIR = BENCH_DIR / "peers"
WARMUP_S = 2
STARTUP_TIMEOUT_S = 30.0
READY_PATH = "/db"
PG_CPU_DEFAULT = WRK_CPU
CPU_SATURATED = 0.95
NOISE_THRESHOLD = harness.NOISE_THRESHOLD
TARGET_DB_RATIO = 2.0
WORLD_ROWS = 10_000
ADDITIONAL_FORTUNE = "Additional fortune added at request time."

WORKLOADS: tuple[Workload, ...] = (
    Workload("db", "/db", 64),
    Workload("queries20", "/queries?queries=20", 64),
    Workload("fortunes", "/fortunes", 64),
)


# ----------------------------------------------------------------------------------------------------------
# Database: one cluster, filled once
# ----------------------------------------------------------------------------------------------------------

def fill_database(dsn: str) -> str:
    """Create and fill world/fortune with the example's own schema; returns what was used."""
    from examples.async_db_pg.schema import setup  # noqa: PLC0415 - the repo root is on sys.path here

    setup(dsn)
    return "examples.async_db_pg.schema.setup"


@dataclass
class DbSnapshot:
    world: dict[int, int]
    fortunes: dict[int, str]


def snapshot_and_vacuum(dsn: str) -> DbSnapshot:
    """Read back what the servers will serve (for the response checks); VACUUM ANALYZE so that
    autovacuum has nothing left to do during the measured runs."""
    import psycopg  # noqa: PLC0415

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE world")
        conn.execute("VACUUM ANALYZE fortune")
        world = {int(i): int(n) for i, n in conn.execute("SELECT id, randomnumber FROM world")}
        fortunes = {int(i): str(m) for i, m in conn.execute("SELECT id, message FROM fortune")}
    missing = [i for i in (1, WORLD_ROWS) if i not in world]
    if len(world) != WORLD_ROWS or missing:
        raise BenchError(f"world has {len(world)} rows (ids 1 and {WORLD_ROWS} present: {not missing}); "
                         f"expected {WORLD_ROWS}")
    if not fortunes:
        raise BenchError("fortune table is empty")
    return DbSnapshot(world, fortunes)


def client_connections(dsn: str) -> int | None:
    """Client sessions on the benchmark database, other than this one (the server's connection budget)."""
    try:
        import psycopg  # noqa: PLC0415

        with psycopg.connect(dsn, autocommit=True) as conn:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                               "AND pid <> pg_backend_pid() AND backend_type = 'client backend'").fetchone()
        return int(row[0]) if row else None
    except Exception as exc:  # noqa: BLE001 - informational only
        log.warning("could not count connections: %s", exc)
        return None


def tree_ticks(root: int) -> int:
    """utime+stime+cutime+cstime (clock ticks) summed over root's live process tree.

    Unlike run.py's `cpu_ticks_of_tree` (live processes only), this keeps counting a process that
    exits during the measured run: once its parent reaps it, its ticks move into the parent's
    cutime/cstime. The postmaster reaps every backend, so a PostgreSQL session that ends mid-run (a
    pool connection, autovacuum, our own pg_stat_activity probe) does not make the sum go down.
    """
    total = 0
    for pid in tree_pids(root):
        try:
            raw = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        rest = raw[raw.rfind(")") + 2:].split()  # rest[N - 3] is field N of proc(5)
        total += int(rest[11]) + int(rest[12]) + int(rest[13]) + int(rest[14])
    return total


def pin_tree(root: int, cpus: set[int]) -> int:
    """sched_setaffinity on root and every live descendant (new backends inherit the postmaster's)."""
    n = 0
    for pid in tree_pids(root):
        try:
            os.sched_setaffinity(pid, cpus)
            n += 1
        except (ProcessLookupError, PermissionError) as exc:
            log.debug("cannot pin %d: %s", pid, exc)
    return n


def affinity_summary(root: int) -> str:
    seen: dict[str, int] = {}
    for pid in tree_pids(root):
        try:
            key = ",".join(str(c) for c in sorted(os.sched_getaffinity(pid)))
        except (ProcessLookupError, PermissionError):
            continue
        seen[key] = seen.get(key, 0) + 1
    return "; ".join(f"{n} process(es) on CPU {k}" for k, n in seen.items())


# ----------------------------------------------------------------------------------------------------------
# Servers
# ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DbServer:
    name: str  # unique row label
    family: str  # ours | uvicorn | granian (what --only selects)
    pool: int  # DB connections the server may open
    build: Callable[[int, "DbContext"], harness.LaunchSpec]


@dataclass
class DbContext:
    tools: Tools
    dsn: str
    pg_env: dict[str, str]  # PGHOST/PGPORT/PGDATABASE/PGUSER for asyncpg


def _pg_env_from(cluster: Any) -> dict[str, str]:
    return {"PGHOST": cluster.host, "PGPORT": str(cluster.port), "PGDATABASE": cluster.dbname,
            "PGUSER": cluster.user}


def build_ours(port: int, ctx: DbContext) -> harness.LaunchSpec:
    argv = [ctx.tools.python, "-m", "examples.async_db_pg", "--port", str(port), "--workers", "1"]
    return harness.LaunchSpec(argv, {**harness._python_env(), "DATABASE_URL": ctx.dsn})


def _peer_env(ctx: DbContext, pool: int) -> dict[str, str]:
    return {**harness._python_env(PEERS_DIR), **ctx.pg_env, "DB_POOL_SIZE": str(pool)}


def build_uvicorn(pool: int) -> Callable[[int, DbContext], harness.LaunchSpec]:
    def build(port: int, ctx: DbContext) -> harness.LaunchSpec:
        py = harness._need_venv(ctx.tools)
        argv = [py, "-m", "uvicorn", "db_uvicorn_app:app", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log",
                "--log-level", "warning"]
        return harness.LaunchSpec(argv, _peer_env(ctx, pool))
    return build


def build_granian(pool: int) -> Callable[[int, DbContext], harness.LaunchSpec]:
    def build(port: int, ctx: DbContext) -> harness.LaunchSpec:
        py = harness._need_venv(ctx.tools)
        granian = str(Path(py).parent / "granian")
        helptext = harness._granian_help(granian)
        argv = [granian, "--interface", "rsgi", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
        optional = [
            ("--runtime-threads", ["--runtime-threads", "1"]),
            ("--loop ", ["--loop", "uvloop"]),
            ("--no-ws", ["--no-ws"]),
            ("--http ", ["--http", "1"]),
            ("--log-level", ["--log-level", "warning"]),
            ("--no-access-log", ["--no-access-log"]),
        ]
        for marker, args in optional:
            if marker in helptext:
                argv += args
        argv.append("db_granian_app:app")
        return harness.LaunchSpec(argv, _peer_env(ctx, pool))
    return build


def all_servers(pools: list[int]) -> list[DbServer]:
    servers = [DbServer("ours", "ours", 1, build_ours)]
    for family, builder in (("uvicorn", build_uvicorn), ("granian", build_granian)):
        for pool in pools:
            servers.append(DbServer(f"{family}+asyncpg pool={pool}", family, pool, builder(pool)))
    return servers


def start_db_server(sdef: DbServer, ctx: DbContext, log_dir: Path) -> RunningServer:
    """Launch pinned to SERVER_CPU in its own session; ready when GET /db answers 200."""
    port = harness.free_port()
    spec = sdef.build(port, ctx)
    argv = [ctx.tools.taskset, "-c", SERVER_CPU, *spec.argv]
    log_path = log_dir / f"db-{sdef.family}-pool{sdef.pool}.log"
    log.info("starting %s on 127.0.0.1:%d: %s", sdef.name, port, " ".join(argv))
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen(argv, cwd=spec.cwd, env={**os.environ, **spec.env}, stdin=subprocess.DEVNULL,
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    server = RunningServer(sdef.name, proc, port, log_path, argv, spec.note)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        last = "no attempt yet"
        while True:
            if (rc := proc.poll()) is not None:
                raise BenchError(f"exited with rc={rc} during startup: {harness._log_tail(log_path) or 'no output'}")
            try:
                status, body, _ = harness._http_get(port, READY_PATH)
                if status == 200:
                    return server
                last = f"GET {READY_PATH} answered {status}: {body[:80]!r}"
            except (OSError, http.client.HTTPException) as exc:
                last = f"{type(exc).__name__}: {exc}"
            if time.monotonic() > deadline:
                raise BenchError(f"not ready after {STARTUP_TIMEOUT_S:.0f}s ({last}); "
                                 f"log: {harness._log_tail(log_path) or 'empty'}")
            time.sleep(0.1)
    except BaseException:
        stop_server(server)
        raise


# ----------------------------------------------------------------------------------------------------------
# Response checks
# ----------------------------------------------------------------------------------------------------------

_ROW_RE = re.compile(r"<tr>\s*<td>\s*(\d+)\s*</td>\s*<td>(.*?)</td>\s*</tr>", re.S)


def _check_world_item(item: Any, db: DbSnapshot) -> str | None:
    if not isinstance(item, dict) or set(item) != {"id", "randomNumber"}:
        return f"expected an object with keys id, randomNumber; got {str(item)[:80]}"
    rid, num = item["id"], item["randomNumber"]
    if not isinstance(rid, int) or not isinstance(num, int) or isinstance(rid, bool):
        return f"non-integer values {item}"
    if rid not in db.world:
        return f"id {rid} outside 1..{WORLD_ROWS}"
    if db.world[rid] != num:
        return f"row {rid}: randomNumber {num}, database has {db.world[rid]}"
    return None


def _get_json(port: int, path: str) -> tuple[Any, str | None]:
    status, body, ctype = harness._http_get(port, path, timeout=5.0)
    if status != 200:
        return None, f"GET {path} -> {status} {body[:60]!r}"
    if not ctype.startswith("application/json"):
        return None, f"GET {path}: content-type {ctype!r}"
    try:
        return json.loads(body), None
    except ValueError as exc:
        return None, f"GET {path}: invalid JSON ({exc})"


def check_db(port: int, db: DbSnapshot) -> list[str]:
    problems = []
    ids = set()
    for _ in range(10):
        data, err = _get_json(port, "/db")
        if err is None:
            err = _check_world_item(data, db)
        if err:
            return [err]
        ids.add(data["id"])
    if len(ids) < 3:
        problems.append(f"/db: 10 requests returned only {len(ids)} distinct ids (not random?)")
    return problems


def check_queries(port: int, db: DbSnapshot) -> tuple[list[str], list[str]]:
    """(fatal problems of /queries?queries=20, non-fatal deviations on the edge cases)."""
    data, err = _get_json(port, "/queries?queries=20")
    if err:
        return [err], []
    if not isinstance(data, list) or len(data) != 20:
        return [f"/queries?queries=20: expected a list of 20, got {str(data)[:80]}"], []
    for item in data:
        if bad := _check_world_item(item, db):
            return [f"/queries?queries=20: {bad}"], []
    edge = []
    for query, want in (("0", 1), ("foo", 1), ("501", 500)):
        data, err = _get_json(port, f"/queries?queries={query}")
        if err or not isinstance(data, list) or len(data) != want:
            got = err or (f"{len(data)} rows" if isinstance(data, list) else str(data)[:40])
            edge.append(f"/queries?queries={query}: want {want} rows, got {got}")
    return [], edge


def check_fortunes(port: int, db: DbSnapshot) -> tuple[list[str], bytes]:
    status, body, ctype = harness._http_get(port, "/fortunes", timeout=5.0)
    if status != 200:
        return [f"/fortunes -> {status} {body[:60]!r}"], body
    problems = []
    if not ctype.startswith("text/html"):
        problems.append(f"/fortunes content-type {ctype!r}")
    text = body.decode("utf-8", errors="replace")
    rows = [(int(i), html.unescape(m)) for i, m in _ROW_RE.findall(text)]
    want = sorted([*db.fortunes.values(), ADDITIONAL_FORTUNE])
    messages = [m for _, m in rows]
    if ADDITIONAL_FORTUNE not in text:
        problems.append("/fortunes lacks the fortune added at request time")
    if sorted(messages) != want:
        problems.append(f"/fortunes: {len(rows)} rows, expected {len(want)} (database + added one)")
    elif messages != want:
        problems.append("/fortunes rows are not sorted by message")
    if "<script>" in text:
        problems.append("/fortunes: a message was not HTML-escaped")
    by_id = {i: m for i, m in rows}
    wrong = [i for i, m in db.fortunes.items() if by_id.get(i) != m]
    if wrong and not problems:
        problems.append(f"/fortunes: ids {wrong[:5]} do not carry their database message")
    return problems, body


def verify(server: RunningServer, db: DbSnapshot) -> tuple[dict[str, list[str]], list[str], bytes | None]:
    """Per-workload fatal problems, non-fatal notes, and the /fortunes body (to compare with ours')."""
    fatal: dict[str, list[str]] = {}
    notes: list[str] = []
    body = None
    try:
        fatal["db"] = check_db(server.port, db)
        fatal["queries20"], notes = check_queries(server.port, db)
        fatal["fortunes"], body = check_fortunes(server.port, db)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        msg = f"response check failed: {type(exc).__name__}: {exc}"
        for w in ("db", "queries20", "fortunes"):
            fatal.setdefault(w, []).append(msg)
    for w, problems in fatal.items():
        for p in problems:
            log.error("%s: %s", server.name, p)
    for n in notes:
        log.warning("%s: %s", server.name, n)
    return fatal, notes, body


# ----------------------------------------------------------------------------------------------------------
# Measuring
# ----------------------------------------------------------------------------------------------------------


@dataclass
class DbMeasurement(Measurement):
    pg_ticks: int | None = None
    pg_cpu_us_per_req: float | None = None  # PostgreSQL cluster's CPU per request (all its processes)
    pg_util: float | None = None  # ... per wall second
    cpu_busy: dict[str, float] | None = None  # per CPU: non-idle share of the run (all processes, irq too)
    connections: int | None = None  # client sessions on the database while this server ran
    round: int | None = None  # which round this row comes from (1-based)
    rounds_rps: list[float | None] | None = None  # req/s of every round, in order (None: failed)


def measure(server: RunningServer, tools: Tools, workload: Workload, duration: int, pg_pid: int,
            pg_pinned: bool) -> DbMeasurement:
    """Warm up, then one timed wrk run; CPU ticks of the server tree, the PostgreSQL tree and wrk
    are sampled right before and right after it."""
    command = " ".join(harness.wrk_argv(tools, workload, server.port, duration))
    if (rc := server.proc.poll()) is not None:
        return DbMeasurement(server.name, workload.name, False, f"server exited rc={rc}", wrk_command=command)
    try:
        harness.run_wrk(tools, workload, server.port, WARMUP_S)
        cpus_before, wrk_before = cpu_times(), harness.children_cpu_ticks()
        before, pg_before = tree_ticks(server.proc.pid), tree_ticks(pg_pid)
        result = harness.run_wrk(tools, workload, server.port, duration)
        after, pg_after = tree_ticks(server.proc.pid), tree_ticks(pg_pid)
        cpus_after, wrk_ticks = cpu_times(), harness.children_cpu_ticks() - wrk_before
    except (BenchError, ValueError, subprocess.TimeoutExpired, OSError) as exc:
        return DbMeasurement(server.name, workload.name, False, f"{type(exc).__name__}: {exc}", wrk_command=command)
    if result.requests == 0:
        return DbMeasurement(server.name, workload.name, False, "wrk completed 0 requests", wrk_command=command,
                             wrk_output=result.raw, errors=result.errors)
    ticks, pg_ticks = after - before, pg_after - pg_before
    s_cpu, w_cpu = int(SERVER_CPU), int(WRK_CPU)
    secs = result.seconds or None
    busy = {f"cpu{c}": (cpus_after[c].busy - cpus_before[c].busy) / max(cpus_after[c].total - cpus_before[c].total, 1)
            for c in sorted(cpus_after)}
    if pg_pinned:  # postgres shares CPU 1 with wrk: both are "ours" there
        other_s = other_load(cpus_before[s_cpu], cpus_after[s_cpu], ticks)
        other_w = other_load(cpus_before[w_cpu], cpus_after[w_cpu], wrk_ticks + pg_ticks)
    else:  # postgres may run anywhere: attribute jointly over both benchmark CPUs
        total = sum(cpus_after[c].total - cpus_before[c].total for c in (s_cpu, w_cpu)) / 2
        tasks = sum(cpus_after[c].tasks - cpus_before[c].tasks for c in (s_cpu, w_cpu))
        other_s = other_w = max(0.0, (tasks - ticks - wrk_ticks - pg_ticks) / 2 / total) if total else 0.0
    return DbMeasurement(
        server=server.name, workload=workload.name, ok=True, rps=result.rps, requests=result.requests,
        p50_us=result.p50_us, p99_us=result.p99_us, cpu_ticks=ticks,
        cpu_us_per_req=ticks * 1e6 / CLK_TCK / result.requests,
        cpu_util=ticks / CLK_TCK / secs if secs else None,
        wrk_util=wrk_ticks / CLK_TCK / secs if secs else None,
        other_server_cpu=other_s, other_wrk_cpu=other_w,
        errors=result.errors, wrk_command=command, wrk_output=result.raw,
        pg_ticks=pg_ticks, pg_cpu_us_per_req=pg_ticks * 1e6 / CLK_TCK / result.requests,
        pg_util=pg_ticks / CLK_TCK / secs if secs else None, cpu_busy=busy,
    )


def is_noisy(m: DbMeasurement | None) -> bool:
    return m is not None and max(m.other_server_cpu or 0, m.other_wrk_cpu or 0) >= NOISE_THRESHOLD


def is_clean(m: DbMeasurement | None) -> bool:
    """ok and without wrk errors worth more than 0.1 % of the requests."""
    if m is None or not m.ok or not m.requests:
        return False
    return sum(m.errors.values()) <= 0.001 * m.requests


def noise(m: DbMeasurement) -> float:
    return max(m.other_server_cpu or 0, m.other_wrk_cpu or 0)


def pick_round(rounds: list[DbMeasurement]) -> DbMeasurement:
    """The row to report out of a server/workload's rounds: the best req/s among the quiet rounds
    (others < NOISE_THRESHOLD on both CPUs); if every round was noisy, the least noisy one; if every
    round failed, the last failure. Every round's req/s stays in ``rounds_rps``."""
    ok = [m for m in rounds if m.ok]
    if not ok:
        chosen = rounds[-1]
    else:
        quiet = [m for m in ok if not is_noisy(m)]
        chosen = max(quiet, key=lambda m: m.rps or 0) if quiet else min(ok, key=noise)
    chosen.rounds_rps = [m.rps if m.ok else None for m in rounds]
    return chosen


def fmt_flags(m: DbMeasurement, pg_pinned: bool) -> str:
    flags = [f"{k} {v}" for k, v in m.errors.items()]
    cpu1 = (m.cpu_busy or {}).get(f"cpu{WRK_CPU}")
    if pg_pinned and cpu1 is not None and cpu1 >= CPU_SATURATED:
        flags.append(f"CPU {WRK_CPU} saturated ({cpu1 * 100:.0f}%: wrk + postgres) — req/s capped there, "
                     "compare CPU µs/req")
    elif m.wrk_util is not None and m.wrk_util >= harness.WRK_BOUND_THRESHOLD:
        flags.append(f"wrk-bound ({m.wrk_util * 100:.0f}%)")
    if is_noisy(m):
        flags.append(f"⚠ shared cores: others used {(m.other_server_cpu or 0) * 100:.0f}% of CPU {SERVER_CPU}, "
                     f"{(m.other_wrk_cpu or 0) * 100:.0f}% of CPU {WRK_CPU}")
    return "; ".join(flags) or "—"


# ----------------------------------------------------------------------------------------------------------
# Report
# ----------------------------------------------------------------------------------------------------------


def _get(results: dict[str, dict[str, DbMeasurement]], server: str, workload: str) -> DbMeasurement | None:
    m = results.get(workload, {}).get(server)
    return m if m is not None and m.ok else None


def best_peer(results: dict[str, dict[str, DbMeasurement]], workload: str, servers: list[DbServer],
              pool: int | None = None) -> DbMeasurement | None:
    """The peer row with the most req/s (clean rows only; pool=None: any pool size)."""
    rows = [results.get(workload, {}).get(s.name) for s in servers
            if s.family != "ours" and (pool is None or s.pool == pool)]
    clean = [m for m in rows if m is not None and is_clean(m)]
    return max(clean, key=lambda m: m.rps or 0, default=None)


def summarize(results: dict[str, dict[str, DbMeasurement]], servers: list[DbServer],
              workloads: list[str]) -> list[dict[str, Any]]:
    out = []
    for w in workloads:
        ours = _get(results, "ours", w)
        row: dict[str, Any] = {"workload": w, "ours_rps": ours.rps if ours else None}
        for key, pool in (("best", None), ("best_pool1", 1)):
            peer = best_peer(results, w, servers, pool)
            row[key] = peer.server if peer else None
            row[f"{key}_rps"] = peer.rps if peer else None
            row[f"{key}_ratio"] = (ours.rps / peer.rps) if ours and peer and ours.rps and peer.rps else None
            row[f"{key}_cpu_ratio"] = (peer.cpu_us_per_req / ours.cpu_us_per_req
                                       if ours and peer and ours.cpu_us_per_req and peer.cpu_us_per_req else None)
        row["ours_clean"] = is_clean(ours)
        out.append(row)
    return out


def compute_target(summary: list[dict[str, Any]], results: dict[str, dict[str, DbMeasurement]]) -> dict[str, Any]:
    row = next((r for r in summary if r["workload"] == "db"), None)
    target: dict[str, Any] = {"label": "/db req/s: ours ÷ best peer (any pool size)",
                              "target": f">= {TARGET_DB_RATIO}", "value": None, "verdict": "N/A", "margin": ""}
    if row is None:
        target["margin"] = "db workload not run"
    elif row["best_ratio"] is None:
        target["margin"] = "no clean data for " + ("ours" if row["ours_rps"] is None else "any peer")
    else:
        ratio = row["best_ratio"]
        passed = ratio >= TARGET_DB_RATIO and row["ours_clean"]
        rel = ratio / TARGET_DB_RATIO - 1
        margin = f"{ratio - TARGET_DB_RATIO:+.2f} ({abs(rel) * 100:.0f}% {'headroom' if ratio >= TARGET_DB_RATIO else 'short'}) vs {row['best']}"
        if not row["ours_clean"]:
            margin += "; ours had wrk errors/non-2xx, so not a PASS"
        if any(is_noisy(m) for m in (_get(results, "ours", "db"), _get(results, row["best"], "db"))):
            margin += " ⚠ noisy: shared cores during one of the runs"
        target.update(value=ratio, verdict="PASS" if passed else "MISS", margin=margin)
    return target


def _fmt_rounds(m: DbMeasurement) -> str:
    parts = []
    for i, rps in enumerate(m.rounds_rps or [], start=1):
        text = "failed" if rps is None else f"{rps:,.0f}"
        parts.append(f"**{text}**" if i == m.round else text)
    return " / ".join(parts) or "—"


def _pct(v: float | None) -> str:
    return f"{v * 100:.0f}%" if v is not None else "—"


def render_markdown(meta: dict[str, Any], results: dict[str, dict[str, DbMeasurement]], servers: list[DbServer],
                    notes: dict[str, list[str]], summary: list[dict[str, Any]], target: dict[str, Any]) -> str:
    pinned = meta["pg_pinned"]
    m = meta["machine"]
    lines = [
        "# vanilla_async database benchmark",
        "",
        f"- date: {meta['date']}",
        f"- machine: {m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}; background CPU use in the 1 s before "
        f"the run: {m['busy_before']}",
        f"- duration: {meta['duration']} s per measured wrk run (+{WARMUP_S} s unmeasured warm-up), `wrk -t1 -c64 "
        f"--latency`; {meta['rounds']} round(s), servers interleaved; each row is its best quiet round (others took "
        f"< {NOISE_THRESHOLD:.0%} of either CPU; bold in `req/s of each round`), or its least noisy one if none was "
        "quiet",
        f"- database: PostgreSQL {meta['postgres']} (`vanilla_async.pgcluster.TemporaryCluster`, fsync off), one "
        f"cluster for the whole run, filled by {meta['setup']}; every server connects over its unix socket",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
        "",
        "Fairness:",
        "",
        f"- **CPU pinning**: each server (one worker/process) runs alone on CPU {SERVER_CPU}. wrk "
        + (f"**and every PostgreSQL process** share CPU {WRK_CPU} ({meta['pg_affinity']}). Left unpinned, "
           "postgres would take CPU 0 time from the server under test — and more from a faster server, since "
           "its backend's work grows with the query rate — so a server's own CPU would no longer be its own. "
           f"The price: wrk + postgres can saturate CPU {WRK_CPU}; the `CPU{WRK_CPU} busy` column shows it, and "
           "such rows are flagged (req/s is then capped by that core for whoever hits it; CPU µs/req still "
           "compares)." if pinned else
           f"runs on CPU {WRK_CPU}; PostgreSQL is **unpinned** ({meta['pg_affinity']}): it may take CPU time "
           f"from the server on CPU {SERVER_CPU}."),
        "- **Connection budget**: ours opens exactly 1 connection per worker and pipelines every request's "
        "queries on it. Each peer runs twice: `pool=1` (the same budget: requests take turns on one "
        "connection) and `pool=4` (asyncpg's usual way to overlap round trips). `DB conns` is what "
        "pg_stat_activity showed while the server ran. The target compares against the best peer of either.",
        "- **Peers are tuned as TechEmpower's asyncpg entries**: raw ASGI/RSGI (no framework), uvloop, asyncpg "
        "prepared-statement cache, no connection reset on release, `/queries` sends its 20 SELECTs in one "
        "pipelined batch (`Connection.fetchmany`), stdlib `json` (as ours).",
        f"- `server µs/req`: CPU (utime+stime) of the server's process tree per request; `pg µs/req`: the "
        f"same for the whole PostgreSQL cluster. CLK_TCK={CLK_TCK} → {1000 / CLK_TCK:.0f} ms resolution.",
        "- Ratios within one run are the signal; absolute numbers on a shared 2-core machine are not.",
        "",
        "## Commands",
        "",
        "```",
    ]
    for name, cmd in meta["server_commands"].items():
        lines.append(f"{name:24s} {cmd}")
    lines.append("")
    for name, cmd in meta["wrk_commands"].items():
        lines.append(f"{name:24s} {cmd}")
    lines += ["```", ""]
    if any(notes.values()):
        lines += ["Notes:", ""]
        for name, ns in notes.items():
            for n in ns:
                lines.append(f"- **{name}**: {n}")
        lines.append("")

    lines += ["## Summary", "",
              "| workload | ours req/s | best peer | its req/s | ours ÷ best | server µs/req: best ÷ ours "
              "| best pool=1 peer | ours ÷ best pool=1 |",
              "|---|---:|---|---:|---:|---:|---|---:|"]
    for r in summary:
        def num(v: float | None, fmt: str) -> str:
            return fmt.format(v) if v is not None else "—"
        lines.append(f"| {r['workload']} | {num(r['ours_rps'], '{:,.0f}')} | {r['best'] or '—'} "
                     f"| {num(r['best_rps'], '{:,.0f}')} | **{num(r['best_ratio'], '{:.2f}×')}** "
                     f"| {num(r['best_cpu_ratio'], '{:.2f}×')} | {r['best_pool1'] or '—'} "
                     f"| {num(r['best_pool1_ratio'], '{:.2f}×')} |")
    lines += ["", "## Target", "", "| check | target | value | verdict | margin |", "|---|---|---:|---|---|"]
    value = f"{target['value']:.2f}" if target["value"] is not None else "—"
    lines += [f"| {target['label']} | {target['target']} | {value} | **{target['verdict']}** | {target['margin']} |",
              ""]

    for w in meta["workloads"]:
        path = next(x.path for x in WORKLOADS if x.name == w)
        lines += [f"## {w} (`GET {path}`, c64)", "",
                  "| server | DB conns | req/s | p50 | p99 | server µs/req | pg µs/req | ours ÷ this | server CPU "
                  f"| pg CPU | CPU{WRK_CPU} busy | req/s of each round | notes |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"]
        ours = _get(results, "ours", w)
        for s in servers:
            mm = results.get(w, {}).get(s.name)
            if mm is None:
                continue
            conns = str(mm.connections) if mm.connections is not None else "—"
            if not mm.ok:
                reason = mm.reason.replace("|", "/").replace("\n", " ")
                reason = reason if len(reason) <= 160 else reason[:157] + "..."
                lines.append(f"| {s.name} | {conns} | failed: {reason} | | | | | | | | | | |")
                continue
            ratio = f"{ours.rps / mm.rps:.2f}×" if ours and ours.rps and mm.rps else "n/a"
            cpu = f"{mm.cpu_us_per_req:.1f}" if mm.cpu_us_per_req is not None else "—"
            pg = f"{mm.pg_cpu_us_per_req:.1f}" if mm.pg_cpu_us_per_req is not None else "—"
            busy1 = (mm.cpu_busy or {}).get(f"cpu{WRK_CPU}")
            lines.append(f"| {s.name} | {conns} | {mm.rps:,.0f} | {fmt_us(mm.p50_us)} | {fmt_us(mm.p99_us)} | {cpu} "
                         f"| {pg} | {ratio} | {_pct(mm.cpu_util)} | {_pct(mm.pg_util)} | {_pct(busy1)} "
                         f"| {_fmt_rounds(mm)} | {fmt_flags(mm, pinned)} |")
        lines.append("")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------------
# Main
# ----------------------------------------------------------------------------------------------------------


def ensure_tools(install: bool) -> Tools:
    """wrk, taskset, the project's python (needs psycopg) and bench/.venv (needs asyncpg)."""
    apt_state: dict[str, bool] = {}
    wrk = harness._which("wrk")
    if wrk is None and install:
        harness._apt_install(["wrk"], apt_state)
        wrk = harness._which("wrk")
    if wrk is None:
        raise BenchError("wrk not found: install it with `apt-get install -y wrk` (Debian) and retry")
    taskset = harness._which("taskset")
    if taskset is None:
        raise BenchError("taskset not found: install util-linux")
    if not {0, 1} <= os.sched_getaffinity(0):
        raise BenchError(f"need CPUs 0 and 1 (server on 0, wrk on 1); have {sorted(os.sched_getaffinity(0))}")
    try:
        import psycopg  # noqa: F401, PLC0415
    except ImportError as exc:
        raise BenchError(f"the harness needs psycopg (the project's dependency): {exc}") from None
    python = harness._resolve_python()
    venv_python = harness.ensure_venv(python, install)
    return Tools(wrk=wrk, nginx=None, taskset=taskset, python=python, venv_python=venv_python)


def versions(tools: Tools, cluster: Any) -> dict[str, str]:
    out: dict[str, str] = {}
    res = run_cmd([tools.wrk, "-v"], 30)
    match = re.search(r"wrk (\S+)", res.stdout + res.stderr)
    out["wrk"] = match.group(1) if match else "unknown"
    res = run_cmd([tools.python, "-c", "import sys, psycopg; print(sys.version.split()[0], psycopg.__version__)"], 30)
    py, _, pg = res.stdout.strip().partition(" ")
    out["python (ours)"] = py or "unknown"
    out["psycopg (ours)"] = pg or "unknown"
    if tools.venv_python:
        probe = ("import sys, importlib.metadata as m\nprint('python', sys.version.split()[0])\n"
                 "for n in ('asyncpg','uvicorn','uvloop','httptools','granian'):\n"
                 "    try: print(n, m.version(n))\n    except m.PackageNotFoundError: print(n, 'missing')")
        res = run_cmd([tools.venv_python, "-c", probe], 30)
        for line in res.stdout.splitlines():
            name, _, version = line.partition(" ")
            out["python (peers)" if name == "python" else name] = version
    return out


def _pick(wanted: str | None, available: list[str], kind: str) -> list[str]:
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
    p.add_argument("--only", help="comma-separated server families: ours,uvicorn,granian (default all)")
    p.add_argument("--rounds", type=int, default=2,
                   help="measure every server/workload this many times, interleaved; report the best quiet "
                        "round (default 2)")
    p.add_argument("--pools", default="1,4", help="asyncpg pool sizes for the peers (default 1,4)")
    p.add_argument("--workloads", help=f"comma-separated ({','.join(w.name for w in WORKLOADS)})")
    p.add_argument("--pg-cpu", default=PG_CPU_DEFAULT, choices=[WRK_CPU, "none"],
                   help=f"pin every PostgreSQL process to this CPU (default {PG_CPU_DEFAULT}, wrk's), or 'none'")
    p.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="output dir (default bench/results)")
    p.add_argument("--no-install", action="store_true", help="never apt-get/pip install")
    p.add_argument("-v", "--verbose", action="store_true")
    return p.parse_args(argv)


def _add_note(notes: dict[str, list[str]], name: str, note: str) -> None:
    if note not in notes.setdefault(name, []):
        notes[name].append(note)


def bench_one(sdef: DbServer, ctx: DbContext, workloads: list[Workload], duration: int, out: Path,
              cluster: Any, pinned: bool, db: DbSnapshot, rounds: dict[str, dict[str, list[DbMeasurement]]],
              round_no: int, commands: dict[str, str], notes: dict[str, list[str]],
              bodies: dict[str, bytes]) -> None:
    """Start one server, check its answers, run every workload once (one round), stop it."""
    def record(m: DbMeasurement) -> None:
        m.round = round_no
        rounds[m.workload].setdefault(m.server, []).append(m)

    def fail_all(reason: str, connections: int | None = None) -> None:
        for w in workloads:
            record(DbMeasurement(sdef.name, w.name, False, reason, connections=connections))

    try:
        server = start_db_server(sdef, ctx, out)
    except (BenchError, OSError, ValueError) as exc:
        log.error("%s failed to start: %s", sdef.name, exc)
        commands[sdef.name] = "(not started)"
        fail_all(str(exc))
        return
    try:
        commands[sdef.name] = " ".join(server.argv).replace(str(server.port), "PORT")
        if pinned:
            pin_tree(cluster.pid, {int(WRK_CPU)})  # backends fork from the postmaster and inherit; belt and braces
        fatal, edge, body = verify(server, db)
        if body is not None:
            bodies[sdef.name] = body
        for note in edge:
            _add_note(notes, sdef.name, note)
        connections = client_connections(cluster.dsn)
        if connections is not None and connections != sdef.pool:
            _add_note(notes, sdef.name, f"{connections} database connections open, expected {sdef.pool}")
        for w in workloads:
            if fatal.get(w.name):
                record(DbMeasurement(sdef.name, w.name, False, "response check: " + "; ".join(fatal[w.name]),
                                     connections=connections))
                continue
            log.info("round %d: %s / %s: %ds (+%ds warm-up)", round_no, sdef.name, w.name, duration, WARMUP_S)
            m = measure(server, ctx.tools, w, duration, cluster.pid, pinned)
            m.connections = connections
            record(m)
            if m.ok:
                log.info("%s / %s: %.0f req/s, p99 %s, server %.1f µs/req, pg %.1f µs/req, server CPU %.0f%%, "
                         "CPU%s busy %s; %s", sdef.name, w.name, m.rps or 0, fmt_us(m.p99_us),
                         m.cpu_us_per_req or 0, m.pg_cpu_us_per_req or 0, (m.cpu_util or 0) * 100, WRK_CPU,
                         _pct((m.cpu_busy or {}).get(f"cpu{WRK_CPU}")), fmt_flags(m, pinned))
            else:
                log.error("%s / %s failed: %s", sdef.name, w.name, m.reason)
    finally:
        stop_server(server)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S", stream=sys.stderr)
    try:
        families = _pick(args.only, ["ours", "uvicorn", "granian"], "server")
        workload_names = _pick(args.workloads, [w.name for w in WORKLOADS], "workload")
        try:
            pools = sorted({int(p) for p in args.pools.split(",") if p.strip()})
        except ValueError:
            raise BenchError(f"--pools wants integers, got {args.pools!r}") from None
        if not pools or min(pools) < 1:
            raise BenchError("--pools: sizes must be ≥ 1")
        if args.duration < 1:
            raise BenchError("--duration must be ≥ 1 second")
        if args.rounds < 1:
            raise BenchError("--rounds must be ≥ 1")
        if args.duration < 5:
            log.warning("--duration %d < 5 s: CPU µs/req has only %d ms resolution, expect noise",
                        args.duration, 1000 // CLK_TCK)
        tools = ensure_tools(install=not args.no_install)
        from vanilla_async.pgcluster import PgClusterError, TemporaryCluster  # noqa: PLC0415
    except BenchError as exc:
        log.error("%s", exc)
        return 2
    harness._install_signal_handlers()
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    servers = [s for s in all_servers(pools) if s.family in families]
    workloads = [w for w in WORKLOADS if w.name in workload_names]
    rounds: dict[str, dict[str, list[DbMeasurement]]] = {w.name: {} for w in workloads}
    estimate = args.rounds * len(servers) * (len(workloads) * (args.duration + WARMUP_S + 0.5) + 2) + 10
    log.info("%d round(s) × %d servers × %d workloads: about %.0f s", args.rounds, len(servers), len(workloads),
             estimate)
    commands: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    bodies: dict[str, bytes] = {}
    pinned = args.pg_cpu != "none"
    machine = harness.machine_info()
    started = time.monotonic()

    cluster = TemporaryCluster("vanilla_bench")
    try:
        t0 = time.monotonic()
        cluster.start()
        if pinned:
            pin_tree(cluster.pid, {int(args.pg_cpu)})
        log.info("PostgreSQL cluster up in %.1f s: %s (%s)", time.monotonic() - t0, cluster.dsn,
                 affinity_summary(cluster.pid))
        setup_used = fill_database(cluster.dsn)
        db = snapshot_and_vacuum(cluster.dsn)
        if pinned:
            pin_tree(cluster.pid, {int(args.pg_cpu)})
        pg_affinity = affinity_summary(cluster.pid)
        version_text = run_cmd([str(cluster.bindir / "postgres"), "--version"], 30).stdout
        pg_version = m.group(1) if (m := re.search(r"PostgreSQL\)\s+(\S+)", version_text)) else version_text.strip()
        ctx = DbContext(tools, cluster.dsn, _pg_env_from(cluster))
        log.info("database filled by %s: %d world rows, %d fortunes", setup_used, len(db.world), len(db.fortunes))
        for round_no in range(1, args.rounds + 1):
            for sdef in servers:  # rounds interleave the servers, so a burst of noise hits one round of one
                bench_one(sdef, ctx, workloads, args.duration, out, cluster, pinned, db, rounds, round_no,
                          commands, notes, bodies)
        results = {w: {s: pick_round(ms) for s, ms in per.items()} for w, per in rounds.items()}
        meta_versions = versions(tools, cluster)
    except (BenchError, PgClusterError) as exc:
        log.error("%s", exc)
        return 2
    finally:
        try:
            cluster.stop()
        except Exception as exc:  # noqa: BLE001 - report, results are still worth writing
            log.error("stopping the PostgreSQL cluster: %s", exc)
    log.info("all servers done in %.0f s", time.monotonic() - started)

    if "ours" in bodies:
        for name, body in bodies.items():
            if name != "ours" and body != bodies["ours"]:
                notes.setdefault(name, []).append("/fortunes body differs byte-wise from ours' (same rows; markup "
                                                  "or escaping differs)")
    meta = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %Z"),
        "machine": machine,
        "duration": args.duration,
        "rounds": args.rounds,
        "warmup": WARMUP_S,
        "clk_tck": CLK_TCK,
        "postgres": pg_version,
        "setup": setup_used,
        "pg_pinned": pinned,
        "pg_cpu": args.pg_cpu,
        "pg_affinity": pg_affinity,
        "servers": [s.name for s in servers],
        "pools": pools,
        "workloads": workload_names,
        "versions": meta_versions,
        "server_commands": commands,
        "wrk_commands": {w.name: " ".join(harness.wrk_argv(tools, w, 0, args.duration)).replace(":0/", ":PORT/")
                         for w in workloads},
    }
    summary = summarize(results, servers, workload_names)
    target = compute_target(summary, results)
    markdown = render_markdown(meta, results, servers, notes, summary, target)
    (out / "db.json").write_text(json.dumps({
        "meta": meta, "notes": notes, "summary": summary, "target": target,
        "results": {w: {s: asdict(m) for s, m in per.items()} for w, per in results.items()},
        "rounds": {w: {s: [asdict(m) for m in ms] for s, ms in per.items()} for w, per in rounds.items()},
    }, indent=2, ensure_ascii=False))
    (out / "DB.md").write_text(markdown)
    log.info("wrote %s and %s", out / "DB.md", out / "db.json")
    sys.stdout.write(markdown)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log.error("interrupted; servers and the PostgreSQL cluster were stopped, no results written")
        sys.exit(130)
