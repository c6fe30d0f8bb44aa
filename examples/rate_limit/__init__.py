"""examples.rate_limit — a token bucket per client address; past it, **429** with ``Retry-After``.

Every request takes a token from its client's bucket (`bucket.TokenBuckets`: ``capacity`` in a
burst, refilled at ``rate`` per second, on the monotonic clock, bounded memory). The client is the
direct peer, `Request.peer` (one ``getpeername`` per request, only here); IPv6 clients are keyed by
their /64. Behind a reverse proxy, resolve the real client first (see ``examples.proxy_aware``).

``GET /`` (or any path) → **200** ``hello`` while tokens last, then **429 Too Many Requests** with
``Retry-After: N`` (whole seconds, rounded up: retrying after N seconds succeeds). Both carry the
draft IETF fields (draft-ietf-httpapi-ratelimit-headers)
``RateLimit-Policy: "bucket";q=<capacity>;w=<seconds to refill>`` and
``RateLimit: "bucket";r=<tokens left>;t=<seconds>`` (until full again; on a 429 the same moment as
``Retry-After``). A 429 keeps the connection open.

Run: ``python -m examples.rate_limit --port 8080`` (``RATE_LIMIT_CAPACITY``, default 10, and
``RATE_LIMIT_RATE``, default 5 per second, are read at start), then
``for i in $(seq 12); do curl -s -o /dev/null -w '%{http_code} ' localhost:8080/; done``.
Each worker keeps its own buckets (see `bucket`).
"""

from __future__ import annotations

import math
import os
from typing import Any, Mapping

from vanilla_async import Request, ServerConfig, respond

from .bucket import Policy, RateLimitConfigError, TokenBuckets, Verdict, client_key

__all__ = ("Policy", "RateLimitConfigError", "RateLimiter", "TokenBuckets", "Verdict", "client_key", "config",
           "make_config", "policy_from_env")

class RateLimiter:
    """A worker's buckets (``req.state``) and the HTTP side: `admit` answers 429 for refused requests."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.buckets = TokenBuckets(policy)
        self.policy_header = f'"bucket";q={policy.capacity};w={math.ceil(policy.refill_seconds)}'

    def admit(self, req: Request, out: bytearray) -> Verdict | None:
        """The verdict for ``req``'s client when allowed; ``None`` after appending a 429 when not."""
        peer = req.peer()
        key = client_key(peer[0], self.policy.ipv6_prefix) if peer is not None else "unknown"
        verdict = self.buckets.take(key)
        if verdict.allowed:
            return verdict
        wait = verdict.retry_after
        respond(out, 429, f"too many requests: retry in {wait} s\n", head=req.method == b"HEAD",
                headers=[("Retry-After", wait), *self.headers(verdict)])
        return None

    def headers(self, verdict: Verdict) -> list[tuple[str, str]]:
        """The ``RateLimit-Policy`` and ``RateLimit`` fields for a response."""
        t = verdict.reset if verdict.allowed else verdict.retry_after
        return [("RateLimit-Policy", self.policy_header), ("RateLimit", f'"bucket";r={verdict.remaining};t={t}')]


def app(req: Request, out: bytearray, verdict: Verdict, limiter: RateLimiter) -> None:
    """The protected application: says hello."""
    respond(out, 200, b"hello\n", headers=limiter.headers(verdict), head=req.method == b"HEAD")


def handler(req: Request, out: bytearray) -> None:
    limiter: RateLimiter = req.state
    verdict = limiter.admit(req, out)
    if verdict is not None:
        app(req, out, verdict, limiter)


def policy_from_env(env: Mapping[str, str] = os.environ) -> Policy:
    """``RATE_LIMIT_CAPACITY`` (whole requests) and ``RATE_LIMIT_RATE`` (requests per second)."""
    raw_capacity = env.get("RATE_LIMIT_CAPACITY", "10").strip()
    raw_rate = env.get("RATE_LIMIT_RATE", "5").strip()
    try:
        return Policy(capacity=int(raw_capacity), rate=float(raw_rate))
    except ValueError as exc:
        if isinstance(exc, RateLimitConfigError):
            raise
        raise RateLimitConfigError(
            "RATE_LIMIT_CAPACITY must be a whole number and RATE_LIMIT_RATE a number, "
            f"got {raw_capacity!r} and {raw_rate!r}"
        ) from None


def make_config(policy: Policy | None = None, **fields: Any) -> ServerConfig:
    """The example's config; ``policy=None`` reads the environment (now, before the workers fork)."""
    chosen = policy or policy_from_env()

    def make_state() -> RateLimiter:
        return RateLimiter(chosen)

    fields.setdefault("port", 8080)
    return ServerConfig(handler=handler, make_state=make_state, **fields)


config = make_config()
