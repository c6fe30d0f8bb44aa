"""examples.async_proxy over real sockets: an upstream in a thread of the test, the proxy via `serve`."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from typing import Callable, Iterator

import h11
import pytest

from examples.async_proxy import ChunkedDecoder, Settings, make_config
from vanilla_async.testing import TestServer, serve

pytestmark = pytest.mark.usefixtures("each_backend")  # every server here runs on each backend

WAIT = 5.0  # the longest any upstream endpoint waits for the test: nothing can hang longer


class Upstream(socketserver.ThreadingTCPServer):
    """A tiny HTTP/1.1 upstream whose endpoints misbehave on purpose; counts its open connections."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        self.lock = threading.Lock()
        self.open = 0  # connections accepted and not yet closed
        self.requests: list[bytes] = []
        self.release = threading.Event()  # /stream sends the rest of its body once this is set
        self.finished = threading.Event()  # /stream sent everything

    @property
    def port(self) -> int:
        return int(self.server_address[1])

    def wait_idle(self, timeout: float = 3.0) -> None:
        deadline = time.monotonic() + timeout
        while self.open:
            assert time.monotonic() < deadline, f"{self.open} upstream connection(s) still open"
            time.sleep(0.01)


class UpstreamHandler(socketserver.BaseRequestHandler):
    server: Upstream
    request: socket.socket

    def handle(self) -> None:
        with self.server.lock:
            self.server.open += 1
        try:
            self.request.settimeout(WAIT)
            head = b""
            while b"\r\n\r\n" not in head:
                data = self.request.recv(65536)
                if not data:
                    return
                head += data
            self.server.requests.append(head)
            target = head.split(b" ")[1]
            getattr(self, "do_" + target.split(b"?")[0].strip(b"/").decode().replace("-", "_"), self.do_missing)(head)
        except OSError:
            pass
        finally:
            self.request.close()
            with self.server.lock:
                self.server.open -= 1

    def send(self, data: bytes) -> None:
        self.request.sendall(data)

    def do_missing(self, head: bytes) -> None:
        self.send(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope")

    def do_hello(self, head: bytes) -> None:
        self.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Up: yes\r\nConnection: close, X-Secret\r\n"
                  b"X-Secret: hop\r\nKeep-Alive: timeout=5\r\nContent-Length: 5\r\n\r\nhello")

    def do_echo(self, head: bytes) -> None:
        self.send(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(head), head))

    def do_chunked(self, head: bytes) -> None:
        self.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: t\r\n\r\n")

    def do_close(self, head: bytes) -> None:
        self.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil")
        time.sleep(0.05)
        self.send(b" close")

    def do_empty(self, head: bytes) -> None:
        self.send(b"HTTP/1.1 204 No Content\r\nX-Empty: 1\r\n\r\n")

    def do_stream(self, head: bytes) -> None:
        self.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nb\r\nfirst part \r\n")
        if self.server.release.wait(WAIT):
            self.send(b"8\r\nthe rest\r\n0\r\n\r\n")
            self.server.finished.set()

    def do_slow(self, head: bytes) -> None:
        self.server.release.wait(WAIT)
        self.send(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")

    def do_hang(self, head: bytes) -> None:
        self.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
        while self.request.recv(65536):  # until the proxy closes its side (bounded by the timeout)
            pass

    def do_garbage(self, head: bytes) -> None:
        self.send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")

    def do_silent_close(self, head: bytes) -> None:
        pass

    def do_truncated(self, head: bytes) -> None:
        self.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd")


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    server = Upstream()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()
    thread.join(WAIT)


def proxy_for(upstream_port: int, timeout: float = 0.3) -> TestServer:
    return serve(make_config(Settings(upstream=("127.0.0.1", upstream_port), timeout=timeout)))


def get(target: bytes, version: bytes = b"1.1") -> bytes:
    return b"GET " + target + b" HTTP/" + version + b"\r\nHost: client.test\r\nUser-Agent: t/1\r\n\r\n"


def test_relays_status_headers_and_body(upstream: Upstream) -> None:
    with proxy_for(upstream.port) as server:
        r = server.request(get(b"/proxy/hello"))
        assert (r.status, r.body, r.header("x-up"), r.header("content-length")) == (200, b"hello", b"yes", b"5")
        assert r.header("via") == b"1.1 vanilla_async" and r.header("date") is not None
        assert r.header("keep-alive") is None and r.header("x-secret") is None and not r.closes  # hop-by-hop dropped

        r = server.request(get(b"/proxy/echo?x=1&y=%20"))
        sent = r.body.decode()
        assert sent.startswith("GET /echo?x=1&y=%20 HTTP/1.1\r\n")
        assert f"\r\nHost: 127.0.0.1:{upstream.port}\r\n" in sent and "\r\nConnection: close\r\n" in sent
        assert "\r\nUser-Agent: t/1\r\n" in sent and "client.test" not in sent

        r = server.request(get(b"/proxy/chunked"))  # 100 skipped, chunked decoded and re-chunked
        assert (r.status, r.body, r.header("transfer-encoding")) == (201, b"hello, world", b"chunked")
        assert server.request(get(b"/proxy/close")).body == b"until close"
        r = server.request(get(b"/proxy/empty"))
        assert (r.status, r.body, r.header("x-empty")) == (204, b"", b"1")
        assert server.request(get(b"/proxy/missing")).status == 404
        assert server.request(get(b"/proxy")).status == 404  # upstream "/" is do_missing
        assert server.request(get(b"/elsewhere")).status == 404
        assert server.request(b"POST /proxy/hello HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n").status == 405

        # keep-alive towards the client, pipelining, and an HTTP/1.0 client (close-delimited body)
        two = server.pipeline([get(b"/proxy/hello"), get(b"/proxy/chunked")])
        assert [x.body for x in two] == [b"hello", b"hello, world"]
        with server.connect() as client:
            client.send(get(b"/proxy/chunked", b"1.0"))
            raw = client.read_until_closed()
        assert raw.startswith(b"HTTP/1.1 201 Created\r\n") and raw.endswith(b"\r\n\r\nhello, world")
        upstream.wait_idle()


def test_streams_the_body_before_the_upstream_has_finished(upstream: Upstream) -> None:
    with proxy_for(upstream.port) as server, server.connect() as client:
        client.send(get(b"/proxy/stream"))
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method="GET", target="/", headers=[("Host", "t")]))
        conn.send(h11.EndOfMessage())
        body = b""
        events: list[object] = []
        while not events or not isinstance(events[-1], h11.EndOfMessage):
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = client.sock.recv(65536)
                assert data, f"closed early after {events}"
                conn.receive_data(data)
                continue
            events.append(event)
            if isinstance(event, h11.Data):
                body += event.data
                if body == b"first part ":
                    # The client has the head and the first bytes; the upstream is still waiting for us.
                    assert not upstream.finished.is_set()
                    upstream.release.set()
        assert isinstance(events[0], h11.Response) and events[0].status_code == 200
        assert body == b"first part the rest" and upstream.finished.is_set()
        upstream.wait_idle()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_502_when_the_upstream_is_down_or_not_http(upstream: Upstream) -> None:
    with proxy_for(_closed_port()) as server:
        r = server.request(get(b"/proxy/hello"))
        assert r.status == 502 and b"Connection refused" in r.body
    with proxy_for(upstream.port) as server:
        for target in (b"/proxy/garbage", b"/proxy/silent-close"):
            r = server.request(get(target))
            assert r.status == 502 and r.body.startswith(b"Bad Gateway: "), (target, r.body)
        # and the connection to the client stays usable after a 502
        assert [x.status for x in server.pipeline([get(b"/proxy/garbage"), get(b"/proxy/hello")])] == [502, 200]
        upstream.wait_idle()


def test_504_when_the_upstream_is_too_slow(upstream: Upstream) -> None:
    with proxy_for(upstream.port, timeout=0.3) as server:
        started = time.monotonic()
        r = server.request(get(b"/proxy/slow"))
        elapsed = time.monotonic() - started
        assert r.status == 504 and 0.3 <= elapsed < 2.0, (r.status, elapsed)
        upstream.release.set()  # let the slow endpoint finish (the proxy has closed its side already)
        upstream.wait_idle()


def test_504_when_the_connect_itself_is_too_slow() -> None:
    """A listener whose accept queue is full: Linux drops further SYNs, so connect() just hangs."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        fillers = []
        for _ in range(3):  # fill the accept queue (size backlog + 1; fill generously)
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(full.getsockname())
            fillers.append(filler)
        time.sleep(0.05)
        try:
            with proxy_for(full.getsockname()[1], timeout=0.3) as server:
                started = time.monotonic()
                r = server.request(get(b"/proxy/x"))
                assert r.status == 504 and time.monotonic() - started < 2.0, r.body
                if b"no connection within" not in r.body:  # this kernel completed the handshake after all
                    pytest.skip(f"the connect did not hang here (got {r.body!r}); the first-byte timeout answered")
        finally:
            for filler in fillers:
                filler.close()


def test_client_disconnect_mid_response_closes_the_upstream_connection(upstream: Upstream) -> None:
    with proxy_for(upstream.port) as server:
        client = server.connect()
        client.send(get(b"/proxy/hang"))
        got = b""
        while not got.endswith(b"partial"):
            data = client.sock.recv(65536)
            assert data
            got += data
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\nContent-Length: 100\r\n" in got
        assert upstream.open == 1
        client.close()  # the server closes the parked generator; its finally closes the upstream socket
        upstream.wait_idle(timeout=3.0)


def test_a_body_cut_by_the_upstream_is_cut_for_the_client(upstream: Upstream) -> None:
    with proxy_for(upstream.port) as server, server.connect() as client:
        client.send(get(b"/proxy/truncated"))
        with pytest.raises((ConnectionError, h11.RemoteProtocolError)):
            client.read_response()
        upstream.wait_idle()


def test_chunked_decoder_byte_by_byte() -> None:
    wire = b"5;a=b\r\nhello\r\n10\r\n" + b"x" * 16 + b"\r\n0\r\nTrailer: 1\r\n\r\n"
    decoder = ChunkedDecoder()
    feed: Callable[[bytes], bytes] = decoder.feed
    assert b"".join(feed(wire[i:i + 1]) for i in range(len(wire))) == b"hello" + b"x" * 16 and decoder.done
    for bad in (b"zz\r\n", b"5\r\nhelloXX", b"-1\r\n"):
        with pytest.raises(Exception, match="chunk"):
            ChunkedDecoder().feed(bad)


def test_settings_from_the_environment() -> None:
    assert Settings.from_env({"UPSTREAM": "example.org:81", "PROXY_TIMEOUT": "0.5"}) == Settings(("example.org", 81), 0.5)
    assert Settings.from_env({}).upstream == ("127.0.0.1", 8000)
    assert Settings.from_env({"UPSTREAM": "[::1]:9000"}).upstream == ("::1", 9000)
    with pytest.raises(ValueError, match="host:port"):
        Settings.from_env({"UPSTREAM": "nope"})

