"""examples.compression over real sockets: every codec decompresses to the original; q-values decide."""

from __future__ import annotations

import gzip
import importlib
import shutil
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest

from examples.compression import CODECS, FILES, build_site, config
from vanilla_async import ServerConfig
from vanilla_async.static import file_handler, static_files
from vanilla_async.testing import Client, ServerProcess, serve


def get(target: bytes, *headers: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def decoder(coding: str) -> Callable[[bytes], bytes]:
    if coding == "gzip":
        return gzip.decompress
    if coding == "br":
        brotli: Any = importlib.import_module("brotli")
        return lambda data: bytes(brotli.decompress(data))
    zstandard: Any = importlib.import_module("zstandard")
    return lambda data: bytes(zstandard.ZstdDecompressor().decompress(data))


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
@pytest.mark.parametrize("name", list(FILES))
def test_each_codec_round_trips(coding: str, name: str) -> None:
    if coding not in CODECS:
        pytest.skip(f"the package for {coding} is not installed")
    with serve(config) as server:
        r = server.request(get(b"/" + name.encode(), b"Accept-Encoding: " + coding.encode()))
    assert r.status == 200 and r.header("content-encoding") == coding.encode()
    assert r.header("vary") == b"Accept-Encoding" and int(r.header("content-length") or b"0") == len(r.body)
    assert len(r.body) < len(FILES[name]) and decoder(coding)(r.body) == FILES[name]


def test_q_values_choose_and_q0_excludes() -> None:
    with serve(config) as server:
        def chosen(accept: bytes) -> bytes | None:
            return server.request(get(b"/app.js", b"Accept-Encoding: " + accept)).header("content-encoding")
        assert chosen(b"gzip") == b"gzip"
        assert chosen(b"gzip;q=0, identity") is None
        assert chosen(b"*;q=0") is None
        assert chosen(b"gzip;q=0.2, zstd;q=0.1") == b"gzip"
        if "br" in CODECS:
            assert chosen(b"gzip, deflate, br") == b"br"
            assert chosen(b"gzip;q=1.0, br;q=0.5") == b"gzip"
            assert chosen(b"br;q=0, *") == (b"zstd" if "zstd" in CODECS else b"gzip")
        if "zstd" in CODECS:
            assert chosen(b"zstd, gzip;q=0.9") == b"zstd"
        plain = server.request(get(b"/app.js"))
    assert plain.header("content-encoding") is None and plain.body == FILES["app.js"]


def test_a_missing_codec_leaves_the_others_working(tmp_path: Path) -> None:
    build_site(tmp_path, ["gzip"])  # as on a machine without brotli and zstandard
    with serve(ServerConfig(handler=file_handler(static_files(tmp_path, prefix=b"/")))) as server:
        r = server.request(get(b"/data.json", b"Accept-Encoding: br, zstd, gzip;q=0.5"))
    assert r.header("content-encoding") == b"gzip" and gzip.decompress(r.body) == FILES["data.json"]


def test_as_a_process_with_curl_compressed() -> None:
    curl = shutil.which("curl")
    with ServerProcess("-m", "examples.compression", "--port", "0", "--workers", "2") as proc:
        port = proc.port()
        with Client(("127.0.0.1", port)) as client:
            client.send(get(b"/app.js", b"Accept-Encoding: gzip"))
            assert gzip.decompress(client.read_response().body) == FILES["app.js"]
        if curl is not None:
            done = subprocess.run([curl, "-s", "--compressed", "-H", "Accept-Encoding: gzip", "--max-time", "5",
                                   f"http://127.0.0.1:{port}/index.html"], capture_output=True, timeout=10)
            assert done.stdout == FILES["index.html"]
        assert proc.stop() == 0
