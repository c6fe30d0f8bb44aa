"""`Request`: a zero-copy view of one framed request.

The framer (`framer.frame`) builds it from offsets into the immutable ``bytes`` chunk the request
arrived in; nothing is decoded or copied until a property asks. Properties return small ``bytes``
slices (hashable: usable as dict keys in a router); `body` is a ``memoryview`` into the chunk (or
into the decoded chunked body). Because the chunk is ``bytes``, the view stays valid for the whole
life of the handler, across its yields, and holding it never blocks the server's buffers.

Header lookup is case-insensitive without a dict: the framer keeps a lower-cased copy of the header
section (``_lower``, same length and offsets as the original), and a lookup is one ``find`` of
``b"\\r\\n" + name + b":"`` in it.
"""

from __future__ import annotations

import socket
from typing import Any


def query_param(query: bytes, name: bytes) -> bytes | None:
    """The raw value of the first ``name=value`` pair in a query string (``b""`` for a bare
    ``name``; ``None`` when absent). No percent-decoding: the bytes as sent."""
    for pair in query.split(b"&"):
        key, eq, value = pair.partition(b"=")
        if key == name:
            return value if eq else b""
    return None


def _key(name: bytes | str) -> bytes:
    raw = name.encode("latin-1") if isinstance(name, str) else name
    return b"\r\n" + raw.lower() + b":"


class Request:
    """One HTTP/1.1 request, as seen by a handler. Build with `vanilla_async.testing.make_request` in tests."""

    __slots__ = (
        "_buf", "_start", "_ts", "_te", "_base", "_lower", "_bs", "_be", "_chunked", "_trailers",
        "minor", "keep_alive", "end", "fd", "state", "timeout",
    )

    def __init__(
        self, buf: bytes, start: int, ts: int, te: int, base: int, lower: bytes, bs: int, be: int,
        minor: int, keep_alive: bool, end: int,
    ) -> None:
        self._buf = buf
        self._start = start  # first byte of the method
        self._ts = ts  # target start
        self._te = te  # target end
        self._base = base  # offset in _buf of _lower[0] (the CRLF that ends the request line)
        self._lower = lower  # lower-cased header section: "\r\nname: value" ... "\r\n"
        self._bs = bs  # body start/end in _buf (Content-Length bodies)
        self._be = be
        self._chunked: bytes | None = None  # decoded body when Transfer-Encoding: chunked
        self._trailers: bytes = b""
        self.minor = minor  #: HTTP minor version (0 or 1)
        #: False when the connection closes after this response. A handler may set it to False to
        #: close after its response (e.g. a close-delimited body); it cannot re-open a closing one.
        self.keep_alive = keep_alive
        self.end = end  #: offset just past this request in the chunk (where a pipelined one starts)
        self.fd = -1  #: the client socket's fd (-1 when the handler is called directly)
        self.state: Any = None  #: the worker's state, from ``ServerConfig.make_state()``
        #: seconds a generator handler may take (``None``: ``Limits.request_timeout``; ``math.inf``: no
        #: deadline, e.g. for an endless stream). Set it before the generator's first ``yield``.
        self.timeout: float | None = None

    # -- request line ------------------------------------------------------------------------------
    @property
    def method(self) -> bytes:
        return self._buf[self._start:self._ts - 1]

    @property
    def target(self) -> bytes:
        """The request target as sent, e.g. ``b"/search?q=x"``."""
        return self._buf[self._ts:self._te]

    @property
    def path(self) -> bytes:
        """The target up to ``?`` (not percent-decoded)."""
        buf = self._buf
        q = buf.find(b"?", self._ts, self._te)
        return buf[self._ts:self._te if q < 0 else q]

    @property
    def query(self) -> bytes:
        """The target after ``?`` (``b""`` when there is none)."""
        buf = self._buf
        q = buf.find(b"?", self._ts, self._te)
        return b"" if q < 0 else buf[q + 1:self._te]

    def peer(self) -> tuple[str, int] | None:
        """The client's (host, port) as the socket sees it — the direct peer, which may be a proxy.

        ``None`` when the handler is called without a socket or the client already left. A syscall per
        call (nothing is paid by handlers that never ask): call it once per request.
        """
        if self.fd < 0:
            return None
        sock = socket.socket(fileno=self.fd)  # borrows the fd: detach() below gives it back unclosed
        try:
            address = sock.getpeername()
        except OSError:
            return None
        finally:
            sock.detach()
        if isinstance(address, tuple):
            return (str(address[0]), int(address[1]))
        return None

    @property
    def version(self) -> bytes:
        return b"HTTP/1.1" if self.minor else b"HTTP/1.0"

    # -- headers -----------------------------------------------------------------------------------
    def _value_at(self, i: int, keylen: int) -> tuple[bytes, int]:
        lower = self._lower
        vs = i + keylen
        ve = lower.find(b"\r\n", vs)
        base = self._base
        return self._buf[base + vs:base + ve].strip(b" \t"), ve

    def header(self, name: bytes | str, default: bytes | None = None) -> bytes | None:
        """The value of header ``name`` (any case), the first if repeated; ``default`` when absent."""
        key = _key(name)
        i = self._lower.find(key)
        if i < 0:
            return default
        return self._value_at(i, len(key))[0]

    def header_values(self, name: bytes | str) -> list[bytes]:
        """All values of a (possibly repeated) header, in order; ``[]`` when absent."""
        key = _key(name)
        lower = self._lower
        out: list[bytes] = []
        i = lower.find(key)
        while i >= 0:
            value, ve = self._value_at(i, len(key))
            out.append(value)
            i = lower.find(key, ve)
        return out

    def header_items(self) -> list[tuple[bytes, bytes]]:
        """Every header as ``(lower-cased name, value)``, in order. Allocates: use `header` on hot paths."""
        lower = self._lower
        buf = self._buf
        base = self._base
        items: list[tuple[bytes, bytes]] = []
        i = 0
        end = len(lower) - 2
        while i < end:
            colon = lower.find(b":", i + 2)
            ve = lower.find(b"\r\n", colon)
            items.append((lower[i + 2:colon], buf[base + colon + 1:base + ve].strip(b" \t")))
            i = ve
        return items

    def header_dict(self) -> dict[bytes, bytes]:
        """A dict of lower-cased name → value (repeated headers joined with ``b", "``)."""
        result: dict[bytes, bytes] = {}
        for name, value in self.header_items():
            result[name] = result[name] + b", " + value if name in result else value
        return result

    @property
    def last_event_id(self) -> bytes | None:
        """The ``Last-Event-ID`` header an SSE client sends when it reconnects."""
        return self.header(b"last-event-id")

    # -- body ---------------------------------------------------------------------------------------
    @property
    def body(self) -> memoryview:
        """The request body (decoded if it was chunked); an empty view when there is none."""
        if self._chunked is not None:
            return memoryview(self._chunked)
        return memoryview(self._buf)[self._bs:self._be]

    @property
    def chunked(self) -> bool:
        return self._chunked is not None

    def trailers(self) -> list[tuple[bytes, bytes]]:
        """Trailer fields of a chunked body as ``(lower-cased name, value)``."""
        items: list[tuple[bytes, bytes]] = []
        for line in self._trailers.split(b"\r\n"):
            if line:
                name, _, value = line.partition(b":")
                items.append((name.lower(), value.strip(b" \t")))
        return items

    def __repr__(self) -> str:
        return f"<Request {self.method.decode('latin-1')} {self.target.decode('latin-1')} {self.version.decode()}>"
