"""vanilla_async.static and the connection's FileBody path, end to end over real sockets."""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Generator

import pytest

from vanilla_async import Limits, Request, respond, sleep
from vanilla_async.static import (
    FileBody,
    StaticConfigError,
    StaticFiles,
    accepted_encodings,
    content_type,
    static_files,
)
from vanilla_async.testing import call, serve

BIG = 3 * 1024 * 1024 + 17  # several sendfile calls
HUGE = 64 * 1024 * 1024  # beyond what loopback socket buffers hold: partial sendfile, EAGAIN, EPOLLOUT


def get(target: bytes, *headers: bytes, method: bytes = b"GET") -> bytes:
    lines = b"".join(h + b"\r\n" for h in headers)
    return method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n" + lines + b"\r\n"


def pattern(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "public"
    (root / "css").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "index.html").write_bytes(b"<!doctype html><title>home</title>\n")
    (root / "docs" / "index.html").write_bytes(b"<p>docs</p>\n")
    (root / "css" / "site.css").write_bytes(b"body { color: red }\n")
    (root / "hello.txt").write_bytes(b"hello, static\n")
    (root / "app.3f2a1c.js").write_bytes(b"console.log('hashed')\n")
    (root / "mod.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    (root / "big.bin").write_bytes(pattern(BIG))
    with open(root / "huge.bin", "wb") as f:  # sparse: more than any socket buffers hold, no disk used
        f.truncate(HUGE)
    (root / ".env").write_bytes(b"SECRET=1\n")
    (root / "%2e%2e").write_bytes(b"a file literally named %2e%2e\n")
    (tmp_path / "secret.txt").write_bytes(b"outside the root\n")
    (root / "escape.txt").symlink_to(tmp_path / "secret.txt")
    (root / "escape_dir").symlink_to(tmp_path)
    (root / "rel_escape.txt").symlink_to("../secret.txt")
    (root / "alias.txt").symlink_to(root / "hello.txt")  # stays inside: allowed
    return root


def test_a_file_is_served_with_type_length_validators_and_accept_ranges(tree: Path, backend: str) -> None:
    with serve(static_files(tree), backend=backend) as server:
        r = server.request(get(b"/static/hello.txt"))
    assert (r.status, r.body) == (200, b"hello, static\n")
    assert r.header("content-type") == b"text/plain; charset=utf-8"
    assert r.header("content-length") == b"14" and r.header("accept-ranges") == b"bytes"
    st = (tree / "hello.txt").stat()
    assert r.header("etag") == b'"%x-%x"' % (st.st_mtime_ns, st.st_size)
    assert (r.header("last-modified") or b"").endswith(b" GMT")
    assert r.header("cache-control") == b"no-cache" and r.header("vary") == b"Accept-Encoding"


@pytest.mark.parametrize("name, expected", [
    ("a.js", "text/javascript; charset=utf-8"), ("a.mjs", "text/javascript; charset=utf-8"),
    ("a.wasm", "application/wasm"), ("a.css", "text/css; charset=utf-8"), ("a.svg", "image/svg+xml"),
    ("a.woff2", "font/woff2"), ("a.json", "application/json"), ("a.tar", "application/x-tar"),
    ("noext", "application/octet-stream"), ("a.unknownext", "application/octet-stream"),
])
def test_content_types(name: str, expected: str) -> None:
    assert content_type(name) == expected


def test_index_redirect_and_directory_urls(tree: Path) -> None:
    with serve(static_files(tree)) as server:
        root = server.request(get(b"/static/"))
        docs = server.request(get(b"/static/docs/"))
        moved = server.request(get(b"/static/docs?x=1"))
        not_dir = server.request(get(b"/static/hello.txt/"))
    assert (root.status, root.body) == (200, b"<!doctype html><title>home</title>\n")
    assert root.header("content-type") == b"text/html; charset=utf-8"
    assert (docs.status, docs.body) == (200, b"<p>docs</p>\n")
    assert moved.status == 301 and moved.header("location") == b"/static/docs/?x=1"
    assert not_dir.status == 404


@pytest.mark.parametrize("target, status", [
    (b"/static/../secret.txt", 400),
    (b"/static/css/../../secret.txt", 400),
    (b"/static/%2e%2e/secret.txt", 400),
    (b"/static/%2E%2E/secret.txt", 400),
    (b"/static/css/%2e%2e%2f%2e%2e%2fsecret.txt", 400),     # %2f: an encoded slash
    (b"/static/..%2fsecret.txt", 400),
    (b"/static/..%5csecret.txt", 400),                      # %5c: an encoded backslash
    (b"/static/..\\secret.txt", 400),                       # a raw backslash
    (b"/static/hello.txt%00.png", 400),                     # an encoded NUL
    (b"/static//etc/passwd", 400),                          # an absolute path in the join
    (b"/static/%2fetc%2fpasswd", 400),
    (b"/static/./hello.txt", 400),
    (b"/static/%zz", 400),                                  # a broken escape
    (b"/static/%252e%252e/secret.txt", 404),                # double-encoded: decoded once, no such file
    (b"/static/escape.txt", 404),                           # a symlink to a file outside the root
    (b"/static/escape_dir/secret.txt", 404),                # a symlinked directory outside the root
    (b"/static/rel_escape.txt", 404),                       # a relative symlink: ../secret.txt
    (b"/static/.env", 404),                                 # dotfiles are hidden
    (b"/static/nope.txt", 404),
    (b"/elsewhere/hello.txt", 404),                         # outside the prefix
])
def test_traversal_attempts_are_refused(tree: Path, target: bytes, status: int, backend: str) -> None:
    with serve(static_files(tree), backend=backend) as server:
        client = server.connect()
        client.send(get(target))
        r = client.read_response()
        assert r.status == status, (target, r.status, r.body)
        assert b"outside the root" not in r.body and b"SECRET" not in r.body and b"root:" not in r.body
        client.send(get(b"/static/hello.txt"))  # the connection is still fine
        assert client.read_response().body == b"hello, static\n"


def test_a_symlink_inside_the_root_and_a_literal_percent_name_are_served(tree: Path) -> None:
    with serve(static_files(tree)) as server:
        alias = server.request(get(b"/static/alias.txt"))
        literal = server.request(get(b"/static/%252e%252e"))  # decodes once to the file "%2e%2e"
    assert (alias.status, alias.body) == (200, b"hello, static\n")
    assert (literal.status, literal.body) == (200, b"a file literally named %2e%2e\n")


def test_traversal_with_curl_path_as_is(tree: Path) -> None:
    import shutil
    import subprocess
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    with serve(static_files(tree)) as server:
        done = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", "--max-time", "5",
                               f"{server.url}/static/../secret.txt"], capture_output=True, timeout=10)
        ok = subprocess.run([curl, "-s", "--max-time", "5", f"{server.url}/static/css/site.css"],
                            capture_output=True, timeout=10)
    assert done.stdout == b"400"
    assert ok.stdout == b"body { color: red }\n"


def test_methods_other_than_get_and_head_get_405(tree: Path) -> None:
    with serve(static_files(tree)) as server:
        r = server.request(b"POST /static/hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
    assert r.status == 405 and r.header("allow") == b"GET, HEAD"


def test_conditional_get_304_and_412(tree: Path) -> None:
    with serve(static_files(tree)) as server:
        first = server.request(get(b"/static/hello.txt"))
        tag, lm = first.header("etag") or b"", first.header("last-modified") or b""
        by_tag = server.request(get(b"/static/hello.txt", b"If-None-Match: " + tag))
        weak = server.request(get(b"/static/hello.txt", b"If-None-Match: W/" + tag))
        by_date = server.request(get(b"/static/hello.txt", b"If-Modified-Since: " + lm))
        stale = server.request(get(b"/static/hello.txt", b'If-None-Match: "other"', b"If-Modified-Since: " + lm))
        failed = server.request(get(b"/static/hello.txt", b'If-Match: "other"'))
        head304 = server.request(get(b"/static/hello.txt", b"If-None-Match: " + tag, method=b"HEAD"))
    for r in (by_tag, weak, by_date, head304):
        assert r.status == 304 and r.body == b"" and r.header("content-length") is None
        assert r.header("etag") == tag and r.header("vary") == b"Accept-Encoding"
        assert r.header("cache-control") == b"no-cache"
    assert stale.status == 200 and stale.body == b"hello, static\n"  # If-Modified-Since ignored beside INM
    assert failed.status == 412


def test_ranges_206_416_and_if_range(tree: Path, backend: str) -> None:
    data = pattern(BIG)
    with serve(static_files(tree), backend=backend) as server:
        tag = server.request(get(b"/static/hello.txt")).header("etag") or b""
        mid = server.request(get(b"/static/big.bin", b"Range: bytes=1000000-1000099"))
        tail = server.request(get(b"/static/big.bin", b"Range: bytes=-10"))
        open_end = server.request(get(b"/static/big.bin", b"Range: bytes=3145000-"))
        small = server.request(get(b"/static/hello.txt", b"Range: bytes=0-4"))
        beyond = server.request(get(b"/static/hello.txt", b"Range: bytes=100-"))
        several = server.request(get(b"/static/hello.txt", b"Range: bytes=0-1,3-4"))
        if_range_ok = server.request(get(b"/static/hello.txt", b"Range: bytes=7-", b"If-Range: " + tag))
        if_range_stale = server.request(get(b"/static/hello.txt", b"Range: bytes=7-", b'If-Range: "old"'))
        head = server.request(get(b"/static/hello.txt", b"Range: bytes=0-4", method=b"HEAD"))
    assert mid.status == 206 and mid.body == data[1000000:1000100]
    assert mid.header("content-range") == b"bytes 1000000-1000099/%d" % BIG
    assert tail.status == 206 and tail.body == data[-10:]
    assert open_end.status == 206 and open_end.body == data[3145000:]
    assert open_end.header("content-range") == b"bytes 3145000-%d/%d" % (BIG - 1, BIG)
    assert (small.status, small.body, small.header("content-range")) == (206, b"hello", b"bytes 0-4/14")
    assert beyond.status == 416 and beyond.header("content-range") == b"bytes */14"
    assert several.status == 200 and several.body == b"hello, static\n"  # documented: several ranges → 200
    assert (if_range_ok.status, if_range_ok.body) == (206, b"static\n")
    assert (if_range_stale.status, if_range_stale.body) == (200, b"hello, static\n")
    assert head.status == 200 and head.header("content-length") == b"14"


def test_hashed_assets_are_immutable_and_wasm_has_its_type(tree: Path) -> None:
    with serve(static_files(tree)) as server:
        js = server.request(get(b"/static/app.3f2a1c.js"))
        wasm = server.request(get(b"/static/mod.wasm"))
    assert js.header("cache-control") == b"public, max-age=31536000, immutable"
    assert js.header("content-type") == b"text/javascript; charset=utf-8"
    assert wasm.header("content-type") == b"application/wasm" and wasm.body == b"\x00asm\x01\x00\x00\x00"


def test_spa_fallback_serves_index_for_routes_not_for_assets(tree: Path) -> None:
    with serve(static_files(tree, prefix=b"/", spa_fallback="index.html")) as server:
        route = server.request(get(b"/app/settings/profile"))
        asset = server.request(get(b"/missing.js"))
    assert route.status == 200 and b"home" in route.body
    assert asset.status == 404


def test_accept_encoding_parsing() -> None:
    assert accepted_encodings(b"gzip, br;q=0.8, zstd;q=0, *;q=0.1") == {"gzip": 1.0, "br": 0.8, "zstd": 0.0, "*": 0.1}
    assert accepted_encodings(b"x-gzip;Q=0.5, br;q=2, deflate;q=abc") == {"gzip": 0.5}
    assert accepted_encodings(None) == {} and accepted_encodings(b" , ") == {}


def test_precompressed_sibling_chosen_by_q_values(tree: Path) -> None:
    text = b"compress me " * 200
    (tree / "app.js").write_bytes(text)
    (tree / "app.js.gz").write_bytes(gzip.compress(text))
    (tree / "app.js.br").write_bytes(b"not really brotli, but a distinct sibling")
    with serve(static_files(tree)) as server:
        gz = server.request(get(b"/static/app.js", b"Accept-Encoding: gzip, br;q=0.5"))
        br = server.request(get(b"/static/app.js", b"Accept-Encoding: gzip, br"))
        no_br = server.request(get(b"/static/app.js", b"Accept-Encoding: br;q=0, gzip;q=0.1"))
        star = server.request(get(b"/static/app.js", b"Accept-Encoding: *"))
        none = server.request(get(b"/static/app.js", b"Accept-Encoding: gzip;q=0, br;q=0"))
        plain = server.request(get(b"/static/app.js"))
    assert gz.header("content-encoding") == b"gzip" and gzip.decompress(gz.body) == text
    assert gz.header("content-length") == str((tree / "app.js.gz").stat().st_size).encode()
    assert gz.header("content-type") == b"text/javascript; charset=utf-8" and gz.header("vary") == b"Accept-Encoding"
    assert br.header("content-encoding") == b"br"  # tie at q=1: the server's order (br first)
    assert no_br.header("content-encoding") == b"gzip"
    assert star.header("content-encoding") == b"br"
    assert none.header("content-encoding") is None and none.body == text
    assert plain.header("content-encoding") is None and plain.body == text
    assert gz.header("etag") != plain.header("etag")


def test_a_precompressed_sibling_symlinked_outside_the_root_is_not_used(tree: Path) -> None:
    (tree / "hello.txt.gz").symlink_to(tree.parent / "secret.txt")
    with serve(static_files(tree)) as server:
        r = server.request(get(b"/static/hello.txt", b"Accept-Encoding: gzip"))
    assert r.header("content-encoding") is None and r.body == b"hello, static\n"


def test_configuration_errors(tree: Path) -> None:
    with pytest.raises(StaticConfigError, match="not a directory"):
        static_files(tree / "hello.txt")
    with pytest.raises(StaticConfigError, match="prefix"):
        static_files(tree, prefix=b"/static")
    with pytest.raises(StaticConfigError, match="unknown precompressed coding"):
        static_files(tree, precompressed=["deflate"])
    with pytest.raises(StaticConfigError, match="plain file name"):
        static_files(tree, index="../x.html")


# -- the FileBody path in the connection -------------------------------------------------------------
def recording(static: StaticFiles, seen: list[str]) -> Callable[[Request, bytearray], FileBody | None]:
    def handler(req: Request, out: bytearray) -> FileBody | None:
        if req.path == b"/plain":
            respond(out, 200, b"plain")
            return None
        result = static(req, out)
        seen.append(type(result).__name__)
        return result
    return handler


def test_a_large_file_goes_out_with_sendfile_through_partial_sends(tree: Path, backend: str) -> None:
    seen: list[str] = []
    with serve(recording(static_files(tree), seen), backend=backend) as server:
        client = server.connect(timeout=10)
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.send(get(b"/static/huge.bin") + get(b"/static/big.bin"))
        time.sleep(0.3)  # the server fills the socket, gets EAGAIN and waits for writability
        huge = client.read_response()
        big = client.read_response()
    assert seen == ["FileBody", "FileBody"]
    assert huge.status == 200 and len(huge.body) == HUGE and huge.body.count(0) == HUGE
    assert big.status == 200 and big.body == pattern(BIG)


def test_pipelined_requests_behind_a_file_are_answered_in_order(tree: Path, backend: str) -> None:
    seen: list[str] = []
    with serve(recording(static_files(tree), seen), backend=backend) as server:
        responses = server.pipeline([
            get(b"/plain"), get(b"/static/big.bin"), get(b"/static/hello.txt"), get(b"/static/big.bin",
            b"Range: bytes=-70000"), get(b"/plain"),
        ])
    data = pattern(BIG)
    assert [r.body for r in responses] == [b"plain", data, b"hello, static\n", data[-70000:], b"plain"]
    assert seen == ["FileBody", "NoneType", "FileBody"]


def test_head_sends_no_body_and_keeps_the_connection(tree: Path, backend: str) -> None:
    with serve(static_files(tree), backend=backend) as server:
        client = server.connect()
        client.send(get(b"/static/big.bin", method=b"HEAD") + get(b"/static/hello.txt"))
        head = client.read_response(b"HEAD")
        after = client.read_response()
    assert head.status == 200 and head.header("content-length") == str(BIG).encode() and head.body == b""
    assert after.body == b"hello, static\n"


def test_a_client_leaving_mid_file_leaks_nothing(tree: Path, backend: str) -> None:
    """Leaving the `serve` block asserts no fd (the file's included), task or timer is left."""
    with serve(static_files(tree), backend=backend) as server:
        for how in ("close", "rst"):
            client = server.connect()
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.send(get(b"/static/big.bin"))
            assert client.sock.recv(1000).startswith(b"HTTP/1.1 200 OK")
            if how == "rst":
                client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            client.close()
        time.sleep(0.2)
        assert server.request(get(b"/static/hello.txt")).status == 200  # still serving


def test_a_reader_that_stalls_is_cut_by_the_write_timeout(tree: Path, backend: str) -> None:
    with serve(static_files(tree), backend=backend, limits=Limits(write_timeout=0.5)) as server:
        client = server.connect(timeout=5)
        client.send(get(b"/static/huge.bin"))
        time.sleep(1.5)  # never read: the server must give up, close the file and the socket
        got = client.read_until_closed(limit=HUGE + 10000)
    assert got.startswith(b"HTTP/1.1 200 OK") and len(got) < HUGE  # cut before the end


def test_shutdown_mid_file_closes_cleanly(tree: Path) -> None:
    with serve(static_files(tree), grace=0.3) as server:
        client = server.connect()
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.send(get(b"/static/big.bin"))
        assert client.sock.recv(100).startswith(b"HTTP/1.1 200")
        leaks = server.stop()
    server.assert_no_leaks(leaks)


def test_fallback_to_read_and_send_when_sendfile_refuses_the_fd(caplog: pytest.LogCaptureFixture) -> None:
    path = "/proc/self/cmdline"  # procfs: pread works, sendfile says EINVAL (checked below)
    fd = os.open(path, os.O_RDONLY)
    try:
        a, b = socket.socketpair()
        with a, b:
            try:
                os.sendfile(a.fileno(), fd, 0, 10)
                pytest.skip("this kernel can sendfile from procfs; no fd here to exercise the fallback")
            except OSError:
                pass
        expected = os.pread(fd, 1 << 16, 0)
    finally:
        os.close(fd)

    def handler(req: Request, out: bytearray) -> FileBody:
        out += b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(expected)
        return FileBody(os.open(path, os.O_RDONLY), 0, len(expected))

    caplog.set_level(logging.DEBUG, logger="vanilla_async")
    with serve(handler) as server:
        responses = server.pipeline([get(b"/a"), get(b"/b")])
    assert [r.body for r in responses] == [expected, expected]
    assert any("falling back to read + send" in rec.getMessage() for rec in caplog.records)


def test_a_file_shorter_than_promised_closes_the_connection(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "short").write_bytes(b"x" * 100_000)

    def handler(req: Request, out: bytearray) -> FileBody:
        out += b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n"
        return FileBody(os.open(tmp_path / "short", os.O_RDONLY), 0, 200_000)

    with serve(handler) as server:
        client = server.connect()
        client.send(get(b"/"))
        got = client.read_until_closed()
    assert got.endswith(b"x" * 1000) and len(got) < 200_000
    assert any("ended" in rec.getMessage() for rec in caplog.records)


def test_http_client_reads_a_big_file(tree: Path) -> None:
    with serve(static_files(tree)) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        try:
            conn.request("GET", "/static/big.bin")
            resp = conn.getresponse()
            body = resp.read()
            conn.request("GET", "/static/hello.txt")
            second = conn.getresponse().read()
        finally:
            conn.close()
    assert resp.status == 200 and body == pattern(BIG) and second == b"hello, static\n"



def test_testing_call_reads_a_returned_file_body(tmp_path: Path) -> None:
    data = os.urandom(40_000)  # above inline_max: the handler returns a FileBody
    (tmp_path / "big.bin").write_bytes(data)
    handler = StaticFiles(tmp_path)
    fds_before = len(os.listdir("/proc/self/fd"))
    got = call(handler, b"GET /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    head, _, body = got.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"\r\nContent-Length: 40000" in head
    assert body == data
    head_only = call(handler, b"HEAD /static/big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    assert head_only.endswith(b"\r\n\r\n") and b"Content-Length: 40000" in head_only
    assert len(os.listdir("/proc/self/fd")) == fds_before  # call() closed the file both times


def parked_then_file(static: StaticFiles) -> Callable[[Request, bytearray], object]:
    """A generator handler: waits (parked, or not at all with ?now), then ends by returning the
    static handler's `FileBody` — e.g. after an auth check that needed the database."""

    def handler(req: Request, out: bytearray) -> object:
        if not req.path.startswith(b"/static/"):
            respond(out, 200, b"plain")
            return None
        return fetch(req, out)

    def fetch(req: Request, out: bytearray) -> Generator[Any, Any, FileBody | None]:
        if req.query != b"now":
            yield sleep(0.02)
        return static(req, out)

    return handler


@pytest.mark.parametrize("when", ["parked", "inline"])
def test_a_generator_handler_may_end_by_returning_a_file_body(tree: Path, backend: str, when: str) -> None:
    query = b"" if when == "parked" else b"?now"
    with serve(parked_then_file(static_files(tree)), backend=backend) as server:
        responses = server.pipeline([
            get(b"/static/big.bin" + query), get(b"/plain"), get(b"/static/hello.txt" + query), get(b"/plain"),
        ])
        head = server.request(get(b"/static/big.bin" + query, method=b"HEAD"), method=b"HEAD")
        with server.connect() as client:  # the client leaves while its file is going out: nothing leaks
            client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            client.send(get(b"/static/big.bin" + query))
            assert client.sock.recv(1000).startswith(b"HTTP/1.1 200 OK")
        time.sleep(0.1)
        assert server.request(get(b"/plain")).body == b"plain"
    assert [r.body for r in responses] == [pattern(BIG), b"plain", b"hello, static\n", b"plain"]
    assert head.status == 200 and head.header("content-length") == str(BIG).encode() and head.body == b""
