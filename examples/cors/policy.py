"""CORS (the Fetch standard's CORS protocol) as a handler wrapper — generic (could move into the library).

Theory of operation
-------------------
`CorsPolicy` says which origins may read responses, with which methods and request headers.
`with_cors(app, policy)` wraps a handler:

* **Preflight** — ``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``. It never
  reaches the app. If the origin, the method and every header named in
  ``Access-Control-Request-Headers`` (case-insensitive) are allowed: **204** with
  ``Access-Control-Allow-Origin`` (the origin echoed), ``-Allow-Methods``, ``-Allow-Headers``,
  ``-Max-Age``, ``-Allow-Credentials: true`` when credentials are on, and ``Vary: Origin``.
  Otherwise **403** with no CORS header at all (a plain-text reason for the human reading the
  network tab): the browser then refuses the actual request.
* **Actual requests** — the app answers as usual; when the request's ``Origin`` is allowed, the
  wrapper inserts ``Access-Control-Allow-Origin`` (echoed), ``-Allow-Credentials`` and
  ``-Expose-Headers`` right after the status line. A disallowed origin gets the app's response
  without CORS headers (the browser hides it from the page). With an origin list, every response
  also says ``Vary: Origin`` — with or without ``Origin`` in the request — so a shared cache never
  serves one origin's answer to another.

Echoing, never ``*``, whenever the allowed set is a list; ``*`` only for ``origins=["*"]`` without
credentials (the Fetch standard refuses ``*`` with credentials, so that combination is a config
error). Origins are compared exactly as browsers serialise them (``scheme://host[:port]``,
lower-case, no path, no trailing slash); the config is checked for that shape, and ``null`` (sandboxed
documents, ``file:``) is refused — any page can produce it.

**Inserting headers into a response the app already wrote.** A synchronous handler's response
starts at the offset ``out`` had when it was called. A generator handler's output is flushed at
each ``yield``, so the wrapper drives the generator itself (``send``/``throw``/``close`` passed
through, like ``yield from``) and inserts the headers in the first step that appends output,
before that output can leave. Handlers that don't use the wrapper pay nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Generator, Iterable

from vanilla_async import ConfigError, Request, StaticResponse, header_line, respond
from vanilla_async.grammar import TOKEN_STR
from vanilla_async.streaming import relay

Handler = Callable[[Request, bytearray], Generator[Any, Any, Any] | None]

_ORIGIN = re.compile(r"(https?)://([a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::([0-9]{1,5}))?")
_TOKEN = TOKEN_STR


class CorsConfigError(ConfigError):
    """A `CorsPolicy` setting is unsafe or malformed."""


def _check_origin(origin: str) -> str:
    if origin == "null":
        raise CorsConfigError("origin 'null' must not be allowed: sandboxed iframes and file: pages of any site send it")
    if _ORIGIN.fullmatch(origin) is None:
        hint = ""
        if origin.rstrip("/") != origin:
            hint = f"; drop the trailing slash: {origin.rstrip('/')!r}"
        elif origin.lower() != origin:
            hint = f"; browsers send it lower-case: {origin.lower()!r}"
        raise CorsConfigError(f"origin {origin!r} is not scheme://host[:port] (http or https, no path){hint}")
    return origin


@dataclass(frozen=True)
class CorsPolicy:
    """Who may read our responses from a browser. Build it with `CorsPolicy.of` (validated)."""

    origins: frozenset[str]  #: exact origins, or ``{"*"}``
    methods: tuple[str, ...]
    headers: frozenset[str]  #: allowed request headers, lower-case
    expose: tuple[str, ...]
    credentials: bool
    max_age: int

    @classmethod
    def of(
        cls, origins: Iterable[str], *, methods: Iterable[str] = ("GET", "HEAD", "POST"),
        headers: Iterable[str] = (), expose: Iterable[str] = (), credentials: bool = False, max_age: int = 600,
    ) -> CorsPolicy:
        if isinstance(origins, str):
            raise CorsConfigError(f"origins must be a list, got the single string {origins!r}; wrap it in a list")
        origin_set = frozenset(origins)
        if "*" in origin_set:
            if len(origin_set) > 1:
                raise CorsConfigError("origins: '*' already allows every origin; list origins or use ['*'], not both")
            if credentials:
                raise CorsConfigError("'*' with credentials is refused by browsers and would expose every user's data: "
                                      "list the allowed origins instead")
        else:
            for origin in origin_set:
                _check_origin(origin)
        method_list = tuple(methods)
        header_set = frozenset(h.lower() for h in headers)
        expose_list = tuple(expose)
        for name in (*method_list, *header_set, *expose_list):
            if _TOKEN.fullmatch(name) is None:
                raise CorsConfigError(f"{name!r} is not a valid method or header name (an HTTP token)")
        if not isinstance(max_age, int) or max_age < 0:
            raise CorsConfigError(f"max_age must be a whole number of seconds >= 0, got {max_age!r}")
        return cls(origin_set, method_list, header_set, expose_list, bool(credentials), max_age)

    @property
    def wildcard(self) -> bool:
        return "*" in self.origins

    def allows(self, origin: bytes | None) -> bool:
        if origin is None:
            return False
        return self.wildcard or origin.decode("latin-1") in self.origins

    def response_lines(self, origin: bytes | None) -> bytes:
        """The header lines to insert into an actual response for a request from ``origin``."""
        vary = b"" if self.wildcard else b"Vary: Origin\r\n"
        if origin is None or not self.allows(origin):
            return vary
        lines = header_line("Access-Control-Allow-Origin", b"*" if self.wildcard else origin) + vary
        if self.credentials:
            lines += b"Access-Control-Allow-Credentials: true\r\n"
        if self.expose:
            lines += header_line("Access-Control-Expose-Headers", ", ".join(self.expose))
        return lines

    def preflight(self, req: Request, out: bytearray, origin: bytes, method: bytes) -> None:
        """Answer a preflight: 204 with the CORS headers, or 403 saying what is not allowed."""
        refusal = self._refusal(origin, method, req.header(b"access-control-request-headers") or b"")
        if refusal:
            vary = [] if self.wildcard else [("Vary", "Origin")]
            respond(out, 403, f"CORS preflight refused: {refusal}\n", headers=vary)
            return
        headers: list[tuple[str, bytes | str | int]] = [
            ("Access-Control-Allow-Origin", b"*" if self.wildcard else origin),
            ("Access-Control-Allow-Methods", ", ".join(self.methods)),
        ]
        if self.headers:
            headers.append(("Access-Control-Allow-Headers", ", ".join(sorted(self.headers))))
        if self.credentials:
            headers.append(("Access-Control-Allow-Credentials", "true"))
        headers.append(("Access-Control-Max-Age", self.max_age))
        if not self.wildcard:
            headers.append(("Vary", "Origin"))
        respond(out, 204, headers=headers)

    def _refusal(self, origin: bytes, method: bytes, requested: bytes) -> str:
        shown = origin[:100].decode("latin-1")
        if not self.allows(origin):
            return f"origin {shown!r} is not allowed"
        if method.decode("latin-1") not in self.methods:
            return f"method {method[:40].decode('latin-1')!r} is not allowed for {shown!r}"
        for name in requested.split(b","):
            name = name.strip(b" \t").lower()
            if name and name.decode("latin-1") not in self.headers:
                return f"request header {name[:60].decode('latin-1')!r} is not allowed for {shown!r}"
        return ""


_NO_ORIGIN_PREFLIGHT = StaticResponse(400, b"a CORS preflight needs an Origin header\n")


def with_cors(app: Handler, policy: CorsPolicy) -> Handler:
    """``app`` behind ``policy`` (see the module docstring)."""

    def handler(req: Request, out: bytearray) -> Generator[Any, Any, Any] | None:
        origin = req.header(b"origin")
        if req.method == b"OPTIONS":
            method = req.header(b"access-control-request-method")
            if method is not None:
                if origin is None:
                    _NO_ORIGIN_PREFLIGHT.append_to(out)
                else:
                    policy.preflight(req, out, origin, method)
                return None
        lines = policy.response_lines(origin)
        start = len(out)
        result = app(req, out)
        if not lines:
            return result
        if result is None:
            insert_after_status_line(out, start, lines)
            return None
        if hasattr(result, "send") and hasattr(result, "throw"):
            return _inserting(result, out, lines)
        return result  # not a generator: the server answers 500 for the broken contract

    return handler


def insert_after_status_line(out: bytearray, start: int, lines: bytes) -> bool:
    """Insert header ``lines`` after the status line of the response at ``out[start:]``.

    True when there was output to look at (inserted if it is a response head), False when none yet.
    """
    if len(out) <= start:
        return False
    if out.startswith(b"HTTP/1.", start):
        end = out.find(b"\r\n", start)
        if end >= 0:
            out[end + 2:end + 2] = lines
    return True


def _inserting(gen: Generator[Any, Any, Any], out: bytearray, lines: bytes) -> Generator[Any, Any, Any]:
    """Drive ``gen`` as ``yield from`` would; insert ``lines`` in the first step that appends output."""
    pending = [True]

    def after_step(start: int) -> None:
        if pending[0]:
            pending[0] = not insert_after_status_line(out, start, lines)

    return (yield from relay(gen, out, after_step))