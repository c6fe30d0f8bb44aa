"""examples.etag over real sockets: 304 for every If-None-Match form and If-Modified-Since, 412/428 on PUT."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from examples.etag import INITIAL, config, write_doc
from vanilla_async.testing import Client, ServerProcess, serve


@pytest.fixture(autouse=True)
def fresh_doc() -> None:
    write_doc(INITIAL)


def get(*headers: bytes, method: bytes = b"GET") -> bytes:
    return method + b" /doc HTTP/1.1\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def put(body: bytes, *headers: bytes) -> bytes:
    lines = b"".join(h + b"\r\n" for h in headers)
    return b"PUT /doc HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), lines, body)


@pytest.mark.parametrize("backend", ["epoll", "selectors"])
def test_304_for_strong_weak_list_star_and_if_modified_since(backend: str) -> None:
    with serve(config, backend=backend) as server:
        first = server.request(get())
        tag, lm = first.header("etag") or b"", first.header("last-modified") or b""
        assert (first.status, first.body) == (200, INITIAL) and tag.startswith(b'"')
        for condition in (tag, b"W/" + tag, b'"nope", ' + tag, b"*"):
            r = server.request(get(b"If-None-Match: " + condition))
            assert (r.status, r.body, r.header("etag")) == (304, b"", tag), condition
        assert server.request(get(b"If-Modified-Since: " + lm)).status == 304
        assert server.request(get(b'If-None-Match: "nope"')).status == 200
        assert server.request(get(b'If-None-Match: "nope"', b"If-Modified-Since: " + lm)).status == 200
        assert server.request(get(b"If-Modified-Since: Thu, 01 Jan 1970 00:00:00 GMT")).status == 200
        assert server.request(get(b"If-Modified-Since: not a date")).status == 200
        head = server.request(get(b"If-None-Match: " + tag, method=b"HEAD"), b"HEAD")
        assert head.status == 304


def test_put_needs_the_current_etag() -> None:
    with serve(config) as server:
        tag = server.request(get()).header("etag") or b""
        missing = server.request(put(b"v2\n"))
        stale = server.request(put(b"v2\n", b'If-Match: "stale"'))
        weak = server.request(put(b"v2\n", b"If-Match: W/" + tag))
        ok = server.request(put(b"v2\n", b"If-Match: " + tag))
        again = server.request(put(b"v3\n", b"If-Match: " + tag))  # the tag is stale now
        now = server.request(get())
        bad = server.request(put(b"\xff\xfe", b"If-Match: *"))
        wrong = server.request(b"DELETE /doc HTTP/1.1\r\nHost: t\r\n\r\n")
        lost = server.request(b"GET /other HTTP/1.1\r\nHost: t\r\n\r\n")
    assert missing.status == 428 and stale.status == 412 and weak.status == 412
    assert ok.status == 204 and ok.header("etag") == now.header("etag") != tag
    assert again.status == 412 and now.body == b"v2\n"
    assert bad.status == 400 and wrong.status == 405 and lost.status == 404


def test_as_a_process_with_two_workers_and_curl() -> None:
    with ServerProcess("-m", "examples.etag", "--port", "0", "--workers", "2") as proc:
        port = proc.port()
        with Client(("127.0.0.1", port)) as client:
            client.send(get())
            tag = client.read_response().header("etag") or b""
            client.send(get(b"If-None-Match: " + tag))
            assert client.read_response().status == 304
        curl = shutil.which("curl")
        if curl is not None:
            done = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "5",
                                   "-H", "If-None-Match: " + tag.decode(), f"http://127.0.0.1:{port}/doc"],
                                  capture_output=True, timeout=10)
            assert done.stdout == b"304"
        assert proc.stop() == 0
