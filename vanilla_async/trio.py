"""vanilla_async inside a trio program: ``await nursery.start(vanilla_async.trio.serve, config)``.

Theory of operation
-------------------
`serve` builds one `Worker` (one listening socket, the same connections, framer and handlers as a
prefork worker) on a `TrioReactor` and runs that reactor as a task of the caller's trio program,
next to the program's own tasks. Nothing blocks: the reactor's fd waiters and its timer driver are
ordinary trio tasks.

Stopping is trio's usual way, cancellation, and it is graceful: the reactor runs in a *shielded*
scope, so cancelling the caller's nursery does not tear it down mid-response. Instead `serve`
reacts to the cancellation by starting the worker's graceful shutdown (stop accepting, close idle
keep-alive connections, let requests in progress finish within ``config.grace``, then throw
`ShuttingDown` into parked generators and close), waits for it under the shield, and then lets
the cancellation go on. The wait is bounded by the grace period plus the one-second farewell.

There is no prefork here (``workers`` must be 1 or unset) and no signal handling: in a trio
program signals belong to the program (e.g. `trio.open_signal_receiver` then cancel).
"""

from __future__ import annotations

import logging
from typing import Any, Callable

from ._optional import require

require("trio", extra="trio", feature="vanilla_async.trio")
import trio  # noqa: E402 (after the check that names the extra)

from reactor._trio import TrioReactor

from ._core.config import ServerConfig
from ._core.worker import Worker
from .errors import ConfigError

__all__ = ("serve",)

log = logging.getLogger("vanilla_async")


async def serve(
    config: ServerConfig,
    *,
    clock: Callable[[], float] | None = None,
    task_status: Any = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``config`` in this trio program until cancelled (then drain gracefully) or until the
    worker stops by itself. With ``nursery.start(serve, config)`` you get the bound port.

    ``clock``: the reactor's clock (`time.monotonic` unless given; ``trio.current_time`` puts
    timers and deadlines on trio's clock, e.g. a test's ``autojump_clock``).
    """
    if config.workers not in (None, 1):
        raise ConfigError(
            f"vanilla_async.trio.serve runs one worker in this process, got workers={config.workers}; "
            "use workers=1 here, or vanilla_async.Server for prefork worker processes"
        )
    if config.backend not in ("auto", "trio"):
        raise ConfigError(f"vanilla_async.trio.serve runs on the trio backend, got backend={config.backend!r}")
    reactor = TrioReactor(clock)
    worker = Worker(config.with_(backend="trio", workers=1), reactor=reactor)
    try:
        worker.start()
        stopped = trio.Event()

        async def run_shielded(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            with trio.CancelScope(shield=True):
                try:
                    await reactor.run_async(task_status=task_status)
                finally:
                    stopped.set()

        async with trio.open_nursery() as nursery:
            await nursery.start(run_shielded)
            log.info("vanilla_async serving http://%s:%d inside trio", config.host, worker.port)
            task_status.started(worker.port)
            try:
                await stopped.wait()
            finally:
                if not stopped.is_set():  # cancelled: drain under the shield, then go on cancelling
                    reactor.call_soon(worker.begin_shutdown)
        worker.final_leaks = worker.leaks()
    finally:
        worker.close()
