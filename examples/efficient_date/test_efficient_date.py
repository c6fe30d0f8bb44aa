"""examples.efficient_date: the lazily refreshed Date is valid (h11 and email.utils parse it), current,
formatted at most once per second per worker, and the module runs as a prefork process."""

from __future__ import annotations

import email.utils
import json
import time

from examples._smoke import running
from examples.efficient_date import LazyDate, config, imf_fixdate
from vanilla_async.testing import serve

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def test_imf_fixdate_matches_the_standard_library() -> None:
    for seconds in (0, 784111777, 1_700_000_000, 2_000_000_000):
        assert imf_fixdate(seconds).decode() == email.utils.formatdate(seconds, usegmt=True)


def test_refreshes_only_when_the_second_changes() -> None:
    now = [1000.2]
    date = LazyDate(lambda: now[0])
    first = date.line()
    now[0] = 1000.9
    assert date.line() is first and date.refreshes == 1
    now[0] = 1001.0
    assert date.line() != first and date.refreshes == 2
    assert date.line().startswith(b"Date: ") and date.line().endswith(b" GMT\r\n")


def test_every_response_carries_a_current_date_and_formatting_is_rare() -> None:
    with serve(config) as server:
        start = time.time()
        responses = server.pipeline([GET] * 200)
        for r in responses:
            assert r.status == 200
            sent = email.utils.parsedate_to_datetime(r.header("date").decode()).timestamp()  # type: ignore[union-attr]
            assert int(start) - 1 <= sent <= time.time() + 1
        stats = json.loads(server.request(b"GET /stats HTTP/1.1\r\nHost: t\r\n\r\n").body)
        elapsed = time.time() - start
        assert stats["requests"] == 201
        assert 1 <= stats["refreshes"] <= int(elapsed) + 2  # once per distinct second seen, not per request
        assert server.request(b"GET /x HTTP/1.1\r\nHost: t\r\n\r\n").status == 404


def test_runs_as_a_module() -> None:
    with running("efficient_date") as conn:
        conn.request("GET", "/")
        r = conn.getresponse()
        assert r.status == 200 and r.getheader("Date", "").endswith(" GMT") and r.read().startswith(b"the Date")
