"""examples.compression — precompressed brotli / zstd / gzip siblings chosen by Accept-Encoding.

At startup (before the workers fork) a few text files are written to a temporary directory, each
with its compressed siblings: ``.gz`` (stdlib ``gzip``), ``.br`` (the ``brotli`` package) and ``.zst``
(the ``zstandard`` package) — a codec whose package is missing is skipped, and the rest still
work. Requests then cost no compression at all: `vanilla_async.static` picks the sibling with the
highest q-value in ``Accept-Encoding`` (``q=0`` excludes; ties go to br, then zstd, then gzip),
sends it with ``Content-Encoding``, its own ``Content-Length`` and ETag, and ``Vary:
Accept-Encoding``; a client that accepts none of them gets the identity file.

Run: ``python -m examples.compression --port 8080 --workers 2``, then
``curl -s -H 'Accept-Encoding: br' http://127.0.0.1:8080/app.js | brotli -d`` or ``curl --compressed -i ...``.
"""

from __future__ import annotations

import atexit
import gzip
import importlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

from vanilla_async import ServerConfig
from vanilla_async.static import file_handler, static_files


def _load(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


_brotli = _load("brotli")
_zstd = _load("zstandard")

#: coding → (file suffix, compress function), for the codecs this machine has
CODECS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {"gzip": (".gz", lambda b: gzip.compress(b, 9, mtime=0))}
if _brotli is not None:
    CODECS["br"] = (".br", lambda b: bytes(_brotli.compress(b, quality=11)))
if _zstd is not None:
    CODECS["zstd"] = (".zst", lambda b: bytes(_zstd.ZstdCompressor(level=19).compress(b)))

FILES: dict[str, bytes] = {
    "index.html": b"<!doctype html><title>compression</title>\n" + b"<p>precompressed, negotiated</p>\n" * 200,
    "app.js": b"".join(b"export const value%d = %d * 2; // generated\n" % (i, i) for i in range(500)),
    "data.json": json.dumps([{"id": i, "name": f"item {i}", "tags": ["a", "b"]} for i in range(400)]).encode(),
}


def build_site(root: Path, codecs: Iterable[str]) -> None:
    """Write ``FILES`` under ``root`` with a compressed sibling per codec in ``codecs``."""
    root.mkdir(parents=True, exist_ok=True)
    for name, data in FILES.items():
        (root / name).write_bytes(data)
        for coding in codecs:
            suffix, compress = CODECS[coding]
            (root / (name + suffix)).write_bytes(compress(data))


def _site() -> Path:
    made = Path(tempfile.mkdtemp(prefix="vanilla-compression-"))
    owner = os.getpid()
    atexit.register(lambda: shutil.rmtree(made, ignore_errors=True) if os.getpid() == owner else None)
    build_site(made, CODECS)
    return made


SITE = _site()
static = static_files(SITE, prefix=b"/")

config = ServerConfig(handler=file_handler(static), port=8080)
