"""Static files: a handler factory that serves a directory safely, with sendfile, 304, 206 and
precompressed siblings.

    from vanilla_async import ServerConfig
    from vanilla_async.static import static_files

    static = static_files("public", prefix=b"/static/")

    def handler(req, out):
        if req.path.startswith(b"/static/"):
            return static(req, out)           # None (answered) or a FileBody (sent with sendfile)
        ...

Theory of operation
-------------------
**Mapping a URL to a file.** Only the path under ``prefix`` counts. It is split on ``/`` *before*
percent-decoding, each segment is decoded exactly once, and the request is refused with **400**
when a segment decodes to something a file name must not hold: ``/`` (``%2f``), a backslash (raw
or ``%5c``), NUL, ``.`` or ``..``, an empty segment (``//``: that is how an absolute path would
sneak into a join) or an invalid ``%`` escape. Double-encoded input (``%252e%252e``) decodes once,
to the literal name ``%2e%2e``, which is just a file that does not exist (404). Names starting
with a dot are **404** unless ``dotfiles=True`` (``.git``, ``.env``).

The joined path is then resolved with ``realpath``; a result outside ``root`` (a **symlink
pointing out of the root**, anywhere along the path) is 404, while symlinks that stay inside work.
The file is opened with ``O_NOFOLLOW`` on that resolved path, so a symlink swapped in for the last
component after the check is refused by the kernel (ELOOP). What remains is a race on an
*intermediate* directory replaced by a symlink between ``realpath`` and ``open`` — possible only for
someone who can already write inside the root. A directory gets ``index`` (after a **301** to the
slash-terminated URL when the slash is missing); a missing file gets ``spa_fallback`` (e.g.
``index.html``) when the last segment has no extension, which is how single-page apps route.

**Negotiating encodings.** When ``precompressed`` is set (default ``br``, ``zstd``, ``gzip``), a
sibling ``name.br`` / ``name.zst`` / ``name.gz`` is served instead of ``name`` if the client's
``Accept-Encoding`` gives that coding (or ``*``) a non-zero q-value; the highest q wins, ties go to
the order of ``precompressed``. The sibling is checked against the root like the file itself.
Every response then says ``Vary: Accept-Encoding``; the chosen file brings its own
Content-Length, ETag and Last-Modified, so a cached gzip copy is never validated as the brotli one.

**Answering.** Validators come from ``fstat`` of the open file (`conditional.file_etag`: mtime in
nanoseconds + size; Last-Modified), then `conditional.evaluate` decides 304/412, then a single
``Range`` on GET gives 206 (or 416; several ranges get the full 200 — see `conditional`), honouring
``If-Range``. The head is built once per response; the body is read into ``out`` when it is at
most ``inline_max`` bytes (one ``send`` for head and body), otherwise returned as a
`FileBody` for the connection to send with ``os.sendfile``. HEAD gets the same head and no body.
Paths that end in a hashed name (``app.3f2a1c.js``, see ``hashed``) get
``Cache-Control: public, max-age=31536000, immutable``; others get ``cache_control``.
"""

from __future__ import annotations

import errno
import logging
import mimetypes
import os
import re
import stat
from typing import Callable, Final, Iterable, Mapping, NamedTuple, cast

from ._core.handler import FileBody, Handler
from ._core.percent import PercentError, unquote_strict
from ._core.request import Request
from ._core.response import Headers, date_header, header_line, status_line
from .conditional import (
    UNSATISFIABLE,
    ByteRange,
    append_304,
    append_412,
    append_416,
    content_range,
    evaluate,
    file_etag,
    http_date,
    parse_range,
    range_applies,
)
from .errors import VanillaError
from .grammar import TCHAR

__all__ = (
    "DEFAULT_ENCODINGS", "DEFAULT_HASHED", "FileBody", "IMMUTABLE", "StaticConfigError", "StaticFiles", "TYPES",
    "accepted_encodings", "content_type", "file_handler", "static_files",
)

log = logging.getLogger("vanilla_async.static")

#: coding name → file suffix, in the default order of preference
DEFAULT_ENCODINGS: Final = (("br", b".br"), ("zstd", b".zst"), ("gzip", b".gz"))
_SUFFIXES: Final = dict(DEFAULT_ENCODINGS)
#: a last path segment with a content hash before the extension: ``app.3f2a1c.js``, ``logo.9b1d22ef.svg``
DEFAULT_HASHED: Final = re.compile(rb"\.[0-9a-fA-F]{6,}\.[A-Za-z0-9]+$")
IMMUTABLE: Final = b"public, max-age=31536000, immutable"

#: extension → Content-Type, consulted before `mimetypes`' built-in table (never the system's files,
#: so a response does not depend on the machine)
TYPES: Final[Mapping[str, str]] = {
    ".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8", ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json", ".map": "application/json", ".webmanifest": "application/manifest+json",
    ".txt": "text/plain; charset=utf-8", ".md": "text/markdown; charset=utf-8", ".csv": "text/csv; charset=utf-8",
    ".xml": "application/xml", ".svg": "image/svg+xml", ".wasm": "application/wasm", ".webp": "image/webp",
    ".avif": "image/avif", ".ico": "image/x-icon", ".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf",
    ".otf": "font/otf", ".mp4": "video/mp4", ".webm": "video/webm", ".mp3": "audio/mpeg", ".ogg": "audio/ogg",
    ".pdf": "application/pdf", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif",
}
_MIMETYPES = mimetypes.MimeTypes()  # the built-in table only: no /etc/mime.types
_OCTET = "application/octet-stream"
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOFOLLOW", 0)
_AE_ITEM = re.compile(rb"[ \t]*([" + TCHAR + rb"]+)[ \t]*(?:;[ \t]*[qQ][ \t]*=[ \t]*([0-9.]{1,5}))?[ \t]*")
_ALLOW = b"Allow: GET, HEAD\r\n"


class StaticConfigError(VanillaError, ValueError):
    """`static_files` was given a root or an option it cannot serve from."""


def content_type(name: str | bytes, types: Mapping[str, str] = TYPES) -> str:
    """The Content-Type for a file name: ``types`` first, then `mimetypes`' built-in table."""
    text = os.fsdecode(name)
    ext = os.path.splitext(text)[1].lower()
    found = types.get(ext)
    if found is not None:
        return found
    guessed = _MIMETYPES.guess_type("x" + ext, strict=False)[0] if ext else None
    if guessed is None:
        return _OCTET
    return guessed + "; charset=utf-8" if guessed.startswith("text/") else guessed


def accepted_encodings(value: bytes | None) -> dict[str, float]:
    """``Accept-Encoding`` as coding → q-value (lower-cased; ``x-gzip`` counts as ``gzip``).
    An item whose q-value does not parse is skipped."""
    result: dict[str, float] = {}
    if not value:
        return result
    for item in value.split(b","):
        if not item.strip(b" \t"):
            continue
        m = _AE_ITEM.fullmatch(item)
        if m is None:
            continue
        coding = m.group(1).decode("ascii").lower()
        if coding == "x-gzip":
            coding = "gzip"
        q = 1.0
        if m.group(2) is not None:
            try:
                q = float(m.group(2))
            except ValueError:
                continue
            if not 0.0 <= q <= 1.0:
                continue
        result[coding] = q
    return result


def file_handler(handler: Callable[[Request, bytearray], FileBody | None]) -> Handler:
    """``handler`` itself, typed as a ``ServerConfig.handler``: that type does not name `FileBody`
    returns yet. No wrapper, no cost."""
    return cast(Handler, handler)


class _Found(NamedTuple):
    fd: int  #: the open file (the caller must close it or hand it on)
    st: os.stat_result
    name: bytes  #: the name the Content-Type comes from (the original's, not the .br sibling's)
    coding: bytes  #: the Content-Encoding of a precompressed sibling, or b""


class _Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class StaticFiles:
    """A handler serving files under ``root`` (see the module docstring). Build with `static_files`."""

    def __init__(
        self, root: str | os.PathLike[str], *, prefix: bytes = b"/static/", index: str | None = "index.html",
        spa_fallback: str | None = None, cache_control: bytes | None = b"no-cache",
        hashed: re.Pattern[bytes] | None = DEFAULT_HASHED, immutable: bytes = IMMUTABLE,
        precompressed: Iterable[str] = ("br", "zstd", "gzip"), types: Mapping[str, str] | None = None,
        headers: Headers | bytes = (), dotfiles: bool = False, inline_max: int = 16384,
    ) -> None:
        real = os.path.realpath(root)
        if not os.path.isdir(real):
            raise StaticConfigError(f"static root {os.fspath(root)!r} is not a directory (resolved to {real!r}); "
                                    "pass the directory that holds the files to serve")
        if not prefix.startswith(b"/") or not prefix.endswith(b"/"):
            raise StaticConfigError(f"prefix must start and end with '/', e.g. b'/static/' or b'/'; got {prefix!r}")
        encodings = []
        for name in precompressed:
            if name not in _SUFFIXES:
                raise StaticConfigError(f"unknown precompressed coding {name!r}; choose from {', '.join(_SUFFIXES)}")
            encodings.append((name, _SUFFIXES[name]))
        for option, value in (("index", index), ("spa_fallback", spa_fallback)):
            if value is not None and (not value or "/" in value or value.startswith(".")):
                raise StaticConfigError(f"{option} must be a plain file name in the root such as 'index.html'; got {value!r}")
        self.root = os.fsencode(real)
        self.prefix = prefix
        self.index = os.fsencode(index) if index is not None else None
        self.spa_fallback = os.fsencode(spa_fallback) if spa_fallback is not None else None
        self.hashed = hashed
        self.dotfiles = dotfiles
        self.inline_max = inline_max
        self.encodings: tuple[tuple[str, bytes], ...] = tuple(encodings)
        self.types: Mapping[str, str] = {**TYPES, **(types or {})}
        extra = headers if isinstance(headers, bytes) else b"".join(header_line(n, v) for n, v in headers)
        vary = b"Vary: Accept-Encoding\r\n" if self.encodings else b""
        self._common = vary + extra  # on every response, errors included
        self._cache = (header_line(b"Cache-Control", cache_control) if cache_control is not None else b"")
        self._immutable = header_line(b"Cache-Control", immutable)
        self._type_lines: dict[bytes, bytes] = {}

    # -- the handler -----------------------------------------------------------------------------------
    def __call__(self, req: Request, out: bytearray) -> FileBody | None:
        method = req.method
        head = method == b"HEAD"
        if method != b"GET" and not head:
            self._error(out, 405, b"only GET and HEAD are allowed here\n", head, _ALLOW)
            return None
        path = req.path
        if not path.startswith(self.prefix):
            self._error(out, 404, b"not found\n", head)
            return None
        try:
            segments = self._segments(path[len(self.prefix):])
            found = self._open(segments, req)
        except _Refused as refused:
            if refused.status == 301:
                query = req.query
                location = path + b"/" + (b"?" + query if query else b"")
                self._error(out, 301, b"moved to a directory URL\n", head, header_line(b"Location", location))
            else:
                self._error(out, refused.status, refused.reason.encode() + b"\n", head)
            return None
        try:
            return self._answer(req, out, found, segments[-1], head)
        except BaseException:
            os.close(found.fd)
            raise

    # -- mapping ---------------------------------------------------------------------------------------
    def _segments(self, rel: bytes) -> list[bytes]:
        """The decoded path segments (the last may be b"" for a directory URL), or _Refused."""
        if b"\\" in rel or b"\x00" in rel:
            raise _Refused(400, "backslashes and NUL are not allowed in a file path")
        raw = rel.split(b"/")
        segments: list[bytes] = []
        last = len(raw) - 1
        for i, part in enumerate(raw):
            try:
                seg = unquote_strict(part)
            except PercentError:
                raise _Refused(400, "invalid percent-escape in the path (use %XX with two hex digits)") from None
            if not seg:
                if i == last:
                    segments.append(seg)
                    continue
                raise _Refused(400, "empty path segment ('//') in a file path")
            if b"/" in seg or b"\\" in seg or b"\x00" in seg:
                raise _Refused(400, "an encoded '/', '\\' or NUL is not allowed in a file path")
            if seg == b"." or seg == b"..":
                raise _Refused(400, "'.' and '..' segments are not allowed in a file path")
            if seg[:1] == b"." and not self.dotfiles:
                raise _Refused(404, "not found")
            segments.append(seg)
        return segments

    def _inside(self, path: bytes) -> bytes | None:
        """The resolved path if it stays under the root, else None (a symlink points outside)."""
        real = os.path.realpath(path)
        root = self.root
        if real == root or real.startswith(root + b"/"):
            return real
        log.info("refused %r: it resolves to %r, outside the static root %r", path, real, root)
        return None

    def _open_file(self, path: bytes) -> tuple[int, os.stat_result] | None:
        """Open ``path`` (checked against the root, no symlink at the last step); None when absent."""
        real = self._inside(path)
        if real is None:
            return None
        try:
            fd = os.open(real, _OPEN_FLAGS)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EACCES, errno.EPERM, errno.ENAMETOOLONG):
                return None
            raise
        try:
            st = os.fstat(fd)
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def _open(self, segments: list[bytes], req: Request) -> _Found:
        """The open regular file for ``segments`` (directory index, SPA fallback, encodings applied)."""
        root = self.root
        want_dir = segments[-1] == b""
        parts = segments[:-1] if want_dir else segments
        path = b"/".join([root, *parts]) if parts else root
        name = parts[-1] if parts else b""
        opened = self._open_file(path)
        if opened is not None and stat.S_ISDIR(opened[1].st_mode):
            os.close(opened[0])
            if not want_dir:
                raise _Refused(301, "directory")
            opened = None
            if self.index is not None:
                path, name = path + b"/" + self.index, self.index
                opened = self._open_file(path)
        elif opened is not None and want_dir:  # "file.txt/": not a directory
            os.close(opened[0])
            opened = None
        if opened is None and self.spa_fallback is not None and b"." not in name:
            path, name = root + b"/" + self.spa_fallback, self.spa_fallback
            opened = self._open_file(path)
        if opened is None:
            raise _Refused(404, "not found")
        if not stat.S_ISREG(opened[1].st_mode):
            os.close(opened[0])
            raise _Refused(404, "not found")
        found = _Found(opened[0], opened[1], name, b"")
        return self._negotiate(req, path, found) if self.encodings else found

    def _negotiate(self, req: Request, path: bytes, found: _Found) -> _Found:
        """Swap in the best precompressed sibling the client accepts (the name stays the original's)."""
        accepted = accepted_encodings(req.header(b"accept-encoding"))
        if not accepted:
            return found
        star = accepted.get("*", 0.0)
        ranked = sorted(
            ((accepted.get(coding, star), -i, coding, suffix) for i, (coding, suffix) in enumerate(self.encodings)),
            reverse=True,
        )
        for q, _, coding, suffix in ranked:
            if q <= 0.0:
                break
            sibling = self._open_file(path + suffix)
            if sibling is None:
                continue
            if not stat.S_ISREG(sibling[1].st_mode):
                os.close(sibling[0])
                continue
            os.close(found.fd)
            return _Found(sibling[0], sibling[1], found.name, coding.encode("ascii"))
        return found

    # -- answering -------------------------------------------------------------------------------------
    def _type_line(self, name: bytes) -> bytes:
        line = self._type_lines.get(name)
        if line is None:
            ext = os.path.splitext(name)[1].lower()
            line = self._type_lines.get(ext)
            if line is None:
                line = self._type_lines[ext] = header_line(b"Content-Type", content_type(b"x" + ext, self.types))
        return line

    def _answer(self, req: Request, out: bytearray, found: _Found, last: bytes, head: bool) -> FileBody | None:
        fd, st, name, coding = found
        etag = file_etag(st)
        mtime = st.st_mtime
        last = last or name
        cache = self._immutable if self.hashed is not None and self.hashed.search(last) else self._cache
        validators = b"ETag: " + etag + b"\r\nLast-Modified: " + http_date(mtime) + b"\r\n"
        status = evaluate(req, etag=etag, last_modified=mtime)
        if status != 200:
            os.close(fd)
            if status == 304:
                append_304(out, etag=etag, last_modified=mtime, headers=cache + self._common)
            else:
                append_412(out, etag=etag, headers=self._common)
            return None
        size = st.st_size
        offset, length = 0, size
        line = status_line(200)
        rng = None
        if not head and range_applies(req, etag=etag, last_modified=mtime):
            rng = parse_range(req.header(b"range"), size)
        if rng is UNSATISFIABLE:
            os.close(fd)
            append_416(out, size, headers=self._common)
            return None
        encoding = b"Content-Encoding: " + coding + b"\r\n" if coding else b""
        if isinstance(rng, ByteRange):
            offset, length = rng.start, rng.length
            line = status_line(206) + b"Content-Range: " + content_range(rng) + b"\r\n"
        out += line
        out += date_header()
        out += self._type_line(name)
        out += b"Content-Length: %d\r\nAccept-Ranges: bytes\r\n" % length
        out += encoding
        out += validators
        out += cache
        out += self._common
        out += b"\r\n"
        if head or length == 0:
            os.close(fd)
            return None
        if length <= self.inline_max:
            try:
                data = os.pread(fd, length, offset)
            finally:
                os.close(fd)
            if len(data) != length:  # the file shrank since fstat: the head is wrong, the connection must go
                log.warning("static file %r changed while being served; closing the connection", name)
                req.keep_alive = False
                out += data
                return None
            out += data
            return None
        return FileBody(fd, offset, length)

    def _error(self, out: bytearray, status: int, text: bytes, head: bool, extra: bytes = b"") -> None:
        out += status_line(status)
        out += date_header()
        out += extra
        out += self._common
        out += b"Content-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\n\r\n" % len(text)
        if not head:
            out += text



static_files = StaticFiles
"""The factory: ``static_files(root, *, prefix=b"/static/", index="index.html", spa_fallback=None,
cache_control=b"no-cache", hashed=DEFAULT_HASHED, immutable=IMMUTABLE, precompressed=("br", "zstd",
"gzip"), types=None, headers=(), dotfiles=False, inline_max=16384)`` → a `StaticFiles` handler."""
