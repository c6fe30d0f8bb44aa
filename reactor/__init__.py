"""reactor: a small per-worker event loop that drives generators yielding tokens.

It knows nothing about HTTP. A generator yields one of seven tokens — `readable(fd)`, `writable(fd)`,
`sleep(s)`, `sleep_until(t)`, `park(lot)`, `ready(value)` or `first(...)` of several; the `Reactor`
parks it and resumes it in the same loop when the fd or timer fires (at once for `ready`). Long-lived sockets get plain callbacks instead (`Reactor.add_stream`). Backends: ``epoll``
(Linux, edge-triggered streams), ``selectors`` (portable, level-triggered), ``io_uring`` (Linux
5.11+: the epoll contract over io_uring poll requests, `reactor._uring`) and ``trio`` (the same
reactor as a trio task: `reactor._trio.TrioReactor`, made by `make_reactor("trio")`).
"""

from ._backends import (
    BACKENDS,
    BROKEN,
    ERROR,
    HANGUP,
    PEER_CLOSED,
    READABLE,
    WRITABLE,
    default_backend_name,
    make_backend,
)
from ._core import ParkingLot, Reactor, ReactorStats, Task
from ._errors import BackendUnavailableError, BusyResourceError, ClosedResourceError, ReactorClosedError, ReactorError, UnknownTokenError
from ._factory import make_reactor
from ._timers import Timer
from ._tokens import (
    First,
    Park,
    Readable,
    Ready,
    Sleep,
    SleepUntil,
    Token,
    Writable,
    first,
    park,
    readable,
    ready,
    sleep,
    sleep_until,
    writable,
)

__all__ = (
    "BACKENDS", "BROKEN", "ERROR", "HANGUP", "PEER_CLOSED", "READABLE", "WRITABLE",
    "BackendUnavailableError", "BusyResourceError", "Park", "ParkingLot", "park", "ClosedResourceError", "Readable", "Reactor", "ReactorClosedError", "ReactorError",
    "ReactorStats", "Ready", "ready", "Sleep", "SleepUntil", "Task", "Timer", "Token", "UnknownTokenError", "Writable",
    "default_backend_name", "first", "make_reactor", "First", "make_backend", "readable", "sleep", "sleep_until", "writable",
)
