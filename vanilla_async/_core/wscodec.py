"""The WebSocket codec (RFC 6455, with RFC 7692 permessage-deflate): pure functions over bytes, no I/O.

Theory of operation
-------------------
*Handshake.* `check_upgrade` reads the engine's `Request` view and answers either a frozen `Accept`
(whose `Accept.response` is the complete ``101 Switching Protocols`` response) or a frozen `Reject`
(status, reason, extra headers; `Reject.response` renders it). Token lists (``Upgrade``,
``Connection``, ``Sec-WebSocket-Protocol``) are comma-split over every header line, trimmed and
compared case-insensitively; tokens are checked with `vanilla_async.grammar`. 400 for a malformed
upgrade (a *missing* ``Sec-WebSocket-Version`` included), 426 + ``Sec-WebSocket-Version: 13`` for a
version other than 13 (RFC 6455 §4.4), 403 when ``origins`` is given and the ``Origin`` header is
absent or not in it (compared lower-cased). Checks run in that order, so the first failure wins.

*Frames in.* `FrameReader` is fed chunks in any split and returns the complete events they finish.
It appends each chunk to one ``bytearray`` and keeps a read position, so a byte is copied into the
buffer once; the frame header is parsed and checked once and cached (``_hdr``) while the payload is
still incomplete, so each further chunk costs one length comparison: a message in 1-byte pieces
costs time linear in its size. Consumed bytes are dropped once per `feed` call. Every rule is checked
as soon as the bytes that break it are in, in this order: RSV2/RSV3 (1002), opcode known (1002),
RSV1 only on the first frame of a data message and only with deflate (1002), control frames FIN and
≤ 125 bytes (1002), MASK set (1002, client frames must be masked), continuation only inside a
message and no new data frame inside one (1002), extended lengths minimal and the 64-bit one with its
top bit clear (1002 — strict: RFC 6455 §5.2 says "the minimal number of bytes MUST be used"), the
frame limit ``max_frame`` (1009, before the payload is buffered) and the message limit
``max_message`` (1009; for compressed messages it bounds the *inflated* size, see `wsdeflate`).
Text is validated incrementally with ``codecs.getincrementaldecoder("utf-8")`` frame by frame, so
invalid UTF-8 fails at the frame that carries it and a sequence left incomplete at the end of the
message fails on the final frame (1007). A Close payload is empty (reported as code 1005) or a
2-byte code from 1000–1003, 1007–1011, 3000–4999 plus a UTF-8 reason (1002 / 1007 otherwise). After a
Close the reader ignores whatever follows. A violation raises `WebSocketError(code, reason)`; the
reader is then dead (the connection sends that Close and closes).

*Frames out.* `encode_frame` builds server frames (never masked); `frame_header` gives the header
alone so a large payload can be written with ``writev``/``sendmsg`` without a copy. `encode_close`
truncates the reason on a UTF-8 boundary so the payload fits 125 bytes.

*Unmasking* (`unmask`): up to 512 bytes one big-int XOR (``int.from_bytes``) is fastest (0.45 µs
for 16 B against 1.2 µs for translate); above that, four ``bytes.translate`` calls over the stride-4
slices with precomputed XOR tables are about 2× faster than the big int (64 KiB: 79 vs 145 µs;
1 MiB: 1.25 vs 3.4 ms). ``bench/ws_mask.py`` measures them. An all-zero mask is copied as is.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from typing import Final, TypeAlias

from ..errors import WebSocketError
from ..grammar import is_token, reason_phrase
from .request import Request
from .wsdeflate import DeflateOptions, DeflateParams, Inflater, negotiate

__all__ = (
    "OP_BINARY", "OP_CLOSE", "OP_CONT", "OP_PING", "OP_PONG", "OP_TEXT", "Accept", "Close", "Event",
    "FrameReader", "Message", "Ping", "Pong", "Reject", "accept_key", "check_upgrade", "encode_binary",
    "encode_close", "encode_frame", "encode_ping", "encode_pong", "encode_text", "frame_header", "unmask",
)

OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_KNOWN_OPS = frozenset((OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG))


# -- events ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message: ``text`` for a text message, ``data`` for a binary one (the other is None)."""

    text: str | None = None
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes = b""


@dataclass(frozen=True, slots=True)
class Close:
    """The peer's Close frame. ``code`` is 1005 ("no status received") when the payload was empty."""

    code: int = 1005
    reason: str = ""


Event: TypeAlias = Message | Ping | Pong | Close


# -- unmasking -------------------------------------------------------------------------------------
_XOR_TABLES: Final = tuple(bytes(a ^ b for a in range(256)) for b in range(256))
_SMALL: Final = 512


def unmask(data: bytes | bytearray, mask: bytes) -> bytes:
    """XOR ``data`` with the 4-byte ``mask`` repeated (RFC 6455 §5.3); masking and unmasking are one."""
    n = len(data)
    if n <= _SMALL:
        if not n:
            return b""
        return (int.from_bytes(data, "little") ^ int.from_bytes((mask * ((n >> 2) + 1))[:n], "little")).to_bytes(n, "little")
    if mask == b"\x00\x00\x00\x00":
        return bytes(data)
    out = bytearray(n)
    out[0::4] = data[0::4].translate(_XOR_TABLES[mask[0]])
    out[1::4] = data[1::4].translate(_XOR_TABLES[mask[1]])
    out[2::4] = data[2::4].translate(_XOR_TABLES[mask[2]])
    out[3::4] = data[3::4].translate(_XOR_TABLES[mask[3]])
    return bytes(out)


# -- frames out ------------------------------------------------------------------------------------
def frame_header(opcode: int, length: int, *, fin: bool = True, rsv1: bool = False) -> bytes:
    """The header of an unmasked (server) frame carrying ``length`` payload bytes."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    if length < 126:
        return bytes((b0, length))
    if length < 65536:
        return bytes((b0, 126)) + length.to_bytes(2, "big")
    return bytes((b0, 127)) + length.to_bytes(8, "big")


def encode_frame(opcode: int, payload: bytes | bytearray | memoryview = b"", *, fin: bool = True,
                 rsv1: bool = False) -> bytes:
    """One complete server frame. Control frames must be final and carry at most 125 bytes."""
    if opcode not in _KNOWN_OPS:
        raise ValueError(f"opcode {opcode:#x} is not defined by RFC 6455: use OP_TEXT, OP_BINARY, ...")
    if opcode >= OP_CLOSE and (len(payload) > 125 or not fin):
        raise ValueError(f"control frame {opcode:#x} must be final and at most 125 bytes, got {len(payload)}")
    return frame_header(opcode, len(payload), fin=fin, rsv1=rsv1) + payload


def encode_text(text: str) -> bytes:
    return encode_frame(OP_TEXT, text.encode("utf-8"))


def encode_binary(data: bytes | bytearray | memoryview) -> bytes:
    return encode_frame(OP_BINARY, data)


def encode_ping(payload: bytes = b"") -> bytes:
    return encode_frame(OP_PING, payload)


def encode_pong(payload: bytes = b"") -> bytes:
    return encode_frame(OP_PONG, payload)


def _close_code_ok(code: int) -> bool:
    return 1000 <= code <= 1003 or 1007 <= code <= 1011 or 3000 <= code <= 4999


def encode_close(code: int | None = 1000, reason: str = "") -> bytes:
    """A Close frame; ``code=None`` sends an empty payload. The reason is cut on a UTF-8 boundary
    so the payload fits in 125 bytes."""
    if code is None:
        return encode_frame(OP_CLOSE, b"")
    if not _close_code_ok(code):
        raise ValueError(f"close code {code} may not be sent: use 1000-1003, 1007-1011 or 3000-4999")
    raw = reason.encode("utf-8")
    if len(raw) > 123:
        # the text was valid UTF-8, so the only invalid bytes of the cut are a character split at its end
        raw = raw[:123].decode("utf-8", "ignore").encode("utf-8")
    return encode_frame(OP_CLOSE, code.to_bytes(2, "big") + raw)


# -- frames in -------------------------------------------------------------------------------------
def _fail(code: int, reason: str) -> WebSocketError:
    return WebSocketError(code, reason)


class FrameReader:
    """Turns the client's bytes into events (server side: every frame must be masked).

    ``max_frame`` bounds one frame's payload, ``max_message`` one message (after decompression);
    ``deflate`` is the connection's negotiated permessage-deflate, or ``None``.
    """

    __slots__ = (
        "_buf",
        "_closed",
        "_compressed",
        "_decoder",
        "_hdr",
        "_inflater",
        "_max_frame",
        "_max_message",
        "_op",
        "_parts",
        "_size",
        "_texts",
    )

    def __init__(self, *, max_frame: int = 1 << 20, max_message: int = 1 << 20,
                 deflate: DeflateParams | None = None) -> None:
        self._buf = bytearray()
        self._hdr: tuple[int, bool, bool, int, int] | None = None  # opcode, fin, rsv1, header len, payload len
        self._closed = False
        self._max_frame = max_frame
        self._max_message = max_message
        self._inflater: Inflater | None = deflate.inflater() if deflate is not None else None
        self._op = 0  # opcode of the message in progress (0: none)
        self._compressed = False
        self._size = 0
        self._parts: list[bytes] = []
        self._texts: list[str] = []
        self._decoder: codecs.IncrementalDecoder | None = None

    @property
    def closed(self) -> bool:
        """True once a Close frame was read (later bytes are ignored)."""
        return self._closed

    def feed(self, data: bytes | bytearray | memoryview) -> list[Event]:
        """Add received bytes; return the events they complete. Raises `WebSocketError`."""
        if self._closed:
            return []
        buf = self._buf
        buf += data
        events: list[Event] = []
        pos = 0
        n = len(buf)
        try:
            while True:
                hdr = self._hdr
                if hdr is None:
                    hdr = self._header(buf, pos, n)
                    if hdr is None:
                        break
                    self._hdr = hdr
                opcode, fin, rsv1, hlen, length = hdr
                end = pos + hlen + length
                if end > n:
                    break
                payload = unmask(buf[pos + hlen:end], bytes(buf[pos + hlen - 4:pos + hlen]))
                pos = end
                self._hdr = None
                event = self._frame(opcode, fin, rsv1, payload)
                if event is not None:
                    events.append(event)
                    if type(event) is Close:
                        self._closed = True
                        buf.clear()
                        pos = 0
                        break
        finally:
            if pos:
                del buf[:pos]
        return events

    def _header(self, buf: bytearray, pos: int, n: int) -> tuple[int, bool, bool, int, int] | None:
        avail = n - pos
        if avail < 2:
            return None
        b0 = buf[pos]
        b1 = buf[pos + 1]
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        rsv1 = bool(b0 & 0x40)
        if b0 & 0x30:
            raise _fail(1002, "RSV2/RSV3 set, but no extension that defines them was negotiated")
        if opcode not in _KNOWN_OPS:
            raise _fail(1002, f"unknown opcode {opcode:#x}")
        if opcode >= OP_CLOSE:
            if not fin:
                raise _fail(1002, "fragmented control frame")
            if (b1 & 0x7F) > 125:
                raise _fail(1002, "control frame payload over 125 bytes")
            if rsv1:
                raise _fail(1002, "RSV1 set on a control frame")
        elif opcode == OP_CONT:
            if not self._op:
                raise _fail(1002, "continuation frame without a message in progress")
            if rsv1:
                raise _fail(1002, "RSV1 set on a continuation frame")
        else:
            if self._op:
                raise _fail(1002, "new data frame inside a fragmented message")
            if rsv1 and self._inflater is None:
                raise _fail(1002, "RSV1 set but permessage-deflate was not negotiated")
        if not b1 & 0x80:
            raise _fail(1002, "unmasked client frame (RFC 6455 §5.1: clients must mask)")
        length = b1 & 0x7F
        if length < 126:
            hlen = 6
        elif length == 126:
            if avail < 4:
                return None
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            if length < 126:
                raise _fail(1002, "non-minimal 16-bit payload length")
            hlen = 8
        else:
            if avail < 10:
                return None
            length = int.from_bytes(buf[pos + 2:pos + 10], "big")
            if length >> 63:
                raise _fail(1002, "64-bit payload length with the most significant bit set")
            if length < 65536:
                raise _fail(1002, "non-minimal 64-bit payload length")
            hlen = 14
        if length > self._max_frame:
            raise _fail(1009, f"frame of {length} bytes is over the {self._max_frame}-byte limit")
        if opcode < OP_CLOSE and not (rsv1 or self._compressed) and self._size + length > self._max_message:
            raise _fail(1009, f"message over the {self._max_message}-byte limit")
        if avail < hlen:
            return None
        return opcode, fin, rsv1, hlen, length

    def _frame(self, opcode: int, fin: bool, rsv1: bool, payload: bytes) -> Event | None:
        if opcode >= OP_CLOSE:
            if opcode == OP_PING:
                return Ping(payload)
            if opcode == OP_PONG:
                return Pong(payload)
            return _close_event(payload)
        if opcode != OP_CONT:
            self._op = opcode
            self._compressed = rsv1
            if opcode == OP_TEXT:
                self._decoder = codecs.getincrementaldecoder("utf-8")()
        if self._compressed:
            assert self._inflater is not None
            payload = self._inflater.feed(payload, self._max_message - self._size, fin)
        self._size += len(payload)
        if self._op == OP_TEXT:
            assert self._decoder is not None
            try:
                self._texts.append(self._decoder.decode(payload, fin))
            except UnicodeDecodeError as exc:
                raise _fail(1007, f"invalid UTF-8 in a text message: {exc.reason}") from None
        else:
            self._parts.append(payload)
        if not fin:
            return None
        if self._op == OP_TEXT:
            message = Message(text="".join(self._texts))
            self._texts = []
        else:
            message = Message(data=b"".join(self._parts))
            self._parts = []
        self._op = 0
        self._compressed = False
        self._size = 0
        self._decoder = None
        return message


def _close_event(payload: bytes) -> Close:
    if not payload:
        return Close()
    if len(payload) == 1:
        raise _fail(1002, "close frame with a 1-byte payload")
    code = (payload[0] << 8) | payload[1]
    if not _close_code_ok(code):
        raise _fail(1002, f"close code {code} is not allowed on the wire")
    try:
        reason = payload[2:].decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(1007, "close reason is not valid UTF-8") from None
    return Close(code, reason)


# -- handshake -------------------------------------------------------------------------------------
def accept_key(key: bytes) -> str:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (RFC 6455 §4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest()).decode("ascii")


@dataclass(frozen=True, slots=True)
class Accept:
    """The upgrade is valid: `response` is the 101 to send; then the connection speaks WebSocket."""

    accept_key: str
    subprotocol: str | None = None
    deflate_params: DeflateParams | None = None
    headers: tuple[tuple[bytes, bytes], ...] = field(default=())

    def response(self) -> bytes:
        lines = [
            b"HTTP/1.1 101 Switching Protocols",
            b"Upgrade: websocket",
            b"Connection: Upgrade",
            b"Sec-WebSocket-Accept: " + self.accept_key.encode("ascii"),
        ]
        if self.subprotocol is not None:
            lines.append(b"Sec-WebSocket-Protocol: " + self.subprotocol.encode("ascii"))
        if self.deflate_params is not None:
            lines.append(b"Sec-WebSocket-Extensions: " + self.deflate_params.header_value())
        lines.extend(name + b": " + value for name, value in self.headers)
        return b"\r\n".join(lines) + b"\r\n\r\n"


@dataclass(frozen=True, slots=True)
class Reject:
    """The upgrade is refused: answer ``status`` (with ``headers``) and a text body of ``reason``.
    The response is a plain HTTP one and the connection stays HTTP (keep-alive)."""

    status: int
    reason: str
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def response(self) -> bytes:
        body = self.reason.encode("utf-8") + b"\n"
        head = [f"HTTP/1.1 {self.status} {reason_phrase(self.status)}".encode("ascii")]
        head.extend(name + b": " + value for name, value in self.headers)
        head.append(b"Content-Type: text/plain; charset=utf-8")
        head.append(b"Content-Length: %d" % len(body))
        return b"\r\n".join(head) + b"\r\n\r\n" + body


def _tokens(values: list[bytes]) -> list[bytes] | None:
    """The comma-separated tokens of a header's lines, lower-cased; ``None`` if one is not a token."""
    out: list[bytes] = []
    for value in values:
        for item in value.split(b","):
            item = item.strip(b" \t")
            if not item:
                continue
            if not is_token(item):
                return None
            out.append(item.lower())
    return out


def check_upgrade(req: Request, *, subprotocols: Sequence[str] = (), origins: Collection[str] | None = None,
                  deflate: DeflateOptions | None = None) -> Accept | Reject:
    """Validate a WebSocket opening handshake (RFC 6455 §4.2.1) and choose its parameters.

    ``subprotocols`` lists the app's subprotocols by preference: the first one the client also
    offers is chosen. ``origins``, when given, is the set of allowed ``Origin`` values (a request
    without ``Origin`` is then refused too). ``deflate`` enables permessage-deflate negotiation.
    """
    if req.method != b"GET":
        return Reject(400, f"a WebSocket upgrade must be a GET, not {req.method.decode('latin-1')}")
    if req.minor != 1:
        return Reject(400, "a WebSocket upgrade needs HTTP/1.1")
    upgrade = _tokens(req.header_values(b"upgrade"))
    if not upgrade or b"websocket" not in upgrade:
        return Reject(400, "missing 'Upgrade: websocket' header")
    connection = _tokens(req.header_values(b"connection"))
    if not connection or b"upgrade" not in connection:
        return Reject(400, "missing 'Connection: Upgrade' header")
    keys = req.header_values(b"sec-websocket-key")
    if len(keys) != 1:
        return Reject(400, "need exactly one Sec-WebSocket-Key header")
    try:
        raw_key = base64.b64decode(keys[0], validate=True)
    except (binascii.Error, ValueError):
        raw_key = b""
    if len(raw_key) != 16:
        return Reject(400, "Sec-WebSocket-Key must be 16 random bytes in base64")
    versions = req.header_values(b"sec-websocket-version")
    if not versions:
        return Reject(400, "missing Sec-WebSocket-Version header")
    if versions != [b"13"]:
        return Reject(426, "unsupported WebSocket version: this server speaks version 13",
                      ((b"Sec-WebSocket-Version", b"13"),))
    if origins is not None:
        origin = req.header(b"origin")
        allowed = {o.lower() for o in origins}
        if origin is None or origin.decode("latin-1").lower() not in allowed:
            return Reject(403, "Origin not allowed")
    chosen: str | None = None
    offered = _tokens(req.header_values(b"sec-websocket-protocol"))
    if offered is None:
        return Reject(400, "malformed Sec-WebSocket-Protocol header")
    if subprotocols and offered:
        # tokens were lower-cased for comparison; subprotocol names are case-sensitive (§4.1), so
        # compare against the raw values again
        raw = {item.strip(b" \t").decode("ascii") for v in req.header_values(b"sec-websocket-protocol")
               for item in v.split(b",")}
        chosen = next((p for p in subprotocols if p in raw), None)
    params = negotiate(req.header_values(b"sec-websocket-extensions"), deflate)
    return Accept(accept_key(keys[0]), chosen, params)
