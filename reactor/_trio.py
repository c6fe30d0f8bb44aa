"""The trio backend: the same reactor — tokens, parked generators, fd callbacks, timers — on trio.

Theory of operation
-------------------
The other backends are pollers: `Reactor.run` asks them for ready fds and dispatches. trio owns
its own loop, so here the roles turn around and *trio* tells us, one task per interest:

* **Waiters.** For every fd direction the reactor wants (a stream's persistent READABLE, its
  WRITABLE while output is pending, a parked generator's one-shot watch) `TrioBackend` runs one
  trio task that loops on `trio.lowlevel.wait_readable` / `wait_writable` and, when the fd is
  ready, calls the reactor's callback for that fd right there — the same ``callback(mask)`` the
  epoll loop would call. trio allows one waiting task per fd and direction, and so do we: the
  reactor already enforces one reader and one writer per fd, and a waiter is the only trio task
  that ever waits on its fd (the Postgres socket, for instance, is waited on by the one waiter
  of the pump task's watch). Semantics are level-triggered, like `SelectorsBackend`:
  `edge_triggered` is False, streams use `want_read`/`want_write`, and watches are one-shot (the
  direction that fired is dropped before its callback runs, which re-arms it if it must).
* **Stopping a waiter** is `CancelScope.cancel()`. trio delivers the cancellation to a task
  blocked in ``wait_readable`` synchronously — its abort function unregisters the fd from trio's
  epoll/kqueue before `cancel()` returns — so the owner may close the fd right after `remove`,
  and a new socket reusing the fd number gets a fresh waiter without a `BusyResourceError`. The
  one waiter that is never cancelled is the one running a callback at that moment (it is not
  blocked anywhere); it checks after the callback whether it is still wanted and leaves if not.
* **The driver task** (`TrioReactor.run_async`) runs what is not an fd: due timers and the
  `call_soon` queue. It sleeps on a parking lot until the earliest timer; whatever adds an earlier
  timer (`TimerQueue.on_add`) or queues a callback while it sleeps unparks it. Timer deadlines
  are on the reactor's clock: `time.monotonic` by default, so handlers that compute
  ``sleep_until(time.monotonic() + x)`` behave exactly as on epoll, converted to trio's clock only
  at the one place the driver sleeps; pass ``clock=trio.current_time`` to put everything on
  trio's (possibly virtual: `autojump_clock`) clock.
* **Signals** (worker processes) use `signal.signal` plus `TrioToken.run_sync_soon`, which is safe
  from a signal handler; a signal arriving before `run_async` started is kept and delivered when
  it does, so a worker can install its handlers before it reports ready.

Cost: each readiness event is a trio task switch plus trio's own one-shot epoll re-arm, on top of
the same Python callback — the trio backend is slower than epoll; bench/ measures by how much.
"""

from __future__ import annotations

import logging
import math
import select
import signal
import threading
import time
from functools import partial
from types import FrameType
from typing import Any, Callable

import trio

from ._backends import ERROR, READABLE, WRITABLE, check_pollable
from ._core import Reactor, Task
from ._errors import ReactorClosedError

log = logging.getLogger("reactor")

_BITS = (READABLE, WRITABLE)


class _Waiter:
    """The trio task waiting on one fd in one direction."""

    __slots__ = ("fd", "bit", "scope")

    def __init__(self, fd: int, bit: int) -> None:
        self.fd = fd
        self.bit = bit
        self.scope = trio.CancelScope()


class TrioBackend:
    """Interest bookkeeping plus one waiter task per (fd, direction); see the module docstring."""

    name = "trio"
    edge_triggered = False

    def __init__(self, dispatch: Callable[[int, int], None]) -> None:
        self._dispatch = dispatch
        self._persistent: dict[int, int] = {}  # streams and readers: wanted bits until removed
        self._streams: set[int] = set()  # fds registered with add_stream (want_read/want_write apply)
        self._oneshot: dict[int, int] = {}  # watches: bits wanted until they fire once
        self._waiters: dict[tuple[int, int], _Waiter] = {}
        self._nursery: trio.Nursery | None = None
        self._current: _Waiter | None = None  # the waiter whose callback is running now
        self.stopping = False  # set by TrioReactor.stop(): no callback runs after it

    # -- the Backend interface ---------------------------------------------------------------------
    def add_stream(self, fd: int) -> None:
        self._streams.add(fd)
        self._persistent[fd] = READABLE
        self._sync(fd)

    def add_reader(self, fd: int) -> None:
        self._persistent[fd] = READABLE
        self._sync(fd)

    def want_read(self, fd: int, on: bool) -> None:
        self._want(fd, READABLE, on)

    def want_write(self, fd: int, on: bool) -> None:
        self._want(fd, WRITABLE, on)

    def _want(self, fd: int, bit: int, on: bool) -> None:
        if fd not in self._streams:
            return
        old = self._persistent.get(fd, 0)
        new = old | bit if on else old & ~bit
        if new != old:
            self._persistent[fd] = new
            self._sync(fd)

    def arm(self, fd: int, mask: int) -> None:
        if fd not in self._oneshot:
            check_pollable(fd)  # fail at the yield, as epoll_ctl does, not later in the waiter
        self._oneshot[fd] = mask & (READABLE | WRITABLE)
        self._sync(fd)

    def disarm(self, fd: int) -> None:
        self.remove(fd)

    def remove(self, fd: int) -> None:
        self._streams.discard(fd)
        self._persistent.pop(fd, None)
        self._oneshot.pop(fd, None)
        self._sync(fd)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        raise RuntimeError("the trio backend has no poll(): TrioReactor.run_async() drives it")

    def close(self) -> None:
        self._persistent.clear()
        self._streams.clear()
        self._oneshot.clear()
        self.detach()

    # -- waiters -------------------------------------------------------------------------------------
    def attach(self, nursery: trio.Nursery) -> None:
        """Start waiting: one waiter per wanted (fd, direction), in ``nursery``."""
        self._nursery = nursery
        for fd in set(self._persistent) | set(self._oneshot):
            self._sync(fd)

    def detach(self) -> None:
        """Stop every waiter (the loop is ending); interests are kept for a later `attach`."""
        self._nursery = None
        waiters = list(self._waiters.values())
        self._waiters.clear()  # in place: running waiters hold a reference to this dict
        for waiter in waiters:
            waiter.scope.cancel()

    def _wanted(self, fd: int, bit: int) -> bool:
        return bool((self._persistent.get(fd, 0) | self._oneshot.get(fd, 0)) & bit)

    def _sync(self, fd: int) -> None:
        """Make the waiters of ``fd`` match what is wanted: start the missing, cancel the unwanted."""
        nursery = self._nursery
        if nursery is None:
            return  # not running: `attach` starts them
        for bit in _BITS:
            key = (fd, bit)
            waiter = self._waiters.get(key)
            if self._wanted(fd, bit):
                if waiter is None:
                    waiter = self._waiters[key] = _Waiter(fd, bit)
                    nursery.start_soon(self._wait, waiter, name=f"reactor fd {fd} {'r' if bit == READABLE else 'w'}")
            elif waiter is not None:
                del self._waiters[key]
                if waiter is not self._current:  # the running one leaves by itself after its callback
                    waiter.scope.cancel()

    def ready_now(self, fd: int, bit: int) -> bool:
        """Whether ``fd`` is ready in direction ``bit`` at this instant (one poll(2), no waiting)."""
        poller = select.poll()
        poller.register(fd, select.POLLIN if bit == READABLE else select.POLLOUT)
        try:
            return bool(poller.poll(0))
        except OSError:
            return False

    async def _wait(self, waiter: _Waiter) -> None:
        # The per-event path of the trio backend: locals only (bench/ profiles it).
        fd, bit = waiter.fd, waiter.bit
        wait = trio.lowlevel.wait_readable if bit == READABLE else trio.lowlevel.wait_writable
        key = (fd, bit)
        waiters = self._waiters
        persistent = self._persistent
        oneshot = self._oneshot
        dispatch = self._dispatch
        with waiter.scope:
            while True:
                mask = bit
                try:
                    await wait(fd)
                    if self.stopping:
                        await trio.sleep_forever()  # the loop is ending: deliver nothing more
                    if waiters.get(key) is not waiter:
                        return  # woken, then withdrawn before it ran: the event is not ours any more
                except (OSError, trio.BusyResourceError, trio.ClosedResourceError) as exc:
                    # A bad fd (closed behind the reactor's back) or another trio task waiting on
                    # it: tell the owner once, as epoll reports EPOLLERR, and stop waiting.
                    log.debug("waiting on fd %d failed: %r", fd, exc)
                    mask |= ERROR
                    if waiters.get(key) is waiter:
                        del waiters[key]
                once = oneshot.get(fd)
                if once is not None and once & bit:
                    if once == bit:
                        del oneshot[fd]
                    else:
                        oneshot[fd] = once & ~bit
                self._current = waiter
                try:
                    dispatch(fd, mask)
                finally:
                    self._current = None
                if waiters.get(key) is not waiter:
                    return  # removed meanwhile (another waiter may have taken the fd over)
                if not (persistent.get(fd, 0) | oneshot.get(fd, 0)) & bit:
                    del waiters[key]
                    return


class TrioReactor(Reactor):
    """A `Reactor` whose loop is a trio task: `await run_async()` inside trio, or `run()` to start trio."""

    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        super().__init__(TrioBackend(self._dispatch), clock if clock is not None else time.monotonic)
        self.backend: TrioBackend
        self._lot = trio.lowlevel.ParkingLot()
        self._sleep_deadline = -math.inf  # the driver sleeps until this (reactor clock); -inf: awake
        self._timers.on_add = self._timer_added
        self._token: trio.lowlevel.TrioToken | None = None
        self._pending_signals: list[int] = []

    # -- waking the driver -------------------------------------------------------------------------
    def _kick(self) -> None:
        if self._sleep_deadline != -math.inf:
            self._sleep_deadline = -math.inf
            self._lot.unpark_all()

    def _timed_out(self, task: Task) -> None:
        # The epoll loop polls before it runs due timers; here a waiter learns of readiness only
        # after trio's next I/O poll, so a timeout (``readable(fd, 0)`` above all) looks first.
        watch = self._watches.get(task._fd)
        if watch is not None:
            bit = READABLE if watch.reader is task else WRITABLE
            if self.backend.ready_now(watch.fd, bit):
                task._timer = None
                self._unpark(task)
                self._step(task, True, None)
                return
        super()._timed_out(task)

    def _timer_added(self, deadline: float) -> None:
        if deadline < self._sleep_deadline:
            self._kick()

    def call_soon(self, callback: Callable[[], object]) -> None:
        self._ready.append(callback)
        self._kick()

    def _dispatch(self, fd: int, mask: int) -> None:
        """Called by a waiter: run fd's callback, as `Reactor.run` does for a polled event."""
        self.now = self.clock()
        callback = self._callbacks.get(fd)
        if callback is not None:
            try:
                callback(mask)
            except Exception:
                log.exception("callback for fd %d raised; the loop goes on", fd)
        if self._ready:
            self._kick()

    # -- signals -------------------------------------------------------------------------------------
    def add_signal_handler(self, signum: int, callback: Callable[[int], None]) -> None:
        """Run ``callback(signum)`` in the loop when the process receives ``signum`` (main thread
        only). May be called before `run_async`: a signal that arrives meanwhile is delivered when
        the loop starts."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("signal handlers can only be installed from the main thread")
        if self._closed:
            raise ReactorClosedError("the reactor is closed")
        self._signal_handlers[signum] = callback
        if signum not in self._old_signals:
            self._old_signals[signum] = signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        token = self._token
        if token is None:
            self._pending_signals.append(signum)
            return
        try:
            token.run_sync_soon(self._signal_arrived, signum)
        except trio.RunFinishedError:
            self._pending_signals.append(signum)

    def _signal_arrived(self, signum: int) -> None:
        handler = self._signal_handlers.get(signum)
        if handler is not None:
            self.call_soon(partial(handler, signum))

    # -- the loop ------------------------------------------------------------------------------------
    def _trio_deadline(self, deadline: float) -> float:
        if self.clock is trio.current_time:
            return deadline
        return trio.current_time() + (deadline - self.clock())

    async def run_async(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run inside trio until `stop()` (or until cancelled). Callbacks' exceptions are logged."""
        if self._closed:
            raise ReactorClosedError("the reactor is closed")
        if self._running:
            raise RuntimeError("this reactor is already running")
        self._running = True
        self._thread = threading.get_ident()
        self._token = trio.lowlevel.current_trio_token()
        self.backend.stopping = self._stop_requested
        try:
            async with trio.open_nursery() as nursery:
                self.backend.attach(nursery)
                try:
                    pending, self._pending_signals = self._pending_signals, []
                    for signum in pending:
                        self._signal_arrived(signum)
                    task_status.started()
                    await self._drive()
                finally:
                    self.backend.detach()
                    nursery.cancel_scope.cancel()
        finally:
            self._sleep_deadline = -math.inf
            self._token = None
            self._running = False
            self._stop_requested = False
            self.backend.stopping = False
            self._thread = None

    async def _drive(self) -> None:
        timers = self._timers
        ready = self._ready
        clock = self.clock
        lot = self._lot
        while not self._stop_requested:
            now = self.now = clock()
            deadline = timers.next_deadline()
            if deadline is not None and deadline <= now:
                self._run_timers(now)
            if ready:
                self._run_ready()
            if self._stopping():  # a timer or callback just called stop()
                break
            deadline = timers.next_deadline()
            if ready or (deadline is not None and deadline <= clock()):
                # More is due at once (``sleep(0)``, a busy producer): that is one loop turn, and
                # trio polls I/O and runs the waiters before the next, so nothing starves.
                await trio.lowlevel.checkpoint()
                continue
            if deadline is None:
                self._sleep_deadline = math.inf
                await lot.park()
            else:
                self._sleep_deadline = deadline
                with trio.move_on_at(self._trio_deadline(deadline)):
                    await lot.park()
            self._sleep_deadline = -math.inf

    def _stopping(self) -> bool:
        return self._stop_requested

    def run(self) -> None:
        """Run a fresh trio loop in this thread until `stop()` (for worker processes and threads)."""
        trio.run(self.run_async)

    def stop(self) -> None:
        """Make the loop return after the current turn (or at once, if it has not started). Any thread."""
        self._stop_requested = True
        self.backend.stopping = True
        if self._thread == threading.get_ident():
            self._kick()
        elif self._thread is not None:
            self.call_soon_threadsafe(lambda: None)

    def call_soon_threadsafe(self, callback: Callable[[], object]) -> None:
        """Queue ``callback`` from any thread and wake the loop."""
        token = self._token
        if token is not None:
            if self._thread == threading.get_ident():
                self.call_soon(callback)
                return
            try:
                token.run_sync_soon(self.call_soon, callback)  # trio's own thread-safe wake-up
                return
            except trio.RunFinishedError:
                pass
        super().call_soon_threadsafe(callback)  # not running: the wake-up socket keeps it
