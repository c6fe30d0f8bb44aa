"""examples.date_header over real sockets: a valid, current, cached Date that moves on every second."""

from __future__ import annotations

import re
import signal
import time
from datetime import datetime, timezone
from pathlib import Path

from examples.date_header import cached_date, config
from vanilla_async.testing import Client, Response, ServerProcess, serve

ROOT = Path(__file__).resolve().parents[2]

# RFC 9110 §5.6.7: IMF-fixdate = day-name "," SP 2DIGIT SP month SP 4DIGIT SP hh:mm:ss SP "GMT"
IMF_FIXDATE = re.compile(
    rb"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), ([0-9]{2}) (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
    rb"([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) GMT"
)


def get(target: bytes, method: bytes = b"GET") -> bytes:
    return method + b" " + target + b" HTTP/1.1\r\nHost: t\r\n\r\n"


def parse_date(value: bytes | None) -> datetime:
    """The instant an IMF-fixdate names; fails the test when it is not one (day name included)."""
    assert value is not None, "no Date header"
    match = IMF_FIXDATE.fullmatch(value)
    assert match is not None, f"Date {value!r} is not an IMF-fixdate"
    parsed = datetime.strptime(value.decode("ascii"), "%a, %d %b %Y %H:%M:%S GMT").replace(tzinfo=timezone.utc)
    assert parsed.strftime("%a").encode() == match.group(1), f"{value!r}: wrong day name for that date"
    return parsed


def assert_current(r: Response) -> datetime:
    """The response's Date: valid, and within 2 s of this machine's clock."""
    date = parse_date(r.header("date"))
    drift = abs(date.timestamp() - time.time())
    assert drift <= 2.0, f"Date {r.header('date')!r} is {drift:.1f}s away from the wall clock"
    return date


def test_every_endpoint_sends_a_current_imf_fixdate() -> None:
    with serve(config) as server:
        for target in (b"/", b"/date", b"/raw", b"/nope"):
            r = server.request(get(target))
            assert r.status == (404 if target == b"/nope" else 200)
            assert_current(r)
            assert len(r.headers) == len({name for name, _ in r.headers}), f"a header repeats: {r.headers}"
        r = server.request(get(b"/raw", b"HEAD"), method=b"HEAD")
        assert r.status == 200 and r.body == b"" and r.header("content-length") == b"22"
        assert_current(r)


def test_the_date_in_the_body_is_the_cached_header_value() -> None:
    with serve(config) as server, server.connect() as client:
        for _ in range(3):  # (a second may tick between two of them; then the next pair agrees)
            client.send(get(b"/date"))
            r = client.read_response()
            assert_current(r)
            if r.body == (r.header("date") or b"?") + b"\n":
                break
        else:
            raise AssertionError(f"body {r.body!r} never matched the Date header {r.header('date')!r}")


def test_the_date_changes_across_a_second_boundary() -> None:
    """On one keep-alive connection: the StaticResponse's Date moves on by whole seconds, not per request."""
    with serve(config) as server, server.connect() as client:
        client.send(get(b"/"))
        first = client.read_response()
        date1 = assert_current(first)
        deadline = time.monotonic() + 3.0
        while True:  # poll (bounded) until the worker's once-a-second timer has refreshed it
            time.sleep(0.05)
            client.send(get(b"/"))
            later = client.read_response()
            date2 = assert_current(later)
            if date2 != date1 or time.monotonic() > deadline:
                break
        assert date2 > date1, f"the Date stayed {first.header('date')!r} for 3 s"
        assert (date2 - date1).total_seconds() <= 2, (first.header("date"), later.header("date"))
        # Only the Date changed: the rest of the rebuilt StaticResponse is byte for byte the same.
        assert first.raw.replace(first.header("date", b"") or b"", b"") == later.raw.replace(later.header("date", b"") or b"", b"")


def test_cached_date_is_the_header_line_value() -> None:
    parse_date(cached_date())


def test_other_methods_and_paths() -> None:
    with serve(config) as server:
        r = server.request(b"POST /date HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        assert r.status == 405 and r.header("allow") == b"GET, HEAD"
        assert_current(r)
        assert server.request(get(b"/date/x")).status == 404


def test_runs_as_a_module_with_two_workers_and_a_current_date() -> None:
    with ServerProcess("-m", "examples.date_header", "--port", "0", "--workers", "2", cwd=ROOT) as proc:
        port = proc.port()
        for _ in range(8):  # new connections: the kernel spreads them over both workers
            with Client(("127.0.0.1", port)) as client:
                client.send(get(b"/raw"))
                r = client.read_response()
                assert r.status == 200 and r.body == b"hand-written response\n"
                assert_current(r)
        assert proc.stop(signal.SIGTERM) == 0
