"""examples.cookies_sessions — log in, get a signed session cookie, read it back, log out.

``POST /login``   a urlencoded form ``user=...&password=...``. Right: **303** to ``/me`` with
                  ``Set-Cookie: session=<signed>; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax``.
                  Wrong: **401**. A ``next`` field that is a local path replaces ``/me`` (anything
                  else, e.g. ``//evil.example``, is ignored: no open redirect).
``GET  /me``      **200** ``hello, USER`` with a valid, unexpired session cookie; **401** otherwise
                  (missing, forged, signed for another cookie name, older than ``SESSION_SECONDS``).
``POST /logout``  **303** to ``/`` with a ``Set-Cookie`` that expires the session (Max-Age=0).
``GET  /``        a login form.

The session is *stateless*: the cookie carries the user name, HMAC-SHA256-signed with a timestamp
(`vanilla_async.cookies.Signer`), so every worker can check it without shared storage. The secret
comes from ``$SESSION_SECRET`` (at least 32 bytes), else is generated at import — before the
workers fork, so they all share it; restarting the server then logs everyone out. The cookie is
signed, not encrypted: never put secrets in it. HttpOnly keeps it from scripts; SameSite=Lax keeps
it off cross-site POSTs (CSRF on login/logout; see examples.csrf for tokens). Add ``secure=True``
behind HTTPS. Passwords are stored as PBKDF2 hashes and compared in constant time; an unknown user
costs the same hash so timing does not tell which users exist. (The hash blocks the worker for a
few milliseconds: fine for a demo; a busy site hashes off the event loop.)

Demo users: ``alice`` / ``wonderland``, ``bob`` / ``builder``.

Run: ``python -m examples.cookies_sessions --port 8080 --workers 2``, then
``curl -i -c jar -d 'user=alice&password=wonderland' localhost:8080/login`` and
``curl -b jar localhost:8080/me``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from html import escape

from vanilla_async import Request, ServerConfig, StaticResponse, respond
from vanilla_async.cookies import Signer, delete_cookie, parse_cookies, set_cookie
from vanilla_async.forms import FormError, FormLimits, parse_urlencoded
from vanilla_async.redirects import is_local, redirect
from vanilla_async.routing import Router

SESSION_COOKIE = "session"
SESSION_SECONDS = 3600
ITERATIONS = 20_000
_SALT = b"examples.cookies_sessions"


def _hash(password: str) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), _SALT, ITERATIONS)


USERS: dict[str, bytes] = {"alice": _hash("wonderland"), "bob": _hash("builder")}
_NOBODY = _hash(secrets.token_hex(16))

signer = Signer(os.environ.get("SESSION_SECRET") or secrets.token_bytes(32), salt=b"session")
FORM_LIMITS = FormLimits(max_fields=10, max_field_bytes=1024)
UNAUTHORIZED_HEADERS = [("WWW-Authenticate", 'Cookie realm="examples", form-action="/login", cookie-name="session"')]

LOGIN_PAGE = StaticResponse(200, """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in</title></head><body>
<form method="post" action="/login">
  <label>User <input name="user" autocomplete="username"></label>
  <label>Password <input name="password" type="password" autocomplete="current-password"></label>
  <button>Log in</button>
</form></body></html>
""", content_type=b"text/html; charset=utf-8")


def check_password(user: str, password: str) -> bool:
    expected = USERS.get(user, _NOBODY)
    return hmac.compare_digest(_hash(password), expected) and user in USERS


def session_user(req: Request) -> str | None:
    """The logged-in user of this request, or None."""
    token = parse_cookies(req).get(SESSION_COOKIE)
    if token is None:
        return None
    return signer.unsign(SESSION_COOKIE, token, max_age=SESSION_SECONDS)


router = Router()


@router.get("/")
def home(req: Request, out: bytearray) -> None:
    LOGIN_PAGE.append_to(out)


@router.post("/login")
def login(req: Request, out: bytearray) -> None:
    try:
        form = parse_urlencoded(req, FORM_LIMITS)
    except FormError as exc:
        respond(out, exc.status, exc.reason + "\n")
        return
    user = form.get("user", "")
    if not check_password(user, form.get("password", "")):
        respond(out, 401, b"wrong user name or password\n", headers=UNAUTHORIZED_HEADERS)
        return
    target = form.get("next", "/me")
    cookie = set_cookie(SESSION_COOKIE, signer.sign(SESSION_COOKIE, user), max_age=SESSION_SECONDS,
                        httponly=True, samesite="Lax")
    redirect(out, target if is_local(target) else "/me", 303, headers=[cookie])


@router.get("/me")
def me(req: Request, out: bytearray) -> None:
    user = session_user(req)
    if user is None:
        respond(out, 401, b"not logged in; POST /login first\n", headers=UNAUTHORIZED_HEADERS)
        return
    respond(out, 200, f"hello, {escape(user)}\n")


@router.post("/logout")
def logout(req: Request, out: bytearray) -> None:
    redirect(out, "/", 303, headers=[delete_cookie(SESSION_COOKIE)])


config = ServerConfig(handler=router, port=8080)
