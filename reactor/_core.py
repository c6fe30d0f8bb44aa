"""The per-worker event loop: fd callbacks, timers, and parked generators.

Theory of operation
-------------------
One `Reactor` runs in one thread (one per worker process). Each loop turn it asks the backend for
ready fds (blocking until the earliest timer at most), calls the callback registered for each fd
with the event mask, then runs the timers that came due and the callbacks queued by `call_soon`.
Nothing else happens between two `poll()` calls, so no locks are needed anywhere.

Two kinds of client use it:

* **fd callbacks** (`add_stream`, `add_reader`): long-lived owners such as a server's listening
  socket and its client connections get ``callback(mask)`` on every readiness event. This is the
  request hot path, so it costs one dict lookup and one call per event.
* **tasks**: a `Task` wraps a generator that yields tokens (`readable`, `writable`, `sleep`,
  `sleep_until`, `park`, `ready`, `first`: see `_tokens`). `start(task)` runs it until its first `yield`; the token *parks* it — on an fd
  (`_FdWatch`, at most one reader and one writer per fd, like trio and curio) and/or on a timer —
  and when that fires the task is resumed with the value the token promises — unless the task is
*held* (`hold`: its consumer is behind), in which case the value waits until `release`. Tokens are dispatched
  with exact ``type() is`` checks, and a resume runs the generator in a ``while`` loop (never
  recursion) until it parks again or returns. A yielded non-token is thrown back into the
  generator as `UnknownTokenError`.

Every park records exactly what to undo, so `cancel(task)` — used for timeouts, client
disconnects and shutdown — disarms the fd and the timer and then calls ``gen.close()``, which runs
the generator's ``finally`` blocks at once. Subclasses of `Task` override the hooks `parked`,
`finished` and `failed` to learn about transitions (the HTTP layer flushes streamed output in
`parked` and serves the next pipelined request in `finished`).

Cross-thread wake-ups (`call_soon_threadsafe`) and signals (`add_signal_handler`) share one
socketpair: a signal byte or a zero byte makes `poll()` return.
"""

from __future__ import annotations

import collections
import logging
import signal
import socket
import threading
import time
from functools import partial
from types import FrameType
from typing import Any, Callable, Generator, NamedTuple

from ._backends import BROKEN, READABLE, WRITABLE, Backend, make_backend
from ._errors import BusyResourceError, ClosedResourceError, ReactorClosedError, UnknownTokenError
from ._timers import Timer, TimerQueue
from ._tokens import First, Park, Readable, Ready, Sleep, SleepUntil, Writable

log = logging.getLogger("reactor")

TaskGenerator = Generator[Any, Any, Any]


class ReactorStats(NamedTuple):
    """A snapshot of what the reactor holds (all zero after a clean shutdown)."""

    tasks: int  #: live tasks (parked or running)
    timers: int  #: armed timers
    watched_fds: int  #: fds that parked generators wait on
    callbacks: int  #: fds with a long-lived callback (listeners, client sockets)


class Task:
    """A generator driven by the reactor. Subclass and override the hooks to observe it."""

    __slots__ = (
        "gen", "name", "reactor", "_fd", "_timer", "_race", "_lot", "_held", "_stash", "done", "__weakref__",
    )

    def __init__(self, gen: TaskGenerator, name: str = "") -> None:
        if not hasattr(gen, "send") or not hasattr(gen, "throw"):
            raise TypeError(f"a Task needs a generator (got {gen!r}); did you call a plain function?")
        self.gen = gen
        self.name = name or getattr(gen, "__qualname__", "task")
        self.reactor: Reactor | None = None
        self._fd = -1  # fd the task is parked on, or -1
        self._timer: Timer | None = None
        self._race: _Race | None = None
        self._lot: ParkingLot | None = None
        self._held = False  # see Reactor.hold
        self._stash: tuple[Any, BaseException | None] | None = None
        self.done = False

    # -- hooks ---------------------------------------------------------------------------------
    def parked(self) -> None:
        """Called each time the generator yields a token and is parked."""

    def finished(self, value: Any) -> None:
        """Called once when the generator returns ``value``."""

    def failed(self, exc: BaseException) -> None:
        """Called once when the generator raises. The default logs the traceback."""
        log.error("task %s failed", self.name, exc_info=(type(exc), exc, exc.__traceback__))

    def __repr__(self) -> str:
        state = "done" if self.done else ("parked on fd %d" % self._fd if self._fd >= 0 else "parked")
        return f"<{type(self).__name__} {self.name} {state}>"


class ParkingLot:
    """Tasks parked with ``yield park(lot)`` until something unparks them — no fd involved.

    The in-process wake-up of the reactor: a broadcast wakes every SSE subscriber with
    `unpark_all`, a result router wakes the oldest waiter with `unpark`. Waiters are woken in
    the order they parked; a cancelled or timed-out waiter leaves the lot at once (O(1)). Use it
    from the reactor's own thread (its tasks and callbacks), like everything else here.
    """

    __slots__ = ("_waiters",)

    def __init__(self) -> None:
        self._waiters: dict[Task, None] = {}

    def __len__(self) -> int:
        return len(self._waiters)

    def unpark(self, value: Any = True, count: int = 1) -> int:
        """Wake the ``count`` longest-waiting tasks with ``value``; returns how many were woken."""
        woken: list[Task] = []
        for task in self._waiters:
            if len(woken) == count:
                break
            woken.append(task)
        for task in woken:
            del self._waiters[task]
        return _wake_from_lot(woken, value)

    def unpark_all(self, value: Any = True) -> int:
        """Wake every task parked here with ``value``; returns how many were woken."""
        waiters, self._waiters = self._waiters, {}
        return _wake_from_lot(list(waiters), value)


_WAKING = ParkingLot()  # marks tasks taken out of a lot and about to be resumed


def _wake_from_lot(tasks: list[Task], value: Any) -> int:
    for task in tasks:
        task._lot = _WAKING
        if task._timer is not None:
            task._timer.cancel()
            task._timer = None
    woken = 0
    for task in tasks:
        # Resuming an earlier task ran arbitrary code: it may have cancelled this one or thrown
        # into it (after which it parks elsewhere and its _lot is no longer _WAKING).
        if task._lot is _WAKING and not task.done and task.reactor is not None:
            task._lot = None
            woken += 1
            task.reactor._step(task, value, None)
    return woken


def _one(token: Any) -> TaskGenerator:
    return (yield token)


class _Race:
    """A task parked on `first(...)`: one arm task per token; the first arm to finish wins."""

    __slots__ = ("reactor", "task", "arms", "over", "setup_error", "setup_value")

    def __init__(self, reactor: Reactor, task: Task) -> None:
        self.reactor = reactor
        self.task = task
        self.arms: list[_RaceArm] = []
        self.over = False
        self.setup_error: BaseException | None = None
        self.setup_value: tuple[int, Any] | None = None  # an arm that won while the race was being set up

    def withdraw(self) -> None:
        self.over = True
        for arm in self.arms:
            self.reactor.cancel(arm)

    def won(self, index: int, value: Any) -> None:
        if self.over:
            return
        if self.task._race is not self:  # still being set up (a `ready` arm): `_park_race` resumes it
            self.setup_value = (index, value)
            self.over = True
            return
        self.withdraw()
        task = self.task
        task._race = None
        self.reactor._step(task, (index, value), None)

    def lost(self, error: BaseException) -> None:
        if self.over:
            return
        if self.task._race is not self:  # still being set up: `_park_race` throws it in
            self.setup_error = error
            self.over = True
            return
        self.withdraw()
        self.task._race = None
        self.reactor._step(self.task, None, error)


class _RaceArm(Task):
    __slots__ = ("race", "index")

    def __init__(self, race: _Race, index: int, token: Any) -> None:
        super().__init__(_one(token), f"{race.task.name}[first #{index}]")
        self.race = race
        self.index = index

    def finished(self, value: Any) -> None:
        self.race.won(self.index, value)

    def failed(self, exc: BaseException) -> None:
        self.race.lost(exc)


class _FdWatch:
    """The generators parked on one fd: at most one reader and one writer."""

    __slots__ = ("fd", "reader", "writer", "reactor")

    def __init__(self, reactor: Reactor, fd: int) -> None:
        self.reactor = reactor
        self.fd = fd
        self.reader: Task | None = None
        self.writer: Task | None = None

    def mask(self) -> int:
        return (READABLE if self.reader is not None else 0) | (WRITABLE if self.writer is not None else 0)

    def on_event(self, events: int) -> None:
        reactor = self.reactor
        reader = writer = None
        if events & (READABLE | BROKEN) and self.reader is not None:
            reader, self.reader = self.reader, None
        if events & (WRITABLE | BROKEN) and self.writer is not None:
            writer, self.writer = self.writer, None
        reactor._rearm(self)
        if reader is not None:
            reactor._wake(reader, self.fd)
        if writer is not None:
            # Resuming the reader ran arbitrary code: it may have cancelled the writer or thrown
            # into it (and the writer may have parked again); `_wake` checks before resuming.
            reactor._wake(writer, self.fd)


class Reactor:
    """A single-threaded event loop for one worker. See the module docstring."""

    def __init__(
        self, backend: str | Backend = "auto", clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.backend: Backend = make_backend(backend) if isinstance(backend, str) else backend
        #: the reactor's clock: timers, token timeouts and `sleep_until` deadlines are on it
        #: (`time.monotonic` unless given; see `TrioReactor` for trio's clock)
        self.clock = clock
        self.now = clock()
        self._callbacks: dict[int, Callable[[int], None]] = {}
        self._watches: dict[int, _FdWatch] = {}
        self._timers = TimerQueue()
        self._ready: collections.deque[Callable[[], object]] = collections.deque()
        self._tasks: set[Task] = set()
        self._running = False
        self._stop_requested = False  # set by stop(); honoured even if stop() came before run()
        self._closed = False
        self._thread: int | None = None
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._signal_handlers: dict[int, Callable[[int], None]] = {}
        self._old_signals: dict[int, Any] = {}
        self._old_wakeup_fd: int | None = None
        self.add_reader(self._wake_r.fileno(), self._on_wake)

    # -- properties ----------------------------------------------------------------------------
    @property
    def backend_name(self) -> str:
        return self.backend.name

    def stats(self) -> ReactorStats:
        # `_callbacks` also holds the wake-up socket's callback (the reactor's own: not counted)
        # and one `_FdWatch.on_event` per watched fd (counted as watched_fds, not callbacks).
        own = 0 if self._closed else 1
        return ReactorStats(
            len(self._tasks), self._timers.live, len(self._watches), len(self._callbacks) - len(self._watches) - own
        )

    def tasks(self) -> list[Task]:
        return list(self._tasks)

    # -- fd callbacks ----------------------------------------------------------------------------
    def _check_free(self, fd: int) -> None:
        if self._closed:
            raise ReactorClosedError("the reactor is closed")
        if fd in self._callbacks:
            raise BusyResourceError(f"fd {fd} is already registered with this reactor")

    def add_stream(self, fd: int, callback: Callable[[int], None]) -> None:
        """Register a long-lived socket: ``callback(mask)`` on readability/writability (see `_backends`)."""
        self._check_free(fd)
        self.backend.add_stream(fd)
        self._callbacks[fd] = callback

    def add_reader(self, fd: int, callback: Callable[[int], None]) -> None:
        """Register a long-lived fd for readability only (level-triggered), e.g. a listening socket."""
        self._check_free(fd)
        self.backend.add_reader(fd)
        self._callbacks[fd] = callback

    def want_write(self, fd: int, on: bool) -> None:
        """Streams on level-triggered backends: ask for WRITABLE only while output is pending."""
        self.backend.want_write(fd, on)

    def want_read(self, fd: int, on: bool) -> None:
        """Streams on level-triggered backends: stop/resume READABLE while the owner cannot take input."""
        self.backend.want_read(fd, on)

    def remove(self, fd: int) -> None:
        """Forget a callback registered with `add_stream`/`add_reader`. Call before closing the fd."""
        if fd in self._watches:
            return  # parked tasks wait on it: not a callback of the caller's (see notify_closing)
        if self._callbacks.pop(fd, None) is not None:
            self.backend.remove(fd)

    # -- timers and callbacks --------------------------------------------------------------------
    def call_at(self, deadline: float, callback: Callable[[], object]) -> Timer:
        return self._timers.add(deadline, callback)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        return self._timers.add(self.clock() + delay, callback)

    def call_soon(self, callback: Callable[[], object]) -> None:
        self._ready.append(callback)

    def call_soon_threadsafe(self, callback: Callable[[], object]) -> None:
        """Queue ``callback`` from any thread and wake the loop."""
        self._ready.append(callback)  # deque.append is atomic
        try:
            self._wake_w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # the buffer is full (a wake-up is pending anyway) or the reactor is closed

    # -- signals -----------------------------------------------------------------------------------
    def add_signal_handler(self, signum: int, callback: Callable[[int], None]) -> None:
        """Run ``callback(signum)`` in the loop when the process receives ``signum`` (main thread only)."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("signal handlers can only be installed from the main thread")
        if self._closed:
            raise ReactorClosedError("the reactor is closed")
        if self._old_wakeup_fd is None:
            self._old_wakeup_fd = signal.set_wakeup_fd(self._wake_w.fileno(), warn_on_full_buffer=False)
        self._signal_handlers[signum] = callback
        if signum not in self._old_signals:
            self._old_signals[signum] = signal.signal(signum, _noop_signal_handler)

    def _on_wake(self, events: int) -> None:
        try:
            data = self._wake_r.recv(4096)
        except BlockingIOError:
            return
        for signum in data:
            if signum:
                handler = self._signal_handlers.get(signum)
                if handler is not None:
                    self._ready.append(partial(handler, signum))

    # -- tasks -------------------------------------------------------------------------------------
    def start(self, task: Task) -> Task:
        """Run ``task`` until it first parks or ends (in the caller's stack); returns the task."""
        if self._closed:
            raise ReactorClosedError("the reactor is closed")
        task.reactor = self
        self._tasks.add(task)
        self._step(task, None, None)
        return task

    def spawn(self, gen: TaskGenerator, name: str = "") -> Task:
        """Start a plain (clientless) task from a generator, e.g. periodic background work."""
        return self.start(Task(gen, name))

    def cancel(self, task: Task) -> None:
        """Unpark ``task`` and close its generator (its ``finally`` blocks run now). Idempotent."""
        if task.done:
            return
        self._unpark(task)
        task.done = True
        self._tasks.discard(task)
        try:
            task.gen.close()
        except Exception:
            log.exception("task %s raised while being closed", task.name)

    def throw(self, task: Task, exc: BaseException) -> None:
        """Unpark ``task`` and raise ``exc`` inside it at its ``yield`` (even if it is held)."""
        if not task.done:
            self._unpark(task)
            task._held = False
            task._stash = None
            self._step(task, None, exc)

    def hold(self, task: Task) -> None:
        """Do not resume ``task`` until `release`: if what it waits for happens meanwhile, the
        value is kept and delivered on release (backpressure: its consumer is behind)."""
        task._held = True

    def release(self, task: Task) -> None:
        """Undo `hold`; a value that arrived while held is delivered now."""
        if not task._held:
            return
        task._held = False
        stash, task._stash = task._stash, None
        if stash is not None and not task.done:
            self._step(task, stash[0], stash[1])

    def notify_closing(self, fd: int) -> None:
        """Call before closing an fd that parked generators may wait on: they get `ClosedResourceError`."""
        for reading in (True, False):
            # Look again each time: the reader, resumed with the error, may have cancelled or
            # thrown into the writer, which then no longer waits on this fd.
            watch = self._watches.get(fd)
            if watch is None:
                return
            task = watch.reader if reading else watch.writer
            if task is not None:
                self.throw(task, ClosedResourceError(f"fd {fd} was closed while a task waited on it"))

    def _unpark(self, task: Task) -> None:
        lot = task._lot
        if lot is not None:
            task._lot = None
            lot._waiters.pop(task, None)
        race = task._race
        if race is not None:
            task._race = None
            race.withdraw()
        fd = task._fd
        if fd >= 0:
            task._fd = -1
            watch = self._watches.get(fd)
            if watch is not None and (watch.reader is task or watch.writer is task):
                if watch.reader is task:
                    watch.reader = None
                if watch.writer is task:
                    watch.writer = None
                self._rearm(watch)
        if task._timer is not None:
            task._timer.cancel()
            task._timer = None

    def _rearm(self, watch: _FdWatch) -> None:
        mask = watch.mask()
        fd = watch.fd
        if mask:
            try:
                self.backend.arm(fd, mask)
            except OSError:
                # The fd was closed under the remaining waiter (without `notify_closing`). It stays
                # parked until its timeout or cancellation, as if the fd had simply gone quiet;
                # raising here would break `cancel()`/`close()` of the *other* task.
                log.debug("could not re-arm fd %d for its remaining waiter", fd, exc_info=True)
        else:
            del self._watches[fd]
            del self._callbacks[fd]
            self.backend.disarm(fd)

    def _timed_out(self, task: Task) -> None:
        task._timer = None
        self._unpark(task)
        self._step(task, False, None)

    def _wake(self, task: Task, fd: int) -> None:
        """Resume ``task``, taken out of fd's watch by an event, unless it moved on meanwhile."""
        if task._fd != fd or task.done:
            return  # cancelled, or thrown into and parked elsewhere, by a task woken before it
        watch = self._watches.get(fd)
        if watch is not None and (watch.reader is task or watch.writer is task):
            return  # thrown into and parked again on the same fd: it waits anew
        task._fd = -1
        if task._timer is not None:
            task._timer.cancel()
            task._timer = None
        self._step(task, True, None)

    def _wake_sleeper(self, task: Task) -> None:
        task._timer = None
        self._step(task, None, None)

    def _step(self, task: Task, value: Any, exc: BaseException | None) -> None:
        """Resume ``task`` with ``value`` (or ``exc``) and run it until it parks or ends."""
        if task._held:
            task._stash = (value, exc)
            return
        gen = task.gen
        while True:
            try:
                if exc is None:
                    token = gen.send(value)
                else:
                    token, exc = gen.throw(exc), None
            except StopIteration as stop:
                task.done = True
                self._tasks.discard(task)
                task.finished(stop.value)
                return
            except BaseException as error:  # noqa: BLE001 - delivered to the owner, re-raised below
                task.done = True
                self._tasks.discard(task)
                task.failed(error)
                if not isinstance(error, Exception):
                    raise
                return
            kind = type(token)
            if kind is Readable or kind is Writable:
                exc = self._park_fd(task, token.fd, kind is Readable)
                if exc is not None:
                    continue
                if token.timeout is not None:
                    task._timer = self._timers.add(self.clock() + token.timeout, partial(self._timed_out, task))
            elif kind is Sleep:
                task._timer = self._timers.add(self.clock() + token.seconds, partial(self._wake_sleeper, task))
            elif kind is SleepUntil:
                task._timer = self._timers.add(token.deadline, partial(self._wake_sleeper, task))
            elif kind is Park:
                token.lot._waiters[task] = None
                task._lot = token.lot
                if token.timeout is not None:
                    task._timer = self._timers.add(self.clock() + token.timeout, partial(self._timed_out, task))
            elif kind is Ready:
                if not _is_held(task):
                    value = token.value
                    continue
                task._stash = (token.value, None)  # held (its output is backed up): delivered on release
            elif kind is First:
                outcome = self._park_race(task, token.tokens)
                if outcome is not None:
                    value, exc = outcome
                    if exc is None and _is_held(task):
                        task._stash = (value, None)
                        task.parked()
                        return
                    continue
            else:
                exc = UnknownTokenError(
                    f"{task.name} yielded {token!r}, which is not a reactor token; yield readable(), writable(), "
                    "sleep(), sleep_until(), park() or first() (or `yield from` a helper that does)"
                )
                continue
            task.parked()
            return

    def _park_race(self, task: Task, tokens: tuple[Any, ...]) -> tuple[Any, BaseException | None] | None:
        """Park ``task`` on every token; None when it waits. An arm that ends during set-up (a
        ``ready`` arm, or one that cannot even park: busy or closed fd) ends the race at once:
        ``(value, None)`` or ``(None, error)`` for the task to go on with."""
        race = _Race(self, task)
        for index, token in enumerate(tokens):
            arm = _RaceArm(race, index, token)
            race.arms.append(arm)
            self.start(arm)
            if race.over:
                race.withdraw()
                if race.setup_error is not None:
                    return None, race.setup_error
                return race.setup_value, None
        task._race = race
        return None

    def _park_fd(self, task: Task, fd: int, reading: bool) -> BaseException | None:
        watch = self._watches.get(fd)
        if watch is None:
            if fd in self._callbacks:
                return BusyResourceError(
                    f"fd {fd} is owned by the reactor's own machinery (a listening or client socket); "
                    "a handler can only wait on fds it owns"
                )
            watch = _FdWatch(self, fd)
        slot = watch.reader if reading else watch.writer
        if slot is not None:
            direction = "read" if reading else "write"
            return BusyResourceError(f"another task ({slot.name}) is already waiting to {direction} fd {fd}")
        if reading:
            watch.reader = task
        else:
            watch.writer = task
        try:
            self.backend.arm(fd, watch.mask())
        except Exception as error:  # OSError (closed fd, regular file); ValueError for fd -1 (closed socket)
            if reading:
                watch.reader = None
            else:
                watch.writer = None
            if not watch.mask() and fd in self._watches:
                del self._watches[fd]
                del self._callbacks[fd]
            return error
        if fd not in self._watches:
            self._watches[fd] = watch
            self._callbacks[fd] = watch.on_event
        task._fd = fd
        return None

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> None:
        """Run until `stop()`. Exceptions from callbacks are logged, never fatal to the loop."""
        if self._closed:
            raise ReactorClosedError("the reactor is closed")
        self._running = True
        self._thread = threading.get_ident()
        callbacks = self._callbacks
        poll = self.backend.poll
        timers = self._timers
        ready = self._ready
        clock = self.clock
        try:
            while not self._stop_requested:
                deadline = timers.next_deadline()
                if ready:
                    timeout = 0.0
                else:
                    timeout = -1.0 if deadline is None else max(0.0, deadline - clock())
                try:
                    events = poll(timeout)
                except InterruptedError:  # pragma: no cover - PEP 475 retries poll() for us
                    events = []
                self.now = now = clock()
                for fd, mask in events:
                    callback = callbacks.get(fd)
                    if callback is not None:
                        try:
                            callback(mask)
                        except Exception:
                            log.exception("callback for fd %d raised; the loop goes on", fd)
                if deadline is not None and deadline <= now:
                    self._run_timers(now)
                if ready:
                    self._run_ready()
        finally:
            self._running = False
            self._stop_requested = False
            self._thread = None

    def _run_timers(self, now: float) -> None:
        for timer in self._timers.pop_due(now):
            try:
                timer.callback()
            except Exception:
                log.exception("timer callback %r raised; the loop goes on", timer.callback)

    def _run_ready(self) -> None:
        ready = self._ready
        for _ in range(len(ready)):
            soon = ready.popleft()
            try:
                soon()
            except Exception:
                log.exception("callback %r raised; the loop goes on", soon)

    @property
    def running(self) -> bool:
        return self._running

    def stop(self) -> None:
        """Make `run()` return after the current loop turn (or after its first turn, if it has not
        started yet — a stop is never lost). Safe from any thread."""
        self._stop_requested = True
        if self._thread is not None and self._thread != threading.get_ident():
            self.call_soon_threadsafe(lambda: None)

    def close(self) -> None:
        """Cancel every task, drop timers and registrations, and release the reactor's own fds."""
        if self._closed:
            return
        for task in list(self._tasks):
            self.cancel(task)
        self._timers.clear()
        for signum, old in self._old_signals.items():
            signal.signal(signum, old)
        if self._old_wakeup_fd is not None:
            signal.set_wakeup_fd(self._old_wakeup_fd)
        self._closed = True
        self._callbacks.clear()
        self._watches.clear()
        self.backend.close()
        self._wake_r.close()
        self._wake_w.close()


def _is_held(task: Task) -> bool:
    """Whether ``task`` is held now (its own step may have held it: backpressure on its output)."""
    return task._held


def _noop_signal_handler(signum: int, frame: FrameType | None) -> None:
    """Installed for signals the reactor dispatches; the wake-up fd carries the signal number."""


