"""examples.middleware — composable wrappers around a `Router`: access log, bearer auth, RBAC, 404.

A middleware is a function ``handler -> handler``; `compose` applies several, outermost first.
Because a handler returns ``None`` or a generator, a wrapper just returns what the inner handler
returned, and a wrapper that needs to act *after* the response (the access log) wraps a returned
generator in its own.

``GET /``              public: ``hello``
``GET /api/me``        needs ``Authorization: Bearer <token>`` → ``{"user", "role"}``; **401** with
                       ``WWW-Authenticate: Bearer`` without a valid token
``GET /api/slow``      the same auth, then a generator handler that parks 20 ms (the access log
                       still sees its status and time)
``GET /admin/stats``   bearer auth, then RBAC: role ``admin`` only → **403** for other roles
``*``                  anything else: a JSON **404** from the custom not-found handler

Every request is logged by the ``examples.middleware.access`` logger as
``METHOD PATH STATUS BYTES DURATIONms user=NAME``. Tokens (demo): ``alice-token`` (admin),
``bob-token`` (reader).

Run: ``python -m examples.middleware --port 8080 --workers 2 --log-level INFO``, then
``curl -H 'Authorization: Bearer alice-token' localhost:8080/admin/stats``.
"""

from __future__ import annotations

import hmac
import json
import logging
import time
from typing import Any, Callable, Generator, NamedTuple, Optional

from vanilla_async import Request, ServerConfig, respond, sleep
from vanilla_async.routing import Router
from vanilla_async.streaming import measured

access_log = logging.getLogger("examples.middleware.access")

Result = Optional[Generator[Any, Any, Any]]
AnyHandler = Callable[..., Result]  # (req, out) or (req, out, params): wrappers pass extra args through
Middleware = Callable[[AnyHandler], AnyHandler]


class User(NamedTuple):
    name: str
    role: str


TOKENS: dict[str, User] = {"alice-token": User("alice", "admin"), "bob-token": User("bob", "reader")}


def user_of(req: Request) -> User | None:
    """The user whose bearer token the request carries (a pure function of the request, so every
    layer can ask without passing state along)."""
    value = req.header(b"authorization")
    if value is None or value[:7].lower() != b"bearer ":
        return None
    token = value[7:].strip()
    for known, user in TOKENS.items():  # constant-time compare against each known token
        if hmac.compare_digest(token, known.encode()):
            return user
    return None


def send_json(out: bytearray, status: int, doc: Any, headers: list[tuple[str, str]] | None = None) -> None:
    respond(out, status, json.dumps(doc), content_type=b"application/json", headers=headers or ())


# -- middleware -----------------------------------------------------------------------------------------
def compose(handler: AnyHandler, *middlewares: Middleware) -> AnyHandler:
    """``compose(h, a, b)`` is ``a(b(h))``: ``a`` sees the request first and the response last."""
    for middleware in reversed(middlewares):
        handler = middleware(handler)
    return handler


def bearer_auth(handler: AnyHandler) -> AnyHandler:
    """401 unless the request carries a known bearer token."""
    def wrapper(req: Request, out: bytearray, *rest: Any) -> Result:
        if user_of(req) is None:
            send_json(out, 401, {"error": "a valid bearer token is required (Authorization: Bearer ...)"},
                      headers=[("WWW-Authenticate", 'Bearer realm="examples"')])
            return None
        return handler(req, out, *rest)
    return wrapper


def require_role(role: str) -> Middleware:
    """403 unless the authenticated user has ``role`` (put it inside `bearer_auth`)."""
    def middleware(handler: AnyHandler) -> AnyHandler:
        def wrapper(req: Request, out: bytearray, *rest: Any) -> Result:
            user = user_of(req)
            if user is None or user.role != role:
                send_json(out, 403, {"error": f"this needs the {role!r} role"})
                return None
            return handler(req, out, *rest)
        return wrapper
    return middleware


def access_logged(handler: AnyHandler) -> AnyHandler:
    """Log one line per request when its response is complete (sync or generator:
    `vanilla_async.streaming.measured`)."""
    def log_line(req: Request, status: int, size: int, outcome: str, started: float) -> None:
        user = user_of(req)
        access_log.info("%s %s %s %d %.1fms user=%s", req.method.decode("latin-1"), req.path.decode("latin-1"),
                        status or "-", size, (time.perf_counter() - started) * 1000, user.name if user else "-")

    wrapped: AnyHandler = measured(handler, log_line)
    return wrapped


# -- the application ------------------------------------------------------------------------------------
def not_found(req: Request, out: bytearray) -> None:
    send_json(out, 404, {"error": f"nothing at {req.path.decode('latin-1')}"})


router = Router(not_found=not_found)


@router.get("/")
def home(req: Request, out: bytearray) -> None:
    respond(out, 200, b"hello\n")


def me(req: Request, out: bytearray) -> None:
    user = user_of(req)
    assert user is not None  # bearer_auth ran first
    send_json(out, 200, {"user": user.name, "role": user.role})


def slow(req: Request, out: bytearray) -> Generator[Any, Any, None]:
    yield sleep(0.02)
    send_json(out, 200, {"slept_ms": 20})


def stats(req: Request, out: bytearray) -> None:
    send_json(out, 200, {"users": len(TOKENS)})


router.add("GET", "/api/me", compose(me, bearer_auth))
router.add("GET", "/api/slow", compose(slow, bearer_auth))
router.add("GET", "/admin/stats", compose(stats, bearer_auth, require_role("admin")))

app = compose(router, access_logged)
config = ServerConfig(handler=app, port=8080)
