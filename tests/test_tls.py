"""TLS transport, context building and certificate reload against real TLS clients on 127.0.0.1.

The server side is a small edge-triggered epoll loop written here (`LoopServer`): it keeps the ET rule
the engine keeps (read until a short read or EAGAIN, write until EAGAIN, then wait for the next edge),
so a transport that broke the drain contract would stall a test until its deadline and fail it. The
clients are real: Python's ``ssl`` (blocking sockets, or an ``SSLObject`` over memory BIOs when a test
needs to shape the ciphertext), ``openssl s_client`` and ``curl``. Certificates come from ``trustme``
(ECDSA P-256).
"""

from __future__ import annotations

import dataclasses

import fcntl
import hashlib
import logging
import os
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Callable

import pytest
import trustme
from cryptography.hazmat.primitives import serialization

from vanilla_async._core.transport import PlainTransport
from vanilla_async._core.tls import (RECV_SIZE, TLSConfig, TLSTransport, build_context,
                                     reload_certificates)
from vanilla_async._core.config import ServerConfig
from vanilla_async.cli import _configure, _parser
from vanilla_async.errors import ConfigError

HTTP_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n"
BUF = 64 * 1024
OUT_LIMIT = 256 * 1024  # the echo server stops reading while this much echo is queued (backpressure)

needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="the openssl program is not installed")
needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


# -- certificates ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(key_type=trustme.KeyType.ECDSA)


def write_cert(directory: Path, ca: trustme.CA, name: str = "server", cert: trustme.LeafCert | None = None) -> TLSConfig:
    """Issue (or take) a leaf for localhost/127.0.0.1 and write chain + key as PEM files."""
    cert = cert or ca.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.ECDSA)
    certfile, keyfile = directory / f"{name}.pem", directory / f"{name}.key"
    certfile.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    keyfile.write_bytes(cert.private_key_pem.bytes())
    return TLSConfig(certfile=str(certfile), keyfile=str(keyfile))


def der(certfile: str) -> bytes:
    """The DER of the first certificate in a PEM file (the leaf)."""
    return ssl.PEM_cert_to_DER_cert(Path(certfile).read_text())


@pytest.fixture
def tls(tmp_path: Path, ca: trustme.CA) -> TLSConfig:
    return write_cert(tmp_path, ca)


@pytest.fixture
def ca_file(tmp_path: Path, ca: trustme.CA) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


def client_context(ca: trustme.CA, version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(ctx)
    ctx.set_alpn_protocols(["http/1.1"])
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    return ctx


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.005)


def open_fds() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


# -- the edge-triggered test server --------------------------------------------------------------------
class Conn:
    """One accepted connection of `LoopServer` and what happened on it."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, accepted_at: float) -> None:
        self.t = TLSTransport(sock, context, self.on_blocked)
        self.accepted_at = accepted_at
        self.readable = True  # edge state: may there be something to read / room to write?
        self.writable = True
        self.out = bytearray()  # plaintext queued to send
        self.inbuf = bytearray()
        self.received = 0
        self.eof = False
        self.shut = False
        self.responded = False
        self.blocked = 0  # on_blocked() calls
        self.max_pending = 0
        self.alpn: str | None = None
        self.error: BaseException | None = None

    def on_blocked(self) -> None:
        self.blocked += 1
        self.max_pending = max(self.max_pending, self.t.pending)
        self.writable = False  # what the engine does: arm EPOLLOUT and wait for the edge


class LoopServer:
    """An epoll edge-triggered server over `TLSTransport`: ``echo`` or a fixed ``http`` response.

    ``reap_after``: close connections still handshaking after so many seconds (the engine's deadline).
    """

    def __init__(self, context: ssl.SSLContext, mode: str = "echo", listener: socket.socket | None = None,
                 reap_after: float | None = None) -> None:
        self.context = context
        self.mode = mode
        self.reap_after = reap_after
        if listener is None:
            listener = socket.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(64)
        listener.setblocking(False)
        self.listener = listener
        self.port: int = listener.getsockname()[1]
        self.conns: dict[int, Conn] = {}
        self.closed: list[Conn] = []
        self.accepted = 0
        self._stop = False
        self._thread: threading.Thread | None = None

    # lifecycle
    def run(self, limit: float = 60.0) -> None:
        ep = select.epoll()
        try:
            ep.register(self.listener.fileno(), select.EPOLLIN | select.EPOLLET)
            deadline = time.monotonic() + limit
            while not self._stop and time.monotonic() < deadline:
                for fd, events in ep.poll(0.02):
                    if fd == self.listener.fileno():
                        self._accept(ep)
                        continue
                    conn = self.conns.get(fd)
                    if conn is None:
                        continue
                    if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                        conn.readable = True
                    if events & (select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR):
                        conn.writable = True
                    self._service(ep, conn)
                if self.reap_after is not None:
                    now = time.monotonic()
                    for conn in list(self.conns.values()):
                        if conn.t.handshaking and now - conn.accepted_at > self.reap_after:
                            self._close(ep, conn)
        finally:
            for conn in list(self.conns.values()):
                self._close(ep, conn)
            ep.close()
            self.listener.close()

    def start(self) -> LoopServer:
        self._thread = threading.Thread(target=self.run, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        if self._thread is not None:
            self._thread.join(10)
            assert not self._thread.is_alive(), "the loop did not stop"

    def __enter__(self) -> LoopServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def errors(self) -> list[BaseException]:
        return [c.error for c in self.closed if c.error is not None]

    # events
    def _accept(self, ep: select.epoll) -> None:
        for _ in range(1000):
            try:
                sock, _addr = self.listener.accept()
            except BlockingIOError:
                return
            sock.setblocking(False)
            conn = Conn(sock, self.context, time.monotonic())
            self.conns[conn.t.fd] = conn
            self.accepted += 1
            ep.register(conn.t.fd, select.EPOLLIN | select.EPOLLOUT | select.EPOLLET)
            self._service(ep, conn)

    def _close(self, ep: select.epoll, conn: Conn) -> None:
        fd = conn.t.fd
        if self.conns.pop(fd, None) is not None:
            ep.unregister(fd)
            conn.t.close()
            self.closed.append(conn)

    def _on_data(self, conn: Conn, data: bytes) -> None:
        conn.received += len(data)
        if self.mode == "echo":
            conn.out += data
        else:
            conn.inbuf += data
            if not conn.responded and b"\r\n\r\n" in conn.inbuf:
                conn.responded = True
                conn.out += HTTP_RESPONSE

    def _service(self, ep: select.epoll, conn: Conn) -> None:
        t = conn.t
        for _ in range(100_000):  # bounded: every pass makes progress or returns
            progressed = False
            try:
                if conn.writable and t.pending:
                    if t.flush_pending():
                        progressed = True
                    else:
                        conn.writable = False
                if conn.writable and not t.pending and conn.out and not t.handshaking:
                    try:
                        n = t.send(conn.out)
                    except BlockingIOError:
                        conn.writable = False
                    else:
                        del conn.out[:n]
                        progressed = n > 0
                if conn.readable and not conn.eof and len(conn.out) < OUT_LIMIT:
                    try:
                        data = t.recv(BUF)
                    except BlockingIOError:
                        conn.readable = False
                    else:
                        progressed = True
                        if not t.handshaking:
                            conn.alpn = t.alpn
                        if not data:
                            conn.eof = True
                        else:
                            self._on_data(conn, data)
                            if len(data) < BUF:  # the drain contract: nothing more until the next edge
                                conn.readable = False
            except OSError as exc:
                conn.error = exc
                self._close(ep, conn)
                return
            done_sending = not conn.out and not t.pending
            if done_sending and not conn.shut and (conn.eof or (self.mode == "http" and conn.responded)):
                t.shutdown_write()
                conn.shut = True
            if conn.shut and conn.eof:
                self._close(ep, conn)
                return
            if not progressed:
                return
        raise AssertionError("service loop did not settle")


# -- a client over memory BIOs (to shape the ciphertext) -----------------------------------------------
class MemClient:
    def __init__(self, port: int, context: ssl.SSLContext, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket()
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, rcvbuf)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setblocking(False)
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname="localhost")
        self.raw_out = bytearray()
        self.eof = False

    def pump_out(self) -> None:
        self.raw_out += self.outgoing.read()
        while self.raw_out:
            try:
                n = self.sock.send(self.raw_out)
            except BlockingIOError:
                return
            del self.raw_out[:n]

    def pump_in(self) -> None:
        for _ in range(64):
            try:
                raw = self.sock.recv(BUF)
            except BlockingIOError:
                return
            if not raw:
                self.incoming.write_eof()
                self.eof = True
                return
            self.incoming.write(raw)

    def step_handshake(self) -> bool:
        try:
            self.obj.do_handshake()
            done = True
        except ssl.SSLWantReadError:
            done = False
        self.pump_out()
        self.pump_in()
        return done

    def handshake(self, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.step_handshake():
            assert time.monotonic() < deadline, "client handshake timed out"
            select.select([self.sock], [], [], 0.02)

    def records(self, *pieces: bytes) -> bytes:
        """Ciphertext of one TLS record per piece (not sent)."""
        for piece in pieces:
            self.obj.write(piece)
        return self.outgoing.read()

    def close(self) -> None:
        self.sock.close()


def handshake_pair(client: MemClient, t: TLSTransport, timeout: float = 5.0) -> None:
    """Drive both ends of a handshake in this thread."""
    deadline = time.monotonic() + timeout
    client_done = False
    while not client_done or t.handshaking:
        assert time.monotonic() < deadline, "handshake did not complete"
        client_done = client.step_handshake() or client_done
        try:
            t.recv(BUF)
        except BlockingIOError:
            pass
        time.sleep(0.001)


@pytest.fixture
def pair(tls: TLSConfig, ca: trustme.CA):  # type: ignore[no-untyped-def]
    """A handshaken (MemClient, TLSTransport) over a real TCP connection, driven by the test itself."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)  # room for a whole test's ciphertext
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    client = MemClient(listener.getsockname()[1], client_context(ca))
    sock, _ = listener.accept()
    listener.close()
    sock.setblocking(False)
    blocked: list[int] = []
    t = TLSTransport(sock, build_context(tls), lambda: blocked.append(1))
    handshake_pair(client, t)
    yield client, t
    t.close()
    client.close()


def readable(sock_fd: int, timeout: float = 2.0) -> None:
    r, _, _ = select.select([sock_fd], [], [], timeout)
    assert r, "the server socket did not become readable"


# -- clients ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"])
def test_python_ssl_client_echo(tls: TLSConfig, ca: trustme.CA, version: ssl.TLSVersion) -> None:
    with LoopServer(build_context(tls)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                client_context(ca, version).wrap_socket(raw, server_hostname="localhost") as s:
            assert s.version() == version.name.replace("v1_", "v1.")
            assert s.selected_alpn_protocol() == "http/1.1"
            for message in (b"hello", b"x" * 40_000, b"bye"):
                s.sendall(message)
                got = b""
                while len(got) < len(message):
                    chunk = s.recv(65536)
                    assert chunk
                    got += chunk
                assert got == message
        wait_until(lambda: not server.conns, what="the server to close the connection")
    assert server.errors == [] and server.closed[0].alpn == "http/1.1"


@needs_openssl
@pytest.mark.parametrize("flag, protocol", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
def test_openssl_s_client(tls: TLSConfig, ca_file: str, flag: str, protocol: str) -> None:
    with LoopServer(build_context(tls), mode="http") as server:
        result = subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{server.port}", "-servername", "localhost",
             "-CAfile", ca_file, "-verify_return_error", "-alpn", "http/1.1", flag, "-ign_eof"],
            input=b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", capture_output=True, timeout=20)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0, out + result.stderr.decode(errors="replace")
    assert f"New, {protocol}, Cipher is" in out
    assert "ALPN protocol: http/1.1" in out
    assert "Verify return code: 0 (ok)" in out
    assert "HTTP/1.1 200 OK" in out and "hello" in out
    if protocol == "TLSv1.2":
        assert "ECDHE" in out.split(f"New, {protocol}, Cipher is", 1)[1].splitlines()[0]


@needs_curl
def test_curl_gets_the_http_response(tls: TLSConfig, ca_file: str) -> None:
    # (this test loop speaks only HTTP/1.1: offer just that, or curl would pick h2)
    with LoopServer(build_context(dataclasses.replace(tls, alpn=("http/1.1",))), mode="http") as server:
        result = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "--cacert", ca_file, "-w", "|%{http_version}|%{ssl_verify_result}",
             f"https://localhost:{server.port}/", "--resolve", f"localhost:{server.port}:127.0.0.1"],
            capture_output=True, timeout=20)
        assert result.returncode == 0, result.stderr
        assert result.stdout == b"hello\n|1.1|0"
        wait_until(lambda: not server.conns, what="the server to close the connection")
    assert server.errors == []


def test_large_transfer_both_ways_with_backpressure(tls: TLSConfig, ca: trustme.CA) -> None:
    """24 MB up and echoed back; the client reads nothing for a while, so the server's socket fills."""
    total = 24 * 1024 * 1024
    payload = os.urandom(1024 * 1024) * 24
    sent_digest = hashlib.sha256(payload).hexdigest()
    got = hashlib.sha256()
    received = 0
    with LoopServer(build_context(tls)) as server:
        client = MemClient(server.port, client_context(ca), rcvbuf=64 * 1024)
        try:
            client.handshake()
            start = time.monotonic()
            deadline = start + 60
            sent = 0
            closed_notify = False
            while not closed_notify:
                assert time.monotonic() < deadline, f"transfer stalled at {sent} sent, {received} received"
                if sent < total and len(client.raw_out) < 1024 * 1024:
                    client.obj.write(memoryview(payload)[sent:sent + 64 * 1024])
                    sent = min(total, sent + 64 * 1024)
                    if sent == total:
                        try:
                            client.obj.unwrap()  # our close_notify after the last byte
                        except ssl.SSLWantReadError:
                            pass
                client.pump_out()
                if time.monotonic() - start > 0.5:  # hold back reading first: the buffers fill up
                    client.pump_in()
                    try:
                        while True:
                            chunk = client.obj.read(BUF)
                            if not chunk:  # the server's close_notify, after everything
                                closed_notify = True
                                break
                            got.update(chunk)
                            received += len(chunk)
                    except ssl.SSLWantReadError:
                        pass
                    except ssl.SSLZeroReturnError:
                        closed_notify = True  # the server's close_notify, after everything
                    assert not client.eof or closed_notify, "TCP EOF without close_notify"
                select.select([client.sock], [client.sock] if client.raw_out else [], [], 0.01)
        finally:
            client.close()
        wait_until(lambda: not server.conns, what="the server to close the connection")
    assert received == total and got.hexdigest() == sent_digest
    conn = server.closed[0]
    assert server.errors == [] and conn.received == total
    assert conn.blocked >= 1 and conn.max_pending > 0, "the server's socket never filled: backpressure untested"


# -- failures -----------------------------------------------------------------------------------------
def test_plaintext_http_to_the_tls_port_is_closed_promptly(tls: TLSConfig) -> None:
    with LoopServer(build_context(tls)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=3) as s:
            started = time.monotonic()
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            try:
                for _ in range(100):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
            except ConnectionResetError:
                pass
            assert time.monotonic() - started < 2.0
            assert b"HTTP/1.1" not in data  # nothing but (at most) a TLS alert record
        wait_until(lambda: not server.conns, what="the server to drop the connection")
    assert len(server.errors) == 1 and isinstance(server.errors[0], ssl.SSLError)


def client_hello(ca: trustme.CA) -> bytes:
    obj = client_context(ca).wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


def test_reset_mid_handshake_leaks_nothing(tls: TLSConfig, ca: trustme.CA) -> None:
    hello = client_hello(ca)
    with LoopServer(build_context(tls)) as server:
        time.sleep(0.05)
        baseline = open_fds()
        s = socket.create_connection(("127.0.0.1", server.port), timeout=3)
        s.sendall(hello[: len(hello) // 2])
        wait_until(lambda: server.accepted == 1 and len(server.conns) == 1, what="the server to accept")
        conn = next(iter(server.conns.values()))
        assert conn.t.handshaking
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # l_onoff=1, l_linger=0
        s.close()  # RST
        wait_until(lambda: not server.conns, what="the server to drop the reset connection")
        wait_until(lambda: open_fds() == baseline, what="the fd count to return to its baseline")
    assert len(server.errors) == 1 and isinstance(server.errors[0], ConnectionResetError)


@pytest.mark.parametrize("portion", [0.0, 0.5])
def test_stalled_handshake_sends_nothing_and_is_reaped(tls: TLSConfig, ca: trustme.CA, portion: float) -> None:
    hello = client_hello(ca)
    with LoopServer(build_context(tls), reap_after=0.6) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=3) as s:
            s.sendall(hello[: int(len(hello) * portion)])
            wait_until(lambda: server.accepted == 1, what="the server to accept")
            time.sleep(0.2)
            [conn] = server.conns.values()
            assert conn.t.handshaking and conn.t.pending == 0
            s.settimeout(0.2)
            with pytest.raises(socket.timeout):
                s.recv(1)  # the server says nothing to an incomplete ClientHello
            s.settimeout(3)
            assert s.recv(1) == b""  # reaped by the deadline: EOF
        wait_until(lambda: not server.conns, what="the stalled connection to be closed")
    assert server.errors == [] and server.closed[0].t.handshaking


# -- the drain contract --------------------------------------------------------------------------------
def test_drain_contract_many_small_records_in_one_segment(pair: tuple[MemClient, TLSTransport]) -> None:
    client, t = pair
    pieces = [b"%04d," % i for i in range(200)]
    expected = b"".join(pieces)
    client.sock.sendall(client.records(*pieces))  # ~5.4 KB: one loopback segment, 200 records
    readable(t.fd)
    got = bytearray()
    for _ in range(1000):
        chunk = t.recv(7)
        got += chunk
        if len(chunk) < 7:
            break
    # every call but the last returned exactly n: leftover plaintext stayed for the next call
    assert bytes(got) == expected and len(expected) % 7 == len(chunk)
    with pytest.raises(BlockingIOError):
        t.recv(7)  # a short read meant "drained": really nothing left

    client.sock.sendall(client.records(*pieces))
    readable(t.fd)
    assert t.recv(4096) == expected  # one call gathers all 200 records; short: the socket is drained
    with pytest.raises(BlockingIOError):
        t.recv(4096)


def test_drain_contract_record_split_across_segments(pair: tuple[MemClient, TLSTransport]) -> None:
    client, t = pair
    first, second = client.records(b"a" * 3000), client.records(b"b" * 5000)
    client.sock.sendall(first[:1000])
    readable(t.fd)
    with pytest.raises(BlockingIOError):
        t.recv(BUF)  # a partial record: no plaintext yet
    client.sock.sendall(first[1000:] + second[:10])
    time.sleep(0.05)
    assert t.recv(BUF) == b"a" * 3000  # the whole first record; the second's 10 bytes are not plaintext
    with pytest.raises(BlockingIOError):
        t.recv(BUF)
    client.sock.sendall(second[10:])
    readable(t.fd)
    assert t.recv(BUF) == b"b" * 5000


def test_recv_returns_exactly_n_when_the_raw_read_was_full(pair: tuple[MemClient, TLSTransport]) -> None:
    """More ciphertext queued than one raw read takes: recv(n) returns exactly n until the last call."""
    client, t = pair
    payload = os.urandom(2 * RECV_SIZE + 5000)
    ciphertext = client.records(*(payload[i:i + 16384] for i in range(0, len(payload), 16384)))
    client.sock.setblocking(True)
    client.sock.sendall(ciphertext)
    wait_until(lambda: queued(t.fd) == len(ciphertext), what="all the ciphertext to be queued at the server")
    chunks = []
    for _ in range(100):
        chunk = t.recv(50_000)
        chunks.append(len(chunk))
        if len(chunk) < 50_000:
            break
    assert chunks[:-1] == [50_000] * (len(chunks) - 1) and sum(chunks) == len(payload), chunks
    with pytest.raises(BlockingIOError):
        t.recv(50_000)


def queued(fd: int) -> int:
    """Bytes waiting in a socket's receive queue (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]  # type: ignore[no-any-return]


# -- close_notify and EOF ------------------------------------------------------------------------------
def test_close_notify_from_the_client_is_answered(tls: TLSConfig, ca: trustme.CA) -> None:
    with LoopServer(build_context(tls)) as server:
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s = client_context(ca).wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"ping")
        assert s.recv(10) == b"ping"
        plain = s.unwrap()  # sends close_notify and returns only once the server's close_notify arrived
        assert plain.recv(10) == b""  # then the server's FIN
        plain.close()
        wait_until(lambda: not server.conns, what="the server to close")
    assert server.errors == [] and server.closed[0].eof


def test_close_notify_from_the_server(tls: TLSConfig, ca: trustme.CA) -> None:
    with LoopServer(build_context(tls), mode="http") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                client_context(ca).wrap_socket(raw, server_hostname="localhost", suppress_ragged_eofs=False) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            data = b""
            for _ in range(100):
                chunk = s.recv(4096)  # a FIN without close_notify would raise SSLEOFError here
                if not chunk:
                    break
                data += chunk
            assert data == HTTP_RESPONSE
            s.unwrap()
        wait_until(lambda: not server.conns, what="the server to close")
    assert server.errors == []


def test_ragged_eof_from_the_client_is_plain_eof(tls: TLSConfig, ca: trustme.CA) -> None:
    with LoopServer(build_context(tls)) as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                client_context(ca).wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"ping")
            assert s.recv(10) == b"ping"
            socket.socket.shutdown(s, socket.SHUT_WR)  # FIN, no close_notify
            wait_until(lambda: not server.conns, what="the server to treat the FIN as EOF")
    assert server.errors == [] and server.closed[0].eof


def test_send_refuses_new_plaintext_while_ciphertext_is_pending(pair: tuple[MemClient, TLSTransport]) -> None:
    client, t = pair
    blocked: list[int] = []
    t._on_blocked = lambda: blocked.append(t.pending)  # count the signals of this test only
    accepted = []
    for _ in range(1000):  # fill the client's receive buffer (it never reads)
        try:
            accepted.append(t.send(b"z" * 300_000))
        except BlockingIOError:
            break
    else:
        raise AssertionError("the socket never filled")
    # each call goes on slice by slice while the socket takes everything; it stops at the slice the
    # socket did not take whole (that slice is accepted, its leftover ciphertext pending)
    assert accepted and all(a > 0 and (a == 300_000 or a % (256 * 1024) == 0) for a in accepted), accepted
    assert blocked and blocked[0] > 0 and t.pending > 0 and len(blocked) == 1  # signalled once
    with pytest.raises(BlockingIOError):
        t.send(b"more")
    assert not t.flush_pending()
    client.sock.setblocking(True)
    client.sock.settimeout(5)
    drained = 0
    for _ in range(100_000):  # read until the transport's pending ciphertext has gone out
        drained += len(client.sock.recv(1 << 20))
        if t.flush_pending():
            break
    assert t.pending == 0 and t.send(b"more") == 4 and drained > 0


def test_plain_transport_has_the_same_interface() -> None:
    a, b = socket.socketpair()
    with a, b:
        a.setblocking(False)
        t = PlainTransport(a)
        assert (t.fd, t.sendfile_ok, t.handshaking, t.alpn, t.pending) == (a.fileno(), True, False, None, 0)
        assert t.send(b"hi") == 2 and b.recv(2) == b"hi"
        b.sendall(b"yo")
        assert t.recv(10) == b"yo" and t.flush_pending()
        with pytest.raises(BlockingIOError):
            t.recv(10)
        t.shutdown_write()
        assert b.recv(1) == b""
        t.close()


def test_close_is_idempotent_and_recv_after_close_fails(pair: tuple[MemClient, TLSTransport]) -> None:
    _client, t = pair
    t.close()
    t.close()
    with pytest.raises(OSError):
        t.recv(10)
    with pytest.raises(OSError):
        t.send(b"x")


# -- building contexts ---------------------------------------------------------------------------------
def encrypted_key(tls: TLSConfig, tmp_path: Path, password: bytes) -> str:
    assert tls.keyfile is not None
    key = serialization.load_pem_private_key(Path(tls.keyfile).read_bytes(), password=None)
    path = tmp_path / "encrypted.key"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.BestAvailableEncryption(password)))
    return str(path)


def test_build_context_policy(tls: TLSConfig) -> None:
    ctx = build_context(tls)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_2
    assert ctx.options & ssl.OP_NO_COMPRESSION and ctx.options & ssl.OP_CIPHER_SERVER_PREFERENCE
    assert not ctx.options & ssl.OP_NO_TICKET
    tls12 = [c for c in ctx.get_ciphers() if c["protocol"] == "TLSv1.2"]
    assert tls12 and all(c["kea"] == "kx-ecdhe" and c["aead"] for c in tls12)
    assert ctx.verify_mode == ssl.CERT_NONE


def test_build_context_returns_a_given_server_context_as_is(tls: TLSConfig) -> None:
    mine = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert build_context(mine) is mine
    with pytest.raises(ConfigError, match="client SSLContext"):
        build_context(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT))


def test_encrypted_key_with_the_right_password_loads(tls: TLSConfig, tmp_path: Path) -> None:
    keyfile = encrypted_key(tls, tmp_path, b"s3cret")
    build_context(TLSConfig(certfile=tls.certfile, keyfile=keyfile, password="s3cret"))


def test_client_certificates_required(tls: TLSConfig, ca: trustme.CA, ca_file: str) -> None:
    ctx = build_context(TLSConfig(certfile=tls.certfile, keyfile=tls.keyfile, ca_certs=ca_file, cert_reqs=2))
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    with LoopServer(ctx) as server:
        # without a client certificate: refused during the handshake (TLS 1.3 reports it on first read)
        with pytest.raises((ssl.SSLError, ConnectionResetError)):
            with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                    client_context(ca).wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"hi")
                s.recv(10)
        # with one signed by the CA: served
        client_ctx = client_context(ca)
        ca.issue_cert("client@example.com").configure_cert(client_ctx)
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw, \
                client_ctx.wrap_socket(raw, server_hostname="localhost") as s:
            s.sendall(b"hi")
            assert s.recv(10) == b"hi"


def _bad(tls: TLSConfig, tmp_path: Path, ca: trustme.CA, case: str) -> tuple[TLSConfig, str, str]:
    """(config, file that must be named, words that must appear) for one broken input."""
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not PEM\n")
    assert tls.keyfile is not None
    if case == "missing cert":
        missing = str(tmp_path / "nope.pem")
        return TLSConfig(certfile=missing, keyfile=tls.keyfile), missing, "does not exist"
    if case == "cert is a directory":
        return TLSConfig(certfile=str(tmp_path), keyfile=tls.keyfile), str(tmp_path), "is a directory"
    if case == "unreadable cert":
        if os.geteuid() == 0:
            pytest.skip("root reads every file")
        os.chmod(tls.certfile, 0)
        return tls, tls.certfile, "permission denied"
    if case == "not a certificate":
        return TLSConfig(certfile=str(garbage), keyfile=tls.keyfile), str(garbage), "not a PEM certificate"
    if case == "corrupt certificate":
        corrupt = tmp_path / "corrupt.pem"
        corrupt.write_text("-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n")
        return TLSConfig(certfile=str(corrupt), keyfile=tls.keyfile), str(corrupt), "could not be loaded"
    if case == "missing key":
        missing = str(tmp_path / "nokey.key")
        return TLSConfig(certfile=tls.certfile, keyfile=missing), missing, "does not exist"
    if case == "not a key":
        return TLSConfig(certfile=tls.certfile, keyfile=str(garbage)), str(garbage), "no PEM private key"
    if case == "no key in certfile":
        return TLSConfig(certfile=tls.certfile), tls.certfile, "no PEM private key"
    if case == "key does not match":
        other = write_cert(tmp_path, ca, name="other")
        assert other.keyfile is not None
        return TLSConfig(certfile=tls.certfile, keyfile=other.keyfile), other.keyfile, "does not match"
    if case == "encrypted key, no password":
        keyfile = encrypted_key(tls, tmp_path, b"s3cret")
        return TLSConfig(certfile=tls.certfile, keyfile=keyfile), keyfile, "no password was given"
    if case == "wrong password":
        keyfile = encrypted_key(tls, tmp_path, b"s3cret")
        return TLSConfig(certfile=tls.certfile, keyfile=keyfile, password="guess"), keyfile, "wrong password"
    if case == "bad CA file":
        return (TLSConfig(certfile=tls.certfile, keyfile=tls.keyfile, ca_certs=str(garbage), cert_reqs=2),
                str(garbage), "holds no PEM certificate")
    if case == "missing CA file":
        missing = str(tmp_path / "noca.pem")
        return TLSConfig(certfile=tls.certfile, keyfile=tls.keyfile, ca_certs=missing, cert_reqs=1), missing, \
            "does not exist"
    raise AssertionError(case)


@pytest.mark.parametrize("case", [
    "missing cert", "cert is a directory", "unreadable cert", "not a certificate", "corrupt certificate",
    "missing key", "not a key", "no key in certfile", "key does not match", "encrypted key, no password",
    "wrong password", "bad CA file", "missing CA file",
])
def test_build_context_errors_name_the_file(tls: TLSConfig, tmp_path: Path, ca: trustme.CA, case: str) -> None:
    config, path, words = _bad(tls, tmp_path, ca, case)
    with pytest.raises(ConfigError) as info:
        build_context(config)
    message = str(info.value)
    assert repr(path) in message and words in message, message


@pytest.mark.parametrize("kwargs, words", [
    ({"certfile": ""}, "certfile"),
    ({"certfile": "c.pem", "cert_reqs": 3}, "cert_reqs"),
    ({"certfile": "c.pem", "cert_reqs": 2}, "ca_certs"),
    ({"certfile": "c.pem", "alpn": ()}, "alpn"),
    ({"certfile": "c.pem", "alpn": ("",)}, "alpn"),
    ({"certfile": "c.pem", "handshake_timeout": 0}, "handshake_timeout"),
    ({"certfile": "c.pem", "keyfile": ""}, "keyfile"),
])
def test_tls_config_validation(kwargs: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        TLSConfig(**kwargs)  # type: ignore[arg-type]


# -- certificate rotation ------------------------------------------------------------------------------
def served_cert(port: int, ca: trustme.CA) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw, \
            client_context(ca).wrap_socket(raw, server_hostname="localhost") as s:
        cert = s.getpeercert(binary_form=True)
        assert cert is not None
        return cert


def test_reload_certificates(tls: TLSConfig, tmp_path: Path, ca: trustme.CA,
                             caplog: pytest.LogCaptureFixture) -> None:
    context = build_context(tls)
    old = der(tls.certfile)
    with LoopServer(context) as server:
        assert served_cert(server.port, ca) == old
        # an open connection, made before the rotation
        raw = socket.create_connection(("127.0.0.1", server.port), timeout=5)
        s = client_context(ca).wrap_socket(raw, server_hostname="localhost")
        s.sendall(b"one")
        assert s.recv(10) == b"one"

        write_cert(tmp_path, ca)  # a new leaf over the same file names
        new = der(tls.certfile)
        assert new != old
        assert reload_certificates(context, tls) is True
        assert served_cert(server.port, ca) == new
        s.sendall(b"two")  # the open connection carries on, with its certificate
        assert s.recv(10) == b"two" and s.getpeercert(binary_form=True) == old

        Path(tls.certfile).write_text("-----BEGIN CERTIFICATE-----\ntruncated")
        with caplog.at_level(logging.ERROR, logger="vanilla_async"):
            assert reload_certificates(context, tls) is False
        assert "keeping the current certificate" in caplog.text and tls.certfile in caplog.text
        assert served_cert(server.port, ca) == new

        other = write_cert(tmp_path, ca, name="other")  # a key that does not match: refused as a whole
        assert other.keyfile is not None
        write_cert(tmp_path, ca)
        Path(tls.keyfile or "").write_bytes(Path(other.keyfile).read_bytes())
        latest = der(tls.certfile)
        assert reload_certificates(context, tls) is False
        assert served_cert(server.port, ca) == new != latest
        s.close()


# -- resumption across forked workers --------------------------------------------------------------------
def _serve_in_child(listener: socket.socket, context: ssl.SSLContext | None, tls: TLSConfig) -> int:
    pid = os.fork()
    if pid == 0:  # the child: serve until killed (bounded), never return into pytest
        code = 0
        try:
            LoopServer(context or build_context(tls), mode="http", listener=listener).run(limit=30)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return pid


def s_client(port: int, ca_file: str, flag: str, session: Path, save: bool) -> str:
    result = subprocess.run(
        ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", "-CAfile", ca_file,
         flag, "-ign_eof", "-sess_out" if save else "-sess_in", str(session)],
        input=b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", capture_output=True, timeout=20)
    out = result.stdout.decode(errors="replace")
    assert result.returncode == 0 and "hello" in out, out + result.stderr.decode(errors="replace")
    return out


@needs_openssl
@pytest.mark.parametrize("flag, protocol", [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")])
@pytest.mark.parametrize("shared", [True, False], ids=["context-built-before-fork", "context-per-process"])
def test_resumption_across_forked_processes(tls: TLSConfig, ca_file: str, tmp_path: Path, flag: str,
                                            protocol: str, shared: bool) -> None:
    """A ticket issued by process A resumes on process B iff both inherited one pre-fork context."""
    context = build_context(tls) if shared else None
    listeners = []
    for _ in range(2):
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        listeners.append(listener)
    ports = [listener.getsockname()[1] for listener in listeners]
    pids = [_serve_in_child(listener, context, tls) for listener in listeners]
    for listener in listeners:
        listener.close()
    try:
        session = tmp_path / "session.pem"
        first = s_client(ports[0], ca_file, flag, session, save=True)
        assert f"New, {protocol}" in first
        second = s_client(ports[1], ca_file, flag, session, save=False)
        if shared:
            assert f"Reused, {protocol}" in second, second
        else:
            assert f"New, {protocol}" in second, second  # the control: separate ticket keys do not resume
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


# -- ServerConfig.tls and the --ssl-* flags ------------------------------------------------------------
def _handler(req: object, out: bytearray) -> None:
    out += b"HTTP/1.1 204 No Content\r\n\r\n"


def configure(config: ServerConfig, *argv: str) -> ServerConfig:
    return _configure(config, _parser("test", with_target=False).parse_args(list(argv)))


def test_server_config_tls_field(tls: TLSConfig) -> None:
    assert ServerConfig(handler=_handler).tls is None
    assert ServerConfig(handler=_handler, tls=tls).tls is tls
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    assert ServerConfig(handler=_handler, tls=context).tls is context
    with pytest.raises(ConfigError, match="ServerConfig.tls must be"):
        ServerConfig(handler=_handler, tls="cert.pem")  # type: ignore[arg-type]


def test_ssl_flags_map_to_a_tls_config() -> None:
    plain = ServerConfig(handler=_handler)
    assert configure(plain).tls is None
    got = configure(plain, "--ssl-certfile", "c.pem", "--ssl-keyfile", "k.pem", "--ssl-keyfile-password", "pw",
                    "--ssl-ca-certs", "ca.pem", "--ssl-cert-reqs", "2")
    assert got.tls == TLSConfig(certfile="c.pem", keyfile="k.pem", password="pw", ca_certs="ca.pem", cert_reqs=2)
    with pytest.raises(ConfigError, match="--ssl-keyfile given without --ssl-certfile"):
        configure(plain, "--ssl-keyfile", "k.pem")
    # a config with its own TLSConfig: --ssl-certfile replaces it (keeping ALPN), other flags amend it
    own = ServerConfig(handler=_handler, tls=TLSConfig(certfile="a.pem", keyfile="a.key", alpn=("h2", "http/1.1")))
    assert configure(own, "--ssl-certfile", "b.pem").tls == TLSConfig(certfile="b.pem", alpn=("h2", "http/1.1"))
    assert configure(own, "--ssl-keyfile-password", "pw").tls == TLSConfig(
        certfile="a.pem", keyfile="a.key", password="pw", alpn=("h2", "http/1.1"))
    with pytest.raises(SystemExit):
        configure(plain, "--ssl-certfile", "c.pem", "--ssl-cert-reqs", "3")


def test_reload_across_key_types_keeps_the_old_certificate_too(tmp_path: Path, ca: trustme.CA) -> None:
    """Pins the documented caveat: OpenSSL keeps one certificate per key type, so an ECDSA → RSA
    rotation adds the RSA one beside the ECDSA one, and a client that accepts both still gets ECDSA."""
    tls = write_cert(tmp_path, ca)
    old = der(tls.certfile)
    context = build_context(tls)
    write_cert(tmp_path, ca, cert=ca.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.RSA))
    assert reload_certificates(context, tls) is True
    with LoopServer(context) as server:
        assert served_cert(server.port, ca) == old
