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
        try:
            from ._trio import TrioReactor
        except ImportError as exc:  # pragma: no cover - trio is installed wherever the tests run
            raise ValueError("backend 'trio' needs the trio package: pip install 'vanilla-async[trio]'") from exc
        return TrioReactor(clock)
    return Reactor(backend, clock if clock is not None else time.monotonic)
