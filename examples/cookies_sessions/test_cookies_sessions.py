"""examples.cookies_sessions over real sockets, with a real cookie jar (urllib + http.cookiejar)."""

from __future__ import annotations

import http.cookiejar
import http.cookies
import time
import urllib.error
import urllib.request
from typing import Any

from examples.cookies_sessions import SESSION_COOKIE, SESSION_SECONDS, config, signer
from vanilla_async.testing import TestServer, serve


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def opener(jar: http.cookiejar.CookieJar, follow: bool = True) -> urllib.request.OpenerDirector:
    handlers: list[Any] = [urllib.request.HTTPCookieProcessor(jar)]
    if not follow:
        handlers.append(NoRedirect())
    return urllib.request.build_opener(*handlers)


def fetch(op: urllib.request.OpenerDirector, url: str, data: bytes | None = None) -> tuple[int, bytes, Any]:
    try:
        with op.open(url, data=data, timeout=5) as r:
            return r.status, r.read(), r.headers
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read(), exc.headers


def raw_get(server: TestServer, target: bytes, cookie: bytes | None = None) -> Any:
    extra = b"Cookie: " + cookie + b"\r\n" if cookie is not None else b""
    return server.request(b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n" + extra + b"\r\n")


def test_login_me_logout_with_a_cookie_jar() -> None:
    jar = http.cookiejar.CookieJar()
    browser = opener(jar)
    with serve(config) as server:
        assert fetch(browser, f"{server.url}/me")[0] == 401
        status, body, _ = fetch(browser, f"{server.url}/login", b"user=alice&password=wonderland")
        assert (status, body) == (200, b"hello, alice\n")  # followed the 303 to /me, cookie sent back
        assert [c.name for c in jar] == [SESSION_COOKIE]
        assert fetch(browser, f"{server.url}/me")[1] == b"hello, alice\n"
        status, body, _ = fetch(browser, f"{server.url}/logout", b"")
        assert status == 200 and b"<form" in body  # 303 to the login page
        assert list(jar) == []
        assert fetch(browser, f"{server.url}/me")[0] == 401


def test_the_session_cookie_has_the_safe_attributes() -> None:
    with serve(config) as server:
        status, _, headers = fetch(opener(http.cookiejar.CookieJar(), follow=False), f"{server.url}/login",
                                   b"user=bob&password=builder&next=/me")
    assert status == 303 and headers["Location"] == "/me"
    morsel = http.cookies.SimpleCookie(headers["Set-Cookie"])[SESSION_COOKIE]
    assert morsel["httponly"] and morsel["samesite"] == "Lax" and morsel["path"] == "/"
    assert morsel["max-age"] == str(SESSION_SECONDS)
    assert signer.unsign(SESSION_COOKIE, morsel.value) == "bob"


def test_wrong_credentials_and_open_redirects() -> None:
    no_follow = opener(http.cookiejar.CookieJar(), follow=False)
    with serve(config) as server:
        for body in (b"user=alice&password=nope", b"user=nobody&password=wonderland", b"user=alice", b""):
            status, text, headers = fetch(no_follow, f"{server.url}/login", body)
            assert status == 401 and headers["Set-Cookie"] is None and headers["WWW-Authenticate"]
        status, _, headers = fetch(no_follow, f"{server.url}/login",
                                   b"user=alice&password=wonderland&next=//evil.example/")
        assert status == 303 and headers["Location"] == "/me"
        assert fetch(no_follow, f"{server.url}/login", b"user=%zz")[0] == 400


def test_forged_expired_and_misnamed_cookies_are_refused() -> None:
    with serve(config) as server:
        good = signer.sign(SESSION_COOKIE, "alice").encode()
        assert raw_get(server, b"/me", b"session=" + good).body == b"hello, alice\n"
        assert raw_get(server, b"/me", b"other=1; session=" + good + b"; x").status == 200
        value, stamp, mac = good.split(b".")
        forged = signer.sign(SESSION_COOKIE, "mallory").encode().split(b".")[0]
        assert raw_get(server, b"/me", b"session=" + forged + b"." + stamp + b"." + mac).status == 401
        old = signer.sign(SESSION_COOKIE, "alice", now=time.time() - SESSION_SECONDS - 5).encode()
        assert raw_get(server, b"/me", b"session=" + old).status == 401
        assert raw_get(server, b"/me", b"session=" + signer.sign("csrf", "alice").encode()).status == 401
        assert raw_get(server, b"/me", b"session=alice").status == 401
        assert raw_get(server, b"/me", b"session").status == 401
