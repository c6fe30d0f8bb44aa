"""Tests of the strict HTTP/1.1 request framer (`vanilla_async._core.framer.frame`).

The framer is a pure function of ``(buf, pos, limits)``, so everything here is synchronous: valid
requests and what the `Request` view reports, every rejection with its exact status, the split-point
property (every prefix of a request is "need more", never an error or a different error), pipelining,
`Need` bookkeeping, and a differential check against h11.
"""

from __future__ import annotations

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vanilla_async._core.framer import NEED_MORE, Need, frame
from vanilla_async._core.limits import Limits
from vanilla_async._core.request import Request
from vanilla_async.errors import ProtocolError

LIMITS = Limits()
SMALL = Limits(max_request_line=64, max_header_bytes=256, max_body_bytes=100)


def framed(raw: bytes, limits: Limits = LIMITS, pos: int = 0) -> Request:
    """Frame one complete request; fail the test if the framer asks for more bytes."""
    result = frame(raw, pos, limits)
    assert isinstance(result, Request), f"expected a Request, got {result!r}"
    return result


def rejected(raw: bytes, limits: Limits = LIMITS) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        frame(raw, 0, limits)
    return info.value


def assert_valid_at_every_split(raw: bytes, limits: Limits = LIMITS) -> Request:
    """h11's ``tr()`` idea: whole buffer, every prefix, and with trailing bytes appended.

    Every proper prefix must be a `Need` (never an error, never a Request), and a non-zero
    ``Need.total`` must ask for more than is there but no more than the whole request.
    """
    n = len(raw)
    for i in range(n):
        result = frame(raw[:i], 0, limits)
        assert type(result) is Need, f"prefix {raw[:i]!r} gave {result!r}"
        assert result.total == 0 or i < result.total <= n, (i, result)
    req = framed(raw, limits)
    assert req.end == n
    with_trailing = framed(raw + b"trailing", limits)
    assert with_trailing.end == n
    at_offset = framed(b"junk" + raw, limits, pos=4)
    assert at_offset.end == n + 4
    for other in (with_trailing, at_offset):
        assert (other.method, other.target, other.minor, other.keep_alive) == (
            req.method, req.target, req.minor, req.keep_alive)
        assert other.header_items() == req.header_items()
        assert bytes(other.body) == bytes(req.body)
        assert other.trailers() == req.trailers()
    return req


def assert_rejected_at_every_split(raw: bytes, status: int, limits: Limits = LIMITS) -> None:
    """The whole input raises ``status``; every prefix is a Need or raises that same status."""
    assert rejected(raw, limits).status == status
    for i in range(len(raw)):
        try:
            result = frame(raw[:i], 0, limits)
        except ProtocolError as error:
            assert error.status == status, f"prefix {raw[:i]!r} raised {error.status} ({error.reason}), whole gives {status}"
        else:
            assert type(result) is Need, f"prefix {raw[:i]!r} gave {result!r}"


# ---------------------------------------------------------------------------------------------------
# 1. Valid requests
# ---------------------------------------------------------------------------------------------------
def test_get_with_only_host() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    req = framed(raw)
    assert req.method == b"GET"
    assert req.target == b"/"
    assert req.path == b"/"
    assert req.query == b""
    assert req.version == b"HTTP/1.1"
    assert req.minor == 1
    assert req.keep_alive is True
    assert req.end == len(raw)
    assert req.header(b"host") == b"example.com"
    assert req.header_items() == [(b"host", b"example.com")]
    assert bytes(req.body) == b""
    assert req.chunked is False
    assert req.trailers() == []


def test_http10_without_host() -> None:
    req = framed(b"GET /index.html HTTP/1.0\r\n\r\n")
    assert req.minor == 0
    assert req.version == b"HTTP/1.0"
    assert req.keep_alive is False
    assert req.header(b"host") is None
    assert req.header_items() == []
    assert req.end == 28


def test_request_line_parts() -> None:
    raw = b"DELETE /a/b%20c?x=1&y=2?z HTTP/1.1\r\nHost: h\r\n\r\n"
    req = framed(raw)
    assert req.method == b"DELETE"
    assert req.target == b"/a/b%20c?x=1&y=2?z"
    assert req.path == b"/a/b%20c"
    assert req.query == b"x=1&y=2?z"
    assert repr(req) == "<Request DELETE /a/b%20c?x=1&y=2?z HTTP/1.1>"


@pytest.mark.parametrize("target", [b"*", b"http://example.com:8080/p?q", b"example.com:443", b"/~user/!$&'()*+,;=:@"])
def test_request_target_forms(target: bytes) -> None:
    method = b"CONNECT" if target == b"example.com:443" else b"OPTIONS"
    req = framed(method + b" " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    assert req.target == target
    assert req.method == method


def test_header_lookup_is_case_insensitive() -> None:
    raw = (
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Custom-Thing:  spaced value \t\r\nACCEPT: text/html\r\n"
        b"Cookie: a=1\r\ncookie: b=2\r\nCOOKIE:c=3\r\nX-Empty:\r\nX-Obs: caf\xc3\xa9\r\nX-Tab: a\tb\r\n\r\n"
    )
    req = framed(raw)
    for name in (b"x-custom-thing", b"X-CUSTOM-THING", "X-Custom-Thing", "x-CUSTOM-thing"):
        assert req.header(name) == b"spaced value"
    assert req.header(b"accept") == b"text/html"
    assert req.header("Accept") == b"text/html"
    assert req.header(b"cookie") == b"a=1"  # the first of a repeated field
    assert req.header_values(b"Cookie") == [b"a=1", b"b=2", b"c=3"]
    assert req.header_values("COOKIE") == [b"a=1", b"b=2", b"c=3"]
    assert req.header_values(b"missing") == []
    assert req.header(b"missing") is None
    assert req.header(b"missing", b"dflt") == b"dflt"
    assert req.header(b"x-empty") == b""
    assert req.header(b"x-obs") == b"caf\xc3\xa9"  # obs-text is allowed in values
    assert req.header(b"x-tab") == b"a\tb"  # HTAB inside a value is allowed
    # A name that is a suffix/prefix of another must not match it.
    assert req.header(b"custom-thing") is None
    assert req.header(b"x-custom") is None
    assert req.header_items() == [
        (b"host", b"h"), (b"x-custom-thing", b"spaced value"), (b"accept", b"text/html"),
        (b"cookie", b"a=1"), (b"cookie", b"b=2"), (b"cookie", b"c=3"), (b"x-empty", b""),
        (b"x-obs", b"caf\xc3\xa9"), (b"x-tab", b"a\tb"),
    ]
    assert req.header_dict() == {
        b"host": b"h", b"x-custom-thing": b"spaced value", b"accept": b"text/html",
        b"cookie": b"a=1, b=2, c=3", b"x-empty": b"", b"x-obs": b"caf\xc3\xa9", b"x-tab": b"a\tb",
    }


def test_header_values_keep_their_case() -> None:
    req = framed(b"GET / HTTP/1.1\r\nHost: Example.COM\r\nX-Token: AbC\r\n\r\n")
    assert req.header(b"host") == b"Example.COM"
    assert req.header(b"x-token") == b"AbC"


def test_content_length_body() -> None:
    raw = b"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nhello world"
    req = framed(raw)
    assert req.method == b"POST"
    assert bytes(req.body) == b"hello world"
    assert isinstance(req.body, memoryview)
    assert req.chunked is False
    assert req.end == len(raw)
    assert req.header(b"content-length") == b"11"


def test_content_length_zero() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
    req = framed(raw)
    assert bytes(req.body) == b""
    assert req.end == len(raw)


def test_content_length_body_may_contain_anything() -> None:
    body = b"\r\n\r\nGET / HTTP/1.1\r\n\x00\xff"
    raw = b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    req = framed(raw)
    assert bytes(req.body) == body
    assert req.end == len(raw)


def test_content_length_with_leading_zeros_and_ows() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: \t 0000000000000000000000005 \r\n\r\nhello"
    req = framed(raw)
    assert bytes(req.body) == b"hello"
    assert req.end == len(raw)


@pytest.mark.parametrize("fields", [
    b"Content-Length: 5\r\nContent-Length: 5\r\n",
    b"Content-Length: 5, 5\r\n",
    b"Content-Length: 5,5\r\nContent-Length: 5\r\n",
])
def test_identical_duplicate_content_length_is_accepted(fields: bytes) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\nhelloGET"
    req = framed(raw)
    assert bytes(req.body) == b"hello"
    assert req.end == len(raw) - 3


CHUNKED = (
    b"POST /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum\r\n\r\n"
    b"5;name=value\r\nhello\r\n"
    b'6;name="quoted value"\r\n world\r\n'
    b'3 ; a = b ;flag; q="esc\\"aped"\r\n!!!\r\n'
    b"000A\r\n0123456789\r\n"
    b"0;last=yes\r\n"
    b"X-Checksum: abc123\r\nX-Other:  v  \r\n\r\n"
)


def test_chunked_body_with_extensions_and_trailers() -> None:
    req = framed(CHUNKED)
    assert req.chunked is True
    assert bytes(req.body) == b"hello world!!!0123456789"
    assert req.trailers() == [(b"x-checksum", b"abc123"), (b"x-other", b"v")]
    assert req.end == len(CHUNKED)
    # Trailers are kept apart from the header section.
    assert req.header(b"x-checksum") is None
    assert req.header(b"trailer") == b"X-Checksum"


def test_chunked_end_points_after_the_request() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    nxt = b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n"
    req = framed(raw + nxt)
    assert bytes(req.body) == b"abc"
    assert req.trailers() == []
    assert req.end == len(raw)
    assert framed(raw + nxt, pos=req.end).target == b"/next"


def test_chunked_empty_body_and_case_insensitive_coding() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: Chunked\r\n\r\n0\r\n\r\n"
    req = framed(raw)
    assert req.chunked is True
    assert bytes(req.body) == b""
    assert req.end == len(raw)


def test_chunk_size_with_many_leading_zeros() -> None:
    # Only significant hex digits count towards the 16-digit overflow bound.
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 30 + b"5\r\nhello\r\n0\r\n\r\n"
    assert bytes(framed(raw).body) == b"hello"


def test_leading_crlf_before_request_line_is_skipped() -> None:
    raw = b"\r\n\r\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n"
    req = framed(raw)
    assert req.method == b"GET"
    assert req.target == b"/x"
    assert req.end == len(raw)
    assert_valid_at_every_split(raw)


def test_leading_crlf_need_total_counts_from_pos() -> None:
    raw = b"\r\nPOST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\nab"
    assert frame(raw, 0, LIMITS) == Need(len(raw) + 2, False)


def test_too_many_empty_lines_before_request_line() -> None:
    error = rejected(b"\r\n" * 100 + b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert error.status == 400
    assert "empty lines" in error.reason


@pytest.mark.parametrize(("raw", "keep_alive"), [
    (b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: CLOSE\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: foo\r\nConnection: close\r\n\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\n\r\n", True),
    (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", True),  # a token, not a substring
    (b"GET / HTTP/1.0\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    (b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", True),
    (b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", False),
    (b"GET / HTTP/1.0\r\nConnection: upgrade\r\n\r\n", False),
])
def test_keep_alive(raw: bytes, keep_alive: bool) -> None:
    assert framed(raw).keep_alive is keep_alive


@pytest.mark.parametrize("version", [b"HTTP/1.2", b"HTTP/1.9"])
def test_higher_minor_version_is_served_as_http11(version: bytes) -> None:
    req = framed(b"GET / " + version + b"\r\nHost: h\r\n\r\n")
    assert req.minor == 1
    assert req.version == b"HTTP/1.1"
    assert req.keep_alive is True
    # ... including the HTTP/1.1 rules: Host is required.
    assert rejected(b"GET / " + version + b"\r\n\r\n").status == 400


def test_pos_other_than_zero() -> None:
    prefix = b"GARBAGE THAT WAS ALREADY CONSUMED"
    raw = b"POST /p HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
    req = framed(prefix + raw, pos=len(prefix))
    assert req.method == b"POST"
    assert bytes(req.body) == b"abc"
    assert req.end == len(prefix) + len(raw)
    assert frame(prefix + raw[:-1], len(prefix), LIMITS) == Need(len(raw), False)


def test_empty_buffer_needs_more() -> None:
    assert frame(b"", 0, LIMITS) is NEED_MORE
    assert frame(b"abc", 3, LIMITS) == Need(0, False)


# ---------------------------------------------------------------------------------------------------
# 2. Rejections: exact status, and a reason that says what was wrong
# ---------------------------------------------------------------------------------------------------
GET = b"GET / HTTP/1.1\r\nHost: h\r\n"
POST = b"POST / HTTP/1.1\r\nHost: h\r\n"
TE = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"

REJECTIONS: list[tuple[str, bytes, int, str, Limits]] = [
    # field syntax (RFC 9112 §5, RFC 9110 §5.5)
    ("obs-fold", GET + b"X-A: a\r\n b\r\n\r\n", 400, "obs-fold", LIMITS),
    ("obs-fold-tab", GET + b"X-A: a\r\n\tb\r\n\r\n", 400, "obs-fold", LIMITS),
    ("obs-fold-first-field", b"GET / HTTP/1.1\r\n Host: h\r\n\r\n", 400, "obs-fold", LIMITS),
    ("space-before-colon", GET + b"X-A : a\r\n\r\n", 400, "whitespace between", LIMITS),
    ("tab-before-colon", GET + b"X-A\t: a\r\n\r\n", 400, "whitespace between", LIMITS),
    ("host-space-before-colon", b"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, "whitespace between", LIMITS),
    ("name-paren", GET + b"X(A): a\r\n\r\n", 400, "field name", LIMITS),
    ("name-at", GET + b"X@A: a\r\n\r\n", 400, "field name", LIMITS),
    ("name-quote", GET + b'X"A: a\r\n\r\n', 400, "field name", LIMITS),
    ("name-slash", GET + b"X/A: a\r\n\r\n", 400, "field name", LIMITS),
    ("name-obs-text", GET + b"X\xe9: a\r\n\r\n", 400, "field name", LIMITS),
    ("name-empty", GET + b": a\r\n\r\n", 400, "field name", LIMITS),
    ("no-colon", GET + b"X-A a\r\n\r\n", 400, "colon", LIMITS),
    ("value-nul", GET + b"X-A: a\x00b\r\n\r\n", 400, "CTL", LIMITS),
    ("value-ctl", GET + b"X-A: a\x01b\r\n\r\n", 400, "CTL", LIMITS),
    ("value-esc", GET + b"X-A: a\x1bb\r\n\r\n", 400, "CTL", LIMITS),
    ("value-del", GET + b"X-A: a\x7fb\r\n\r\n", 400, "CTL", LIMITS),
    ("value-vt", GET + b"X-A: a\x0bb\r\n\r\n", 400, "CTL", LIMITS),
    # line endings
    ("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: h\n\n", 400, "bare LF", LIMITS),
    ("bare-lf-request-line", b"GET / HTTP/1.1\nHost: h\r\n\r\n", 400, "bare LF", LIMITS),
    ("bare-lf-field", GET + b"X-A: a\nX-B: b\r\n\r\n", 400, "bare LF", LIMITS),
    ("bare-lf-final", GET + b"\n", 400, "bare LF", LIMITS),
    ("bare-lf-end-of-head", GET + b"\n\r\n", 400, "bare LF", LIMITS),
    ("bare-cr-field", GET + b"X-A: a\rb\r\n\r\n", 400, "bare LF or CR", LIMITS),
    ("bare-cr-request-line", b"GET / HTTP/1.1\rHost: h\r\n\r\n", 400, "bare LF or CR", LIMITS),
    ("bare-cr-first", b"\rGET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "first byte", LIMITS),
    ("bare-lf-chunk-line", TE + b"5\nhello\r\n0\r\n\r\n", 400, "bare LF", LIMITS),
    ("bare-lf-trailer", TE + b"0\r\nX: y\n\r\n", 400, "bare LF", LIMITS),
    # request line
    ("leading-space", b" GET / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "request line", LIMITS),
    ("double-space", b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "request line", LIMITS),
    ("missing-version", b"GET /\r\nHost: h\r\n\r\n", 400, "request line", LIMITS),
    ("lowercase-version", b"GET / http/1.1\r\nHost: h\r\n\r\n", 400, "version", LIMITS),
    ("bad-method", b"GE(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, "method", LIMITS),
    ("target-del", b"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400, "target", LIMITS),
    ("target-obs-text", b"GET /\xe9 HTTP/1.1\r\nHost: h\r\n\r\n", 400, "target", LIMITS),
    # Content-Length (RFC 9112 §6.3, RFC 9110 §8.6)
    ("cl-and-te", POST + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "Content-Length and Transfer-Encoding", LIMITS),
    ("te-and-cl", POST + b"Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", 400, "Content-Length and Transfer-Encoding", LIMITS),
    ("cl-differ-lines", POST + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400, "conflicting", LIMITS),
    ("cl-differ-list", POST + b"Content-Length: 5, 6\r\n\r\nhello!", 400, "conflicting", LIMITS),
    ("cl-differ-leading-zero", POST + b"Content-Length: 5, 05\r\n\r\nhello", 400, "conflicting", LIMITS),
    ("cl-alpha", POST + b"Content-Length: abc\r\n\r\n", 400, "Content-Length", LIMITS),
    ("cl-trailing-alpha", POST + b"Content-Length: 5a\r\n\r\nhello", 400, "Content-Length", LIMITS),
    ("cl-hex", POST + b"Content-Length: 0x5\r\n\r\nhello", 400, "Content-Length", LIMITS),
    ("cl-decimal-point", POST + b"Content-Length: 5.0\r\n\r\nhello", 400, "Content-Length", LIMITS),
    ("cl-inner-space", POST + b"Content-Length: 1 2\r\n\r\nhello", 400, "Content-Length", LIMITS),
    ("cl-empty", POST + b"Content-Length:\r\n\r\n", 400, "Content-Length", LIMITS),
    ("cl-plus", POST + b"Content-Length: +5\r\n\r\nhello", 400, "Content-Length", LIMITS),
    ("cl-minus", POST + b"Content-Length: -5\r\n\r\nhello", 400, "Content-Length", LIMITS),
    ("cl-empty-element", POST + b"Content-Length: 5,\r\n\r\nhello", 400, "Content-Length", LIMITS),
    ("cl-empty-line-beside", POST + b"Content-Length: 5\r\nContent-Length:\r\n\r\nhello", 400, "Content-Length", LIMITS),
    ("cl-unicode-digit", POST + "Content-Length: \u0665\r\n\r\nhello".encode(), 400, "Content-Length", LIMITS),
    # chunked framing (RFC 9112 §7.1)
    ("chunk-size-17-digits", TE + b"1" + b"0" * 16 + b"\r\n", 400, "overflow", LIMITS),
    ("chunk-size-ffff", TE + b"f" * 17 + b"\r\n", 400, "overflow", LIMITS),
    ("chunk-size-0x", TE + b"0x5\r\nhello\r\n0\r\n\r\n", 400, "chunk-size", LIMITS),
    ("chunk-size-empty", TE + b"\r\nhello\r\n0\r\n\r\n", 400, "chunk-size", LIMITS),
    ("chunk-size-sign", TE + b"+5\r\nhello\r\n0\r\n\r\n", 400, "chunk-size", LIMITS),
    ("chunk-size-not-hex", TE + b"5g\r\nhello\r\n0\r\n\r\n", 400, "chunk-size", LIMITS),
    ("chunk-ext-no-name", TE + b"5;\r\nhello\r\n0\r\n\r\n", 400, "chunk-size", LIMITS),
    ("chunk-ext-bad-quote", TE + b'5;a="x\r\nhello\r\n0\r\n\r\n', 400, "chunk-size", LIMITS),
    ("chunk-line-too-long", TE + b"5;" + b"a" * 5000 + b"\r\nhello\r\n0\r\n\r\n", 400, "too long", LIMITS),
    ("chunk-data-no-crlf", TE + b"5\r\nhelloX\r\n0\r\n\r\n", 400, "not followed by CRLF", LIMITS),
    ("chunk-data-too-long", TE + b"5\r\nhello world\r\n0\r\n\r\n", 400, "not followed by CRLF", LIMITS),
    ("chunk-data-bare-lf", TE + b"5\r\nhello\n0\r\n\r\n", 400, "not followed by CRLF", LIMITS),
    ("chunk-data-cr-only", TE + b"5\r\nhello\r0\r\n\r\n", 400, "not followed by CRLF", LIMITS),
    ("trailer-bad-name", TE + b"0\r\nX Y: z\r\n\r\n", 400, "trailer", LIMITS),
    ("trailer-obs-fold", TE + b"0\r\nX: y\r\n z\r\n\r\n", 400, "obs-fold", LIMITS),
    ("trailer-ctl", TE + b"0\r\nX: y\x00\r\n\r\n", 400, "CTL", LIMITS),
    # Host (RFC 9112 §3.2)
    ("no-host-11", b"GET / HTTP/1.1\r\nX-A: a\r\n\r\n", 400, "Host", LIMITS),
    ("no-host-11-bare", b"GET / HTTP/1.1\r\n\r\n", 400, "Host", LIMITS),
    ("host-like-name", b"GET / HTTP/1.1\r\nX-Host: h\r\nHostname: h\r\n\r\n", 400, "Host", LIMITS),
    ("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "more than one Host", LIMITS),
    ("two-hosts-case", b"GET / HTTP/1.1\r\nHost: a\r\nX: y\r\nHOST: b\r\n\r\n", 400, "more than one Host", LIMITS),
    ("two-hosts-10", b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", 400, "more than one Host", LIMITS),
    ("host-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "Host", LIMITS),
    ("host-tab", b"GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", 400, "Host", LIMITS),
    ("host-slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "Host", LIMITS),
    ("host-at", b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400, "Host", LIMITS),
    ("host-bad-port", b"GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", 400, "Host", LIMITS),
    ("host-bad-pct", b"GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 400, "Host", LIMITS),
    ("host-list", b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400, "Host", LIMITS),
    # Transfer-Encoding (RFC 9112 §6.1, §6.3)
    ("te-in-http10", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "HTTP/1.0", LIMITS),
    ("te-chunked-not-final", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n", 400, "final", LIMITS),
    ("te-chunked-twice", POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n", 400, "final", LIMITS),
    ("te-chunked-twice-lines", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "final", LIMITS),
    ("te-chunked-then-gzip-lines", POST + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "final", LIMITS),
    # §6.3 item 4: chunked is not the final coding -> the length cannot be determined -> MUST 400.
    ("te-gzip-only", POST + b"Transfer-Encoding: gzip\r\n\r\n", 400, "final", LIMITS),
    ("te-identity", POST + b"Transfer-Encoding: identity\r\n\r\n", 400, "final", LIMITS),
    ("te-empty", POST + b"Transfer-Encoding: \r\n\r\n", 400, "Transfer-Encoding", LIMITS),
    ("te-empty-list", POST + b"Transfer-Encoding: , ,\r\n\r\n", 400, "Transfer-Encoding", LIMITS),
    # §6.1: chunked is final (length is known) but a coding we do not implement -> 501.
    ("te-gzip-chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n", 501, "gzip", LIMITS),
    ("te-gzip-chunked-lines", POST + b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", 501, "gzip", LIMITS),
    ("te-deflate-gzip-chunked", POST + b"Transfer-Encoding: deflate, gzip, chunked\r\n\r\n", 501, "deflate", LIMITS),
    # versions (RFC 9112 §2.3)
    ("http-2.0", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, "HTTP/2.0", LIMITS),
    ("http-3.0", b"GET / HTTP/3.0\r\nHost: h\r\n\r\n", 505, "HTTP/3.0", LIMITS),
    ("http-0.9", b"GET / HTTP/0.9\r\nHost: h\r\n\r\n", 505, "HTTP/0.9", LIMITS),
    ("http-2.0-bad-field", b"GET / HTTP/2.0\r\nHost : h\r\n\r\n", 505, "HTTP/2.0", LIMITS),
    ("http-2.0-head-only", b"GET / HTTP/2.0\r\n", 505, "HTTP/2.0", LIMITS),
    ("http-1.10-malformed", b"GET / HTTP/1.10\r\nHost: h\r\n\r\n", 400, "malformed HTTP version", LIMITS),
    ("http-huge-major", b"GET / HTTP/" + b"7" * 5000 + b".0\r\nHost: h\r\n\r\n", 505, "not supported", LIMITS),
    ("http-10.0", b"GET / HTTP/10.0\r\nHost: h\r\n\r\n", 505, "HTTP/10.0", LIMITS),
    # limits (Limits docstring; RFC 9110 §15.5.14, §15.5.15, RFC 6585 §5)
    ("414-complete", b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414, "request line", SMALL),
    ("414-incomplete", b"GET /" + b"a" * 100, 414, "request line", SMALL),
    ("414-incomplete-with-crlf", b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHo", 414, "request line", SMALL),
    ("414-longer-than-head-limit", b"GET /" + b"a" * 400 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414, "request line", SMALL),
    ("431-complete", GET + b"X-Big: " + b"v" * 300 + b"\r\n\r\n", 431, "header section", SMALL),
    ("431-incomplete", GET + b"X-Big: " + b"v" * 300, 431, "header section", SMALL),
    ("431-many-fields", GET + b"X: y\r\n" * 60 + b"\r\n", 431, "header section", SMALL),
    ("431-trailers", TE + b"0\r\nX-Big: " + b"v" * 300 + b"\r\n\r\n", 431, "trailer", SMALL),
    ("431-trailers-incomplete", TE + b"0\r\nX-Big: " + b"v" * 300, 431, "trailer", SMALL),
    ("413-cl-head-only", POST + b"Content-Length: 101\r\n\r\n", 413, "101", SMALL),
    ("413-cl-huge", POST + b"Content-Length: 99999999999999999999999999999\r\n\r\n", 413, "limit", SMALL),
    ("413-cl-5000-digits", POST + b"Content-Length: " + b"9" * 5000 + b"\r\n\r\n", 413, "limit", LIMITS),
    ("413-chunked-one-chunk", TE + b"65\r\n", 413, "limit", SMALL),
    ("413-chunked-sum", TE + b"32\r\n" + b"a" * 50 + b"\r\n33\r\n", 413, "limit", SMALL),
    ("413-chunked-max-hex", TE + b"ffffffffffffffff\r\n", 413, "limit", SMALL),
]


@pytest.mark.parametrize(("raw", "status", "words", "limits"),
                         [case[1:] for case in REJECTIONS], ids=[case[0] for case in REJECTIONS])
def test_rejection(raw: bytes, status: int, words: str, limits: Limits) -> None:
    error = rejected(raw, limits)
    assert error.status == status, error.reason
    assert error.reason
    assert words.lower() in error.reason.lower(), error.reason
    assert str(error).startswith(f"{status}: ")


@pytest.mark.parametrize(("raw", "status", "limits"),
                         [(case[1], case[2], case[4]) for case in REJECTIONS], ids=[case[0] for case in REJECTIONS])
def test_rejection_is_the_same_at_every_split(raw: bytes, status: int, limits: Limits) -> None:
    assert_rejected_at_every_split(raw, status, limits)


def test_limits_are_inclusive() -> None:
    """A request exactly at each limit is served; every prefix of it is still 'need more'."""
    line = b"GET /" + b"a" * (SMALL.max_request_line - 14) + b" HTTP/1.1"
    assert len(line) == SMALL.max_request_line
    assert_valid_at_every_split(line + b"\r\nHost: h\r\n\r\n", SMALL)
    assert rejected(line.replace(b"/", b"/a", 1) + b"\r\nHost: h\r\n\r\n", SMALL).status == 414

    head = GET + b"X: "
    head += b"v" * (SMALL.max_header_bytes - len(head))
    assert len(head) == SMALL.max_header_bytes  # the head without its final CRLFCRLF
    assert_valid_at_every_split(head + b"\r\n\r\n", SMALL)
    assert rejected(head + b"v\r\n\r\n", SMALL).status == 431

    assert_valid_at_every_split(POST + b"Content-Length: 100\r\n\r\n" + b"b" * 100, SMALL)
    assert rejected(POST + b"Content-Length: 101\r\n\r\n", SMALL).status == 413

    chunked = TE + b"64\r\n" + b"c" * 100 + b"\r\n0\r\n"
    trailer = b"X: "
    trailer += b"t" * (SMALL.max_header_bytes - len(trailer))
    req = assert_valid_at_every_split(chunked + trailer + b"\r\n\r\n", SMALL)
    assert len(bytes(req.body)) == 100
    assert rejected(TE + b"64\r\n" + b"c" * 100 + b"\r\n1\r\n", SMALL).status == 413
    assert rejected(chunked + trailer + b"t\r\n\r\n", SMALL).status == 431


def test_413_is_decided_before_the_body_arrives() -> None:
    error = rejected(b"PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 1048577\r\n\r\n")
    assert error.status == 413
    assert "1048577" in error.reason
    assert "1048576" in error.reason


# ---------------------------------------------------------------------------------------------------
# 3. Split-point property
# ---------------------------------------------------------------------------------------------------
SIMPLE_GET = b"GET /search?q=x HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
POST_CL = b"POST /form HTTP/1.1\r\nHost: h\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello, world!"
PIPELINE = [
    SIMPLE_GET,
    POST_CL,
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n4;x=y\r\nwiki\r\n0\r\nT: v\r\n\r\n",
]
VALID = {
    "simple-get": SIMPLE_GET,
    "post-cl": POST_CL,
    "chunked-ext-trailers": CHUNKED,
    "http10": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    "leading-crlf": b"\r\n\r\nPOST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nok",
    "expect": b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    "chunked-empty": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
}


@pytest.mark.parametrize("raw", list(VALID.values()), ids=list(VALID))
def test_valid_at_every_split(raw: bytes) -> None:
    assert_valid_at_every_split(raw)


def test_pipelined_sequence_at_every_split() -> None:
    buf = b"".join(PIPELINE)
    ends = []
    total = 0
    for raw in PIPELINE:
        total += len(raw)
        ends.append(total)
    for i in range(len(buf) + 1):
        chunk = buf[:i]
        pos = 0
        seen = []
        while True:
            result = frame(chunk, pos, LIMITS)
            if type(result) is Need:
                break
            assert isinstance(result, Request)
            assert result.end <= i
            seen.append(result.end)
            pos = result.end
        assert seen == [e for e in ends if e <= i], i
    # And with trailing bytes that are the start of a fourth request.
    tail = buf + b"GET / HT"
    pos = 0
    for e in ends:
        req = framed(tail, pos=pos)
        assert req.end == e
        pos = req.end
    assert frame(tail, pos, LIMITS) is NEED_MORE


# ---------------------------------------------------------------------------------------------------
# 4. Need
# ---------------------------------------------------------------------------------------------------
def test_need_total_for_content_length() -> None:
    head = b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n"
    full = head + b"0123456789"
    for i in range(len(head), len(full)):
        assert frame(full[:i], 0, LIMITS) == Need(len(full), False)
    # From a non-zero pos, total counts from pos.
    pre = b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    result = frame(pre + head + b"01", len(pre), LIMITS)
    assert result == Need(len(full), False)
    assert type(frame(pre + full, len(pre), LIMITS)) is Request


def test_need_total_for_chunk_data() -> None:
    head = TE + b"a\r\n01234"
    result = frame(head, 0, LIMITS)
    assert type(result) is Need
    assert result.total == len(TE) + 3 + 10 + 2  # chunk line, data, CRLF


def test_need_before_head_is_complete_is_unknown() -> None:
    assert frame(b"GET / HTTP/1.1\r\nHost:", 0, LIMITS) == Need(0, False)


@pytest.mark.parametrize(("raw", "expect"), [
    (b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", True),
    (b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 5\r\n\r\n", True),
    (b"POST / HTTP/1.1\r\nHost: h\r\nexpect:100-continue\r\nContent-Length: 5\r\n\r\nhel", True),
    (b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n", True),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n", False),
    (b"POST / HTTP/1.1\r\nHost: h\r\nExpect: something-else\r\nContent-Length: 5\r\n\r\n", False),
    (b"POST / HTTP/1.1\r\nHost: h\r\nX-Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", False),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", False),
    # RFC 9110 §10.1.1: a server MUST ignore a 100-continue expectation in an HTTP/1.0 request.
    (b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", False),
    # Head incomplete: nothing to continue yet.
    (b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n", False),
])
def test_need_expect_continue(raw: bytes, expect: bool) -> None:
    result = frame(raw, 0, LIMITS)
    assert type(result) is Need
    assert result.expect_continue is expect


def test_expect_continue_with_complete_body_is_a_request() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"
    assert bytes(framed(raw).body) == b"hello"
    raw = b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n"
    assert framed(raw).end == len(raw)


# ---------------------------------------------------------------------------------------------------
# 5. Pipelining
# ---------------------------------------------------------------------------------------------------
def test_pipelining_follows_end() -> None:
    buf = b"".join(PIPELINE)
    first = framed(buf)
    second = framed(buf, pos=first.end)
    third = framed(buf, pos=second.end)
    assert (first.method, first.target, first.query) == (b"GET", b"/search?q=x", b"q=x")
    assert (second.method, second.target, bytes(second.body)) == (b"POST", b"/form", b"hello, world!")
    assert (third.target, bytes(third.body), third.trailers()) == (b"/c", b"wiki", [(b"t", b"v")])
    assert third.end == len(buf)
    assert frame(buf, third.end, LIMITS) is NEED_MORE
    # The views share the one buffer and stay independent.
    assert first.header(b"accept") == b"*/*"
    assert second.header(b"accept") is None
    assert second.header(b"content-length") == b"13"


def test_pipelined_error_only_affects_its_own_request() -> None:
    buf = SIMPLE_GET + b"GET / HTTP/1.1\r\nHost: h\r\nBad Name: x\r\n\r\n"
    first = framed(buf)
    with pytest.raises(ProtocolError) as info:
        frame(buf, first.end, LIMITS)
    assert info.value.status == 400


# ---------------------------------------------------------------------------------------------------
# 6. Differential check against h11
# ---------------------------------------------------------------------------------------------------
_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VCHARS = [bytes([c]) for c in range(0x21, 0x7F)] + [bytes([c]) for c in range(0x80, 0x100)]
_RESERVED = {b"host", b"content-length", b"transfer-encoding", b"connection", b"upgrade", b"expect"}

tokens = st.text(alphabet=_TCHARS, min_size=1, max_size=12).map(str.encode)
words = st.lists(st.sampled_from(_VCHARS), min_size=1, max_size=8).map(b"".join)
ows = st.sampled_from([b"", b" ", b"\t", b"  ", b" \t"])
field_values = st.builds(
    lambda lead, ws, parts, trail: lead + b"".join(w + s for w, s in zip(parts, ws))[:-1] + trail
    if parts else lead + trail,
    ows, st.lists(st.sampled_from([b" ", b"\t", b"  "]), min_size=8, max_size=8),
    st.lists(words, max_size=4), ows,
)


@st.composite
def valid_requests(draw: st.DrawFn) -> tuple[bytes, bytes, bytes, bytes, list[tuple[bytes, bytes]], bytes]:
    method = draw(tokens)
    target = draw(st.lists(st.sampled_from(_VCHARS[:0x7F - 0x21]), min_size=1, max_size=40).map(b"".join))
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    fields: list[tuple[bytes, bytes]] = []
    for _ in range(draw(st.integers(0, 6))):
        name = draw(tokens.filter(lambda n: n.lower() not in _RESERVED))
        fields.append((name, draw(field_values)))
    if version == b"1.1" or draw(st.booleans()):
        # Host values from the uri-host [":" port] alphabet: we reject invalid Host values (RFC 9112 §3.2)
        # where h11 accepts any field value — an intended difference.
        host = draw(st.from_regex(rb"\A[a-zA-Z0-9.\-_~!$&'()*+,;=]{0,20}(:[0-9]{1,5})?\Z"))
        fields.append((draw(st.sampled_from([b"Host", b"host", b"HOST"])), host))
    if draw(st.booleans()):
        conn = draw(st.sampled_from([b"close", b"keep-alive", b"Keep-Alive", b"foo, close", b"keep-alive, bar", b"x"]))
        fields.append((draw(st.sampled_from([b"Connection", b"connection"])), conn))
    body = b""
    if draw(st.booleans()):
        body = draw(st.binary(max_size=64))
        fields.append((draw(st.sampled_from([b"Content-Length", b"content-length"])), b"%d" % len(body)))
    fields = draw(st.permutations(fields))
    head = method + b" " + target + b" HTTP/" + version + b"\r\n"
    head += b"".join(name + b":" + value + b"\r\n" for name, value in fields)
    raw = head + b"\r\n" + body
    expected = [(name.lower(), value.strip(b" \t")) for name, value in fields]
    return raw, method, target, version, expected, body


def _h11_parse(raw: bytes) -> tuple[h11.Request, bytes, bool]:
    """h11's view of one complete request: the Request event, the body, and keep-alive."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    request = conn.next_event()
    assert isinstance(request, h11.Request), request
    body = b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        else:
            assert isinstance(event, h11.EndOfMessage), event
            break
    # After the request, h11 is DONE with the client when the connection may be reused,
    # MUST_CLOSE when it may not.
    assert conn.their_state in (h11.DONE, h11.MUST_CLOSE)
    return request, body, conn.their_state is h11.DONE


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_requests())
def test_agrees_with_h11(case: tuple[bytes, bytes, bytes, bytes, list[tuple[bytes, bytes]], bytes]) -> None:
    raw, method, target, version, expected_headers, body = case
    h11_req, h11_body, h11_keep_alive = _h11_parse(raw)
    req = framed(raw)
    assert req.end == len(raw)
    assert req.method == h11_req.method == method
    assert req.target == h11_req.target == target
    assert req.version == b"HTTP/" + h11_req.http_version == b"HTTP/" + version
    assert req.header_items() == list(h11_req.headers) == expected_headers
    assert bytes(req.body) == h11_body == body
    if version == b"1.1":
        assert req.keep_alive is h11_keep_alive
    else:
        # h11 never keeps an HTTP/1.0 connection alive; we honour "Connection: keep-alive" (RFC 9112 §9.3).
        assert h11_keep_alive is False
        conn_tokens = [t.strip(b" \t").lower() for name, v in expected_headers if name == b"connection" for t in v.split(b",")]
        assert req.keep_alive is (b"keep-alive" in conn_tokens and b"close" not in conn_tokens)
    for name, _ in expected_headers:
        assert req.header_values(name) == [v for n, v in expected_headers if n == name]


@settings(max_examples=100, deadline=None)
@given(valid_requests())
def test_generated_requests_are_valid_at_every_split(
    case: tuple[bytes, bytes, bytes, bytes, list[tuple[bytes, bytes]], bytes],
) -> None:
    assert_valid_at_every_split(case[0])


@settings(max_examples=300, deadline=None)
@given(valid_requests(), st.data())
def test_mutated_requests_only_raise_protocol_error(
    case: tuple[bytes, bytes, bytes, bytes, list[tuple[bytes, bytes]], bytes], data: st.DataObject,
) -> None:
    """Corrupting one byte never makes the framer fail with anything but ProtocolError."""
    raw = case[0]
    i = data.draw(st.integers(0, len(raw) - 1))
    byte = data.draw(st.sampled_from([b"\r", b"\n", b" ", b"\t", b":", b",", b"\x00", b"\x7f", b"\xff", b"0", b"a"]))
    mutated = raw[:i] + byte + raw[i + 1:]
    for buf in (mutated, mutated[:data.draw(st.integers(0, len(mutated)))]):
        try:
            result = frame(buf, 0, LIMITS)
        except ProtocolError as error:
            assert error.status in (400, 413, 414, 431, 501, 505)
            assert error.reason
        else:
            assert type(result) in (Request, Need)
            if type(result) is Request:
                assert result.end <= len(buf)


# ---------------------------------------------------------------------------------------------------
# 7. No per-request header dict (not timed)
# ---------------------------------------------------------------------------------------------------
def test_request_view_has_no_header_dict() -> None:
    req = framed(b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nAccept: */*\r\nUser-Agent: x\r\n\r\n")
    assert not hasattr(req, "__dict__")
    assert "__dict__" not in Request.__slots__
    assert all(not hasattr(cls, "__dict__") or "__slots__" in vars(cls) for cls in type(req).__mro__[:-1])
    for slot in Request.__slots__:
        assert not isinstance(getattr(req, slot, None), dict), slot
    with pytest.raises(AttributeError):
        req.headers = {}  # type: ignore[attr-defined]
    # The header section is kept as one lower-cased bytes copy (same offsets as the original).
    assert isinstance(req._lower, bytes)
    assert req._lower == b"\r\nhost: 127.0.0.1:8080\r\naccept: */*\r\nuser-agent: x\r\n"


@pytest.mark.parametrize("host", [b"", b"example.com", b"EXAMPLE.com:8080", b"127.0.0.1:80", b"[::1]:8080", b"a%20b", b"a,b", b"x:"])
def test_valid_host_values_are_accepted(host: bytes) -> None:
    req = frame(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n", 0, Limits())
    assert isinstance(req, Request) and req.header(b"host") == host
