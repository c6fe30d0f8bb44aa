"""HTTPS through the whole server: handshakes in the reactor, their failures, resumption across
workers, certificate rotation by SIGHUP, file bodies and a browser — real clients only (Python's
ssl, openssl s_client, curl, headless Chromium). The end-to-end suites (test_http, test_async,
test_streaming) also run over TLS through conftest's ``each_transport``."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
from pathlib import Path

import pytest
import trustme

from vanilla_async import FileBody, Limits, Request, respond
from vanilla_async._core.tls import TLSConfig
from vanilla_async.testing import Browser, ServerProcess, serve, test_ca, wait_until

ROOT = Path(__file__).resolve().parents[1]
GET = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"


def hello(req: Request, out: bytearray) -> None:
    respond(out, 200, b"hello over TLS")


def _tls() -> TLSConfig:
    return test_ca().server_config()


def test_a_stalled_handshake_is_reaped_with_nothing_sent(backend: str) -> None:
    tls = test_ca().server_config(handshake_timeout=0.3)
    with serve(hello, backend=backend, tls=tls, limits=Limits(idle_timeout=30)) as server:
        raw = socket.create_connection(server.address, timeout=5)
        raw.sendall(b"\x16\x03\x01\x00\xff\x01")  # the start of a ClientHello, then silence
        started = time.monotonic()
        assert raw.recv(100) == b""  # closed by the handshake deadline, not the 30 s idle one
        assert time.monotonic() - started < 3
        raw.close()
        assert wait_until(lambda: server.worker is not None and not server.worker.conns)


def test_cleartext_http_sent_to_the_tls_port_is_closed_promptly(backend: str) -> None:
    with serve(hello, backend=backend, tls=_tls()) as server:
        raw = socket.create_connection(server.address, timeout=5)
        raw.sendall(GET)
        started = time.monotonic()
        data = b""
        try:
            while chunk := raw.recv(1000):
                data += chunk
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 2
        assert not data.startswith(b"HTTP/1.1 200")  # (at most a TLS alert)
        raw.close()


def test_a_thousand_handshakes_reset_at_random_points_leave_nothing_behind(backend: str) -> None:
    """Clients do the handshake step by step through memory BIOs and reset the TCP connection at a
    random point: before the ClientHello, after it, after part of it, after Finished, mid-request."""
    rng = random.Random(1234)
    client_ctx = test_ca().client_context()
    with serve(hello, backend=backend, tls=_tls()) as server:  # (the TestServer leak check runs at exit)
        for i in range(1000):
            sock = socket.create_connection(server.address, timeout=5)
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = client_ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
            try:
                obj.do_handshake()
            except ssl.SSLWantReadError:
                pass
            hello_bytes = outgoing.read()
            point = rng.choice(["connect", "partial-hello", "hello", "finished", "request"])
            if point == "partial-hello":
                sock.sendall(hello_bytes[:rng.randrange(1, len(hello_bytes))])
            elif point != "connect":
                sock.sendall(hello_bytes)
                if point in ("finished", "request"):
                    for _ in range(10):  # bounded
                        data = sock.recv(65536)
                        if not data:
                            break
                        incoming.write(data)
                        try:
                            obj.do_handshake()
                            break
                        except ssl.SSLWantReadError:
                            continue
                    sock.sendall(outgoing.read())
                    if point == "request":
                        obj.write(GET[:rng.randrange(1, len(GET))])
                        sock.sendall(outgoing.read())
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()
            if i % 100 == 99:
                assert wait_until(lambda: server.worker is not None and not server.worker.conns, 10), i
        # still serving after all that
        with server.connect() as client:
            client.send(GET)
            assert client.read_response().body == b"hello over TLS"


def test_a_20_mb_file_body_over_tls_arrives_byte_identical(backend: str, tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = os.urandom(20 * 1024 * 1024)
    path.write_bytes(data)

    def handler(req: Request, out: bytearray) -> FileBody:
        out += b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(data)
        return FileBody(os.open(path, os.O_RDONLY), 0, len(data))

    with serve(handler, backend=backend, tls=_tls()) as server:
        with server.connect(timeout=30) as client:
            client.send(GET + GET)  # the second waits behind the file (pipelining over TLS)
            first, second = client.read_responses(2)
    assert hashlib.sha256(first.body).digest() == hashlib.sha256(data).digest()
    assert second.body == data


# -- real processes: resumption across workers, rotation by SIGHUP, openssl, curl, a browser -------------
def _ca_files(tmp_path: Path, name: str) -> tuple[trustme.CA, str, str, str]:
    ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
    cert = ca.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.ECDSA)
    certfile, keyfile, cafile = (str(tmp_path / f"{name}.{ext}") for ext in ("pem", "key", "ca.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(certfile)
    cert.private_key_pem.write_to_path(keyfile)
    ca.cert_pem.write_to_path(cafile)
    return ca, certfile, keyfile, cafile


def _https_server(certfile: str, keyfile: str, workers: int = 2) -> ServerProcess:
    return ServerProcess("-m", "examples.https", "--port", "0", "--workers", str(workers),
                         "--ssl-certfile", certfile, "--ssl-keyfile", keyfile, cwd=ROOT)


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{tool} is missing; CI installs it (scripts/system-deps)")
        pytest.skip(f"{tool} is not installed")
    return path


def _s_client(port: int, cafile: str, *extra: str) -> str:
    result = subprocess.run(
        [_need("openssl"), "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost", "-CAfile", cafile,
         "-alpn", "http/1.1", "-ign_eof", *extra],
        input=b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", capture_output=True, timeout=20)
    return result.stdout.decode("latin-1") + result.stderr.decode("latin-1")


def test_openssl_s_client_sees_tls13_alpn_and_resumes_on_either_worker(tmp_path: Path) -> None:
    _, certfile, keyfile, cafile = _ca_files(tmp_path, "server")
    session = str(tmp_path / "session.pem")
    with _https_server(certfile, keyfile, workers=2) as proc:
        port = proc.port()
        first = _s_client(port, cafile, "-sess_out", session)
        assert "Protocol  : TLSv1.3" in first or "TLSv1.3" in first, first
        assert "ALPN protocol: http/1.1" in first, first
        assert '"status"' in first  # the response came through
        # SO_REUSEPORT spreads connections over both workers; every one must resume the session,
        # whichever worker it lands on (they share the ticket keys of the pre-fork context).
        for _ in range(8):
            again = _s_client(port, cafile, "-sess_in", session)
            assert "Reused, TLSv1.3" in again, again
        for version in ("-tls1_2", "-tls1_3"):
            assert "Verify return code: 0 (ok)" in _s_client(port, cafile, version)
        assert "alert" in _s_client(port, cafile, "-tls1_1").lower() or "no protocols available" in \
            _s_client(port, cafile, "-tls1_1").lower()  # TLS 1.1 is refused
        assert proc.stop(signal.SIGTERM) == 0


def _peer_cert(port: int, cafile: str) -> bytes:
    ctx = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return der


def test_sighup_rotates_the_certificate_and_refuses_a_broken_one(tmp_path: Path) -> None:
    ca, certfile, keyfile, cafile = _ca_files(tmp_path, "live")
    with _https_server(certfile, keyfile, workers=2) as proc:
        port = proc.port()
        before = _peer_cert(port, cafile)
        # an open connection, to check that it carries on across the rotation
        ctx = ssl.create_default_context(cafile=cafile)
        open_conn = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=5), server_hostname="localhost")
        open_conn.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert b"200 OK" in open_conn.recv(4096)
        # rotate: same CA, a new certificate and key written over the files, then SIGHUP
        new = ca.issue_cert("localhost", "127.0.0.1", key_type=trustme.KeyType.ECDSA)
        new.private_key_and_cert_chain_pem.write_to_path(certfile)
        new.private_key_pem.write_to_path(keyfile)
        proc.popen.send_signal(signal.SIGHUP)
        proc.wait_for(r"worker \d: TLS certificate reloaded", timeout=10)
        proc.wait_for(r"worker \d: TLS certificate reloaded", timeout=10)  # both workers
        for _ in range(6):  # whichever worker answers
            assert _peer_cert(port, cafile) != before
        open_conn.sendall(b"GET /api/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert b"200 OK" in open_conn.recv(4096)  # the old session carries on
        open_conn.close()
        rotated = _peer_cert(port, cafile)
        # a broken file is refused with a log line naming it; the certificate in use stays
        Path(certfile).write_text("not a certificate\n")
        proc.popen.send_signal(signal.SIGHUP)
        proc.wait_for(re.escape(certfile), timeout=10)
        assert _peer_cert(port, cafile) == rotated
        assert proc.stop(signal.SIGTERM) == 0


def test_a_bad_key_fails_at_start_naming_the_file(tmp_path: Path) -> None:
    _, certfile, _, _ = _ca_files(tmp_path, "a")
    _, _, other_key, _ = _ca_files(tmp_path, "b")
    with _https_server(certfile, other_key, workers=1) as proc:
        assert proc.wait(20) == 2
        said = proc.output
        assert "does not match" in said.lower() or "mismatch" in said.lower(), said
        assert other_key in said or certfile in said
        assert "started (pid" not in said  # before any worker forked


def test_curl_over_https_with_keepalive(tmp_path: Path) -> None:
    _, certfile, keyfile, cafile = _ca_files(tmp_path, "server")
    with _https_server(certfile, keyfile, workers=1) as proc:
        port = proc.port()
        url = f"https://localhost:{port}/api/health"
        result = subprocess.run([_need("curl"), "-sS", "--max-time", "10", "--cacert", cafile, "--resolve",
                                 f"localhost:{port}:127.0.0.1", url, url], capture_output=True, timeout=30)
        assert result.returncode == 0, result.stderr
        assert result.stdout.count(b'"status"') == 2
        assert proc.stop(signal.SIGTERM) == 0


def test_headless_chromium_receives_sse_over_https(tmp_path: Path) -> None:
    from examples.async_sse import make_config
    from examples.async_sse.test_async_sse import state_of

    config = make_config(interval=0.05, heartbeat=5.0).with_(tls=_tls())
    with serve(config) as server:
        state = state_of(server)
        with Browser(f"https://localhost:{server.port}/", tmp_path, insecure=True) as browser:
            # the page's script reports the events it got back to the server (POST /report)
            assert wait_until(lambda: bool(state.reports), 30), browser.log()
    report = state.reports[0]
    assert report["why"] == "done"
    assert report["events"] == [{"type": "message", "id": str(n), "data": f"tick {n}"} for n in (1, 2, 3)]


def test_headless_chromium_uses_h2_over_https_and_eight_event_sources_all_tick(tmp_path: Path) -> None:
    """Over HTTP/1.1 a browser holds at most six connections per origin: the seventh and eighth
    EventSource would hang. Over TLS with ALPN h2 they share one connection, and all eight tick."""
    from examples.http2 import State
    from examples.http2 import config as h2_config

    with serve(h2_config.with_(tls=_tls())) as server:
        assert server.worker is not None
        state: State = server.worker.state
        with Browser(f"https://localhost:{server.port}/", tmp_path, insecure=True) as browser:
            assert wait_until(lambda: bool(state.reports), 30), browser.log()
    report = state.reports[0]
    assert report["protocol"] == "h2"
    assert sorted(report["streams"]) == [str(i) for i in range(1, 9)]
    for i, events in report["streams"].items():
        assert events[:2] == [f"stream {i} 0", f"stream {i} 1"]


def test_curl_and_h2load_speak_http2_over_tls_by_alpn(tmp_path: Path) -> None:
    _, certfile, keyfile, cafile = _ca_files(tmp_path, "server")
    with _https_server(certfile, keyfile, workers=1) as proc:
        port = proc.port()
        url = f"https://localhost:{port}/api/health"
        result = subprocess.run([_need("curl"), "-sS", "--http2", "--max-time", "10", "--cacert", cafile, "--resolve",
                                 f"localhost:{port}:127.0.0.1", "-w", "|%{http_version}", url],
                                capture_output=True, timeout=30)
        assert result.returncode == 0, result.stderr
        body, _, version = result.stdout.rpartition(b"|")
        assert version == b"2" and b'"status"' in body
        load = subprocess.run([_need("h2load"), "-c", "4", "-m", "8", "-n", "800", f"https://127.0.0.1:{port}/api/health"],
                              capture_output=True, timeout=60, text=True)
        assert "800 succeeded" in load.stdout and "Application protocol: h2" in load.stdout, load.stdout + load.stderr
        assert proc.stop(signal.SIGTERM) == 0


def test_websocket_over_tls_with_the_websockets_client(backend: str) -> None:
    """wss://: the WebSocket protocol takes over a TLS connection like a cleartext one."""
    from websockets.sync.client import connect

    from examples.websocket_echo import config as echo_config

    with serve(echo_config.with_(tls=test_ca().server_config()), backend=backend) as server:
        with connect(f"wss://localhost:{server.port}/ws", ssl=test_ca().client_context(),
                     compression="deflate") as ws:
            for size in (0, 125, 126, 65_536, 1 << 20):
                text = "é" * (size // 2)
                ws.send(text)
                assert ws.recv(timeout=10) == text
            ws.send(b"\x00\xff" * 1000)
            assert ws.recv(timeout=10) == b"\x00\xff" * 1000
        assert ws.close_code == 1000


def test_graceful_shutdown_ends_tls_sessions_with_close_notify(backend: str) -> None:
    """A clean TLS close, not a bare FIN: after the server's last byte, the client's TLS engine has
    seen close_notify, not an EOF in the middle of the session."""
    server = serve(hello, backend=backend, tls=_tls()).start()
    sock = socket.create_connection(server.address, timeout=5)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = test_ca().client_context().wrap_bio(incoming, outgoing, server_hostname="localhost")
    try:
        for _ in range(20):  # the handshake, by hand (bounded)
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                sock.sendall(outgoing.read())
                incoming.write(sock.recv(65536))
        sock.sendall(outgoing.read())
        obj.write(GET)
        sock.sendall(outgoing.read())
        body = b""
        for _ in range(50):  # the response first (bounded): the connection is then idle
            incoming.write(sock.recv(65536))
            try:
                body += obj.read(65536)
            except ssl.SSLWantReadError:
                continue
            if b"hello over TLS" in body:
                break
        server.shutdown()  # an idle keep-alive connection: closed at once
        while data := sock.recv(65536):
            incoming.write(data)
        incoming.write_eof()
        ended = "nothing"
        for _ in range(100):  # (bounded)
            try:
                chunk = obj.read(65536)
            except ssl.SSLZeroReturnError:
                ended = "close_notify"
                break
            except ssl.SSLError as exc:  # SSLEOFError: the TCP FIN came without close_notify
                ended = f"ragged: {exc}"
                break
            if not chunk:  # (Python's SSLObject returns b"" once close_notify was read)
                ended = "close_notify"
                break
            body += chunk
        assert ended == "close_notify" and b"hello over TLS" in body
    finally:
        sock.close()
    server.assert_no_leaks(server.stop())
