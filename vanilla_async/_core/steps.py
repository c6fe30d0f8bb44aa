"""Working on a handler's output as it is written: `relay` drives a generator handler step by step
with a hook after each step; `insert_after_status` puts header lines into the first final response
head; `inserting` does that for a generator, in whichever step writes the head. One copy each, used
by the engine (``Connection: close`` on a connection's last response), the CLI (``--header``) and,
re-exported by `vanilla_async.streaming`, by middleware.
"""

from __future__ import annotations

from typing import Any, Callable, Generator

__all__ = ("insert_after_status", "inserting", "relay")


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


def insert_after_status(out: bytearray, start: int, block: bytes, unless: bytes | None = None) -> bool:
    """Insert ``block`` (complete ``Name: value\\r\\n`` lines) after the status line of the first
    final response head at ``out[start]`` (interim 1xx heads are skipped; a 101 is final). With
    ``unless`` (a lower-case field name), a head that already has that field is left as it is.
    False when no complete final head starts there yet (the caller tries again after more output)."""
    while out.startswith(b"HTTP/1.", start):
        line_end = out.find(b"\r\n", start)
        head_end = out.find(b"\r\n\r\n", start)
        if line_end < 0 or head_end < 0:
            return False
        if out[start + 9:start + 10] == b"1" and out[start + 9:start + 12] != b"101":
            start = head_end + 4
            continue
        if unless is None or b"\r\n" + unless + b":" not in bytes(out[line_end:head_end + 2]).lower():
            out[line_end + 2:line_end + 2] = block
        return True
    return False


def inserting(gen: Generator[Any, Any, Any], out: bytearray, block: bytes,
              unless: bytes | None = None) -> Generator[Any, Any, Any]:
    """Drive ``gen`` as ``yield from gen`` would, inserting ``block`` into the head that the first of
    its steps to write one writes (`insert_after_status`)."""
    pending = True

    def after_step(start: int) -> None:
        nonlocal pending
        if pending:
            pending = not insert_after_status(out, start, block, unless)

    return (yield from relay(gen, out, after_step))
