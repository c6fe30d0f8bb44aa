"""Server-Sent Events (the WHATWG ``text/event-stream`` format) over a chunked HTTP/1.1 response.

    from vanilla_async import ShuttingDown, sleep, sse

    def handler(req, out):
        sse.start(out, retry=2000)
        n = int(req.last_event_id or 0)           # resume after the last id the client saw
        try:
            for n in range(n + 1, n + 11):
                sse.event(out, f"tick {n}", id=n)  # one chunk; leaves while we are parked
                yield sleep(1.0)
        except ShuttingDown:                      # the server's grace period is over
            sse.event(out, "server restarting", event="bye")
        sse.end(out)                              # clean end: the connection can be reused

Theory of operation
-------------------
The stream is a chunked response, not a close-delimited one, so a stream that ends (`end`) leaves
the connection usable for the next request, and a client can tell a clean end from a cut.
Every event is appended as **one chunk** holding the whole event (its lines and the blank line
that dispatches it), so a client never sees half an event. Whatever a generator handler appended
before a ``yield`` is flushed while it is parked: one event per step reaches the client at once.

`encode_event` is pure (no I/O, no ``out``): a broadcaster can encode an event once and append the
same bytes to many streams with ``streaming.write_chunk(out, encoded)`` (or precompute
``streaming.chunk(encoded)`` and append that). `decode` is the other side — the spec's parsing
algorithm, as a browser runs it — for tests of event-stream handlers.

Encoding rules (WHATWG HTML, "Server-sent events", §9.2.5-9.2.6):

* ``data`` is split on CRLF, CR and LF — the three line endings the parser knows, and only those
  (``str.splitlines`` would also split on U+2028, VT, FF, ...) — and each piece becomes one
  ``data:`` line; the client joins them with LF. A trailing newline therefore survives the round
  trip. ``str`` is encoded as UTF-8; ``bytes`` must already be UTF-8 (the stream is always decoded
  as UTF-8; invalid bytes become U+FFFD on the client).
* ``id`` and ``event`` cannot contain CR or LF (they would end the field and inject another one),
  and the parser ignores an ``id`` containing NUL: these raise `ResponseError` instead of being
  silently changed. A client sends the last ``id`` it saw back in the ``Last-Event-ID`` header when
  it reconnects (`Request.last_event_id`).
* ``retry`` is the reconnection delay in milliseconds, a non-negative integer. (``retry: 0`` does
  not stop reconnecting; to stop a browser, answer the reconnect with a status other than 200,
  such as 204.)
* Lines end with LF; the field value follows ``": "`` (the parser strips one leading space, so a
  value that itself starts with a space keeps it).

A stream lives longer than an ordinary request: when ``Limits.request_timeout`` is set, give the
stream ``req.timeout = math.inf`` before its first ``yield`` (a vanished client is still noticed
by EOF while parked or a failed heartbeat write, a stalled one by the write timeout). Catch
`vanilla_async.ShuttingDown` to send a last event and `end` when the server stops.

The response sets ``Cache-Control: no-cache`` and ``X-Accel-Buffering: no`` (so nginx-style
proxies pass events through at once) and is never compressed. Heartbeats (`comment`) keep idle
proxies from dropping the connection and make a vanished client show up as a failed write.
"""

from __future__ import annotations

import re
from typing import NamedTuple, Union

from ._core.response import Headers, _as_bytes
from .errors import ResponseError
from .streaming import end_chunked, start_chunked, write_chunk

__all__ = ("CONTENT_TYPE", "Event", "comment", "decode", "encode_comment", "encode_event", "end", "event", "start")

CONTENT_TYPE = b"text/event-stream"

Text = Union[str, bytes, bytearray, memoryview]
EventId = Union[str, bytes, int]

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_DEFAULT_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"Cache-Control", b"no-cache"), (b"X-Accel-Buffering", b"no"))


def _utf8(value: Text) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise ResponseError(f"SSE fields must be str or bytes, got {value!r}")


def _lines(value: bytes) -> list[bytes]:
    if b"\r" in value or b"\n" in value:
        return _LINE_BREAK.split(value)
    return [value]


def _retry_line(retry: int) -> bytes:
    if type(retry) is not int or retry < 0:
        raise ResponseError(f"SSE retry must be a non-negative int of milliseconds, got {retry!r}")
    return b"retry: %d\n" % retry


def encode_event(
    data: Text | None = "",
    *,
    id: EventId | None = None,  # noqa: A002 - the SSE field is called id
    event: Text | None = None,
    retry: int | None = None,
) -> bytes:
    """The bytes of one event, from its fields to the blank line that dispatches it (no chunk framing).

    >>> encode_event("a\\r\\nb", id=7, event="tick")
    b'event: tick\\nid: 7\\ndata: a\\ndata: b\\n\\n'

    ``data=None`` sends no ``data:`` field: the client updates its last event id or retry delay but
    dispatches nothing. ``data=""`` dispatches an event with empty data. Raises `ResponseError` for
    CR/LF in ``id`` or ``event``, NUL in ``id``, or a ``retry`` that is not an int >= 0.
    """
    encoded = bytearray()
    if event is not None:
        name = _utf8(event)
        if b"\r" in name or b"\n" in name:
            raise ResponseError(f"SSE event type may not contain CR or LF (it would inject a field): {name!r}")
        encoded += b"event: " + name + b"\n"
    if id is not None:
        if isinstance(id, int) and not isinstance(id, bool):
            ident = b"%d" % id
        else:
            ident = _utf8(id)  # type: ignore[arg-type]  # (a bool is refused there)
        if b"\r" in ident or b"\n" in ident or b"\x00" in ident:
            raise ResponseError(
                f"SSE id may not contain CR, LF (they would inject a field) or NUL (clients ignore such an id): {ident!r}"
            )
        encoded += b"id: " + ident + b"\n"
    if retry is not None:
        encoded += _retry_line(retry)
    if data is not None:
        for line in _lines(_utf8(data)):
            encoded += b"data: " + line + b"\n"
    encoded += b"\n"
    return bytes(encoded)


def encode_comment(text: Text = "") -> bytes:
    """A comment (``b": text\\n"``), one ``:`` line per line of ``text``; clients ignore it."""
    raw = _utf8(text)
    if not raw:
        return b":\n"
    return b"".join(b": " + line + b"\n" for line in _lines(raw))


def start(out: bytearray, *, headers: Headers = (), retry: int | None = None, status: int = 200) -> None:
    """Append the head of an event stream: ``Content-Type: text/event-stream``, ``Cache-Control:
    no-cache``, ``X-Accel-Buffering: no``, chunked transfer coding — then, if given, a first chunk
    with the ``retry:`` field (the client's reconnection delay, in milliseconds).

    ``headers`` are added after the defaults; a ``Cache-Control`` or ``X-Accel-Buffering`` there
    replaces the default one. Header values are validated as for `vanilla_async.respond`.
    """
    extra = [(_as_bytes(name), _as_bytes(value)) for name, value in headers]
    given = {name.lower() for name, _ in extra}
    defaults = [(name, value) for name, value in _DEFAULT_HEADERS if name.lower() not in given]
    first = _retry_line(retry) + b"\n" if retry is not None else b""  # validated before anything is appended
    start_chunked(out, status, content_type=CONTENT_TYPE, headers=defaults + extra)
    write_chunk(out, first)


def event(
    out: bytearray,
    data: Text | None = "",
    *,
    id: EventId | None = None,  # noqa: A002 - the SSE field is called id
    event: Text | None = None,
    retry: int | None = None,
) -> None:
    """Append one event as one chunk (see `encode_event` for the fields and what is refused)."""
    write_chunk(out, encode_event(data, id=id, event=event, retry=retry))


def comment(out: bytearray, text: Text = "") -> None:
    """Append a comment as one chunk: a heartbeat that clients ignore but proxies see as traffic."""
    write_chunk(out, encode_comment(text))


def end(out: bytearray) -> None:
    """Append the terminating zero-size chunk: the stream ends cleanly and the connection stays usable.

    A browser's ``EventSource`` reconnects after a clean end (after the ``retry`` delay) unless the
    page calls ``close()``; answer a reconnect you do not want with 204 to stop it.
    """
    end_chunked(out)


# -- the client side, for tests ---------------------------------------------------------------------
class Event(NamedTuple):
    """One dispatched event as a browser's ``EventSource`` would see it."""

    data: str
    event: str = "message"  #: the ``event:`` type (``"message"`` when the event had none)
    id: str = ""  #: ``lastEventId`` at dispatch (ids persist from one event to the next)


def decode(stream: Text) -> list[Event]:
    """Parse an event stream (the decoded body, without chunk framing) into the events a browser dispatches.

    Follows WHATWG HTML §9.2.6 "Interpreting an event stream": UTF-8 (a leading BOM skipped),
    CRLF/CR/LF line endings, comments ignored, one leading space stripped from a value, an ``id``
    with NUL ignored, an event without data not dispatched, and a trailing event without its
    blank line discarded. ``retry`` fields are not reported.
    """
    text = stream if isinstance(stream, str) else bytes(stream).decode("utf-8", "replace")
    if text.startswith("\ufeff"):
        text = text[1:]
    events: list[Event] = []
    data: list[str] = []
    kind = ""
    last_id = ""
    lines = re.split(r"\r\n|\r|\n", text)
    for line in lines[:-1]:  # the last piece has no line ending: incomplete, ignored
        if not line:
            if data:
                events.append(Event("\n".join(data), kind or "message", last_id))
            data = []
            kind = ""
            continue
        if line.startswith(":"):
            continue
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            data.append(value)
        elif name == "event":
            kind = value
        elif name == "id":
            if "\x00" not in value:
                last_id = value
    return events
