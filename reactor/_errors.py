"""Exceptions raised by the reactor, split by meaning (the way trio splits Closed/Broken/Busy)."""

from __future__ import annotations


class ReactorError(Exception):
    """Base class of every error the reactor raises on its own behalf."""


class BusyResourceError(ReactorError):
    """Two parties want the same fd in the same direction.

    At most one parked generator may wait to read, and one to write, on a given fd; and an fd that
    something else registered with the reactor (a server's client socket, say) cannot be waited on
    with a token. Give each waiter its own fd, or route the results of a shared fd yourself.
    """


class ClosedResourceError(ReactorError):
    """*Your* code closed an fd that a parked generator was waiting on (see `Reactor.notify_closing`)."""


class UnknownTokenError(ReactorError, TypeError):
    """A generator yielded something that is not a reactor token.

    Yield only the values returned by the seven token makers — `readable`, `writable`, `sleep`,
    `sleep_until`, `park`, `ready` or `first` — (or `yield from` a helper that does). The error is
    thrown back into the generator at the `yield`, so its traceback points at the offending line.
    """


class ReactorClosedError(ReactorError):
    """The reactor was closed: no more fds, timers or tasks can be added to it."""


class BackendUnavailableError(ReactorError, ValueError):
    """The backend asked for cannot run here (the kernel lacks it, or forbids it).

    The message names the reason and the fallback (``--backend epoll``). A `ValueError`, like
    every other "that backend name does not work here" error of `make_backend`.
    """
