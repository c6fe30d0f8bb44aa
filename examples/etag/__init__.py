"""examples.etag — conditional requests on one document: 304 Not Modified and 412 lost-update guard.

* ``GET``/``HEAD /doc`` → the document with a strong ``ETag`` (a hash of its bytes) and
  ``Last-Modified``; **304** (no body) when ``If-None-Match`` matches — strong or ``W/`` weak tag,
  a list, or ``*`` — or, without ``If-None-Match``, when ``If-Modified-Since`` is not older than
  the document.
* ``PUT /doc`` replaces it, **only with** ``If-Match: <current ETag>`` (or ``*``): a stale tag →
  **412**, no ``If-Match`` at all → **428** (RFC 6585), so two editors cannot overwrite each other.
  The body must be at most 64 KiB of UTF-8 text (else 413/400).
* Other methods → 405; other paths → 404.

The document lives in a file (in ``$ETAG_DIR``, else a temporary directory made at startup) and
is replaced atomically with ``rename``, so every worker sees the same version and the same ETag.

Run: ``python -m examples.etag --port 8080 --workers 2``, then
``curl -i http://127.0.0.1:8080/doc`` and ``curl -i -H 'If-None-Match: "<tag>"' http://127.0.0.1:8080/doc``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile

from vanilla_async import Request, ServerConfig, StaticResponse, respond
from vanilla_async.conditional import check_preconditions, evaluate, http_date, strong_etag

MAX_DOC = 64 * 1024
INITIAL = b"The first version of the document.\n"
NOT_FOUND = StaticResponse(404, b"not found; try GET /doc\n")
NOT_ALLOWED = StaticResponse(405, b"/doc answers GET, HEAD and PUT\n", headers=[("Allow", "GET, HEAD, PUT")])
NEED_IF_MATCH = StaticResponse(428, b"PUT /doc needs If-Match with the ETag you last saw (or *)\n")


def _make_dir() -> str:
    configured = os.environ.get("ETAG_DIR")
    if configured:
        os.makedirs(configured, exist_ok=True)
        return configured
    made = tempfile.mkdtemp(prefix="vanilla-etag-")
    owner = os.getpid()
    atexit.register(lambda: shutil.rmtree(made, ignore_errors=True) if os.getpid() == owner else None)
    return made


DIR = _make_dir()
DOC = os.path.join(DIR, "doc.txt")
if not os.path.exists(DOC):
    with open(DOC, "wb") as f:
        f.write(INITIAL)


def read_doc() -> tuple[bytes, bytes, float]:
    """(content, strong ETag, mtime) of the current version (one open: content and time agree)."""
    with open(DOC, "rb") as f:
        data = f.read()
        mtime = os.fstat(f.fileno()).st_mtime
    return data, strong_etag(data), mtime


def write_doc(data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=DIR, prefix=".doc-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, DOC)


def handler(req: Request, out: bytearray) -> None:
    if req.path != b"/doc":
        NOT_FOUND.append_to(out)
        return
    method = req.method
    data, tag, mtime = read_doc()
    if method == b"GET" or method == b"HEAD":
        headers = [("Cache-Control", "no-cache")]
        if check_preconditions(req, out, etag=tag, last_modified=mtime, headers=headers):
            return
        respond(out, 200, data, headers=[("ETag", tag), ("Last-Modified", http_date(mtime)), *headers],
                head=method == b"HEAD")
    elif method == b"PUT":
        if not req.header_values(b"if-match"):
            NEED_IF_MATCH.append_to(out)
            return
        if evaluate(req, etag=tag, last_modified=mtime) == 412:
            respond(out, 412, b"the document changed since you read it; GET it again\n", headers=[("ETag", tag)])
            return
        body = bytes(req.body)
        if len(body) > MAX_DOC:
            respond(out, 413, f"the document may be at most {MAX_DOC} bytes\n")
            return
        try:
            body.decode("utf-8")
        except UnicodeDecodeError:
            respond(out, 400, b"the document must be UTF-8 text\n")
            return
        write_doc(body)
        respond(out, 204, headers=[("ETag", strong_etag(body))])
    else:
        NOT_ALLOWED.append_to(out)


config = ServerConfig(handler=handler, port=8080)
