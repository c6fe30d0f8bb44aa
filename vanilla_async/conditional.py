"""Conditional and range requests (RFC 9110 §13 and §14): ETags, 304, 412, 206 and 416.

    from vanilla_async.conditional import check_preconditions, strong_etag

    BODY = b"..."
    TAG = strong_etag(BODY)                      # computed once

    def handler(req, out):
        if check_preconditions(req, out, etag=TAG, headers=[("Cache-Control", "no-cache")]):
            return                                # a 304 (or 412) was appended
        respond(out, 200, BODY, headers=[("ETag", TAG), ("Cache-Control", "no-cache")])

Theory of operation
-------------------
Validators are plain ``bytes`` exactly as they go on the wire: an entity-tag is ``b'"opaque"'``
(strong) or ``b'W/"opaque"'`` (weak), a modification time is whole seconds since the epoch (HTTP
dates have one-second resolution, so a float mtime is floored before any comparison).

`evaluate` follows the precedence of RFC 9110 §13.2.2, so a handler never has to think about it:

1. ``If-Match`` (strong comparison; ``*`` matches any existing representation) → 412 when false;
2. otherwise ``If-Unmodified-Since`` (ignored when it is not a valid HTTP-date) → 412 when the
   resource changed after it;
3. ``If-None-Match`` (*weak* comparison, §13.1.2: ``W/"x"`` matches ``"x"``; ``*`` matches
   anything) → 304 for GET/HEAD when it matches, 412 for other methods;
4. otherwise ``If-Modified-Since`` (GET/HEAD only; ignored when invalid, and ignored whenever
   ``If-None-Match`` is present) → 304 when not modified since.

Lists (``If-None-Match: "a", W/"b"``) and repeated header lines are both accepted. An entity-tag
list that does not parse is treated as matching nothing, which is the conservative reading: the
client gets the full response instead of a wrong 304.

**Ranges.** `parse_range` understands one ``bytes=`` range-spec: ``a-b``, ``a-`` and the suffix
``-n``. A satisfiable one gives a `ByteRange`; one that starts at or beyond the end (or a suffix
of zero) gives `UNSATISFIABLE` (answer 416 with ``Content-Range: bytes */size``, see
`append_416`). A header that does not parse, another unit, or **several ranges** give ``None``:
the whole representation is served with 200, which RFC 9110 §14.2 allows ("a server MAY ignore
the Range header field"), and which avoids the cost and the amplification risk of
``multipart/byteranges``. ``If-Range`` (`range_applies`) makes a range conditional: the range is
honoured only when the validator is a matching *strong* ETag or exactly the Last-Modified date;
otherwise the full 200 is sent.
"""

from __future__ import annotations

import calendar
import hashlib
import os
import re
import time
from email.utils import formatdate
from typing import Final, NamedTuple

from ._core.request import Request
from ._core.response import Headers, date_header, header_line, status_line
from .errors import VanillaError

__all__ = (
    "ByteRange", "ConditionalError", "UNSATISFIABLE", "Unsatisfiable", "append_304", "append_412", "append_416",
    "check_preconditions", "content_range", "evaluate", "file_etag", "http_date", "parse_etags", "parse_http_date",
    "parse_range", "range_applies", "strong_etag", "weak_etag", "weak_match", "strong_match",
)

# -- entity-tags ---------------------------------------------------------------------------------------
_ETAGC = rb"[\x21\x23-\x7e\x80-\xff]*"  # etagc: any VCHAR but DQUOTE, or obs-text
_ETAG = re.compile(rb'(W/)?"' + _ETAGC + rb'"')
_LIST_ITEM = re.compile(rb'[ \t]*(?:(W/)?"(' + _ETAGC + rb')"|(\*))[ \t]*(?:,|$)')


class ConditionalError(VanillaError, ValueError):
    """A validator given to this module is malformed (e.g. an ETag without its quotes)."""


def _check_etag(etag: bytes) -> bytes:
    if _ETAG.fullmatch(etag) is None:
        raise ConditionalError(
            f"invalid entity-tag {etag!r}: it must be a quoted string such as b'\"v1\"' or b'W/\"v1\"' "
            "(no DQUOTE, space or control characters inside the quotes)"
        )
    return etag


def strong_etag(data: bytes | bytearray | memoryview) -> bytes:
    """A strong ETag from the content itself (BLAKE2b, 96 bits): equal bytes ⇔ equal tag."""
    return b'"' + hashlib.blake2b(data, digest_size=12).hexdigest().encode("ascii") + b'"'


def weak_etag(etag: bytes) -> bytes:
    """``W/`` + ``etag`` (a weak tag stays weak)."""
    _check_etag(etag)
    return etag if etag.startswith(b"W/") else b"W/" + etag


def file_etag(st: os.stat_result, *, weak: bool = False) -> bytes:
    """An ETag from a file's size and modification time (nanoseconds), the way nginx builds one.

    Cheap (no read), and it changes whenever the file is rewritten or touched. It is strong by
    default: a file with the same size and mtime is taken to be the same bytes.
    """
    tag = b'"%x-%x"' % (st.st_mtime_ns, st.st_size)
    return b"W/" + tag if weak else tag


def _opaque(etag: bytes) -> bytes:
    return etag[2:] if etag.startswith(b"W/") else etag


def weak_match(a: bytes, b: bytes) -> bool:
    """RFC 9110 §8.8.3.2 weak comparison: the opaque tags are equal, weakness ignored."""
    return _opaque(a) == _opaque(b)


def strong_match(a: bytes, b: bytes) -> bool:
    """Strong comparison: both strong and equal."""
    return a == b and not a.startswith(b"W/")


def parse_etags(values: list[bytes]) -> list[bytes] | None:
    """The entity-tags of ``If-Match``/``If-None-Match`` header values: ``["*"]`` → ``None`` meaning
    "any"; an unparseable list → ``[]`` (matches nothing)."""
    tags: list[bytes] = []
    for value in values:
        pos = 0
        end = len(value)
        while pos < end:
            m = _LIST_ITEM.match(value, pos)
            if m is None or m.end() == pos:
                return []
            if m.group(3) is not None:
                return None
            tags.append((b'W/"' if m.group(1) else b'"') + m.group(2) + b'"')
            pos = m.end()
    return tags


# -- HTTP-date -----------------------------------------------------------------------------------------
_MONTHS: Final = {m: i for i, m in enumerate(
    (b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec"), 1)}
_DAY = rb"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)"
_IMF = re.compile(_DAY + rb", (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT")
_RFC850 = re.compile(rb"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\d\d)-([A-Z][a-z]{2})-(\d\d) "
                     rb"(\d\d):(\d\d):(\d\d) GMT")
_ASCTIME = re.compile(_DAY + rb" ([A-Z][a-z]{2}) ([ \d]\d) (\d\d):(\d\d):(\d\d) (\d{4})")


def parse_http_date(value: bytes | None) -> int | None:
    """Seconds since the epoch of an HTTP-date (IMF-fixdate, RFC 850 or asctime, §5.6.7); ``None``
    when absent or invalid (an invalid date makes its condition be ignored, as the RFC says)."""
    if value is None:
        return None
    value = value.strip(b" \t")
    if m := _IMF.fullmatch(value):
        day, mon, year, hh, mm, ss = m.groups()
        y = int(year)
    elif m := _RFC850.fullmatch(value):
        day, mon, yy, hh, mm, ss = m.groups()
        y = 2000 + int(yy)
        if y > time.gmtime().tm_year + 50:  # §5.6.7: a two-digit year more than 50 years ahead is in the past
            y -= 100
    elif m := _ASCTIME.fullmatch(value):
        mon, day, hh, mm, ss, year = m.groups()
        y = int(year)
    else:
        return None
    month = _MONTHS.get(mon)
    if month is None:
        return None
    try:
        parts = (y, month, int(day), int(hh), int(mm), int(ss))
        if not (1 <= parts[2] <= 31 and parts[3] < 24 and parts[4] < 60 and parts[5] < 61):
            return None
        return calendar.timegm((*parts, 0, 0, 0))
    except (ValueError, OverflowError):
        return None


def http_date(seconds: float) -> bytes:
    """The IMF-fixdate of ``seconds`` since the epoch, e.g. ``b"Sun, 06 Nov 1994 08:49:37 GMT"``."""
    return formatdate(int(seconds), usegmt=True).encode("ascii")


# -- preconditions -------------------------------------------------------------------------------------
def evaluate(req: Request, *, etag: bytes | None = None, last_modified: float | None = None, exists: bool = True) -> int:
    """The outcome of the request's preconditions for a representation with these validators:
    ``200`` (go on), ``304`` (not modified) or ``412`` (precondition failed). See the module docstring."""
    lm = None if last_modified is None else int(last_modified)
    if_match = req.header_values(b"if-match")
    if if_match:
        tags = parse_etags(if_match)
        if tags is None:
            if not exists:
                return 412
        elif etag is None or not any(strong_match(t, etag) for t in tags):
            return 412
    else:
        since = parse_http_date(req.header(b"if-unmodified-since"))
        if since is not None and (lm is None or lm > since):
            return 412
    method = req.method
    safe = method == b"GET" or method == b"HEAD"
    if_none_match = req.header_values(b"if-none-match")
    if if_none_match:
        tags = parse_etags(if_none_match)
        if (tags is None and exists) or (tags and etag is not None and any(weak_match(t, etag) for t in tags)):
            return 304 if safe else 412
    elif safe and lm is not None:
        since = parse_http_date(req.header(b"if-modified-since"))
        if since is not None and lm <= since:
            return 304
    return 200


def _validator_lines(etag: bytes | None, last_modified: float | None, headers: Headers | bytes) -> bytes:
    head = b""
    if etag is not None:
        head += b"ETag: " + _check_etag(etag) + b"\r\n"
    if last_modified is not None:
        head += b"Last-Modified: " + http_date(last_modified) + b"\r\n"
    if isinstance(headers, bytes):
        return head + headers
    for name, value in headers:
        head += header_line(name, value)
    return head


def append_304(out: bytearray, *, etag: bytes | None = None, last_modified: float | None = None,
               headers: Headers | bytes = ()) -> None:
    """A 304 Not Modified: validators and ``headers`` (Cache-Control, Vary...), no body and no
    Content-Length (RFC 9110 §15.4.5). ``headers`` may be a prebuilt block of header lines."""
    out += status_line(304)
    out += date_header()
    out += _validator_lines(etag, last_modified, headers)
    out += b"\r\n"


_412_BODY = b"precondition failed: the resource does not match If-Match / If-Unmodified-Since\n"


def append_412(out: bytearray, *, etag: bytes | None = None, headers: Headers | bytes = ()) -> None:
    """A 412 Precondition Failed with a short text body."""
    out += status_line(412)
    out += date_header()
    out += _validator_lines(etag, None, headers)
    out += b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(_412_BODY)
    out += _412_BODY


def check_preconditions(
    req: Request, out: bytearray, *, etag: bytes | None = None, last_modified: float | None = None,
    headers: Headers | bytes = (),
) -> bool:
    """Evaluate the request's conditional headers; when they decide the answer, append it (304 with
    the validators and ``headers``, or 412) and return True. False: send the full response."""
    status = evaluate(req, etag=etag, last_modified=last_modified)
    if status == 200:
        return False
    if status == 304:
        append_304(out, etag=etag, last_modified=last_modified, headers=headers)
    else:
        append_412(out, etag=etag, headers=headers)
    return True


# -- ranges --------------------------------------------------------------------------------------------
class ByteRange(NamedTuple):
    """A satisfiable byte range of a representation of ``size`` bytes: ``[start, stop)``."""

    start: int
    stop: int
    size: int

    @property
    def length(self) -> int:
        return self.stop - self.start


class Unsatisfiable(NamedTuple):
    """The range asked for lies outside the representation: answer 416."""


UNSATISFIABLE: Final = Unsatisfiable()
_SPEC = re.compile(rb"[ \t]*(\d*)[ \t]*-[ \t]*(\d*)[ \t]*")
_MAX_DIGITS = 18  # longer numbers count as "beyond any size": int() stays cheap on hostile input


def _number(digits: bytes) -> int:
    return int(digits) if len(digits) <= _MAX_DIGITS else 10 ** _MAX_DIGITS


def parse_range(value: bytes | None, size: int) -> ByteRange | Unsatisfiable | None:
    """The single byte range of a ``Range`` header for a representation of ``size`` bytes.

    `ByteRange` when satisfiable, `UNSATISFIABLE` (→ 416) when not, ``None`` when the header is
    absent, malformed, not in bytes, or asks for several ranges (→ serve the whole 200).
    """
    if value is None:
        return None
    unit, eq, specs = value.partition(b"=")
    if not eq or unit.strip(b" \t").lower() != b"bytes" or b"," in specs:
        return None
    m = _SPEC.fullmatch(specs)
    if m is None:
        return None
    first, last = m.groups()
    if first:
        start = _number(first)
        if last:
            end = _number(last)
            if end < start:
                return None  # invalid range-spec: ignore the header
            stop = min(end + 1, size)
        else:
            stop = size
        if start >= size:
            return UNSATISFIABLE
        return ByteRange(start, stop, size)
    if not last:
        return None  # "bytes=-"
    suffix = _number(last)
    if suffix == 0 or size == 0:
        return UNSATISFIABLE
    return ByteRange(max(0, size - suffix), size, size)


def range_applies(req: Request, *, etag: bytes | None, last_modified: float | None) -> bool:
    """False when an ``If-Range`` says the client's copy is stale (ignore Range, send 200)."""
    value = req.header(b"if-range")
    if value is None:
        return True
    if value.startswith(b'"') or value.startswith(b"W/"):
        return etag is not None and strong_match(value, etag)
    date = parse_http_date(value)
    return date is not None and last_modified is not None and int(last_modified) == date


def content_range(r: ByteRange) -> bytes:
    """``b"bytes 0-99/1000"`` for a `ByteRange`."""
    return b"bytes %d-%d/%d" % (r.start, r.stop - 1, r.size)


_416_BODY = b"range not satisfiable\n"


def append_416(out: bytearray, size: int, *, headers: Headers | bytes = ()) -> None:
    """416 Range Not Satisfiable with ``Content-Range: bytes */size`` (RFC 9110 §15.5.17)."""
    out += status_line(416)
    out += date_header()
    out += b"Content-Range: bytes */%d\r\n" % size
    out += _validator_lines(None, None, headers)
    out += b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(_416_BODY)
    out += _416_BODY
