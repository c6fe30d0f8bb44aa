"""CIDR sets and allow/deny lists for IPv4 and IPv6 — generic, no HTTP (could move into the library).

Theory of operation
-------------------
`AddressSet` turns a list of CIDR ranges (``"10.0.0.0/8"``, ``"2001:db8::/32"``, or single
addresses) into, per IP version, a sorted list of disjoint integer intervals: ``ipaddress``
collapses overlapping and adjacent networks first, so membership is one ``bisect`` over the
interval starts — O(log n) whatever the list's length, with no per-request allocation beyond
parsing the address.

Addresses are normalised before matching: an IPv4-mapped IPv6 address (``::ffff:192.0.2.1``, what
a dual-stack ``::`` listener reports for IPv4 clients) is matched as its IPv4 address, and an IPv6
zone (``fe80::1%eth0``) is dropped. A string that is not an address is in no set.

`AccessList` decides: **deny wins**; otherwise, when an allow list is given, only addresses in
it pass; with no allow list everything not denied passes. An address that cannot be parsed (or
a missing one) is refused: the list fails closed.

Ranges are parsed strictly: ``10.0.0.1/8`` has host bits set and is refused with a message that
names the network meant (``10.0.0.0/8``), since such a typo usually means the author had a
different range in mind.
"""

from __future__ import annotations

import bisect
import ipaddress
from dataclasses import dataclass, field
from typing import Iterable, Union

from vanilla_async import ConfigError

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]


class AclError(ConfigError):
    """A CIDR range in an allow or deny list cannot be used."""


def parse_network(text: str) -> IPNetwork:
    """``"10.0.0.0/8"``, ``"::1"``, ``"2001:db8::/32"`` → a network; `AclError` saying why not."""
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        hint = ""
        try:
            hint = f"; did you mean {ipaddress.ip_network(text.strip(), strict=False)}?"
        except ValueError:
            pass
        raise AclError(f"{text!r} is not a CIDR range ({exc}){hint}") from None


def parse_address(text: str) -> IPAddress | None:
    """The normalised address (IPv4-mapped → IPv4, zone dropped), or ``None`` if ``text`` is none."""
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@dataclass(frozen=True)
class AddressSet:
    """A set of CIDR ranges; ``address in s`` for ``str`` or ``ipaddress`` addresses."""

    networks: tuple[IPNetwork, ...]  #: the collapsed ranges, IPv4 first
    _starts: dict[int, list[int]] = field(repr=False, compare=False)
    _ends: dict[int, list[int]] = field(repr=False, compare=False)

    @classmethod
    def of(cls, ranges: Iterable[str | IPNetwork]) -> AddressSet:
        if isinstance(ranges, (str, bytes)):
            raise AclError(f"expected a list of CIDR ranges, got the single string {ranges!r}; wrap it in a list")
        parsed = [r if not isinstance(r, str) else parse_network(r) for r in ranges]
        v4: list[IPNetwork] = list(ipaddress.collapse_addresses(
            n for n in parsed if isinstance(n, ipaddress.IPv4Network)))
        v6: list[IPNetwork] = list(ipaddress.collapse_addresses(
            n for n in parsed if isinstance(n, ipaddress.IPv6Network)))
        starts: dict[int, list[int]] = {4: [], 6: []}
        ends: dict[int, list[int]] = {4: [], 6: []}
        for network in [*v4, *v6]:  # collapse_addresses yields them sorted and disjoint
            starts[network.version].append(int(network.network_address))
            ends[network.version].append(int(network.broadcast_address))
        return cls(tuple([*v4, *v6]), starts, ends)

    def __contains__(self, address: object) -> bool:
        if isinstance(address, str):
            parsed = parse_address(address)
            if parsed is None:
                return False
        elif isinstance(address, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
            parsed = address
        else:
            return False
        starts = self._starts[parsed.version]
        value = int(parsed)
        i = bisect.bisect_right(starts, value) - 1
        return i >= 0 and value <= self._ends[parsed.version][i]

    def __len__(self) -> int:
        return len(self.networks)


@dataclass(frozen=True)
class AccessList:
    """Deny wins; with an allow list, only its members pass; unparseable addresses never pass."""

    allow: AddressSet | None
    deny: AddressSet

    @classmethod
    def of(cls, *, allow: Iterable[str | IPNetwork] | None = None, deny: Iterable[str | IPNetwork] = ()) -> AccessList:
        return cls(AddressSet.of(allow) if allow is not None else None, AddressSet.of(deny))

    def permits(self, address: str | IPAddress | None) -> bool:
        parsed = parse_address(address) if isinstance(address, str) else address
        if parsed is None or parsed in self.deny:
            return False
        return self.allow is None or parsed in self.allow
