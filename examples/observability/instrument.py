"""Request metrics by wrapping a handler — generic (could move into the library).

Theory of operation
-------------------
`instrument(app, metrics_of)` returns a handler that calls ``app`` and records, per request, the
method, the status and the latency into the worker's `HttpMetrics` (``metrics_of(req)``, usually
``req.state``). Handlers that are not wrapped pay nothing.

* **Status.** The wrapper reads it from the response the app appended: ``out`` at the offset it
  had when the app was called starts with ``HTTP/1.1 NNN`` (pipelined responses before it are
  left alone). An app that raises is counted as ``500`` — what the server answers.
* **Synchronous handlers** are timed from the call to its return.
* **Generator handlers** are timed until the generator *finishes*: the wrapper drives the app's
  generator itself (``send``/``throw``/``close`` passed through as ``yield from`` would) so it can
  read the status line in the step that writes it — before the server flushes it at the next
  ``yield`` — and take the time when the generator returns, raises or is closed. A generator
  closed before it wrote a status line (the client left, or the request deadline passed and the
  server answered 504 itself) is counted with ``status="cancelled"``. While one runs, the
  ``http_requests_in_progress`` gauge counts it (parked requests included).
* **Methods** outside the registered ones become ``method="other"``: label values must come from
  a small set, or a client could create unbounded series with made-up methods.
"""

from __future__ import annotations

import time
from types import GeneratorType
from typing import Any, Callable, Generator, Iterable

from vanilla_async import Request, streaming
from vanilla_async.streaming import relay

from .prometheus import DEFAULT_BUCKETS, Counter, Gauge, Histogram, Registry

Handler = Callable[[Request, bytearray], Generator[Any, Any, Any] | None]

METHODS = {m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE")}
perf_counter = time.perf_counter


class HttpMetrics:
    """One worker's request metrics, labelled ``worker="<label>"``."""

    def __init__(self, worker: str, buckets: Iterable[float] = DEFAULT_BUCKETS) -> None:
        self.worker = worker
        self.registry = Registry()
        self.requests = Counter("http_requests_total", "HTTP requests answered, by method and status.",
                                ("worker", "method", "status"))
        self.duration = Histogram("http_request_duration_seconds",
                                  "Time from calling the handler until it returned (a generator: until it finished).",
                                  ("worker",), buckets)
        self.in_progress = Gauge("http_requests_in_progress", "Generator handlers running or parked now.", ("worker",))
        for family in (self.requests, self.duration, self.in_progress):
            self.registry.add(family)
        self.in_progress.set((worker,), 0)
        self.duration.declare((worker,))

    def record(self, method: str, status: str, seconds: float) -> None:
        worker = self.worker
        self.requests.inc((worker, method, status))
        self.duration.observe((worker,), seconds)

    def render(self) -> bytes:
        return self.registry.render()


def status_at(out: bytearray, start: int) -> str:
    """The status code of the response at ``out[start:]`` (``"unknown"`` when it is not a response head)."""
    code = streaming.status_at(out, start)
    return str(code) if code else "unknown"


def instrument(app: Handler, metrics_of: Callable[[Request], HttpMetrics]) -> Handler:
    """``app``, counted and timed into ``metrics_of(req)`` (see the module docstring)."""

    def handler(req: Request, out: bytearray) -> Generator[Any, Any, Any] | None:
        metrics = metrics_of(req)
        method = METHODS.get(req.method, "other")
        start = len(out)
        began = perf_counter()
        try:
            result = app(req, out)
        except BaseException:
            metrics.record(method, "500", perf_counter() - began)
            raise
        if result is None:
            metrics.record(method, status_at(out, start), perf_counter() - began)
            return None
        if isinstance(result, GeneratorType):
            return _observed(result, out, metrics, method, began)
        metrics.record(method, "500", perf_counter() - began)  # the server refuses a non-generator
        return result

    return handler


def _observed(
    gen: Generator[Any, Any, Any], out: bytearray, metrics: HttpMetrics, method: str, began: float,
) -> Generator[Any, Any, Any]:
    status = ""

    def after_step(start: int) -> None:
        nonlocal status
        if not status and len(out) > start:
            status = status_at(out, start)

    key = (metrics.worker,)
    metrics.in_progress.add(key, 1)
    try:
        result = yield from relay(gen, out, after_step)
        status = status or "unknown"  # it ended without writing a response head
        return result
    except GeneratorExit:
        raise  # closed (client gone, deadline): counted as cancelled unless a status was written
    except BaseException:
        status = status or "500"
        raise
    finally:
        metrics.in_progress.add(key, -1)
        metrics.record(method, status or "cancelled", perf_counter() - began)
