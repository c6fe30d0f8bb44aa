"""`relay`: drive a generator handler step by step with a hook after each step — one copy, used by
the engine (the last request on a connection gets ``Connection: close`` into whichever step writes
its head) and re-exported by `vanilla_async.streaming` for middleware.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

__all__ = ("relay",)


def relay(
    gen: Generator[Any, Any, Any], out: bytearray, after_step: Callable[[int], object]
) -> Generator[Any, Any, Any]:
    """Drive a generator handler exactly as ``yield from gen`` would, calling ``after_step(start)``
    after each of its steps (the last one too), where ``out[start:]`` is what that step appended.

    For middleware around generator handlers: an access log or metrics wrapper reads the status
    line from the first step that wrote one, a CORS wrapper inserts headers after it. Everything
    else passes through: the tokens out, the values and exceptions the reactor sends back in
    (`ShuttingDown` included: ``gen`` decides), ``close()`` (``gen``'s ``finally`` runs), and
    ``gen``'s return value or exception. ``start`` is exact because the server only ever removes
    flushed bytes from the front of ``out`` between steps, never during one.
    """
    value: Any = None
    error: BaseException | None = None
    while True:
        start = len(out)
        try:
            token = gen.send(value) if error is None else gen.throw(error)
        except StopIteration as stop:
            after_step(start)
            return stop.value
        after_step(start)
        try:
            value, error = (yield token), None
        except GeneratorExit:
            gen.close()
            raise
        except BaseException as exc:  # noqa: BLE001 - delivered into gen, which decides
            value, error = None, exc
