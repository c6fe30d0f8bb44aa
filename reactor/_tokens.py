"""Tokens: what a parked generator is waiting for.

A handler generator yields one of these small immutable values and the reactor resumes it when
the condition holds. They are `NamedTuple`s on purpose: frozen, slotted, and the cheapest value
object CPython can build, which matters because a pipelined database request builds several.

What the `yield` evaluates to when the generator is resumed:

=====================  ========================================================================
``readable(fd, t)``    ``True`` when fd is readable (or has an error/hang-up pending — read it to
                       find out, as with ``select``); ``False`` when ``t`` seconds passed first.
``writable(fd, t)``    the same for writability.
``sleep(s)``           ``None`` after at least ``s`` seconds.
``sleep_until(t)``     ``None`` once the reactor clock (`time.monotonic`) reaches ``t``.
``park(lot, t)``       the value given to ``lot.unpark(value)`` (default ``True``); ``False`` on timeout.
``first(a, b, ...)``   ``(index, value)`` of the token that fired first; the others are withdrawn.
``ready(value)``       ``value``, at once: the task is not parked (nor its ``parked`` hook called)
                       unless it is held, and then ``value`` is delivered on release. Inside
                       ``first(...)`` a ready arm wins at once (the first ready one, in order).
                       This is how a queue answers "the next item" when one is already there:
                       ``yield ws.receive()`` gives ``ready(msg)`` or ``park(lot)``.
=====================  ========================================================================

If the fd cannot be watched at all (closed, a regular file, busy) the error is *thrown into the
generator* at the ``yield`` so the handler can react with ``try``/``except``.
"""

from __future__ import annotations

from typing import Any, NamedTuple, Protocol, Union


class HasFileno(Protocol):
    def fileno(self) -> int: ...


FdLike = Union[int, HasFileno]


class Readable(NamedTuple):
    """Wait until ``fd`` is readable, for at most ``timeout`` seconds (``None``: no limit)."""

    fd: int
    timeout: float | None = None


class Writable(NamedTuple):
    """Wait until ``fd`` is writable, for at most ``timeout`` seconds (``None``: no limit)."""

    fd: int
    timeout: float | None = None


class Sleep(NamedTuple):
    """Wait ``seconds`` seconds."""

    seconds: float


class SleepUntil(NamedTuple):
    """Wait until the reactor clock (`time.monotonic`) reaches ``deadline``."""

    deadline: float


class Park(NamedTuple):
    """Wait until ``lot.unpark*()`` picks this task, for at most ``timeout`` seconds."""

    lot: Any
    timeout: float | None = None


class Ready(NamedTuple):
    """Resume at once with ``value`` (something the task waits for is already there)."""

    value: Any = None


class First(NamedTuple):
    """Wait for whichever of ``tokens`` fires first; the yield gives ``(index, value)``."""

    tokens: tuple[Readable | Writable | Sleep | SleepUntil | Park | Ready, ...]


Token = Union[Readable, Writable, Sleep, SleepUntil, Park, Ready, First]


def _fileno(fd: FdLike) -> int:
    if type(fd) is int:
        return fd
    if isinstance(fd, int):
        return int(fd)
    fileno = getattr(fd, "fileno", None)
    if fileno is None:
        raise TypeError(f"expected an fd (int) or an object with fileno(), got {fd!r}")
    return int(fileno())


def _check_timeout(timeout: float | None) -> float | None:
    if timeout is not None and not timeout >= 0:  # also rejects NaN
        raise ValueError(f"timeout must be None or a number >= 0, got {timeout!r}")
    return timeout


def readable(fd: FdLike, timeout: float | None = None) -> Readable:
    """Token: park until ``fd`` is readable; the yield gives ``True``, or ``False`` on timeout."""
    return Readable(_fileno(fd), _check_timeout(timeout))


def writable(fd: FdLike, timeout: float | None = None) -> Writable:
    """Token: park until ``fd`` is writable; the yield gives ``True``, or ``False`` on timeout."""
    return Writable(_fileno(fd), _check_timeout(timeout))


def sleep(seconds: float) -> Sleep:
    """Token: park for ``seconds`` seconds (0 means: let the loop run once, then resume)."""
    if not seconds >= 0:
        raise ValueError(f"sleep() needs a number of seconds >= 0, got {seconds!r}")
    return Sleep(seconds)


def sleep_until(deadline: float) -> SleepUntil:
    """Token: park until `time.monotonic()` reaches ``deadline``."""
    return SleepUntil(float(deadline))


def park(lot: Any, timeout: float | None = None) -> Park:
    """Token: wait in ``lot`` (a `ParkingLot`) until another task or callback unparks it."""
    return Park(lot, _check_timeout(timeout))


def ready(value: Any = None) -> Ready:
    """Token: resume at once with ``value`` (e.g. a queue that already holds the next item)."""
    return Ready(value)


def first(*tokens: Readable | Writable | Sleep | SleepUntil | Park | Ready) -> First:
    """Token: race several tokens, e.g. ``i, ready = yield first(readable(fd), sleep(5))``."""
    if not tokens:
        raise ValueError("first() needs at least one token")
    for token in tokens:
        if type(token) not in (Readable, Writable, Sleep, SleepUntil, Park, Ready):
            raise TypeError(f"first() races readable/writable/sleep/sleep_until/park/ready tokens, got {token!r}")
    return First(tuple(tokens))
