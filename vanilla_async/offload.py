"""vanilla_async.offload: run a blocking call in a bounded per-worker thread pool; the handler parks.

    from vanilla_async.offload import Offloader, OffloadRefused

    def on_worker_start(state, reactor):
        state.offloader = Offloader(reactor, threads=4, max_queued=64)   # no thread yet

    def on_worker_stop(state):
        state.offloader.close()                      # refuse new calls; accepted ones finish

    def login(req, out):                             # a generator handler
        try:
            ok = yield from req.state.offloader.run(check_password, stored, given)
        except OffloadRefused as exc:                # queue full, or the worker is stopping
            respond(out, 503, str(exc), headers=[("Retry-After", "1")])
            return
        ...

Theory of operation
-------------------
The reactor never blocks, so work that holds the thread for milliseconds — argon2 (slow by
design), a blocking database driver, image resizing, a synchronous SDK — goes to a small
`concurrent.futures.ThreadPoolExecutor` owned by one worker. Libraries that release the GIL while
they work (most C extensions, every socket call) then run in parallel with the event loop.

``result = yield from offloader.run(fn, *args)`` in a generator handler:

1. checks the bound, then submits ``fn(*args)`` to the pool and parks the handler on a fresh
   `ParkingLot` (``yield park(lot)``): the worker serves its other connections meanwhile;
2. when the future completes, its done-callback — on the pool's thread — hands the wake-up to the
   reactor with `Reactor.call_soon_threadsafe`, the one thread-safe entry into the loop (a byte on
   the reactor's wake-up socketpair ends its ``poll``);
3. in the loop thread the callback lowers the count of calls in flight and unparks the lot; the
   handler resumes with ``future.result()`` — the return value, or the exception ``fn`` raised,
   re-raised in the handler with its traceback.

The unpark cannot come before the park: the callback only *queues* it, and the loop runs queued
callbacks after the handler's current step has yielded.

**Lazily, after the fork.** Threads do not survive ``fork``, so an `Offloader` is made per worker
(in ``on_worker_start``) and its pool only on the first `Offloader.run`: a worker that never
offloads starts no thread.

**Bounded.** At most ``threads`` calls run at once and at most ``max_queued`` more wait for a
thread. Beyond that `Offloader.run` raises `OffloadBusy` at once — before submitting anything —
so a flood of slow requests cannot pile up unbounded work or memory; the handler answers 503
with ``Retry-After``. A call counts until its thread is really free again (not until its client
left), so the bound holds on threads actually in use.

**A client that leaves.** If the handler is closed while parked (the client disconnected, the
request deadline passed, a forced shutdown), the ``finally`` of `Offloader.run` cancels the
future: a call still queued never runs. A call already running cannot be interrupted (Python
threads cannot be killed); it finishes, its thread is released and its result is dropped — the
late wake-up finds an empty lot, a no-op.

**Draining at shutdown.** `Offloader.close` (from ``on_worker_stop``) makes new calls raise
`OffloadClosed`, while the calls already accepted run to the end and their handlers answer
within the worker's grace period. ``close(wait=True)`` also joins the pool's threads.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Generator, TypeVar

from reactor import ParkingLot, Reactor, Token, park

from .errors import VanillaError

__all__ = ("OffloadBusy", "OffloadClosed", "OffloadRefused", "Offloader")

log = logging.getLogger("vanilla_async.offload")

T = TypeVar("T")


class OffloadRefused(VanillaError):
    """The call was not accepted (nothing ran): answer 503 with ``Retry-After``."""


class OffloadBusy(OffloadRefused):
    """Every thread is busy and the queue is full in this worker: shed the request (503, retry later)."""


class OffloadClosed(OffloadRefused):
    """The offloader is closed (the worker is shutting down): answer 503; another worker can serve."""


class Offloader:
    """One worker's bounded thread pool for blocking calls, its results delivered through the reactor."""

    def __init__(self, reactor: Reactor, *, threads: int = 4, max_queued: int = 64, name: str = "offload") -> None:
        if threads < 1 or max_queued < 0:
            raise ValueError(f"need threads >= 1 and max_queued >= 0, got threads={threads}, max_queued={max_queued}")
        self.reactor = reactor
        self.threads = threads
        self.max_queued = max_queued
        self.name = name
        self.in_flight = 0  #: calls accepted and not finished (running or queued), counted on the loop thread
        self.closed = False
        self._executor: ThreadPoolExecutor | None = None

    @property
    def capacity(self) -> int:
        """How many calls may be in flight at once: ``threads + max_queued``."""
        return self.threads + self.max_queued

    @property
    def started(self) -> bool:
        """True once the first call created the pool's threads."""
        return self._executor is not None

    def run(self, fn: Callable[..., T], *args: Any) -> Generator[Token, Any, T]:
        """``result = yield from offloader.run(fn, *args)``: ``fn(*args)`` in a pool thread.

        Returns what ``fn`` returned or raises what it raised. Raises `OffloadBusy` when
        ``threads + max_queued`` calls are already in flight and `OffloadClosed` after `close`;
        in both cases ``fn`` did not run.
        """
        if self.closed:
            raise OffloadClosed(f"{self.name}: the worker is shutting down; retry on another one")
        if self.in_flight >= self.capacity:
            raise OffloadBusy(f"{self.name}: {self.in_flight} calls already in flight in this worker "
                              f"(threads={self.threads}, max_queued={self.max_queued}); retry shortly")
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix=self.name)
        future = self._executor.submit(fn, *args)
        self.in_flight += 1
        lot = ParkingLot()
        reactor = self.reactor

        def done(f: Future[T]) -> None:  # on the pool's thread (or the loop's, if cancelled there)
            reactor.call_soon_threadsafe(lambda: self._finished(lot, f))

        future.add_done_callback(done)
        try:
            yield park(lot)
        finally:
            future.cancel()  # drops it only while still queued: the client left or the deadline passed
        return future.result()

    def _finished(self, lot: ParkingLot, future: Future[Any]) -> None:
        self.in_flight -= 1
        if not lot.unpark(future) and not future.cancelled() and future.exception() is not None:
            log.info("%s: dropped the exception of a call whose client left: %r", self.name, future.exception())

    def close(self, *, wait: bool = False) -> None:
        """Accept no more calls; those already accepted still run and their handlers still answer.

        ``wait=True`` also blocks until the pool's threads have finished (not from the loop while
        handlers still wait for results: they could never be woken).
        """
        self.closed = True
        if self._executor is not None:
            self._executor.shutdown(wait=wait)
