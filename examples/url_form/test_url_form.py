"""examples.url_form over real sockets: urlencoded posts from urllib, values HTML-escaped."""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request

import pytest

from examples.url_form import config
from vanilla_async.testing import TestServer, serve


def submit(server: TestServer, body: bytes, content_type: str = "application/x-www-form-urlencoded") -> tuple[int, str]:
    request = urllib.request.Request(f"{server.url}/submit", data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


def test_the_form_page() -> None:
    with serve(config) as server:
        r = server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert r.status == 200 and r.header("content-type") == b"text/html; charset=utf-8"
    assert b'<form method="post" action="/submit">' in r.body and b'name="topic"' in r.body


def test_values_are_decoded_and_echoed_html_escaped() -> None:
    body = urllib.parse.urlencode([("name", "<script>alert('x')</script> & Ann"), ("message", "line 1\nl\u00efne 2 \"q\""),
                                   ("topic", "news"), ("topic", "<b>offers</b>")]).encode()
    with serve(config) as server:
        status, html = submit(server, body)
    assert status == 200
    assert "<h1>Thanks, &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; Ann</h1>" in html
    assert "<pre>line 1\nlïne 2 &quot;q&quot;</pre>" in html
    assert "<li>news</li><li>&lt;b&gt;offers&lt;/b&gt;</li>" in html
    assert "<script>" not in html and "<b>" not in html


def test_plus_means_space_and_missing_topics() -> None:
    with serve(config) as server:
        status, html = submit(server, b"name=Ann+Lee&message=a%2Bb")
    assert status == 200 and "Thanks, Ann Lee" in html and "<pre>a+b</pre>" in html and "(none)" in html


@pytest.mark.parametrize("body, content_type, status, reason", [
    (b"name=%zz", "application/x-www-form-urlencoded", 400, "malformed percent-escape"),
    (b"name=%ff", "application/x-www-form-urlencoded", 400, "not valid UTF-8"),
    (b"message=hi", "application/x-www-form-urlencoded", 400, "name is required"),
    (b"name=" + b"x" * 2001, "application/x-www-form-urlencoded", 413, "max_field_bytes"),
    (b"&".join([b"topic=a"] * 51) + b"&name=x", "application/x-www-form-urlencoded", 413, "max_fields"),
    (b'{"name": "x"}', "application/json", 415, "x-www-form-urlencoded"),
])
def test_bad_submissions(body: bytes, content_type: str, status: int, reason: str) -> None:
    with serve(config) as server:
        got, html = submit(server, body, content_type)
    assert got == status and reason in html, html


def test_search_query_is_escaped() -> None:
    with serve(config) as server:
        r = server.request(b"GET /search?q=%3Cimg+src%3Dx%3E HTTP/1.1\r\nHost: t\r\n\r\n")
        assert r.status == 200 and b"<q>&lt;img src=x&gt;</q>" in r.body
        assert server.request(b"GET /search?q=%G1 HTTP/1.1\r\nHost: t\r\n\r\n").status == 400
        assert server.request(b"GET /submit HTTP/1.1\r\nHost: t\r\n\r\n").status == 405
