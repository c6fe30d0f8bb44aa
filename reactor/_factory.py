"""`make_reactor`: the one place that maps a backend name to a reactor class.

It sits above both `_core` (the `Reactor`) and `_trio` (the `TrioReactor`, a subclass), so that
neither imports the other's module at run time: `_trio` imports `_core`, never the reverse.
"""

from __future__ import annotations

import time
from typing import Callable

from ._core import Reactor

__all__ = ("make_reactor",)


def make_reactor(backend: str = "auto", clock: Callable[[], float] | None = None) -> Reactor:
    """A reactor for ``backend``: ``"auto"`` (epoll on Linux), ``"epoll"``, ``"selectors"``, ``"io_uring"``
    (Linux 5.11+; `BackendUnavailableError`, naming the epoll fallback, where the kernel refuses it)
    or ``"trio"`` (a `TrioReactor`; needs the ``trio`` package). ``clock`` replaces `time.monotonic`
    as the reactor's clock."""
    if backend == "trio":
        from vanilla_async._optional import require  # (lazy: reactor does not import vanilla_async at load)

        require("trio", extra="trio", feature="the 'trio' reactor backend")
        from ._trio import TrioReactor
        return TrioReactor(clock)
    return Reactor(backend, clock if clock is not None else time.monotonic)
