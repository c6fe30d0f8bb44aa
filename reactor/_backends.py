"""Readiness backends: thin wrappers over the OS poller with one shared event-mask vocabulary.

Theory of operation
-------------------
Masks use epoll's bit values on every backend (`READABLE` = EPOLLIN, `WRITABLE` = EPOLLOUT, ...),
so the epoll backend hands `epoll.poll()`'s list straight to the loop with no translation — that
list is the hot path of every request. Other backends translate into the same bits.

There are two kinds of registration:

* **streams** (`add_stream`): long-lived sockets such as a server's client connections. On epoll
  they are registered once, edge-triggered, for IN|OUT|RDHUP, and never modified again: the owner
  reads until a short read and writes until EAGAIN, and an EPOLLOUT edge tells it when to resume a
  partial write. `want_write` is then a no-op. Level-triggered backends (selectors) must only ask
  for WRITABLE while output is pending, so there `want_write` really modifies the registration.
  The owner consults `edge_triggered` to know whether one short read drained the socket.
* **one-shot watches** (`arm`): what a parked generator waits on (a pipe, a timerfd, the Postgres
  socket). On epoll these use EPOLLONESHOT, MOD first and ADD on ENOENT, as trio's
  `_io_epoll.py` does: epoll keys registrations on the open file description, not on the fd number,
  so a registration left behind by a closed-and-reused fd can fire once at most and then goes quiet.
  `disarm` removes the registration when no generator waits on the fd any more.
"""

from __future__ import annotations

import errno
import os
import select
import selectors
import stat
import sys
from typing import Protocol

READABLE = 0x001  # EPOLLIN
WRITABLE = 0x004  # EPOLLOUT
ERROR = 0x008  # EPOLLERR
HANGUP = 0x010  # EPOLLHUP
PEER_CLOSED = 0x2000  # EPOLLRDHUP: the peer shut down its writing side (FIN)
BROKEN = ERROR | HANGUP


class Backend(Protocol):
    name: str
    edge_triggered: bool

    def add_stream(self, fd: int) -> None: ...
    def want_read(self, fd: int, on: bool) -> None: ...
    def want_write(self, fd: int, on: bool) -> None: ...
    def add_reader(self, fd: int) -> None: ...
    def arm(self, fd: int, mask: int) -> None: ...
    def disarm(self, fd: int) -> None: ...
    def remove(self, fd: int) -> None: ...
    def poll(self, timeout: float) -> list[tuple[int, int]]: ...
    def close(self) -> None: ...


_ABSENT = (errno.ENOENT, errno.EBADF)


def check_pollable(fd: int) -> None:
    """Raise what ``epoll_ctl`` would for an fd that cannot be waited on, for backends that only
    find out later (trio, io_uring): ValueError for a negative fd (a closed socket's ``fileno()``),
    OSError(EBADF) for a closed one, EPERM for a regular file or directory."""
    if fd < 0:
        raise ValueError(f"cannot wait on fd {fd} (a closed socket?)")
    mode = os.fstat(fd).st_mode  # OSError(EBADF) for a closed fd
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        raise PermissionError(errno.EPERM, f"fd {fd} is a regular file or directory: it is always ready, so it cannot be waited on")


class EpollBackend:
    """Linux epoll; edge-triggered streams, one-shot watches."""

    name = "epoll"
    edge_triggered = True

    def __init__(self) -> None:
        self._ep = select.epoll()
        self._stream_mask = select.EPOLLIN | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
        self.poll = self._ep.poll  # type: ignore[method-assign]  # poll(timeout) -> [(fd, mask)]

    def poll(self, timeout: float) -> list[tuple[int, int]]:  # pragma: no cover - replaced in __init__
        return self._ep.poll(timeout)

    def add_stream(self, fd: int) -> None:
        self._ep.register(fd, self._stream_mask)

    def want_read(self, fd: int, on: bool) -> None:
        pass  # edge-triggered: an owner that stops reading gets no further events anyway

    def want_write(self, fd: int, on: bool) -> None:
        pass  # streams always watch EPOLLOUT edges

    def add_reader(self, fd: int) -> None:
        self._ep.register(fd, select.EPOLLIN)

    def arm(self, fd: int, mask: int) -> None:
        mask |= select.EPOLLONESHOT
        try:
            self._ep.modify(fd, mask)
        except FileNotFoundError:
            self._ep.register(fd, mask)

    def disarm(self, fd: int) -> None:
        self.remove(fd)

    def remove(self, fd: int) -> None:
        try:
            self._ep.unregister(fd)
        except OSError as exc:  # already closed by its owner, or never registered
            if exc.errno not in _ABSENT:
                raise

    def close(self) -> None:
        self._ep.close()


class SelectorsBackend:
    """Portable level-triggered fallback over `selectors` (kqueue on BSD/macOS, epoll/poll on Linux)."""

    name = "selectors"
    edge_triggered = False

    def __init__(self, selector: selectors.BaseSelector | None = None) -> None:
        self._sel = selector if selector is not None else selectors.DefaultSelector()
        self._streams: dict[int, int] = {}  # stream fd -> wanted selectors events

    def _set(self, fd: int, events: int) -> None:
        if events == 0:
            # Only the selector registration goes: a stream keeps its entry in `_streams`, so
            # that want_read/want_write can turn it back on (a stream paused for reading while
            # no output is pending has no interest left, but is still a stream).
            self._unregister(fd)
            return
        try:
            self._sel.modify(fd, events)
        except KeyError:
            self._sel.register(fd, events)

    def add_stream(self, fd: int) -> None:
        self._sel.register(fd, selectors.EVENT_READ)
        self._streams[fd] = selectors.EVENT_READ

    def _want(self, fd: int, bit: int, on: bool) -> None:
        old = self._streams.get(fd)
        if old is None:
            return
        new = old | bit if on else old & ~bit
        if new != old:
            self._streams[fd] = new
            self._set(fd, new)

    def want_read(self, fd: int, on: bool) -> None:
        self._want(fd, selectors.EVENT_READ, on)

    def want_write(self, fd: int, on: bool) -> None:
        self._want(fd, selectors.EVENT_WRITE, on)

    def add_reader(self, fd: int) -> None:
        self._sel.register(fd, selectors.EVENT_READ)

    def arm(self, fd: int, mask: int) -> None:
        events = (selectors.EVENT_READ if mask & READABLE else 0) | (selectors.EVENT_WRITE if mask & WRITABLE else 0)
        self._set(fd, events)

    def disarm(self, fd: int) -> None:
        self.remove(fd)

    def remove(self, fd: int) -> None:
        self._streams.pop(fd, None)
        self._unregister(fd)

    def _unregister(self, fd: int) -> None:
        try:
            self._sel.unregister(fd)
        except (KeyError, ValueError):
            pass
        except OSError as exc:
            if exc.errno not in _ABSENT:
                raise

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        ready = self._sel.select(None if timeout < 0 else timeout)
        return [
            (key.fd, (READABLE if ev & selectors.EVENT_READ else 0) | (WRITABLE if ev & selectors.EVENT_WRITE else 0))
            for key, ev in ready
        ]

    def close(self) -> None:
        self._sel.close()


BACKENDS = ("epoll", "selectors", "trio", "io_uring")


def default_backend_name() -> str:
    return "epoll" if sys.platform.startswith("linux") and hasattr(select, "epoll") else "selectors"


def make_backend(name: str = "auto") -> Backend:
    """Build a backend by name: ``"auto"`` (epoll on Linux, selectors elsewhere), ``"epoll"``,
    ``"selectors"`` or ``"io_uring"`` (Linux 5.11+; `BackendUnavailableError` where the kernel
    refuses it). ``auto`` never picks io_uring."""
    if name == "auto":
        name = default_backend_name()
    if name == "epoll":
        if not hasattr(select, "epoll"):
            raise ValueError("backend 'epoll' needs Linux; use backend='selectors' on this platform")
        return EpollBackend()
    if name == "selectors":
        return SelectorsBackend()
    if name == "io_uring":
        # _uring imports this module: it is loaded only when asked for
        from ._uring import UringBackend

        return UringBackend()
    if name == "trio":
        raise ValueError("the trio backend drives a whole reactor, not a poller: use make_reactor('trio') or TrioReactor")
    raise ValueError(f"unknown reactor backend {name!r}; choose one of {', '.join(BACKENDS)} or 'auto'")
