"""examples.auth — password login (argon2id) issuing JWTs (HS256), bearer-protected and API-key routes,
with the slow password hashing kept off the event loop.

``POST /login``     body ``{"username": "...", "password": "..."}`` → **200**
                    ``{"access_token": JWT, "token_type": "Bearer", "expires_in": 900}``; wrong user
                    or password → **401**; not that JSON → **400**; too many logins queued in this
                    worker → **503** with ``Retry-After``.
``GET /me``         ``Authorization: Bearer <JWT>`` → **200** ``{"user": ..., "expires": ...}``; missing,
                    expired, tampered or otherwise invalid → **401** with an RFC 6750
                    ``WWW-Authenticate: Bearer`` challenge (``error="invalid_token"`` and the reason).
``GET /api/report`` ``X-API-Key: <id>.<secret>`` → **200** ``{"owner": ...}``; else **401**.
``GET /healthz``    **200** ``ok`` — answered even while logins are hashing.

Every 401 carries a ``WWW-Authenticate`` challenge, as RFC 9110 §15.5.2 requires.

**Hashing off the loop.** argon2id takes tens of milliseconds and 64 MiB by design; on the
event loop it would stall every connection of the worker. ``/login`` runs the verification in the
worker's thread pool through `vanilla_async.offload.Offloader` and parks on a `ParkingLot` that the pool's
thread wakes with ``reactor.call_soon_threadsafe`` — see `vanilla_async.offload` for the mechanism, and
`credentials` for the password, token and API-key rules.

Run: ``python -m examples.auth --port 8080``. Environment, read at start: ``AUTH_JWT_SECRET`` (at
least 32 bytes; default a random secret per server start, shared by its workers — tokens die with
the server), ``AUTH_DEMO_PASSWORD`` (user ``alice``, default ``wonderland``), ``AUTH_API_KEY``
(default ``demo.0123456789abcdef``). Then::

    curl -s -d '{"username":"alice","password":"wonderland"}' localhost:8080/login
    curl -s -H "Authorization: Bearer $TOKEN" localhost:8080/me
    curl -s -H 'X-API-Key: demo.0123456789abcdef' localhost:8080/api/report
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Generator, Mapping

from argon2 import PasswordHasher

from reactor import Reactor, Token
from vanilla_async import Limits, Request, ServerConfig, StaticResponse, respond
from vanilla_async.offload import Offloader, OffloadRefused

from .credentials import ApiKeys, AuthConfigError, InvalidToken, Tokens, check_password, new_secret

__all__ = ("ApiKeys", "AuthConfigError", "AuthState", "InvalidToken",
           "Settings", "Tokens", "check_password", "config", "handler", "make_config", "settings_from_env")

REALM = 'realm="examples.auth"'
HEALTHY = StaticResponse(200, b"ok\n")
NOT_FOUND = StaticResponse(404, b"not found; try POST /login, GET /me, GET /api/report\n")


@dataclass(frozen=True)
class Settings:
    """Users (name → argon2 hash), tokens, API keys, and the password hasher (its parameters)."""

    users: Mapping[str, str]
    tokens: Tokens
    api_keys: ApiKeys
    hasher: PasswordHasher = field(default_factory=PasswordHasher)
    threads: int = 2  #: hashing threads per worker
    max_queued: int = 30  #: logins waiting for a hashing thread per worker before 503
    dummy_hash: str = ""  #: checked for unknown users (made from ``hasher`` when empty)

    def __post_init__(self) -> None:
        if not self.dummy_hash:
            object.__setattr__(self, "dummy_hash", self.hasher.hash(new_secret().hex()))


class AuthState:
    """``req.state``: the settings and, once the worker started, its offloader."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.offloader: Offloader | None = None


def _json(out: bytearray, status: int, payload: object, headers: list[tuple[str, str]] | None = None) -> None:
    respond(out, status, json.dumps(payload) + "\n", content_type=b"application/json", headers=headers or [])


def _unauthorized(out: bytearray, scheme: str, reason: str = "") -> None:
    challenge = f"{scheme} {REALM}"
    if reason:  # RFC 6750 §3: error and description only when a credential was presented
        # error_description allows printable ASCII except '"' and '\\' (RFC 6750 §3)
        text = "".join(c if " " <= c <= "~" and c not in '"\\' else "'" for c in reason)
        challenge += f', error="invalid_token", error_description="{text}"'
    _json(out, 401, {"error": reason or "authentication required"}, [("WWW-Authenticate", challenge)])


def handler(req: Request, out: bytearray) -> Generator[Token, Any, None] | None:
    path, method = req.path, req.method
    state: AuthState = req.state
    if path == b"/login":
        if method != b"POST":
            respond(out, 405, b"use POST /login\n", headers=[("Allow", "POST")])
            return None
        return login(req, out, state)
    if path == b"/me":
        me(req, out, state.settings)
    elif path == b"/api/report":
        report(req, out, state.settings)
    elif path == b"/healthz":
        HEALTHY.append_to(out)
    else:
        NOT_FOUND.append_to(out)
    return None


def _credentials(body: bytes) -> tuple[str, str] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        return None
    return username, password


def login(req: Request, out: bytearray, state: AuthState) -> Generator[Token, Any, None]:
    """Verify the password in a thread (the worker serves others meanwhile), then issue a token."""
    settings = state.settings
    credentials = _credentials(bytes(req.body))
    if credentials is None:
        respond(out, 400, b'the body must be JSON: {"username": "...", "password": "..."}\n')
        return
    username, password = credentials
    offloader = state.offloader
    if offloader is None:
        respond(out, 503, b"the worker is not started\n", headers=[("Retry-After", "1")])
        return
    stored = settings.users.get(username)
    try:
        ok = yield from offloader.run(check_password, settings.hasher, stored or settings.dummy_hash, password)
    except OffloadRefused as exc:
        respond(out, 503, f"busy, retry shortly: {exc}\n", headers=[("Retry-After", "1")])
        return
    if not ok or stored is None:
        _unauthorized(out, "Bearer", "")
        return
    token = settings.tokens.issue(username)
    _json(out, 200, {"access_token": token, "token_type": "Bearer", "expires_in": settings.tokens.ttl},
          [("Cache-Control", "no-store")])


def me(req: Request, out: bytearray, settings: Settings) -> None:
    authorization = req.header(b"authorization")
    scheme, _, token = (authorization or b"").partition(b" ")
    if authorization is None or scheme.lower() != b"bearer" or not token.strip():
        _unauthorized(out, "Bearer")
        return
    try:
        claims = settings.tokens.verify(token.strip().decode("latin-1"))
    except InvalidToken as exc:
        _unauthorized(out, "Bearer", str(exc))
        return
    _json(out, 200, {"user": claims["sub"], "expires": claims["exp"]})


def report(req: Request, out: bytearray, settings: Settings) -> None:
    key = req.header(b"x-api-key")
    owner = settings.api_keys.owner(key) if key else None
    if owner is None:
        _unauthorized(out, "ApiKey")
        return
    _json(out, 200, {"owner": owner, "report": [1, 2, 3]})


def on_worker_start(state: AuthState, reactor: Reactor) -> None:
    settings = state.settings
    state.offloader = Offloader(reactor, threads=settings.threads, max_queued=settings.max_queued, name="argon2")


def on_worker_stop(state: AuthState) -> None:
    if state.offloader is not None:
        state.offloader.close()


def settings_from_env(env: Mapping[str, str] = os.environ, hasher: PasswordHasher | None = None) -> Settings:
    """The demo's settings from ``AUTH_JWT_SECRET``, ``AUTH_DEMO_PASSWORD`` and ``AUTH_API_KEY``."""
    hasher = hasher or PasswordHasher()
    secret = env.get("AUTH_JWT_SECRET", "").encode() or new_secret()
    users = {"alice": hasher.hash(env.get("AUTH_DEMO_PASSWORD", "wonderland"))}
    api_keys = ApiKeys({env.get("AUTH_API_KEY", "demo.0123456789abcdef"): "demo"})
    return Settings(users=users, tokens=Tokens(secret), api_keys=api_keys, hasher=hasher)


def make_config(settings: Settings | None = None, **fields: Any) -> ServerConfig:
    """The example's config; ``settings=None`` reads the environment now (before the workers fork)."""
    chosen = settings or settings_from_env()

    def make_state() -> AuthState:
        return AuthState(chosen)

    fields.setdefault("port", 8080)
    fields.setdefault("limits", Limits(max_body_bytes=4096))  # a login body is small: 413 beyond
    return ServerConfig(handler=handler, make_state=make_state, on_worker_start=on_worker_start,
                        on_worker_stop=on_worker_stop, **fields)


config = make_config()
