"""Resumable chunked framing: an incomplete chunked body is never framed again from its start.

Theory of operation
-------------------
For an incomplete chunked body, `frame` answers a `Need` whose ``progress`` (`ChunkedProgress`)
says where to go on; the connection keeps it while buffering and calls `resume_chunked` on its
input buffer with each new read, so the work done while one request arrives is linear in its size
however it is packetised (before: every read re-decoded every chunk, quadratic).

These tests check that, without timing anything:

* **Nothing before the resume point is read.** Driving the framer the way the connection does, the
  bytes already framed (the head and every finished chunk) are overwritten with garbage before each
  `resume_chunked` call; it must still answer exactly what `frame` answers on the intact bytes.
  Together with the offsets the progress reports, the bytes examined over a whole request add up
  to a small multiple of its size (summed, not timed).
* **Same answers as `frame`.** For every prefix of generated chunked requests (valid and broken:
  bad chunk lines, missing CRLFs, overflow, bare LF/CR, trailers over the limit, leading empty
  lines, 100-continue, a pipelined request behind), resuming from the progress of any earlier
  prefix gives `frame`'s verdict: the same `Need` (progress included), the same `ProtocolError`,
  or ``None`` exactly where `frame` returns a `Request`.
* **End to end** over real sockets: large bodies of 1-byte chunks in many small sends, with and
  without trailers, 413 over ``Limits.max_body_bytes``, and a 400 found mid-body.
"""

from __future__ import annotations

import hashlib
import random
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vanilla_async import Limits, Request, respond
from vanilla_async._core.framer import ChunkedProgress, Need, frame, resume_chunked
from vanilla_async.errors import ProtocolError
from vanilla_async.testing import serve

HEAD = b"POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
BIG = Limits(max_body_bytes=4 << 20)
TIGHT = Limits(max_request_line=64, max_header_bytes=128, max_body_bytes=40)


def one_byte_chunks(body: bytes, trailers: bytes = b"") -> bytes:
    return HEAD + b"".join(b"1\r\n" + body[i:i + 1] + b"\r\n" for i in range(len(body))) + b"0\r\n" + trailers + b"\r\n"


def verdict(fn: object, *args: object) -> object:
    try:
        result = fn(*args)  # type: ignore[operator]
    except ProtocolError as error:
        return ("error", error.status, error.reason)
    if isinstance(result, Request):
        return "request"
    return result  # a Need (progress included), or None from resume_chunked


def drive(wire: bytes, cuts: list[int], limits: Limits) -> tuple[Request, list[tuple[int, int]]]:
    """Frame ``wire`` as a connection does, arriving in pieces that end at ``cuts``.

    The first framing is `frame` on bytes; while the answer carries progress, each new piece is appended
    to a bytearray and, once ``Need.total`` is there, `resume_chunked` runs on it in place. Before each
    call, every byte before the point the progress says framing resumes at is overwritten with a bare
    LF (read one and the answer is a 400). Returns the request (framed by `frame` on the intact bytes
    once `resume_chunked` says it is complete) and, for each resume, the span (start, end) it had to scan.
    """
    buf = bytearray()
    progress: ChunkedProgress | None = None
    need = poisoned = 0
    scans: list[tuple[int, int]] = []
    for cut in cuts:
        buf += wire[len(buf):cut]
        if len(buf) < need:
            continue
        if progress is None:
            result = frame(bytes(buf), 0, limits)
            if isinstance(result, Request):
                return result, scans
            assert type(result) is Need
            progress, need = result.progress, result.total
            continue
        buf[poisoned:progress.line] = b"\n" * (progress.line - poisoned)
        poisoned = progress.line
        start = progress.seen - 1 if progress.seen else progress.line  # (a CR seen last may now be bare)
        answer = resume_chunked(buf, 0, progress, limits)
        scans.append((start, len(buf)))
        if answer is None:
            result = frame(wire[:len(buf)], 0, limits)
            assert isinstance(result, Request)
            return result, scans
        assert answer.progress is not None
        assert answer.progress.line >= progress.line and answer.progress.size >= progress.size  # it only advances
        progress, need = answer.progress, answer.total
    raise AssertionError("the request never completed")


# -- the work is linear, and nothing already framed is read again ---------------------------------------------
@pytest.mark.parametrize("packet", ["per-chunk", "1400", "every-byte"])
def test_resuming_never_reads_what_was_framed_and_scans_each_byte_a_bounded_number_of_times(packet: str) -> None:
    body = bytes(random.Random(7).randrange(256) for _ in range(2000 if packet == "every-byte" else 20000))
    wire = one_byte_chunks(body, b"X-Sum: 1\r\n")
    if packet == "per-chunk":
        cuts: list[int] = [len(HEAD) + 6 * i for i in range(len(body) + 1)]
    elif packet == "1400":
        cuts = list(range(1400, len(wire), 1400))
    else:
        cuts = list(range(1, len(wire)))
    req, scans = drive(wire, [*cuts, len(wire)], BIG)
    assert bytes(req.body) == body and req.trailers() == [(b"x-sum", b"1")] and req.end == len(wire)
    assert len(scans) >= len(cuts) // 2  # it resumed (many times), it did not wait for the whole request
    examined = sum(end - start for start, end in scans)
    # Each byte is scanned about once (a chunk line at most twice: when its data is still missing, and
    # then when it is there). Re-framing from the start would examine ~len(wire) * len(scans) / 2 bytes.
    assert examined <= 3 * len(wire), (examined, len(wire))


def test_progress_survives_the_partial_request_moving_to_the_start_of_a_new_buffer() -> None:
    first = b"GET /a HTTP/1.1\r\nHost: t\r\n\r\n"
    body = b"hello, world"
    wire = one_byte_chunks(body)
    half = len(HEAD) + 30
    result = frame(first + b"\r\n" + wire[:half], len(first), BIG)  # offsets count from pos (empty line included)
    assert type(result) is Need and result.progress is not None
    moved = bytearray(b"\r\n" + wire)  # what the connection keeps: buf[pos:], then more bytes
    assert resume_chunked(moved, 0, result.progress, BIG) is None
    req = frame(bytes(moved), 0, BIG)
    assert isinstance(req, Request) and bytes(req.body) == body and req.end == len(moved)


def test_expect_continue_is_still_reported_until_the_first_chunk_line() -> None:
    head = HEAD[:-2] + b"Expect: 100-continue\r\n\r\n"
    first = frame(head, 0, BIG)
    assert type(first) is Need and first.progress is not None
    assert first == Need(0, True, first.progress)
    again = resume_chunked(bytearray(head + b"a;x"), 0, first.progress, BIG)
    assert again == frame(head + b"a;x", 0, BIG) and again is not None and again.expect_continue
    later = resume_chunked(bytearray(head + b"1\r\nx\r\n2"), 0, first.progress, BIG)
    assert later is not None and not later.expect_continue


# -- resuming answers what frame answers, on every prefix -------------------------------------------------------
def _chunk_line(draw: st.DrawFn) -> bytes:
    size = draw(st.integers(0, 24))
    digits = draw(st.sampled_from([b"%x", b"%X", b"000%x"])) % size
    ext = draw(st.sampled_from([b"", b";a=1", b' ; q="v w"', b";", b"; x = y", b";" + b"e" * 40]))
    line = digits + ext
    data = bytes(draw(st.binary(min_size=size, max_size=size)))
    end = draw(st.sampled_from([b"\r\n"] * 8 + [b"\n", b"\r", b"X\r\n", b""]))
    if size == 0:
        return line + b"\r\n"
    return line + draw(st.sampled_from([b"\r\n"] * 10 + [b"\n", b"\r\r\n"])) + data + end


@st.composite
def chunked_requests(draw: st.DrawFn) -> bytes:
    head = HEAD
    if draw(st.booleans()):
        head = head[:-2] + b"Expect: 100-continue\r\n\r\n"
    lead = draw(st.sampled_from([b"", b"", b"\r\n", b"\r\n\r\n"]))
    chunks = b"".join(_chunk_line(draw) for _ in range(draw(st.integers(0, 6))))
    if draw(st.integers(0, 9)) == 0:
        chunks += draw(st.sampled_from([b"1" + b"0" * 16 + b"\r\n", b"f" * 17 + b"\r\n", b"5g\r\n", b"\n"]))
    trailers = draw(st.sampled_from([
        b"", b"", b"X-A: 1\r\n", b"X-A: 1\r\nX-B: two\r\n", b"X-A: 1\n", b"X A: 1\r\n", b"X-A: \x00\r\n",
        b"X-Big: " + b"v" * 150 + b"\r\n", b" folded\r\n",
    ]))
    tail = draw(st.sampled_from([b"", b"GET / HTTP/1.1\r\nHost: t\r\n\r\n", b"junk"]))
    return lead + head + chunks + b"0\r\n" + trailers + b"\r\n" + tail


@settings(max_examples=300, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(raw=chunked_requests(), limits=st.sampled_from([Limits(), TIGHT]), data=st.data())
def test_resume_from_any_earlier_prefix_answers_what_frame_answers(
    raw: bytes, limits: Limits, data: st.DataObject
) -> None:
    answers = [verdict(frame, raw[:i], 0, limits) for i in range(len(raw) + 1)]
    progresses = [(i, a.progress) for i, a in enumerate(answers) if type(a) is Need and a.progress is not None]
    if not progresses:
        return
    for i, progress in data.draw(st.lists(st.sampled_from(progresses), max_size=6)):
        for j in sorted({i, i + 1, *data.draw(st.lists(st.integers(i, len(raw)), max_size=8)), len(raw)}):
            if j > len(raw):
                continue
            got = verdict(resume_chunked, bytearray(raw[:j]), 0, progress, limits)
            expected = answers[j]
            assert got == (None if expected == "request" else expected), (raw, i, j, progress)


@settings(max_examples=200, derandomize=True, database=None, deadline=None)
@given(raw=chunked_requests(), limits=st.sampled_from([Limits(), TIGHT]),
       cuts=st.lists(st.integers(1, 400), max_size=12))
def test_split_anywhere_resuming_like_the_connection_gives_the_whole_buffer_verdict(
    raw: bytes, limits: Limits, cuts: list[int]
) -> None:
    whole = verdict(frame, raw, 0, limits)
    points = sorted({c for c in cuts if c < len(raw)} | {len(raw)})
    buf = bytearray()
    progress: ChunkedProgress | None = None
    need = 0
    got: object = None
    for cut in points:
        buf += raw[len(buf):cut]
        if len(buf) < need:
            continue
        if progress is None:
            got = verdict(frame, bytes(buf), 0, limits)
        else:
            got = verdict(resume_chunked, buf, 0, progress, limits)
            if got is None:
                got = verdict(frame, bytes(buf), 0, limits)
        if type(got) is not Need:
            break
        progress, need = got.progress, got.total
    assert got == whole, (raw, points)


# -- end to end ---------------------------------------------------------------------------------------------------
def digest(req: Request, out: bytearray) -> None:
    trailers = b";".join(b"%s=%s" % kv for kv in req.trailers())
    respond(out, 200, hashlib.sha256(req.body).hexdigest().encode() + b"|" + trailers)


def send_in_pieces(sock: socket.socket, wire: bytes, every: int) -> None:
    for i in range(0, len(wire), every):
        sock.sendall(wire[i:i + every])


@pytest.mark.parametrize("trailers", [b"", b"X-Checksum: abc\r\n"])
def test_256k_body_as_1_byte_chunks_in_many_small_sends(backend: str, trailers: bytes) -> None:
    body = bytes(random.Random(1).randrange(256) for _ in range(256 * 1024))
    wire = one_byte_chunks(body, trailers)
    expected = hashlib.sha256(body).hexdigest().encode() + b"|" + (b"x-checksum=abc" if trailers else b"")
    with serve(digest, backend=backend, limits=Limits(max_body_bytes=1 << 20)) as server:
        client = server.connect()
        send_in_pieces(client.sock, wire, 1400)
        response = client.read_response(b"POST")
        assert (response.status, response.body) == (200, expected)
        assert server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status == 200  # the worker goes on
        # The same connection serves a second one, pipelined behind a small request, split oddly.
        client.send_split(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" + wire[:5000], every=997, pause=0)
        send_in_pieces(client.sock, wire[5000:], 333)
        assert client.read_response().status == 200
        assert client.read_response(b"POST").body == expected


def test_chunked_body_over_max_body_is_413(backend: str) -> None:
    limits = Limits(max_body_bytes=16 * 1024)  # (small enough that max_buffered is not what is hit first)
    body = b"a" * (limits.max_body_bytes + 100)
    assert len(one_byte_chunks(body)) < limits.max_buffered
    with serve(digest, backend=backend, limits=limits) as server:
        client = server.connect()
        try:
            send_in_pieces(client.sock, one_byte_chunks(body), 1400)
        except OSError:  # (the server may have answered and closed before the last bytes)
            pass
        response = client.read_response(b"POST")
        assert response.status == 413 and b"chunked request body exceeds the limit" in response.body
        assert client.closed_by_server()


def test_a_framing_error_found_while_resuming_is_400(backend: str) -> None:
    wire = one_byte_chunks(b"x" * 5000)
    bad = wire[:len(HEAD) + 6 * 4000] + b"1\r\nxY\r\n0\r\n\r\n"  # chunk data not followed by CRLF
    with serve(digest, backend=backend) as server:
        client = server.connect()
        send_in_pieces(client.sock, bad, 512)
        response = client.read_response(b"POST")
        assert response.status == 400 and b"CRLF" in response.body
