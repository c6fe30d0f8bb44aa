"""permessage-deflate (RFC 7692) for the WebSocket codec: negotiation, `Deflater`, `Inflater`.

Theory of operation
-------------------
*Negotiation.* The client lists offers in ``Sec-WebSocket-Extensions`` (one or more header lines,
comma-separated elements ``name; param; param=value``). `negotiate` walks the elements in order and
accepts the first ``permessage-deflate`` offer it can honour under the app's `DeflateOptions`; the
result is a frozen `DeflateParams` (what both sides will do) whose `DeflateParams.header_value` is
the response header. An offer is declined (and the next one tried) when a parameter is unknown,
repeated, has a value where none is allowed (``*_no_context_takeover``), lacks a value where one is
required (``server_max_window_bits``), or has a value that is not an integer 8..15 without leading
zeros. A syntactically broken element declines only itself: the splitter honours quoted strings, so
a comma inside quotes does not cut an element. Decisions for an accepted offer:

* ``server_no_context_takeover``: honoured when offered; also sent when the app asks for it (RFC
  7692 §7.1.1.1 lets the server add it). With it our compressor ends each message with
  ``Z_FULL_FLUSH`` (which empties the LZ77 history) instead of ``Z_SYNC_FLUSH``: no realloc per
  message, and one compressed message is valid for every such connection (`broadcast_frame`).
* ``client_no_context_takeover``: honoured when offered, also sent when the app asks for it (§7.1.1.2).
  Our `Inflater` then drops its zlib object after each message, so an idle connection holds no
  decompressor memory at all.
* ``server_max_window_bits``: our compressor uses ``min(app's bits, offered bits)``; the parameter is
  echoed only when it was offered (§7.1.2.1 forbids it otherwise). zlib cannot produce an 8-bit raw
  deflate window (it silently uses 9), so an offer that demands 8 is declined.
* ``client_max_window_bits``: when the client offers it (with or without a value) and the app set
  ``client_max_window_bits``, we answer ``min`` of the two, and size our inflater to it; otherwise the
  inflater uses what the client announced, or 15. Never below 9 (the zlib quirk above, seen from the
  other side: a client told "8" may really use 9).

*Compression.* A message is compressed as one raw-deflate stream segment flushed with a sync/full
flush, minus the trailing ``00 00 ff ff`` (§7.2.1). *Decompression* appends those four bytes back and
inflates frame by frame with ``max_length`` = the bytes the message may still grow by + 1, so a zip
bomb raises `WebSocketError` 1009 after allocating at most the message limit: when zlib stops at
``max_length`` the output is full and the message is over the limit.

*Memory* (measured by ``python bench/ws_deflate_memory.py``: RSS of 1,000 live
compressor/decompressor pairs that each handled one message; tracemalloc does not see zlib's
``malloc``). zlib's deflate state is ``2**(wbits+2) + 2**(memLevel+9)`` bytes, its inflate state
about 7 KiB plus a ``2**wbits`` window allocated on first output. The defaults (server window 12,
memLevel 5, client window 12 when the client lets us choose) stay under 64 KiB per connection; the
report in the module's ``__main__`` prints the figures for a few settings.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from ..errors import ConfigError, WebSocketError
from ..grammar import TOKEN

__all__ = (
    "DeflateOptions", "DeflateParams", "Deflater", "Inflater", "broadcast_frame", "negotiate",
    "parse_extensions",
)

_TAIL = b"\x00\x00\xff\xff"
_NAME = "permessage-deflate"
_BITS = re.compile(r"[89]|1[0-5]")


@dataclass(frozen=True, slots=True)
class DeflateOptions:
    """What the app allows for permessage-deflate. The defaults keep a connection under 64 KiB."""

    enabled: bool = True
    #: LZ77 window of our compressor (9..15). 2**(bits+2) bytes of deflate state.
    server_max_window_bits: int = 12
    #: zlib memLevel of our compressor (1..9). 2**(memLevel+9) bytes of deflate state.
    mem_level: int = 5
    #: zlib compression level (0..9; 1 is fastest, 6 is zlib's default)
    level: int = 6
    #: reset our compressor after every message (lets one compressed broadcast serve every subscriber)
    server_no_context_takeover: bool = False
    #: ask the client to reset after every message (our inflater then frees its state between messages)
    client_no_context_takeover: bool = False
    #: the window we ask of the client when it lets us choose (9..15); ``None`` leaves it at its choice
    client_max_window_bits: int | None = 12

    def __post_init__(self) -> None:
        if not 9 <= self.server_max_window_bits <= 15:
            raise ConfigError(f"server_max_window_bits={self.server_max_window_bits}: use 9..15 (zlib cannot do 8)")
        if self.client_max_window_bits is not None and not 9 <= self.client_max_window_bits <= 15:
            raise ConfigError(f"client_max_window_bits={self.client_max_window_bits}: use 9..15 or None")
        if not 1 <= self.mem_level <= 9:
            raise ConfigError(f"mem_level={self.mem_level}: use 1..9")
        if not 0 <= self.level <= 9:
            raise ConfigError(f"level={self.level}: use 0..9")


@dataclass(frozen=True, slots=True)
class DeflateParams:
    """The negotiated permessage-deflate parameters of one connection (server's point of view)."""

    server_no_context_takeover: bool
    client_no_context_takeover: bool
    server_max_window_bits: int  #: the window our compressor uses
    client_max_window_bits: int  #: the window our inflater uses
    echo_server_bits: bool = False  #: the offer named server_max_window_bits: answer it
    echo_client_bits: bool = False  #: the offer named client_max_window_bits and we chose a value
    mem_level: int = 5
    level: int = 6

    def header_value(self) -> bytes:
        """The ``Sec-WebSocket-Extensions`` value of the 101 response."""
        parts = [_NAME]
        if self.server_no_context_takeover:
            parts.append("server_no_context_takeover")
        if self.client_no_context_takeover:
            parts.append("client_no_context_takeover")
        if self.echo_server_bits:
            parts.append(f"server_max_window_bits={self.server_max_window_bits}")
        if self.echo_client_bits:
            parts.append(f"client_max_window_bits={self.client_max_window_bits}")
        return "; ".join(parts).encode("ascii")

    def deflater(self) -> Deflater:
        return Deflater(self.server_max_window_bits, self.mem_level, self.server_no_context_takeover, self.level)

    def inflater(self) -> Inflater:
        return Inflater(self.client_max_window_bits, self.client_no_context_takeover)


# -- parsing ----------------------------------------------------------------------------------------
def _split_top(value: str, sep: str) -> list[str]:
    """Split at ``sep`` outside double quotes (backslash escapes inside quotes)."""
    out: list[str] = []
    start = 0
    quoted = False
    i = 0
    n = len(value)
    while i < n:
        c = value[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == sep:
            out.append(value[start:i])
            start = i + 1
        i += 1
    out.append(value[start:])
    return out


def _unquote(value: str) -> str | None:
    if value.startswith('"'):
        if len(value) < 2 or not value.endswith('"'):
            return None
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value if TOKEN.fullmatch(value.encode("latin-1")) else None


def parse_extensions(values: Iterable[bytes]) -> list[tuple[str, list[tuple[str, str | None]]] | None]:
    """Parse ``Sec-WebSocket-Extensions`` header values into ``(name, [(param, value|None)])``
    elements, in order; a malformed element is ``None`` (empty elements are skipped)."""
    elements: list[tuple[str, list[tuple[str, str | None]]] | None] = []
    for raw in values:
        text = raw.decode("latin-1")
        for element in _split_top(text, ","):
            element = element.strip(" \t")
            if not element:
                continue
            pieces = [p.strip(" \t") for p in _split_top(element, ";")]
            name = pieces[0].lower()
            if not TOKEN.fullmatch(name.encode("latin-1")):
                elements.append(None)
                continue
            params: list[tuple[str, str | None]] = []
            ok = True
            for piece in pieces[1:]:
                key, eq, val = piece.partition("=")
                key = key.strip(" \t").lower()
                if not TOKEN.fullmatch(key.encode("latin-1")):
                    ok = False
                    break
                if eq:
                    unq = _unquote(val.strip(" \t"))
                    if unq is None:
                        ok = False
                        break
                    params.append((key, unq))
                else:
                    params.append((key, None))
            elements.append((name, params) if ok else None)
    return elements


def _accept_offer(params: list[tuple[str, str | None]], opts: DeflateOptions) -> DeflateParams | None:
    seen: set[str] = set()
    server_nct = client_nct = False
    server_bits: int | None = None
    client_bits_offered = False
    client_bits: int | None = None
    for key, value in params:
        if key in seen:
            return None
        seen.add(key)
        if key == "server_no_context_takeover":
            if value is not None:
                return None
            server_nct = True
        elif key == "client_no_context_takeover":
            if value is not None:
                return None
            client_nct = True
        elif key == "server_max_window_bits":
            if value is None or not _BITS.fullmatch(value):
                return None
            server_bits = int(value)
        elif key == "client_max_window_bits":
            client_bits_offered = True
            if value is not None:
                if not _BITS.fullmatch(value):
                    return None
                client_bits = int(value)
        else:
            return None
    our_server_bits = opts.server_max_window_bits
    if server_bits is not None:
        if server_bits < 9:
            return None  # zlib's raw deflate cannot keep an 8-bit window
        our_server_bits = min(our_server_bits, server_bits)
    echo_client = False
    inflate_bits = 15
    if client_bits_offered:
        if client_bits is not None:
            inflate_bits = client_bits
        if opts.client_max_window_bits is not None:
            inflate_bits = min(inflate_bits, opts.client_max_window_bits)
            echo_client = True
        elif client_bits is not None:
            echo_client = True  # answer the client's own value: it will use it
    return DeflateParams(
        server_no_context_takeover=server_nct or opts.server_no_context_takeover,
        client_no_context_takeover=client_nct or opts.client_no_context_takeover,
        server_max_window_bits=our_server_bits,
        client_max_window_bits=max(9, inflate_bits),
        echo_server_bits=server_bits is not None,
        echo_client_bits=echo_client,
        mem_level=opts.mem_level,
        level=opts.level,
    ) if not echo_client or inflate_bits >= 9 else None


def negotiate(values: Iterable[bytes], opts: DeflateOptions | None) -> DeflateParams | None:
    """The parameters of the first acceptable permessage-deflate offer in ``values`` (the request's
    ``Sec-WebSocket-Extensions`` header values), or ``None``: no deflate on this connection."""
    if opts is None or not opts.enabled:
        return None
    for element in parse_extensions(values):
        if element is None or element[0] != _NAME:
            continue
        accepted = _accept_offer(element[1], opts)
        if accepted is not None:
            return accepted
    return None


# -- compression ------------------------------------------------------------------------------------
class Deflater:
    """Compresses one message at a time for one connection (its LZ77 history is the connection's)."""

    __slots__ = ("_c", "_flush", "_level", "_mem", "_wbits")

    def __init__(self, window_bits: int, mem_level: int, no_context_takeover: bool, level: int = 6) -> None:
        self._wbits = window_bits
        self._mem = mem_level
        self._level = level
        self._c = zlib.compressobj(level, zlib.DEFLATED, -window_bits, mem_level)
        # Z_FULL_FLUSH = sync flush + forget the history: no context takeover without a new zlib object
        self._flush = zlib.Z_FULL_FLUSH if no_context_takeover else zlib.Z_SYNC_FLUSH

    def compress(self, payload: bytes | bytearray | memoryview) -> bytes:
        """The compressed payload of one message (without the ``00 00 ff ff`` tail)."""
        c = self._c
        out = c.compress(payload) + c.flush(self._flush)
        if out.endswith(_TAIL):
            out = out[:-4]
        return out or b"\x00"

    def frame(self, opcode: int, payload: bytes | bytearray | memoryview) -> bytes:
        """One complete compressed data frame (RSV1 set) carrying ``payload``."""
        from .wscodec import encode_frame
        return encode_frame(opcode, self.compress(payload), rsv1=True)


class Inflater:
    """Decompresses the frames of one message at a time, never producing more than it is allowed."""

    __slots__ = ("_d", "_reset", "_wbits")

    def __init__(self, window_bits: int, no_context_takeover: bool) -> None:
        self._wbits = window_bits
        self._reset = no_context_takeover
        self._d: zlib._Decompress | None = None

    def feed(self, data: bytes, limit: int, final: bool) -> bytes:
        """Inflate one frame's payload; ``final`` on the message's last frame. ``limit`` is how many
        bytes the message may still grow by: more raises `WebSocketError` 1009."""
        d = self._d
        if d is None:
            d = self._d = zlib.decompressobj(-self._wbits)
        if final:
            data = data + _TAIL
        try:
            out = d.decompress(data, limit + 1)
        except zlib.error as exc:
            self._d = None
            raise WebSocketError(1007, f"invalid compressed data: {exc}") from None
        if len(out) > limit:
            self._d = None
            raise WebSocketError(1009, "message too big once decompressed: raise max_message to accept it")
        if d.eof:
            # a BFINAL block ends the stream; the tail we appended may follow it, nothing else
            if d.unused_data and not (final and d.unused_data == _TAIL):
                self._d = None
                raise WebSocketError(1007, "data after the final deflate block of a message")
            if final:
                self._d = None  # BFINAL ended the stream: the next message starts a fresh one
        elif final and self._reset:
            self._d = None
        return out


def broadcast_frame(opcode: int, payload: bytes | bytearray | memoryview, window_bits: int = 9,
                    mem_level: int = 5, level: int = 6) -> bytes:
    """Compress one message once for many subscribers: the framed bytes (RSV1 set).

    Valid for every connection whose `DeflateParams` has ``server_no_context_takeover`` (its client
    expects no back-references into earlier messages, and ours never exist here) and whose
    ``server_max_window_bits`` is ≥ ``window_bits``. Other connections need their own `Deflater`.
    """
    return Deflater(window_bits, mem_level, True, level).frame(opcode, payload)
