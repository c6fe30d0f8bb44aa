"""Response helpers: correct responses for the price of a few appends.

Everything here appends complete raw HTTP/1.1 bytes into the caller's ``out`` (the server-owned
``bytearray``). Content-Length is always computed; header names must be tokens and values may not
contain CR, LF or NUL — otherwise `ResponseError` is raised, so a value taken from a request can
never split a response. The ``Date`` value is cached per worker: the worker's reactor refreshes it
once a second (`refresh_date`), so reading it costs a global lookup.
"""

from __future__ import annotations

import time
from email.utils import formatdate
from http import HTTPStatus
from typing import Iterable, Union

from ..errors import ResponseError
from ..grammar import BAD_FIELD_VALUE, TOKEN, reason_phrase

HeaderValue = Union[bytes, str, int]
Headers = Iterable[tuple[Union[bytes, str], HeaderValue]]

_TOKEN = TOKEN
_BAD_VALUE = BAD_FIELD_VALUE

_STATUS_LINES: dict[int, bytes] = {
    int(s): b"HTTP/1.1 %d %s\r\n" % (int(s), reason_phrase(s).encode("ascii")) for s in HTTPStatus
}


def status_line(status: int) -> bytes:
    """``b"HTTP/1.1 404 Not Found\\r\\n"``; any 100–599 code is allowed (unknown ones get a bare reason)."""
    line = _STATUS_LINES.get(status)
    if line is None:
        if not isinstance(status, int) or not 100 <= status <= 599:
            raise ResponseError(f"invalid HTTP status {status!r}; use an int between 100 and 599")
        line = _STATUS_LINES[status] = b"HTTP/1.1 %d Status %d\r\n" % (status, status)
    return line


# -- Date --------------------------------------------------------------------------------------------
_date_header = b""
_date_generation = 0


def refresh_date(now: float | None = None) -> None:
    """Recompute the cached ``Date:`` header line (the worker calls this once a second)."""
    global _date_header, _date_generation
    _date_header = b"Date: " + formatdate(now if now is not None else time.time(), usegmt=True).encode("ascii") + b"\r\n"
    _date_generation += 1


def date_header() -> bytes:
    """The cached ``b"Date: <IMF-fixdate>\\r\\n"`` line."""
    return _date_header


refresh_date()


# -- building blocks -----------------------------------------------------------------------------
def _as_bytes(value: HeaderValue) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("latin-1")
    if isinstance(value, int) and not isinstance(value, bool):
        return b"%d" % value
    raise ResponseError(f"header value must be bytes, str or int, got {value!r}")


def header_line(name: bytes | str, value: HeaderValue) -> bytes:
    """``b"Name: value\\r\\n"``, refusing names that are not tokens and values with CR/LF/NUL."""
    raw_name = _as_bytes(name)
    raw_value = _as_bytes(value)
    if _TOKEN.fullmatch(raw_name) is None:
        raise ResponseError(f"invalid header name {raw_name!r}: must be a token (letters, digits, !#$%&'*+.^_`|~-)")
    if _BAD_VALUE.search(raw_value) is not None:
        raise ResponseError(
            f"header {raw_name.decode('latin-1')} has CR, LF or NUL in its value {raw_value!r}; "
            "that would split the response — strip or percent-encode untrusted input"
        )
    return raw_name + b": " + raw_value + b"\r\n"


_content_type_lines: dict[bytes | str, bytes] = {}


def respond(
    out: bytearray,
    status: int = 200,
    body: bytes | bytearray | memoryview | str = b"",
    *,
    content_type: bytes | str | None = b"text/plain; charset=utf-8",
    headers: Headers = (),
    close: bool = False,
    head: bool = False,
) -> None:
    """Append a complete response: status line, Date, Content-Type, Content-Length, ``headers``, body.

    ``head=True`` sends the headers of the response without its body (for HEAD requests);
    ``close=True`` adds ``Connection: close`` (the handler should also stop serving the connection,
    which the server does when the request itself asked for close). 1xx, 204 and 304 responses
    carry no Content-Length and no body, as RFC 9110 §8.6 requires.
    """
    payload = body.encode("utf-8") if isinstance(body, str) else body
    out += status_line(status)
    out += _date_header
    no_body = status < 200 or status == 204 or status == 304
    if content_type is not None and not no_body:
        line = _content_type_lines.get(content_type)
        if line is None:
            line = _content_type_lines[content_type] = header_line(b"Content-Type", content_type)
        out += line
    for name, value in headers:
        out += header_line(name, value)
    if close:
        out += b"Connection: close\r\n"
    if no_body:
        out += b"\r\n"
        return
    out += b"Content-Length: %d\r\n\r\n" % len(payload)
    if not head:
        out += payload


def error_response(status: int, reason: str = "") -> bytes:
    """A self-delimiting plain-text error response that closes the connection."""
    text = (reason or reason_phrase(status)).encode("utf-8", "replace") + b"\n"
    return (
        status_line(status) + _date_header + b"Content-Type: text/plain; charset=utf-8\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(text) + text
    )


class StaticResponse:
    """A response whose bytes are built once and rebuilt only when the cached Date changes.

    >>> HELLO = StaticResponse(200, b"Hello, World!")
    >>> def handler(req, out):
    ...     HELLO.append_to(out)
    """

    __slots__ = ("_status", "_body", "_content_type", "_headers", "_bytes", "_generation")

    def __init__(
        self, status: int = 200, body: bytes | str = b"", *, content_type: bytes | str | None = b"text/plain; charset=utf-8",
        headers: Headers = (),
    ) -> None:
        self._status = status
        self._body = body.encode("utf-8") if isinstance(body, str) else bytes(body)
        self._content_type = content_type
        self._headers = tuple((_as_bytes(n), _as_bytes(v)) for n, v in headers)
        self._generation = -1
        self._bytes = b""
        self.render()  # validate now, not on the first request

    def render(self) -> bytes:
        """The full response bytes for the current Date."""
        if self._generation != _date_generation:
            out = bytearray()
            respond(out, self._status, self._body, content_type=self._content_type, headers=self._headers)
            self._bytes = bytes(out)
            self._generation = _date_generation
        return self._bytes

    def append_to(self, out: bytearray) -> None:
        if self._generation != _date_generation:
            self.render()
        out += self._bytes
