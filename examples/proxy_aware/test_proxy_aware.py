"""examples.proxy_aware over real sockets: 127.0.0.1 trusted in one server, untrusted in another."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from examples.proxy_aware import (
    MalformedForwarding,
    ProxyConfigError,
    ProxyTrust,
    forwarded,
    make_config,
    parse_node,
    trust_from_env,
)
from vanilla_async.testing import Client, ServerProcess, TestServer, serve

ROOT = Path(__file__).resolve().parents[2]
XFF_TRUSTED = ProxyTrust.of(["127.0.0.1/32", "10.0.0.0/8", "2001:db8:ffff::/48"])
FWD_TRUSTED = ProxyTrust.of(["127.0.0.1/32", "10.0.0.0/8"], header="Forwarded")
UNTRUSTED = ProxyTrust.of(["10.0.0.0/8"])


def ask(server: TestServer, headers: bytes = b"") -> Any:
    r = server.request(b"GET / HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    assert r.status == 200, (r.status, r.body)
    return json.loads(r.body)


@pytest.mark.parametrize("headers, client, hops", [
    (b"", "127.0.0.1", 0),
    (b"X-Forwarded-For: 203.0.113.7\r\n", "203.0.113.7", 0),
    (b"X-Forwarded-For: 203.0.113.7, 10.1.2.3\r\n", "203.0.113.7", 1),
    (b"X-Forwarded-For: 6.6.6.6, 203.0.113.7, 10.1.2.3\r\n", "203.0.113.7", 1),  # a spoofed left part is not read
    (b"X-Forwarded-For: garbage!!, [oops, 203.0.113.7\r\n", "203.0.113.7", 0),  # nor is garbage there
    (b"X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.9\r\n", "203.0.113.9", 0),  # lines are one list
    (b"X-Forwarded-For: 203.0.113.7:51000,,  10.0.0.1:80 \r\n", "203.0.113.7", 1),
    (b"X-Forwarded-For: [2001:db8::1]:443, 2001:db8:ffff::2\r\n", "2001:db8::1", 1),
    (b"X-Forwarded-For: ::ffff:198.51.100.4\r\n", "198.51.100.4", 0),
    (b"X-Forwarded-For: 10.0.0.1, 10.0.0.2\r\n", "10.0.0.1", 1),  # all trusted: the leftmost
    (b"X-Forwarded-For: 6.6.6.6, unknown, 10.0.0.2\r\n", "unknown", 1),  # never the proxy's address
    (b"Forwarded: for=6.6.6.6\r\n", "127.0.0.1", 0),  # the header this server does not read: ignored
])
def test_x_forwarded_for_from_a_trusted_peer(headers: bytes, client: str, hops: int) -> None:
    with serve(make_config(XFF_TRUSTED)) as server:
        answer = ask(server, headers)
    via = "x-forwarded-for" if b"X-Forwarded-For" in headers else "peer"
    assert answer == {"client": client, "peer": "127.0.0.1", "via": via, "hops": hops}


@pytest.mark.parametrize("headers, client, hops", [
    (b'Forwarded: for=192.0.2.60;proto=http;by=203.0.113.43\r\n', "192.0.2.60", 0),
    (b'Forwarded: For="[2001:db8:cafe::17]:4711"\r\n', "2001:db8:cafe::17", 0),
    (b'Forwarded: for=6.6.6.6, for=198.51.100.1;proto=https, for="10.0.0.9:8080"\r\n', "198.51.100.1", 1),
    (b'Forwarded: for="6.6.6.6, for=7.7.7.7\r\nForwarded: for=198.51.100.1\r\n', "198.51.100.1", 0),  # open quote
    (b'Forwarded: for=_hidden, for=10.0.0.1\r\n', "_hidden", 1),
    (b'Forwarded: proto=https\r\n', "unknown", 0),
    (b"X-Forwarded-For: 6.6.6.6\r\n", "127.0.0.1", 0),
])
def test_rfc_7239_forwarded_from_a_trusted_peer(headers: bytes, client: str, hops: int) -> None:
    with serve(make_config(FWD_TRUSTED)) as server:
        answer = ask(server, headers)
    assert answer["client"] == client and answer["hops"] == hops
    assert answer["via"] == ("forwarded" if headers.startswith(b"Forwarded") else "peer")


@pytest.mark.parametrize("trust, headers", [
    (XFF_TRUSTED, b"X-Forwarded-For: 203.0.113.7, not-an-ip\r\n"),
    (XFF_TRUSTED, b"X-Forwarded-For: 203.0.113.7, [192.0.2.1]\r\n"),
    (XFF_TRUSTED, b"X-Forwarded-For: 203.0.113.7, 10.0.0.1, 999.1.1.1\r\n"),
    (FWD_TRUSTED, b'Forwarded: for=203.0.113.7, for="198.51.100.1\r\n'),
    (FWD_TRUSTED, b"Forwarded: for=203.0.113.7;for=198.51.100.1\r\n"),
    (FWD_TRUSTED, b"Forwarded: for=203.0.113.7 junk\r\n"),
])
def test_a_malformed_header_where_the_client_is_read_is_a_400(trust: ProxyTrust, headers: bytes) -> None:
    with serve(make_config(trust)) as server:
        client = server.connect()
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
        r = client.read_response()
        assert r.status == 400 and r.body.startswith(b"malformed " + trust.header.encode() + b" header: ")
        client.send(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")  # the connection is still usable
        assert client.read_response().status == 200


@pytest.mark.parametrize("headers", [
    b"X-Forwarded-For: 203.0.113.7\r\n",
    b"X-Forwarded-For: 10.0.0.1, garbage\r\n",  # not even parsed: the peer is not trusted
    b"Forwarded: for=203.0.113.7\r\n",
])
def test_headers_from_an_untrusted_peer_are_ignored(headers: bytes) -> None:
    with serve(make_config(UNTRUSTED)) as server:
        assert ask(server, headers) == {"client": "127.0.0.1", "peer": "127.0.0.1", "via": "peer", "hops": 0}


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_with_curl() -> None:
    with serve(make_config(XFF_TRUSTED)) as server:
        done = subprocess.run(["curl", "-s", "--max-time", "5", "-H", "X-Forwarded-For: 203.0.113.7", server.url + "/"],
                              capture_output=True, timeout=10, check=True)
    assert json.loads(done.stdout)["client"] == "203.0.113.7"


def test_nodes_and_forwarded_parsing() -> None:
    assert forwarded([b'for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711"']) == [
        "192.0.2.60", "[2001:db8:cafe::17]:4711"]
    assert forwarded([b'proto=https;, ,for=1.1.1.1', b'for="a\\"b"']) == ["unknown", "1.1.1.1", 'a"b']
    assert forwarded([b'for="1.1.1.1, for=2.2.2.2', b"for=3.3.3.3"]) == ["<malformed element>", "3.3.3.3"]
    assert str(parse_node("[2001:db8::1]:80").address) == "2001:db8::1"
    assert str(parse_node("192.0.2.1:_port").address) == "192.0.2.1"
    assert parse_node("UNKNOWN").identifier == "unknown"
    for bad in ["", "1.2.3", "[1.2.3.4]", "host.example", "_", "1.2.3.4:99999999"]:
        with pytest.raises(MalformedForwarding):
            parse_node(bad)


def test_trust_settings() -> None:
    assert trust_from_env({}).trusts(parse_node("::1").address)
    assert trust_from_env({"TRUSTED_PROXIES": "10.0.0.0/8", "PROXY_HEADER": "Forwarded"}).header == "forwarded"
    with pytest.raises(ProxyConfigError, match="header must be one of x-forwarded-for, forwarded"):
        ProxyTrust.of(["127.0.0.1"], header="x-real-ip")
    with pytest.raises(ProxyConfigError, match="trusted proxy range '10.0.0.1/8' is not a CIDR range"):
        ProxyTrust.of(["10.0.0.1/8"])
    with pytest.raises(ProxyConfigError, match="single string"):
        ProxyTrust.of("127.0.0.1")


def test_runs_as_a_module() -> None:
    env = {"TRUSTED_PROXIES": "127.0.0.1", "PROXY_HEADER": "forwarded"}
    with ServerProcess("-m", "examples.proxy_aware", "--port", "0", "--workers", "1", cwd=ROOT, env=env) as proc:
        with Client(("127.0.0.1", proc.port())) as client:
            client.send(b"GET / HTTP/1.1\r\nHost: t\r\nForwarded: for=198.51.100.2\r\n\r\n")
            assert json.loads(client.read_response().body)["client"] == "198.51.100.2"
        assert proc.stop(signal.SIGTERM) == 0
