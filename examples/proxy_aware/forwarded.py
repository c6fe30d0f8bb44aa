"""The real client address behind trusted reverse proxies — generic, no server (could move into the library).

Theory of operation
-------------------
A reverse proxy connects to us itself, so the socket's peer is the proxy; the client's address
travels in a header the proxy appends to: ``X-Forwarded-For: client, proxy1, proxy2`` (de facto)
or RFC 7239 ``Forwarded: for=client, for=proxy1, for="[2001:db8::1]:4711"``. Anyone can *send*
these headers, so they are believed only as far as a chain of trusted machines vouches for them:

1. If the direct peer is not in the trusted CIDR list, the headers are ignored: the client is
   the peer (spoofed headers from the open internet change nothing).
2. Otherwise the header's hops are walked **right to left** (the rightmost was written by the
   proxy that talks to us). A trusted hop is skipped; the first hop that is not trusted is the
   client — everything left of it was written by that client or its proxies and is not looked at,
   so garbage there is harmless.
3. A hop that names no address — ``unknown``, or an RFC 7239 obfuscated identifier such as
   ``_hidden`` (also a ``Forwarded`` element without ``for=``) — ends the walk too: the client is
   that identifier (e.g. ``"unknown"``). Never the proxy's own address: a client must not be able
   to pass itself off as a trusted machine (and past an allow list) by confusing the chain.
4. A hop that cannot be parsed (or an unterminated quoted-string) raises `MalformedForwarding`,
   and the server answers **400**, for the same reason. Only the part of the chain actually
   walked is judged.
5. When every hop is trusted, the client is the leftmost hop (a trusted machine itself, e.g. an
   internal health check that went through the proxy).

**One header, chosen by configuration.** The trusted proxies must set (append to) the header we
read. Reading both, or "Forwarded if present, else X-Forwarded-For", lets a client forge the
header that the proxy passes through untouched — so `ProxyTrust` reads exactly one.

Repeated header lines are one list in order (RFC 9110 §5.3); each ``Forwarded`` line is parsed on
its own, so a quote left open by the client cannot swallow the element that a proxy sent on a
later line. Ports are accepted and dropped (``198.51.100.7:4711``, ``"[2001:db8::1]:80"``); an
IPv4-mapped IPv6 address counts as IPv4; empty list elements are ignored.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Iterable, NamedTuple, Sequence, Union

from vanilla_async import ConfigError, VanillaError
from vanilla_async.grammar import TOKEN_STR_PATTERN

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

HEADERS = ("x-forwarded-for", "forwarded")


class ProxyConfigError(ConfigError):
    """A trusted-proxy setting makes no sense."""


class MalformedForwarding(VanillaError):
    """A forwarding header from a trusted proxy cannot be parsed where the client must be read: answer 400."""


class ClientAddress(NamedTuple):
    """Who the client is, and how we know."""

    host: str  #: an IP address, or an identifier such as ``"unknown"`` / ``"_hidden"`` (see step 3)
    peer: str  #: the direct peer (the socket's address)
    via: str  #: ``"peer"`` or the header name the address came from
    hops: int  #: trusted hops skipped in the header (0 when ``via == "peer"``)

    @property
    def address(self) -> IPAddress | None:
        """``host`` as an address, or ``None`` when it is an identifier."""
        return _address(self.host)


def _address(text: str) -> IPAddress | None:
    try:
        parsed = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return parsed.ipv4_mapped
    return parsed


# -- one hop (a node) ----------------------------------------------------------------------------------
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")
_PORT = r"(?::(?:[0-9]{1,5}|_[A-Za-z0-9._-]+))?"
_NODE = re.compile(r"\[(?P<v6>[0-9A-Fa-f:.]+)\]" + _PORT + r"|(?P<v4>[0-9.]+)" + _PORT + r"|(?P<bare>[0-9A-Fa-f:.]+)")


class Hop(NamedTuple):
    """One hop of a chain: an address, or an identifier (``unknown``, ``_obfuscated``)."""

    address: IPAddress | None
    identifier: str  #: the identifier when ``address`` is None


def parse_node(text: str) -> Hop:
    """A node as written in either header; `MalformedForwarding` when it is neither address nor identifier."""
    node = text.strip()
    if node.lower() == "unknown":
        return Hop(None, "unknown")
    if _OBFUSCATED.fullmatch(node):
        return Hop(None, node)
    match = _NODE.fullmatch(node)
    if match is not None:
        raw = match["v6"] or match["v4"] or match["bare"]
        address = _address(raw)
        # Brackets are for IPv6 only: "[192.0.2.1]" is refused ("[::ffff:192.0.2.1]" is IPv6).
        if address is not None and (match["v6"] is None or address.version == 6 or raw.startswith("::ffff:")):
            return Hop(address, "")
    shown = node if len(node) <= 60 else node[:60] + "..."
    raise MalformedForwarding(f"{shown!r} is not an IP address, 'unknown' or an obfuscated '_identifier'")


# -- whole headers --------------------------------------------------------------------------------------
def x_forwarded_for(lines: Sequence[bytes]) -> list[str]:
    """The nodes of ``X-Forwarded-For`` lines, left to right (empty elements dropped)."""
    nodes: list[str] = []
    for line in lines:
        nodes.extend(e for e in (p.strip() for p in line.decode("latin-1").split(",")) if e)
    return nodes


_TOKEN = TOKEN_STR_PATTERN
_PAIR = re.compile(r"[ \t]*(" + _TOKEN + r")=(" + _TOKEN + r'|"(?:[^"\\]|\\.)*")[ \t]*')
_UNQUOTE = re.compile(r"\\(.)")
_SEPARATOR = re.compile(r"[ \t]*([;,]|$)")


def forwarded(lines: Sequence[bytes]) -> list[str]:
    """The ``for=`` nodes of RFC 7239 ``Forwarded`` lines, left to right.

    An element without ``for=`` gives ``"unknown"``. An element that breaks the grammar (or has two
    ``for=``) gives a node that `parse_node` refuses, so it counts only if the walk reaches it; an
    unterminated quote spoils the rest of its line, never the next line.
    """
    nodes: list[str] = []
    for raw in lines:
        line = raw.decode("latin-1")
        pos, end = 0, len(line)
        element: str | None = None  # the for= of the element being read
        broken = seen = False  # the element breaks the grammar / has any pair
        while pos <= end:
            pair = _PAIR.match(line, pos)
            if pair is not None:
                seen = True
                if pair[1].lower() == "for":
                    if element is not None:  # a second for= in one element: ambiguous, refuse it
                        broken = True
                    value = pair[2]
                    element = _UNQUOTE.sub(r"\1", value[1:-1]) if value.startswith('"') else value
                pos = pair.end()
            sep = _SEPARATOR.match(line, pos)
            if sep is None:  # garbage: skip to the next comma outside quotes (or the end of the line)
                broken = True
                pos = _skip_to_comma(line, pos)
                sep = _SEPARATOR.match(line, pos)
                assert sep is not None
            if sep[1] != ";":  # "," or the end of the line: the element is complete
                if broken:
                    nodes.append("<malformed element>")
                elif seen:
                    nodes.append(element if element is not None else "unknown")
                element, broken, seen = None, False, False
                if not sep[1]:
                    break
            pos = sep.end()
    return nodes


def _skip_to_comma(line: str, pos: int) -> int:
    quoted = False
    i = pos
    while i < len(line):
        c = line[i]
        if quoted and c == "\\":
            i += 2
            continue
        if c == '"':
            quoted = not quoted
        elif c == "," and not quoted:
            return i
        i += 1
    return len(line)


# -- trust ----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProxyTrust:
    """Which peers are trusted proxies, and which header they append the client to."""

    trusted: tuple[IPNetwork, ...]
    header: str = "x-forwarded-for"

    @classmethod
    def of(cls, trusted: Iterable[str], header: str = "x-forwarded-for") -> ProxyTrust:
        if isinstance(trusted, (str, bytes)):
            raise ProxyConfigError(f"trusted must be a list of CIDR ranges, got the single string {trusted!r}")
        networks: list[IPNetwork] = []
        for text in trusted:
            try:
                networks.append(ipaddress.ip_network(text.strip(), strict=True))
            except ValueError as exc:
                raise ProxyConfigError(f"trusted proxy range {text!r} is not a CIDR range: {exc}") from None
        header = header.lower()
        if header not in HEADERS:
            raise ProxyConfigError(
                f"header must be one of {', '.join(HEADERS)} (the one your proxies set), got {header!r}")
        return cls(tuple(networks), header)

    def trusts(self, address: IPAddress | None) -> bool:
        return address is not None and any(address in network for network in self.trusted)

    def resolve(self, peer: str, header_lines: Sequence[bytes]) -> ClientAddress:
        """The client, given the direct ``peer`` and the lines of `header` (see the module docstring)."""
        if not header_lines or not self.trusts(_address(peer)):
            return ClientAddress(peer, peer, "peer", 0)
        nodes = forwarded(header_lines) if self.header == "forwarded" else x_forwarded_for(header_lines)
        if not nodes:
            return ClientAddress(peer, peer, "peer", 0)
        for skipped, node in enumerate(reversed(nodes)):
            hop = parse_node(node)
            if hop.address is None:
                return ClientAddress(hop.identifier, peer, self.header, skipped)
            if not self.trusts(hop.address):
                return ClientAddress(str(hop.address), peer, self.header, skipped)
        leftmost = parse_node(nodes[0]).address
        return ClientAddress(str(leftmost), peer, self.header, len(nodes) - 1)
