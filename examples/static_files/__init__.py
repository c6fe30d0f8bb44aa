"""examples.static_files — a directory served safely: types, validators, 304, ranges, no traversal.

Serves ``examples/static_files/public/`` at ``/``: ``/`` and ``/docs/`` give their ``index.html``,
``/docs`` redirects (301) to ``/docs/``. Every file carries its Content-Type, ``ETag``,
``Last-Modified`` and ``Accept-Ranges: bytes``; a matching ``If-None-Match`` or
``If-Modified-Since`` → **304**; ``Range: bytes=a-b`` → **206** (``416`` beyond the end). Files
above 16 KiB leave with ``os.sendfile``. Attempts to leave the directory — ``..``, ``%2e%2e``,
encoded slashes or backslashes, NUL, ``//`` — get **400**; dotfiles, missing files and symlinks
that point outside get **404**. Other methods → 405.

Run: ``python -m examples.static_files --port 8080 --workers 2``, then
``curl -i http://127.0.0.1:8080/hello.txt`` or ``curl -i -H 'Range: bytes=0-99' http://127.0.0.1:8080/docs/guide.txt``.
"""

from __future__ import annotations

from pathlib import Path

from vanilla_async import ServerConfig
from vanilla_async.static import file_handler, static_files

PUBLIC = Path(__file__).resolve().parent / "public"

static = static_files(PUBLIC, prefix=b"/", precompressed=())

config = ServerConfig(handler=file_handler(static), port=8080)
