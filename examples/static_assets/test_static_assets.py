"""examples.static_assets over real sockets: SPA fallback, immutable hashed assets, application/wasm."""

from __future__ import annotations

from examples.static_assets import PUBLIC, config
from vanilla_async.testing import Client, ServerProcess, serve

IMMUTABLE = b"public, max-age=31536000, immutable"


def get(target: bytes, *headers: bytes) -> bytes:
    return b"GET " + target + b" HTTP/1.1\r\nHost: t\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n"


def test_routes_fall_back_to_the_app_shell() -> None:
    shell = (PUBLIC / "index.html").read_bytes()
    with serve(config) as server:
        for target in (b"/", b"/settings/profile", b"/users/42", b"/deep/ly/nested/route"):
            r = server.request(get(target))
            assert (r.status, r.body) == (200, shell), target
            assert r.header("cache-control") == b"no-cache"
            assert r.header("content-type") == b"text/html; charset=utf-8"
        for target in (b"/missing.js", b"/assets/app.000000.js", b"/favicon.ico"):
            assert server.request(get(target)).status == 404, target
        assert server.request(get(b"/../x")).status == 400  # the fallback never hides a traversal


def test_hashed_assets_are_immutable_and_revalidate() -> None:
    with serve(config) as server:
        js = server.request(get(b"/assets/app.3f2a1c.js"))
        css = server.request(get(b"/assets/app.9d8e7f.css"))
        again = server.request(get(b"/assets/app.3f2a1c.js", b"If-None-Match: " + (js.header("etag") or b"")))
    assert js.header("cache-control") == IMMUTABLE and css.header("cache-control") == IMMUTABLE
    assert js.header("content-type") == b"text/javascript; charset=utf-8"
    assert css.header("content-type") == b"text/css; charset=utf-8"
    assert js.body == (PUBLIC / "assets" / "app.3f2a1c.js").read_bytes()
    assert again.status == 304 and again.header("cache-control") == IMMUTABLE


def test_wasm_module_and_type() -> None:
    with serve(config) as server:
        r = server.request(get(b"/assets/add.wasm"))
    assert r.status == 200 and r.header("content-type") == b"application/wasm"
    assert r.body[:8] == b"\x00asm\x01\x00\x00\x00" and b"add" in r.body and len(r.body) == 41


def test_as_a_process() -> None:
    with ServerProcess("-m", "examples.static_assets", "--port", "0", "--workers", "2") as proc:
        with Client(("127.0.0.1", proc.port())) as client:
            client.send(get(b"/some/route") + get(b"/assets/add.wasm"))
            assert b"app shell" in client.read_response().body
            assert client.read_response().header("content-type") == b"application/wasm"
        assert proc.stop() == 0
