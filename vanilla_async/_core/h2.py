"""HTTP/2 (RFC 9113): the same handlers, many streams on one connection.

Theory of operation
-------------------
`H2Protocol` is a `protocol.Protocol`. Today it starts when the first bytes of a cleartext
connection are the HTTP/2 client preface (h2c with prior knowledge: `http1.Http1` hands the
connection over on the error path, where the framer rejects ``PRI * HTTP/2.0``); with TLS, ALPN
``h2`` picks it at accept instead (``H2Protocol()`` as the connection's first protocol).

**Frames** are the ``h2`` library's business (sans-I/O: bytes in, events out, bytes to send): the
preface, SETTINGS, HPACK, stream states, flow-control accounting, CONTINUATION assembly. Its own
header validation is switched off: RFC 9113 §8.1.1 makes a malformed request a *stream* error, which
`_check_fields` enforces (h2 would end the whole connection), and the rules on field syntax are the
framer's (one source of truth, below).

**One source of truth for HTTP semantics.** A handler sees the same `Request` over HTTP/2 as over
HTTP/1.1, because it *is* one: per stream, the decoded fields are written out as an HTTP/1.1 head
(``:method :path`` → the request line, ``:authority`` → Host, cookies joined with ``"; "``, the rest
as fields, ``Content-Length`` set from the body actually received) followed by the body, and framed
by `framer.frame` — which validates the field syntax and enforces the size limits exactly as for
HTTP/1.1 (an error it raises is answered on that stream with its status). Going out, the handler
appends HTTP/1.1 to the stream's own ``out`` as always; `ResponseParser` reads it incrementally and
strictly (status line, fields, then a body by Content-Length, chunked, or until the handler ends)
and turns it into a HEADERS frame and body bytes for DATA frames. Connection-specific fields
(``Connection`` and what it names, ``Keep-Alive``, ``Proxy-Connection``, ``Transfer-Encoding``,
``Upgrade``) are dropped (§8.2.2). A response head is parsed once and remembered (the way
`headcache` remembers request heads): a repeated head costs one dict lookup.

**Streams.** Each request is a `Stream`. A sync handler runs to completion; a generator handler
becomes a `StreamTask` (a `ConnTask` per stream) parked on the reactor — one slow stream never
blocks another. At each yield (``parked``) what it appended is converted and sent. A returned
`FileBody` is read (``pread``) into DATA frames as the windows allow (``sendfile`` cannot frame).
HEAD and 204/304 responses carry no DATA whatever the handler wrote.

**Sending and flow control.** Streams with something to send are kept in ``ready`` (insertion
order) and served round-robin, at most `_QUANTUM` bytes per stream per pass, so one large
download never starves small responses of the connection window or the socket; ``conn.out`` is
filled only up to ``output_high_water``, the rest waits for ``output_drained``. A stream whose
window (its own or the connection's) is closed leaves ``ready`` for ``blocked`` until a
WINDOW_UPDATE; if none comes within ``write_timeout`` it is reset (a zero-window reader cannot pin
a stream forever). Backpressure: a stream's generator is *held* (``reactor.hold``) while its
unsent body exceeds ``output_high_water`` or the socket is backed up, and released once both are
below half — the same rule as HTTP/1.1, per stream.

**Limits and attacks.** SETTINGS advertise ``Limits.h2_*`` (concurrent streams, header list size,
HPACK table size, windows). Client RST_STREAMs and SETTINGS/PING frames are counted per second:
beyond ``h2_max_resets`` / ``h2_max_control_frames`` the connection gets GOAWAY
ENHANCE_YOUR_CALM and closes (rapid reset, CVE-2023-44487; ping/settings floods). Requests are
dispatched after the whole chunk's frames are processed, so a HEADERS+RST_STREAM pair in one read
never runs the handler. CONTINUATION floods are bounded by h2 (64 frames) and the header list size.
Protocol violations are connection errors (GOAWAY with h2's error code), malformed requests are
stream errors (RST_STREAM PROTOCOL_ERROR), and uploads beyond ``max_body_bytes`` get 413.

**Deadlines and shutdown.** Idle (no stream): ``idle_timeout``, then GOAWAY and close. A request
body not complete within ``read_timeout`` gets 408 on its stream. A generator past its deadline
(``req.timeout`` or ``Limits.request_timeout``) is closed and answered 504 on its stream (reset if
its head already left). Graceful shutdown sends GOAWAY (NO_ERROR, the last stream accepted) and lets
open streams finish; ``interrupt`` throws `ShuttingDown` into the generators (a last SSE event still
goes out), resets what is unfinished, says GOAWAY and closes.
"""

from __future__ import annotations

import logging
import math
import os
import re
from functools import partial
from typing import TYPE_CHECKING, Any

from h2.config import H2Configuration
from h2.connection import ConnectionState, H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated, DataReceived, PingReceived, RemoteSettingsChanged, RequestReceived, StreamEnded,
    StreamReset, TrailersReceived, WindowUpdated,
)
from h2.exceptions import ProtocolError as H2ProtocolError
from h2.exceptions import StreamClosedError
from h2.settings import SettingCodes, Settings
from hyperframe.frame import GoAwayFrame

from ..errors import ProtocolError, ShuttingDown
from ..grammar import TCHAR
from .connection import OPEN as CONN_OPEN
from .connection import ConnTask, Connection
from .headcache import frame_cached as frame
from .handler import FileBody, Takeover
from .http1 import bad_result, is_generator
from .protocol import Protocol
from .request import Request
from .response import error_response

if TYPE_CHECKING:
    from reactor import Timer

log = logging.getLogger("vanilla_async")

__all__ = ("PREFACE", "H2Protocol", "ResponseError", "ResponseParser", "Stream", "StreamTask", "h1_head")

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_INF = math.inf
_QUANTUM = 64 * 1024  # body bytes one stream may send per round-robin pass
_FILE_READ = 64 * 1024
_PUMP_TURNS = 8  # socket-fulls of output one pump sends before other connections get a turn
_MAX_RESPONSE_HEAD = 64 * 1024
_HEAD_CACHE_SIZE = 512
# RFC 9113 §8.2.2: never forwarded; "te" is allowed with the value "trailers" only.
_CONNECTION_SPECIFIC = frozenset((b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"))
_NO_BODY_STATUS = frozenset((204, 304))
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([1-9][0-9][0-9])(?: [\t\x20-\x7e\x80-\xff]*)?")
_FIELD = re.compile(rb"([" + TCHAR + rb"]+):[ \t]*([\t\x20-\x7e\x80-\xff]*?)[ \t]*")
_LOWER_NAME = re.compile(rb"[!#$%&'*+.^_`|~0-9a-z-]+")
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$")
_CHUNK_SIZE = re.compile(rb"([0-9a-fA-F]{1,16})(?:[ \t]*;[^\r\n]*)?")
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":path", b":authority"))


class ResponseError(ProtocolError):
    """The handler's HTTP/1.1 output cannot be a response (a bug in the handler: the stream is reset)."""

    def __init__(self, reason: str) -> None:
        super().__init__(500, reason)


# -- HTTP/1.1 in: an h2 request as the HTTP/1.1 head our framer understands -----------------------------
def h1_head(fields: list[tuple[bytes, bytes]], body_length: int | None) -> bytes:
    """The HTTP/1.1 request head for an h2 request's fields (validated by `_check_fields`)."""
    method = path = authority = b""
    lines = []
    cookies = []
    host = None
    for name, value in fields:
        if name[0] == 58:  # ":"
            if name == b":method":
                method = value
            elif name == b":path":
                path = value
            elif name == b":authority":
                authority = value
        elif name == b"cookie":
            cookies.append(value)
        elif name == b"content-length":
            continue  # replaced by the length actually received (h2 frames the body)
        elif name == b"host":
            host = value
        else:
            lines.append(b"%s: %s\r\n" % (name, value))
    head = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method, path, authority or host or b"")]
    head += lines
    if cookies:
        head.append(b"cookie: %s\r\n" % b"; ".join(cookies))
    if body_length is not None:
        head.append(b"content-length: %d\r\n" % body_length)
    head.append(b"\r\n")
    return b"".join(head)


def _check_fields(fields: list[tuple[bytes, bytes]]) -> str | None:
    """RFC 9113 §8.2-8.3 rules the HTTP/1.1 framer cannot see. None when valid, else what is wrong."""
    seen: set[bytes] = set()
    regular = False
    for name, value in fields:
        if name[:1] == b":":
            if regular:
                return f"pseudo-header {name!r} after a regular field"
            if name not in _REQUEST_PSEUDO:
                return f"unknown or response pseudo-header {name!r}"
            if name in seen:
                return f"pseudo-header {name!r} repeated"
            seen.add(name)
            if not value:
                return f"empty {name!r}"
        else:
            regular = True
            if _LOWER_NAME.fullmatch(name) is None:
                return f"field name {name!r} is not a lowercase token"
            if name in _CONNECTION_SPECIFIC:
                return f"connection-specific field {name!r}"
            if name == b"te" and value.strip().lower() != b"trailers":
                return "te other than 'trailers'"
        if _BAD_VALUE.search(value) is not None:
            return f"field {name!r} has a control character or surrounding whitespace in its value"
    if b":method" not in seen or b":scheme" not in seen or b":path" not in seen:
        return "a request needs :method, :scheme and :path"
    return None


# -- HTTP/1.1 out: the handler's output as HEADERS and body bytes ----------------------------------------
class _Head:
    """A parsed response head (remembered: see the module docstring)."""

    __slots__ = ("status", "fields", "length", "chunked")

    def __init__(self, status: int, fields: list[tuple[bytes, bytes]], length: int, chunked: bool) -> None:
        self.status = status
        self.fields = fields  # h2 fields, :status first, lower-case names
        self.length = length  # Content-Length, or -1
        self.chunked = chunked


_heads: dict[bytes, _Head] = {}


def _parse_head(raw: bytes) -> _Head:
    head = _heads.get(raw)
    if head is not None:
        return head
    lines = raw.split(b"\r\n")
    m = _STATUS_LINE.fullmatch(lines[0])
    if m is None:
        raise ResponseError(f"the handler wrote {lines[0][:80]!r} where a status line (HTTP/1.1 200 OK) belongs")
    status = int(m.group(1))
    fields: list[tuple[bytes, bytes]] = [(b":status", m.group(1))]
    drop = set(_CONNECTION_SPECIFIC)
    length = -1
    chunked = False
    parsed = []
    for line in lines[1:]:
        f = _FIELD.fullmatch(line)
        if f is None:
            raise ResponseError(f"the handler wrote the malformed field line {line[:80]!r}")
        name = f.group(1).lower()
        value = f.group(2)
        if name == b"connection":
            drop.update(v.strip().lower() for v in value.split(b","))
        elif name == b"transfer-encoding":
            if value.strip().lower() != b"chunked":
                raise ResponseError(f"the handler used Transfer-Encoding {value!r}; only chunked is understood")
            chunked = True
        elif name == b"content-length":
            if not value.isdigit() or (length >= 0 and int(value) != length):
                raise ResponseError(f"the handler wrote an invalid or conflicting Content-Length {value!r}")
            length = int(value)
        parsed.append((name, value))
    if chunked and length >= 0:
        raise ResponseError("the handler wrote both Content-Length and Transfer-Encoding: chunked")
    fields += [(n, v) for n, v in parsed if n not in drop]
    head = _Head(status, fields, length, chunked)
    if len(_heads) >= _HEAD_CACHE_SIZE:
        _heads.clear()
    _heads[raw] = head
    return head


# ResponseParser states
_HEAD_ST, _LENGTH, _SIZE, _DATA, _CRLF, _TRAILERS, _UNTIL_END, _DONE = range(8)


class ResponseParser:
    """Reads a handler's HTTP/1.1 output, strictly and incrementally (see the module docstring).

    `feed` consumes what it can from ``out`` and returns heads (the final one last; 1xx before it)
    while appending body bytes to ``body``; ``done`` says the response is complete.
    """

    __slots__ = ("state", "left", "no_body", "head")

    def __init__(self, no_body: bool) -> None:
        self.state = _HEAD_ST
        self.left = 0
        self.no_body = no_body  # HEAD request: whatever body follows is dropped
        self.head: _Head | None = None

    @property
    def done(self) -> bool:
        return self.state == _DONE

    def feed(self, out: bytearray, body: bytearray, final: bool) -> list[_Head]:
        heads: list[_Head] = []
        while out:
            state = self.state
            if state == _HEAD_ST:
                end = out.find(b"\r\n\r\n")
                if end < 0:
                    if len(out) > _MAX_RESPONSE_HEAD:
                        raise ResponseError(f"the response head exceeds {_MAX_RESPONSE_HEAD} bytes")
                    break
                head = _parse_head(bytes(out[:end]))
                del out[:end + 4]
                heads.append(head)
                status = head.status
                if status < 200:
                    if status == 101:
                        raise ResponseError("101 Switching Protocols does not exist in HTTP/2 (RFC 9113 §8.6)")
                    continue
                self.head = head
                if self.no_body or status in _NO_BODY_STATUS:
                    self.state = _DONE
                    self.no_body = True
                elif head.chunked:
                    self.state = _SIZE
                elif head.length >= 0:
                    self.left = head.length
                    self.state = _LENGTH if head.length else _DONE
                else:
                    self.state = _UNTIL_END
            elif state == _LENGTH or state == _DATA:
                n = min(self.left, len(out))
                body += out[:n]
                del out[:n]
                self.left -= n
                if not self.left:
                    self.state = _DONE if state == _LENGTH else _CRLF
            elif state == _SIZE:
                end = out.find(b"\r\n")
                if end < 0:
                    if len(out) > 1024:
                        raise ResponseError("a chunk-size line longer than 1024 bytes")
                    break
                m = _CHUNK_SIZE.fullmatch(out, 0, end)
                if m is None:
                    raise ResponseError(f"the handler wrote {bytes(out[:min(end, 40)])!r} where a chunk size belongs")
                self.left = int(m.group(1), 16)
                del out[:end + 2]
                self.state = _DATA if self.left else _TRAILERS
            elif state == _CRLF:
                if len(out) < 2:
                    break
                if out[:2] != b"\r\n":
                    raise ResponseError("chunk data longer than its chunk size (no CRLF after it)")
                del out[:2]
                self.state = _SIZE
            elif state == _TRAILERS:  # (trailers are dropped: HTTP/1.1 handlers rarely send them)
                if out[:2] == b"\r\n":
                    del out[:2]
                    self.state = _DONE
                    continue
                end = out.find(b"\r\n\r\n")
                if end < 0:
                    if len(out) > _MAX_RESPONSE_HEAD:
                        raise ResponseError("the trailer section is too large")
                    break
                del out[:end + 4]
                self.state = _DONE
            elif state == _UNTIL_END:
                body += out
                out.clear()
            else:  # _DONE
                if self.no_body:
                    out.clear()  # HEAD / 204 / 304: the body the handler wrote anyway is dropped
                    break
                raise ResponseError(f"the handler wrote {len(out)} bytes after the end of its response")
        if final and self.state != _DONE:
            if self.state == _UNTIL_END:
                self.state = _DONE
            elif self.state == _HEAD_ST:
                raise ResponseError("the handler ended without writing a complete response head")
            else:
                raise ResponseError("the handler ended before its response body was complete")
        return heads


# -- streams ----------------------------------------------------------------------------------------------
class Stream:
    """One request/response exchange on an HTTP/2 connection."""

    __slots__ = (
        "sid", "fields", "body", "ended", "since", "req", "out", "pending", "parser", "task", "timer", "stall",
        "file", "headers_sent", "finished", "closed", "held",
    )

    def __init__(self, sid: int, fields: list[tuple[bytes, bytes]], since: float) -> None:
        self.sid = sid
        self.fields = fields
        self.body: bytearray | None = None  # request body received so far
        self.ended = False  # the request is complete (END_STREAM)
        self.since = since
        self.req: Request | None = None
        self.out = bytearray()  # what the handler appends (HTTP/1.1)
        self.pending = bytearray()  # response body bytes not yet framed as DATA
        self.parser: ResponseParser | None = None
        self.task: StreamTask | None = None
        self.timer: Timer | None = None  # request deadline while a generator runs
        self.stall: Timer | None = None  # zero-window deadline
        self.file: FileBody | None = None  # a FileBody still being read (fd, offset, length left)
        self.headers_sent = False
        self.finished = False  # the handler is done: when pending is sent, END_STREAM
        self.closed = False
        self.held = False

    def release_resources(self) -> None:
        for timer in (self.timer, self.stall):
            if timer is not None:
                timer.cancel()
        self.timer = self.stall = None
        if self.file is not None:
            fd, self.file = self.file.fd, None
            os.close(fd)


class StreamTask(ConnTask):
    """A generator handler answering one stream."""

    __slots__ = ("proto", "stream")

    def __init__(self, gen: Any, proto: H2Protocol, stream: Stream) -> None:
        super().__init__(gen, proto.conn)
        self.proto = proto
        self.stream = stream

    def parked(self) -> None:
        self.proto.stream_output(self.stream, False)

    def finished(self, value: Any) -> None:
        self.proto.stream_returned(self.stream, value)

    def failed(self, exc: BaseException) -> None:
        self.proto.stream_failed(self.stream, exc)


class H2Protocol(Protocol):
    """HTTP/2 server side of one connection (see the module docstring)."""

    __slots__ = (
        "worker", "reactor", "limits", "handler", "state", "h2", "streams", "ready", "blocked", "to_dispatch",
        "last_sid", "going_away", "window_start", "resets", "control", "high_water", "in_pump",
    )

    def connection_made(self, conn: Connection) -> None:
        self.conn = conn
        worker = conn.worker
        self.worker = worker
        self.reactor = worker.reactor
        limits = self.limits = worker.limits
        self.handler = worker.handler
        self.state = worker.state
        self.high_water = limits.output_high_water
        config = H2Configuration(
            client_side=False, header_encoding=None, validate_inbound_headers=False,
            normalize_inbound_headers=False, validate_outbound_headers=False, normalize_outbound_headers=False,
        )
        h2 = self.h2 = H2Connection(config=config)
        h2.local_settings = Settings(client=False, initial_values={
            SettingCodes.MAX_CONCURRENT_STREAMS: limits.h2_max_concurrent_streams,
            SettingCodes.MAX_HEADER_LIST_SIZE: limits.h2_max_header_list_size,
            SettingCodes.HEADER_TABLE_SIZE: limits.h2_header_table_size,
            SettingCodes.INITIAL_WINDOW_SIZE: limits.h2_stream_window,
            SettingCodes.ENABLE_PUSH: 0,
        })
        h2.decoder.max_header_list_size = limits.h2_max_header_list_size
        h2.decoder.max_allowed_table_size = limits.h2_header_table_size
        h2.initiate_connection()
        extra = limits.h2_connection_window - 65535
        if extra > 0:
            h2.increment_flow_control_window(extra)
        self.streams: dict[int, Stream] = {}
        self.ready: dict[int, Stream] = {}  # streams with something to send (round-robin order)
        self.blocked: dict[int, Stream] = {}  # streams waiting for a WINDOW_UPDATE
        self.to_dispatch: list[Stream] = []
        self.last_sid = 0
        self.going_away = False
        self.window_start = self.reactor.now
        self.resets = 0
        self.control = 0
        self.in_pump = False
        conn.produce(None)  # backpressure is per stream (see the module docstring)
        conn.deadline = self.reactor.now + limits.idle_timeout
        self._send()

    # -- input --------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        h2 = self.h2
        try:
            events = h2.receive_data(data)
        except H2ProtocolError as exc:
            log.info("HTTP/2 protocol error on fd %d: %s; GOAWAY", self.conn.fd, exc)
            self._abort()
            return
        now = self.reactor.now
        if now - self.window_start >= 1.0:
            self.window_start = now
            self.resets = self.control = 0
        streams = self.streams
        for event in events:
            cls = type(event)
            if type(event) is RequestReceived:
                self._request(event, now)
            elif type(event) is DataReceived:
                self._data(event)
            elif type(event) is StreamEnded:
                stream = streams.get(event.stream_id)
                if stream is not None and not stream.ended:
                    stream.ended = True
                    self.to_dispatch.append(stream)
            elif type(event) is WindowUpdated:
                self._window_opened(event.stream_id)
            elif type(event) is StreamReset:
                self.resets += 1
                stream = streams.get(event.stream_id)
                if stream is not None:
                    self._close_stream(stream)
            elif cls is PingReceived or type(event) is RemoteSettingsChanged:
                self.control += 1
                if type(event) is RemoteSettingsChanged and SettingCodes.INITIAL_WINDOW_SIZE in event.changed_settings:
                    self._window_opened(0)
            elif type(event) is ConnectionTerminated:
                log.debug("client on fd %d sent GOAWAY (%s)", self.conn.fd, event.error_code)
                self.going_away = True
            elif type(event) is TrailersReceived:
                pass  # request trailers are not part of the Request view (as for HTTP/1.1 chunked: kept apart)
        limits = self.limits
        if self.resets > limits.h2_max_resets or self.control > limits.h2_max_control_frames:
            log.warning("fd %d: %d stream resets / %d control frames in a second exceed the limits "
                        "(rapid reset or flood); GOAWAY ENHANCE_YOUR_CALM", self.conn.fd, self.resets, self.control)
            self._abort(ErrorCodes.ENHANCE_YOUR_CALM)
            return
        if self.to_dispatch:
            dispatch, self.to_dispatch = self.to_dispatch, []
            for stream in dispatch:
                if not stream.closed and self.conn.phase is CONN_OPEN:
                    self._dispatch(stream)
        if self.conn.closed:
            return
        if self.going_away and not self.streams:
            self._send()
            self.conn.finish()
            return
        self._pump()
        if len(self.conn.out) > limits.max_output_buffer:
            log.info("fd %d: the client does not read what it asks for (%d bytes unsent); closing",
                     self.conn.fd, len(self.conn.out))
            self.conn.close()
            return
        self._rearm()

    def _request(self, event: RequestReceived, now: float) -> None:
        sid = event.stream_id
        self.last_sid = max(self.last_sid, sid)
        fields = list(event.headers)
        if self.going_away:
            self._reset(sid, ErrorCodes.REFUSED_STREAM)
            return
        problem = _check_fields(fields)
        if problem is not None:
            log.info("fd %d stream %d: malformed request (%s); RST_STREAM PROTOCOL_ERROR", self.conn.fd, sid, problem)
            self._reset(sid, ErrorCodes.PROTOCOL_ERROR)
            return
        self.streams[sid] = Stream(sid, fields, now)

    def _data(self, event: DataReceived) -> None:
        sid = event.stream_id
        stream = self.streams.get(sid)
        if event.flow_controlled_length:
            try:
                self.h2.acknowledge_received_data(event.flow_controlled_length, sid)
            except StreamClosedError:
                pass
        if stream is None or stream.req is not None or stream.closed:
            return
        if stream.body is None:
            stream.body = bytearray()
        stream.body += event.data
        if len(stream.body) > self.limits.max_body_bytes:
            stream.ended = True
            stream.body = None
            self._answer_error(stream, ProtocolError(413, "request body too large"))
            if sid not in self.streams:  # answered in full: tell the client to stop uploading (RFC 9113 §8.1)
                self._reset(sid, ErrorCodes.NO_ERROR)

    # -- dispatching ----------------------------------------------------------------------------------
    def _dispatch(self, stream: Stream) -> None:
        body = stream.body
        stream.body = None
        blen = len(body) if body is not None else None
        if blen is None and any(n == b"content-length" for n, _ in stream.fields):
            blen = 0
        head = h1_head(stream.fields, blen)
        raw = head + body if body else head
        stream.fields = []
        try:
            req = frame(raw, 0, self.limits)
        except ProtocolError as error:
            log.info("fd %d stream %d: bad request: %s", self.conn.fd, stream.sid, error)
            self._answer_error(stream, error)
            return
        if req.__class__ is not Request:  # (cannot happen: the request is whole)
            self._answer_error(stream, ProtocolError(400, "incomplete request"))
            return
        req.fd = self.conn.fd
        req.state = self.state
        stream.req = req
        stream.parser = ResponseParser(req.method == b"HEAD")
        try:
            result = self.handler(req, stream.out)
        except Exception as exc:
            self.stream_failed(stream, exc)
            return
        if result is None:
            self.stream_output(stream, True)
        elif is_generator(result):
            task = StreamTask(result, self, stream)
            stream.task = task
            self.reactor.start(task)
            if not task.done and stream.task is task:
                timeout = req.timeout if req.timeout is not None else self.limits.request_timeout
                if timeout is not None and timeout != math.inf:
                    stream.timer = self.reactor.call_later(timeout, partial(self._expired, stream))
        else:
            self.stream_returned(stream, result)

    def stream_returned(self, stream: Stream, value: Any) -> None:
        """The handler (sync or generator) returned ``value``: its response is complete."""
        stream.task = None
        if stream.timer is not None:
            stream.timer.cancel()
            stream.timer = None
        if stream.closed:
            if value.__class__ is FileBody:
                os.close(value.fd)
            return
        if value is None:
            self.stream_output(stream, True)
        elif value.__class__ is FileBody:
            assert stream.parser is not None
            if stream.parser.no_body or value.length <= 0:
                os.close(value.fd)
                self.stream_output(stream, True)
            else:
                stream.file = value
                self.stream_output(stream, False)
                self._schedule(stream)
        elif value.__class__ is Takeover:
            self.stream_failed(stream, ProtocolError(500, "a protocol switch (101, WebSocket) is not possible over "
                                                          "HTTP/2; this server does not implement RFC 8441"))
        else:
            self.stream_failed(stream, bad_result(self.handler, value))

    def stream_failed(self, stream: Stream, exc: BaseException) -> None:
        stream.task = None
        if stream.closed:
            return
        if isinstance(exc, ShuttingDown):  # the grace period is over and it did not catch it
            self._reset(stream.sid, ErrorCodes.CANCEL)
            self._close_stream(stream)
            self._send()
            return
        log.error("handler failed on %r (fd %d, HTTP/2 stream %d)", stream.req, self.conn.fd, stream.sid,
                  exc_info=(type(exc), exc, exc.__traceback__))
        if stream.headers_sent:
            self._reset(stream.sid, ErrorCodes.INTERNAL_ERROR)
            self._close_stream(stream)
            self._send()
            return
        self._answer_error(stream, ProtocolError(500, "internal server error"))

    def _answer_error(self, stream: Stream, error: ProtocolError) -> None:
        """Answer ``error`` on the stream (nothing of its response left yet)."""
        if stream.task is not None:
            task, stream.task = stream.task, None
            self.reactor.cancel(task)
        stream.out.clear()
        stream.pending.clear()
        stream.parser = ResponseParser(stream.parser.no_body if stream.parser is not None else False)
        stream.out += error_response(error.status, error.reason)
        self.stream_output(stream, True)

    def _expired(self, stream: Stream) -> None:
        stream.timer = None
        task = stream.task
        if task is None or stream.closed:
            return
        log.info("request %r on fd %d (HTTP/2 stream %d) exceeded its deadline; closing its generator",
                 stream.req, self.conn.fd, stream.sid)
        stream.task = None
        self.reactor.cancel(task)
        if stream.headers_sent:
            self._reset(stream.sid, ErrorCodes.CANCEL)
            self._close_stream(stream)
            self._send()
        else:
            self._answer_error(stream, ProtocolError(504, "the handler did not answer in time"))
        self._rearm()

    # -- output -----------------------------------------------------------------------------------------
    def stream_output(self, stream: Stream, final: bool) -> None:
        """The handler appended to ``stream.out`` (``final``: and is done): parse it, send what we can."""
        if stream.closed:
            stream.out.clear()
            return
        parser = stream.parser
        assert parser is not None
        try:
            heads = parser.feed(stream.out, stream.pending, final and stream.file is None)
        except ResponseError as error:
            self._bad_response(stream, error)
            return
        h2 = self.h2
        for head in heads:
            end = head is parser.head and parser.done and not stream.pending and stream.file is None
            h2.send_headers(stream.sid, head.fields, end_stream=end)
            if head is parser.head:
                stream.headers_sent = True
                if end:
                    stream.finished = True
                    self._close_stream(stream)
                    self._send()
                    return
        if final or parser.done:
            stream.finished = True
        if stream.pending or stream.finished:
            self._schedule(stream)
        self._pump()
        task = stream.task
        if task is not None and not stream.closed and (
            len(stream.pending) > self.high_water or len(self.conn.out) > self.high_water
        ):
            stream.held = True
            self.reactor.hold(task)

    def _bad_response(self, stream: Stream, error: ResponseError) -> None:
        log.error("fd %d HTTP/2 stream %d: the handler's response cannot be sent: %s", self.conn.fd, stream.sid,
                  error.reason)
        if stream.task is not None:
            task, stream.task = stream.task, None
            self.reactor.cancel(task)
        if stream.headers_sent:
            self._reset(stream.sid, ErrorCodes.INTERNAL_ERROR)
            self._close_stream(stream)
            self._send()
        else:
            self._answer_error(stream, ProtocolError(500, "internal server error"))

    def _schedule(self, stream: Stream) -> None:
        if not stream.closed and stream.sid not in self.blocked:
            self.ready[stream.sid] = stream

    def _pump(self) -> None:
        """Send DATA round-robin within the windows and the socket's high-water mark."""
        if self.in_pump:
            return
        self.in_pump = True
        conn = self.conn
        try:
            h2 = self.h2
            conn_out = conn.out
            high = self.high_water
            ready = self.ready
            for _ in range(_PUMP_TURNS):
                while ready and len(conn_out) + len(h2._data_to_send) < high:
                    for stream in list(ready.values()):
                        if not self._send_some(stream, h2):
                            ready.pop(stream.sid, None)
                        if len(conn_out) + len(h2._data_to_send) >= high:
                            break
                self._send()
                if not ready or conn_out or conn.closed:
                    return  # done, or the socket is full: output_drained() resumes
            self.reactor.call_soon(self._pump_later)  # a big body: let other connections have a turn
        finally:
            self.in_pump = False

    def _pump_later(self) -> None:
        if not self.conn.closed and self.ready:
            self._pump()

    def _send_some(self, stream: Stream, h2: H2Connection) -> bool:
        """One quantum of ``stream``'s body. True: it still has something to send and can send it."""
        if stream.closed:
            return False
        sid = stream.sid
        pending = stream.pending
        if not pending and stream.file is not None:
            self._read_file(stream)
            if sid not in self.streams:  # (closed: the file was short)
                return False
        if pending:
            window = h2.local_flow_control_window(sid)
            if window <= 0:
                self.blocked[sid] = stream
                if stream.stall is None:
                    stream.stall = self.reactor.call_later(self.limits.write_timeout, partial(self._stalled, stream))
                return False
            if stream.stall is not None:
                stream.stall.cancel()
                stream.stall = None
            size = min(len(pending), window, _QUANTUM)
            frame_max = h2.max_outbound_frame_size
            last = size == len(pending) and stream.finished and stream.file is None
            view = memoryview(pending)
            sent = 0
            while sent < size:
                n = min(frame_max, size - sent)
                h2.send_data(sid, bytes(view[sent:sent + n]), end_stream=last and sent + n == size)
                sent += n
            view.release()
            del pending[:size]
            if last:
                self._close_stream(stream)
                return False
            self._maybe_release(stream)
            return bool(pending) or stream.file is not None
        if stream.finished and stream.file is None:
            h2.end_stream(sid)
            self._close_stream(stream)
            return False
        self._maybe_release(stream)
        return stream.file is not None

    def _read_file(self, stream: Stream) -> None:
        body = stream.file
        assert body is not None
        try:
            data = os.pread(body.fd, min(body.length, _FILE_READ), body.offset)
        except OSError as exc:
            data = b""
            log.warning("fd %d HTTP/2 stream %d: reading its file failed: %s", self.conn.fd, stream.sid, exc)
        if not data:
            log.warning("fd %d HTTP/2 stream %d: the file ended %d bytes before its length; resetting the stream",
                        self.conn.fd, stream.sid, body.length)
            self._reset(stream.sid, ErrorCodes.INTERNAL_ERROR)
            self._close_stream(stream)
            return
        left = body.length - len(data)
        stream.file = body._replace(offset=body.offset + len(data), length=left) if left > 0 else None
        if left <= 0:
            os.close(body.fd)
        stream.out += data
        self.stream_output_quiet(stream)

    def stream_output_quiet(self, stream: Stream) -> None:
        """File bytes through the parser (so the Content-Length the handler promised is checked)."""
        parser = stream.parser
        assert parser is not None
        try:
            parser.feed(stream.out, stream.pending, stream.file is None)
        except ResponseError as error:
            self._bad_response(stream, error)
            return
        if parser.done:
            stream.finished = True

    def _maybe_release(self, stream: Stream) -> None:
        task = stream.task
        if stream.held and task is not None and len(stream.pending) <= self.high_water // 2 and \
                len(self.conn.out) <= self.high_water // 2:
            stream.held = False
            self.reactor.call_soon(partial(self._release, stream, task))

    def _release(self, stream: Stream, task: StreamTask) -> None:
        if stream.task is task and not task.done and not stream.closed and not self.conn.closed:
            self.reactor.release(task)

    def _window_opened(self, sid: int) -> None:
        if sid == 0:
            waiting = list(self.blocked.values())
            self.blocked.clear()
        else:
            stream = self.blocked.pop(sid, None)
            waiting = [stream] if stream is not None else []
        for stream in waiting:
            self._schedule(stream)

    def _stalled(self, stream: Stream) -> None:
        stream.stall = None
        if stream.closed or stream.sid not in self.blocked:
            return
        log.info("fd %d HTTP/2 stream %d: no flow-control window for %.0fs (client not reading); resetting it",
                 self.conn.fd, stream.sid, self.limits.write_timeout)
        self._reset(stream.sid, ErrorCodes.CANCEL)
        self._close_stream(stream)
        self._send()
        self._rearm()

    def _send(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.conn.out += data
            self.conn.flush()

    def _reset(self, sid: int, code: ErrorCodes) -> None:
        try:
            self.h2.reset_stream(sid, code)
        except (H2ProtocolError, StreamClosedError):
            pass

    def _close_stream(self, stream: Stream) -> None:
        if stream.closed:
            return
        stream.closed = True
        sid = stream.sid
        self.streams.pop(sid, None)
        self.ready.pop(sid, None)
        self.blocked.pop(sid, None)
        task = stream.task
        if task is not None:
            stream.task = None
            self.reactor.cancel(task)  # its finally blocks run now
        stream.release_resources()
        stream.out.clear()
        stream.pending.clear()
        if not self.streams and self.conn.phase is CONN_OPEN:
            if self.going_away:
                self.reactor.call_soon(self._all_done)
            else:
                self.conn.deadline = self.reactor.now + self.limits.idle_timeout

    def _all_done(self) -> None:
        if not self.streams and not self.conn.closed:
            self._send()
            self.conn.finish()

    def _abort(self, code: ErrorCodes | None = None) -> None:
        """A connection error: GOAWAY (h2 prepared it, or ``code``), release every stream, close after sending."""
        if code is None and self.h2.state_machine.state is not ConnectionState.CLOSED:
            code = ErrorCodes.PROTOCOL_ERROR  # (h2 prepared no GOAWAY: an invalid preface, say)
        if code is not None:
            try:
                self.h2.close_connection(error_code=code, last_stream_id=self.last_sid)
            except H2ProtocolError:
                pass
        for stream in list(self.streams.values()):
            self._close_stream(stream)
        data = self.h2.data_to_send()
        if data:
            self.conn.out += data
        self.conn.finish(linger=True)

    def _rearm(self) -> None:
        conn = self.conn
        if conn.closed:
            return
        if not self.streams:
            conn.deadline = self.reactor.now + self.limits.idle_timeout
            return
        receiving = [s.since for s in self.streams.values() if s.req is None]
        conn.deadline = min(receiving) + self.limits.read_timeout if receiving else _INF

    # -- the connection's questions --------------------------------------------------------------------
    def output_drained(self) -> None:
        for stream in list(self.streams.values()):
            if stream.held:
                self._maybe_release(stream)
        if self.ready:
            self._pump()
        self._rearm()

    def eof_received(self) -> None:
        if self.streams:
            log.debug("HTTP/2 client on fd %d left with %d stream(s) open; cancelling them", self.conn.fd,
                      len(self.streams))
        self.conn.close()

    def timed_out(self, now: float) -> None:
        if not self.streams:
            try:
                self.h2.close_connection(error_code=ErrorCodes.NO_ERROR, last_stream_id=self.last_sid)
            except H2ProtocolError:
                pass
            self._send()
            self.conn.finish()
            return
        for stream in list(self.streams.values()):
            if stream.req is None and now - stream.since >= self.limits.read_timeout:
                log.info("fd %d HTTP/2 stream %d: request incomplete after %.1fs; answering 408", self.conn.fd,
                         stream.sid, now - stream.since)
                stream.ended = True
                stream.body = None
                stream.parser = ResponseParser(False)
                self._answer_error(stream, ProtocolError(408, "request not completed in time"))
                self._reset(stream.sid, ErrorCodes.NO_ERROR)
                self._close_stream(stream)
                self._send()
        self._rearm()

    def shutdown(self, now: float, last_call: float) -> None:
        """GOAWAY (NO_ERROR, the last stream we accepted); open streams finish; then close."""
        self.going_away = True
        # (h2's close_connection would refuse to send anything after it: a graceful GOAWAY is built by
        # hand, after what h2 has queued, and the streams it spares go on.)
        self._send()
        self.conn.out += GoAwayFrame(0, last_stream_id=self.last_sid, error_code=ErrorCodes.NO_ERROR).serialize()
        for stream in list(self.streams.values()):
            if stream.req is None and not stream.ended:  # never started: refuse it (the client may retry)
                self._reset(stream.sid, ErrorCodes.REFUSED_STREAM)
                self._close_stream(stream)
        self._send()
        if not self.streams and not self.conn.closed:
            self.conn.finish()

    def interrupt(self) -> None:
        """The grace period is over: a last word from each generator, then reset, GOAWAY, close."""
        for stream in list(self.streams.values()):
            task = stream.task
            if task is not None and not task.done:
                self.reactor.throw(task, ShuttingDown("the server is shutting down"))
        for stream in list(self.streams.values()):
            self._reset(stream.sid, ErrorCodes.CANCEL)
            self._close_stream(stream)
        if self.conn.closed:
            return
        data = self.h2.data_to_send()
        if data:
            self.conn.out += data
        self.conn.finish()
        self.conn.interrupt()

    def connection_lost(self) -> None:
        for stream in list(self.streams.values()):
            self._close_stream(stream)
        self.ready.clear()
        self.blocked.clear()
        self.to_dispatch = []
