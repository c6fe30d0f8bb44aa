"""examples.json_api over real sockets: JSON endpoints, multipart uploads from curl and http.client."""

from __future__ import annotations

import hashlib
import http.client
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from examples.json_api import MAX_BODY, MAX_FILE, config
from vanilla_async.testing import TestServer, serve

BOUNDARY = "xYzBoundary42"


def multipart(parts: list[tuple[str, str | None, bytes]]) -> bytes:
    out = bytearray()
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename is not None else "")
        out += f"--{BOUNDARY}\r\nContent-Disposition: {disposition}\r\n".encode()
        if filename is not None:
            out += b"Content-Type: application/octet-stream\r\n"
        out += b"\r\n" + content + b"\r\n"
    return bytes(out + f"--{BOUNDARY}--\r\n".encode())


def post(server: TestServer, path: str, body: bytes, content_type: str) -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_notes_api() -> None:
    with serve(config) as server:
        assert json.loads(server.request(b"GET /api/health HTTP/1.1\r\nHost: t\r\n\r\n").body) == {"status": "ok"}
        assert post(server, "/api/notes", b'{"text": "hello"}', "application/json") == (201, {"id": 1, "text": "hello"})
        r = server.request(b"GET /api/notes/1 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert json.loads(r.body) == {"id": 1, "text": "hello"}
        assert json.loads(server.request(b"GET /api/notes HTTP/1.1\r\nHost: t\r\n\r\n").body) == [{"id": 1, "text": "hello"}]
        r = server.request(b"GET /api/notes/2 HTTP/1.1\r\nHost: t\r\n\r\n")
        assert r.status == 404 and r.header("content-type") == b"application/json"
        r = server.request(b"GET /api/nothing HTTP/1.1\r\nHost: t\r\n\r\n")
        assert r.status == 404 and "no such endpoint" in json.loads(r.body)["error"]


@pytest.mark.parametrize("body, content_type, status, message", [
    (b'{"text": "x"}', "text/plain", 415, "application/json"),
    (b"text=x", "application/x-www-form-urlencoded", 415, "application/json"),
    (b'{"text": 1}', "application/json", 400, '{"text": string}'),
    (b"{", "application/json", 400, "not valid JSON"),
])
def test_notes_refuse_bad_input(body: bytes, content_type: str, status: int, message: str) -> None:
    with serve(config) as server:
        got, doc = post(server, "/api/notes", body, content_type)
    assert got == status and message in doc["error"]


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_upload_from_curl(tmp_path: Path) -> None:
    small = tmp_path / "notes.txt"
    small.write_text("hello upload\n")
    big = tmp_path / "data.bin"
    big.write_bytes(b"\x00\xff" * (MAX_FILE // 2))  # exactly MAX_FILE: allowed, spooled to disk
    with serve(config) as server:
        result = subprocess.run(["curl", "-sS", "--max-time", "10", "-F", "kind=test", "-F", f"a=@{small}",
                                 "-F", f"b=@{big};filename=../../x/data.bin", f"{server.url}/api/upload"],
                                capture_output=True, timeout=20, check=True)
    doc = json.loads(result.stdout)
    assert doc["fields"] == {"kind": "test"}
    assert doc["files"] == [
        {"field": "a", "filename": "notes.txt", "content_type": "text/plain", "size": 13,
         "sha256": hashlib.sha256(b"hello upload\n").hexdigest()},
        {"field": "b", "filename": "data.bin", "content_type": "application/octet-stream", "size": MAX_FILE,
         "sha256": hashlib.sha256(big.read_bytes()).hexdigest()},
    ]


def test_upload_limits_and_errors() -> None:
    with serve(config) as server:
        status, doc = post(server, "/api/upload", multipart([("f", "big.bin", b"x" * (MAX_FILE + 1))]),
                           f"multipart/form-data; boundary={BOUNDARY}")
        assert status == 413 and "max_file_bytes" in doc["error"]
        status, doc = post(server, "/api/upload", multipart([("only", None, b"text")]),
                           f"multipart/form-data; boundary={BOUNDARY}")
        assert status == 400 and "no file" in doc["error"]
        status, doc = post(server, "/api/upload", b"garbage", f"multipart/form-data; boundary={BOUNDARY}")
        assert status == 400
        status, doc = post(server, "/api/upload", b'{"file": "x"}', "application/json")
        assert status == 415 and "multipart/form-data" in doc["error"]
        # Over the server's body limit: refused from the Content-Length, before the body is read.
        client = server.connect()
        client.send(b"POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Type: multipart/form-data; boundary=b\r\n"
                    b"Content-Length: %d\r\n\r\n" % (MAX_BODY + 1))
        r = client.read_response()
        assert r.status == 413 and r.closes
