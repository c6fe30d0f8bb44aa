"""examples.csrf over real sockets: a browser-like client (cookie jar) vs forged requests."""

from __future__ import annotations

import http.cookiejar
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from examples.csrf import COOKIE, FIELD, config, signer
from vanilla_async.testing import TestServer, serve


class Browser:
    def __init__(self, server: TestServer) -> None:
        self.server = server
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def open(self, path: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
        request = urllib.request.Request(self.server.url + path, data=data, headers=headers or {})
        try:
            with self.opener.open(request, timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode()

    def token(self) -> str:
        status, page = self.open("/")
        assert status == 200
        match = re.search(rf'name="{FIELD}" value="([^"]+)"', page)
        assert match is not None, page
        return match.group(1)

    def cookie(self) -> str:
        return next(c.value for c in self.jar if c.name == COOKIE and c.value is not None)


def form(**fields: str) -> bytes:
    return urllib.parse.urlencode(fields).encode()


def test_the_form_round_trip_succeeds() -> None:
    with serve(config) as server:
        browser = Browser(server)
        token = browser.token()
        assert signer.unsign(COOKIE, browser.cookie()) == token
        assert browser.open("/transfer", form(amount="25", csrf_token=token)) == (200, "transferred 25\n")
        assert browser.token() == token  # a valid cookie is kept, not rotated on every page view
        status, body = browser.open("/transfer", form(amount="7"), {"X-CSRF-Token": token})
        assert (status, body) == (200, "transferred 7\n")


def test_the_cookie_is_httponly_and_samesite_strict() -> None:
    with serve(config) as server:
        r = server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    cookie = (r.header("set-cookie") or b"").decode()
    assert cookie.startswith(f"{COOKIE}=") and "HttpOnly" in cookie and "SameSite=Strict" in cookie


def test_forged_requests_get_403() -> None:
    with serve(config) as server:
        victim = Browser(server)
        token = victim.token()
        # A cross-site form: the browser sends the cookie, but the attacker cannot know the token.
        assert victim.open("/transfer", form(amount="1000"))[0] == 403
        assert victim.open("/transfer", form(amount="1000", csrf_token="guess"))[0] == 403
        assert victim.open("/transfer", form(amount="1000", csrf_token=token[:-1]))[0] == 403
        # The attacker's own valid pair does not match the victim's cookie.
        attacker = Browser(server)
        assert victim.open("/transfer", form(amount="1000", csrf_token=attacker.token()))[0] == 403
        # Right token, but the browser says the page was on another site.
        status, body = victim.open("/transfer", form(amount="1", csrf_token=token), {"Origin": "https://evil.example"})
        assert status == 403 and "cross-origin" in body


@pytest.mark.parametrize("cookie", [
    None,                                            # no cookie at all
    b"csrf=plain-token",                             # an unsigned (tossed) cookie
    b"csrf=" + signer.sign("session", "tok").encode(),   # signed for another cookie
], ids=["no-cookie", "unsigned", "signed-for-another-cookie"])  # (stable ids: the signature is random)
def test_missing_or_planted_cookies_get_403(cookie: bytes | None) -> None:
    body = b"amount=5&csrf_token=tok&csrf_token=plain-token"
    head = b"POST /transfer HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-www-form-urlencoded\r\n"
    if cookie is not None:
        head += b"Cookie: " + cookie + b"\r\n"
    with serve(config) as server:
        r = server.request(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
    assert r.status == 403 and b"CSRF cookie missing or invalid" in r.body


def test_bad_amounts_and_malformed_forms_get_400() -> None:
    with serve(config) as server:
        browser = Browser(server)
        token = browser.token()
        for amount in ("", "-5", "1.5", "abc", "9" * 10):
            assert browser.open("/transfer", form(amount=amount, csrf_token=token))[0] == 400, amount
        assert browser.open("/transfer", b"amount=%zz&csrf_token=" + token.encode())[0] == 400
        assert browser.open("/transfer", b"")[0] == 403  # no token submitted

        def same_origin_post(origin: str) -> Any:
            return browser.open("/transfer", form(amount="3", csrf_token=token), {"Origin": origin})

        assert same_origin_post(server.url)[0] == 200
