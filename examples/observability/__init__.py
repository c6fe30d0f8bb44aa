"""examples.observability — liveness, readiness and Prometheus metrics for a small app.

``GET /healthz``  liveness: **200** ``ok`` whenever the worker answers at all.
``GET /readyz``   readiness: **503** ``starting`` until the worker's warm-up task has finished,
                  **503** ``shutting down`` once its shutdown has begun (``on_worker_stop``: a load
                  balancer stops sending new traffic while in-flight requests finish), else
                  **200** ``ready``. Probes carry ``Cache-Control: no-store``.
``GET /metrics``  the worker's metrics in the Prometheus text format 0.0.4
                  (`prometheus`): ``http_requests_total{worker,method,status}``,
                  ``http_request_duration_seconds`` (histogram) and ``http_requests_in_progress``.
``GET /``         ``hello``; ``GET /slow?ms=N`` parks N ms (0..10000) in a generator handler;
                  ``GET /boom`` raises (a 500, counted as such); anything else 404.

Every request, probes and scrapes included, goes through `instrument.instrument`, which wraps
the app handler: synchronous handlers are timed to their return, generators until they finish.

**Per worker.** Workers share nothing, so each exposes its own series labelled
``worker="<pid>"`` (the worker index is not passed to ``make_state``; a restarted worker gets a
new pid, and its counters start again from zero, which Prometheus's ``rate()`` handles as a
counter reset). A scrape reaches whichever worker accepts the connection; scrape every worker by
running one port per worker, or push per-worker files to a collector — out of scope here.

Run: ``python -m examples.observability --port 8080`` (``OBS_WARMUP=3`` makes ``/readyz`` answer
503 for the first 3 s of each worker), then ``curl localhost:8080/metrics``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable, Generator, Mapping

from reactor import Reactor, Token
from vanilla_async import Request, ServerConfig, StaticResponse, query_param, respond, sleep

from .instrument import HttpMetrics, instrument, status_at
from .prometheus import CONTENT_TYPE, DEFAULT_BUCKETS, Counter, Gauge, Histogram, MetricError, Registry

__all__ = ("CONTENT_TYPE", "Counter", "DEFAULT_BUCKETS", "Gauge", "Histogram", "HttpMetrics", "MetricError",
           "Registry", "Settings", "WorkerState", "app", "config", "instrument", "make_config", "status_at")

Warmup = Callable[[], Generator[Token, Any, None]]

NO_STORE = [("Cache-Control", "no-store")]
HEALTHY = StaticResponse(200, b"ok\n", headers=NO_STORE)
READY = StaticResponse(200, b"ready\n", headers=NO_STORE)
STARTING = StaticResponse(503, b"starting\n", headers=NO_STORE)
STOPPING = StaticResponse(503, b"shutting down\n", headers=NO_STORE)
HELLO = StaticResponse(200, b"hello\n")
NOT_FOUND = StaticResponse(404, b"not found\n")


@dataclass(frozen=True)
class Settings:
    """``warmup``: a generator function run as a clientless task when the worker starts; the
    worker is ready when it returns (``None``: ready at once). ``buckets``: latency histogram bounds."""

    warmup: Warmup | None = None
    buckets: tuple[float, ...] = DEFAULT_BUCKETS

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        raw = env.get("OBS_WARMUP", "").strip()
        if not raw:
            return cls()
        try:
            seconds = float(raw)
        except ValueError:
            raise MetricError(f"OBS_WARMUP must be a number of seconds, got {raw!r}") from None

        def warmup() -> Generator[Token, Any, None]:
            yield sleep(seconds)

        return cls(warmup=warmup)


class WorkerState:
    """``req.state``: this worker's metrics and readiness."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = HttpMetrics(str(os.getpid()), settings.buckets)
        self.ready = False
        self.stopping = False


def app(req: Request, out: bytearray) -> Generator[Token, Any, None] | None:
    """Probes, metrics and a tiny application (wrapped by `instrument` below)."""
    path = req.path
    state: WorkerState = req.state
    if path == b"/healthz":
        HEALTHY.append_to(out)
    elif path == b"/readyz":
        (STOPPING if state.stopping else READY if state.ready else STARTING).append_to(out)
    elif path == b"/metrics":
        respond(out, 200, state.metrics.render(), content_type=CONTENT_TYPE, headers=NO_STORE)
    elif path == b"/":
        HELLO.append_to(out)
    elif path == b"/slow":
        raw = query_param(req.query, b"ms") or b""
        if not raw.isdigit() or len(raw) > 5:
            respond(out, 400, b"use /slow?ms=N with N a whole number of milliseconds (0..10000)\n")
            return None
        return slow(out, min(int(raw), 10_000))
    elif path == b"/boom":
        raise RuntimeError("/boom always fails (to show a 500 in the metrics)")
    else:
        NOT_FOUND.append_to(out)
    return None


def slow(out: bytearray, ms: int) -> Generator[Token, Any, None]:
    yield sleep(ms / 1000)
    respond(out, 200, f"slept {ms} ms\n")


def _metrics_of(req: Request) -> HttpMetrics:
    state: WorkerState = req.state
    return state.metrics


handler = instrument(app, _metrics_of)


def on_worker_start(state: WorkerState, reactor: Reactor) -> Generator[Token, Any, None] | None:
    warmup = state.settings.warmup
    if warmup is None:
        state.ready = True
        return None
    return _warm_up(state, warmup)


def _warm_up(state: WorkerState, warmup: Warmup) -> Generator[Token, Any, None]:
    yield from warmup()
    state.ready = True


def on_worker_stop(state: WorkerState) -> None:
    state.stopping = True


def make_config(settings: Settings | None = None, **fields: Any) -> ServerConfig:
    """The example's config; ``settings=None`` reads ``OBS_WARMUP`` now (before the workers fork)."""
    chosen = settings or Settings.from_env()

    def make_state() -> WorkerState:
        return WorkerState(chosen)

    fields.setdefault("port", 8080)
    return ServerConfig(handler=handler, make_state=make_state, on_worker_start=on_worker_start,
                        on_worker_stop=on_worker_stop, **fields)


config = make_config()
