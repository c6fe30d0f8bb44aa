"""The framer: where does the next request in a buffer end, and is it valid HTTP/1.1?

A pure function over ``bytes`` — no I/O, no state between calls — so it can be fed a buffer
split at every byte and fuzzed against h11.

Strategy
--------
``frame(buf, pos, limits)`` looks at ``buf[pos:]`` and returns one of:

* a `Request` view — a complete request starts at ``pos`` and ends at ``request.end``;
* a `Need` — not enough bytes yet. ``Need.total`` is how many bytes (from ``pos``) must be buffered
  before calling again is worthwhile (0: unknown, call again on any new data);
  ``Need.expect_continue`` is true when the head is complete, its body is not, and the client asked
  for ``Expect: 100-continue``; ``Need.progress`` is set when the head is complete and its chunked
  body is not (see *Resuming* below);

or raises `ProtocolError` with the status to answer (400, 413, 414, 431, 501, 505).

The common case is decided by a handful of C-level calls, which is what keeps the hot path near a
bare loop's: ``find(CRLFCRLF)`` for the end of the head; one compiled regex ``fullmatch`` each for
the head: request line and every field line (field-name is a token, no whitespace before
the colon, no obs-fold, no CTL/NUL in values — RFC 9112 §5, RFC 9110 §5.5); one ``lower()`` copy of
the header section, in which the few fields that decide framing (Content-Length, Transfer-Encoding,
Host, Connection, Expect) are located by ``find``. Only on the error path is the head walked line
by line, to say precisely what was wrong.

Resuming a chunked body: framed again from its start on every read, a body of many tiny chunks
would cost time quadratic in its size. So a `Need` for an incomplete chunked body carries a
`ChunkedProgress` — offsets from ``pos``: the body's start, the next chunk-size line (or the trailer
section), the bytes decoded so far, and how far an unfinished line / trailer section was already
searched. ``resume_chunked(buf, pos, progress, limits)`` takes it back and examines only what comes
after it: it answers exactly what ``frame(buf, pos, limits)`` would — the same `Need` (with the
progress to pass next time), the same `ProtocolError` — or ``None`` where `frame` returns the
`Request`, which the caller then frames once, whole. The state lives with the caller (still no
state between calls here), and ``buf`` may be a ``bytearray``, so a connection resumes on its input
buffer without copying it. Each byte is thus examined a bounded number of times (a chunk-size line
at most twice: once while its data is missing, once when it is there) plus the final framing.

Decisions (RFC 9112 unless noted):
* Leading empty lines before the request line are skipped (§2.2). Bare LF and bare CR are errors.
* HTTP/1.x with x > 1 is served as HTTP/1.1 (§2.3); any other major version is 505; a version that
  is not ``HTTP/DIGIT.DIGIT`` but names major version 1 (``HTTP/1.10``) is a malformed 400.
* Content-Length: digits only (leading zeros allowed); repeated (as lines or as a list) it must
  repeat one value, and an empty list element is invalid (§6.3). Together with Transfer-Encoding it
  is rejected, not resolved (§6.1 allows either; rejecting closes the door on CL.TE smuggling).
* Transfer-Encoding: only ``chunked``, once, as the final coding. A final coding other than chunked
  (``gzip``) or chunked applied twice is 400 — the length cannot be determined (§6.3 item 4); a
  coding before a final chunked (``gzip, chunked``) is 501, not implemented (§6.1); any
  Transfer-Encoding in an HTTP/1.0 request is 400 (§6.1).
* ``Expect: 100-continue`` is honoured in HTTP/1.1 only (RFC 9110 §10.1.1).
* Host: exactly one in HTTP/1.1, never more than one, and a valid ``uri-host [":" port]`` (§3.2).
* Chunked bodies: chunk-size is 1–16 hex digits (larger is 400: overflow), extensions are checked
  and ignored, every chunk's data must be followed by CRLF, trailers are checked and kept apart.
* Limits: request line → 414, head → 431, declared or decoded body → 413 — all decided before the
  excess is buffered (less the up to three bytes that may still be the start of the terminating
  CRLF / CRLFCRLF, so that every prefix of a request within the limits is a `Need`).
* Split points: a prefix of a valid request is always a `Need`; a prefix of an invalid one is a
  `Need` or the same error as the whole (the request line is judged before the fields, 414 before 431;
  a head or trailer section over its limit first has its bytes within the limit judged as a prefix
  would be, so an earlier bare LF is 400 however the bytes arrive). tests/test_fuzz.py checks this
  and the differences from h11 (docs/framer-vs-h11.md) on generated and mutated requests.
"""

from __future__ import annotations

import re
from typing import NamedTuple, NoReturn

from ..errors import ProtocolError
from ..grammar import TCHAR, TOKEN
from .limits import Limits
from .request import Request

_TCHAR = TCHAR
_VCHAR = rb"\x21-\x7e\x80-\xff"
_FIELD = rb"[" + _TCHAR + rb"]+:[\t\x20-\x7e\x80-\xff]*\r\n"  # name ":" OWS value OWS, no CTL
_REQUEST_LINE = re.compile(rb"[" + _TCHAR + rb"]+ [\x21-\x7e]+ HTTP/[0-9]\.[0-9]")
# The whole head in one C-level pass: request line, then field lines, up to the last CRLF.
_HEAD = re.compile(_REQUEST_LINE.pattern + rb"\r\n(?:" + _FIELD + rb")*")
_HEADERS = re.compile(rb"(?:" + _FIELD + rb")*")
_FIELD_LINE = re.compile(_FIELD[:-4])  # one field line without its CRLF
_TOKEN = TOKEN
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]+)(?:[ \t]*;[ \t]*[" + _TCHAR + rb"]+(?:[ \t]*=[ \t]*(?:[" + _TCHAR + rb"]+|" + _QUOTED + rb"))?)*"
)
# RFC 9112 §3.2 / RFC 3986: Host = uri-host [ ":" port ], matched on the lower-cased copy; may be empty.
_HOST_VALUE = re.compile(
    rb"[ \t]*(?:\[[0-9a-z:._~!$&'()*+,;=-]+\]|(?:[0-9a-z._~!$&'()*+,;=-]|%[0-9a-f]{2})*)(?::[0-9]*)?[ \t]*"
)
_BARE_LF = re.compile(rb"(?<!\r)\n|\r(?!\n|\Z)")
_MAX_CHUNK_LINE = 4096
_MAX_SIZE_DIGITS = 16
_MAX_LEADING_CRLF = 8

_CONTENT_LENGTH = b"\r\ncontent-length:"
_TRANSFER_ENCODING = b"\r\ntransfer-encoding:"
_HOST = b"\r\nhost:"
_CONNECTION = b"\r\nconnection:"
_EXPECT = b"\r\nexpect:"


class ChunkedProgress(NamedTuple):
    """How far framing got through an incomplete chunked body; `resume_chunked` goes on from there.

    Offsets count from the ``pos`` the request was framed at, so they stay valid when the caller
    moves the partial request to the start of a new buffer (as the connection does).
    """

    body: int  # the body's first byte (just past the head's CRLFCRLF)
    line: int  # the next chunk-size line; once ``last``, the trailer section
    size: int  # body bytes decoded before ``line``
    last: bool  # the last chunk (size 0) was read: ``line`` starts the trailer section
    seen: int  # how far ``buf`` was searched for the end of that line / section (0: not yet)
    expect: bool  # the head asked for 100-continue


class Need(NamedTuple):
    """`frame` needs more bytes (see the module docstring)."""

    total: int = 0
    expect_continue: bool = False
    progress: ChunkedProgress | None = None


NEED_MORE = Need()


def _values(lower: bytes, key: bytes) -> list[bytes]:
    out = []
    i = lower.find(key)
    while i >= 0:
        vs = i + len(key)
        ve = lower.find(b"\r\n", vs)
        out.append(lower[vs:ve].strip(b" \t"))
        i = lower.find(key, ve)
    return out


def _tokens(values: list[bytes]) -> list[bytes]:
    return [t.strip(b" \t") for v in values for t in v.split(b",") if t.strip(b" \t")]


def frame(buf: bytes, pos: int, limits: Limits) -> Request | Need:
    """Frame the request starting at ``buf[pos]``. See the module docstring for the contract."""
    hend = buf.find(b"\r\n\r\n", pos)
    if hend < 0 or buf[pos] == 13:
        if buf.startswith(b"\r\n", pos):
            return _skip_empty_lines(buf, pos, limits)
        return _incomplete_head(buf, pos, limits)
    le = buf.find(b"\r\n", pos)
    if le - pos > limits.max_request_line:
        _over_limit(buf, pos, limits, ProtocolError(414, f"request line exceeds {limits.max_request_line} bytes"))
    if hend - pos > limits.max_header_bytes:
        _over_limit(buf, pos, limits, ProtocolError(
            431, f"request header section exceeds {limits.max_header_bytes} bytes"))
    if _HEAD.fullmatch(buf, pos, hend + 2) is None:
        line = buf[pos:le]
        if _REQUEST_LINE.fullmatch(line) is None:
            raise ProtocolError(*_diagnose_request_line(line))
        if line[-3] != 49:  # the version is known before the fields are: same answer as _incomplete_head
            raise ProtocolError(505, f"HTTP version {line[-8:].decode('latin-1')} is not supported; use HTTP/1.1")
        raise ProtocolError(400, _diagnose_headers(buf[le + 2:hend + 2]))
    if buf[le - 3] != 49:  # major version != b"1"
        raise ProtocolError(505, f"HTTP version {buf[le - 8:le].decode('latin-1')} is not supported; use HTTP/1.1")
    minor = 0 if buf[le - 1] == 48 else 1
    lower = buf[le:hend + 2].lower()
    head_end = hend + 4
    ts = buf.find(b" ", pos) + 1

    # Host (RFC 9112 §3.2)
    h = lower.find(_HOST)
    if h < 0:
        if minor:
            raise ProtocolError(400, "missing Host header (required in HTTP/1.1)")
    else:
        if lower.find(_HOST, h + 7) >= 0:
            raise ProtocolError(400, "more than one Host header")
        if _HOST_VALUE.fullmatch(lower, h + 7, lower.find(b"\r\n", h + 7)) is None:
            raise ProtocolError(400, "invalid Host header value; expected host[:port] (RFC 9112 §3.2)")

    # Connection / keep-alive
    c = lower.find(_CONNECTION)
    if c < 0:
        keep_alive = minor == 1
    else:
        tokens = _tokens(_values(lower, _CONNECTION))
        keep_alive = b"close" not in tokens if minor else b"keep-alive" in tokens and b"close" not in tokens

    # Body framing (RFC 9112 §6)
    t = lower.find(_TRANSFER_ENCODING)
    cl = lower.find(_CONTENT_LENGTH)
    if t < 0 and cl < 0:
        req = Request(buf, pos, ts, le - 9, le, lower, head_end, head_end, minor, keep_alive, head_end)
        return req
    if t >= 0:
        if cl >= 0:
            raise ProtocolError(400, "both Content-Length and Transfer-Encoding are present (request smuggling risk)")
        if not minor:
            raise ProtocolError(400, "Transfer-Encoding is not allowed in an HTTP/1.0 request")
        codings = _tokens(_values(lower, _TRANSFER_ENCODING))
        if codings != [b"chunked"]:
            if not codings:
                raise ProtocolError(400, "empty Transfer-Encoding header")
            if b"chunked" in codings[:-1]:
                raise ProtocolError(400, "chunked must be the final transfer coding, applied once")
            if codings[-1] != b"chunked":  # §6.3: the body length cannot be determined -> MUST 400
                raise ProtocolError(400, "chunked is not the final transfer coding; the body length is unknown")
            # §6.1: framed by chunked, but with a coding we do not implement -> SHOULD 501
            raise ProtocolError(501, f"unsupported transfer coding {codings[0].decode('latin-1')!r}; only chunked is implemented")
        return _frame_chunked(buf, pos, ts, le, lower, head_end, minor, keep_alive, limits)
    # Every element counts, empty ones included: "5," or an empty line beside "5" is invalid (§6.3 item 5).
    values = [t.strip(b" \t") for v in _values(lower, _CONTENT_LENGTH) for t in v.split(b",")]
    first = values[0]
    if not first.isdigit():
        raise ProtocolError(400, "Content-Length must be a non-negative decimal integer")
    for other in values[1:]:
        if other != first:
            raise ProtocolError(400, "conflicting Content-Length values" if other.isdigit()
                                else "Content-Length must be a non-negative decimal integer")
    length = int(first) if len(first) <= 18 else _big_length(first)
    if length > limits.max_body_bytes:
        raise ProtocolError(413, f"request body of {_shorten(first)} bytes exceeds the limit of {limits.max_body_bytes}")
    body_end = head_end + length
    if len(buf) < body_end:
        return Need(body_end - pos, continue_expected(lower, minor))
    return Request(buf, pos, ts, le - 9, le, lower, head_end, body_end, minor, keep_alive, body_end)


def _big_length(digits: bytes) -> int:
    """A Content-Length of more than 18 digits: leading zeros are allowed (1*DIGIT), huge is huge."""
    significant = digits.lstrip(b"0")
    return int(significant or b"0") if len(significant) <= 18 else 1 << 63


def _shorten(digits: bytes) -> str:
    text = digits.lstrip(b"0").decode("ascii") or "0"
    return text if len(text) <= 24 else text[:12] + "..." + f" ({len(text)} digits)"


def continue_expected(lower: bytes, minor: int) -> bool:
    """Whether a request with this (lower-cased) header section gets ``100 Continue`` before its body
    arrives: the framer's rule, in one place (the head cache stores its answer, never its own)."""
    # RFC 9110 §10.1.1: a 100-continue expectation in an HTTP/1.0 request is ignored (no 1xx to 1.0).
    return minor == 1 and lower.find(_EXPECT) >= 0 and b"100-continue" in _tokens(_values(lower, _EXPECT))


def _skip_empty_lines(buf: bytes, pos: int, limits: Limits) -> Request | Need:
    start = pos
    while buf.startswith(b"\r\n", pos):
        pos += 2
        if (pos - start) // 2 > _MAX_LEADING_CRLF:
            raise ProtocolError(400, "too many empty lines before the request line")
    if pos == len(buf) or (pos == len(buf) - 1 and buf[pos] == 13):
        return NEED_MORE
    result = frame(buf, pos, limits)
    if type(result) is Need:
        shift = pos - start  # a Need counts from the first empty line, not from the request line
        progress = result.progress
        if progress is not None:
            progress = progress._replace(
                body=progress.body + shift, line=progress.line + shift, seen=progress.seen and progress.seen + shift)
            return Need(result.total and result.total + shift, result.expect_continue, progress)
        if result.total:
            return Need(result.total + shift, result.expect_continue)
    return result


def _incomplete_head(buf: bytes, pos: int, limits: Limits) -> Need:
    """No CRLFCRLF yet: reject what is already certain to be wrong, else ask for more."""
    error = _head_over_limit(buf, pos, limits)
    if error is not None:
        _over_limit(buf, pos, limits, error)
    _judge_partial_head(buf, pos)
    return NEED_MORE


def _head_over_limit(buf: bytes, pos: int, limits: Limits) -> ProtocolError | None:
    """414 / 431 for a head without its CRLFCRLF yet, or None when it is within the limits."""
    size = len(buf) - pos
    le = buf.find(b"\r\n", pos)
    # Bytes that may be the start of the CRLF / CRLFCRLF ending the line / head do not count yet,
    # so that every prefix of a request that is within the limits is answered "need more".
    if (le < 0 and size - buf.endswith(b"\r") > limits.max_request_line) or le - pos > limits.max_request_line:
        return ProtocolError(414, f"request line exceeds {limits.max_request_line} bytes")
    if size - _partial_terminator(buf) > limits.max_header_bytes:
        return ProtocolError(431, f"request header section exceeds {limits.max_header_bytes} bytes")
    return None


def _judge_partial_head(buf: bytes, pos: int) -> None:
    """Raise what is already certain to be wrong in a head (within the limits) that is not complete yet."""
    size = len(buf) - pos
    if size and buf[pos] < 0x21 and (size > 1 or buf[pos] != 13):  # a lone CR may start an empty line (§2.2)
        raise ProtocolError(400, "invalid first byte of the request line")
    le = buf.find(b"\r\n", pos)
    if le >= 0:  # the request line is judged first, as in frame(): the same input gets the same answer
        line = buf[pos:le]
        if _REQUEST_LINE.fullmatch(line) is None:
            raise ProtocolError(*_diagnose_request_line(line))
        if line[-3] != 49:
            raise ProtocolError(505, f"HTTP version {line[-8:].decode('latin-1')} is not supported; use HTTP/1.1")
    if _BARE_LF.search(buf, pos) is not None:
        raise ProtocolError(400, "bare LF or CR in the request head; lines must end with CRLF")


def _over_limit(buf: bytes, pos: int, limits: Limits, error: ProtocolError) -> NoReturn:
    """The head is over a size limit: raise ``error``, unless the bytes within the limit are already wrong.

    Received a byte at a time, the head is judged (`_judge_partial_head`) on every prefix within the
    limits, and an error found there (a bare LF, a malformed request line) is the answer before the
    limit is ever reached. So the longest prefix still within the limits (up to three more bytes
    that may start the CRLFCRLF) is judged the same way here: the answer does not depend on how
    the bytes were split. Only the error path pays for this.
    """
    base = limits.max_header_bytes if error.status == 431 else limits.max_request_line
    for extra in (3, 2, 1, 0):
        end = pos + base + extra
        if end <= len(buf):
            prefix = buf[:end]
            if _head_over_limit(prefix, pos, limits) is None:
                _judge_partial_head(prefix, pos)
                break
    raise error


def _partial_terminator(buf: bytes | bytearray) -> int:
    """How many bytes at the end of ``buf`` may be the start of a CRLFCRLF."""
    if buf.endswith(b"\r\n\r"):
        return 3
    if buf.endswith(b"\r\n"):
        return 2
    return 1 if buf.endswith(b"\r") else 0


def _frame_chunked(
    buf: bytes, pos: int, ts: int, le: int, lower: bytes, head_end: int, minor: int, keep_alive: bool, limits: Limits
) -> Request | Need:
    parts: list[bytes | bytearray] = []  # (bytes: frame is given bytes)
    body = head_end - pos
    expect = continue_expected(lower, minor)
    done = _scan_chunked(buf, pos, ChunkedProgress(body, body, 0, False, 0, expect), limits, parts)
    if isinstance(done, Need):
        return done
    p, end = done
    req = Request(buf, pos, ts, le - 9, le, lower, head_end, head_end, minor, keep_alive, end)
    req._chunked = b"".join(parts)
    req._trailers = buf[p:end - 2]
    return req


def resume_chunked(buf: bytes | bytearray, pos: int, progress: ChunkedProgress, limits: Limits) -> Need | None:
    """Go on framing an incomplete chunked body from where the last call stopped.

    ``progress`` comes from the `Need` that `frame` (or this function) returned for a prefix of
    ``buf[pos:]``; ``buf`` holds those bytes and more. The answer is `frame`'s: the same `Need`
    (with the progress to resume from next time), the same `ProtocolError`, or ``None`` where
    `frame(buf, pos, limits)` returns the `Request` — call it then, once. Only the bytes after
    ``progress`` are examined (the head and every finished chunk are not looked at again), so the
    calls made while one request arrives cost, together, time linear in its size however it was
    split. ``buf`` may be a ``bytearray``: a connection resumes on its input buffer without copying it.
    """
    done = _scan_chunked(buf, pos, progress, limits, None)
    return done if type(done) is Need else None


def _scan_chunked(
    buf: bytes | bytearray, pos: int, progress: ChunkedProgress, limits: Limits, parts: list[bytes | bytearray] | None
) -> Need | tuple[int, int]:
    """Walk a chunked body from ``progress``: ``(trailers start, request end)`` once it is complete, else
    the `Need` carrying the progress to resume from; raise what is wrong. ``parts`` collects the data.

    Where the last call stopped in the middle of a chunk-size line or of the trailer section, the
    search for its end starts at ``seen`` (less the bytes that may begin the CRLF / CRLFCRLF, or a
    CR that was last and may now be bare): everything before was searched already.
    """
    body, line, size, last, seen, expect = progress
    n = len(buf)
    p = pos + line
    resume_at = pos + seen - 1 if seen else p  # (the last byte seen may be a CR whose LF came now)
    if not last:
        while True:
            start = resume_at if resume_at > p else p
            cle = buf.find(b"\r\n", start, p + _MAX_CHUNK_LINE)
            if cle < 0:
                if n - p >= _MAX_CHUNK_LINE:
                    raise ProtocolError(400, "chunk-size line too long")
                if _BARE_LF.search(buf, start) is not None:
                    raise ProtocolError(400, "bare LF or CR in a chunk-size line")
                return Need(0, expect and p - pos == body, ChunkedProgress(body, p - pos, size, False, n - pos, expect))
            m = _CHUNK_LINE.fullmatch(buf, p, cle)
            if m is None:
                if _BARE_LF.search(buf, p, cle) is not None:
                    raise ProtocolError(400, "bare LF or CR in a chunk-size line")
                raise ProtocolError(400, "invalid chunk-size line")
            digits = m.group(1)
            if len(digits.lstrip(b"0")) > _MAX_SIZE_DIGITS:
                raise ProtocolError(400, "chunk-size too large (overflow)")
            chunk = int(digits, 16)
            if chunk == 0:
                p = cle + 2
                break
            if size + chunk > limits.max_body_bytes:
                raise ProtocolError(413, f"chunked request body exceeds the limit of {limits.max_body_bytes} bytes")
            ds = cle + 2
            de = ds + chunk
            if n < de + 2:
                if n > de and buf[de] != 13:
                    raise ProtocolError(400, "chunk data not followed by CRLF")
                return Need(de + 2 - pos, False, ChunkedProgress(body, p - pos, size, False, 0, expect))
            if buf[de] != 13 or buf[de + 1] != 10:
                raise ProtocolError(400, "chunk data not followed by CRLF")
            if parts is not None:
                parts.append(buf[ds:de])
            size += chunk
            p = de + 2
    # trailer section: *( field-line CRLF ) CRLF
    if buf.startswith(b"\r\n", p):
        return p, p + 2
    tend = buf.find(b"\r\n\r\n", resume_at - 2 if resume_at - 2 > p else p)
    if tend < 0:
        if n - p - _partial_terminator(buf) > limits.max_header_bytes:
            _trailers_over_limit(buf, p, limits)
        _judge_partial_trailers(buf, p, resume_at if resume_at > p else p)
        return Need(0, False, ChunkedProgress(body, p - pos, size, True, n - pos, expect))
    if tend - p > limits.max_header_bytes:
        _trailers_over_limit(buf, p, limits)
    if _HEADERS.fullmatch(buf, p, tend + 2) is None:
        raise ProtocolError(400, "invalid trailer section: " + _diagnose_headers(bytes(buf[p:tend + 2])))
    return p, tend + 4


def _judge_partial_trailers(buf: bytes | bytearray, p: int, start: int) -> None:
    """Raise if the trailer section from ``p`` has a bare LF or CR (``buf[p:start]`` is known to have none)."""
    if _BARE_LF.search(buf, start) is not None:
        raise ProtocolError(400, "bare LF or CR in the trailer section")


def _trailers_over_limit(buf: bytes | bytearray, p: int, limits: Limits) -> NoReturn:
    """431 for a trailer section over the limit, unless its bytes within the limit are already wrong.

    As `_over_limit` does for the head: the answer must not depend on how the bytes were split.
    """
    for extra in (3, 2, 1, 0):
        end = p + limits.max_header_bytes + extra
        if end <= len(buf):
            prefix = buf[:end]
            if end - p - _partial_terminator(prefix) <= limits.max_header_bytes:
                _judge_partial_trailers(prefix, p, p)
                break
    raise ProtocolError(431, "trailer section too large")


def _diagnose_request_line(line: bytes) -> tuple[int, str]:
    if b"\n" in line or b"\r" in line:
        return 400, "bare LF or CR in the request line; lines must end with CRLF"
    parts = line.split(b" ")
    if len(parts) != 3 or not all(parts):
        return 400, "malformed request line; expected 'METHOD SP request-target SP HTTP/1.1' with single spaces"
    method, target, version = parts
    if _TOKEN.fullmatch(method) is None:
        return 400, "invalid method (must be a token)"
    if re.fullmatch(rb"HTTP/[0-9]\.[0-9]", version) is None:
        m = re.fullmatch(rb"HTTP/([0-9]+)(?:\.[0-9]+)?", version)
        if m is not None and m.group(1).lstrip(b"0") != b"1":  # another major version (HTTP/2, HTTP/10.0)
            return 505, f"HTTP version {version.decode('latin-1')} is not supported; use HTTP/1.1"
        return 400, "malformed HTTP version (expected HTTP/1.1)"
    return 400, "invalid character in the request target"


def _diagnose_headers(block: bytes) -> str:
    for line in block.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t"):
            return "obsolete line folding (obs-fold) is not allowed"
        if b"\n" in line or b"\r" in line:
            return "bare LF or CR in a header line"
        name, colon, _ = line.partition(b":")
        if not colon:
            return "header line without a colon"
        if name != name.rstrip(b" \t"):
            return "whitespace between a header name and the colon"
        if _TOKEN.fullmatch(name) is None:
            return "invalid header field name"
        if _FIELD_LINE.fullmatch(line) is None:
            return "invalid character (CTL or NUL) in a header value"
    return "malformed header section"
