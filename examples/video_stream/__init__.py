"""examples.video_stream — seekable media over Range requests, sent with ``os.sendfile``.

At startup (before the workers fork) a 6 MiB file ``clip.mp4`` of deterministic bytes is written
to a temporary directory (``VIDEO_SIZE`` bytes; the bytes are not a real video — what matters here
is how a player asks for them). ``GET /video/clip.mp4`` answers ``200`` with the whole file and
``Accept-Ranges: bytes``; a player seeking sends ``Range: bytes=N-`` and gets **206** with
``Content-Range: bytes N-LAST/SIZE``; a range past the end gets **416** with
``Content-Range: bytes */SIZE``; ``If-Range`` with a stale ETag gets the whole file again. The
body never passes through Python: the handler appends the head and returns a `FileBody`, and the
connection sends it with ``os.sendfile`` as the client reads (a slow player holds no memory).
``GET /`` is a page with a ``<video>`` element pointing at it.

Run: ``python -m examples.video_stream --port 8080 --workers 2``, then
``curl -s -D - -o /dev/null -H 'Range: bytes=3000000-' http://127.0.0.1:8080/video/clip.mp4``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from vanilla_async import Request, ServerConfig, StaticResponse
from vanilla_async.static import FileBody, file_handler, static_files

VIDEO_SIZE = 6 * 1024 * 1024 + 123


def clip_bytes(start: int, stop: int) -> bytes:
    """The bytes ``[start, stop)`` of the generated clip (a repeating 251-byte pattern: prime, so
    an off-by-one anywhere shows)."""
    block = bytes(i % 251 for i in range(251))
    first = start - start % 251
    reps = (stop - first) // 251 + 1
    return (block * reps)[start - first:stop - first]


def _make_clip() -> str:
    made = tempfile.mkdtemp(prefix="vanilla-video-")
    owner = os.getpid()
    atexit.register(lambda: shutil.rmtree(made, ignore_errors=True) if os.getpid() == owner else None)
    with open(os.path.join(made, "clip.mp4"), "wb") as f:
        step = 251 * 4096
        for start in range(0, VIDEO_SIZE, step):
            f.write(clip_bytes(start, min(start + step, VIDEO_SIZE)))
    return made


MEDIA = _make_clip()
videos = static_files(MEDIA, prefix=b"/video/", precompressed=(), cache_control=b"public, max-age=60", inline_max=0)
PAGE = StaticResponse(200, b'<!doctype html><title>video</title><video controls src="/video/clip.mp4"></video>\n',
                      content_type=b"text/html; charset=utf-8")


def handler(req: Request, out: bytearray) -> FileBody | None:
    if req.path == b"/":
        PAGE.append_to(out)
        return None
    return videos(req, out)


config = ServerConfig(handler=file_handler(handler), port=8080)
