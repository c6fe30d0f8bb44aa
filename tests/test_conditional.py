"""vanilla_async.conditional: validators, RFC 9110 precedence, ranges — units and over real sockets."""

from __future__ import annotations

import os

import pytest

from vanilla_async import Request, respond
from vanilla_async.conditional import (
    UNSATISFIABLE,
    ByteRange,
    ConditionalError,
    check_preconditions,
    content_range,
    evaluate,
    file_etag,
    http_date,
    parse_etags,
    parse_http_date,
    parse_range,
    range_applies,
    strong_etag,
    strong_match,
    weak_etag,
    weak_match,
)
from vanilla_async.testing import make_request, serve

TAG = b'"v1"'
MTIME = 784111777  # Sun, 06 Nov 1994 08:49:37 GMT
DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


def req(*headers: bytes, method: bytes = b"GET") -> Request:
    return make_request(method + b" / HTTP/1.1\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n")


def test_etag_builders() -> None:
    assert strong_etag(b"abc") == strong_etag(bytearray(b"abc")) != strong_etag(b"abd")
    assert strong_etag(b"abc").startswith(b'"') and strong_etag(b"abc").endswith(b'"')
    assert weak_etag(TAG) == b'W/"v1"' and weak_etag(b'W/"v1"') == b'W/"v1"'
    with pytest.raises(ConditionalError, match="quoted string"):
        weak_etag(b"v1")
    st = os.stat(__file__)
    assert file_etag(st) == b'"%x-%x"' % (st.st_mtime_ns, st.st_size)
    assert file_etag(st, weak=True) == b"W/" + file_etag(st)


def test_comparisons() -> None:
    assert weak_match(b'W/"1"', b'"1"') and weak_match(b'W/"1"', b'W/"1"') and not weak_match(b'"1"', b'"2"')
    assert strong_match(b'"1"', b'"1"') and not strong_match(b'W/"1"', b'W/"1"') and not strong_match(b'W/"1"', b'"1"')


@pytest.mark.parametrize("values, expected", [
    ([b'"a"'], [b'"a"']),
    ([b'"a", W/"b" ,"c"'], [b'"a"', b'W/"b"', b'"c"']),
    ([b'"a"', b'W/"b"'], [b'"a"', b'W/"b"']),  # repeated header lines
    ([b"*"], None),
    ([b'""'], [b'""']),
    ([b"a"], []),                               # not quoted: matches nothing
    ([b'"a" "b"'], []),
])
def test_parse_etags(values: list[bytes], expected: list[bytes] | None) -> None:
    assert parse_etags(values) == expected


@pytest.mark.parametrize("value, expected", [
    (DATE, MTIME),
    (b"Sunday, 06-Nov-94 08:49:37 GMT", MTIME),   # RFC 850
    (b"Sun Nov  6 08:49:37 1994", MTIME),         # asctime
    (b"Sun, 06 Nov 1994 08:49:37 +0000", None),
    (b"Sun, 06 Nov 1994 08:49:37", None),
    (b"Sun, 32 Nov 1994 08:49:37 GMT", None),
    (b"Sun, 06 Foo 1994 08:49:37 GMT", None),
    (b"yesterday", None),
    (None, None),
])
def test_parse_http_date(value: bytes | None, expected: int | None) -> None:
    assert parse_http_date(value) == expected


def test_http_date_round_trips() -> None:
    assert http_date(MTIME + 0.9) == DATE and parse_http_date(http_date(1_700_000_000)) == 1_700_000_000


@pytest.mark.parametrize("headers, method, expected", [
    ((), b"GET", 200),
    ((b'If-None-Match: "v1"',), b"GET", 304),
    ((b'If-None-Match: W/"v1"',), b"GET", 304),           # weak comparison
    ((b'If-None-Match: "x", "v1"',), b"HEAD", 304),       # a list
    ((b"If-None-Match: *",), b"GET", 304),
    ((b'If-None-Match: "x"',), b"GET", 200),
    ((b'If-None-Match: "v1"',), b"POST", 412),            # not GET/HEAD: 412
    ((b"If-Modified-Since: " + DATE,), b"GET", 304),
    ((b"If-Modified-Since: Sat, 05 Nov 1994 08:49:37 GMT",), b"GET", 200),
    ((b"If-Modified-Since: garbage",), b"GET", 200),      # invalid: ignored
    ((b"If-Modified-Since: " + DATE,), b"POST", 200),     # only for GET/HEAD
    ((b'If-None-Match: "x"', b"If-Modified-Since: " + DATE), b"GET", 200),  # IMS ignored beside INM
    ((b'If-Match: "v1"',), b"PUT", 200),
    ((b'If-Match: W/"v1"',), b"PUT", 412),                # If-Match compares strongly
    ((b'If-Match: "x"',), b"GET", 412),
    ((b"If-Match: *",), b"PUT", 200),
    ((b"If-Unmodified-Since: " + DATE,), b"PUT", 200),
    ((b"If-Unmodified-Since: Sat, 05 Nov 1994 08:49:37 GMT",), b"PUT", 412),
    ((b"If-Unmodified-Since: nonsense",), b"PUT", 200),
    ((b'If-Match: "v1"', b"If-Unmodified-Since: Sat, 05 Nov 1994 08:49:37 GMT"), b"PUT", 200),  # IUS ignored
])
def test_evaluate_follows_rfc_9110_precedence(headers: tuple[bytes, ...], method: bytes, expected: int) -> None:
    assert evaluate(req(*headers, method=method), etag=TAG, last_modified=MTIME + 0.5) == expected


@pytest.mark.parametrize("value, size, expected", [
    (b"bytes=0-99", 1000, ByteRange(0, 100, 1000)),
    (b"bytes=500-", 1000, ByteRange(500, 1000, 1000)),
    (b"bytes=-100", 1000, ByteRange(900, 1000, 1000)),
    (b"bytes=-5000", 1000, ByteRange(0, 1000, 1000)),
    (b"bytes=900-5000", 1000, ByteRange(900, 1000, 1000)),
    (b"BYTES = 1-1", 1000, ByteRange(1, 2, 1000)),
    (b"bytes=999-", 1000, ByteRange(999, 1000, 1000)),
    (b"bytes=1000-", 1000, UNSATISFIABLE),
    (b"bytes=99999999999999999999999-", 1000, UNSATISFIABLE),
    (b"bytes=-0", 1000, UNSATISFIABLE),
    (b"bytes=0-", 0, UNSATISFIABLE),
    (b"bytes=5-1", 1000, None),       # invalid: ignored
    (b"bytes=0-1,5-6", 1000, None),   # several ranges: the whole 200 (documented)
    (b"items=0-1", 1000, None),
    (b"bytes=a-b", 1000, None),
    (b"bytes=-", 1000, None),
    (b"bytes", 1000, None),
    (None, 1000, None),
])
def test_parse_range(value: bytes | None, size: int, expected: object) -> None:
    assert parse_range(value, size) == expected


def test_content_range_and_if_range() -> None:
    assert content_range(ByteRange(0, 100, 1000)) == b"bytes 0-99/1000"
    assert range_applies(req(), etag=TAG, last_modified=MTIME)
    assert range_applies(req(b'If-Range: "v1"'), etag=TAG, last_modified=MTIME)
    assert not range_applies(req(b'If-Range: W/"v1"'), etag=b'W/"v1"', last_modified=MTIME)  # weak never matches
    assert not range_applies(req(b'If-Range: "v0"'), etag=TAG, last_modified=MTIME)
    assert range_applies(req(b"If-Range: " + DATE), etag=TAG, last_modified=MTIME)
    assert not range_applies(req(b"If-Range: Sat, 05 Nov 1994 08:49:37 GMT"), etag=TAG, last_modified=MTIME)
    assert not range_applies(req(b"If-Range: nonsense"), etag=TAG, last_modified=MTIME)


def handler(r: Request, out: bytearray) -> None:
    if check_preconditions(r, out, etag=TAG, last_modified=MTIME, headers=[("Cache-Control", "no-cache")]):
        return
    respond(out, 200, b"body", headers=[("ETag", TAG), ("Cache-Control", "no-cache")])


def test_check_preconditions_over_a_socket(backend: str) -> None:
    with serve(handler, backend=backend) as server:
        client = server.connect()
        client.send(b'GET / HTTP/1.1\r\nHost: t\r\nIf-None-Match: W/"v1"\r\n\r\n')
        fresh = client.read_response()
        client.send(b'PUT / HTTP/1.1\r\nHost: t\r\nIf-Match: "nope"\r\nContent-Length: 0\r\n\r\n')
        failed = client.read_response()
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        full = client.read_response()
    assert fresh.status == 304 and fresh.body == b"" and fresh.header("content-length") is None
    assert fresh.header("etag") == TAG and fresh.header("last-modified") == DATE
    assert fresh.header("cache-control") == b"no-cache"
    assert failed.status == 412 and b"precondition failed" in failed.body
    assert (full.status, full.body) == (200, b"body")
