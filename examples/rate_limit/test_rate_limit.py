"""examples.rate_limit over real sockets: bursts, 429 with a correct Retry-After, per-client buckets."""

from __future__ import annotations

import http.client
import signal
import time
from pathlib import Path

import pytest

from examples.rate_limit import (
    Policy,
    RateLimitConfigError,
    TokenBuckets,
    Verdict,
    client_key,
    make_config,
    policy_from_env,
)
from vanilla_async.testing import Client, ServerProcess, TestServer, serve

ROOT = Path(__file__).resolve().parents[2]
GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


class Clock:
    """A hand-driven monotonic clock for the bucket arithmetic."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get_from(server: TestServer, source: str) -> http.client.HTTPResponse:
    """One GET with http.client, from ``source`` (any 127.x.y.z address is ours on Linux loopback)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5, source_address=(source, 0))
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response
    finally:
        conn.close()


@pytest.mark.parametrize("backend", ["epoll", "selectors"])
def test_a_pipelined_burst_gets_capacity_then_429(backend: str) -> None:
    with serve(make_config(Policy(capacity=3, rate=0.5)), backend=backend) as server:
        responses = server.pipeline([GET] * 5)
    assert [r.status for r in responses] == [200, 200, 200, 429, 429]
    assert [r.header("ratelimit") for r in responses[:3]] == [
        b'"bucket";r=2;t=2', b'"bucket";r=1;t=4', b'"bucket";r=0;t=6']
    assert all(r.header("ratelimit-policy") == b'"bucket";q=3;w=6' for r in responses)
    for refused in responses[3:]:
        # One token at 0.5/s is 2 s away (a few ms less, rounded up): Retry-After and t agree.
        assert refused.header("retry-after") == b"2"
        assert refused.header("ratelimit") == b'"bucket";r=0;t=2'
        assert refused.body == b"too many requests: retry in 2 s\n"
        assert not refused.closes


def test_retrying_after_retry_after_seconds_succeeds() -> None:
    with serve(make_config(Policy(capacity=1, rate=4.0))) as server:
        client = server.connect()
        client.send(GET)
        assert client.read_response().status == 200
        client.send(GET)
        refused = client.read_response()
        assert refused.status == 429 and refused.header("retry-after") == b"1"  # 0.25 s, rounded up
        time.sleep(1.0)
        client.send(GET)  # the same connection: a 429 does not close it
        assert client.read_response().status == 200


def test_each_client_address_has_its_own_bucket() -> None:
    with serve(make_config(Policy(capacity=2, rate=0.1))) as server:
        assert [get_from(server, "127.0.0.1").status for _ in range(3)] == [200, 200, 429]
        assert [get_from(server, "127.0.0.2").status for _ in range(3)] == [200, 200, 429]
        assert get_from(server, "127.0.0.1").status == 429  # still empty: 0.1 token/s


def test_a_refused_head_request_has_no_body() -> None:
    with serve(make_config(Policy(capacity=1, rate=0.1))) as server:
        client = server.connect()
        client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert client.read_response(b"HEAD").status == 200
        client.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        r = client.read_response(b"HEAD")
        assert r.status == 429 and r.body == b"" and r.header("retry-after") == b"10"


def test_bucket_arithmetic_on_a_driven_clock() -> None:
    clock = Clock()
    buckets = TokenBuckets(Policy(capacity=2, rate=1.0), clock)
    assert buckets.take("a") == Verdict(True, 1, 0, 1)
    assert buckets.take("a") == Verdict(True, 0, 0, 2)
    assert buckets.take("a") == Verdict(False, 0, 1, 2)
    clock.now += 0.5
    assert buckets.take("a") == Verdict(False, 0, 1, 2)  # half a token: 0.5 s more, rounded up to 1
    clock.now += 0.5
    assert buckets.take("a") == Verdict(True, 0, 0, 2)
    clock.now += 100  # refills to capacity, no further
    assert buckets.take("a") == Verdict(True, 1, 0, 1)
    clock.now -= 50  # a clock that goes backwards refills nothing and breaks nothing
    assert buckets.take("a") == Verdict(True, 0, 0, 2)
    assert buckets.take("a").allowed is False


def test_fractional_rate_retry_after_rounds_up() -> None:
    clock = Clock()
    buckets = TokenBuckets(Policy(capacity=1, rate=0.3), clock)
    assert buckets.take("k").allowed
    verdict = buckets.take("k")
    assert verdict == Verdict(False, 0, 4, 4)  # 1 / 0.3 = 3.33 s
    clock.now += 3.3
    assert not buckets.take("k").allowed
    clock.now += 0.04
    assert buckets.take("k").allowed


def test_memory_is_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(Policy(capacity=5, rate=1.0, max_clients=100), clock)
    for i in range(1000):
        buckets.take(f"10.0.{i // 256}.{i % 256}")
    assert len(buckets) == 100 and buckets.evicted_early == 900
    # Idle buckets (refilled, so equal to no bucket) are forgotten as soon as anyone is seen again.
    clock.now += 5.0
    buckets.take("another")
    assert len(buckets) == 1 and buckets.evicted_early == 900


def test_idle_eviction_keeps_live_buckets() -> None:
    clock = Clock()
    buckets = TokenBuckets(Policy(capacity=1, rate=1.0), clock)
    buckets.take("old")
    clock.now += 0.5
    buckets.take("young")
    clock.now += 0.6  # "old" idle 1.1 s (full again), "young" only 0.6 s
    buckets.take("third")
    assert len(buckets) == 2
    assert buckets.take("young") == Verdict(False, 0, 1, 1)  # its bucket was kept: still nearly empty


def test_client_keys() -> None:
    assert client_key("127.0.0.1") == "127.0.0.1"
    assert client_key("::ffff:10.1.2.3") == "10.1.2.3"
    assert client_key("2001:db8::1") == client_key("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_key("2001:db8::1", 128) == "2001:db8::1/128"
    assert client_key("fe80::1%eth0") == "fe80::/64"
    assert client_key("not an address") == "not an address"


@pytest.mark.parametrize("fields, message", [
    ({"capacity": 0}, "capacity must be a whole number of requests >= 1"),
    ({"capacity": 1.5}, "capacity must be"),
    ({"rate": 0}, "rate must be a positive, finite number"),
    ({"rate": float("inf")}, "rate must be"),
    ({"max_clients": 0}, "max_clients must be"),
    ({"ipv6_prefix": 129}, "ipv6_prefix must be in 0..128"),
])
def test_a_bad_policy_says_what_is_wrong(fields: dict[str, float], message: str) -> None:
    with pytest.raises(RateLimitConfigError, match=message):
        Policy(**fields)  # type: ignore[arg-type]


def test_policy_from_the_environment() -> None:
    assert policy_from_env({"RATE_LIMIT_CAPACITY": "4", "RATE_LIMIT_RATE": "0.5"}) == Policy(capacity=4, rate=0.5)
    assert policy_from_env({}) == Policy(capacity=10, rate=5.0)
    with pytest.raises(RateLimitConfigError, match="RATE_LIMIT_CAPACITY must be a whole number"):
        policy_from_env({"RATE_LIMIT_CAPACITY": "lots"})
    with pytest.raises(RateLimitConfigError, match="rate must be a positive"):
        policy_from_env({"RATE_LIMIT_RATE": "-1"})


def test_runs_as_a_module() -> None:
    env = {"RATE_LIMIT_CAPACITY": "2", "RATE_LIMIT_RATE": "0.1"}
    with ServerProcess("-m", "examples.rate_limit", "--port", "0", "--workers", "1", cwd=ROOT, env=env) as proc:
        with Client(("127.0.0.1", proc.port())) as client:
            client.send(GET * 3)
            assert [r.status for r in client.read_responses(3)] == [200, 200, 429]
        assert proc.stop(signal.SIGTERM) == 0
