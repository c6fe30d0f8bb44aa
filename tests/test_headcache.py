"""The head cache must be invisible: frame_cached(buf, pos, limits) == frame(buf, pos, limits), always."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vanilla_async import Limits, ProtocolError, Request
from vanilla_async._core.framer import Need, frame
from vanilla_async._core.headcache import MAX_ENTRIES, _cache, cache_clear, frame_cached

TIGHT = Limits(max_request_line=40, max_header_bytes=80, max_body_bytes=4)
LIMITS = [Limits(), TIGHT]


def verdict(fn: Any, buf: bytes, pos: int, limits: Limits) -> Any:
    try:
        r = fn(buf, pos, limits)
    except ProtocolError as e:
        return ("error", e.status)
    if isinstance(r, Need):
        return ("need", r.total, r.expect_continue)
    assert isinstance(r, Request)
    return ("request", r.method, r.target, r.path, r.query, r.version, r.keep_alive, r.end, bytes(r.body),
            r.header_items(), r.header(b"host"), r.header_values(b"x-a"))


CORPUS = [
    b"GET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET /a?b=c HTTP/1.0\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
    b"POST /p HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nab",  # body incomplete
    b"PUT /p HTTP/1.1\r\nHost: t\r\nContent-Length: 9\r\nExpect: 100-continue\r\n\r\n",
    b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET /" + b"x" * 60 + b" HTTP/1.1\r\nHost: t\r\n\r\n",  # over TIGHT's request line
    b"GET / HTTP/1.1\r\nHost: t\r\nX-A: " + b"v" * 80 + b"\r\n\r\n",  # over TIGHT's header section
    b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-A: 1\r\nx-a: 2\r\n\r\n",
    b"\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost : t\r\n\r\n",
]


@pytest.mark.parametrize("raw", CORPUS)
def test_cold_and_warm_cache_agree_with_the_framer_under_every_limit(raw: bytes) -> None:
    pipelined = raw + b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n"
    for buf in (raw, pipelined, b"junk" + raw):
        pos = 4 if buf.startswith(b"junk") else 0
        for warm_with in LIMITS:  # warm the cache under one limit, then ask under each
            cache_clear()
            verdict(frame_cached, buf, pos, warm_with)
            for limits in LIMITS:
                assert verdict(frame_cached, buf, pos, limits) == verdict(frame, buf, pos, limits)


def test_a_hit_views_the_new_buffer_not_the_one_it_was_learned_from() -> None:
    cache_clear()
    first = frame_cached(b"POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nAA", 0, Limits())
    second = frame_cached(b"..POST /x HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nBB", 2, Limits())
    assert isinstance(first, Request) and isinstance(second, Request)
    assert len(_cache) == 1 and bytes(first.body) == b"AA" and bytes(second.body) == b"BB" and second.end == 52


def test_the_cache_is_bounded() -> None:
    cache_clear()
    for i in range(MAX_ENTRIES * 3):
        frame_cached(b"GET /%d HTTP/1.1\r\nHost: t\r\n\r\n" % i, 0, Limits())
    assert 0 < len(_cache) <= MAX_ENTRIES


_name = st.sampled_from([b"Host", b"X-A", b"x-a", b"Content-Length", b"Connection", b"Transfer-Encoding", b"Expect"])
_value = st.sampled_from([b"t", b"1", b"3", b"close", b"keep-alive", b"chunked", b"100-continue", b"a b", b"", b" x "])


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from([b"GET", b"POST", b"HEAD"]),
    target=st.sampled_from([b"/", b"/a?b", b"*"]),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
    fields=st.lists(st.tuples(_name, _value), max_size=5),
    tail=st.sampled_from([b"", b"abc", b"3\r\nabc\r\n0\r\n\r\n", b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"]),
    limits=st.sampled_from(LIMITS),
)
def test_random_heads_agree(method: bytes, target: bytes, version: bytes, fields: list[tuple[bytes, bytes]],
                            tail: bytes, limits: Limits) -> None:
    raw = method + b" " + target + b" " + version + b"\r\n" + b"".join(n + b": " + v + b"\r\n" for n, v in fields) + b"\r\n" + tail
    expected = verdict(frame, raw, 0, limits)
    assert verdict(frame_cached, raw, 0, limits) == expected  # cold (or warmed by an earlier example)
    assert verdict(frame_cached, raw, 0, limits) == expected  # warm


def test_the_last_head_shortcut_never_matches_a_longer_or_different_head() -> None:
    """The last hit is compared in place (startswith + CRLFCRLF right after it): a head it is only a
    prefix of, or one that differs after it, takes the full path and gets its own verdict."""
    cache_clear()
    limits = Limits()
    base = b"GET / HTTP/1.1\r\nHost: t"
    for _ in range(2):  # the second time is a hit: now it is the last head
        req = frame_cached(base + b"\r\n\r\n", 0, limits)
        assert isinstance(req, Request) and req.header(b"x-b") is None
    longer = base + b"\r\nX-B: 1\r\n\r\n"
    req = frame_cached(longer, 0, limits)
    assert isinstance(req, Request) and req.header(b"x-b") == b"1"
    with pytest.raises(ProtocolError):
        frame_cached(base + b"\r\nbad header\r\n\r\n", 0, limits)
    body = base + b"\r\nContent-Length: 2\r\n\r\nhi"
    for _ in range(2):
        req = frame_cached(body, 0, limits)
        assert isinstance(req, Request) and bytes(req.body) == b"hi"
    pipelined = (base + b"\r\n\r\n") * 3 + body
    pos, seen = 0, []
    while pos < len(pipelined):
        req = frame_cached(pipelined, pos, limits)
        assert isinstance(req, Request)
        seen.append(bytes(req.body))
        pos = req.end
    assert seen == [b"", b"", b"", b"hi"]
    cache_clear()
