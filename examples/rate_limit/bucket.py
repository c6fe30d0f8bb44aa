"""Token buckets per client key, with bounded memory — generic, no HTTP (could move into the library).

Theory of operation
-------------------
A bucket holds up to ``capacity`` tokens and refills continuously at ``rate`` tokens per second;
a request takes one token or is refused. Nothing ticks in the background: a bucket stores only
``(tokens, stamp)`` and is brought up to date lazily when its key is seen again,
``tokens = min(capacity, tokens + (now - stamp) * rate)``, on the **monotonic** clock (a wall-clock
jump must neither refill nor drain anyone).

When a request is refused, the wait until one token is there is ``(1 - tokens) / rate``;
``Retry-After`` is that rounded **up** to whole seconds (RFC 9110 §10.2.3 delay-seconds), so a
client that obeys it is never refused for retrying too early.

**Bounded memory.** The buckets live in an ``OrderedDict`` kept in least-recently-used order (a
hit moves its key to the end). A bucket left alone for ``capacity / rate`` seconds is full again,
which is exactly what a missing bucket means, so forgetting it changes nothing: every `take`
pops such idle buckets from the front (the oldest stamps come first, so it stops at the first
live one: amortised O(1)). Beyond ``max_clients`` live buckets the least recently used one is
evicted early — that client starts again with a full bucket, so under a flood of distinct keys
the limiter errs towards letting requests through rather than growing without bound. Size
``max_clients`` for the distinct clients expected within one refill period.

One table per worker process (``req.state``): workers share nothing, so with N workers a client
spread over several connections can get up to N × ``capacity`` in a burst. A single keep-alive
connection always lands on one worker.
"""

from __future__ import annotations

import ipaddress
import math
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Callable, NamedTuple

from vanilla_async import ConfigError


class RateLimitConfigError(ConfigError):
    """A `Policy` value makes no sense."""


@dataclass(frozen=True)
class Policy:
    """``capacity`` requests in a burst, refilled at ``rate`` requests per second."""

    capacity: int = 10
    rate: float = 5.0
    max_clients: int = 100_000  #: live buckets kept per worker (see "Bounded memory")
    ipv6_prefix: int = 64  #: IPv6 clients are keyed by their /64: one host usually owns a whole /64

    def __post_init__(self) -> None:
        if not isinstance(self.capacity, int) or self.capacity < 1:
            raise RateLimitConfigError(f"capacity must be a whole number of requests >= 1, got {self.capacity!r}")
        if not (isinstance(self.rate, (int, float)) and 0 < self.rate < math.inf):
            raise RateLimitConfigError(f"rate must be a positive, finite number of requests per second, got {self.rate!r}")
        if not isinstance(self.max_clients, int) or self.max_clients < 1:
            raise RateLimitConfigError(f"max_clients must be an int >= 1, got {self.max_clients!r}")
        if not 0 <= self.ipv6_prefix <= 128:
            raise RateLimitConfigError(f"ipv6_prefix must be in 0..128, got {self.ipv6_prefix!r}")

    @property
    def refill_seconds(self) -> float:
        """How long an empty bucket takes to fill up (and an idle one to be forgettable)."""
        return self.capacity / self.rate


class Verdict(NamedTuple):
    """What `TokenBuckets.take` decided for one request."""

    allowed: bool
    remaining: int  #: whole tokens left after this request
    retry_after: int  #: whole seconds until one token is back (0 when allowed)
    reset: int  #: whole seconds until the bucket is full again


class TokenBuckets:
    """Per-key token buckets on a monotonic clock; see the module docstring."""

    def __init__(self, policy: Policy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (tokens, stamp)
        self.evicted_early = 0  #: live buckets dropped because of max_clients

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str) -> Verdict:
        """Take one token from ``key``'s bucket if there is one."""
        policy = self.policy
        capacity, rate = policy.capacity, policy.rate
        now = self.clock()
        buckets = self._buckets
        found = buckets.get(key)
        if found is None:
            tokens = float(capacity)
        else:
            tokens = min(capacity, found[0] + max(0.0, now - found[1]) * rate)
            buckets.move_to_end(key)
        if tokens >= 1.0:
            tokens -= 1.0
            allowed, retry_after = True, 0
        else:
            allowed, retry_after = False, max(1, math.ceil((1.0 - tokens) / rate))
        buckets[key] = (tokens, now)
        self._evict(now)
        return Verdict(allowed, int(tokens), retry_after, math.ceil((capacity - tokens) / rate))

    def _evict(self, now: float) -> None:
        buckets = self._buckets
        idle = self.policy.refill_seconds
        while buckets:
            key, (_tokens, stamp) = next(iter(buckets.items()))
            if now - stamp < idle:
                break
            del buckets[key]  # full again: the same as no bucket at all
        while len(buckets) > self.policy.max_clients:
            buckets.popitem(last=False)
            self.evicted_early += 1


def client_key(host: str, ipv6_prefix: int = 64) -> str:
    """The bucket key of a peer address: the IPv4 address, or the IPv6 /``ipv6_prefix`` network
    (an IPv4-mapped IPv6 address counts as its IPv4 address). Unparseable hosts are used as is."""
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, ipv6_prefix), strict=False))
    return str(address)
