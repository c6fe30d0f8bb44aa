"""vanilla_async.routing.Router over real sockets: dispatch, params, 404/405, HEAD/OPTIONS, conflicts."""

from __future__ import annotations

import json
from typing import Any, Generator

import pytest

from vanilla_async import Request, respond, sleep
from vanilla_async.routing import Params, RouteConflict, RouteError, Router, decode_segment
from vanilla_async.streaming import end_chunked, start_chunked, write_chunk
from vanilla_async.testing import call, serve


def get(target: bytes, method: bytes = b"GET") -> bytes:
    body = b"Content-Length: 0\r\n" if method in (b"POST", b"PUT", b"PATCH") else b""
    return method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n" + body + b"\r\n"


def echo(tag: str) -> Any:
    def handler(req: Request, out: bytearray, params: Params | None = None) -> None:
        doc = {"tag": tag, "method": req.method.decode(), "params": dict(params or {})}
        respond(out, 200, json.dumps(doc), content_type=b"application/json")
    return handler


def make_router() -> Router:
    router = Router()
    router.add("GET", "/", echo("root"))
    router.add("GET", "/items", echo("list"))
    router.add("POST", "/items", echo("create"))
    router.add("GET", "/items/:id", echo("item"))
    router.add("PUT", "/items/:id", echo("replace"))
    router.add("DELETE", "/items/:id", echo("delete"))
    router.add("GET", "/users/new", echo("new-user"))
    router.add("GET", "/users/:uid/edit", echo("edit-user"))
    router.add("GET", "/users/:uid/posts/:post", echo("post"))
    router.add("GET", "/static/*path", echo("static"))
    router.add("GET", "/a/b/c", echo("abc"))
    return router


def doc_of(body: bytes) -> dict[str, Any]:
    value = json.loads(body)
    assert isinstance(value, dict)
    return value


def test_static_and_parameterised_routes_dispatch_over_a_socket(backend: str) -> None:
    with serve(make_router(), backend=backend) as server:
        cases = [
            (get(b"/"), "root", {}),
            (get(b"/items"), "list", {}),
            (get(b"/items", b"POST"), "create", {}),
            (get(b"/items/42"), "item", {"id": "42"}),
            (get(b"/items/42", b"PUT"), "replace", {"id": "42"}),
            (get(b"/items/42", b"DELETE"), "delete", {"id": "42"}),
            (get(b"/items/42?x=1"), "item", {"id": "42"}),
            (get(b"/users/new"), "new-user", {}),
            (get(b"/users/7/edit"), "edit-user", {"uid": "7"}),
            (get(b"/users/new/edit"), "edit-user", {"uid": "new"}),  # backtracks from the static "new"
            (get(b"/users/7/posts/x-y"), "post", {"uid": "7", "post": "x-y"}),
            (get(b"/static/css/site.css"), "static", {"path": "css/site.css"}),
            (get(b"/static/"), "static", {"path": ""}),
            (get(b"/a/b/c"), "abc", {}),
        ]
        responses = server.pipeline([raw for raw, _, _ in cases])
    for (raw, tag, params), r in zip(cases, responses):
        assert r.status == 200, (raw, r.body)
        doc = doc_of(r.body)
        assert (doc["tag"], doc["params"]) == (tag, params), raw


def test_parameters_are_percent_decoded_per_segment() -> None:
    with serve(make_router()) as server:
        r = server.request(get(b"/items/a%2Fb"))  # %2F stays inside the segment
        assert doc_of(r.body)["params"] == {"id": "a/b"}
        r = server.request(get(b"/items/caf%C3%A9%20au%20lait"))
        assert doc_of(r.body)["params"] == {"id": "café au lait"}
        r = server.request(get(b"/items/a+b"))  # "+" is literal in a path
        assert doc_of(r.body)["params"] == {"id": "a+b"}
        r = server.request(get(b"/static/a%2Fb/c%20d"))
        assert doc_of(r.body)["params"] == {"path": "a/b/c d"}


@pytest.mark.parametrize("target", [b"/items/%zz", b"/items/%4", b"/items/%C3%28", b"/static/ok/%ff"])
def test_malformed_or_non_utf8_parameters_get_400(target: bytes) -> None:
    with serve(make_router()) as server:
        client = server.connect()
        client.send(get(target))
        r = client.read_response()
        assert r.status == 400 and b"400 Bad Request" in r.body, r.body
        client.send(get(b"/items/1"))  # the connection stays usable
        assert client.read_response().status == 200


def test_unknown_paths_get_404_and_known_paths_with_other_methods_get_405() -> None:
    with serve(make_router()) as server:
        for target in (b"/nope", b"/items/1/extra", b"/items/", b"/users/7", b"/a/b", b"/a/b/c/d", b"/static"):
            r = server.request(get(target))
            assert r.status == 404, target
        r = server.request(get(b"/items", b"DELETE"))
        assert r.status == 405 and r.header("allow") == b"GET, HEAD, OPTIONS, POST"
        r = server.request(get(b"/items/9", b"PATCH"))
        assert r.status == 405 and r.header("allow") == b"DELETE, GET, HEAD, OPTIONS, PUT"
        assert b"/items/:id answers" in r.body


def test_automatic_head_and_options() -> None:
    router = make_router()
    router.add("GET", "/fixed/:n", lambda req, out, p: respond(out, 200, "fixed body " + p["n"]))
    with serve(router) as server:
        full = server.request(get(b"/fixed/5"))
        client = server.connect()
        client.send(get(b"/fixed/5", b"HEAD") + get(b"/items", b"HEAD") + get(b"/items/5", b"OPTIONS")
                    + get(b"/nope", b"HEAD") + get(b"/items/5"))
        head = client.read_response(b"HEAD")
        assert head.status == 200 and head.body == b""
        assert head.header("content-length") == full.header("content-length") == str(len(full.body)).encode()
        assert client.read_response(b"HEAD").status == 200
        options = client.read_response(b"OPTIONS")
        assert options.status == 204 and options.header("allow") == b"DELETE, GET, HEAD, OPTIONS, PUT"
        missing = client.read_response(b"HEAD")
        assert missing.status == 404 and missing.body == b"" and int(missing.header("content-length") or 0) > 0
        assert doc_of(client.read_response().body)["params"] == {"id": "5"}  # nothing leaked into the stream


def test_head_of_a_streaming_generator_route_stops_at_the_head() -> None:
    closed: list[str] = []
    router = Router()

    @router.get("/stream/:n")
    def stream(req: Request, out: bytearray, params: Params) -> Generator[Any, Any, None]:
        try:
            start_chunked(out)
            for i in range(int(params["n"])):
                write_chunk(out, b"tick %d\n" % i)
                yield sleep(0.01)
            end_chunked(out)
        finally:
            closed.append(params["n"])

    with serve(router) as server:
        r = server.request(get(b"/stream/3"))
        assert r.body == b"tick 0\ntick 1\ntick 2\n"
        client = server.connect()
        client.send(get(b"/stream/1000", b"HEAD") + get(b"/stream/2"))
        head = client.read_response(b"HEAD")
        assert head.status == 200 and head.body == b"" and head.header("transfer-encoding") == b"chunked"
        assert client.read_response().body == b"tick 0\ntick 1\n"
    assert closed == ["3", "1000", "2"]  # the HEAD's generator was closed, not run 1000 times


def test_generator_handlers_are_returned_through_the_router(backend: str) -> None:
    router = Router()

    @router.route("/slow/:ms", "GET", "POST")
    def slow(req: Request, out: bytearray, params: Params) -> Generator[Any, Any, None]:
        yield sleep(int(params["ms"]) / 1000)
        respond(out, 200, f"{req.method.decode()} slept {params['ms']}")

    with serve(router, backend=backend) as server:
        responses = server.pipeline([get(b"/slow/30"), get(b"/slow/1", b"POST"), get(b"/missing")])
    assert [(r.status, r.body) for r in responses][:2] == [(200, b"GET slept 30"), (200, b"POST slept 1")]
    assert responses[2].status == 404


def test_custom_not_found_and_disabled_auto_methods() -> None:
    def not_found(req: Request, out: bytearray) -> None:
        respond(out, 404, b'{"error": "no such thing"}', content_type=b"application/json")

    router = Router(not_found=not_found, auto_head=False, auto_options=False)
    router.add("GET", "/x", echo("x"))
    with serve(router) as server:
        assert server.request(get(b"/y")).body == b'{"error": "no such thing"}'
        r = server.request(get(b"/x", b"HEAD"), method=b"HEAD")
        assert r.status == 405 and r.header("allow") == b"GET"
        assert server.request(get(b"/x", b"OPTIONS")).status == 405


def test_explicit_head_overrides_the_automatic_one_in_either_order() -> None:
    router = Router()
    router.add("HEAD", "/h", lambda req, out: respond(out, 200, b"", headers=[("X-Explicit", "1")], head=True))
    router.add("GET", "/h", echo("get"))
    router.add("GET", "/h2/:p", echo("get"))
    router.add("HEAD", "/h2/:p", lambda req, out, p: respond(out, 200, b"", headers=[("X-Explicit", p["p"])],
                                                            head=True))
    assert b"X-Explicit: 1\r\n" in call(router, get(b"/h", b"HEAD"))
    assert b"X-Explicit: q\r\n" in call(router, get(b"/h2/q", b"HEAD"))


def test_route_decorators_register_and_return_the_function() -> None:
    router = Router()

    @router.post("/p")
    @router.put("/p")
    @router.patch("/p")
    @router.delete("/p")
    def p(req: Request, out: bytearray) -> None:
        respond(out, 200, req.method)

    assert [r.method for r in router.routes] == ["DELETE", "PATCH", "PUT", "POST"]
    assert all(r.handler is p for r in router.routes)
    assert call(router, get(b"/p", b"PATCH")).endswith(b"\r\n\r\nPATCH")


@pytest.mark.parametrize("first, second, message", [
    (("GET", "/x"), ("GET", "/x"), "already registered"),
    (("GET", "/x/:id"), ("GET", "/x/:id"), "already registered"),
    (("GET", "/x/:id"), ("PUT", "/x/:uid/y"), "use the same name"),
    (("GET", "/f/*rest"), ("GET", "/f/*path"), "use the same name"),
    (("GET", "/x/:id"), ("get", "/x/:id"), "already registered"),
])
def test_conflicting_registrations_raise_at_registration(first: tuple[str, str], second: tuple[str, str],
                                                         message: str) -> None:
    router = Router()
    router.add(*first, echo("a"))
    with pytest.raises(RouteConflict, match=message):
        router.add(*second, echo("b"))


@pytest.mark.parametrize("method, pattern, message", [
    ("GET", "x", "must be a str starting with '/'"),
    ("GET", "/a/:id/b/:id", "twice"),
    ("GET", "/a/*rest/b", "must be the last segment"),
    ("GET", "/a/:", "needs a name"),
    ("GET", "/a/:1x", "needs a name"),
    ("GET", "/a//b", "is empty"),
    ("GET", "/a b", "percent-encode"),
    ("GE T", "/a", "not a token"),
    ("", "/a", "not a token"),
])
def test_invalid_patterns_and_methods_raise(method: str, pattern: str, message: str) -> None:
    with pytest.raises(RouteError, match=message):
        Router().add(method, pattern, echo("x"))


def test_a_static_route_and_a_parameter_at_the_same_place_coexist() -> None:
    router = Router()
    router.add("GET", "/files/:name", echo("param"))
    router.add("GET", "/files/*rest", echo("rest"))
    router.add("GET", "/files/index", echo("static"))
    assert doc_of(call(router, get(b"/files/index")).split(b"\r\n\r\n")[1])["tag"] == "static"
    assert doc_of(call(router, get(b"/files/other")).split(b"\r\n\r\n")[1])["tag"] == "param"
    assert doc_of(call(router, get(b"/files/a/b")).split(b"\r\n\r\n")[1])["params"] == {"rest": "a/b"}


def test_non_origin_form_targets_are_404_not_a_crash() -> None:
    with serve(make_router()) as server:
        r = server.request(b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n")
        assert r.status == 404
        r = server.request(b"GET http://t/items HTTP/1.1\r\nHost: t\r\n\r\n")
        assert r.status in (400, 404)


def test_decode_segment() -> None:
    assert decode_segment(b"a%20b") == "a b"
    assert decode_segment(b"%E2%82%AC") == "€"
    with pytest.raises(ValueError):
        decode_segment(b"%G0")
    with pytest.raises(ValueError):
        decode_segment(b"%80")


def test_params_is_a_read_only_mapping() -> None:
    params = Params({"id": "1"})
    assert dict(params) == {"id": "1"} and len(params) == 1 and "id" in params
    assert not hasattr(params, "__setitem__")
