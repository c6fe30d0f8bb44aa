"""vanilla_async.forms over real sockets: urlencoded and multipart bodies from http.client and curl."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
import tempfile
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vanilla_async import ConfigError, Limits, Request, respond
from vanilla_async.forms import (
    FormError,
    FormLimits,
    MultiDict,
    UploadedFile,
    parse_qs,
    parse_urlencoded,
    read_form,
    sanitize_filename,
)
from vanilla_async.testing import TestServer, make_request, serve

LIMITS = FormLimits(max_fields=20, max_field_bytes=100, max_file_bytes=300_000, max_total_bytes=400_000,
                    max_part_header_bytes=512, spool_threshold=1000)
BOUNDARY = "----vanillaBoundary7MA4YWxk"


def make_handler(limits: FormLimits = LIMITS, keep: list[UploadedFile] | None = None) -> Any:
    def handler(req: Request, out: bytearray) -> None:
        try:
            if req.path == b"/q":
                doc: dict[str, Any] = {"fields": parse_qs(req.query, limits).pairs}
            elif req.path == b"/urlencoded":
                doc = {"fields": parse_urlencoded(req, limits).pairs}
            else:
                with read_form(req, limits) as form:
                    doc = {"fields": form.fields.pairs, "files": [
                        {"name": f.name, "filename": f.filename, "type": f.content_type, "size": f.size,
                         "sha256": hashlib.sha256(f.read()).hexdigest(), "on_disk": f.on_disk}
                        for f in form.file_list]}
                    if keep is not None:
                        keep.extend(form.file_list)
        except FormError as exc:
            respond(out, exc.status, exc.reason + "\n")
            return
        respond(out, 200, json.dumps(doc), content_type=b"application/json")
    return handler


def post(server: TestServer, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def multipart(*parts: tuple[str, bytes], boundary: str = BOUNDARY, preamble: bytes = b"",
              epilogue: bytes = b"") -> bytes:
    """parts: (header lines joined with CRLF, content)."""
    out = bytearray(preamble)
    for headers, content in parts:
        out += b"--" + boundary.encode() + b"\r\n" + headers.encode() + b"\r\n\r\n" + content + b"\r\n"
    out += b"--" + boundary.encode() + b"--\r\n" + epilogue
    return bytes(out)


MP = f"multipart/form-data; boundary={BOUNDARY}"


# -- urlencoded -----------------------------------------------------------------------------------------
def test_urlencoded_body_from_http_client() -> None:
    with serve(make_handler()) as server:
        body = b"a=1&b=hello+world&c=%E2%82%AC%26%3D&a=2&&empty=&bare&sp%20ace=x"
        status, raw = post(server, "/urlencoded", body, "application/x-www-form-urlencoded")
    assert status == 200
    assert json.loads(raw)["fields"] == [["a", "1"], ["b", "hello world"], ["c", "€&="], ["a", "2"], ["empty", ""],
                                         ["bare", ""], ["sp ace", "x"]]


def test_query_strings_use_the_same_rules() -> None:
    with serve(make_handler()) as server:
        r = server.request(b"GET /q?name=J%C3%B6rg+M&tag=a&tag=b HTTP/1.1\r\nHost: t\r\n\r\n")
    assert json.loads(r.body)["fields"] == [["name", "Jörg M"], ["tag", "a"], ["tag", "b"]]


@pytest.mark.parametrize("body, status, reason", [
    (b"a=%zz", 400, b"malformed percent-escape"),
    (b"a=%4", 400, b"malformed percent-escape"),
    (b"a=%C3%28", 400, b"not valid UTF-8"),
    (b"&".join(b"f%d=1" % i for i in range(21)), 413, b"max_fields allows 20"),
    (b"a=" + b"x" * 101, 413, b"max_field_bytes allows 100"),
    (b"x" * 101 + b"=1", 413, b"max_field_bytes allows 100"),
])
def test_bad_urlencoded_bodies_get_400_or_413(body: bytes, status: int, reason: bytes) -> None:
    with serve(make_handler()) as server:
        got, raw = post(server, "/urlencoded", body, "application/x-www-form-urlencoded")
    assert got == status and reason in raw, raw


def test_a_form_endpoint_refuses_other_content_types_with_415() -> None:
    with serve(make_handler()) as server:
        assert post(server, "/urlencoded", b"{}", "application/json")[0] == 415
        status, raw = post(server, "/form", b"{}", "text/plain")
        assert status == 415 and b"multipart/form-data" in raw


def test_urlencoded_charset_parameter_and_case_are_accepted() -> None:
    with serve(make_handler()) as server:
        status, raw = post(server, "/form", b"k=v", "Application/X-WWW-Form-Urlencoded; charset=UTF-8")
    assert status == 200 and json.loads(raw)["fields"] == [["k", "v"]]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.text(max_size=12), st.text(max_size=12)), max_size=15))
def test_parse_qs_round_trips_urlencode(pairs: list[tuple[str, str]]) -> None:
    assert parse_qs(urllib.parse.urlencode(pairs)).pairs == tuple(pairs)


def test_multidict() -> None:
    md = MultiDict([("a", "1"), ("b", "2"), ("a", "3")])
    assert md["a"] == "1" and md.getall("a") == ["1", "3"] and len(md) == 2 and list(md) == ["a", "b"]
    assert md.get("zz") is None and md.pairs == (("a", "1"), ("b", "2"), ("a", "3"))


# -- multipart --------------------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_multipart_from_curl_with_a_text_field_and_files(tmp_path: Path) -> None:
    small = tmp_path / "small.txt"
    small.write_bytes(b"hello\r\n--not a boundary\r\n")
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 1000)  # 256,000 bytes: spooled to disk
    kept: list[UploadedFile] = []
    with serve(make_handler(keep=kept)) as server:
        result = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "-F", "title=Hi there", "-F", f"doc=@{small};type=text/plain",
             "-F", f"blob=@{big};filename=../../etc/passwd", f"{server.url}/form"],
            capture_output=True, timeout=20, check=True)
    doc = json.loads(result.stdout)
    assert doc["fields"] == [["title", "Hi there"]]
    assert doc["files"] == [
        {"name": "doc", "filename": "small.txt", "type": "text/plain", "size": small.stat().st_size,
         "sha256": hashlib.sha256(small.read_bytes()).hexdigest(), "on_disk": False},
        {"name": "blob", "filename": "passwd", "type": "application/octet-stream", "size": 256_000,
         "sha256": hashlib.sha256(big.read_bytes()).hexdigest(), "on_disk": True},
    ]
    assert len(kept) == 2 and all(f.file.closed for f in kept)  # leaving `with read_form` closed them


def test_multipart_preamble_epilogue_padding_and_empty_parts() -> None:
    body = multipart(
        ('Content-Disposition: form-data; name="a"', b"1"),
        ('Content-Disposition: form-data; name="empty"', b""),
        ('Content-Disposition: form-data; name="f"; filename=""\r\nContent-Type: application/octet-stream', b""),
        preamble=b"This is the preamble; ignore it.\r\n", epilogue=b"and this is the epilogue\r\n")
    body = body.replace(f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"a\"".encode(),
                        f"--{BOUNDARY} \t\r\nContent-Disposition: form-data; name=\"a\"".encode())
    with serve(make_handler()) as server:
        status, raw = post(server, "/form", body, f'multipart/form-data; boundary="{BOUNDARY}"')
    assert status == 200, raw
    doc = json.loads(raw)
    assert doc["fields"] == [["a", "1"], ["empty", ""]]
    assert [(f["name"], f["filename"], f["size"]) for f in doc["files"]] == [("f", "", 0)]


def test_multipart_names_and_filenames_as_browsers_escape_them() -> None:
    body = multipart(
        ('Content-Disposition: form-data; name="say %22hi%22"', b"x"),
        ('Content-Disposition: form-data; name="f"; filename="C:\\Users\\me\\r\xc3\xa9sum\xc3\xa9.pdf"'.encode("latin-1")
         .decode("utf-8"), b"%PDF"),
        ("Content-Disposition: form-data; name=\"g\"; filename=\"fallback.txt\"; filename*=UTF-8''na%C3%AFve%20file.txt",
         b"n"),
        ('Content-Disposition: form-data; name="h"; filename="..\\..\\.hidden\x01"', b"h"),
    )
    with serve(make_handler()) as server:
        status, raw = post(server, "/form", body, MP)
    assert status == 200, raw
    doc = json.loads(raw)
    assert doc["fields"] == [['say "hi"', "x"]]
    assert [f["filename"] for f in doc["files"]] == ["résumé.pdf", "naïve file.txt", "hidden"]


@pytest.mark.parametrize("body, content_type, status, reason", [
    (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n", MP, 400,
     b"closing --boundary-- is missing"),
    (b"no delimiter at all", MP, 400, b"no boundary delimiter"),
    (multipart(('Content-Disposition: form-data; name="a"', b"1")), "multipart/form-data", 400, b"without a boundary"),
    (multipart(('Content-Disposition: form-data; name="a"', b"1")), "multipart/form-data; boundary=\"\"", 400,
     b"invalid multipart boundary"),
    (multipart(('Content-Disposition: form-data; name="a"', b"1")), "multipart/form-data; boundary=" + "b" * 71, 400,
     b"invalid multipart boundary"),
    (multipart(('Content-Disposition: attachment; name="a"', b"1")), MP, 400, b"needs 'Content-Disposition: form-data"),
    (multipart(('Content-Disposition: form-data', b"1")), MP, 400, b"needs 'Content-Disposition: form-data"),
    (multipart(('Content-Disposition: form-data;\r\n name="a"', b"1")), MP, 400, b"obsolete line folding"),
    (multipart(('Content-Disposition form-data', b"1")), MP, 400, b"malformed multipart part header"),
    (multipart(('Content-Disposition: form-data; name="a', b"1")), MP, 400, b"unterminated quoted string"),
    (multipart(('Content-Disposition: form-data; name="a"', b"\xff\xfe")), MP, 400, b"not valid UTF-8"),
    (b"--" + BOUNDARY.encode() + b"X\r\n\r\n", MP, 400, b"not followed by CRLF"),
    (b"--" + BOUNDARY.encode() + b"\r\nContent-Disposition: form-data; name=a", MP, 400, b"not terminated"),
    (multipart(('X-Pad: ' + "p" * 600, b"1")), MP, 413, b"max_part_header_bytes"),
    (multipart(('Content-Disposition: form-data; name="a"', b"v" * 101)), MP, 413, b"max_field_bytes allows 100"),
    (multipart(('Content-Disposition: form-data; name="f"; filename="x"', b"v" * 300_001)), MP, 413,
     b"max_file_bytes allows 300000"),
    (multipart(*[('Content-Disposition: form-data; name="a"', b"1")] * 21), MP, 413, b"more than 20 parts"),
    (multipart(*[('Content-Disposition: form-data; name="f"; filename="x"', b"v" * 250_000)] * 2), MP, 413,
     b"max_total_bytes"),
])
def test_bad_multipart_bodies_get_400_or_413(body: bytes, content_type: str, status: int, reason: bytes) -> None:
    with serve(make_handler()) as server:
        client = server.connect()
        head = (b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: " + content_type.encode()
                + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
        client.send(head + body)
        r = client.read_response()
        assert r.status == status and reason in r.body, r.body
        client.send(b"GET /q?a=1 HTTP/1.1\r\nHost: t\r\n\r\n")  # still usable: the body was fully framed
        assert client.read_response().status == 200


def test_files_opened_before_a_failure_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    body = multipart(('Content-Disposition: form-data; name="f"; filename="x"', b"v" * 5000),
                     ('Content-Disposition: form-data; name="a"', b"\xff"))
    req = make_request(b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: " + MP.encode()
                       + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    opened: list[Any] = []
    original = tempfile.TemporaryFile

    def tracking(*args: Any, **kwargs: Any) -> Any:  # the real TemporaryFile, remembered
        f = original(*args, **kwargs)
        opened.append(f)
        return f

    monkeypatch.setattr(tempfile, "TemporaryFile", tracking)
    with pytest.raises(FormError) as info:
        read_form(req, LIMITS)
    assert info.value.status == 400 and len(opened) == 1 and opened[0].closed


def test_a_body_over_the_server_limit_is_413_before_the_handler_runs() -> None:
    calls: list[int] = []

    def handler(req: Request, out: bytearray) -> None:
        calls.append(1)
        respond(out, 200)

    with serve(handler, limits=Limits(max_body_bytes=1000)) as server:
        r = server.request(b"POST /form HTTP/1.1\r\nHost: t\r\nContent-Type: " + MP.encode()
                           + b"\r\nContent-Length: 5000\r\n\r\n")
    assert r.status == 413 and calls == []


def test_sanitize_filename() -> None:
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("C:\\Windows\\system32\\cmd.exe") == "cmd.exe"
    assert sanitize_filename("..") == "" and sanitize_filename("/") == "" and sanitize_filename("") == ""
    assert sanitize_filename(" .bashrc") == "bashrc"
    assert sanitize_filename("a\x00b\nc.txt") == "abc.txt"
    long = sanitize_filename("é" * 300 + ".tar.gz")
    assert long.endswith(".gz") and len(long.encode()) <= 255
    assert len(sanitize_filename("x" * 1000).encode()) == 255


def test_form_limits_are_validated() -> None:
    with pytest.raises(ConfigError, match="max_fields"):
        FormLimits(max_fields=0)
    with pytest.raises(ConfigError, match="spool_threshold"):
        FormLimits(spool_threshold=-1)
