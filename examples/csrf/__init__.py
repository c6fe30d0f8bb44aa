"""examples.csrf — CSRF protection with a signed double-submit token.

``GET  /``          a form with a hidden ``csrf_token`` field; sets the ``csrf`` cookie (HttpOnly,
                    SameSite=Strict) unless the request already carries a valid one.
``POST /transfer``  ``amount=N`` (urlencoded) plus the token, in the ``csrf_token`` field or an
                    ``X-CSRF-Token`` header (for scripts). **200** ``transferred N`` when the token
                    matches the cookie; **403** when the cookie or the token is missing or wrong, or
                    when an ``Origin`` header names another site; **400** for a malformed form or
                    amount.

How it works (OWASP's "signed double-submit cookie"): the server makes a random token, puts it in
the page, and puts the same token *signed* (HMAC-SHA256, `vanilla_async.cookies.Signer`) in a
cookie. A forged cross-site form can make the browser send the cookie, but it cannot read it or the
page, so it cannot put the matching token in the body. The signature stops a subdomain that can
set cookies for us from planting a token pair of its own choosing (cookie tossing); SameSite=Strict
keeps the cookie off cross-site requests in modern browsers anyway, and the ``Origin`` check is a
third, independent layer. The comparison is constant-time (`hmac.compare_digest`). Stateless:
every worker checks tokens with the shared secret (``$CSRF_SECRET``, else generated before fork).

Run: ``python -m examples.csrf --port 8080 --workers 2`` and open http://127.0.0.1:8080/.
"""

from __future__ import annotations

import hmac
import os
import secrets
from html import escape

from vanilla_async import Request, ServerConfig, respond
from vanilla_async.cookies import Signer, parse_cookies, set_cookie
from vanilla_async.forms import FormError, FormLimits, parse_qs
from vanilla_async.routing import Router

COOKIE = "csrf"
FIELD = "csrf_token"
HEADER = b"x-csrf-token"
signer = Signer(os.environ.get("CSRF_SECRET") or secrets.token_bytes(32), salt=b"csrf")
LIMITS = FormLimits(max_fields=10, max_field_bytes=256)
HTML = b"text/html; charset=utf-8"


def cookie_token(req: Request) -> str | None:
    """The token inside a valid ``csrf`` cookie, or None."""
    signed = parse_cookies(req).get(COOKIE)
    return None if signed is None else signer.unsign(COOKIE, signed)


def same_origin(req: Request) -> bool:
    """False when the browser says the request comes from another origin (``Origin`` header)."""
    origin = req.header(b"origin")
    if origin is None:
        return True  # not sent by every client (e.g. curl, old browsers): the token decides
    host = req.header(b"host") or b""
    return origin in (b"http://" + host, b"https://" + host)


router = Router()


@router.get("/")
def form_page(req: Request, out: bytearray) -> None:
    token = cookie_token(req)
    headers = []
    if token is None:
        token = secrets.token_urlsafe(32)
        headers.append(set_cookie(COOKIE, signer.sign(COOKIE, token), httponly=True, samesite="Strict"))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Transfer</title></head><body>
<form method="post" action="/transfer">
  <input type="hidden" name="{FIELD}" value="{escape(token)}">
  <label>Amount <input name="amount" inputmode="numeric"></label>
  <button>Transfer</button>
</form></body></html>
"""
    respond(out, 200, page, content_type=HTML, headers=headers)


def forbidden(out: bytearray, why: str) -> None:
    respond(out, 403, f"403 Forbidden: {why}\n")


@router.post("/transfer")
def transfer(req: Request, out: bytearray) -> None:
    if not same_origin(req):
        forbidden(out, "cross-origin request refused (Origin does not match Host)")
        return
    expected = cookie_token(req)
    if expected is None:
        forbidden(out, "CSRF cookie missing or invalid; load the form first (GET /)")
        return
    try:
        form = parse_qs(req.body, LIMITS)
    except FormError as exc:
        respond(out, exc.status, exc.reason + "\n")
        return
    raw_header = req.header(HEADER)
    submitted = raw_header.decode("latin-1") if raw_header is not None else form.get(FIELD, "")
    if not hmac.compare_digest(submitted.encode("utf-8"), expected.encode("utf-8")):
        forbidden(out, "CSRF token missing or wrong; submit the form from GET / again")
        return
    amount = form.get("amount", "")
    if not (amount.isascii() and amount.isdigit() and 0 < len(amount) <= 9):
        respond(out, 400, b"amount must be a whole positive number (at most 9 digits)\n")
        return
    respond(out, 200, f"transferred {int(amount)}\n")


config = ServerConfig(handler=router, port=8080)
