"""Security response headers as one prebuilt block: built once, appended with one ``+=``.

    from vanilla_async.security import SecurityHeaders

    SECURITY = SecurityHeaders(csp="default-src 'self'", hsts=True).block   # bytes, computed once

    def handler(req, out):
        respond(out, 200, b"hi", headers=...)        # or, when building a head by hand:
        out += b"HTTP/1.1 200 OK\\r\\n" + SECURITY + b"Content-Length: 2\\r\\n\\r\\nhi"

`SecurityHeaders` is a frozen value object; its `block` is the ``b"Name: value\\r\\n..."`` lines,
validated (tokens, no CR/LF/NUL) when it is built, so a request costs nothing but the append.
`headers()` gives the same pairs for APIs that take ``headers=`` (`respond`, `StaticResponse`,
`vanilla_async.static.static_files`).

The defaults are a strict baseline for an app that serves its own pages and scripts:

* ``Content-Security-Policy: default-src 'self'; base-uri 'self'; object-src 'none';
  frame-ancestors 'none'`` — ``frame-ancestors`` is the modern form of X-Frame-Options;
* ``X-Content-Type-Options: nosniff``; ``X-Frame-Options: DENY`` (for older browsers);
* ``Referrer-Policy: strict-origin-when-cross-origin``;
* ``Permissions-Policy: camera=(), microphone=(), geolocation=()``;
* ``Cross-Origin-Opener-Policy: same-origin``; ``Cross-Origin-Resource-Policy: same-origin``.

**HSTS** (``Strict-Transport-Security``) is off by default. Browsers ignore it on plain HTTP
(RFC 6797 §8.1), and this server speaks plain HTTP: enable it (``hsts=True`` or a max-age) only
when a TLS-terminating proxy in front serves the site over HTTPS — and only once every subdomain
is on HTTPS if ``hsts_subdomains`` stays on, because browsers then refuse plain HTTP for a year.
Any header can be set to ``None`` to leave it out, or to another value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._core.response import header_line
from .errors import VanillaError

__all__ = ("DEFAULT_CSP", "ONE_YEAR", "SecurityError", "SecurityHeaders")

DEFAULT_CSP = "default-src 'self'; base-uri 'self'; object-src 'none'; frame-ancestors 'none'"
ONE_YEAR = 31536000


class SecurityError(VanillaError, ValueError):
    """A `SecurityHeaders` setting cannot be turned into a valid header."""


@dataclass(frozen=True)
class SecurityHeaders:
    """A configurable set of security headers; `block` holds their bytes (built once)."""

    csp: str | None = DEFAULT_CSP
    #: ``True`` for one year, an int for that max-age in seconds, ``False``/``None``/0 to leave it out.
    hsts: bool | int | None = False
    hsts_subdomains: bool = True
    hsts_preload: bool = False
    content_type_options: str | None = "nosniff"
    frame_options: str | None = "DENY"
    referrer_policy: str | None = "strict-origin-when-cross-origin"
    permissions_policy: str | None = "camera=(), microphone=(), geolocation=()"
    coop: str | None = "same-origin"
    corp: str | None = "same-origin"
    coep: str | None = None  #: e.g. ``"require-corp"`` (needed for SharedArrayBuffer)
    csp_report_only: bool = False  #: send the CSP as ``Content-Security-Policy-Report-Only``
    extra: tuple[tuple[str, str], ...] = ()
    block: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.hsts is True:
            max_age: int | None = ONE_YEAR
        elif self.hsts is False or self.hsts is None:
            max_age = None
        elif isinstance(self.hsts, int) and self.hsts >= 0:
            max_age = self.hsts or None
        else:
            raise SecurityError(f"hsts must be True, False or a max-age in seconds (int >= 0), got {self.hsts!r}")
        if self.hsts_preload and (max_age is None or max_age < ONE_YEAR or not self.hsts_subdomains):
            raise SecurityError("hsts_preload needs hsts with max-age >= 31536000 and hsts_subdomains=True "
                                "(the preload list's requirements)")
        try:
            block = b"".join(header_line(name, value) for name, value in self.headers())
        except VanillaError as exc:
            raise SecurityError(f"cannot build the security headers: {exc}") from exc
        object.__setattr__(self, "block", block)

    def headers(self) -> list[tuple[str, str]]:
        """The (name, value) pairs, in the order they are sent."""
        pairs: list[tuple[str, str]] = []
        if self.csp is not None:
            name = "Content-Security-Policy-Report-Only" if self.csp_report_only else "Content-Security-Policy"
            pairs.append((name, self.csp))
        max_age = ONE_YEAR if self.hsts is True else (self.hsts or 0)
        if max_age:
            value = f"max-age={max_age}"
            if self.hsts_subdomains:
                value += "; includeSubDomains"
            if self.hsts_preload:
                value += "; preload"
            pairs.append(("Strict-Transport-Security", value))
        for name, setting in (
            ("X-Content-Type-Options", self.content_type_options),
            ("X-Frame-Options", self.frame_options),
            ("Referrer-Policy", self.referrer_policy),
            ("Permissions-Policy", self.permissions_policy),
            ("Cross-Origin-Opener-Policy", self.coop),
            ("Cross-Origin-Resource-Policy", self.corp),
            ("Cross-Origin-Embedder-Policy", self.coep),
        ):
            if setting is not None:
                pairs.append((name, setting))
        pairs.extend(self.extra)
        return pairs

    def append_to(self, out: bytearray) -> None:
        """Append the header lines (call between the status line and the blank line)."""
        out += self.block

