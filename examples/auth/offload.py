"""Run blocking work (argon2, image resizing, ...) in a thread; the generator handler parks meanwhile —
generic (could move into the library).

Theory of operation
-------------------
The reactor never blocks, so work that holds a CPU for tens of milliseconds (argon2id is *meant*
to be slow) goes to a small `concurrent.futures.ThreadPoolExecutor`, one per worker process, made
in ``on_worker_start`` (after the fork: threads do not survive ``fork``). Libraries that release
the GIL while they compute — argon2-cffi, like most C extensions called through cffi — then run
truly in parallel with the event loop.

``result = yield from offloader.run(fn, *args)`` in a generator handler:

1. submits ``fn(*args)`` to the pool and parks the handler on a fresh `ParkingLot`
   (``yield park(lot)``): the worker serves other connections meanwhile;
2. when the future completes, its done-callback — on the pool's thread — hands
   ``lot.unpark(future)`` to the reactor with `Reactor.call_soon_threadsafe`, the one thread-safe
   entry into the loop (a byte on the reactor's wake-up socketpair ends its ``poll``);
3. the handler resumes in the loop thread and gets ``future.result()`` (or its exception).

The unpark cannot come before the park: the callback only *queues* it, and the loop runs queued
callbacks after the handler's current step has yielded. If the handler is closed while parked
(client gone, request deadline), the future is cancelled when still queued, and a late wake-up
finds an empty lot (a no-op).

**Load shedding.** At most ``max_pending`` jobs may be queued or running per worker; beyond that
`run` raises `OffloadBusy` at once (answer 503 with ``Retry-After``), so a flood of slow requests
cannot queue unbounded work or memory. After `close` (the worker's shutdown began) jobs already
submitted still finish, and new ones raise `OffloadUnavailable`.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, Generator, TypeVar

from reactor import ParkingLot, Reactor, Token, park
from vanilla_async import VanillaError

log = logging.getLogger("examples.auth.offload")

T = TypeVar("T")


class OffloadBusy(VanillaError):
    """Too many jobs are queued in this worker's pool: shed the request (503, retry later)."""


class OffloadUnavailable(VanillaError):
    """The pool is closed (the worker is shutting down): answer 503."""


class Offloader:
    """One worker's thread pool for blocking calls, woken through the reactor."""

    def __init__(self, reactor: Reactor, *, threads: int = 2, max_pending: int = 32) -> None:
        if threads < 1 or max_pending < 1:
            raise ValueError(f"threads and max_pending must be >= 1, got {threads} and {max_pending}")
        self.reactor = reactor
        self.max_pending = max_pending
        self.pending = 0  #: jobs submitted and not yet finished (counted on the loop thread)
        self.closed = False
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="offload")

    def run(self, fn: Callable[..., T], *args: Any) -> Generator[Token, Any, T]:
        """``yield from`` this in a generator handler: ``fn(*args)`` in a thread; its result or exception."""
        if self.closed:
            raise OffloadUnavailable("the worker is shutting down; retry on another one")
        if self.pending >= self.max_pending:
            raise OffloadBusy(f"{self.pending} jobs already queued in this worker (max_pending={self.max_pending})")
        try:
            future = self._executor.submit(fn, *args)
        except RuntimeError as exc:  # the pool was shut down underneath us
            raise OffloadUnavailable(str(exc)) from None
        self.pending += 1
        lot = ParkingLot()
        reactor = self.reactor

        def done(f: Future[T]) -> None:  # on the pool's thread (or here, if already done)
            reactor.call_soon_threadsafe(lambda: self._finished(lot, f))

        future.add_done_callback(done)
        try:
            yield park(lot)
        finally:
            future.cancel()  # only drops it while still queued: the client left or the deadline passed
        return future.result()

    def _finished(self, lot: ParkingLot, future: Future[Any]) -> None:
        self.pending -= 1
        lot.unpark(future)

    def close(self) -> None:
        """Accept no more jobs; those already submitted finish in their threads."""
        if not self.closed:
            self.closed = True
            self._executor.shutdown(wait=False)
