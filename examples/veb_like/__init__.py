"""examples.veb_like — declarative routes in the style of V's ``veb``: a class of handlers whose
methods carry their route, compiled onto `vanilla_async.routing.Router`.

    class Blog(App):
        @route("GET", "/posts/:id")
        def post(self, ctx: Context, id: int) -> None:      # typed path parameters
            ctx.json(self.posts[id])

``GET /``                 200 text: the route table
``GET /posts``            200 JSON list
``POST /posts``           201, urlencoded or JSON body ``title``, ``body``
``GET /posts/:id``        200 / 404 (``:id`` must be an int: else 404, by its annotation)
``DELETE /posts/:id``     204 / 404
``GET /hello/:name``      200 ``Hello, NAME!`` (a ``str`` parameter)

`App.router()` walks the class once at start-up, reads each method's ``@route`` and its
annotations, and registers a closure per route; a ``Context`` per request bundles the request,
the output buffer and the app's state, with small response methods (``text``, ``json``,
``status``). State is per worker: ``make_state`` builds a new app instance after the fork.

Run: ``python -m examples.veb_like --port 8080``, then ``curl localhost:8080/`` and
``curl -d 'title=Hi&body=first' localhost:8080/posts``.
"""

from __future__ import annotations

import inspect
import json
from dataclasses import dataclass
from typing import Any, Callable, TypeVar, get_type_hints

from vanilla_async import Request, ServerConfig, respond
from vanilla_async.forms import FormError, parse_urlencoded
from vanilla_async.routing import Params, Router

__all__ = ("App", "Blog", "Context", "config", "route")

F = TypeVar("F", bound=Callable[..., None])
_ROUTE = "__veb_route__"


def route(method: str, pattern: str) -> Callable[[F], F]:
    """Mark an `App` method as the handler of ``method pattern``."""

    def mark(fn: F) -> F:
        routes: list[tuple[str, str]] = getattr(fn, _ROUTE, [])
        setattr(fn, _ROUTE, [*routes, (method, pattern)])
        return fn

    return mark


@dataclass
class Context:
    """One request: the view, the output buffer, and response helpers."""

    req: Request
    out: bytearray

    def text(self, body: str, status: int = 200) -> None:
        respond(self.out, status, body, content_type=b"text/plain; charset=utf-8")

    def json(self, doc: Any, status: int = 200, headers: list[tuple[str, str]] | None = None) -> None:
        respond(self.out, status, json.dumps(doc), content_type=b"application/json", headers=headers or ())

    def status(self, status: int) -> None:
        respond(self.out, status)

    def form(self) -> dict[str, str]:
        """The body's fields: JSON object or ``application/x-www-form-urlencoded``."""
        media = (self.req.header(b"content-type") or b"").split(b";")[0].strip().lower()
        if media == b"application/json":
            doc = json.loads(bytes(self.req.body))
            return {str(k): str(v) for k, v in doc.items()} if isinstance(doc, dict) else {}
        return dict(parse_urlencoded(self.req))


class _NoMatch(Exception):
    pass


def _converter(kind: Any) -> Callable[[str], Any]:
    if kind is int:
        def to_int(raw: str) -> int:
            if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
                raise _NoMatch(raw)
            return int(raw)
        return to_int
    return str


class App:
    """Subclass it and decorate methods with `route`; `router` compiles them."""

    @classmethod
    def router(cls) -> Router:
        router = Router()
        for name, fn in inspect.getmembers(cls, inspect.isfunction):
            for method, pattern in getattr(fn, _ROUTE, []):
                router.add(method, pattern, cls._bind(name, fn))
        return router

    @classmethod
    def routes(cls) -> list[tuple[str, str, str]]:
        return sorted((pattern, method, name) for name, fn in inspect.getmembers(cls, inspect.isfunction)
                      for method, pattern in getattr(fn, _ROUTE, []))

    @staticmethod
    def _bind(name: str, fn: Callable[..., None]) -> Callable[..., None]:
        hints = get_type_hints(fn)
        params = [p for p in inspect.signature(fn).parameters if p not in ("self", "ctx")]
        convert = {p: _converter(hints.get(p, str)) for p in params}
        if not params:
            def plain(req: Request, out: bytearray) -> None:
                getattr(req.state, name)(Context(req, out))
            return plain

        def with_params(req: Request, out: bytearray, values: Params) -> None:
            try:
                args = {p: convert[p](values[p]) for p in params}
            except _NoMatch:
                respond(out, 404, b"not found\n")
                return
            getattr(req.state, name)(Context(req, out), **args)

        return with_params


class Blog(App):
    """The demo app: posts in memory, per worker."""

    def __init__(self) -> None:
        self.posts: dict[int, dict[str, Any]] = {}
        self.next_id = 1

    @route("GET", "/")
    def index(self, ctx: Context) -> None:
        ctx.text("".join(f"{method} {pattern} -> {name}\n" for pattern, method, name in self.routes()))

    @route("GET", "/posts")
    def list_posts(self, ctx: Context) -> None:
        ctx.json(list(self.posts.values()))

    @route("POST", "/posts")
    def create_post(self, ctx: Context) -> None:
        try:
            fields = ctx.form()
        except (ValueError, FormError):
            ctx.json({"error": "send title and body, urlencoded or JSON"}, 400)
            return
        if not fields.get("title"):
            ctx.json({"error": "title is required"}, 400)
            return
        post = {"id": self.next_id, "title": fields["title"], "body": fields.get("body", "")}
        self.posts[self.next_id] = post
        self.next_id += 1
        ctx.json(post, 201, [("Location", f"/posts/{post['id']}")])

    @route("GET", "/posts/:id")
    def post(self, ctx: Context, id: int) -> None:  # noqa: A002 - the route's parameter name
        if id not in self.posts:
            ctx.json({"error": f"no post {id}"}, 404)
            return
        ctx.json(self.posts[id])

    @route("DELETE", "/posts/:id")
    def delete_post(self, ctx: Context, id: int) -> None:  # noqa: A002
        if self.posts.pop(id, None) is None:
            ctx.json({"error": f"no post {id}"}, 404)
            return
        ctx.status(204)

    @route("GET", "/hello/:name")
    def hello(self, ctx: Context, name: str) -> None:
        ctx.text(f"Hello, {name}!\n")


config = ServerConfig(handler=Blog.router(), port=8080, make_state=Blog)
