"""examples.proxy_aware — the real client address behind trusted reverse proxies.

``X-Forwarded-For`` or RFC 7239 ``Forwarded`` (one of them, the one your proxies set) is believed
only when the direct peer is a trusted proxy (a CIDR list), and then only as far as a chain of
trusted hops vouches for it: the chain is walked right to left, skipping trusted hops, and the
first untrusted hop is the client. Spoofed headers from untrusted peers are ignored. See
`forwarded` for the rules (``unknown`` and obfuscated identifiers, ports, repeated lines).

``GET /`` (any path) → **200** ``{"client": "203.0.113.7", "peer": "127.0.0.1", "via": "x-forwarded-for",
"hops": 1}``. A header from a trusted proxy that is malformed *where the client must be read* →
**400** (falling back to the proxy's address instead would let a client pass itself off as the
proxy); malformed parts left of the client are never looked at.

Run: ``TRUSTED_PROXIES=127.0.0.1,::1 PROXY_HEADER=x-forwarded-for python -m examples.proxy_aware --port 8080``
(read at start; those are the defaults, for a proxy on this machine), then
``curl -H 'X-Forwarded-For: 203.0.113.7' localhost:8080/``.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable, Mapping

from vanilla_async import Request, ServerConfig, respond

from .forwarded import (
    ClientAddress,
    MalformedForwarding,
    ProxyConfigError,
    ProxyTrust,
    forwarded,
    parse_node,
    x_forwarded_for,
)

__all__ = ("ClientAddress", "MalformedForwarding", "ProxyConfigError", "ProxyTrust", "client_address", "config",
           "forwarded", "make_config", "make_handler", "parse_node", "trust_from_env", "x_forwarded_for")


def client_address(req: Request, trust: ProxyTrust) -> ClientAddress | None:
    """``req``'s client through ``trust`` (``None`` without a socket peer); may raise `MalformedForwarding`."""
    peer = req.peer()
    if peer is None:
        return None
    return trust.resolve(peer[0], req.header_values(trust.header))


def make_handler(trust: ProxyTrust) -> Callable[[Request, bytearray], None]:
    def handler(req: Request, out: bytearray) -> None:
        head = req.method == b"HEAD"
        try:
            client = client_address(req, trust)
        except MalformedForwarding as exc:
            respond(out, 400, f"malformed {trust.header} header: {exc}\n", head=head)
            return
        if client is None:
            respond(out, 500, b"no peer address\n", head=head)
            return
        body = json.dumps({"client": client.host, "peer": client.peer, "via": client.via, "hops": client.hops})
        respond(out, 200, body + "\n", content_type=b"application/json", head=head)

    return handler


def trust_from_env(env: Mapping[str, str] = os.environ) -> ProxyTrust:
    """``TRUSTED_PROXIES`` (comma-separated CIDR ranges; default loopback) and ``PROXY_HEADER``."""
    ranges = [r.strip() for r in env.get("TRUSTED_PROXIES", "127.0.0.1,::1").split(",") if r.strip()]
    return ProxyTrust.of(ranges, env.get("PROXY_HEADER", "x-forwarded-for").strip())


def make_config(trust: ProxyTrust | None = None, **fields: Any) -> ServerConfig:
    """The example's config; ``trust=None`` reads the environment now (before the workers fork)."""
    fields.setdefault("port", 8080)
    return ServerConfig(handler=make_handler(trust or trust_from_env()), **fields)


config = make_config()
