"""examples.veb_like over real sockets: routes declared on a class, typed parameters, 404/405 from
the router underneath, and the module as a prefork process answering `http.client`."""

from __future__ import annotations

import json

from examples._smoke import running
from examples.veb_like import Blog, config
from vanilla_async.testing import serve


def get(target: str, method: str = "GET") -> bytes:
    return f"{method} {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def post(target: str, body: bytes, ctype: str = "application/x-www-form-urlencoded") -> bytes:
    return (f"POST {target} HTTP/1.1\r\nHost: t\r\nContent-Type: {ctype}\r\nContent-Length: {len(body)}\r\n\r\n"
            .encode() + body)


def test_the_class_declares_its_routes() -> None:
    assert ("/posts/:id", "GET", "post") in Blog.routes() and ("/posts/:id", "DELETE", "delete_post") in Blog.routes()
    with serve(config) as server:
        r = server.request(get("/"))
        assert r.status == 200 and b"GET /posts/:id -> post\n" in r.body and b"POST /posts -> create_post" in r.body


def test_posts_urlencoded_json_typed_ids() -> None:
    with serve(config) as server:
        r = server.request(post("/posts", b"title=Hi&body=first+post"))
        assert r.status == 201 and r.header("location") == b"/posts/1"
        r = server.request(post("/posts", json.dumps({"title": "Two"}).encode(), "application/json"))
        assert json.loads(r.body)["id"] == 2
        assert json.loads(server.request(get("/posts/1")).body) == {"id": 1, "title": "Hi", "body": "first post"}
        assert server.request(get("/posts/abc")).status == 404  # not an int: no match
        assert server.request(get("/posts/9")).status == 404
        assert server.request(get("/posts/2", "DELETE")).status == 204
        assert [p["id"] for p in json.loads(server.request(get("/posts")).body)] == [1]
        assert server.request(post("/posts", b"body=no+title")).status == 400


def test_str_parameters_and_the_router_underneath() -> None:
    with serve(config) as server:
        assert server.request(get("/hello/Ada%20L")).body == b"Hello, Ada L!\n"
        r = server.request(get("/posts", "PUT"))
        assert r.status == 405 and r.header("allow") == b"GET, HEAD, OPTIONS, POST"
        assert server.request(get("/nothing")).status == 404


def test_runs_as_a_module() -> None:
    with running("veb_like") as conn:
        conn.request("GET", "/hello/world")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b"Hello, world!\n")
