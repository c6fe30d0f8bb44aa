"""A memo in front of the framer: identical request heads are validated once per worker.

Theory of operation
-------------------
`frame` is a pure function of the bytes it is given, so its verdict on a request head can be
remembered. Clients repeat heads byte for byte all the time — load balancer health checks, API
clients, keep-alive browsers fetching the same resource, benchmark tools — and validating a head
(regex over every field, the lowered copy, the framing fields) is most of what framing costs.

`frame_cached(buf, pos, limits)` behaves exactly like `frame(buf, pos, limits)`:

* the key is the head's exact bytes, from ``pos`` up to the CRLFCRLF, so a hit means the same
  bytes were already judged valid;
* only *valid* verdicts for heads without Transfer-Encoding are stored (a chunked body has to be
  decoded every time, and errors close the connection anyway), as offsets relative to the start
  of the head plus the shared lower-cased header copy, never a reference to an old buffer. A
  chunked request's `Need` (with its ``progress``) comes from `frame` untouched; while its body
  arrives the connection resumes it with `framer.resume_chunked`, not through this cache;
* a hit re-checks the three limits that depend on sizes (header section, request line, declared
  body), so one cache serves servers with different `Limits`; if any check fails the full framer
  runs and raises the precise error;
* the last hit's head and verdict are kept aside: when the bytes at ``pos`` start with that head
  followed by CRLFCRLF (a keep-alive or pipelining client repeating itself), it is compared in
  place with two ``startswith`` calls instead of searched, sliced and hashed;
* heads longer than `MAX_KEY` bytes are not cached, and the cache is emptied when it holds
  `MAX_ENTRIES`, so its memory is bounded (about MAX_ENTRIES × 2 × MAX_KEY bytes at worst).

A hit costs one slice, one dict lookup and the `Request` construction — about a third of a full
validation. tests/test_framer.py checks that the two functions agree on every input it tries.
"""

from __future__ import annotations

from typing import NamedTuple

from .framer import Need, continue_expected, frame
from .limits import Limits
from .request import Request

MAX_KEY = 2048
MAX_ENTRIES = 512


class _Head(NamedTuple):
    ts: int  # target start, relative to the head's first byte
    te: int  # target end
    base: int  # end of the request line
    lower: bytes  # the lower-cased header section (shared, immutable)
    head_len: int  # bytes up to and including the blank line
    body_len: int  # declared Content-Length (0 when none)
    minor: int
    keep_alive: bool
    expect_continue: bool


_cache: dict[bytes, _Head] = {}
_last_key = b""  # the head of the last hit, and its verdict: a client repeats its head (pipelining)
_last_head: _Head | None = None


def frame_cached(buf: bytes, pos: int, limits: Limits) -> Request | Need:
    """`frame`, memoised on the exact bytes of the head (see the module docstring)."""
    global _last_key, _last_head
    key = _last_key
    n = len(key)
    if n and buf.startswith(key, pos) and buf.startswith(b"\r\n\r\n", pos + n):
        # The same head as the last hit, compared in place: no search, no slice, no hash. (The first
        # CRLFCRLF is at pos + n: the key came from such a search, so none starts inside it.)
        head: _Head | None = _last_head
        hend = pos + n
    else:
        hend = buf.find(b"\r\n\r\n", pos)
        if hend <= pos or hend - pos > MAX_KEY or buf[pos] == 13:
            return frame(buf, pos, limits)
        key = buf[pos:hend]
        head = _cache.get(key)
        if head is not None:
            _last_key, _last_head = key, head
    if head is not None:
        ts, te, base, lower, head_len, body_len, minor, keep_alive, expect_continue = head  # one unpack
        if (
            hend - pos <= limits.max_header_bytes
            and base <= limits.max_request_line
            and body_len <= limits.max_body_bytes
        ):
            body_start = pos + head_len
            end = body_start + body_len
            if len(buf) < end:
                return Need(end - pos, expect_continue)
            return Request(buf, pos, pos + ts, pos + te, pos + base, lower, body_start, end, minor, keep_alive, end)
    result = frame(buf, pos, limits)
    if head is None and result.__class__ is Request:
        _remember(key, result, pos)
    return result


def _remember(key: bytes, req: Request, pos: int) -> None:
    if req._chunked is not None or req._start != pos:
        return
    if len(_cache) >= MAX_ENTRIES:
        _cache.clear()
    lower = req._lower
    _cache[key] = _Head(
        req._ts - pos, req._te - pos, req._base - pos, lower, req._bs - pos, req._be - req._bs, req.minor,
        req.keep_alive, continue_expected(lower, req.minor),
    )


def cache_clear() -> None:
    """Forget every remembered head (tests use this to compare cold and warm framing)."""
    global _last_key, _last_head
    _cache.clear()
    _last_key, _last_head = b"", None
