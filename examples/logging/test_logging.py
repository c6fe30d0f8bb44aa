"""examples.logging: one JSON access record per request (sync, generator, raised, client gone), the
server's own records and tracebacks as JSON too, and the module's stderr as JSON lines."""

from __future__ import annotations

import http.client
import io
import json
import logging
import signal
import time
from typing import Any, Iterator

import pytest

from examples._smoke import ROOT
from examples.logging import JsonFormatter, config
from vanilla_async.testing import ServerProcess, serve


@pytest.fixture
def records() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


def access(stream: io.StringIO) -> list[dict[str, Any]]:
    return [r["http"] for r in lines(stream) if r["logger"] == "examples.logging.access"]


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n\r\n".encode()


def test_one_structured_record_per_request(records: io.StringIO) -> None:
    with serve(config) as server:
        assert server.request(get("/")).status == 200
        assert server.request(get("/slow")).body == b"slow\n"
        assert server.request(get("/items/2")).status == 404
        assert server.request(get("/nope")).status == 404
    got = access(records)
    assert [(r["method"], r["path"], r["status"], r["outcome"]) for r in got] == [
        ("GET", "/", 200, "complete"), ("GET", "/slow", 200, "complete"), ("GET", "/items/2", 404, "complete"),
        ("GET", "/nope", 404, "complete")]
    assert got[1]["duration_ms"] >= 15  # the generator was logged when it ended, not when it parked
    assert all(r["bytes"] > 0 and r["client"].startswith("127.0.0.1:") for r in got)
    warning = [r for r in lines(records) if r["logger"] == "examples.logging.app"]
    assert warning[0]["level"] == "WARNING" and warning[0]["http"] == {"item": "2"}
    assert all(r["ts"].endswith("+00:00") for r in lines(records))


def test_a_handler_that_raises_is_logged_with_its_traceback_as_json(records: io.StringIO) -> None:
    with serve(config) as server:
        assert server.request(get("/boom")).status == 500
    assert access(records)[-1]["outcome"] == "raised" and access(records)[-1]["status"] == 500
    tracebacks = [r for r in lines(records) if "exc" in r]
    assert tracebacks and "RuntimeError: boom: a bug in a handler" in tracebacks[0]["exc"]


def test_a_client_that_leaves_mid_generator_is_logged_as_closed(records: io.StringIO) -> None:
    with serve(config) as server:
        client = server.connect()
        client.send(get("/slow"))
        time.sleep(0.005)
        client.close()
        deadline = time.monotonic() + 5
        while not access(records) and time.monotonic() < deadline:
            time.sleep(0.01)
    assert access(records)[0]["path"] == "/slow" and access(records)[0]["outcome"] in ("closed", "complete")


def test_the_module_writes_json_lines_to_stderr() -> None:
    with ServerProcess("-m", "examples.logging", "--port", "0", "--workers", "1", cwd=ROOT) as proc:
        conn = http.client.HTTPConnection("127.0.0.1", proc.port(), timeout=10)
        conn.request("GET", "/items/1")
        r = conn.getresponse()
        assert (r.status, r.read()) == (200, b'{"id": 1}')
        conn.close()
        proc.wait_for(r'"path": "/items/1"')
        assert proc.stop(signal.SIGTERM) == 0
        docs = [json.loads(line) for line in proc.output.splitlines() if line.startswith("{")]
    assert any(d.get("http", {}).get("path") == "/items/1" and d["http"]["status"] == 200 for d in docs)
    assert any(d["logger"].startswith("vanilla_async") for d in docs)  # the server's own records too
    assert not [line for line in proc.output.splitlines() if line.strip() and not line.startswith("{")]


def test_json_formatter_keeps_unserialisable_extras_readable() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "m %s", ("a",), None)
    record.http = {"when": object()}
    doc = json.loads(JsonFormatter().format(record))
    assert doc["msg"] == "m a" and doc["http"]["when"].startswith("<object")
