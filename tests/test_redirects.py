"""vanilla_async.redirects: statuses, Location encoding, header injection refused, real clients following."""

from __future__ import annotations

import http.client
import shutil
import subprocess
import urllib.request

import pytest

from vanilla_async import Request, respond
from vanilla_async.redirects import RedirectError, absolute_url, encode_location, is_local, redirect
from vanilla_async.testing import call, make_request, serve


def handler(req: Request, out: bytearray) -> None:
    path = req.path
    if path.startswith(b"/go/"):
        status = int(path[4:])
        redirect(out, "/landing", status, head=req.method == b"HEAD")
    elif path == b"/landing":
        body = bytes(req.body)
        respond(out, 200, req.method + b" landed " + body)
    elif path == b"/unicode":
        redirect(out, "/caf\u00e9 menu?q=a b&x=%41%zz#frag")
    else:
        respond(out, 404, b"no")


def test_each_redirect_status_over_a_socket() -> None:
    with serve(handler) as server:
        for status in (301, 302, 303, 307, 308):
            r = server.request(b"GET /go/%d HTTP/1.1\r\nHost: t\r\n\r\n" % status)
            assert r.status == status and r.header("location") == b"/landing"
            assert r.body == b"%d %s: /landing\n" % (status, r.reason)
            assert r.header("content-type") == b"text/plain; charset=utf-8"
        r = server.request(b"HEAD /go/308 HTTP/1.1\r\nHost: t\r\n\r\n", method=b"HEAD")
        assert r.status == 308 and r.body == b"" and r.header("location") == b"/landing"


def test_urllib_follows_a_redirect() -> None:
    with serve(handler) as server:
        with urllib.request.urlopen(f"{server.url}/go/301", timeout=5) as r:
            assert r.status == 200 and r.read() == b"GET landed " and r.url.endswith("/landing")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("status, expected", [
    (303, b"GET landed "),               # See Other: follow with GET
    (307, b"POST landed payload"),       # Temporary Redirect: same method and body
    (308, b"POST landed payload"),       # Permanent Redirect: same method and body
])
def test_curl_follows_post_redirects_with_the_right_method(status: int, expected: bytes) -> None:
    with serve(handler) as server:
        result = subprocess.run(["curl", "-sS", "-L", "--max-time", "10", "--data-binary", "payload",
                                 f"{server.url}/go/{status}"], capture_output=True, timeout=20, check=True)
    assert result.stdout == expected


def test_location_is_percent_encoded_once() -> None:
    with serve(handler) as server:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        try:
            conn.request("GET", "/unicode")
            response = conn.getresponse()
            response.read()
        finally:
            conn.close()
    assert response.status == 302
    assert response.getheader("Location") == "/caf%C3%A9%20menu?q=a%20b&x=%41%25zz#frag"


def test_encode_location() -> None:
    assert encode_location("/a/b?c=d&e=f#g") == "/a/b?c=d&e=f#g"
    assert encode_location("https://example.com/x y") == "https://example.com/x%20y"
    assert encode_location("/already%20encoded") == "/already%20encoded"
    assert encode_location("/50%") == "/50%25"
    assert encode_location('/<script>"{|}^`\\') == "/%3Cscript%3E%22%7B%7C%7D%5E%60%5C"
    assert encode_location("https://b\u00fccher.example/caf\u00e9") == "https://xn--bcher-kva.example/caf%C3%A9"
    assert encode_location("https://user@b\u00fccher.example:8443/") == "https://user@xn--bcher-kva.example:8443/"
    assert encode_location(b"/bytes") == "/bytes"
    assert encode_location("/caf\u00e9".encode()) == "/caf%C3%A9"
    with pytest.raises(RedirectError, match="not UTF-8"):
        encode_location(b"/\xff")


@pytest.mark.parametrize("location", ["/a\r\nSet-Cookie: x=y", "/a\nb", "/a\rb", "/a\x00b", "/a\tb", "/\x7f", ""])
def test_control_characters_in_the_location_are_refused(location: str) -> None:
    out = bytearray()
    with pytest.raises(RedirectError):
        redirect(out, location)
    assert out == b""  # nothing half-written


@pytest.mark.parametrize("status", [200, 300, 304, 305, 306, 404, 999])
def test_other_statuses_are_refused(status: int) -> None:
    with pytest.raises(RedirectError, match="301, 302, 303, 307, 308"):
        redirect(bytearray(), "/x", status)


def test_a_redirect_can_carry_extra_headers() -> None:
    raw = call(lambda req, out: redirect(out, "/", 303, headers=[("Set-Cookie", "a=b")]),
               b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert b"\r\nLocation: /\r\nSet-Cookie: a=b\r\n" in raw


def test_is_local() -> None:
    for good in ("/", "/account", "/a?next=//evil", "/a/b#c"):
        assert is_local(good), good
    for bad in ("//evil.example", "/\\evil.example", "https://evil.example", "javascript:alert(1)", "evil", "",
                "/a\r\nb", " /a"):
        assert not is_local(bad), bad


def test_absolute_url() -> None:
    def req(host: bytes, target: bytes = b"/dir/page") -> Request:
        return make_request(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")

    assert absolute_url(req(b"example.com"), "other") == "http://example.com/dir/other"
    assert absolute_url(req(b"example.com:8080"), "/x y", scheme="https") == "https://example.com:8080/x%20y"
    assert absolute_url(req(b"[::1]:8080"), "../up") == "http://[::1]:8080/up"
    assert absolute_url(req(b"example.com"), "https://elsewhere/") == "https://elsewhere/"
    # (the server's framer already refuses Host values outside RFC 3986's host[:port]; these pass it)
    for bad in (b"example.com:99999", b"-bad-.com", b"a!b.com", b"%41.com", b"a,b", b""):
        with pytest.raises(RedirectError):
            absolute_url(req(bad), "/x")
    with pytest.raises(RedirectError):
        absolute_url(req(b"example.com"), "/x", scheme="ftp")
