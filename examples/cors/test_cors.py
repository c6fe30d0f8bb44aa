"""examples.cors over real sockets: preflights, actual requests, streamed responses, bad config."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any, Generator

import pytest

from examples.cors import CorsConfigError, CorsPolicy, app, make_config, policy_from_env
from vanilla_async import Request, respond, sleep
from vanilla_async.testing import Client, Response, ServerProcess, serve

ROOT = Path(__file__).resolve().parents[2]
SITE = b"https://app.example.com"
POLICY = CorsPolicy.of(
    [SITE.decode(), "http://localhost:3000"], methods=("GET", "POST", "DELETE"),
    headers=("Content-Type", "X-Request-Id"), expose=("X-Total-Count",), credentials=True, max_age=300,
)
CORS_NAMES = (b"access-control-allow-origin", b"access-control-allow-methods", b"access-control-allow-headers",
              b"access-control-max-age", b"access-control-allow-credentials", b"access-control-expose-headers")


def preflight(origin: bytes | None, method: bytes = b"POST", headers: bytes | None = None) -> bytes:
    raw = b"OPTIONS /api/items HTTP/1.1\r\nHost: t\r\nAccess-Control-Request-Method: " + method + b"\r\n"
    if origin is not None:
        raw += b"Origin: " + origin + b"\r\n"
    if headers is not None:
        raw += b"Access-Control-Request-Headers: " + headers + b"\r\n"
    return raw + b"\r\n"


def get(path: bytes = b"/api/items", origin: bytes | None = None) -> bytes:
    return b"GET " + path + b" HTTP/1.1\r\nHost: t\r\n" + (b"Origin: " + origin + b"\r\n" if origin else b"") + b"\r\n"


def cors_headers(r: Response) -> dict[bytes, bytes]:
    return {k: v for k, v in r.headers if k in CORS_NAMES}


def test_an_allowed_preflight_gets_204_with_every_cors_header() -> None:
    with serve(make_config(POLICY)) as server:
        r = server.request(preflight(SITE, b"POST", b"content-type, X-REQUEST-ID"))
    assert r.status == 204 and r.body == b"" and r.header("content-length") is None
    assert cors_headers(r) == {
        b"access-control-allow-origin": SITE,  # echoed, never "*" with credentials
        b"access-control-allow-methods": b"GET, POST, DELETE",
        b"access-control-allow-headers": b"content-type, x-request-id",
        b"access-control-allow-credentials": b"true",
        b"access-control-max-age": b"300",
    }
    assert r.header("vary") == b"Origin"


@pytest.mark.parametrize("raw, reason", [
    (preflight(b"https://evil.example"), b"origin 'https://evil.example' is not allowed"),
    (preflight(b"https://app.example.com.evil.example"), b"is not allowed"),
    (preflight(b"null"), b"origin 'null' is not allowed"),
    (preflight(SITE, b"PUT"), b"method 'PUT' is not allowed for 'https://app.example.com'"),
    (preflight(SITE, b"post"), b"method 'post' is not allowed"),  # methods are case-sensitive
    (preflight(SITE, b"POST", b"content-type, x-evil"), b"request header 'x-evil' is not allowed"),
])
def test_a_refused_preflight_is_403_without_cors_headers(raw: bytes, reason: bytes) -> None:
    with serve(make_config(POLICY)) as server:
        client = server.connect()
        client.send(raw)
        r = client.read_response(b"OPTIONS")
        assert r.status == 403 and cors_headers(r) == {} and r.header("vary") == b"Origin"
        assert r.body.startswith(b"CORS preflight refused: ") and reason in r.body
        client.send(raw)  # the connection stays usable
        assert client.read_response(b"OPTIONS").status == 403


def test_a_preflight_without_origin_is_a_400_and_a_plain_options_reaches_the_app() -> None:
    with serve(make_config(POLICY)) as server:
        assert server.request(preflight(None)).status == 400
        r = server.request(b"OPTIONS /api/items HTTP/1.1\r\nHost: t\r\nOrigin: " + SITE + b"\r\n\r\n")
        assert r.status == 204 and r.header("allow") == b"GET, HEAD, POST, OPTIONS"
        assert r.header("access-control-allow-origin") == SITE and r.header("access-control-allow-methods") is None


def test_actual_requests_get_allow_origin_only_for_allowed_origins() -> None:
    with serve(make_config(POLICY)) as server:
        allowed = server.request(get(origin=SITE))
        other = server.request(get(origin=b"https://evil.example"))
        none = server.request(get())
    assert allowed.status == 200 and json.loads(allowed.body)[0]["name"] == "apple"
    assert cors_headers(allowed) == {
        b"access-control-allow-origin": SITE, b"access-control-allow-credentials": b"true",
        b"access-control-expose-headers": b"X-Total-Count",
    }
    assert allowed.header("x-total-count") == b"2" and allowed.header("content-type") == b"application/json"
    assert allowed.raw.startswith(b"HTTP/1.1 200 OK\r\nAccess-Control-Allow-Origin: https://app.example.com\r\n")
    for r in (other, none):
        assert r.status == 200 and r.body == allowed.body and cors_headers(r) == {}
    for r in (allowed, other, none):
        assert r.header("vary") == b"Origin"  # the answer depends on Origin: caches must know


def test_pipelined_requests_each_get_their_own_headers() -> None:
    with serve(make_config(POLICY)) as server:
        responses = server.pipeline([
            get(origin=SITE), get(origin=b"https://evil.example"), get(origin=b"http://localhost:3000"),
            b"POST /api/items HTTP/1.1\r\nHost: t\r\nOrigin: http://localhost:3000\r\nContent-Length: 9\r\n\r\n{\"id\": 3}",
        ])
    assert [r.header("access-control-allow-origin") for r in responses] == [
        SITE, None, b"http://localhost:3000", b"http://localhost:3000"]
    assert responses[3].status == 201 and json.loads(responses[3].body) == {"id": 3}


def test_a_streamed_response_gets_the_headers_too() -> None:
    with serve(make_config(POLICY)) as server:
        r = server.request(get(b"/api/stream", SITE))
    assert r.status == 200 and r.body == b"tick 0\ntick 1\ntick 2\n"
    assert r.header("access-control-allow-origin") == SITE and r.header("transfer-encoding") == b"chunked"


def late_head(req: Request, out: bytearray) -> Generator[Any, Any, None] | None:
    """A generator handler that parks before writing anything."""
    if req.path == b"/late":
        return _late(out)
    return app(req, out)


def _late(out: bytearray) -> Generator[Any, Any, None]:
    yield sleep(0.01)
    yield sleep(0.01)
    respond(out, 200, b"late\n")


def test_a_generator_that_writes_its_head_after_parking() -> None:
    with serve(make_config(POLICY, late_head)) as server:
        client = server.connect()
        client.send(get(b"/late", SITE) + get(b"/late", b"https://evil.example"))
        first, second = client.read_responses(2)
    assert first.body == b"late\n" and first.header("access-control-allow-origin") == SITE
    assert second.body == b"late\n" and second.header("access-control-allow-origin") is None
    assert second.header("vary") == b"Origin"


def test_a_wildcard_policy_says_star_and_needs_no_vary() -> None:
    with serve(make_config(CorsPolicy.of(["*"]))) as server:
        pre = server.request(preflight(b"https://anyone.example", b"GET"))
        r = server.request(get(origin=b"https://anyone.example"))
    assert pre.status == 204 and pre.header("access-control-allow-origin") == b"*" and pre.header("vary") is None
    assert pre.header("access-control-allow-credentials") is None
    assert r.header("access-control-allow-origin") == b"*" and r.header("vary") is None


@pytest.mark.parametrize("origins, kwargs, message", [
    (["*"], {"credentials": True}, "'\\*' with credentials is refused"),
    (["*", "https://a.example"], {}, "'\\*' already allows every origin"),
    (["https://a.example/"], {}, "drop the trailing slash: 'https://a.example'"),
    (["https://A.example"], {}, "browsers send it lower-case: 'https://a.example'"),
    (["https://a.example/app"], {}, "is not scheme://host\\[:port\\]"),
    (["ftp://a.example"], {}, "is not scheme://host"),
    (["null"], {}, "origin 'null' must not be allowed"),
    ("https://a.example", {}, "origins must be a list"),
    (["https://a.example"], {"headers": ["bad header"]}, "'bad header' is not a valid method or header name"),
    (["https://a.example"], {"max_age": -1}, "max_age must be a whole number of seconds >= 0"),
])
def test_a_bad_policy_says_what_is_wrong(origins: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(CorsConfigError, match=message):
        CorsPolicy.of(origins, **kwargs)


def test_policy_from_the_environment() -> None:
    policy = policy_from_env({"CORS_ORIGINS": "https://a.example, http://localhost:8000", "CORS_CREDENTIALS": "1"})
    assert policy.origins == {"https://a.example", "http://localhost:8000"} and policy.credentials
    assert not policy_from_env({}).credentials
    with pytest.raises(CorsConfigError):
        policy_from_env({"CORS_ORIGINS": "*", "CORS_CREDENTIALS": "1"})


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_a_preflight_with_curl() -> None:
    with serve(make_config(POLICY)) as server:
        done = subprocess.run(
            ["curl", "-s", "-i", "--max-time", "5", "-X", "OPTIONS", "-H", "Origin: https://app.example.com",
             "-H", "Access-Control-Request-Method: DELETE", server.url + "/api/items"],
            capture_output=True, timeout=10, check=True)
    head = done.stdout.lower()
    assert head.startswith(b"http/1.1 204 no content\r\n")
    assert b"\r\naccess-control-allow-origin: https://app.example.com\r\n" in head
    assert b"\r\naccess-control-allow-methods: get, post, delete\r\n" in head


def test_runs_as_a_module() -> None:
    env = {"CORS_ORIGINS": "https://app.example.com"}
    with ServerProcess("-m", "examples.cors", "--port", "0", "--workers", "1", cwd=ROOT, env=env) as proc:
        with Client(("127.0.0.1", proc.port())) as client:
            client.send(preflight(SITE, b"POST", b"content-type"))
            assert client.read_response(b"OPTIONS").header("access-control-allow-origin") == SITE
        assert proc.stop(signal.SIGTERM) == 0
