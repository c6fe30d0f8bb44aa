"""A request-smuggling corpus, sent to a live server (RFC 9112 §11.2, §6, §7, §2.2, §5).

Each case is raw bytes that some parser in front of us (a proxy, a load balancer) might frame
differently: CL.TE, TE.CL, TE.TE obfuscations, Content-Length tricks, chunk-size tricks, bare LF
and CR, NUL, overlong fields, HTTP/1.0 with Transfer-Encoding, bodies that contain requests. The
handler records every request it is given. For each case the test asserts:

* the exact requests the handler saw (a correct parser's count — never a smuggled second one);
* for a rejected case: the error status (400 / 413 / 414 / 431 / 501 / 505) with
  ``Connection: close``, after the responses owed to the requests before it, and the server then
  closes the connection;
* for a case accepted by design (see ``note``): the requests are served, and a probe request sent
  afterwards on the same connection is answered as the *next* request — the parser is still in step
  with the client (a desync would show as a different target or an error);
* on exit, the test server reports no leaks.

Every case is sent whole and in small pieces; the verdict must not change.
docs/framer-vs-h11.md explains the choices (what we reject that others accept, and why).
"""

from __future__ import annotations

from typing import NamedTuple

import pytest

from vanilla_async._core.limits import Limits
from vanilla_async._core.request import Request
from vanilla_async.testing import Client, serve

LIMITS = Limits(max_request_line=1024, max_header_bytes=2048, max_body_bytes=4096, read_timeout=3.0)
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
PROBE = b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n"
POST = b"POST / HTTP/1.1\r\nHost: h\r\n"
GET = b"GET / HTTP/1.1\r\nHost: h\r\n"
TE = b"Transfer-Encoding: chunked\r\n"


class Case(NamedTuple):
    id: str
    raw: bytes
    served: tuple[bytes, ...]  # targets the handler must see, in order
    status: int | None  # the error that must follow them (None: no error)
    open: bool = False  # accepted and kept alive: a probe must be answered next on the same connection
    note: str = ""


def cl(n: int) -> bytes:
    return b"Content-Length: %d\r\n" % n


CASES: list[Case] = [
    # --- CL.TE / TE.CL: both framing fields -> 400, never resolved (RFC 9112 §6.1, §6.3 item 3, §11.2)
    Case("cl-te", POST + cl(6) + TE + b"\r\n0\r\n\r\nG" + SMUGGLED, (), 400),
    Case("te-cl", POST + TE + cl(4) + b"\r\n5c\r\nGPOST / HTTP/1.1\r\n\r\n0\r\n\r\n", (), 400),
    Case("cl-te-smuggled-request", POST + cl(len(b"0\r\n\r\n" + SMUGGLED)) + TE + b"\r\n0\r\n\r\n" + SMUGGLED, (), 400),
    Case("te-cl-zero", POST + TE + cl(0) + b"\r\n" + b"%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n", (), 400),
    Case("cl-te-http10", b"POST / HTTP/1.0\r\n" + cl(5) + TE + b"\r\n0\r\n\r\n", (), 400),
    # --- TE.TE obfuscations
    Case("te-xchunked", POST + b"Transfer-Encoding: xchunked\r\n" + cl(5) + b"\r\n0\r\n\r\n", (), 400),
    Case("te-xchunked-alone", POST + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n" + SMUGGLED, (), 400,
         note="chunked is not the final coding: the length cannot be determined (§6.3 item 4)"),
    Case("te-chunked-identity", POST + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", (), 400),
    Case("te-identity-chunked", POST + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", (), 501,
         note="chunked is final, so the length is known, but identity is not a coding we implement (§6.1: 501)"),
    Case("te-gzip-chunked", POST + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", (), 501),
    Case("te-chunked-gzip", POST + b"Transfer-Encoding: chunked, gzip\r\n\r\n0\r\n\r\n", (), 400),
    Case("te-chunked-chunked", POST + b"Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", (), 400),
    Case("te-duplicate-lines", POST + TE + TE + b"\r\n0\r\n\r\n" + SMUGGLED, (), 400,
         note="chunked applied twice (§6.1: a sender MUST NOT apply chunked more than once)"),
    Case("te-duplicate-with-identity", POST + TE + b"Transfer-Encoding: identity\r\n\r\n0\r\n\r\n", (), 400),
    Case("te-space-before-colon", POST + b"Transfer-Encoding : chunked\r\n" + cl(5) + b"\r\n0\r\n\r\n", (), 400,
         note="§5.1: whitespace between field name and colon MUST be rejected with 400"),
    Case("te-space-before-colon-alone", POST + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", (), 400),
    Case("te-tab-before-colon", POST + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", (), 400),
    Case("te-leading-space-line", POST + b" Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", (), 400,
         note="a line starting with whitespace is obs-fold (§5.2): rejected"),
    Case("te-obs-fold-value", POST + b"Transfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", (), 400),
    Case("te-obs-fold-after-other", POST + b"X-A: a\r\n Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", (), 400),
    Case("te-tab-value", POST + b"Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n", (b"/",), None, True,
         note="HTAB is OWS before a field value (§5.1, RFC 9110 §5.6.3): a valid chunked request"),
    Case("te-tab-value-with-cl", POST + b"Transfer-Encoding:\tchunked\r\n" + cl(5) + b"\r\n0\r\n\r\n", (), 400),
    Case("te-spaces-around-value", POST + b"Transfer-Encoding:   chunked \t\r\n\r\n0\r\n\r\n", (b"/",), None, True,
         note="OWS around the value is not part of it"),
    Case("te-uppercase", POST + b"TRANSFER-ENCODING: CHUNKED\r\n\r\n0\r\n\r\n", (b"/",), None, True,
         note="field names and transfer-coding names are case-insensitive (RFC 9110 §5.1, RFC 9112 §7)"),
    Case("te-empty-list-element", POST + b"Transfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", (b"/",), None, True,
         note="RFC 9110 §5.6.1: empty list elements are ignored (h11 rejects this; an intended difference)"),
    Case("te-vertical-tab", POST + b"Transfer-Encoding: \x0bchunked\r\n\r\n0\r\n\r\n", (), 400),
    Case("te-nul", POST + b"Transfer-Encoding: chunked\x00\r\n\r\n0\r\n\r\n", (), 400),
    Case("te-quoted", POST + b'Transfer-Encoding: "chunked"\r\n\r\n0\r\n\r\n', (), 400),
    Case("te-empty", POST + b"Transfer-Encoding:\r\n" + cl(0) + b"\r\n", (), 400),
    Case("te-underscore-name", POST + b"Transfer_Encoding: chunked\r\n" + cl(5) + b"\r\n0\r\n\r\n", (b"/",), None, True,
         note="Transfer_Encoding is another (valid) field name: the request is framed by its Content-Length"),
    Case("te-http10", b"POST / HTTP/1.0\r\n" + TE + b"\r\n0\r\n\r\n", (), 400,
         note="§6.1: Transfer-Encoding in an HTTP/1.0 request means faulty framing"),
    Case("te-in-trailer", POST + TE + b"\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n", (b"/",), None, True,
         note="a trailer field never changes the framing; trailers are kept apart from the header section"),
    # --- Content-Length (RFC 9110 §8.6, RFC 9112 §6.3 item 5)
    Case("cl-duplicate-different", POST + cl(5) + cl(6) + b"\r\nhello!", (), 400),
    Case("cl-duplicate-same", POST + cl(5) + cl(5) + b"\r\nhello", (b"/",), None, True,
         note="identical repeated values are one value (RFC 9110 §8.6)"),
    Case("cl-list-same", POST + b"Content-Length: 5, 5\r\n\r\nhello", (b"/",), None, True),
    Case("cl-list-different", POST + b"Content-Length: 5, 6\r\n\r\nhello!", (), 400),
    Case("cl-list-trailing-comma", POST + b"Content-Length: 5,\r\n\r\nhello", (), 400),
    Case("cl-signed-minus", POST + b"Content-Length: -1\r\n\r\n" + SMUGGLED, (), 400),
    Case("cl-leading-plus", POST + b"Content-Length: +5\r\n\r\nhello", (), 400),
    Case("cl-hex", POST + b"Content-Length: 0x5\r\n\r\nhello", (), 400),
    Case("cl-exponent", POST + b"Content-Length: 1e1\r\n\r\nhelloworld", (), 400),
    Case("cl-decimal", POST + b"Content-Length: 5.0\r\n\r\nhello", (), 400),
    Case("cl-inner-space", POST + b"Content-Length: 1 0\r\n\r\nhelloworld", (), 400),
    Case("cl-empty", POST + b"Content-Length:\r\n\r\n", (), 400),
    Case("cl-space-before-colon", POST + b"Content-Length : 5\r\n\r\nhello", (), 400),
    Case("cl-obs-fold", POST + b"Content-Length:\r\n 5\r\n\r\nhello", (), 400),
    Case("cl-nul", POST + b"Content-Length: 5\x00\r\n\r\nhello", (), 400),
    Case("cl-overflow", POST + b"Content-Length: 18446744073709551621\r\n\r\nhello", (), 413,
         note="a valid 1*DIGIT value far over max_body_bytes: 413, decided before reading the body (no wrap-around)"),
    Case("cl-over-limit", POST + cl(LIMITS.max_body_bytes + 1) + b"\r\n", (), 413),
    Case("cl-leading-zeros", POST + b"Content-Length: 0005\r\n\r\nhello", (b"/",), None, True),
    Case("get-with-body-containing-request", GET + cl(len(SMUGGLED)) + b"\r\n" + SMUGGLED, (b"/",), None, True,
         note="the body is data, never a request: one request, then the probe"),
    Case("get-with-body-then-request", GET + cl(5) + b"\r\nhello" + b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
         (b"/", b"/2"), None, True, note="a body followed by a genuinely pipelined request: two requests"),
    Case("get-cl-short", GET + cl(1) + b"\r\nXGET /2 HTTP/1.1\r\nHost: h\r\n\r\n", (b"/", b"/2"), None, True),
    # --- chunk-size and chunk framing tricks (RFC 9112 §7.1)
    Case("chunk-size-0x", POST + TE + b"\r\n0x10\r\n" + b"a" * 16 + b"\r\n0\r\n\r\n", (), 400),
    Case("chunk-size-minus", POST + TE + b"\r\n-1\r\na\r\n0\r\n\r\n", (), 400),
    Case("chunk-size-plus", POST + TE + b"\r\n+1\r\na\r\n0\r\n\r\n", (), 400),
    Case("chunk-size-overflow-wraps", POST + TE + b"\r\n10000000000000001\r\na\r\n0\r\n\r\n" + SMUGGLED, (), 400,
         note="17 significant hex digits: 2**64 + 1 would wrap to 1 in a 64-bit parser (§7.1: prevent overflow)"),
    Case("chunk-size-over-limit", POST + TE + b"\r\nffffffffffffffff\r\n", (), 413),
    Case("chunk-size-leading-space", POST + TE + b"\r\n 1\r\na\r\n0\r\n\r\n", (), 400),
    Case("chunk-size-trailing-space", POST + TE + b"\r\n1 \r\na\r\n0\r\n\r\n", (), 400),
    Case("chunk-size-empty", POST + TE + b"\r\n\r\na\r\n0\r\n\r\n", (), 400),
    Case("chunk-size-leading-zeros", POST + TE + b"\r\n" + b"0" * 30 + b"1\r\na\r\n0\r\n\r\n", (b"/",), None, True,
         note="only significant digits count toward overflow (h11 rejects more than 20 digits: an intended difference)"),
    Case("chunk-ext-valid", POST + TE + b'\r\n1;name=value;q="a b"\r\na\r\n0;last\r\n\r\n', (b"/",), None, True),
    Case("chunk-ext-bad-nul", POST + TE + b"\r\n1;ext\x00\r\na\r\n0\r\n\r\n", (), 400),
    Case("chunk-ext-unterminated-quote", POST + TE + b'\r\n1;a="x\r\na\r\n0\r\n\r\n', (), 400),
    Case("chunk-ext-no-name", POST + TE + b"\r\n1;=x\r\na\r\n0\r\n\r\n", (), 400),
    Case("chunk-ext-bare-lf", POST + TE + b"\r\n1;a\nb\r\na\r\n0\r\n\r\n", (), 400),
    Case("chunk-data-missing-crlf", POST + TE + b"\r\n5\r\nhello0\r\n\r\n" + SMUGGLED, (), 400),
    Case("chunk-data-too-long", POST + TE + b"\r\n3\r\nhello\r\n0\r\n\r\n", (), 400),
    Case("chunk-lf-terminators", POST + TE + b"\r\n5\nhello\n0\n\n" + SMUGGLED, (), 400),
    Case("chunk-data-lf-only", POST + TE + b"\r\n5\r\nhello\n0\r\n\r\n", (), 400),
    Case("chunk-last-lf-only", POST + TE + b"\r\n0\n\n" + SMUGGLED, (), 400),
    Case("chunk-trailer-lf-end", POST + TE + b"\r\n0\r\nX: y\n\n" + SMUGGLED, (), 400),
    Case("chunk-request-instead-of-size", POST + TE + b"\r\n5\r\nhello\r\n" + SMUGGLED, (), 400),
    Case("chunk-body-containing-request", POST + TE + b"\r\n%x\r\n" % len(SMUGGLED) + SMUGGLED + b"\r\n0\r\n\r\n",
         (b"/",), None, True),
    # --- line endings (RFC 9112 §2.2): we accept CRLF only, and ignore empty lines before a request
    Case("bare-lf-request-line", b"GET / HTTP/1.1\nHost: h\r\n\r\n", (), 400,
         note="§2.2 lets a recipient accept a bare LF (MAY); we do not: a front end that splits lines "
              "differently would see other fields"),
    Case("bare-lf-everywhere", b"GET / HTTP/1.1\nHost: h\n\n" + SMUGGLED, (), 400),
    Case("bare-lf-header", GET + b"X-A: a\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", (), 400),
    Case("bare-lf-end-of-head", GET + b"\n" + SMUGGLED, (), 400),
    Case("bare-lf-end-of-head-crlf", GET + b"\n\r\n" + SMUGGLED, (), 400),
    Case("bare-cr-header", GET + b"X-A: a\rTransfer-Encoding: chunked\r\n\r\n", (), 400,
         note="§2.2: a bare CR MUST be treated as invalid (or replaced by SP); we reject"),
    Case("bare-cr-line-end", GET + b"X-A: a\r\r\n\r\n", (), 400),
    Case("bare-cr-request-line", b"GET / HTTP/1.1\rHost: h\r\n\r\n", (), 400),
    Case("leading-empty-lines", b"\r\n\r\n" + GET + b"\r\n", (b"/",), None, True,
         note="§2.2: a server SHOULD ignore at least one empty line before the request-line (h11 rejects)"),
    Case("leading-bare-lf", b"\n" + GET + b"\r\n", (), 400),
    # --- NUL and other controls
    Case("nul-in-header-value", GET + b"X-A: a\x00b\r\n\r\n", (), 400),
    Case("nul-in-header-name", GET + b"X\x00A: b\r\n\r\n", (), 400),
    Case("nul-in-target", b"GET /\x00 HTTP/1.1\r\nHost: h\r\n\r\n", (), 400),
    Case("nul-in-method", b"G\x00ET / HTTP/1.1\r\nHost: h\r\n\r\n", (), 400),
    Case("del-in-header-value", GET + b"X-A: a\x7fb\r\n\r\n", (), 400),
    Case("space-in-target", b"GET /a HTTP/1.1 HTTP/1.1\r\nHost: h\r\n\r\n", (), 400),
    # --- Host (RFC 9112 §3.2): a request that names two hosts is routed differently by different hops
    Case("two-hosts", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", (), 400),
    Case("host-missing", b"GET / HTTP/1.1\r\n\r\n", (), 400),
    Case("host-with-space", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", (), 400),
    Case("host-list", b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", (), 400),
    # --- versions (RFC 9112 §2.3)
    Case("version-2.0", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", (), 505),
    Case("version-0.9", b"GET / HTTP/0.9\r\nHost: h\r\n\r\n", (), 505),
    Case("version-lowercase", b"GET / http/1.1\r\nHost: h\r\n\r\n", (), 400),
    Case("version-1.10", b"GET / HTTP/1.10\r\nHost: h\r\n\r\n", (), 400),
    # --- overlong fields (Limits; RFC 9110 §15.5.15, RFC 6585 §5)
    Case("overlong-request-line", b"GET /" + b"a" * 1100 + b" HTTP/1.1\r\nHost: h\r\n\r\n", (), 414),
    Case("overlong-header-value", GET + b"X-A: " + b"v" * 2100 + b"\r\n\r\n", (), 431),
    Case("many-headers", GET + b"X-A: v\r\n" * 300 + b"\r\n", (), 431),
    Case("overlong-trailers", POST + TE + b"\r\n0\r\nX-T: " + b"v" * 2100 + b"\r\n\r\n", (), 431),
    Case("chunked-body-over-limit", POST + TE + b"\r\n" + (b"800\r\n" + b"a" * 0x800 + b"\r\n") * 3, (), 413),
    Case("overlong-chunk-line", POST + TE + b"\r\n1;" + b"e" * 5000 + b"\r\na\r\n0\r\n\r\n", (), 400),
    # --- pipelines: the error answers only its own request, after the ones before it
    Case("valid-then-cl-te", GET + b"\r\n" + POST + cl(6) + TE + b"\r\n0\r\n\r\nG" + SMUGGLED, (b"/",), 400),
    Case("valid-then-bad-header", GET + b"\r\n" + b"GET /2 HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n", (b"/",), 400),
    Case("close-then-smuggled", GET + b"Connection: close\r\n\r\n" + SMUGGLED, (b"/",), None,
         note="nothing after a request that closes the connection is ever served"),
    Case("http10-then-smuggled", b"GET / HTTP/1.0\r\n\r\n" + SMUGGLED, (b"/",), None),
    Case("expect-continue-cl-te", POST + b"Expect: 100-continue\r\n" + cl(5) + TE + b"\r\n", (), 400),
]


def _check(server_address: tuple[str, int], seen: list[bytes], case: Case, pieces: int) -> None:
    if case.status is None and not case.open:
        # The server closes right after the response to a request that said so; bytes still arriving
        # then would be answered with a reset that can destroy that response: send these whole.
        pieces = 1
    with Client(server_address, timeout=5.0) as client:
        if pieces == 1:
            client.send(case.raw)
        else:
            step = max(1, len(case.raw) // pieces)
            client.send_at(case.raw, range(step, len(case.raw), step), pause=0.001)
        for target in case.served:
            response = client.read_response(b"GET")
            assert response.status == 200, response
            assert response.header(b"x-target") == target
        if case.status is not None:
            response = client.read_response(b"GET")
            assert response.status == case.status, response.body
            assert response.closes, response.headers
            assert client.closed_by_server(timeout=3.0), "the server kept the connection open after the error"
        elif case.open:
            client.send(PROBE)
            response = client.read_response(b"GET")
            assert (response.status, response.header(b"x-target")) == (200, b"/after"), response
        else:
            assert client.closed_by_server(timeout=3.0), "the server kept a closing connection open"
    expected = list(case.served) + ([b"/after"] if case.open else [])
    assert seen == expected, f"the handler saw {seen}, a correct parser sees {expected}"


@pytest.mark.parametrize("pieces", [1, 9], ids=["whole", "pieces"])
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_smuggling_case(case: Case, pieces: int, backend: str) -> None:
    seen: list[bytes] = []

    def handler(req: Request, out: bytearray) -> None:
        seen.append(req.target)
        out += b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Target: %s\r\n\r\n" % req.target

    with serve(handler, backend=backend, limits=LIMITS) as server:
        _check(server.address, seen, case, pieces)


def test_case_ids_are_unique() -> None:
    assert len({c.id for c in CASES}) == len(CASES)
