"""Cookies (RFC 6265): read the ``Cookie`` header, build ``Set-Cookie`` lines, sign values.

    from vanilla_async import respond
    from vanilla_async.cookies import Signer, delete_cookie, parse_cookies, set_cookie

    signer = Signer(secret)                              # >= 32 random bytes, kept server-side

    def handler(req, out):
        cookies = parse_cookies(req)                     # {"theme": "dark", ...}
        user = signer.unsign("session", cookies.get("session", ""), max_age=3600)   # None if forged/old
        respond(out, 200, b"hi", headers=[set_cookie("session", signer.sign("session", "alice"), max_age=3600)])

Theory of operation
-------------------
**Reading** follows RFC 6265 §5.4 as a browser sends it, tolerantly (§5.2's spirit): the header is
split on ``;``, each piece on its first ``=``, both sides stripped of spaces and tabs; a piece
with no ``=``, an empty name, or a name that is not a token is skipped, not fatal — one bad cookie
set by some other app on the domain must not lock a user out. A value wrapped in one pair of
double quotes is unwrapped. When a name repeats, the first wins (browsers send the cookie with
the longest Path first). Bytes are decoded as UTF-8; a pair that is not valid UTF-8 is skipped.
``parse_cookies(req)`` joins every ``Cookie`` field with ``"; "`` first.

**Writing** refuses what a browser would misparse, at the call (`CookieError`, a `ValueError`):
the name must be a token; the value must be RFC 6265 ``cookie-octets`` (no CTL, whitespace,
``"`` ``,`` ``;`` ``\\``, optionally wrapped in one pair of ``"``); Path and Domain may not carry CTLs
or ``;``. ``SameSite=None`` without ``Secure`` is refused (browsers drop such cookies), and so are
the ``__Secure-`` / ``__Host-`` prefixes without what they promise. Encode arbitrary values
first (`Signer` output is already safe; otherwise e.g. base64url or percent-encoding).
`set_cookie` returns ``("Set-Cookie", "...")``, a pair for ``respond(..., headers=[...])``;
repeat it for several cookies (``Set-Cookie`` is the one header that may not be folded).

**Signing** (`Signer`): ``value.timestamp.signature``, the value base64url-encoded, the signature
HMAC-SHA256 over the cookie's *name*, the encoded value and the timestamp, keyed by a key derived
from the secret and a salt. Binding the name stops a signed value from being replayed under
another cookie's name; the timestamp lets `unsign` enforce ``max_age`` server-side (a client can
keep a cookie past its Max-Age). Verification uses `hmac.compare_digest` (constant time) and
accepts the current secret or any of ``old_secrets`` (key rotation). The value is signed, not
encrypted: the client can read it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
import time
from datetime import datetime, timezone
from email.utils import format_datetime
from typing import Iterable, Literal

from ._core.request import Request
from .errors import ConfigError, VanillaError
from .grammar import TOKEN, TOKEN_STR

__all__ = ("CookieError", "Signer", "delete_cookie", "parse_cookie_header", "parse_cookies", "set_cookie")

log = logging.getLogger("vanilla_async.cookies")

_TOKEN = TOKEN_STR
_TOKEN_B = TOKEN
# cookie-value = *cookie-octet / ( DQUOTE *cookie-octet DQUOTE ), cookie-octet = %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
_COOKIE_VALUE = re.compile(r'[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*|"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*"')
_ATTR_VALUE = re.compile(r"[\x20-\x3a\x3c-\x7e]*")  # any CHAR except CTLs or ";"

SameSite = Literal["Strict", "Lax", "None"]


class CookieError(VanillaError, ValueError):
    """A cookie name, value or attribute would be malformed or unsafe on the wire."""


# -- reading -----------------------------------------------------------------------------------------
def parse_cookie_header(header: bytes | str | None) -> dict[str, str]:
    """The name → value pairs of one ``Cookie`` header value; malformed pairs are skipped."""
    if not header:
        return {}
    raw = header.encode("latin-1", "replace") if isinstance(header, str) else header
    cookies: dict[str, str] = {}
    for piece in raw.split(b";"):
        name, eq, value = piece.partition(b"=")
        if not eq:
            continue
        name = name.strip(b" \t")
        if not name or _TOKEN_B.fullmatch(name) is None:
            continue
        value = value.strip(b" \t")
        if len(value) >= 2 and value[:1] == b'"' and value[-1:] == b'"':
            value = value[1:-1]
        try:
            key, text = name.decode("ascii"), value.decode("utf-8")
        except UnicodeDecodeError:
            continue
        cookies.setdefault(key, text)
    return cookies


def parse_cookies(req: Request) -> dict[str, str]:
    """Every cookie the request carries (all ``Cookie`` fields), first occurrence of a name wins."""
    values = req.header_values(b"cookie")
    if not values:
        return {}
    return parse_cookie_header(values[0] if len(values) == 1 else b"; ".join(values))


# -- writing -----------------------------------------------------------------------------------------
def _check_attr(what: str, value: str) -> str:
    if _ATTR_VALUE.fullmatch(value) is None:
        raise CookieError(f"cookie {what} {value!r} contains a control character, ';' or non-ASCII; "
                          "use plain ASCII without ';'")
    return value


def _expires(value: datetime | float | int) -> str:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise CookieError(f"cookie Expires {value!r} is a naive datetime; give it a timezone (e.g. timezone.utc)")
        moment = value.astimezone(timezone.utc)
    else:
        moment = datetime.fromtimestamp(float(value), timezone.utc)
    return format_datetime(moment, usegmt=True)


def set_cookie(
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    expires: datetime | float | None = None,
    path: str | None = "/",
    domain: str | None = None,
    secure: bool = False,
    httponly: bool = True,
    samesite: SameSite | None = "Lax",
) -> tuple[str, str]:
    """``("Set-Cookie", "name=value; Path=/; HttpOnly; SameSite=Lax")`` for ``respond(headers=...)``.

    ``max_age`` in seconds (0 or less: expire now); ``expires`` an aware datetime or a Unix time;
    ``samesite`` ``"Strict"``, ``"Lax"``, ``"None"`` (needs ``secure=True``) or ``None`` to omit it.
    `CookieError` for anything a browser would misread.
    """
    if not isinstance(name, str) or _TOKEN.fullmatch(name) is None:
        raise CookieError(f"cookie name {name!r} must be a non-empty token (letters, digits, !#$%&'*+.^_`|~-)")
    if not isinstance(value, str) or _COOKIE_VALUE.fullmatch(value) is None:
        raise CookieError(
            f"cookie value {value!r} for {name!r} has characters a cookie cannot carry (control characters, "
            "whitespace, '\"', ',', ';', '\\' or non-ASCII); encode it first, e.g. base64url or Signer.sign")
    parts = [f"{name}={value}"]
    if path is not None:
        if not path.startswith("/"):
            raise CookieError(f"cookie Path {path!r} must start with '/'")
        parts.append("Path=" + _check_attr("Path", path))
    if domain is not None:
        if not domain:
            raise CookieError("cookie Domain may not be empty; pass None to leave it out (host-only cookie)")
        parts.append("Domain=" + _check_attr("Domain", domain))
    if max_age is not None:
        if not isinstance(max_age, int) or isinstance(max_age, bool):
            raise CookieError(f"cookie Max-Age must be an int number of seconds, got {max_age!r}")
        parts.append(f"Max-Age={max(max_age, 0)}")
    if expires is not None:
        parts.append("Expires=" + _expires(expires))
    if secure:
        parts.append("Secure")
    if httponly:
        parts.append("HttpOnly")
    if samesite is not None:
        canonical = {"strict": "Strict", "lax": "Lax", "none": "None"}.get(str(samesite).lower())
        if canonical is None:
            raise CookieError(f"SameSite must be 'Strict', 'Lax' or 'None' (or None to omit), got {samesite!r}")
        if canonical == "None" and not secure:
            raise CookieError("SameSite=None requires secure=True: browsers reject a cross-site cookie that is not Secure")
        parts.append("SameSite=" + canonical)
    if name.startswith("__Secure-") and not secure:
        raise CookieError(f"a cookie named {name!r} (__Secure- prefix) must be set with secure=True")
    if name.startswith("__Host-") and (not secure or path != "/" or domain is not None):
        raise CookieError(f"a cookie named {name!r} (__Host- prefix) needs secure=True, path='/' and no domain")
    return ("Set-Cookie", "; ".join(parts))


def delete_cookie(name: str, *, path: str | None = "/", domain: str | None = None, secure: bool = False,
                  samesite: SameSite | None = "Lax") -> tuple[str, str]:
    """A ``Set-Cookie`` that expires ``name`` now (Max-Age=0 and an Expires in 1970). Path and
    Domain must match the ones it was set with, or the browser keeps the original."""
    return set_cookie(name, "", max_age=0, expires=0, path=path, domain=domain, secure=secure, samesite=samesite)


# -- signing -----------------------------------------------------------------------------------------
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """HMAC-SHA256 signed cookie values with a timestamp; see the module docstring.

    ``secret``: at least 32 bytes (e.g. ``secrets.token_bytes(32)``), the same in every worker.
    ``old_secrets``: earlier secrets still accepted by `unsign` (never used to sign).
    ``salt``: separates uses of one secret (sessions vs CSRF tokens).
    """

    __slots__ = ("_keys",)

    def __init__(self, secret: bytes | str, *, old_secrets: Iterable[bytes | str] = (),
                 salt: bytes = b"vanilla_async.cookies.Signer") -> None:
        secrets_ = [secret, *old_secrets]
        keys: list[bytes] = []
        for s in secrets_:
            raw = s.encode("utf-8") if isinstance(s, str) else bytes(s)
            if len(raw) < 32:
                raise ConfigError(f"a cookie signing secret must be at least 32 bytes, got {len(raw)}; "
                                  "use secrets.token_bytes(32) and keep it out of the source code")
            keys.append(hmac.new(raw, b"signer-key:" + salt, hashlib.sha256).digest())
        self._keys = tuple(keys)

    @staticmethod
    def _mac(key: bytes, name: str, payload: str) -> bytes:
        return hmac.new(key, name.encode("ascii", "replace") + b"\x00" + payload.encode("ascii"), hashlib.sha256).digest()

    def sign(self, name: str, value: str, *, now: float | None = None) -> str:
        """``value`` signed for the cookie ``name``; the result is a valid cookie value."""
        stamp = int(time.time() if now is None else now)
        payload = f"{_b64(value.encode('utf-8'))}.{stamp:x}"
        return f"{payload}.{_b64(self._mac(self._keys[0], name, payload))}"

    def unsign(self, name: str, signed: str, *, max_age: float | None = None, now: float | None = None) -> str | None:
        """The value if ``signed`` was made by `sign` for ``name`` with one of our secrets (and,
        with ``max_age``, no more than ``max_age`` seconds ago); ``None`` otherwise."""
        payload, dot, signature = signed.rpartition(".")
        if not dot or not payload or len(signed) > 8192:
            return None
        try:
            given = _unb64(signature)
            encoded, _, stamp_hex = payload.partition(".")
            stamp = int(stamp_hex, 16)
            payload.encode("ascii")
        except (ValueError, binascii.Error, UnicodeEncodeError):
            return None
        if not any(hmac.compare_digest(self._mac(key, name, payload), given) for key in self._keys):
            return None
        if max_age is not None and (time.time() if now is None else now) - stamp > max_age:
            return None
        try:
            return _unb64(encoded).decode("utf-8")
        except (ValueError, binascii.Error):
            return None
