"""Chunked responses (vanilla_async.streaming) and Server-Sent Events (vanilla_async.sse):
pure encoding checked against the specs (h11 for chunked framing, the WHATWG parsing algorithm
for event streams), then streamed end to end over a real server on both backends."""

from __future__ import annotations

import re
import time
from typing import Any, Iterator

import h11
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vanilla_async import Request, ResponseError, respond, sleep, sse
from vanilla_async._core.response import date_header
from vanilla_async.sse import Event, decode, encode_comment, encode_event
from vanilla_async.streaming import chunk, end_chunked, relay, start_chunked, status_at, write_chunk
from vanilla_async.testing import serve

#: every test here runs over cleartext and over TLS (conftest.each_transport)
pytestmark = pytest.mark.usefixtures("each_transport")

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def h11_parse(raw: bytes) -> tuple[h11.Response, bytes, list[tuple[bytes, bytes]]]:
    """Parse one complete response with h11 as a strict client: (head, body, trailers)."""
    conn = h11.Connection(h11.CLIENT)
    conn.send(h11.Request(method="GET", target="/", headers=[("Host", "t")]))
    conn.send(h11.EndOfMessage())
    conn.receive_data(raw)
    head: h11.Response | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Response):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            assert conn.trailing_data == (b"", False), "bytes after the end of the response"
            return head, bytes(body), list(event.headers)
        else:
            raise AssertionError(f"incomplete response: h11 says {event!r} after {raw!r}")


# -- streaming: chunked framing ---------------------------------------------------------------------------
def test_start_chunked_writes_a_complete_head() -> None:
    out = bytearray()
    start_chunked(out, 201, content_type="application/x-ndjson", headers=[("X-Id", 7), (b"X-Name", "a b")])
    assert bytes(out) == (
        b"HTTP/1.1 201 Created\r\n" + date_header() + b"Content-Type: application/x-ndjson\r\n"
        b"X-Id: 7\r\nX-Name: a b\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    out = bytearray()
    start_chunked(out, content_type=None)
    assert bytes(out) == b"HTTP/1.1 200 OK\r\n" + date_header() + b"Transfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize("headers", [
    [("X-A", "ok\r\nSet-Cookie: evil=1")],
    [("X-A", b"line\nbreak")],
    [("X-A", b"nul\x00")],
    [("Bad Name", "x")],
    [("Content-Length", 5)],
    [("transfer-encoding", "chunked")],
])
def test_start_chunked_refuses_bad_or_framing_headers_and_appends_nothing(headers: list[tuple[str, Any]]) -> None:
    out = bytearray(b"earlier")
    with pytest.raises(ResponseError):
        start_chunked(out, headers=headers)
    assert out == b"earlier"


@pytest.mark.parametrize("status", [100, 204, 304])
def test_start_chunked_refuses_statuses_without_a_body(status: int) -> None:
    out = bytearray()
    with pytest.raises(ResponseError, match="no body"):
        start_chunked(out, status)
    assert out == b""


def test_write_chunk_sizes_are_hex_byte_counts() -> None:
    out = bytearray()
    write_chunk(out, b"x" * 300)
    assert out == b"12c\r\n" + b"x" * 300 + b"\r\n"
    out = bytearray()
    write_chunk(out, "héllo")  # str: UTF-8, the size counts bytes (6), not characters (5)
    assert out == b"6\r\nh\xc3\xa9llo\r\n"
    out = bytearray()
    write_chunk(out, memoryview(b"abc"))
    write_chunk(out, bytearray(b"de"))
    assert out == b"3\r\nabc\r\n2\r\nde\r\n"
    assert chunk(b"abc") == b"3\r\nabc\r\n" and chunk("é") == b"2\r\n\xc3\xa9\r\n"


def test_empty_data_appends_no_chunk_because_that_would_end_the_body() -> None:
    out = bytearray()
    write_chunk(out, b"")
    write_chunk(out, "")
    write_chunk(out, memoryview(b""))
    assert out == b"" and chunk(b"") == b""


def test_end_chunked_with_and_without_trailers() -> None:
    out = bytearray()
    end_chunked(out)
    assert out == b"0\r\n\r\n"
    out = bytearray()
    end_chunked(out, trailers=[("X-Checksum", "abc"), ("X-Count", 3)])
    assert out == b"0\r\nX-Checksum: abc\r\nX-Count: 3\r\n\r\n"
    with pytest.raises(ResponseError):
        end_chunked(bytearray(), trailers=[("X-A", "a\r\nb")])


def test_a_chunked_response_is_valid_http_for_h11() -> None:
    out = bytearray()
    start_chunked(out, headers=[("X-A", "1")])
    for piece in (b"first ", b"", "sécond ", b"x" * 5000):
        write_chunk(out, piece)
    end_chunked(out, trailers=[("X-Done", "yes")])
    head, body, trailers = h11_parse(bytes(out))
    assert head.status_code == 200 and (b"transfer-encoding", b"chunked") in head.headers
    assert body == "first sécond ".encode() + b"x" * 5000
    assert trailers == [(b"x-done", b"yes")]


# -- sse: encoding -----------------------------------------------------------------------------------------
def test_encode_a_simple_event() -> None:
    assert encode_event("hello") == b"data: hello\n\n"
    assert encode_event("tick 7", id=7, event="tick") == b"event: tick\nid: 7\ndata: tick 7\n\n"
    assert encode_event(b"x", id=b"a-1", retry=1500) == b"id: a-1\nretry: 1500\ndata: x\n\n"
    assert encode_event("x", id="") == b"id: \ndata: x\n\n"  # an empty id resets the client's last id


def test_multi_line_data_with_mixed_line_endings_becomes_one_data_line_each() -> None:
    encoded = encode_event("one\r\ntwo\rthree\nfour")
    assert encoded == b"data: one\ndata: two\ndata: three\ndata: four\n\n"
    assert decode(encoded) == [Event("one\ntwo\nthree\nfour")]
    # CR LF is one line ending, LF CR is two; a trailing newline survives as an empty last line
    assert encode_event(b"a\n\rb\r\n") == b"data: a\ndata: \ndata: b\ndata: \n\n"
    assert decode(encode_event(b"a\n\rb\r\n")) == [Event("a\n\nb\n")]


def test_only_cr_and_lf_split_data_lines() -> None:
    text = "a\u2028b\x0bc\x0cd\x85e\x1cf"  # str.splitlines() would split on every one of these
    assert encode_event(text) == b"data: " + text.encode() + b"\n\n"
    assert decode(encode_event(text)) == [Event(text)]


def test_unicode_data_is_utf8() -> None:
    text = "héllo ✓ 日本語 🎉"
    assert encode_event(text, id="ïd", event="ünï") == "event: ünï\nid: ïd\ndata: héllo ✓ 日本語 🎉\n\n".encode()
    assert decode(encode_event(text, id="ïd", event="ünï")) == [Event(text, "ünï", "ïd")]
    assert encode_event(text.encode("utf-8")) == encode_event(text)


def test_empty_and_absent_data() -> None:
    assert encode_event("") == b"data: \n\n"
    assert decode(encode_event("")) == [Event("")]  # dispatched, with empty data
    assert encode_event(None, id=5) == b"id: 5\n\n"
    assert decode(encode_event(None, id=5) + encode_event("x")) == [Event("x", id="5")]  # not dispatched; id kept


def test_leading_spaces_in_values_survive() -> None:
    assert encode_event("  indented", id=" x") == b"id:  x\ndata:   indented\n\n"
    assert decode(encode_event("  indented", id=" x")) == [Event("  indented", id=" x")]


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\r\nb", b"\n", "\r"])
def test_cr_or_lf_in_id_or_event_is_refused(bad: str | bytes) -> None:
    with pytest.raises(ResponseError, match="CR"):
        encode_event("x", id=bad)
    with pytest.raises(ResponseError, match="CR"):
        encode_event("x", event=bad)
    out = bytearray()
    with pytest.raises(ResponseError):
        sse.event(out, "x", id=bad)
    assert out == b""


def test_nul_in_id_is_refused_but_allowed_in_data() -> None:
    with pytest.raises(ResponseError, match="NUL"):
        encode_event("x", id="a\x00b")
    assert encode_event("a\x00b") == b"data: a\x00b\n\n"


@pytest.mark.parametrize("retry", [-1, 1.5, True, "100"])
def test_retry_must_be_a_non_negative_int(retry: Any) -> None:
    with pytest.raises(ResponseError, match="retry"):
        encode_event("x", retry=retry)
    out = bytearray()
    with pytest.raises(ResponseError):
        sse.start(out, retry=retry)
    assert out == b""


def test_ids_and_data_of_other_types_are_refused() -> None:
    with pytest.raises(ResponseError):
        encode_event("x", id=True)
    with pytest.raises(ResponseError):
        encode_event(3)  # type: ignore[arg-type]


def test_comments() -> None:
    assert encode_comment() == b":\n"
    assert encode_comment("ping") == b": ping\n"
    assert encode_comment("a\r\nb") == b": a\n: b\n"
    assert decode(encode_comment("ping") + encode_event("x") + encode_comment("a\nb")) == [Event("x")]


def test_sse_start_event_comment_end_append_one_chunk_each() -> None:
    out = bytearray()
    sse.start(out)
    assert bytes(out) == (
        b"HTTP/1.1 200 OK\r\n" + date_header() + b"Content-Type: text/event-stream\r\n"
        b"Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    out = bytearray()
    sse.start(out, retry=3000, headers=[("Cache-Control", "no-store"), ("X-Stream", "1")])
    assert b"Cache-Control: no-store\r\n" in out and b"no-cache" not in out and b"X-Stream: 1\r\n" in out
    assert out.endswith(b"\r\n\r\n" + chunk(b"retry: 3000\n\n"))
    mark = len(out)
    sse.event(out, "a\nb", id=1, event="e")
    assert out[mark:] == chunk(encode_event("a\nb", id=1, event="e"))
    mark = len(out)
    sse.comment(out, "ping")
    assert out[mark:] == b"7\r\n: ping\n\r\n"
    mark = len(out)
    sse.end(out)
    assert out[mark:] == b"0\r\n\r\n"
    head, body, _ = h11_parse(bytes(out))
    assert head.status_code == 200
    assert body == b"retry: 3000\n\n" + encode_event("a\nb", id=1, event="e") + b": ping\n"
    assert decode(body) == [Event("a\nb", "e", "1")]


# -- sse: the parser (WHATWG HTML §9.2.6, with the spec's own examples) ------------------------------------
def test_decode_follows_the_spec_examples() -> None:
    # "The following stream fires two events": the first gets id 1, the second keeps it
    stream = b"data: This is the first message.\n\ndata: This is the second message, it\ndata: has two lines.\n\n"
    assert decode(stream) == [
        Event("This is the first message."), Event("This is the second message, it\nhas two lines.")
    ]
    stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n"
    assert decode(stream) == [Event("first event", id="1"), Event("second event", id="")]  # the third is incomplete
    assert decode(b"data\n\ndata\ndata\n\ndata:\n") == [Event(""), Event("\n")]
    assert decode(b"data:test\n\ndata: test\n\n") == [Event("test"), Event("test")]


def test_decode_details() -> None:
    assert decode("\ufeffdata: x\r\n\r\n".encode()) == [Event("x")]  # a leading BOM is skipped
    assert decode(b"data: x\r\rdata: y\r\n\r\n") == [Event("x"), Event("y")]
    assert decode(b"id: a\x00b\ndata: x\n\n") == [Event("x", id="")]  # an id with NUL is ignored
    assert decode(b"event: e\n\ndata: x\n\n") == [Event("x")]  # the type is reset even when nothing is dispatched
    assert decode(b"retry: 10\nfoo: bar\ndata: x\n\n") == [Event("x")]


_TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
_FIELD = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\r\n\x00"), max_size=12)


@given(data=_TEXT, ident=st.none() | _FIELD, kind=st.none() | _FIELD)
def test_encode_then_decode_round_trips(data: str, ident: str | None, kind: str | None) -> None:
    expected = Event(re.sub(r"\r\n|\r", "\n", data), kind or "message", ident or "")
    assert decode(encode_event(data, id=ident, event=kind)) == [expected]
    assert decode(encode_event(data.encode(), id=ident, event=kind) * 2) == [expected, expected]


# -- end to end --------------------------------------------------------------------------------------------
def test_sse_events_stream_over_a_real_server(backend: str) -> None:
    finished: list[bool] = []

    def handler(req: Request, out: bytearray) -> Iterator[Any] | None:
        if req.path != b"/events":
            respond(out, 200, b"plain")
            return None
        return stream(out)

    def stream(out: bytearray) -> Iterator[Any]:
        sse.start(out, retry=1000)
        for n in range(1, 4):
            yield sleep(0.05)
            sse.event(out, f"tick {n}\nline two", id=n, event="tick")
        sse.end(out)
        finished.append(True)

    with serve(handler, backend=backend) as server:
        client = server.connect()
        client.send(b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n")
        r = client.read_response()
        assert r.status == 200 and not r.closes
        assert r.header("content-type") == b"text/event-stream"
        assert r.header("cache-control") == b"no-cache" and r.header("x-accel-buffering") == b"no"
        assert r.header("transfer-encoding") == b"chunked" and r.header("content-length") is None
        assert r.body.startswith(b"retry: 1000\n\n")
        assert decode(r.body) == [Event(f"tick {n}\nline two", "tick", str(n)) for n in (1, 2, 3)]
        assert finished == [True]
        client.send(b"GET /after HTTP/1.1\r\nHost: t\r\n\r\n")  # the clean end left the connection usable
        assert client.read_response().body == b"plain"


def test_the_first_event_arrives_before_the_generator_finishes(backend: str) -> None:
    finished: list[float] = []

    def handler(req: Request, out: bytearray) -> Iterator[Any]:
        sse.start(out)
        for n in range(1, 4):
            sse.event(out, f"tick {n}", id=n)
            yield sleep(0.3)
        sse.end(out)
        finished.append(time.monotonic())

    with serve(handler, backend=backend) as server:
        client = server.connect()
        client.send(GET)
        client.sock.settimeout(0.25)
        first = b""
        while b"data: tick 1\n\n" not in first:
            first += client.sock.recv(4096)  # a TimeoutError here means the event was held back
        assert not finished and b"tick 2" not in first and not first.endswith(b"0\r\n\r\n")
        client.sock.settimeout(5)
        client._buf = first
        r = client.read_response()
        assert [e.data for e in decode(r.body)] == ["tick 1", "tick 2", "tick 3"] and finished


def test_a_chunked_stream_with_trailers_over_a_real_server(backend: str) -> None:
    def handler(req: Request, out: bytearray) -> Iterator[Any]:
        start_chunked(out, content_type=b"application/x-ndjson", headers=[("X-Stream", "yes")])
        for n in range(3):
            write_chunk(out, b'{"n": %d}\n' % n)
            yield sleep(0.02)
        end_chunked(out, trailers=[("X-Rows", 3)])

    with serve(handler, backend=backend) as server:
        r1, r2 = server.pipeline([GET, GET])  # the second waits for the first stream to end, then is served
    for r in (r1, r2):
        assert r.status == 200 and r.header("x-stream") == b"yes"
        assert r.body == b'{"n": 0}\n{"n": 1}\n{"n": 2}\n'
        assert r.raw.endswith(b"0\r\nX-Rows: 3\r\n\r\n")


def test_a_client_leaving_mid_stream_closes_the_generator(backend: str) -> None:
    cleaned: list[int] = []

    def handler(req: Request, out: bytearray) -> Iterator[Any]:
        sse.start(out)
        n = 0
        try:
            while True:
                n += 1
                sse.event(out, f"tick {n}", id=n)
                yield sleep(0.02)
        finally:
            cleaned.append(n)

    with serve(handler, backend=backend) as server:
        client = server.connect()
        client.send(GET)
        client.sock.settimeout(2)
        seen = b""
        while b"tick 3\n" not in seen:
            seen += client.sock.recv(4096)
        client.close()
        deadline = time.monotonic() + 2
        while not cleaned and time.monotonic() < deadline:
            time.sleep(0.01)
        assert cleaned and cleaned[0] >= 3


def test_relay_passes_a_streamed_response_through_and_reports_each_step(backend: str) -> None:
    """Middleware over a generator handler: every step's output is seen once, at the right offset,
    the response reaches the client unchanged, and a client that leaves closes the inner generator."""
    steps: list[tuple[int, bytes]] = []
    closed: list[str] = []

    def inner(out: bytearray, ticks: int) -> Iterator[Any]:
        try:
            start_chunked(out, content_type=b"text/plain")
            for i in range(ticks):
                write_chunk(out, b"tick %d\n" % i)
                yield sleep(0.01)
            end_chunked(out)
        finally:
            closed.append("inner")

    def handler(req: Request, out: bytearray) -> Iterator[Any]:
        def after_step(start: int) -> None:
            steps.append((status_at(out, start), bytes(out[start:])))

        return relay(inner(out, 3 if req.path == b"/three" else 1000), out, after_step)

    with serve(handler, backend=backend) as server:
        r = server.request(b"GET /three HTTP/1.1\r\nHost: t\r\n\r\n")
        assert r.status == 200 and r.body == b"tick 0\ntick 1\ntick 2\n"
        assert [status for status, _ in steps] == [200, 0, 0, 0]  # the head is in the first step only
        assert b"".join(piece for _, piece in steps).endswith(b"0\r\n\r\n")
        assert closed == ["inner"]
        with server.connect() as client:  # an endless one: the client leaves mid-stream
            client.send(b"GET /endless HTTP/1.1\r\nHost: t\r\n\r\n")
            assert client.sock.recv(100).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 5
        while len(closed) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert closed == ["inner", "inner"]
    assert status_at(bytearray(b"xxHTTP/1.1 404 Not Found\r\n"), 2) == 404 and status_at(bytearray(b"HTTP/"), 0) == 0
