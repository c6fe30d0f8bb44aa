"""examples.ip_block — allow and deny lists of CIDR ranges (IPv4 and IPv6); refused clients get **403**.

Each request's direct peer (`Request.peer`, one ``getpeername``) is checked against an
`acl.AccessList`: **deny wins**; then, when an allow list is set, only addresses in it pass.
IPv4-mapped IPv6 peers (``::ffff:a.b.c.d``, from a dual-stack ``--host ::`` listener) are matched as
IPv4; a peer that cannot be determined is refused (fail closed). Lookup is a ``bisect`` over the
collapsed ranges, so long lists cost no more per request than short ones.

``GET /`` (any path) → **200** ``hello <address>``; refused → **403** ``forbidden`` (the connection
stays open: the verdict would be the same for its next request, but closing is the client's call).

Behind a reverse proxy every peer is the proxy: resolve the client first (``examples.proxy_aware``).

Run: ``IP_ALLOW=127.0.0.0/8,::1 IP_DENY=127.0.0.2 python -m examples.ip_block --port 8080``
(comma-separated CIDR ranges, read at start; the defaults allow loopback only), then
``curl -i localhost:8080/`` and ``curl -i --interface 127.0.0.2 localhost:8080/``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

from vanilla_async import Request, ServerConfig, StaticResponse, respond

from .acl import AccessList, AclError, AddressSet, parse_address, parse_network

__all__ = ("AccessList", "AclError", "AddressSet", "acl_from_env", "config", "make_config", "make_handler",
           "parse_address", "parse_network")

FORBIDDEN = StaticResponse(403, b"forbidden\n")
DEFAULT_ALLOW = "127.0.0.0/8,::1"


def make_handler(acl: AccessList) -> Callable[[Request, bytearray], None]:
    """The example's handler for ``acl``."""

    def handler(req: Request, out: bytearray) -> None:
        peer = req.peer()
        host = peer[0] if peer is not None else None
        if not acl.permits(host):
            FORBIDDEN.append_to(out)
            return
        respond(out, 200, f"hello {parse_address(host or '')}\n", head=req.method == b"HEAD")

    return handler


def _ranges(raw: str) -> list[str]:
    return [part for part in (p.strip() for p in raw.split(",")) if part]


def acl_from_env(env: Mapping[str, str] = os.environ) -> AccessList:
    """``IP_ALLOW`` (default loopback; empty: allow everyone not denied) and ``IP_DENY``."""
    allow = env.get("IP_ALLOW", DEFAULT_ALLOW)
    return AccessList.of(allow=_ranges(allow) if allow.strip() else None, deny=_ranges(env.get("IP_DENY", "")))


def make_config(acl: AccessList | None = None, **fields: Any) -> ServerConfig:
    """The example's config; ``acl=None`` reads ``IP_ALLOW``/``IP_DENY`` now (before the workers fork)."""
    fields.setdefault("port", 8080)
    return ServerConfig(handler=make_handler(acl or acl_from_env()), **fields)


config = make_config()
