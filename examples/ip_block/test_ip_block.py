"""examples.ip_block over real sockets: 127.0.0.1, other loopback addresses, and ::1."""

from __future__ import annotations

import http.client
import ipaddress
import signal
import socket
from pathlib import Path

import pytest

from examples.ip_block import AccessList, AclError, AddressSet, acl_from_env, make_config, parse_address
from vanilla_async import ServerConfig
from vanilla_async.testing import Client, ServerProcess, TestServer, serve

ROOT = Path(__file__).resolve().parents[2]


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


class IPv6TestServer(TestServer):
    """`TestServer`, listening on [::1] instead of 127.0.0.1."""

    __test__ = False

    def __init__(self, config: ServerConfig) -> None:
        super().__init__(config)
        self.config = config.with_(host="::1", port=0, workers=1)

    @property
    def address(self) -> tuple[str, int]:
        assert self.worker is not None, "the server is not running"
        return ("::1", self.worker.port)


def status_from(host: str, port: int, source: str | None = None) -> tuple[int, bytes]:
    """GET / with http.client (from ``source`` when given); the status and body."""
    conn = http.client.HTTPConnection(host, port, timeout=5, source_address=(source, 0) if source else None)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_deny_wins_over_allow_for_loopback_addresses() -> None:
    acl = AccessList.of(allow=["127.0.0.0/8"], deny=["127.0.0.2/32", "127.0.1.0/24"])
    with serve(make_config(acl)) as server:
        assert status_from("127.0.0.1", server.port) == (200, b"hello 127.0.0.1\n")
        assert status_from("127.0.0.1", server.port, "127.0.0.2") == (403, b"forbidden\n")
        assert status_from("127.0.0.1", server.port, "127.0.0.3") == (200, b"hello 127.0.0.3\n")
        assert status_from("127.0.0.1", server.port, "127.0.1.200")[0] == 403


def test_an_allow_list_refuses_everyone_else() -> None:
    with serve(make_config(AccessList.of(allow=["10.0.0.0/8", "2001:db8::/32"]))) as server:
        client = server.connect()
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n" * 2)
        assert [(r.status, r.body) for r in client.read_responses(2)] == [(403, b"forbidden\n")] * 2


def test_no_allow_list_means_everyone_not_denied() -> None:
    with serve(make_config(AccessList.of(deny=["192.0.2.0/24"]))) as server:
        assert server.request(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n").status == 200


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback (::1) on this machine")
@pytest.mark.parametrize("acl, expected", [
    (AccessList.of(allow=["::1"]), 200),
    (AccessList.of(allow=["::/0"], deny=["::1/128"]), 403),
    (AccessList.of(allow=["127.0.0.0/8"]), 403),  # an IPv4 range does not cover ::1
    (AccessList.of(deny=["127.0.0.0/8"]), 200),
])
def test_ipv6_clients_over_the_ipv6_loopback(acl: AccessList, expected: int) -> None:
    with IPv6TestServer(make_config(acl)) as server:
        status, body = status_from("::1", server.port)
        assert status == expected
        assert body == (b"hello ::1\n" if expected == 200 else b"forbidden\n")


def test_address_sets_collapse_and_match_both_families() -> None:
    s = AddressSet.of(["10.0.0.0/9", "10.128.0.0/9", "192.0.2.7", "2001:db8::/48", "2001:db8:0:1::/64"])
    assert [str(n) for n in s.networks] == ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/48"]
    assert "10.0.0.0" in s and "10.255.255.255" in s and "11.0.0.0" not in s and "9.255.255.255" not in s
    assert "192.0.2.7" in s and "192.0.2.6" not in s and "192.0.2.8" not in s
    assert "2001:db8::1" in s and "2001:db8:0:ffff::1" in s and "2001:db8:1::" not in s
    assert "::ffff:10.1.2.3" in s  # IPv4-mapped IPv6 is matched as IPv4
    assert "fe80::1%eth0" not in s and "2001:db8::1%eth0" in s
    assert ipaddress.ip_address("10.9.9.9") in s
    assert "not an address" not in s and "" not in s and 42 not in s
    assert "0.0.0.0" not in AddressSet.of([]) and len(AddressSet.of([])) == 0


def test_access_list_fails_closed() -> None:
    acl = AccessList.of(deny=["192.0.2.0/24"])
    assert acl.permits("198.51.100.1") and not acl.permits("192.0.2.1")
    assert not acl.permits(None) and not acl.permits("garbage") and not acl.permits("")
    assert not acl.permits("::ffff:192.0.2.9")
    assert parse_address("::ffff:192.0.2.9") == ipaddress.ip_address("192.0.2.9")


@pytest.mark.parametrize("ranges, message", [
    (["10.0.0.1/8"], r"'10.0.0.1/8' is not a CIDR range .*; did you mean 10.0.0.0/8\?"),
    (["10.0.0.0/33"], r"'10.0.0.0/33' is not a CIDR range"),
    (["example.com"], r"'example.com' is not a CIDR range"),
    ("10.0.0.0/8", r"expected a list of CIDR ranges, got the single string"),
])
def test_a_bad_range_says_what_is_wrong(ranges: list[str], message: str) -> None:
    with pytest.raises(AclError, match=message):
        AccessList.of(deny=ranges)


def test_lists_from_the_environment() -> None:
    default = acl_from_env({})
    assert default.permits("127.0.0.5") and default.permits("::1") and not default.permits("192.0.2.1")
    open_list = acl_from_env({"IP_ALLOW": "", "IP_DENY": " 192.0.2.0/24 , 2001:db8::/32,"})
    assert open_list.allow is None and open_list.permits("198.51.100.1") and not open_list.permits("2001:db8::5")
    with pytest.raises(AclError, match="'nope' is not a CIDR range"):
        acl_from_env({"IP_DENY": "nope"})


def test_runs_as_a_module() -> None:
    env = {"IP_ALLOW": "127.0.0.0/8", "IP_DENY": "127.0.0.2"}
    with ServerProcess("-m", "examples.ip_block", "--port", "0", "--workers", "1", cwd=ROOT, env=env) as proc:
        port = proc.port()
        with Client(("127.0.0.1", port)) as client:
            client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            assert client.read_response().status == 200
        assert status_from("127.0.0.1", port, "127.0.0.2")[0] == 403
        assert proc.stop(signal.SIGTERM) == 0
