"""examples.observability over real sockets: probes, readiness over a worker's life, strict metrics."""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generator

import pytest

from examples.observability import (
    CONTENT_TYPE,
    Counter,
    Gauge,
    Histogram,
    MetricError,
    Registry,
    Settings,
    make_config,
)
from reactor import Token, readable
from vanilla_async.testing import Client, ServerProcess, TestServer, serve

ROOT = Path(__file__).resolve().parents[2]
BUCKETS = (0.005, 0.05, 0.1, 1.0)


def get(path: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + path + b" HTTP/1.1\r\nHost: t\r\n\r\n"


# -- a strict parser of the text format 0.0.4 -------------------------------------------------------------
_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_HELP = re.compile(rf"# HELP ({_NAME}) ((?:[^\\\n]|\\\\|\\n)*)")
_TYPE = re.compile(rf"# TYPE ({_NAME}) (counter|gauge|histogram|summary|untyped)")
_SAMPLE = re.compile(rf"({_NAME})(\{{(.*)\}})? (\S+)")
_PAIR = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\\\|\\"|\\n)*)"(,|$)')
_FLOAT = re.compile(r"[+-]?(?:Inf|NaN|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)")


@dataclass
class Family:
    kind: str
    help: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = field(default_factory=dict)


def parse_exposition(text: str) -> dict[str, Family]:
    """Parse and validate: every line well-formed, HELP then TYPE once per family before its samples,
    no duplicate series, histograms complete (cumulative buckets, ``+Inf`` == ``_count``)."""
    assert text.endswith("\n"), "the exposition must end with a newline"
    families: dict[str, Family] = {}
    helps: dict[str, str] = {}
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}: {line!r}"
        if line.startswith("#"):
            if match := _HELP.fullmatch(line):
                assert match[1] not in helps, f"second HELP for {match[1]}, {where}"
                helps[match[1]] = match[2]
            elif match := _TYPE.fullmatch(line):
                assert match[1] in helps and match[1] not in families, f"TYPE must follow one HELP, {where}"
                families[match[1]] = Family(match[2], helps[match[1]])
            else:
                raise AssertionError(f"malformed comment, {where}")
            continue
        match = _SAMPLE.fullmatch(line)
        assert match is not None, f"malformed sample, {where}"
        name, labels_text, value = match[1], match[3] or "", match[4]
        labels: list[tuple[str, str]] = []
        pos = 0
        while pos < len(labels_text):
            pair = _PAIR.match(labels_text, pos)
            assert pair is not None, f"malformed labels, {where}"
            labels.append((pair[1], pair[2]))
            pos = pair.end()
        assert len({k for k, _ in labels}) == len(labels), f"repeated label, {where}"
        assert _FLOAT.fullmatch(value), f"malformed value, {where}"
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        family = families.get(name) or families.get(base)
        assert family is not None, f"sample before its TYPE line, {where}"
        if family.kind != "histogram":
            assert name in families, f"{name} is not a sample name of a {family.kind}, {where}"
        key = (name, frozenset(labels))
        assert key not in family.samples, f"duplicate series, {where}"
        family.samples[key] = float(value)
    for name, family in families.items():
        if family.kind == "histogram":
            check_histogram(name, family)
    return families


def check_histogram(name: str, family: Family) -> None:
    series: dict[frozenset[tuple[str, str]], list[tuple[float, float]]] = {}
    for (sample, labels), value in family.samples.items():
        if sample == name + "_bucket":
            le = dict(labels)["le"]
            series.setdefault(labels - {("le", le)}, []).append((float(le), value))
    assert series or not family.samples, f"histogram {name} has samples but no buckets"
    for labels, buckets in series.items():
        buckets.sort()
        counts = [count for _, count in buckets]
        assert buckets[-1][0] == math.inf, f"{name}{set(labels)} lacks le=+Inf"
        assert counts == sorted(counts), f"{name}{set(labels)} buckets are not cumulative: {buckets}"
        assert family.samples[(name + "_count", labels)] == counts[-1], f"{name} +Inf != _count"
        assert (name + "_sum", labels) in family.samples


def scrape(server: TestServer) -> dict[str, Family]:
    r = server.request(get(b"/metrics"))
    assert r.status == 200 and r.header("content-type") == CONTENT_TYPE
    return parse_exposition(r.body.decode("utf-8"))


def requests_total(families: dict[str, Family], method: str, status: str) -> float:
    for (_name, labels), value in families["http_requests_total"].samples.items():
        d = dict(labels)
        if d["method"] == method and d["status"] == status:
            assert d["worker"] == str(os.getpid())  # in-process test server: the worker is this process
            return value
    return 0.0


def histogram(families: dict[str, Family]) -> dict[str, float]:
    """``le`` → cumulative count, plus ``"count"`` and ``"sum"`` (one worker: one series)."""
    out: dict[str, float] = {}
    for (name, labels), value in families["http_request_duration_seconds"].samples.items():
        if name.endswith("_bucket"):
            out[dict(labels)["le"]] = value
        else:
            out[name.rsplit("_", 1)[1]] = value
    return out


# -- probes ---------------------------------------------------------------------------------------------
def test_liveness_and_readiness_when_ready_at_once() -> None:
    with serve(make_config(Settings())) as server:
        live = server.request(get(b"/healthz"))
        ready = server.request(get(b"/readyz"))
    assert (live.status, live.body, live.header("cache-control")) == (200, b"ok\n", b"no-store")
    assert (ready.status, ready.body, ready.header("cache-control")) == (200, b"ready\n", b"no-store")


def test_readiness_is_503_until_the_warm_up_finishes() -> None:
    gate_r, gate_w = os.pipe()

    def warmup() -> Generator[Token, Any, None]:
        yield readable(gate_r, timeout=10)  # e.g. "until the database answers"

    try:
        with serve(make_config(Settings(warmup=warmup))) as server:
            for _ in range(3):
                r = server.request(get(b"/readyz"))
                assert (r.status, r.body) == (503, b"starting\n")
            assert server.request(get(b"/healthz")).status == 200  # alive all along
            os.write(gate_w, b"x")
            deadline = time.monotonic() + 5
            while server.request(get(b"/readyz")).status != 200:
                assert time.monotonic() < deadline, "never became ready after the warm-up ended"
                time.sleep(0.01)
    finally:
        os.close(gate_r)
        os.close(gate_w)


def test_readiness_is_503_once_shutdown_has_begun() -> None:
    with serve(make_config(Settings()), grace=3.0) as server:
        client = server.connect()
        client.send(b"GET /readyz HTTP/1.1\r\nHo")  # in flight when the shutdown begins
        time.sleep(0.05)
        server.shutdown()
        deadline = time.monotonic() + 5
        while True:  # wait (bounded) until the listener is gone: the shutdown has begun
            try:
                socket.create_connection(server.address, timeout=1).close()
            except ConnectionRefusedError:
                break
            except ConnectionResetError:
                pass  # queued at the listener as it closed (connect with a timeout reports the reset): again
            assert time.monotonic() < deadline, "the listener was not closed"
            time.sleep(0.01)
        client.send(b"st: t\r\n\r\n")
        r = client.read_response()
        assert (r.status, r.body) == (503, b"shutting down\n")
        assert client.closed_by_server()


# -- metrics --------------------------------------------------------------------------------------------
def test_counts_increase_exactly_as_requests_are_made(caplog: pytest.LogCaptureFixture) -> None:
    with serve(make_config(Settings(buckets=BUCKETS))) as server:
        before = scrape(server)
        for _ in range(3):
            assert server.request(get(b"/")).status == 200
        for _ in range(2):
            assert server.request(get(b"/missing")).status == 404
        assert server.request(get(b"/boom")).status == 500
        assert server.request(get(b"/slow?ms=120")).status == 200
        assert server.request(get(b"/slow?ms=abc")).status == 400
        assert server.request(get(b"/", b"HEAD"), method=b"HEAD").status == 200
        assert server.request(get(b"/", b"BREW")).status == 200  # an unlisted method: "other"
        after = scrape(server)
    delta = {
        (m, s): requests_total(after, m, s) - requests_total(before, m, s)
        for m, s in [("GET", "200"), ("GET", "404"), ("GET", "500"), ("GET", "400"), ("HEAD", "200"),
                     ("other", "200")]
    }
    # GET 200: three "/", one "/slow", and the first scrape (counted once it had answered).
    assert delta == {("GET", "200"): 5, ("GET", "404"): 2, ("GET", "500"): 1, ("GET", "400"): 1,
                     ("HEAD", "200"): 1, ("other", "200"): 1}
    assert not any("BREW" in line for line in after_text_lines(after))
    h0, h1 = histogram(before), histogram(after)
    assert list(h1) == ["0.005", "0.05", "0.1", "1.0", "+Inf", "sum", "count"]
    assert h1["count"] - h0["count"] == 11
    assert h1["+Inf"] == h1["count"]
    # The generator's latency runs until it finished: the 120 ms request is above the 0.1 bucket.
    assert (h1["count"] - h0["count"]) - (h1["0.1"] - h0["0.1"]) >= 1
    assert h1["sum"] - h0["sum"] >= 0.12
    assert after["http_requests_in_progress"].samples == {
        ("http_requests_in_progress", frozenset({("worker", str(os.getpid()))})): 0.0}


def after_text_lines(families: dict[str, Family]) -> list[str]:
    return [f"{name}{sorted(labels)}" for f in families.values() for name, labels in f.samples]


def test_a_parked_request_is_in_progress_and_a_cancelled_one_is_counted() -> None:
    with serve(make_config(Settings())) as server:
        parked = server.connect()
        parked.send(get(b"/slow?ms=10000"))
        deadline = time.monotonic() + 5
        while (families := scrape(server))["http_requests_in_progress"].samples.popitem()[1] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert requests_total(families, "GET", "cancelled") == 0
        parked.close()  # the client leaves: the generator is closed
        while (families := scrape(server))["http_requests_in_progress"].samples.popitem()[1] != 0:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert requests_total(families, "GET", "cancelled") == 1


def test_pipelined_statuses_are_read_from_each_response() -> None:
    with serve(make_config(Settings())) as server:
        before = scrape(server)
        responses = server.pipeline([get(b"/missing"), get(b"/slow?ms=5"), get(b"/"), get(b"/nope")])
        after = scrape(server)
    assert [r.status for r in responses] == [404, 200, 200, 404]
    assert requests_total(after, "GET", "404") - requests_total(before, "GET", "404") == 2
    assert requests_total(after, "GET", "200") - requests_total(before, "GET", "200") == 3  # 2 + the scrape


def test_rendering_escapes_and_orders() -> None:
    registry = Registry()
    c = Counter("jobs_total", "Jobs done.\nSecond \\ line.", ("kind",))
    g = Gauge("temperature_celsius", "Now.")
    h = Histogram("size_bytes", "Sizes.", ("kind",), buckets=(10, 100))
    for family in (c, g, h):
        registry.add(family)
    c.inc(('say "hi"\\\n',), 2)
    g.set((), -1.5)
    for value in (5, 10, 50, 1000):
        h.observe(("a",), value)
    text = registry.render().decode()
    assert text == (
        "# HELP jobs_total Jobs done.\\nSecond \\\\ line.\n# TYPE jobs_total counter\n"
        'jobs_total{kind="say \\"hi\\"\\\\\\n"} 2\n'
        "# HELP temperature_celsius Now.\n# TYPE temperature_celsius gauge\ntemperature_celsius -1.5\n"
        "# HELP size_bytes Sizes.\n# TYPE size_bytes histogram\n"
        'size_bytes_bucket{kind="a",le="10.0"} 2\nsize_bytes_bucket{kind="a",le="100.0"} 3\n'
        'size_bytes_bucket{kind="a",le="+Inf"} 4\nsize_bytes_sum{kind="a"} 1065\nsize_bytes_count{kind="a"} 4\n'
    )
    families = parse_exposition(text)
    assert families["jobs_total"].help == "Jobs done.\\nSecond \\\\ line."


@pytest.mark.parametrize("make, message", [
    (lambda: Counter("bad-name", "x"), "metric name 'bad-name' must match"),
    (lambda: Counter("ok", "x", ("le",)), "label name 'le'"),
    (lambda: Histogram("h", "x", buckets=(1, 1)), "strictly increasing"),
    (lambda: Histogram("h", "x", buckets=()), "strictly increasing"),
    (lambda: Counter("c_total", "x").inc((), -1), "can only go up"),
    (lambda: Counter("c_total", "x", ("a",)).inc(()), "has labels"),
])
def test_metric_misuse_says_what_is_wrong(make: Any, message: str) -> None:
    with pytest.raises(MetricError, match=message):
        make()


def test_the_parser_in_this_test_rejects_broken_expositions() -> None:
    good = "# HELP a_total x\n# TYPE a_total counter\na_total 1\n"
    parse_exposition(good)
    for broken in [
        good[:-1],  # no final newline
        "a_total 1\n",  # no TYPE
        good + "a_total 2\n",  # duplicate series
        good.replace("a_total 1", 'a_total{x="1} 1'),
        good.replace(" 1\n", " one\n"),
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1.0\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
        "# HELP h x\n# TYPE h histogram\nh_bucket{le=\"1.0\"} 1\nh_sum 1\nh_count 1\n",  # no +Inf
        "# HELP h x\n# TYPE h histogram\nh_sum 1\nh_count 1\n",  # no buckets at all
    ]:
        with pytest.raises(AssertionError):
            parse_exposition(broken)


def test_runs_as_a_module_with_prefork_workers() -> None:
    with ServerProcess("-m", "examples.observability", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        with Client(("127.0.0.1", proc.port())) as client:
            client.send(get(b"/healthz") + get(b"/readyz") + get(b"/metrics"))
            live, ready, metrics = client.read_responses(3)
        assert (live.status, ready.status, metrics.status) == (200, 200, 200)
        families = parse_exposition(metrics.body.decode())
        workers = {dict(labels)["worker"] for _, labels in families["http_requests_total"].samples}
        assert len(workers) == 1 and workers.pop() != str(os.getpid())  # one worker's series: a child's pid
        assert proc.stop(signal.SIGTERM) == 0
