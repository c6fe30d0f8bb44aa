"""Query strings, ``application/x-www-form-urlencoded`` and ``multipart/form-data`` (RFC 7578).

    from vanilla_async import respond
    from vanilla_async.forms import FormError, read_form

    def handler(req, out):
        try:
            with read_form(req) as form:          # urlencoded or multipart, by Content-Type
                name = form.fields.get("name", "")
                upload = form.files.get("file")   # an UploadedFile (spooled to disk when large)
                ...
        except FormError as exc:
            respond(out, exc.status, exc.reason)  # 400, 413 or 415, with a message saying why

Theory of operation
-------------------
The server frames the whole body before the handler runs (bounded by ``Limits.max_body_bytes``),
so ``req.body`` is a complete ``memoryview`` and everything here is a pure function over bytes: no
I/O, no parking. `FormLimits` bounds what a parse may build from those bytes (fields, parts, sizes);
each bound, when crossed, raises `FormError` with ``status`` 413 and a message naming the bound.
A body that does not follow the grammar raises `FormError` with 400; a Content-Type this module
does not parse, 415. Nothing is decoded lazily: once a parse returns, the values are ``str`` and
files are real file objects, valid after the request's buffers are gone.

**urlencoded** (WHATWG URL §5 / ``urllib.parse.parse_qsl`` semantics, but strict): split on ``&``,
skip empty pairs, split each on the first ``=`` (a bare ``name`` has the value ``""``), ``+`` is a
space, then percent-decode and decode UTF-8. Unlike browsers, a malformed ``%`` escape or invalid
UTF-8 is a 400 rather than silently mangled text: a form that cannot be read as sent is an error
worth seeing. `parse_qs` does the same for ``req.query``.

**multipart** (RFC 2046 §5.1 framing, RFC 7578 semantics): the boundary comes from the
Content-Type (1–70 characters of the RFC 2046 ``bchars``; quoted or not). The body is searched
(with a compiled regex over the ``memoryview``, no copy of the body) for ``CRLF--boundary``.
The preamble before the first delimiter and the epilogue after the closing ``--boundary--`` are
ignored; transport padding (spaces/tabs) after a delimiter is allowed. Each part has a header
section (at most ``max_part_header_bytes``, no obs-fold) with a ``Content-Disposition: form-data;
name="..."``; a part with a ``filename`` parameter is a file. Names and filenames are quoted
strings in which browsers percent-encode ``"`` CR LF as ``%22 %0D %0A`` (HTML's form encoding):
those three are decoded, a backslash escapes only ``"`` and ``\\``; ``filename*=UTF-8''...``
(RFC 5987) is accepted too. Filenames are sanitised (`sanitize_filename`): only the last path
component, no control characters, no leading dots, at most 255 bytes — the result is a display
name, never a path to trust. A file's content goes into a `tempfile.SpooledTemporaryFile`, which
stays in memory up to ``spool_threshold`` and moves to an anonymous temporary file (unlinked at
once on POSIX) beyond it; `Form.close` (or leaving its ``with``) closes them all, and a parse that
fails closes what it had opened before raising.
"""

from __future__ import annotations

import logging
import re
import tempfile
import urllib.parse
from dataclasses import dataclass, field
from typing import IO, Iterator, Mapping, Sequence

from ._core.percent import PercentError, unquote_strict
from ._core.request import Request
from .errors import ConfigError, VanillaError

__all__ = (
    "Form", "FormError", "FormLimits", "MultiDict", "UploadedFile", "parse_multipart", "parse_qs",
    "parse_urlencoded", "read_form", "sanitize_filename",
)

log = logging.getLogger("vanilla_async.forms")

Data = bytes | bytearray | memoryview


class FormError(VanillaError, ValueError):
    """A query string or form body cannot be accepted. Answer ``status`` (400 malformed, 413 over a
    `FormLimits` bound, 415 not a form type) with ``reason`` as the body."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FormLimits:
    """Bounds on what one parse may build. Sizes in bytes.

    ``max_fields``            pairs in a query string / urlencoded body, or parts in a multipart body.
    ``max_field_bytes``       one decoded value that is not a file (a name too).
    ``max_file_bytes``        one uploaded file.
    ``max_total_bytes``       all values and files of one form together.
    ``max_part_header_bytes`` the header section of one multipart part.
    ``spool_threshold``       a file larger than this moves from memory to a temporary file.
    ``spool_dir``             where those temporary files go (``None``: the system's temp dir).
    """

    max_fields: int = 1000
    max_field_bytes: int = 64 * 1024
    max_file_bytes: int = 10 * 1024 * 1024
    max_total_bytes: int = 16 * 1024 * 1024
    max_part_header_bytes: int = 8 * 1024
    spool_threshold: int = 64 * 1024
    spool_dir: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_fields", "max_field_bytes", "max_file_bytes", "max_total_bytes", "max_part_header_bytes"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"FormLimits.{name} must be a positive int, got {value!r}")
        if not isinstance(self.spool_threshold, int) or isinstance(self.spool_threshold, bool) or self.spool_threshold < 0:
            raise ConfigError(f"FormLimits.spool_threshold must be an int >= 0 (0: always on disk), "
                              f"got {self.spool_threshold!r}")


DEFAULT_LIMITS = FormLimits()


class MultiDict(Mapping[str, str]):
    """Read-only name → value mapping that keeps every value of a repeated name, in order.

    ``form["tag"]`` / ``.get`` give the first value; `getall` gives all; `items` / `pairs` all pairs."""

    __slots__ = ("_pairs", "_first")

    def __init__(self, pairs: Sequence[tuple[str, str]] = ()) -> None:
        self._pairs = tuple(pairs)
        first: dict[str, str] = {}
        for name, value in self._pairs:
            first.setdefault(name, value)
        self._first = first

    def __getitem__(self, name: str) -> str:
        return self._first[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._first)

    def __len__(self) -> int:
        return len(self._first)

    def getall(self, name: str) -> list[str]:
        return [v for k, v in self._pairs if k == name]

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        """Every (name, value) pair, repeated names included, in the order sent."""
        return self._pairs

    def __repr__(self) -> str:
        return f"MultiDict({list(self._pairs)!r})"


# -- urlencoded ----------------------------------------------------------------------------------------


def _decode_component(raw: bytes, what: str, limits: FormLimits) -> str:
    if b"+" in raw:
        raw = raw.replace(b"+", b" ")
    try:
        raw = unquote_strict(raw)
    except PercentError:
        raise FormError(400, f"malformed percent-escape in {what} {raw[:60]!r}: use %XX with two hex digits") from None
    if len(raw) > limits.max_field_bytes:
        raise FormError(413, f"a {what} is {len(raw)} bytes; FormLimits.max_field_bytes allows {limits.max_field_bytes}")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FormError(400, f"{what} {raw[:60]!r} is not valid UTF-8 once percent-decoded") from None


def parse_qs(data: Data | str, limits: FormLimits = DEFAULT_LIMITS) -> MultiDict:
    """Parse a query string or urlencoded body into a `MultiDict` (``+`` → space, ``%XX`` decoded).

    `FormError` 400 for a malformed escape or invalid UTF-8; 413 beyond ``limits``."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > limits.max_total_bytes:
        raise FormError(413, f"the form is {len(raw)} bytes; FormLimits.max_total_bytes allows {limits.max_total_bytes}")
    if not raw:
        return MultiDict()
    if raw.count(b"&") >= limits.max_fields:  # cheap pre-check before splitting a hostile body
        pieces = [p for p in raw.split(b"&") if p]
        if len(pieces) > limits.max_fields:
            raise FormError(413, f"the form has {len(pieces)} fields; FormLimits.max_fields allows {limits.max_fields}")
    pairs: list[tuple[str, str]] = []
    for piece in raw.split(b"&"):
        if not piece:
            continue
        name, _, value = piece.partition(b"=")
        pairs.append((_decode_component(name, "field name", limits), _decode_component(value, "field value", limits)))
    return MultiDict(pairs)


def _media_type(req: Request) -> tuple[str, dict[str, str]]:
    raw = req.header(b"content-type")
    if raw is None:
        return "", {}
    return _parse_parameters(raw.decode("latin-1"))


def _parse_parameters(value: str) -> tuple[str, dict[str, str]]:
    """``type/sub; a=1; b="x y"`` → (``"type/sub"``, {``"a"``: ``"1"``, ``"b"``: ``"x y"``}); names lower-cased."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t;":
            i += 1
        eq = rest.find("=", i)
        if eq < 0:
            break
        name = rest[i:eq].strip().lower()
        i = eq + 1
        if i < n and rest[i] == '"':
            chars: list[str] = []
            i += 1
            while i < n and rest[i] != '"':
                if rest[i] == "\\" and i + 1 < n and rest[i + 1] in '"\\':
                    i += 1
                chars.append(rest[i])
                i += 1
            if i >= n:
                raise FormError(400, f"unterminated quoted string in header parameter {name!r}: {value[:100]!r}")
            i += 1
            val = "".join(chars)
        else:
            end = rest.find(";", i)
            end = n if end < 0 else end
            val = rest[i:end].strip()
            i = end
        if name and name not in params:
            params[name] = val
    return head.strip().lower(), params


def parse_urlencoded(req: Request, limits: FormLimits = DEFAULT_LIMITS) -> MultiDict:
    """The fields of an ``application/x-www-form-urlencoded`` body (415 for another Content-Type)."""
    media, _ = _media_type(req)
    if media != "application/x-www-form-urlencoded":
        raise FormError(415, f"expected Content-Type application/x-www-form-urlencoded, got {media or 'none'!r}")
    return parse_qs(req.body, limits)


# -- multipart -------------------------------------------------------------------------------------------
_BCHARS = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_BROWSER_ESCAPES = re.compile(r"%(22|0[dD]|0[aA])")
_ESCAPED = {"22": '"', "0d": "\r", "0a": "\n"}


def sanitize_filename(name: str) -> str:
    """A safe display name from a client-supplied filename: the last component after ``/`` or
    ``\\``, control characters removed, leading dots and spaces stripped, at most 255 UTF-8 bytes.
    ``""`` when nothing is left. Never use even this as a path without your own directory and name."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _CONTROL.sub("", name).strip().lstrip(". ")
    encoded = name.encode("utf-8")
    if len(encoded) > 255:
        stem, dot, ext = name.rpartition(".")
        keep_ext = dot and len(ext.encode("utf-8")) <= 16
        budget = 255 - (len(ext.encode("utf-8")) + 1 if keep_ext else 0)
        base = (stem if keep_ext else name).encode("utf-8")[:budget].decode("utf-8", "ignore")
        name = base + ("." + ext if keep_ext else "")
    return name


class UploadedFile:
    """One uploaded file: ``name`` (the form field), ``filename`` (sanitised), ``content_type``,
    ``size``, ``file`` (a temporary file object, positioned at 0) and ``on_disk`` (True when the
    content exceeded ``FormLimits.spool_threshold`` and lives in an anonymous temporary file)."""

    __slots__ = ("name", "filename", "content_type", "size", "file", "on_disk")

    def __init__(self, name: str, filename: str, content_type: str, size: int, file: IO[bytes],
                 on_disk: bool = False) -> None:
        self.name = name
        self.filename = filename
        self.content_type = content_type
        self.size = size
        self.file = file
        self.on_disk = on_disk

    def read(self) -> bytes:
        """The whole content (from the start)."""
        self.file.seek(0)
        return self.file.read()

    def chunks(self, size: int = 64 * 1024) -> Iterator[bytes]:
        """The content in pieces of at most ``size`` bytes (from the start)."""
        self.file.seek(0)
        while piece := self.file.read(size):
            yield piece

    def close(self) -> None:
        self.file.close()

    def __repr__(self) -> str:
        return f"<UploadedFile {self.name!r} {self.filename!r} {self.content_type} {self.size} bytes>"


@dataclass
class Form:
    """A parsed form: ``fields`` (text values) and ``files`` (name → `UploadedFile`, every one in
    ``file_list``). Close it (or use ``with``) to release the spooled files."""

    fields: MultiDict = field(default_factory=MultiDict)
    file_list: list[UploadedFile] = field(default_factory=list)

    @property
    def files(self) -> dict[str, UploadedFile]:
        """The first file of each field name."""
        first: dict[str, UploadedFile] = {}
        for upload in self.file_list:
            first.setdefault(upload.name, upload)
        return first

    def close(self) -> None:
        for upload in self.file_list:
            upload.close()

    def __enter__(self) -> Form:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _unescape_browser(value: str) -> str:
    return _BROWSER_ESCAPES.sub(lambda m: _ESCAPED[m.group(1).lower()], value) if "%" in value else value


def _part_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    if not raw:
        return headers
    for line in raw.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            raise FormError(400, "multipart part header uses obsolete line folding; send each header on one line")
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            raise FormError(400, f"malformed multipart part header line {line[:80]!r}: expected 'Name: value'")
        try:
            text = value.decode("utf-8").strip(" \t")
        except UnicodeDecodeError:
            text = value.decode("latin-1").strip(" \t")
        headers.setdefault(name.decode("latin-1").lower(), text)
    return headers


def _boundary_of(req: Request) -> bytes:
    media, params = _media_type(req)
    if media != "multipart/form-data":
        raise FormError(415, f"expected Content-Type multipart/form-data, got {media or 'none'!r}")
    boundary = params.get("boundary")
    if boundary is None:
        raise FormError(400, "multipart/form-data without a boundary parameter; the Content-Type must carry boundary=...")
    if _BCHARS.fullmatch(boundary) is None:
        raise FormError(400, f"invalid multipart boundary {boundary[:80]!r}: 1-70 characters of RFC 2046 bchars, "
                             "not ending in a space")
    return boundary.encode("ascii")


def parse_multipart(req: Request, limits: FormLimits = DEFAULT_LIMITS) -> Form:
    """Parse a ``multipart/form-data`` body into a `Form` (`FormError` 400/413/415)."""
    boundary = _boundary_of(req)
    body = req.body
    form = Form()
    try:
        _parse_parts(body, boundary, limits, form)
    except BaseException:
        form.close()
        raise
    return form


def _parse_parts(body: memoryview, boundary: bytes, limits: FormLimits, form: Form) -> None:
    delimiter = b"--" + boundary
    next_delimiter = re.compile(re.escape(b"\r\n" + delimiter))
    header_end = re.compile(rb"\r\n\r\n")
    n = len(body)
    if body[:len(delimiter)].tobytes() == delimiter:
        pos = len(delimiter)
    else:
        m = next_delimiter.search(body)
        if m is None:
            raise FormError(400, "multipart body has no boundary delimiter; is the boundary in Content-Type right?")
        pos = m.end()
    fields: list[tuple[str, str]] = []
    total = 0
    parts = 0
    while True:
        if body[pos:pos + 2].tobytes() == b"--":
            break  # the close delimiter: the rest is the epilogue
        while pos < n and body[pos] in (0x20, 0x09):  # transport padding
            pos += 1
        if body[pos:pos + 2].tobytes() != b"\r\n":
            raise FormError(400, "multipart boundary delimiter not followed by CRLF (or the body ends without "
                                 "the closing --boundary--)")
        pos += 2
        parts += 1
        if parts > limits.max_fields:
            raise FormError(413, f"the form has more than {limits.max_fields} parts (FormLimits.max_fields)")
        if body[pos:pos + 2].tobytes() == b"\r\n":
            raw_headers, content_start = b"", pos + 2
        else:
            m = header_end.search(body, pos, min(n, pos + limits.max_part_header_bytes + 4))
            if m is None:
                if n - pos > limits.max_part_header_bytes:
                    raise FormError(413, f"a multipart part's headers exceed {limits.max_part_header_bytes} bytes "
                                         "(FormLimits.max_part_header_bytes)")
                raise FormError(400, "multipart part headers are not terminated by an empty line")
            raw_headers, content_start = bytes(body[pos:m.start()]), m.end()
        m = next_delimiter.search(body, content_start)
        if m is None:
            raise FormError(400, "multipart body ends inside a part: the closing --boundary-- is missing")
        content = body[content_start:m.start()]
        pos = m.end()
        headers = _part_headers(raw_headers)
        disposition, params = _parse_parameters(headers.get("content-disposition", ""))
        if disposition != "form-data" or "name" not in params:
            raise FormError(400, "every multipart/form-data part needs 'Content-Disposition: form-data; name=\"...\"'")
        name = _unescape_browser(params["name"])
        size = len(content)
        total += size
        if total > limits.max_total_bytes:
            raise FormError(413, f"the form's content exceeds {limits.max_total_bytes} bytes (FormLimits.max_total_bytes)")
        filename = _filename(params)
        if filename is None:
            if size > limits.max_field_bytes:
                raise FormError(413, f"field {name[:60]!r} is {size} bytes; FormLimits.max_field_bytes allows "
                                     f"{limits.max_field_bytes} (send large data as a file)")
            try:
                fields.append((name, bytes(content).decode("utf-8")))
            except UnicodeDecodeError:
                raise FormError(400, f"field {name[:60]!r} is not valid UTF-8") from None
            continue
        if size > limits.max_file_bytes:
            raise FormError(413, f"file {filename[:60]!r} in field {name[:60]!r} is {size} bytes; "
                                 f"FormLimits.max_file_bytes allows {limits.max_file_bytes}")
        on_disk = size > limits.spool_threshold
        spooled: IO[bytes]
        if on_disk:  # straight to disk: no point holding a copy in memory first
            spooled = tempfile.TemporaryFile(mode="w+b", dir=limits.spool_dir)
        else:
            spooled = tempfile.SpooledTemporaryFile(max_size=limits.spool_threshold, mode="w+b", dir=limits.spool_dir)
        form.file_list.append(UploadedFile(name, filename, headers.get("content-type", "application/octet-stream"),
                                           size, spooled, on_disk))
        spooled.write(content)
        spooled.seek(0)
    form.fields = MultiDict(fields)


def _filename(params: dict[str, str]) -> str | None:
    star = params.get("filename*")
    if star is not None:
        charset, _, rest = star.partition("'")
        _, _, encoded = rest.partition("'")
        if charset.lower() in ("utf-8", "iso-8859-1"):
            try:
                return sanitize_filename(urllib.parse.unquote(encoded, encoding=charset.lower(), errors="strict"))
            except UnicodeDecodeError:
                raise FormError(400, f"filename* {star[:60]!r} is not valid {charset}") from None
    plain = params.get("filename")
    return None if plain is None else sanitize_filename(_unescape_browser(plain))


def read_form(req: Request, limits: FormLimits = DEFAULT_LIMITS) -> Form:
    """The form in the request body, by Content-Type (urlencoded or multipart); `FormError` 415 otherwise."""
    media, _ = _media_type(req)
    if media == "application/x-www-form-urlencoded":
        return Form(parse_qs(req.body, limits))
    if media == "multipart/form-data":
        return parse_multipart(req, limits)
    raise FormError(415, "expected Content-Type application/x-www-form-urlencoded or multipart/form-data, "
                         f"got {media or 'none'!r}")
