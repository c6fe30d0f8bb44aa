"""Redirect responses (RFC 9110 §15.4) that cannot be turned into header injection.

    from vanilla_async.redirects import redirect, is_local

    def handler(req, out):
        redirect(out, "/new/place", 308)            # 301, 302, 303, 307 or 308
        nxt = form.get("next", "/")
        redirect(out, nxt if is_local(nxt) else "/", 303)   # no open redirect

Theory of operation
-------------------
`redirect` appends one complete response: the status line, ``Location``, a short
``text/plain`` body naming the target (for the rare client that does not follow it), and
``Content-Length``. Only the five redirect statuses that carry a ``Location`` are allowed: 300
(multiple choices) and 304 (not modified) are not redirects to one place, 305/306 are deprecated
or unused; anything else raises `RedirectError`.

``Location`` is a URI-reference (RFC 9110 §10.2.2, RFC 3986 §4.1); relative references are
allowed and resolved by the client against the request's URL. A target containing CR, LF, NUL or
any other control character is refused (`RedirectError`) rather than cleaned: it almost always
means untrusted input reached a redirect, and silently fixing it would hide the bug. Everything
else is made a valid URI: characters outside RFC 3986 (space, ``"``, ``<``, ``>``, ``\\``, ``^``,
backquote, ``{``, ``|``, ``}``, and non-ASCII as UTF-8) are percent-encoded, existing ``%XX``
escapes are kept, a ``%`` that does not start one becomes ``%25``, and a non-ASCII host in an
absolute URL is IDNA-encoded. 307 and 308 tell the client to repeat the method and body; 303 to
follow with GET (the answer to a form POST); 301/302 are the historic ones whose method a client
may change.

`is_local` answers whether a client-supplied "next" target stays on this site (a path starting
with ``/`` but not ``//`` or ``/\\``, no scheme): use it before redirecting to a value from a
query string or form, or you have an open redirect. `absolute_url` builds an absolute URL from the
request's ``Host`` (validated, since the client chose it) for the rare case that needs one.
"""

from __future__ import annotations

import re
import urllib.parse
from http import HTTPStatus

from ._core.request import Request
from ._core.response import Headers, respond
from .errors import VanillaError

__all__ = ("REDIRECT_STATUSES", "RedirectError", "absolute_url", "encode_location", "is_local", "redirect")

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SAFE = "!#$&'()*+,-./:;=?@[]_~%"  # RFC 3986 reserved + unreserved (letters/digits always safe), and "%"
_LONE_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"|\[[0-9A-Fa-f:.]+\]")
_PORT = re.compile(r"[0-9]{1,5}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


class RedirectError(VanillaError, ValueError):
    """A redirect would be invalid or unsafe (bad status, control characters in the target, bad Host)."""


def encode_location(location: str | bytes) -> str:
    """``location`` as a valid URI-reference for a ``Location`` header (see the module docstring).
    `RedirectError` if it contains control characters (CR, LF, NUL, ...)."""
    try:
        text = location.decode("utf-8") if isinstance(location, bytes) else location
    except UnicodeDecodeError:
        raise RedirectError(f"redirect location {location[:100]!r} is not UTF-8; pass a str or UTF-8 bytes") from None
    if not isinstance(text, str):
        raise RedirectError(f"a redirect location must be str or bytes, got {location!r}")
    if _CONTROL.search(text) is not None:
        raise RedirectError(f"redirect location {text[:100]!r} contains a control character (CR/LF/NUL...): "
                            "refusing it (header injection); validate the input it came from")
    if not text:
        raise RedirectError("redirect location is empty; redirect to '/' or a real path")
    if not text.isascii():
        text = _idna_host(text)
    text = _LONE_PERCENT.sub("%25", text)
    return urllib.parse.quote(text, safe=_SAFE, encoding="utf-8")


def _idna_host(text: str) -> str:
    parts = urllib.parse.urlsplit(text)
    host = parts.hostname
    if not parts.netloc or host is None or host.isascii():
        return text
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise RedirectError(f"redirect host {host!r} cannot be IDNA-encoded: {exc}") from None
    netloc = parts.netloc.rsplit("@", 1)
    userinfo = netloc[0] + "@" if len(netloc) == 2 else ""
    port = f":{parts.port}" if parts.port is not None else ""
    return urllib.parse.urlunsplit((parts.scheme, userinfo + ascii_host + port, parts.path, parts.query,
                                    parts.fragment))


def redirect(
    out: bytearray,
    location: str | bytes,
    status: int = 302,
    *,
    headers: Headers = (),
    head: bool = False,
    close: bool = False,
) -> None:
    """Append a ``status`` redirect to ``location`` (301, 302, 303, 307 or 308) with a short body.

    ``head=True`` for a HEAD request (no body); ``headers`` are added (e.g. a ``Set-Cookie``)."""
    if status not in REDIRECT_STATUSES:
        raise RedirectError(f"status {status!r} is not a redirect with a Location; use one of 301, 302, 303, 307, 308")
    target = encode_location(location)
    phrase = HTTPStatus(status).phrase
    respond(out, status, f"{status} {phrase}: {target}\n", headers=[("Location", target), *headers],
            head=head, close=close)


def is_local(location: str) -> bool:
    """True when ``location`` is a path on this site: starts with one ``/`` (not ``//`` or
    ``/\\``, which browsers read as another host), no scheme, no control characters."""
    if not isinstance(location, str) or not location.startswith("/") or _CONTROL.search(location):
        return False
    if location.startswith("//") or location.startswith("/\\"):
        return False
    return _SCHEME.match(location) is None


def absolute_url(req: Request, location: str, *, scheme: str = "http") -> str:
    """``location`` resolved against the request's URL (``scheme://Host/path``), e.g. to turn a
    relative reference into an absolute one. `RedirectError` when the Host header is not a valid
    ``host[:port]`` — answer 400 then."""
    raw = req.header(b"host")
    if raw is None:
        raise RedirectError("the request has no Host header to build an absolute URL from")
    host = raw.decode("latin-1")
    name, _, port = host.rpartition(":") if not host.endswith("]") and ":" in host else (host, "", "")
    if _HOST.fullmatch(name) is None or (port and (_PORT.fullmatch(port) is None or int(port) > 65535)):
        raise RedirectError(f"Host header {host[:100]!r} is not a valid host[:port]")
    if scheme not in ("http", "https"):
        raise RedirectError(f"scheme must be 'http' or 'https', got {scheme!r}")
    base = f"{scheme}://{host}{req.path.decode('latin-1')}"
    return urllib.parse.urljoin(base, encode_location(location))
