"""examples.static_files over real sockets (in-process and as a 2-worker process, with curl)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from examples.static_files import PUBLIC, config
from vanilla_async.testing import Client, ServerProcess, serve


def get(target: bytes, *headers: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def test_files_index_and_redirect() -> None:
    with serve(config) as server:
        home = server.request(get(b"/"))
        hello = server.request(get(b"/hello.txt"))
        css = server.request(get(b"/style.css"))
        docs = server.request(get(b"/docs/"))
        moved = server.request(get(b"/docs"))
    assert home.status == 200 and home.body == (PUBLIC / "index.html").read_bytes()
    assert home.header("content-type") == b"text/html; charset=utf-8"
    assert hello.body == b"Hello from a static file.\n" and hello.header("etag") is not None
    assert css.header("content-type") == b"text/css; charset=utf-8"
    assert docs.body == (PUBLIC / "docs" / "index.html").read_bytes()
    assert moved.status == 301 and moved.header("location") == b"/docs/"


@pytest.mark.parametrize("target, status", [
    (b"/../__init__.py", 400), (b"/%2e%2e/__init__.py", 400), (b"/docs/..%2f..%2f__init__.py", 400),
    (b"/..%5c__init__.py", 400), (b"/hello.txt%00", 400), (b"//etc/passwd", 400),
    (b"/%252e%252e/__init__.py", 404), (b"/.hidden", 404), (b"/missing.txt", 404),
])
def test_traversal_is_refused(target: bytes, status: int) -> None:
    with serve(config) as server:
        r = server.request(get(target))
    assert r.status == status and b"import" not in r.body


def test_ranges_and_304() -> None:
    guide = (PUBLIC / "docs" / "guide.txt").read_bytes()
    with serve(config) as server:
        first = server.request(get(b"/docs/guide.txt"))
        part = server.request(get(b"/docs/guide.txt", b"Range: bytes=100-199"))
        tail = server.request(get(b"/docs/guide.txt", b"Range: bytes=-64"))
        beyond = server.request(get(b"/docs/guide.txt", b"Range: bytes=%d-" % len(guide)))
        fresh = server.request(get(b"/docs/guide.txt", b"If-None-Match: " + (first.header("etag") or b"")))
    assert first.body == guide and len(guide) > 16384  # (sent with sendfile)
    assert (part.status, part.body, part.header("content-range")) == (206, guide[100:200], b"bytes 100-199/%d" % len(guide))
    assert (tail.status, tail.body) == (206, guide[-64:])
    assert beyond.status == 416 and beyond.header("content-range") == b"bytes */%d" % len(guide)
    assert fresh.status == 304 and fresh.body == b""


def test_as_a_process_with_curl() -> None:
    with ServerProcess("-m", "examples.static_files", "--port", "0", "--workers", "2") as proc:
        port = proc.port()
        with Client(("127.0.0.1", port)) as client:
            client.send(get(b"/hello.txt") + get(b"/docs/guide.txt", b"Range: bytes=0-9"))
            assert client.read_response().body == b"Hello from a static file.\n"
            assert client.read_response().body == b"line 0000 "
        curl = shutil.which("curl")
        if curl is not None:
            ok = subprocess.run([curl, "-s", "--max-time", "5", f"http://127.0.0.1:{port}/docs/guide.txt"],
                                capture_output=True, timeout=10)
            assert ok.stdout == (PUBLIC / "docs" / "guide.txt").read_bytes()
            bad = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", "--max-time",
                                  "5", f"http://127.0.0.1:{port}/../__init__.py"], capture_output=True, timeout=10)
            assert bad.stdout == b"400"
        assert proc.stop() == 0
