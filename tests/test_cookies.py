"""vanilla_async.cookies: Cookie parsing, Set-Cookie building, signed values — with real cookie clients."""

from __future__ import annotations

import http.cookiejar
import http.cookies
import json
import urllib.request
from datetime import datetime, timedelta, timezone

import pytest

from vanilla_async import ConfigError, Request, respond
from vanilla_async.cookies import CookieError, Signer, delete_cookie, parse_cookie_header, parse_cookies, set_cookie
from vanilla_async.testing import serve

SECRET = b"0123456789abcdef0123456789abcdef"


def handler(req: Request, out: bytearray) -> None:
    if req.path == b"/set":
        respond(out, 200, b"set", headers=[set_cookie("theme", "dark", max_age=60),
                                           set_cookie("lang", "en", path="/", httponly=False, samesite="Strict")])
    elif req.path == b"/clear":
        respond(out, 200, b"cleared", headers=[delete_cookie("theme")])
    else:
        respond(out, 200, json.dumps(parse_cookies(req)), content_type=b"application/json")


def test_a_real_cookie_jar_stores_and_sends_back_what_we_set() -> None:
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with serve(handler) as server:
        with opener.open(f"{server.url}/set", timeout=5) as r:
            assert r.read() == b"set"
        assert sorted(c.name for c in jar) == ["lang", "theme"]
        with opener.open(f"{server.url}/show", timeout=5) as r:
            assert json.loads(r.read()) == {"theme": "dark", "lang": "en"}
        with opener.open(f"{server.url}/clear", timeout=5) as r:
            r.read()
        assert [c.name for c in jar] == ["lang"]  # Max-Age=0 removed it
        with opener.open(f"{server.url}/show", timeout=5) as r:
            assert json.loads(r.read()) == {"lang": "en"}


def test_parsing_is_tolerant_of_malformed_pairs() -> None:
    header = b'a=1; junk; =nameless; b="quoted"; c=x=y;  d = spaced ; bad name=1; a=2; e=; f=\xff; g=\xc3\xa9'
    assert parse_cookie_header(header) == {"a": "1", "b": "quoted", "c": "x=y", "d": "spaced", "e": "", "g": "é"}
    assert parse_cookie_header(None) == {} and parse_cookie_header("") == {}
    assert parse_cookie_header("k=v") == {"k": "v"}


def test_several_cookie_fields_are_joined_over_a_socket() -> None:
    with serve(handler) as server:
        r = server.request(b"GET /show HTTP/1.1\r\nHost: t\r\nCookie: a=1; b=2\r\nCookie: c=3; a=9\r\n\r\n")
        assert json.loads(r.body) == {"a": "1", "b": "2", "c": "3"}
        r = server.request(b"GET /show HTTP/1.1\r\nHost: t\r\nCookie: ;;; =; x\r\n\r\n")
        assert r.status == 200 and json.loads(r.body) == {}


def test_set_cookie_attributes_parse_back_with_the_stdlib() -> None:
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    name, value = set_cookie("sid", "abc123", max_age=3600, expires=when, path="/app", domain="example.com",
                             secure=True, httponly=True, samesite="None")
    assert name == "Set-Cookie"
    assert value == ("sid=abc123; Path=/app; Domain=example.com; Max-Age=3600; Expires=Wed, 02 Jan 2030 03:04:05 GMT; "
                     "Secure; HttpOnly; SameSite=None")
    morsel = http.cookies.SimpleCookie(value)["sid"]
    assert (morsel.value, morsel["path"], morsel["domain"], morsel["max-age"]) == ("abc123", "/app", "example.com", "3600")
    assert morsel["secure"] and morsel["httponly"] and morsel["samesite"] == "None"
    assert set_cookie("a", "b", path=None, httponly=False, samesite=None) == ("Set-Cookie", "a=b")
    assert set_cookie("a", '"q"')[1].startswith('a="q";')
    expires = set_cookie("a", "b", expires=0)[1]
    assert "Expires=Thu, 01 Jan 1970 00:00:00 GMT" in expires
    local = datetime(2030, 1, 2, 4, 4, 5, tzinfo=timezone(timedelta(hours=1)))
    assert "Expires=Wed, 02 Jan 2030 03:04:05 GMT" in set_cookie("a", "b", expires=local)[1]


@pytest.mark.parametrize("kwargs, message", [
    ({"name": "bad name", "value": "v"}, "must be a non-empty token"),
    ({"name": "", "value": "v"}, "must be a non-empty token"),
    ({"name": "a;b", "value": "v"}, "must be a non-empty token"),
    ({"name": "n", "value": "a b"}, "encode it first"),
    ({"name": "n", "value": "a;b"}, "encode it first"),
    ({"name": "n", "value": "a,b"}, "encode it first"),
    ({"name": "n", "value": "a\r\nSet-Cookie: x=y"}, "encode it first"),
    ({"name": "n", "value": "caf\u00e9"}, "encode it first"),
    ({"name": "n", "value": '"unbalanced'}, "encode it first"),
    ({"name": "n", "value": "v", "path": "/a;b"}, "Path"),
    ({"name": "n", "value": "v", "path": "relative"}, "must start with '/'"),
    ({"name": "n", "value": "v", "domain": "x.com\r\n"}, "Domain"),
    ({"name": "n", "value": "v", "domain": ""}, "may not be empty"),
    ({"name": "n", "value": "v", "samesite": "None"}, "requires secure=True"),
    ({"name": "n", "value": "v", "samesite": "Sometimes"}, "SameSite must be"),
    ({"name": "n", "value": "v", "max_age": 1.5}, "Max-Age must be an int"),
    ({"name": "n", "value": "v", "expires": datetime(2030, 1, 1)}, "naive datetime"),
    ({"name": "__Secure-x", "value": "v"}, "secure=True"),
    ({"name": "__Host-x", "value": "v", "secure": True, "domain": "x.com"}, "__Host- prefix"),
])
def test_set_cookie_refuses_unsafe_input(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(CookieError, match=message):
        set_cookie(**kwargs)  # type: ignore[arg-type]


def test_signed_values_round_trip_and_reject_tampering() -> None:
    signer = Signer(SECRET)
    token = signer.sign("session", "alice|admin", now=1_000_000)
    set_cookie("session", token)  # a valid cookie value as is
    assert signer.unsign("session", token) == "alice|admin"
    assert signer.unsign("session", token, max_age=60, now=1_000_030) == "alice|admin"
    assert signer.unsign("session", token, max_age=60, now=1_000_061) is None  # too old
    assert signer.unsign("other", token) is None  # bound to the cookie's name
    value, stamp, mac = token.split(".")
    forged = Signer(SECRET).sign("session", "mallory|admin", now=1_000_000).split(".")[0]
    assert signer.unsign("session", f"{forged}.{stamp}.{mac}") is None  # swapped value
    assert signer.unsign("session", f"{value}.{int(stamp, 16) + 999:x}.{mac}") is None  # extended timestamp
    assert signer.unsign("session", f"{value}.{stamp}.{mac[:-2]}AA") is None
    for junk in ("", ".", "..", "a.b", "a.b.c", "é.é.é", "x" * 10_000, f"{value}.{stamp}.!!!"):
        assert signer.unsign("session", junk) is None
    assert Signer(b"another secret that is 32 bytes!").unsign("session", token) is None
    assert Signer(SECRET, salt=b"csrf").unsign("session", token) is None


def test_key_rotation_accepts_old_secrets_but_signs_with_the_new_one() -> None:
    old = Signer(SECRET)
    rotated = Signer(b"N" * 32, old_secrets=[SECRET])
    assert rotated.unsign("s", old.sign("s", "v")) == "v"
    assert old.unsign("s", rotated.sign("s", "v")) is None


def test_signer_needs_a_long_secret() -> None:
    with pytest.raises(ConfigError, match="at least 32 bytes"):
        Signer(b"short")
    with pytest.raises(ConfigError):
        Signer(SECRET, old_secrets=["short"])
