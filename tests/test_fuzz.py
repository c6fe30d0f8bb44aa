"""Fuzzing the request framer: a differential against h11, split-point consistency, and a live server.

Theory of operation
-------------------
tests/test_framer.py checks *valid* generated requests against h11. This file throws everything
else at the framer: requests built from a grammar that mixes valid and invalid pieces (methods,
targets, versions, field names and values with odd bytes, obs-fold, duplicate or conflicting
Content-Length, Transfer-Encoding variants, chunk sizes / extensions / trailers, bare LF and CR,
NUL, pipelined second requests, trailing garbage), plus byte-level mutations of valid ones.

Every input is *run* the way a connection runs it (`_run`): frame at ``pos``; a `Request` moves
``pos`` to its end, a `Need` waits for more bytes, a `ProtocolError` ends the run. A run is a list
of `Verdict`s. Properties, for each input:

1. **Only ProtocolError, bounded work.** Anything else raised fails; every run runs under a hang
   guard (SIGALRM, far above any honest framing time: it catches loops, not slowness).
2. **Split-independence.** The run over the whole buffer equals the run over the same bytes
   delivered one byte at a time (every prefix framed), and over random split points with
   `Need.total` honoured as the server honours it (no re-framing until that many bytes are there)
   through the head cache (`frame_cached`, what the server calls). So does the run buffered exactly
   as the connection buffers (`_run_resuming`: a partial request kept in a ``bytearray``, an
   incomplete chunked body continued in place by `resume_chunked` from its `ChunkedProgress`), at
   those split points, at every byte, and in small random pieces behind a pipelined request
   (`check_resumption`; `test_chunked_resumption_differential` weights the grammar towards chunked
   bodies for it). Appending bytes never changes a verdict already reached, and framing at a
   non-zero ``pos`` sees the same thing.
3. **Differential against h11** (``h11.Connection(h11.SERVER)``, pipelined requests included):
   where both accept, method, target, version, fields (other than the framing fields, which h11
   normalises), body and trailers agree. Where h11 rejects and we accept, the case must be in
   `INTENDED` — the written list of intended differences (docs/framer-vs-h11.md), each with its
   RFC reason — otherwise it is a framer bug. Where we reject, anything h11 does is fine (we are
   stricter on purpose: bare LF, obs-fold, CTLs in values, Host syntax, CL+TE, HTTP/1.0 + TE, ...).

Hypothesis runs derandomized with no example database, so CI sees the same examples every run.
``FUZZ_EXAMPLES=20000`` raises every example budget to that number and randomizes the run (to
find new cases; a failure prints its reproducing blob). ``pytest --hypothesis-show-statistics``
shows how the outcomes (``event()`` labels: both accept, we reject, intended difference...) spread.

The live part sends generated and mutated requests to a real worker (`vanilla_async.testing.serve`)
split across several sends, predicts from the framer how many requests the handler must see and
which error must follow, and checks the responses, the close, the handler count, that the worker
still answers, and (on exit) that nothing leaked.
"""

from __future__ import annotations

import os
import random
import re
import signal
import threading
import zlib
from contextlib import contextmanager
from itertools import accumulate
from typing import Callable, Iterator, NamedTuple, Sequence

import h11
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from vanilla_async._core.framer import ChunkedProgress, Need, frame, resume_chunked
from vanilla_async._core.headcache import frame_cached
from vanilla_async._core.limits import Limits
from vanilla_async._core.request import Request
from vanilla_async.errors import ProtocolError
from vanilla_async.testing import Client, serve

LIMITS = Limits()
SMALL = Limits(max_request_line=48, max_header_bytes=160, max_body_bytes=24)
FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "0") or 0)
HANG_SECONDS = 10.0  # per run over one input; honest framing of these inputs takes milliseconds


def examples(default: int) -> int:
    """The example budget: ``default``, or ``FUZZ_EXAMPLES`` for an opt-in long run."""
    return FUZZ_EXAMPLES or default


def fuzz_settings(default: int) -> settings:
    return settings(
        max_examples=examples(default), deadline=None, database=None, derandomize=not FUZZ_EXAMPLES,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    )


# ---------------------------------------------------------------------------------------------------
# The intended differences from h11 (keep in step with docs/framer-vs-h11.md)
# ---------------------------------------------------------------------------------------------------
_TE_LINE = re.compile(rb"\r\ntransfer-encoding:([^\r\n]*)")
_CHUNK_LINE_BWS = re.compile(rb"\r\n[0-9A-Fa-f]+[ \t]+;")
_CHUNK_LINE_LONG = re.compile(rb"\r\n0*[0-9A-Fa-f]{1,16}(?<=[0-9A-Fa-f]{21})[;\r \t]")
_CL_LINE = re.compile(rb"\r\ncontent-length:[ \t]*([^\r\n]*?)[ \t]*\r\n")


class Difference(NamedTuple):
    """An input that we accept and h11 rejects, on purpose."""

    id: str
    rfc: str
    applies: Callable[[bytes, str], bool]  # (our request's bytes, h11's error message) -> is this the case?


def _te_with_empty_elements(raw: bytes, h11_error: str) -> bool:
    values = _TE_LINE.findall(raw.lower())
    return "Transfer-Encoding" in h11_error and len(values) == 1 and values[0].strip(b" \t") != b"chunked"


def _cl_over_20_digits(raw: bytes, h11_error: str) -> bool:
    return "Content-Length" in h11_error and any(
        len(t.strip(b" \t")) > 20 for v in _CL_LINE.findall(raw.lower()) for t in v.split(b","))


INTENDED: tuple[Difference, ...] = (
    Difference("leading-empty-lines", "RFC 9112 §2.2: a server SHOULD ignore at least one empty line (CRLF) "
               "received before the request-line",
               lambda raw, err: raw.startswith(b"\r\n") and "no request line" in err),
    Difference("te-empty-list-elements", "RFC 9110 §5.6.1: a recipient MUST parse and ignore a reasonable number "
               "of empty list elements (`Transfer-Encoding: chunked,` is `chunked`)", _te_with_empty_elements),
    Difference("chunk-ext-bws", "RFC 9112 §7.1.1: chunk-ext = *( BWS \";\" BWS chunk-ext-name ... ) allows "
               "whitespace before the semicolon",
               lambda raw, err: "chunk header" in err and _CHUNK_LINE_BWS.search(raw) is not None),
    Difference("chunk-size-leading-zeros", "RFC 9112 §7.1: chunk-size = 1*HEXDIG; only significant digits can "
               "overflow, so leading zeros beyond h11's 20-digit cap are accepted",
               lambda raw, err: "chunk header" in err and _CHUNK_LINE_LONG.search(raw) is not None),
    Difference("content-length-leading-zeros", "RFC 9110 §8.6: Content-Length = 1*DIGIT; the value is bounded "
               "(by max_body_bytes), not the digit count, so leading zeros beyond h11's 20 digits are accepted",
               _cl_over_20_digits),
)


def intended_difference(raw: bytes, h11_error: str) -> Difference | None:
    for difference in INTENDED:
        if difference.applies(raw, h11_error):
            return difference
    return None


# ---------------------------------------------------------------------------------------------------
# Running the framer like a connection does
# ---------------------------------------------------------------------------------------------------
class Seen(NamedTuple):
    """One request as a parser saw it (``end`` is relative to the run's first byte; -1 from h11)."""

    method: bytes
    target: bytes
    version: bytes
    headers: tuple[tuple[bytes, bytes], ...]
    body: bytes
    trailers: tuple[tuple[bytes, bytes], ...]
    keep_alive: bool
    end: int


class Verdict(NamedTuple):
    kind: str  # "request" | "need" | "error" | "stop" (h11 only: closed, CONNECT or Upgrade)
    seen: Seen | None = None
    status: int = 0  # for "error"
    detail: str = ""  # the reason (ours) or message (h11's), for failure messages only

    def same(self) -> tuple[str, Seen | None, int]:
        return self.kind, self.seen, self.status


NEED = Verdict("need")
Framer = Callable[[bytes, int, Limits], "Request | Need"]


class _Hang(Exception):
    pass


@contextmanager
def hang_guard(seconds: float = HANG_SECONDS) -> Iterator[None]:
    """Fail (instead of hanging the suite) if the body takes longer than ``seconds``: a loop, not slowness."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def alarm(signum: int, frame_: object) -> None:
        raise _Hang(f"framing one small input took more than {seconds} s: unbounded work")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _seen(req: Request, base: int) -> Seen:
    return Seen(req.method, req.target, req.version, tuple(req.header_items()), bytes(req.body),
                tuple(req.trailers()), req.keep_alive, req.end - base)


def _frame_once(framer: Framer, buf: bytes, pos: int, limits: Limits) -> Verdict:
    return _framed(framer, buf, pos, limits)[0]


def _framed(framer: Framer, buf: bytes, pos: int, limits: Limits) -> tuple[Verdict, Need | None]:
    """One framing as a `Verdict`, checked for sanity; and the `Need` itself (for its progress) if one."""
    try:
        result = framer(buf, pos, limits)
    except ProtocolError as error:
        return _error_verdict(error), None
    if type(result) is Need:
        assert result.total == 0 or result.total > len(buf) - pos, (result, len(buf) - pos)
        return Verdict("need", status=result.total), result
    assert type(result) is Request, result
    assert pos < result.end <= len(buf), (pos, result.end, len(buf))
    return Verdict("request", _seen(result, 0)), None


def _error_verdict(error: ProtocolError) -> Verdict:
    assert error.status in (400, 413, 414, 431, 501, 505), error
    assert error.reason, error
    return Verdict("error", status=error.status, detail=error.reason)


def _run(chunks: Sequence[bytes], limits: Limits, framer: Framer = frame, honour_need: bool = False,
         base: int = 0, start: bytes = b"") -> list[Verdict]:
    """Frame pipelined requests as the bytes arrive in ``chunks``; the verdicts in order."""
    buf = start
    pos = base
    need = 0
    verdicts: list[Verdict] = []
    with hang_guard():
        for chunk in chunks:
            buf += chunk
            while pos < len(buf) or not chunk:
                if honour_need and need and len(buf) - pos < need:
                    break
                verdict = _frame_once(framer, buf, pos, limits)
                if verdict.kind == "need":
                    need = verdict.status
                    break
                if verdict.kind == "error":
                    return verdicts + [verdict]
                assert verdict.seen is not None
                verdicts.append(verdict._replace(seen=verdict.seen._replace(end=verdict.seen.end - base)))
                pos = verdict.seen.end
                need = 0
            if len(verdicts) > 64:  # a generated input holds a handful of requests at most
                raise AssertionError("more than 64 requests framed from one small input")
    return verdicts + [NEED]


def _run_resuming(chunks: Sequence[bytes], limits: Limits) -> list[Verdict]:
    """`_run`, buffering and resuming exactly as `Http1.data_received` / `serve` / `keep_partial` do.

    Each chunk is served (`frame_cached` at ``pos`` until a `Need`) as the immutable ``bytes`` recv
    returns; a partial request is kept as a ``bytearray`` (from its first byte), grown in place, and
    nothing happens until it holds ``Need.total`` bytes. If the `Need` carried a `ChunkedProgress`,
    ``resume_chunked`` runs on that bytearray, in place: a new `Need` replaces need and progress, an
    error ends the run; ``None`` means complete, and only then is it frozen and served from its
    start (whose first framing must then be that request). Without progress it is frozen and served.
    Unlike the connection, serving goes on past a request that closes (as `_run` does), so the runs
    compare verdict for verdict.
    """
    verdicts: list[Verdict] = []
    inbuf: bytearray | None = None
    base = 0  # where inbuf / the chunk being served starts in the whole input
    need = 0
    progress: ChunkedProgress | None = None
    with hang_guard():
        for chunk in chunks:
            complete = False  # resume_chunked said the kept request is complete
            if inbuf is not None:
                inbuf += chunk
                if len(inbuf) < need:
                    continue
                if progress is not None:
                    try:
                        answer = resume_chunked(inbuf, 0, progress, limits)
                    except ProtocolError as error:
                        return verdicts + [_error_verdict(error)]
                    if answer is not None:
                        assert type(answer) is Need and answer.progress is not None, answer
                        assert answer.total == 0 or answer.total > len(inbuf), (answer, len(inbuf))
                        assert answer.progress.line >= progress.line and answer.progress.size >= progress.size
                        need, progress = answer.total, answer.progress
                        continue
                    progress, complete = None, True
                data = bytes(inbuf)
                inbuf = None
            else:
                data = chunk
            pos = 0
            while pos < len(data):
                verdict, partial = _framed(frame_cached, data, pos, limits)
                if complete:
                    assert pos == 0 and verdict.kind == "request", ("resume_chunked said complete", data, verdict)
                    complete = False
                if partial is not None:  # keep_partial
                    inbuf, base, need, progress = bytearray(data[pos:]), base + pos, partial.total, partial.progress
                    break
                if verdict.kind == "error":
                    return verdicts + [verdict]
                assert verdict.seen is not None
                verdicts.append(verdict._replace(seen=verdict.seen._replace(end=verdict.seen.end + base)))
                pos = verdict.seen.end
                need = 0
            else:
                base += len(data)
            if len(verdicts) > 64:
                raise AssertionError("more than 64 requests framed from one small input")
    return verdicts + [NEED]


def split_at(raw: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({c for c in cuts if 0 < c < len(raw)})
    return [raw[a:b] for a, b in zip([0, *points], [*points, len(raw)])]


def check_split_independence(raw: bytes, cuts: Sequence[int], limits: Limits) -> list[Verdict]:
    """Property 2; returns the whole-buffer run."""
    whole = _run([raw], limits)
    same = [v.same() for v in whole]
    bytewise = _run([raw[i:i + 1] for i in range(len(raw))], limits)
    assert [v.same() for v in bytewise] == same, (raw, bytewise, whole)
    pieces = _run(split_at(raw, cuts), limits, framer=frame_cached, honour_need=True)
    assert [v.same() for v in pieces] == same, (raw, cuts, pieces, whole)
    check_resumption(raw, cuts, limits, whole)
    first = whole[0]
    if first.kind != "need":
        # A verdict once reached does not change when more bytes arrive, nor when framed at an offset.
        with hang_guard():
            assert _frame_once(frame, raw + b"GET / HTTP/1.1\r\n\x00", 0, limits).same() == first.same()
            shifted = _frame_once(frame, b"\r\nXYZ" + raw, 5, limits)
        if shifted.seen is not None:
            shifted = shifted._replace(seen=shifted.seen._replace(end=shifted.seen.end - 5))
        assert shifted.same() == first.same()
    return whole


_LEAD = b"GET /lead HTTP/1.1\r\nHost: h\r\n\r\n"  # pipelined before an input: it then starts mid-chunk
_LEAD_SEEN = Seen(b"GET", b"/lead", b"HTTP/1.1", ((b"host", b"h"),), b"", (), True, len(_LEAD))


def check_resumption(raw: bytes, cuts: Sequence[int], limits: Limits, whole: list[Verdict]) -> None:
    """Property 2 for the connection's own buffering (`_run_resuming`): chunked bodies resumed in place.

    Split at ``cuts``, at every byte, and (behind `_LEAD`, so that ``keep_partial`` keeps a request
    that starts mid-chunk) in random pieces of 1-8 bytes; each run must equal the whole-buffer run.
    """
    same = [v.same() for v in whole]
    for split in (cuts, range(1, len(raw))):
        resumed = _run_resuming(split_at(raw, split), limits)
        assert [v.same() for v in resumed] == same, (raw, sorted(split), resumed, whole)
    led = [("request", _LEAD_SEEN, 0)] + [
        (kind, seen and seen._replace(end=seen.end + len(_LEAD)), status) for kind, seen, status in same]
    small = list(accumulate(random.Random(zlib.crc32(raw)).choices(range(1, 9), k=len(_LEAD + raw))))
    resumed = _run_resuming(split_at(_LEAD + raw, small), limits)
    assert [v.same() for v in resumed] == led, (raw, small, resumed, whole)


# ---------------------------------------------------------------------------------------------------
# h11's view
# ---------------------------------------------------------------------------------------------------
_FRAMING = (b"content-length", b"transfer-encoding")


def h11_run(raw: bytes, limit: int = 8) -> list[Verdict]:
    """h11 as a server over the whole buffer: requests in order, then need / error / stop."""
    conn = h11.Connection(h11.SERVER)
    if raw:  # (receive_data(b"") means EOF to h11)
        conn.receive_data(raw)
    verdicts: list[Verdict] = []
    request: h11.Request | None = None
    body = bytearray()
    for _ in range(len(raw) + 16):  # h11 emits at most one event per byte, plus a few
        if len(verdicts) >= limit:
            break
        try:
            ev = conn.next_event()
        except h11.RemoteProtocolError as exc:
            return verdicts + [Verdict("error", status=exc.error_status_hint, detail=str(exc))]
        if ev is h11.NEED_DATA:
            return verdicts + [NEED]
        if ev is h11.PAUSED or isinstance(ev, h11.ConnectionClosed):
            break
        if isinstance(ev, h11.Request):
            request, body = ev, bytearray()
        elif isinstance(ev, h11.Data):
            body += ev.data
        elif isinstance(ev, h11.EndOfMessage):
            assert request is not None
            verdicts.append(Verdict("request", Seen(
                bytes(request.method), bytes(request.target), b"HTTP/" + bytes(request.http_version),
                tuple((bytes(k), bytes(v)) for k, v in request.headers), bytes(body),
                tuple((bytes(k), bytes(v)) for k, v in ev.headers), conn.their_state is h11.DONE, -1)))
            if conn.their_state is not h11.DONE:
                break
            conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
            conn.send(h11.EndOfMessage())
            conn.start_next_cycle()
    else:
        raise AssertionError(f"h11 did not settle on {raw!r}")
    return verdicts + [Verdict("stop")]


def _comparable(seen: Seen) -> tuple[object, ...]:
    def fields(items: tuple[tuple[bytes, bytes], ...]) -> list[tuple[bytes, bytes]]:
        return [(k, v) for k, v in items if k not in _FRAMING]

    version = b"HTTP/1.0" if seen.version == b"HTTP/1.0" else b"HTTP/1.1"  # 1.2-1.9 are served as 1.1 (§2.3)
    return seen.method, seen.target, version, fields(seen.headers), seen.body, fields(seen.trailers)


def check_against_h11(raw: bytes, ours: list[Verdict]) -> None:
    """Property 3."""
    theirs = h11_run(raw)
    start = 0
    for i, mine in enumerate(ours):
        their = theirs[i] if i < len(theirs) else Verdict("stop")
        if mine.kind == "error":
            event(f"we reject ({mine.status}), h11: {their.kind}")
            return
        if their.kind == "stop":
            event("h11 stopped (close / upgrade / CONNECT)")
            return
        if mine.kind == "need":
            assert their.kind != "request", (
                f"h11 accepted a request for which we still wait for bytes: {raw[start:]!r}\nh11: {their.seen}")
            event(f"we need more, h11: {their.kind}")
            return
        assert mine.seen is not None
        ours_raw = raw[start:mine.seen.end]
        if their.kind == "error":
            difference = intended_difference(ours_raw, their.detail)
            assert difference is not None, (
                f"we accept a request that h11 rejects ({their.detail}) and it is not an intended difference:\n"
                f"{ours_raw!r}\nours: {mine.seen}")
            event(f"intended difference: {difference.id}")
            return
        assert their.kind == "request" and their.seen is not None, (raw, mine, their)
        assert _comparable(mine.seen) == _comparable(their.seen), (ours_raw, mine.seen, their.seen)
        event("both accept")
        if not (mine.seen.keep_alive and their.seen.keep_alive):
            return
        start = mine.seen.end


# ---------------------------------------------------------------------------------------------------
# The grammar
# ---------------------------------------------------------------------------------------------------
def pick(common: Sequence[bytes], odd: Sequence[bytes], rarity: int, weight: int = 8) -> st.SearchStrategy[bytes]:
    """A common (valid) piece, or an odd one about once in ``weight × rarity`` draws (never when ``rarity`` is 0)."""
    if not rarity or not odd:
        return st.sampled_from(list(common))
    return st.sampled_from(list(common) * (weight * rarity) + list(odd))


_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_ODD_BYTES = [b"\x00", b"\r", b"\n", b"\x7f", b"\x01", b"\x0b", b"\xff", b"\xe9", b" ", b"\t", b",", b";", b":", b'"']


@st.composite
def request_bytes(draw: st.DrawFn, noisy: bool = True, chunked_share: int = 3) -> bytes:
    """One request (optionally followed by trailing bytes) from a grammar of valid and invalid pieces.

    Each example draws how rare the invalid pieces are (``odd``: 0 = none, then 1 in 8 × odd per
    choice), so that some examples are valid or nearly valid and others are full of oddities.
    """
    odd = draw(st.sampled_from([0, 16, 6, 2, 1])) if noisy else 0
    eol = pick([b"\r\n"], [b"\n", b"\r", b"\r\r\n", b"\n\r", b"\r \n"], odd, weight=30)

    def line_end() -> bytes:
        return draw(eol)

    out = draw(pick([b""], [b"\r\n", b"\r\n\r\n", b"\n", b" ", b"\x00"], odd, weight=10))
    method = draw(st.one_of(
        pick([b"GET", b"POST", b"PUT", b"HEAD", b"DELETE", b"OPTIONS", b"PATCH", b"M-SEARCH", b"get"],
             [b"", b"GE T", b"G\x00T", b"G(T", b"GET\t", b"\xc3\xa9", b"GET\r"], odd),
        st.text(_TCHARS, min_size=1, max_size=6).map(str.encode)))
    target = draw(st.one_of(
        pick([b"/", b"/a/b?c=d", b"*", b"http://h/p?q", b"/%20x", b"/~!$&'()*+,;=:@", b"h:443"],
             [b"", b"/ x", b"/\x7f", b"/\xe9", b"/\x00", b"/\t", b"/\r\n", b"/" + b"a" * 60, b"/\n" + b"a" * 60], odd),
        st.binary(min_size=1, max_size=6) if 0 < odd <= 2 else st.just(b"/x")))
    version = draw(pick([b"HTTP/1.1", b"HTTP/1.1", b"HTTP/1.0"],
                        [b"HTTP/1.2", b"HTTP/2.0", b"HTTP/0.9", b"http/1.1", b"HTTP/1.10", b"HTTP/1", b"HTTP/11",
                         b"HTTP/1.1 ", b"HTTP/10.0", b"HTTP/1.1\x00"], odd))
    sp = pick([b" "], [b"  ", b"\t", b""], odd, weight=20)
    out += method + draw(sp) + target + draw(sp) + version + line_end()

    names = pick([b"X-A", b"Accept", b"User-Agent", b"Cookie", b"Connection", b"Expect", b"Trailer", b"Upgrade"],
                 [b"", b"X A", b"X\x00A", b"Host ", b" Host", b"X(A)", b"X\xe9", b"Content-Length ", b"Transfer-Encoding ",
                  b"Transfer-Encoding\t", b"Transfer_Encoding", b"Content_Length", b"\tX-Fold"], odd)
    values = st.one_of(
        pick([b"v", b"close", b"keep-alive", b"100-continue", b"a b", b"", b"x\ty", b" spaced ", b"caf\xc3\xa9"],
             [b"a\x00b", b"a\rb", b"a\nb", b"\x7f", b"\x01", b"v" * 170, b"a\nb" + b"v" * 170], odd),
        st.binary(max_size=8) if 0 < odd <= 2 else st.text("abc ,;=", max_size=8).map(str.encode))
    colon = pick([b":", b": ", b":\t"], [b" :", b"\t:", b"::"], odd, weight=20)

    fields: list[bytes] = []
    if draw(pick([b"1"], [b"", b"2"], odd, weight=10)) != b"":
        host = draw(pick([b"h", b"example.com:8080", b"[::1]:80", b""], [b"a b", b"a/b", b"user@h", b"h, h"], odd))
        fields.append(draw(pick([b"Host", b"host"], [b"Host ", b"HOST\t"], odd, weight=20)) + draw(colon) + host)
        if draw(st.integers(0, 30)) == 0:
            fields.append(b"Host: " + host)
    for _ in range(draw(st.integers(0, 3))):
        fields.append(draw(names) + draw(colon) + draw(values))
    if odd and draw(st.integers(0, 4 * odd)) == 0:
        fields.append(draw(st.sampled_from([b" folded", b"\tfolded"])))  # obs-fold continuation line

    body = b""
    framing = draw(st.sampled_from(["none", "none", "cl", "cl", *["te"] * chunked_share, *(["cl+te", "raw"] if 0 < odd <= 2 else [])]))
    if framing in ("cl", "cl+te"):
        payload = draw(st.binary(max_size=12))
        n = max(0, len(payload) + draw(st.sampled_from([0] * 6 * odd + [-1, 1] if odd else [0])))
        cl_value = draw(pick(
            [b"%d" % n, b"0%d" % n, b"%d, %d" % (n, n), b" %d " % n],
            [b"+%d" % n, b"-%d" % n, b"%d, %d" % (n, n + 1), b"0x%x" % n, b"", b"%d," % n, b"%d.0" % n,
             b"9" * 25, b"0" * 25 + b"%d" % n, b"%d %d" % (n, n), b"1e1"], odd))
        fields.append(draw(pick([b"Content-Length", b"content-length"], [b"Content-Length ", b"Content-Length\t"], odd,
                                weight=20)) + b":" + cl_value)
        if odd and draw(st.integers(0, 3 * odd)) == 0:
            fields.append(b"Content-Length: " + draw(pick([b"%d" % n], [b"%d" % (n + 1), b""], 1, weight=2)))
        body = payload
    if framing in ("te", "cl+te"):
        te_value = draw(pick(
            [b"chunked", b"Chunked", b" chunked ", b"CHUNKED"],
            [b"chunked,", b", chunked", b"chunked, chunked", b"gzip, chunked", b"chunked, gzip", b"xchunked",
             b"chunked\x00", b"identity", b"identity, chunked", b"chunked, identity", b"\tchunked", b"chunk ed",
             b"chunked;q=1", b'"chunked"'], odd))
        te_name = draw(pick([b"Transfer-Encoding", b"transfer-encoding"],
                            [b"Transfer-Encoding ", b"Transfer-Encoding\t", b" Transfer-Encoding"], odd, weight=20))
        fields.append(te_name + b":" + te_value)
        if odd and draw(st.integers(0, 3 * odd)) == 0:
            fields.append(draw(pick([b"Transfer-Encoding: chunked"], [b"Transfer-Encoding: identity", b" chunked"], 1,
                                    weight=1)))
        body = draw(chunked_body(odd))
    if framing == "raw":
        body = draw(st.binary(max_size=12))

    fields = draw(st.permutations(fields))
    for f in fields:
        out += f + line_end()
    out += line_end() + body
    tail = draw(pick([b""], [b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n", b"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\n\r\nz",
                             b"\r\n", b"G", b"garbage\r\n\r\n", b"GET /2 HTTP/1.1\nHost: h\n\n"], 1, weight=2))
    return out + tail


@st.composite
def chunked_body(draw: st.DrawFn, odd: int) -> bytes:
    out = b""
    for _ in range(draw(st.integers(0, 3))):
        data = draw(st.binary(min_size=1, max_size=10))
        size = b"%x" % len(data)
        size = draw(pick([size, size.upper(), b"00" + size],
                         [b"0x" + size, b"-" + size, b"+" + size, b" " + size, size + b" ", b"f" * 17,
                          b"0" * 25 + size, b"%x" % (len(data) + 1), b"%x" % max(len(data) - 1, 0)], odd))
        out += size + draw(chunk_ext(odd)) + draw(pick([b"\r\n"], [b"\n", b"\r", b"\r\r\n"], odd, weight=20))
        out += data + draw(pick([b"\r\n"], [b"\n", b"", b"X\r\n", b"\r"], odd, weight=10))
    out += draw(pick([b"0", b"000"], [b"0x0", b" 0", b"-0", b"0" * 25], odd, weight=10)) + draw(chunk_ext(odd))
    out += draw(pick([b"\r\n"], [b"\n", b"\r"], odd, weight=20))
    for _ in range(draw(st.integers(0, 2))):
        out += draw(pick([b"X-T: v", b"x-sum: 1"], [b"X T: v", b"X-T: a\x00", b" fold", b"X-T : v", b"X-T: " + b"w" * 170,
                                                     b"X-T: a\rb" + b"w" * 170], odd))
        out += draw(pick([b"\r\n"], [b"\n"], odd, weight=20))
    return out + draw(pick([b"\r\n"], [b"\n", b"", b"\r"], odd, weight=10))


def chunk_ext(odd: int) -> st.SearchStrategy[bytes]:
    return pick([b"", b"", b";a=b", b';q="x y"', b" ;a=b", b"; a = b", b";flag"],
                [b";", b';a="', b";a=b c", b";\x00", b";a=\x7f", b"; ", b";=b", b";" + b"e" * 4100], odd)


_MUTATION_BYTES = [b"\r", b"\n", b"\r\n", b" ", b"\t", b":", b",", b";", b"\x00", b"\x7f", b"\xff", b"0", b"a", b"-", b"+",
                   b"\r\n\r\n", b"\r\n "]


@st.composite
def mutated_request(draw: st.DrawFn, chunked_share: int = 3) -> bytes:
    """A valid request with one to three byte-level mutations (replace, insert, delete, duplicate, cut)."""
    raw = draw(request_bytes(noisy=False, chunked_share=chunked_share))
    for _ in range(draw(st.integers(1, 3))):
        if not raw:
            break
        i = draw(st.integers(0, len(raw) - 1))
        op = draw(st.sampled_from(["replace", "insert", "delete", "duplicate", "cut", "crlf-to-lf"]))
        if op == "replace":
            raw = raw[:i] + draw(st.sampled_from(_MUTATION_BYTES)) + raw[i + 1:]
        elif op == "insert":
            raw = raw[:i] + draw(st.sampled_from(_MUTATION_BYTES)) + raw[i:]
        elif op == "delete":
            raw = raw[:i] + raw[i + 1:]
        elif op == "duplicate":
            j = draw(st.integers(i, min(len(raw), i + 40)))
            raw = raw[:j] + raw[i:j] + raw[j:]
        elif op == "cut":
            raw = raw[:i]
        else:
            k = raw.find(b"\r\n", i)
            if k >= 0:
                raw = raw[:k] + raw[k + 1:]
    return raw


def cuts_for(raw: bytes) -> st.SearchStrategy[list[int]]:
    return st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=6)


# ---------------------------------------------------------------------------------------------------
# 1-3. The framer: grammar and mutations, whole / bytewise / split / trailing / h11
# ---------------------------------------------------------------------------------------------------
@fuzz_settings(2500)
@given(st.data())
def test_grammar_requests_differential(data: st.DataObject) -> None:
    raw = data.draw(request_bytes(), label="raw")
    cuts = data.draw(cuts_for(raw), label="cuts")
    ours = check_split_independence(raw, cuts, LIMITS)
    check_split_independence(raw, cuts, SMALL)
    check_against_h11(raw, ours)


@fuzz_settings(2000)
@given(st.data())
def test_mutated_requests_differential(data: st.DataObject) -> None:
    raw = data.draw(mutated_request(), label="raw")
    cuts = data.draw(cuts_for(raw), label="cuts")
    ours = check_split_independence(raw, cuts, LIMITS)
    check_split_independence(raw, cuts, SMALL)
    check_against_h11(raw, ours)


@fuzz_settings(400)
@given(st.binary(max_size=64), st.data())
def test_arbitrary_bytes(raw: bytes, data: st.DataObject) -> None:
    """Unstructured bytes, alone and after a valid request line: same properties."""
    for buf in (raw, b"POST / HTTP/1.1\r\nHost: h\r\n" + raw):
        cuts = data.draw(cuts_for(buf))
        check_against_h11(buf, check_split_independence(buf, cuts, LIMITS))


@fuzz_settings(1000)
@given(st.data())
def test_chunked_resumption_differential(data: st.DataObject) -> None:
    """Property 2 through `resume_chunked`, on the same grammar and mutations weighted towards chunked bodies
    (the tests above run `check_resumption` too, but most of their inputs never reach a chunked body)."""
    raw = data.draw(st.one_of(request_bytes(chunked_share=40), mutated_request(chunked_share=40)), label="raw")
    cuts = data.draw(cuts_for(raw), label="cuts")
    for limits in (LIMITS, SMALL):
        check_resumption(raw, cuts, limits, _run([raw], limits))


TE_HEAD = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(("raw", "status"), [
    # Found by test_grammar_requests_differential: a head over max_header_bytes whose first bytes hold a bare LF.
    (b"GET / HTTP/1.1\r\nHost:h\r\nX-A:v\r\nX-A:close\r\nX-A:keep-alive\r\nTransfer-Encoding:chunked\r\n\n"
     b"00000000000000000000000001\r\n\x00\r\n3\r\n\x00\x00\x00\r\n0;q=\"x y\"\r\n\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    # ... and a request line ended by a bare LF, the first CRLF beyond max_request_line (with and without CRLFCRLF).
    (b"GET / HTTP/1.1\nContent-Length:9999999999999999999999999\r\nHost: h\r\nHost:h\r\n\r\n", 400),
    (b"GET / HTTP/1.1\nContent-Length:9999999999999999999999999\r\nHost: h\r\nHost:h\r\n\n", 400),
    (b"GET /a\nb" + b"c" * 100 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    # The same in the trailer section of a chunked body (found by reading the code the fuzzer pointed at).
    (TE_HEAD + b"0\r\nX: a\nb" + b"v" * 300 + b"\r\n\r\n", 400),
    (TE_HEAD + b"0\r\nX: a\rb" + b"v" * 300 + b"\r\n\r\n", 400),
    (TE_HEAD + b"0\r\nX: a\nb" + b"v" * 300, 400),
    # Over the limit with nothing wrong before it: still the limit's status.
    (TE_HEAD + b"0\r\nX: " + b"v" * 300 + b"\r\n\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 300 + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * 100 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
])
def test_split_regressions(raw: bytes, status: int) -> None:
    """Inputs whose verdict used to depend on how the bytes were split (now the same everywhere)."""
    for cuts in ([], [7], [10, 60], list(range(1, len(raw), 3))):
        whole = check_split_independence(raw, cuts, SMALL)
        assert [v.same() for v in whole] == [("error", None, status)]


@pytest.mark.parametrize("zeros", [19, 26])
def test_content_length_of_more_than_18_zeros_is_zero(zeros: int) -> None:
    """Found by ``FUZZ_EXAMPLES=20000``: such a Content-Length raised ValueError (int(b"")), not a verdict."""
    raw = b"GET / HTTP/1.1\r\nHost:h\r\nContent-Length:" + b"0" * zeros + b"\r\n\r\n"
    for limits in (LIMITS, SMALL):
        ours = check_split_independence(raw, [len(raw) // 2], limits)
        assert [(v.kind, v.seen and (v.seen.body, v.seen.end)) for v in ours] == [("request", (b"", len(raw))),
                                                                                 ("need", None)]
    theirs = h11_run(raw)[0]
    if zeros <= 20:
        assert theirs.seen is not None and ours[0].seen is not None
        assert _comparable(theirs.seen) == _comparable(ours[0].seen)
    else:  # h11 caps Content-Length at 20 digits: the documented difference
        found = intended_difference(raw, theirs.detail)
        assert found is not None and found.id == "content-length-leading-zeros"


def test_intended_differences_are_documented() -> None:
    """Every entry of INTENDED is described, with its RFC reason, in docs/framer-vs-h11.md."""
    doc = open(os.path.join(os.path.dirname(__file__), os.pardir, "docs", "framer-vs-h11.md"), encoding="utf-8").read()
    for difference in INTENDED:
        assert f"`{difference.id}`" in doc, difference.id
        assert difference.rfc.split(":")[0] in doc, difference.rfc


@pytest.mark.parametrize(("raw", "difference"), [
    (b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "leading-empty-lines"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked,\r\n\r\n0\r\n\r\n", "te-empty-list-elements"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: , chunked\r\n\r\n0\r\n\r\n", "te-empty-list-elements"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1 ;a=b\r\nx\r\n0\r\n\r\n", "chunk-ext-bws"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + b"0" * 24 + b"1\r\nx\r\n0\r\n\r\n",
     "chunk-size-leading-zeros"),
    (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: " + b"0" * 24 + b"1\r\n\r\nx", "content-length-leading-zeros"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_each_intended_difference_is_real(raw: bytes, difference: str) -> None:
    """Each listed difference exists (h11 rejects, we serve it, as one request) and is recognised by its predicate."""
    ours = check_split_independence(raw, [len(raw) // 2], LIMITS)
    assert [v.kind for v in ours] == ["request", "need"]
    theirs = h11_run(raw)
    assert theirs[-1].kind == "error", theirs
    found = intended_difference(raw, theirs[-1].detail)
    assert found is not None and found.id == difference


@pytest.mark.parametrize("raw", [
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;a=b\r\nx\r\n0\r\n\r\n",  # h11 accepts
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 01\r\n\r\nx",
])
def test_predicates_do_not_excuse_what_h11_accepts(raw: bytes) -> None:
    """The difference list is not a blanket excuse: plain valid requests match no entry."""
    assert h11_run(raw)[0].kind == "request"
    assert intended_difference(raw, "illegal chunk header / bad Content-Length / Transfer-Encoding") is None


# ---------------------------------------------------------------------------------------------------
# Live-server fuzz
# ---------------------------------------------------------------------------------------------------
LIVE_LIMITS = Limits(read_timeout=2.0, idle_timeout=5.0)
LIVE_EXAMPLES = 100  # per backend


def _predict(raw: bytes) -> tuple[list[Seen], Verdict]:
    """What the server must do with ``raw``: the requests its handler sees, then how it ends."""
    verdicts = _run([raw], LIVE_LIMITS)
    served: list[Seen] = []
    for verdict in verdicts:
        if verdict.kind != "request":
            return served, verdict
        assert verdict.seen is not None
        served.append(verdict.seen)
        if not verdict.seen.keep_alive:
            return served, Verdict("stop")
    raise AssertionError("unreachable: a run always ends with need or error")


def _response_method(seen: Seen) -> bytes:
    return b"HEAD" if seen.method == b"HEAD" else b"GET"


def live_case(server_address: tuple[str, int], calls: list[bytes], raw: bytes, cuts: Sequence[int]) -> str:
    """Send ``raw`` split at ``cuts``; check the responses against the framer's prediction. The outcome label."""
    served, ending = _predict(raw)
    before = len(calls)
    with Client(server_address, timeout=5.0) as client:
        if ending.kind == "stop" and served[-1].end < len(raw):
            # After a request that closes the connection, bytes still arriving would be answered by an
            # RST that can destroy the response in flight: send those cases in one piece.
            cuts = []
        try:
            client.send_at(raw, cuts, pause=0.001)
        except (BrokenPipeError, ConnectionResetError):
            assert ending.kind in ("error", "stop"), "the server dropped a connection it should have kept"
        if ending.kind == "need":
            client.shut_wr()  # nothing more comes: the server must finish and close (not wait for more)
        for i, seen in enumerate(served):
            response = client.read_response(_response_method(seen))
            assert response.status == 200, (raw, i, response)
            assert response.header(b"x-seq") == b"%d" % (before + i + 1), (raw, i, response)
        if ending.kind == "error":
            response = client.read_response()
            assert response.status == ending.status, (raw, ending, response)
            assert response.closes, response
        rest = client.read_until_closed(limit=1 << 16)
        assert re.fullmatch(rb"(?:HTTP/1\.1 100 Continue\r\n\r\n)*", rest), (raw, rest)
        assert client.eof, "the server did not close the connection"
    assert calls[before:] == [s.target for s in served], (raw, calls[before:], served)
    return f"{len(served)} served, then {ending.kind} {ending.status or ''}".strip()


def test_live_server_fuzz(backend: str) -> None:
    calls: list[bytes] = []

    def handler(req: Request, out: bytearray) -> None:
        calls.append(req.target)
        out += b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Seq: %d\r\n\r\n" % len(calls)

    live = st.one_of(request_bytes(chunked_share=2), mutated_request())
    outcomes: list[str] = []

    with serve(handler, backend=backend, limits=LIVE_LIMITS) as server:
        address = server.address

        @fuzz_settings(LIVE_EXAMPLES)
        @given(st.data())
        def case(data: st.DataObject) -> None:
            raw = data.draw(live, label="raw")
            if not raw:
                return
            cuts = data.draw(st.lists(st.integers(1, max(1, len(raw) - 1)), max_size=4), label="cuts")
            outcomes.append(live_case(address, calls, raw, cuts))
            event(outcomes[-1])
            # ... and the worker still answers a valid request on a new connection.
            response = server.request(b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n")
            assert response.status == 200
            assert calls[-1] == b"/health"

        case()
    # leaving serve() shut the worker down and asserted that nothing leaked
    assert len(outcomes) >= examples(LIVE_EXAMPLES) // 2, outcomes  # the cases really ran
    assert any(o.startswith("0 served, then error") for o in outcomes), outcomes
    assert any(not o.startswith("0 served") for o in outcomes), outcomes

