"""examples.redirects over real sockets: each status with curl and http.client, slash normalisation."""

from __future__ import annotations

import http.client
import shutil
import subprocess

import pytest

from examples.redirects import config
from vanilla_async.testing import TestServer, serve


def get(target: bytes, host: bytes = b"t", method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nContent-Length: 0\r\n\r\n"


def no_follow(server: TestServer, method: str, path: str, body: bytes | None = None) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    conn.request(method, path, body=body)
    response = conn.getresponse()
    response.read()
    conn.close()
    return response


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_each_status_redirects_to_new_with_the_query(status: int) -> None:
    with serve(config) as server:
        r = no_follow(server, "GET", f"/old/{status}?a=1&b=x%20y")
    assert r.status == status and r.getheader("Location") == "/new?a=1&b=x%20y"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("status, expected", [
    (301, "GET /new body="),          # curl, like browsers, turns a POST into GET on 301/302
    (302, "GET /new body="),
    (303, "GET /new body="),
    (307, "POST /new body=data"),
    (308, "POST /new body=data"),
])
def test_curl_follows_with_the_method_each_status_implies(status: int, expected: str) -> None:
    with serve(config) as server:
        result = subprocess.run(["curl", "-sS", "-L", "--max-time", "10", "-d", "data", f"{server.url}/old/{status}"],
                                capture_output=True, timeout=20, check=True)
    assert result.stdout.decode() == expected + "\n"


def test_unknown_statuses_are_404() -> None:
    with serve(config) as server:
        for target in (b"/old/200", b"/old/300", b"/old/304", b"/old/abc", b"/old/3070"):
            assert server.request(get(target)).status == 404, target


def test_post_redirect_get() -> None:
    with serve(config) as server:
        r = no_follow(server, "POST", "/form", b"x=1")
        assert r.status == 303 and r.getheader("Location") == "/done"


def test_relative_to_absolute() -> None:
    with serve(config) as server:
        r = server.request(get(b"/absolute", b"example.com:8080"))
        assert r.status == 302 and r.header("location") == b"http://example.com:8080/new?from=absolute"
        r = server.request(get(b"/absolute", b"[::1]"))
        assert r.header("location") == b"http://[::1]/new?from=absolute"
        r = server.request(get(b"/absolute", b"bad!host"))  # allowed by the framer, refused as a URL host
        assert r.status == 400


def test_trailing_slash_normalisation() -> None:
    with serve(config) as server:
        r = server.request(get(b"/docs?lang=en"))
        assert r.status == 308 and r.header("location") == b"/docs/?lang=en"
        assert server.request(get(b"/docs/")).body == b"docs index\n"
        r = server.request(get(b"/docs/intro/"))
        assert r.status == 308 and r.header("location") == b"/docs/intro"
        r = server.request(get(b"/docs/caf%C3%A9/"))
        assert r.header("location") == b"/docs/caf%C3%A9"
        assert server.request(get(b"/docs/intro")).body == b"docs page intro\n"


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_lands_on_the_normalised_url() -> None:
    with serve(config) as server:
        result = subprocess.run(["curl", "-sS", "-L", "--max-time", "10", "-w", "%{url_effective}",
                                 f"{server.url}/docs"], capture_output=True, timeout=20, check=True)
    assert result.stdout.decode() == f"docs index\n{server.url}/docs/"


@pytest.mark.parametrize("to, location", [
    ("/account", "/account"),
    ("//evil.example/", "/"),
    ("/%5Cevil.example", "/"),                      # decodes to /\evil.example: another host to a browser
    ("/a%20b?c=d", "/a%20b?c=d"),                  # decoded, then re-encoded for the Location
    ("https%3A%2F%2Fevil.example", "/"),
    ("%2F%5Cevil.example", "/"),
])
def test_go_only_redirects_to_local_paths(to: str, location: str) -> None:
    with serve(config) as server:
        r = server.request(get(b"/go?to=" + to.encode()))
    assert r.status == 302 and r.header("location") == location.encode()


def test_head_of_a_redirect_has_no_body() -> None:
    with serve(config) as server:
        r = server.request(get(b"/docs", method=b"HEAD"), method=b"HEAD")
    assert r.status == 308 and r.body == b"" and r.header("location") == b"/docs/"
