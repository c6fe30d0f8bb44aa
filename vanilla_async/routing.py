"""`Router`: method + path dispatch with path parameters, 404/405, automatic HEAD and OPTIONS.

    from vanilla_async import respond
    from vanilla_async.routing import Params, Router

    router = Router()

    @router.get("/items")                       # a static route: handler(req, out)
    def list_items(req, out): ...

    @router.route("/items/:id", "GET", "PUT")   # a parameterised route: handler(req, out, params)
    def item(req, out, params: Params):
        respond(out, 200, params["id"])

    @router.get("/static/*path")                # a catch-all: the rest of the path, may contain "/"
    def static(req, out, params): ...

    config = ServerConfig(handler=router)       # the router is itself a handler

Theory of operation
-------------------
**How params reach a handler.** The pattern decides the handler's signature: a pattern without
parameters calls ``handler(req, out)`` (any plain handler can be mounted as is); a pattern with
``:name`` or ``*name`` calls ``handler(req, out, params)`` where `Params` is a read-only mapping of
name → percent-decoded ``str``. The router returns whatever the handler returns, so sync handlers
and generator handlers both work, and the router itself keeps the ``(req, out) -> None | generator``
contract (it can be ``ServerConfig.handler``, or be wrapped by middleware).

**Static routes cost a dict lookup.** Every pattern without parameters is stored in a dict keyed by
its exact path bytes. A request does ``self._static.get(req.path)`` and then a second dict lookup on
``req.method``; the 405 and OPTIONS answers of a path are `StaticResponse` objects built at
registration. Nothing is allocated per request on this path. The key is the raw target path:
``/items`` matches only ``/items`` as sent (``/%69tems`` is a different path, answered 404).

**Parameterised routes use a segment trie.** The raw path is split on ``/`` *before* decoding,
so ``%2F`` inside a segment stays inside that segment's value and never creates a new segment.
Each trie node has static children (a dict), at most one ``:param`` child and at most one
``*catchall``. Matching prefers static over param over catch-all and backtracks when a branch
dead-ends (``/users/new`` and ``/users/:id/edit`` coexist). Every node sits at one fixed depth and
is tried against the one segment at that depth, so a request visits each node at most once: the
cost is bounded by the size of the route table, never exponential. A ``:param`` never matches an
empty segment (``/items/`` does not match ``/items/:id``). A catch-all matches the rest of the
path after its ``/``, possibly empty; its value is decoded segment by segment and joined with
``/`` — it may contain ``..``: sanitise it before touching the file system.

**Errors at registration, not at request time.** The same method on the same pattern twice, two
different parameter names at the same position (``/u/:id`` vs ``/u/:uid/x``: which name would a
request get?), a repeated name within a pattern, a catch-all that is not last, an invalid method or
pattern: each raises `RouteError` (`RouteConflict` for clashes) with the offending patterns.

**HEAD, OPTIONS, 404, 405.** A path with a GET route and no HEAD route answers HEAD by running the
GET handler into a private buffer and keeping only the head of its response (Content-Length stays
that of the GET body, as RFC 9110 §9.3.2 wants); a generator handler is closed as soon as its
head is complete, so streams work too. A path without an OPTIONS route answers OPTIONS with
``204`` and ``Allow``. A known path with another method gets ``405`` with ``Allow`` (RFC 9110
§15.5.6); an unknown path gets ``404``, or calls ``Router(not_found=handler)``. A parameter that
is not valid percent-encoded UTF-8 gets ``400``.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Generator, Iterator, Mapping, Optional, TypeVar, Union

from ._core.percent import PercentError, unquote_strict
from ._core.request import Request
from ._core.response import StaticResponse, respond
from .errors import VanillaError
from .grammar import TOKEN_STR

__all__ = ("Handler", "Params", "ParamHandler", "RouteConflict", "RouteError", "Router", "decode_segment")

log = logging.getLogger("vanilla_async.routing")

Result = Optional[Generator[Any, Any, Any]]
Handler = Callable[[Request, bytearray], Result]
"""A handler for a pattern without parameters: ``handler(req, out)``."""
ParamHandler = Callable[[Request, bytearray, "Params"], Result]
"""A handler for a pattern with ``:name`` / ``*name`` parameters: ``handler(req, out, params)``."""
AnyHandler = Union[Handler, ParamHandler]
H = TypeVar("H", bound=Callable[..., Any])

_METHOD = TOKEN_STR
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# A static segment: RFC 3986 pchar (unreserved, pct-encoded, sub-delims, ":" "@"), without a leading ":" / "*".
_SEGMENT = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()+,;=@]|%[0-9A-Fa-f]{2})(?:[A-Za-z0-9\-._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*")


class RouteError(VanillaError, ValueError):
    """A route pattern or method is invalid; the message says which and what is allowed."""


class RouteConflict(RouteError):
    """A route clashes with one registered before it (same method and pattern, or a different
    parameter name at the same position)."""


class ParamError(VanillaError, ValueError):
    """A path segment is not valid percent-encoded UTF-8 (the router answers 400)."""


def decode_segment(raw: bytes) -> str:
    """Percent-decode one path segment to ``str`` (UTF-8). `ParamError` on a malformed ``%``
    escape or invalid UTF-8. No ``+`` → space here: that is a query-string rule, not a path one."""
    try:
        raw = unquote_strict(raw)
    except PercentError:
        raise ParamError(f"malformed percent-escape in path segment {raw[:80]!r}: use %XX with two hex digits") from None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ParamError(f"path segment {raw[:80]!r} is not valid UTF-8 once percent-decoded") from None


class Params(Mapping[str, str]):
    """The parameters a parameterised route matched: a read-only mapping name → decoded ``str``."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Params({self._values!r})"


@dataclass(frozen=True, slots=True)
class Route:
    """One registration, as `Router.routes` lists it."""

    method: str
    pattern: str
    handler: AnyHandler


@dataclass(frozen=True, slots=True)
class _Segment:
    kind: str  # "static" | "param" | "catchall"
    text: str  # the static text, or the parameter's name


def _parse_pattern(pattern: str) -> tuple[_Segment, ...]:
    if not isinstance(pattern, str) or not pattern.startswith("/"):
        raise RouteError(f"route pattern {pattern!r} must be a str starting with '/'")
    segments: list[_Segment] = []
    names: set[str] = set()
    raw_segments = pattern[1:].split("/")
    for i, text in enumerate(raw_segments):
        if text[:1] in (":", "*"):
            kind = "param" if text[0] == ":" else "catchall"
            name = text[1:]
            if _NAME.fullmatch(name) is None:
                raise RouteError(f"route pattern {pattern!r}: parameter {text!r} needs a name like :id or *path "
                                 "(a letter or _, then letters, digits, _)")
            if name in names:
                raise RouteError(f"route pattern {pattern!r} uses the parameter name {name!r} twice; rename one")
            if kind == "catchall" and i != len(raw_segments) - 1:
                raise RouteError(f"route pattern {pattern!r}: the catch-all {text!r} must be the last segment")
            names.add(name)
            segments.append(_Segment(kind, name))
        elif text == "" and i == len(raw_segments) - 1:
            segments.append(_Segment("static", ""))  # a trailing slash (or the root "/")
        elif _SEGMENT.fullmatch(text) is None:
            raise RouteError(f"route pattern {pattern!r}: segment {text!r} is empty or has characters a path "
                             "cannot carry unencoded; percent-encode them (%XX)")
        else:
            segments.append(_Segment("static", text))
    return tuple(segments)


@dataclass(eq=False)
class _Endpoint:
    """Everything one path answers: handlers by method, and its prebuilt 405/OPTIONS responses."""

    pattern: str
    has_params: bool
    handlers: dict[bytes, AnyHandler] = field(default_factory=dict)
    explicit: set[bytes] = field(default_factory=set)
    names: tuple[str, ...] = ()
    catchall: bool = False  #: its last name is a catch-all
    allow: str = ""
    not_allowed: StaticResponse | None = None
    options: StaticResponse | None = None


class _Node:
    __slots__ = ("static", "param", "param_name", "param_pattern", "catchall", "catchall_name", "catchall_pattern",
                 "endpoint")

    def __init__(self) -> None:
        self.static: dict[bytes, _Node] = {}
        self.param: _Node | None = None
        self.param_name = ""
        self.param_pattern = ""
        self.catchall: _Endpoint | None = None
        self.catchall_name = ""
        self.catchall_pattern = ""
        self.endpoint: _Endpoint | None = None


def _head_end(buf: bytearray) -> int:
    end = buf.find(b"\r\n\r\n")
    return -1 if end < 0 else end + 4


def _head_only_sync(tmp: bytearray, out: bytearray) -> None:
    end = _head_end(tmp)
    out += tmp if end < 0 else tmp[:end]


def _head_only(inner: Generator[Any, Any, Any], tmp: bytearray, out: bytearray) -> Generator[Any, Any, None]:
    """Drive a GET generator for a HEAD request; stop it once its response head is complete."""
    send: Any = None
    throw: BaseException | None = None
    try:
        while _head_end(tmp) < 0:
            try:
                if throw is not None:
                    exc, throw = throw, None
                    token = inner.throw(exc)
                else:
                    token = inner.send(send)
            except StopIteration:
                break
            if _head_end(tmp) >= 0:
                break  # what it would send next is body: a HEAD response has none
            try:
                send = yield token
            except GeneratorExit:
                raise
            except BaseException as exc:  # e.g. ShuttingDown: it is the inner generator's to handle
                throw = exc
    finally:
        inner.close()
    _head_only_sync(tmp, out)


def _auto_head(get: AnyHandler, has_params: bool) -> AnyHandler:
    """A HEAD handler made from a GET handler: run it into a private buffer, keep the head."""
    def run(req: Request, out: bytearray, params: Params | None) -> Result:
        tmp = bytearray()
        result = get(req, tmp) if params is None else get(req, tmp, params)  # type: ignore[call-arg]
        if result is None:
            _head_only_sync(tmp, out)
            return None
        return _head_only(result, tmp, out)

    def head_with_params(req: Request, out: bytearray, params: Params) -> Result:
        return run(req, out, params)

    def head(req: Request, out: bytearray) -> Result:
        return run(req, out, None)

    return head_with_params if has_params else head


class Router:
    """Dispatch ``(req, out)`` by method and path. See the module docstring for the rules.

    ``not_found(req, out)`` answers paths no route matches (default: a plain ``404``).
    ``auto_head`` answers HEAD from the GET route; ``auto_options`` answers OPTIONS with ``Allow``.
    """

    def __init__(self, *, not_found: Handler | None = None, auto_head: bool = True, auto_options: bool = True) -> None:
        self._static: dict[bytes, _Endpoint] = {}
        self._root = _Node()
        self._routes: list[Route] = []
        self._not_found = not_found
        self._auto_head = auto_head
        self._auto_options = auto_options

    # -- registration ---------------------------------------------------------------------------------
    @property
    def routes(self) -> tuple[Route, ...]:
        """Every explicit registration, in order."""
        return tuple(self._routes)

    def add(self, method: str, pattern: str, handler: AnyHandler) -> None:
        """Register ``handler`` for ``method`` (e.g. ``"GET"``) on ``pattern``; `RouteError` if invalid."""
        if not isinstance(method, str) or _METHOD.fullmatch(method) is None:
            raise RouteError(f"HTTP method {method!r} is not a token; use e.g. 'GET', 'POST'")
        if not callable(handler):
            raise RouteError(f"handler for {method} {pattern} must be callable, got {handler!r}")
        method = method.upper() if method.lower() in _STANDARD else method
        segments = _parse_pattern(pattern)
        has_params = any(s.kind != "static" for s in segments)
        if has_params:
            endpoint = self._trie_endpoint(pattern, segments)
        else:
            key = pattern.encode("ascii")
            endpoint = self._static.get(key) or self._static.setdefault(key, _Endpoint(pattern, False))
        raw_method = method.encode("ascii")
        if raw_method in endpoint.explicit:
            raise RouteConflict(f"{method} {pattern} is already registered (as {method} {endpoint.pattern}); "
                                "remove one of the two registrations")
        endpoint.explicit.add(raw_method)
        endpoint.handlers[raw_method] = handler
        if raw_method == b"GET" and self._auto_head and b"HEAD" not in endpoint.explicit:
            endpoint.handlers[b"HEAD"] = _auto_head(handler, has_params)
        self._routes.append(Route(method, pattern, handler))
        self._rebuild(endpoint)

    def route(self, pattern: str, *methods: str) -> Callable[[H], H]:
        """Decorator: ``@router.route("/x/:id", "GET", "PUT")`` (default method: GET)."""
        def register(handler: H) -> H:
            for method in methods or ("GET",):
                self.add(method, pattern, handler)
            return handler
        return register

    def get(self, pattern: str) -> Callable[[H], H]:
        return self.route(pattern, "GET")

    def post(self, pattern: str) -> Callable[[H], H]:
        return self.route(pattern, "POST")

    def put(self, pattern: str) -> Callable[[H], H]:
        return self.route(pattern, "PUT")

    def patch(self, pattern: str) -> Callable[[H], H]:
        return self.route(pattern, "PATCH")

    def delete(self, pattern: str) -> Callable[[H], H]:
        return self.route(pattern, "DELETE")

    def _trie_endpoint(self, pattern: str, segments: tuple[_Segment, ...]) -> _Endpoint:
        node = self._root
        names: list[str] = []
        for seg in segments:
            if seg.kind == "static":
                key = seg.text.encode("ascii")
                node = node.static.get(key) or node.static.setdefault(key, _Node())
            elif seg.kind == "param":
                if node.param is None:
                    node.param, node.param_name, node.param_pattern = _Node(), seg.text, pattern
                elif node.param_name != seg.text:
                    raise RouteConflict(
                        f"route {pattern!r} names a parameter {seg.text!r} where {node.param_pattern!r} already "
                        f"named it {node.param_name!r}; use the same name at the same position")
                node = node.param
                names.append(seg.text)
            else:
                names.append(seg.text)
                if node.catchall is None:
                    node.catchall, node.catchall_name, node.catchall_pattern = (
                        _Endpoint(pattern, True, names=tuple(names), catchall=True), seg.text, pattern)
                elif node.catchall_name != seg.text:
                    raise RouteConflict(
                        f"route {pattern!r} names a catch-all {seg.text!r} where {node.catchall_pattern!r} already "
                        f"named it {node.catchall_name!r}; use the same name at the same position")
                return node.catchall
        if node.endpoint is None:
            node.endpoint = _Endpoint(pattern, True, names=tuple(names))
        return node.endpoint

    def _rebuild(self, endpoint: _Endpoint) -> None:
        methods = set(endpoint.handlers)
        if self._auto_options:
            methods.add(b"OPTIONS")
        endpoint.allow = ", ".join(sorted(m.decode("ascii") for m in methods))
        endpoint.not_allowed = StaticResponse(
            405, f"405 Method Not Allowed: {endpoint.pattern} answers {endpoint.allow}\n",
            headers=[("Allow", endpoint.allow)])
        endpoint.options = StaticResponse(204, b"", content_type=None, headers=[("Allow", endpoint.allow)])

    # -- dispatch ---------------------------------------------------------------------------------------
    def __call__(self, req: Request, out: bytearray) -> Result:
        endpoint = self._static.get(req.path)
        if endpoint is not None:
            handler = endpoint.handlers.get(req.method)
            if handler is not None:
                return handler(req, out)  # type: ignore[call-arg]
            return self._other_method(endpoint, req, out)
        return self._dynamic(req, out)

    def _dynamic(self, req: Request, out: bytearray) -> Result:
        path = req.path
        if not path.startswith(b"/"):  # "*" (OPTIONS *) or an absolute-form target
            return self._missing(req, out)
        segments = path[1:].split(b"/")
        values: list[bytes] = []
        endpoint = self._match(self._root, segments, 0, values)
        if endpoint is None:
            return self._missing(req, out)
        handler = endpoint.handlers.get(req.method)
        if handler is None:
            return self._other_method(endpoint, req, out)
        try:
            names = endpoint.names
            last = len(values) - 1
            params = Params({names[i]: _decode_rest(raw) if i == last and endpoint.catchall else decode_segment(raw)
                             for i, raw in enumerate(values)})
        except ParamError as exc:
            respond(out, 400, f"400 Bad Request: {exc}\n", head=req.method == b"HEAD")
            return None
        return handler(req, out, params)  # type: ignore[call-arg]

    def _match(self, node: _Node, segments: list[bytes], i: int, values: list[bytes]) -> _Endpoint | None:
        if i == len(segments):
            if node.endpoint is not None:
                return node.endpoint
            return None
        seg = segments[i]
        child = node.static.get(seg)
        if child is not None:
            found = self._match(child, segments, i + 1, values)
            if found is not None:
                return found
        if node.param is not None and seg:
            values.append(seg)
            found = self._match(node.param, segments, i + 1, values)
            if found is not None:
                return found
            values.pop()
        if node.catchall is not None:
            values.append(b"/".join(segments[i:]))  # decoded per segment, joined with "/"
            return node.catchall
        return None

    def _other_method(self, endpoint: _Endpoint, req: Request, out: bytearray) -> Result:
        method = req.method
        if method == b"OPTIONS" and self._auto_options:
            assert endpoint.options is not None
            endpoint.options.append_to(out)
        elif method == b"HEAD":  # a HEAD response carries no body, not even an error's
            respond(out, 405, f"405 Method Not Allowed: {endpoint.pattern} answers {endpoint.allow}\n",
                    headers=[("Allow", endpoint.allow)], head=True)
        else:
            assert endpoint.not_allowed is not None
            endpoint.not_allowed.append_to(out)
        return None

    def _missing(self, req: Request, out: bytearray) -> Result:
        if self._not_found is not None:
            return self._not_found(req, out)
        if req.method == b"HEAD":
            respond(out, 404, _NOT_FOUND_BODY, head=True)
        else:
            _NOT_FOUND.append_to(out)
        return None


def _decode_rest(raw: bytes) -> str:
    return "/".join(decode_segment(part) for part in raw.split(b"/"))


_STANDARD = frozenset({"get", "head", "post", "put", "delete", "connect", "options", "trace", "patch"})
_NOT_FOUND_BODY = b"404 Not Found: no route matches this path\n"
_NOT_FOUND = StaticResponse(404, _NOT_FOUND_BODY)
