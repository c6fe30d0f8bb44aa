"""Chunked responses (RFC 9112 §7.1): stream a body of unknown length from a generator handler.

    from vanilla_async import sleep
    from vanilla_async.streaming import end_chunked, start_chunked, write_chunk

    def handler(req, out):
        start_chunked(out, content_type=b"text/plain; charset=utf-8")
        for i in range(3):
            write_chunk(out, b"tick %d\\n" % i)   # leaves while the generator is parked
            yield sleep(0.5)
        end_chunked(out)                          # the body ends; the connection stays usable

Every function appends raw bytes to the server-owned ``out`` and does no I/O. Whatever a generator
handler appended before a ``yield`` is flushed while it is parked, so each chunk reaches the
client as soon as the handler yields. Because the body is self-delimiting, the connection can be
kept alive after `end_chunked`; a handler that stops early without it must close the connection
(``req.keep_alive = False``), otherwise the client is left waiting for the end of the body.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Generator, Union

from ._core.handler import FileBody
from ._core.http1 import is_generator
from ._core.request import Request
from ._core.response import Headers, date_header, header_line, status_line
from ._core.steps import relay
from .errors import ResponseError

__all__ = ("Data", "Done", "chunk", "end_chunked", "measured", "relay", "start_chunked", "status_at", "write_chunk")

Data = Union[bytes, bytearray, memoryview, str]
"""A chunk's payload; ``str`` is encoded as UTF-8."""

_TE_CHUNKED = b"Transfer-Encoding: chunked\r\n\r\n"
_LAST_CHUNK = b"0\r\n"
_FRAMING = (b"content-length", b"transfer-encoding")
_content_type_lines: dict[bytes | str, bytes] = {}


def start_chunked(
    out: bytearray,
    status: int = 200,
    *,
    content_type: bytes | str | None = b"text/plain; charset=utf-8",
    headers: Headers = (),
) -> None:
    """Append the head of a chunked response: status line, Date, Content-Type, ``headers``,
    ``Transfer-Encoding: chunked`` and the blank line that ends the head.

    Header names must be tokens and values may not contain CR, LF or NUL (`ResponseError`), exactly
    as for `vanilla_async.respond`. ``Content-Length`` and ``Transfer-Encoding`` in ``headers`` are
    refused too (`ResponseError`): the framing is this function's job, and a response carrying both
    is a smuggling hazard, and so are statuses that cannot have a body (1xx, 204, 304).
    ``content_type=None`` sends no Content-Type. Nothing is appended to ``out`` when something is
    refused.

    Chunked transfer coding is HTTP/1.1: for an HTTP/1.0 request (``req.minor == 0``) send a
    close-delimited body instead (no Transfer-Encoding, ``req.keep_alive = False``).
    """
    if status < 200 or status == 204 or status == 304:
        raise ResponseError(f"a {status} response has no body, so it cannot be chunked; use respond()")
    head = bytearray(status_line(status))
    head += date_header()
    if content_type is not None:
        line = _content_type_lines.get(content_type)
        if line is None:
            line = header_line(b"Content-Type", content_type)
            if len(_content_type_lines) < 64:  # bounded, in case content types are made per request
                _content_type_lines[content_type] = line
        head += line
    for name, value in headers:
        line = header_line(name, value)  # validates; nothing is appended to out if one is bad
        if line[:line.index(b":")].lower() in _FRAMING:
            raise ResponseError(f"start_chunked() sets the framing itself; do not pass a {name!r} header")
        head += line
    head += _TE_CHUNKED
    out += head


def chunk(data: Data) -> bytes:
    """One encoded chunk (``b"<hex size>\\r\\n<data>\\r\\n"``); ``b""`` for empty data.

    Empty data encodes to nothing because a zero-size chunk would end the body.
    """
    payload = data.encode("utf-8") if isinstance(data, str) else data
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    if not size:
        return b""
    return b"%x\r\n" % size + bytes(payload) + b"\r\n"


def write_chunk(out: bytearray, data: Data) -> None:
    """Append ``data`` as one chunk. Empty data appends nothing (an empty chunk would end the body)."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    size = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    if size:
        out += b"%x\r\n" % size
        out += payload
        out += b"\r\n"


def end_chunked(out: bytearray, trailers: Headers = ()) -> None:
    """Append the last chunk (``0\\r\\n``), optional trailer fields and the final CRLF.

    Trailers are validated like headers (`ResponseError` on CR/LF/NUL or a non-token name); a
    client only has to process them if it asked with ``TE: trailers``, so never put anything there
    the response cannot do without.
    """
    tail = bytearray(_LAST_CHUNK)
    for name, value in trailers:
        tail += header_line(name, value)
    tail += b"\r\n"
    out += tail


def status_at(out: bytearray, start: int) -> int:
    """The status code of the response whose head starts at ``out[start]``; 0 when there is none
    (nothing written yet, or not a response head). For middleware: see `relay`."""
    code = out[start + 9:start + 12]
    if out.startswith(b"HTTP/1.", start) and len(code) == 3 and code.isdigit():
        return int(code)
    return 0


#: what `measured` reports once per response: ``done(req, status, size, outcome, started)`` — the
#: status the handler wrote (0: none), the bytes it wrote (a returned `FileBody`'s length included),
#: how it ended (``"complete"``, ``"closed"``: the client left or the deadline passed, or
#: ``"raised"``: the server answers 500) and ``time.perf_counter()`` at its start
Done = Callable[[Request, int, int, str, float], object]


def measured(handler: Callable[..., Any], done: Done) -> Callable[..., Any]:
    """``handler`` (called as ``handler(req, out, *rest)``, so a router's handler with its params
    too) wrapped so that ``done`` runs once per response, when it is complete — after a sync handler
    returns, or when a generator handler ends, however it ends (`relay` drives it). For access logs
    and metrics; handlers that are not wrapped pay nothing."""

    def wrapper(req: Request, out: bytearray, *rest: Any) -> Any:
        started = time.perf_counter()
        mark = len(out)
        try:
            result = handler(req, out, *rest)
        except BaseException:
            done(req, 500, 0, "raised", started)
            raise
        if result is not None and is_generator(result):
            return _measured_steps(result, req, out, started, done)
        size = len(out) - mark + (result.length if result.__class__ is FileBody else 0)
        done(req, status_at(out, mark), size, "complete", started)
        return result

    return wrapper


def _measured_steps(gen: Generator[Any, Any, Any], req: Request, out: bytearray, started: float,
                    done: Done) -> Generator[Any, Any, Any]:
    status, size, outcome = 0, 0, "complete"

    def after_step(start: int) -> None:
        nonlocal status, size
        status = status or status_at(out, start)
        size += len(out) - start

    try:
        result = yield from relay(gen, out, after_step)
        if result.__class__ is FileBody:
            size += result.length
        return result
    except GeneratorExit:
        outcome = "closed"
        raise
    except BaseException:
        status, outcome = status or 500, "raised"
        raise
    finally:
        done(req, status, size, outcome, started)
