"""Test harness: a real server on an ephemeral port inside the test, real sockets, strict parsing.

    from vanilla_async.testing import serve

    def test_hello():
        with serve(handler) as server:
            response = server.request(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")
            assert response.status == 200 and response.body == b"ok"
        # leaving the block shut the worker down and asserted that nothing leaked

`serve` runs one `Worker` (the same code a worker process runs) in a thread of the test process,
so handlers can be closures over test state. `TestServer.connect` gives a `Client` that sends raw
bytes — whole, split at every byte, pipelined, half-closed — and reads framed responses
(Content-Length, chunked, close-delimited, 1xx) parsed by **h11 in client mode**, so a malformed
response fails the test. On exit the server shuts down gracefully and the harness asserts that no
connection, task, timer, fd watch or file descriptor was left behind.

`ServerProcess` runs a server as a real process (``python -m examples.X``, the CLI) for what a
thread cannot show: prefork workers, signals, the startup log. `require_postgres` skips a test
when PostgreSQL's programs are missing, except under ``CI=true`` where it fails.

For handlers called directly (no server): `make_request(raw)` builds the `Request` view and
`call(handler, raw)` returns the bytes the handler produced, driving a generator handler on a
throwaway reactor.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

from ._optional import require

require("h11", extra="testing", feature="vanilla_async.testing")
import h11  # noqa: E402 (after the check that names the extra)

from reactor import Reactor, Task

from ._core.config import BACKEND_ENV, ServerConfig
from ._core.framer import frame
from ._core.connection import FileSend
from ._core.handler import FileBody, Takeover
from ._core.http1 import bad_result, cut_after_head, is_generator
from ._core.limits import Limits
from ._core.request import Request
from ._core.tls import TLSConfig
from ._core.worker import Worker
from .errors import HandlerError

__all__ = ("Browser", "CHROMIUM", "Client", "DEFAULT_TIMEOUT", "Response", "ServerProcess", "TLS_ENV", "TestCA", "TestServer", "call", "iter_splits",
           "make_request", "require_postgres", "serve", "test_ca", "wait_until")

log = logging.getLogger("vanilla_async.testing")

DEFAULT_TIMEOUT = 5.0


@dataclass(frozen=True)
class Response:
    """One response as h11 parsed it; ``raw`` is exactly the bytes it occupied on the wire."""

    status: int
    reason: bytes
    http_version: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw: bytes
    informational: list[int] = field(default_factory=list)

    def header(self, name: str | bytes, default: bytes | None = None) -> bytes | None:
        key = (name.encode() if isinstance(name, str) else name).lower()
        for k, v in self.headers:
            if k == key:
                return v
        return default

    @property
    def closes(self) -> bool:
        """True when the response says ``Connection: close``."""
        value = self.header(b"connection", b"") or b""
        return b"close" in [t.strip() for t in value.lower().split(b",")]


class Client:
    """A blocking client socket with a timeout and an h11-validated response reader; over TLS when
    given a client ``ssl.SSLContext`` (`TestServer.connect` passes the test CA's when the server is
    HTTPS), so the same test runs over cleartext and TLS."""

    def __init__(self, address: tuple[str, int], timeout: float = DEFAULT_TIMEOUT,
                 tls: ssl.SSLContext | None = None) -> None:
        sock = socket.create_connection(address, timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            try:
                sock = tls.wrap_socket(sock, server_hostname="localhost")
            except BaseException:
                sock.close()
                raise
        self.sock = sock
        self.tls = tls is not None
        self._buf = b""
        self.eof = False

    # -- sending ------------------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_split(self, data: bytes, every: int = 1, pause: float = 0.0005) -> None:
        """Send ``data`` in pieces of ``every`` bytes with a short pause between them."""
        for i in range(0, len(data), every):
            self.sock.sendall(data[i:i + every])
            if pause:
                time.sleep(pause)

    def send_at(self, data: bytes, cuts: Sequence[int], pause: float = 0.002) -> None:
        """Send ``data`` split at the given offsets."""
        last = 0
        for cut in [*sorted(cuts), len(data)]:
            if cut > last:
                self.sock.sendall(data[last:cut])
                last = cut
                time.sleep(pause)

    def shut_wr(self) -> None:
        """Half-close: no more bytes from us; responses can still be read. Over TLS this is a TCP
        FIN without close_notify (``SSLSocket.shutdown`` would drop the session): the server reads it
        as EOF, and the session stays readable."""
        socket.socket.shutdown(self.sock, socket.SHUT_WR)

    # -- receiving ------------------------------------------------------------------------------------
    def _recv(self) -> bytes:
        if self.eof:
            return b""
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLEOFError, ssl.SSLZeroReturnError):
            data = b""
        if not data:
            self.eof = True
        return data

    def read_response(self, method: bytes = b"GET") -> Response:
        """Read exactly one response (for a request with ``method``), validated by h11."""
        conn = h11.Connection(h11.CLIENT)
        conn.send(h11.Request(method=method, target="/", headers=[("Host", "test")]))
        conn.send(h11.EndOfMessage())
        fed = bytearray(self._buf)
        if self._buf:
            conn.receive_data(self._buf)  # (receive_data(b"") would mean EOF to h11)
        elif self.eof:
            conn.receive_data(b"")
        self._buf = b""
        informational: list[int] = []
        status, reason, version, headers = 0, b"", b"", []
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = self._recv()
                fed += data
                conn.receive_data(data)
                if not data and conn.their_state is h11.SEND_RESPONSE and status == 0:
                    raise ConnectionError(f"server closed the connection before a response (got {bytes(fed)!r})")
                continue
            if isinstance(event, h11.InformationalResponse):
                informational.append(event.status_code)
            elif isinstance(event, h11.Response):
                status, reason, version = event.status_code, event.reason, event.http_version
                headers = [(k.lower(), v) for k, v in event.headers]
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                break
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionError(f"connection closed mid-response after {bytes(fed)!r}")
        trailing, _closed = conn.trailing_data
        self._buf = bytes(trailing)
        raw = bytes(fed[:len(fed) - len(trailing)])
        return Response(status, reason, version, headers, bytes(body), raw, informational)

    def read_responses(self, count: int, method: bytes = b"GET") -> list[Response]:
        return [self.read_response(method) for _ in range(count)]

    def read_until_closed(self, limit: int = 1 << 26) -> bytes:
        """Everything until the server closes (bounded by ``limit`` bytes and the socket timeout)."""
        data = bytearray(self._buf)
        self._buf = b""
        while len(data) < limit:
            chunk = self._recv()
            if not chunk:
                break
            data += chunk
        return bytes(data)

    def closed_by_server(self, timeout: float = DEFAULT_TIMEOUT) -> bool:
        """True if the server closes the connection (EOF or reset) within ``timeout`` with no more bytes."""
        if self._buf:
            return False
        self.sock.settimeout(timeout)
        try:
            return self._recv() == b""
        except (TimeoutError, socket.timeout):
            return False

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _open_fds() -> set[int]:
    try:
        return {int(name) for name in os.listdir("/proc/self/fd")}
    except FileNotFoundError:  # pragma: no cover - not Linux
        return set()


class TestServer:
    """One worker of ``config`` serving in a background thread on 127.0.0.1:<ephemeral>."""

    __test__ = False  # not a pytest test class

    def __init__(self, config: ServerConfig, *, grace: float = 2.0, check_leaks: bool = True) -> None:
        self.config = config.with_(host="127.0.0.1", port=0, workers=1)
        self.grace = grace
        self.check_leaks = check_leaks
        self.worker: Worker | None = None
        self._thread: threading.Thread | None = None
        self._clients: list[Client] = []
        self._fds_before: set[int] = set()
        self._error: BaseException | None = None

    @property
    def address(self) -> tuple[str, int]:
        assert self.worker is not None, "the server is not running"
        return ("127.0.0.1", self.worker.port)

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def url(self) -> str:
        return f"{'https' if self.config.tls is not None else 'http'}://127.0.0.1:{self.port}"

    @property
    def client_tls(self) -> ssl.SSLContext | None:
        """The client context that trusts this server's certificate (None: cleartext)."""
        return test_ca().client_context() if self.config.tls is not None else None

    def start(self) -> TestServer:
        self._fds_before = _open_fds()
        self.worker = Worker(self.config)
        ready = threading.Event()

        def main() -> None:
            assert self.worker is not None
            try:
                self.worker.start()
                ready.set()
                self.worker.run()
            except BaseException as exc:  # surfaced by stop()
                self._error = exc
                ready.set()

        self._thread = threading.Thread(target=main, name="vanilla-worker", daemon=True)
        self._thread.start()
        if not ready.wait(DEFAULT_TIMEOUT):
            raise RuntimeError("the test server did not start within 5 s")
        if self._error is not None:
            raise self._error
        return self

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the worker's reactor thread."""
        assert self.worker is not None
        self.worker.reactor.call_soon_threadsafe(fn)

    def shutdown(self, grace: float | None = None) -> None:
        """Begin a graceful shutdown (returns at once; `stop` waits for it)."""
        assert self.worker is not None
        worker = self.worker
        self.call(lambda: worker.begin_shutdown(self.grace if grace is None else grace))

    def stop(self, grace: float | None = None) -> dict[str, int]:
        """Shut down gracefully, wait for the worker, and return its leak report."""
        for client in self._clients:
            client.close()
        self._clients.clear()
        if self._thread is None or self.worker is None:
            return {}
        self.shutdown(grace)
        self._thread.join((self.grace if grace is None else grace) + DEFAULT_TIMEOUT)
        if self._thread.is_alive():
            raise AssertionError("the worker did not stop within its grace period (+5 s): something hangs")
        self._thread = None
        if self._error is not None:
            raise self._error
        leaks = dict(self.worker.final_leaks or {})
        leaked_fds = _open_fds() - self._fds_before
        leaks["fds"] = len(leaked_fds)
        return leaks

    def assert_no_leaks(self, leaks: dict[str, int]) -> None:
        left = {k: v for k, v in leaks.items() if v}
        assert not left, f"the server left things behind after shutdown: {left}"

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        leaks = self.stop()
        if self.check_leaks and exc_type is None:
            self.assert_no_leaks(leaks)

    # -- clients -----------------------------------------------------------------------------------------
    def connect(self, timeout: float = DEFAULT_TIMEOUT) -> Client:
        client = Client(self.address, timeout, tls=self.client_tls)
        self._clients.append(client)
        return client

    def request(self, raw: bytes, method: bytes | None = None) -> Response:
        """Send one raw request on a new connection and read its response."""
        with self.connect() as client:
            client.send(raw)
            return client.read_response(method or raw.split(b" ", 1)[0])

    def test(self, requests: Sequence[bytes]) -> list[bytes]:
        """The seed's ``server.test([...])``: send each request in turn on one connection; raw responses in order."""
        with self.connect() as client:
            out = []
            for raw in requests:
                client.send(raw)
                out.append(client.read_response(raw.split(b" ", 1)[0]).raw)
            return out

    def pipeline(self, requests: Sequence[bytes]) -> list[Response]:
        """Send every request in one write on one connection; read the responses in order."""
        with self.connect() as client:
            client.send(b"".join(requests))
            return [client.read_response(raw.split(b" ", 1)[0]) for raw in requests]


#: ``"1"``: `serve` gives servers without TLS the test CA's certificate (see `serve`)
TLS_ENV = "VANILLA_TEST_TLS"


class TestCA:
    """A throwaway certificate authority (``trustme``, ECDSA P-256) and one server certificate for
    ``localhost``/``127.0.0.1``/``::1``, written to a temporary directory for `TLSConfig`."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        trustme = require("trustme", extra="testing", feature="TLS in vanilla_async.testing")
        self.ca = trustme.CA(key_type=trustme.KeyType.ECDSA)
        cert = self.ca.issue_cert("localhost", "127.0.0.1", "::1", key_type=trustme.KeyType.ECDSA)
        self.dir = tempfile.mkdtemp(prefix="vanilla-test-ca-")
        atexit.register(shutil.rmtree, self.dir, True)
        self.certfile = os.path.join(self.dir, "server.pem")
        self.keyfile = os.path.join(self.dir, "server.key")
        self.cafile = os.path.join(self.dir, "ca.pem")
        cert.cert_chain_pems[0].write_to_path(self.certfile)
        for extra in cert.cert_chain_pems[1:]:
            extra.write_to_path(self.certfile, append=True)
        cert.private_key_pem.write_to_path(self.keyfile)
        self.ca.cert_pem.write_to_path(self.cafile)
        self._client: ssl.SSLContext | None = None

    def server_config(self, **changes: Any) -> TLSConfig:
        return TLSConfig(certfile=self.certfile, keyfile=self.keyfile, **changes)

    def client_context(self) -> ssl.SSLContext:
        if self._client is None:
            self._client = ssl.create_default_context(cafile=self.cafile)
        return self._client


_test_ca: TestCA | None = None


def test_ca() -> TestCA:
    """The process's `TestCA` (made on first use)."""
    global _test_ca
    if _test_ca is None:
        _test_ca = TestCA()
    return _test_ca


test_ca.__test__ = False  # type: ignore[attr-defined]  # (not a pytest test)


def serve(
    handler_or_config: Callable[..., Any] | ServerConfig,
    *,
    backend: str | None = None,
    limits: Limits | None = None,
    make_state: Callable[[], Any] | None = None,
    grace: float = 2.0,
    check_leaks: bool = True,
    **config: Any,
) -> TestServer:
    """A `TestServer` for a handler (or a full `ServerConfig`); use it as a context manager.

    ``backend`` defaults to ``$VANILLA_ASYNC_BACKEND`` (as the CLI does), else the config's own.
    With ``$VANILLA_TEST_TLS=1`` (the ``each_transport`` fixture) a config without TLS gets the test
    CA's certificate, and `TestServer.connect` speaks TLS: one test, both transports.
    """
    if backend is None:
        backend = os.environ.get(BACKEND_ENV) or "auto"
    if os.environ.get(TLS_ENV) == "1" and "tls" not in config and not (
            isinstance(handler_or_config, ServerConfig) and handler_or_config.tls is not None):
        config["tls"] = test_ca().server_config()
    if isinstance(handler_or_config, ServerConfig):
        cfg = handler_or_config.with_(backend=backend) if backend != "auto" else handler_or_config
        if "tls" in config:
            cfg = cfg.with_(tls=config.pop("tls"))
    else:
        cfg = ServerConfig(handler=handler_or_config, backend=backend, make_state=make_state, **config)
    if limits is not None:
        cfg = cfg.with_(limits=limits)
    if make_state is not None and isinstance(handler_or_config, ServerConfig):
        cfg = cfg.with_(make_state=make_state)
    return TestServer(cfg, grace=grace, check_leaks=check_leaks)


# -- servers as real processes ---------------------------------------------------------------------------
_SERVING = r"serving https?://127\.0\.0\.1:(\d+)"


class ServerProcess:
    """``python *argv`` as a subprocess whose log (stdout and stderr) is read line by line.

        with ServerProcess("-m", "examples.tiny", "--port", "0", "--workers", "2") as proc:
            port = proc.port()                       # from the "serving http://127.0.0.1:PORT" line
            ...
            assert proc.stop(signal.SIGTERM) == 0    # drained and exited cleanly

    ``env`` is added to this process's environment, and the names in ``drop_env`` are removed
    from it. Leaving the block kills the process if it still runs.
    """

    def __init__(
        self, *argv: str, env: Mapping[str, str] | None = None, drop_env: Sequence[str] = (),
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        environment = {k: v for k, v in os.environ.items() if k not in drop_env}
        environment.update(env or {})
        self.popen = subprocess.Popen(
            [sys.executable, *argv], cwd=cwd, env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1,
        )
        assert self.popen.stdout is not None
        os.set_blocking(self.popen.stdout.fileno(), False)
        self.lines: list[str] = []  #: every log line read so far (a test may clear it)

    def wait_for(self, pattern: str, timeout: float = 10.0) -> re.Match[str]:
        """The first line (read so far, or arriving within ``timeout``) that matches ``pattern``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for line in self.lines[seen:]:
                if match := regex.search(line):
                    return match
            seen = len(self.lines)
            if not self._read_line():
                if self.popen.poll() is not None:
                    self._read_rest()
                    raise AssertionError(f"the process exited ({self.popen.returncode}) before a line matching "
                                         f"{pattern!r}:\n{self.output}")
                if time.monotonic() > deadline:
                    raise AssertionError(f"no line matching {pattern!r} within {timeout}s; got:\n{self.output}")
                time.sleep(0.02)

    def port(self, timeout: float = 30.0) -> int:
        """The port from the server's "serving http://127.0.0.1:PORT" line (logged once every worker listens)."""
        return int(self.wait_for(_SERVING, timeout).group(1))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        """Send ``sig`` (if still running), wait for the exit, read the rest of the log; the exit status."""
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the process did not exit within {timeout}s of signal {sig}:\n{self.output}") from None
        self._read_rest()
        return code

    def wait(self, timeout: float = 20.0) -> int:
        """Wait for the process to exit by itself (e.g. after a signal sent earlier); the exit status."""
        try:
            code = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"the process did not exit within {timeout}s:\n{self.output}") from None
        self._read_rest()
        return code

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        self._read_rest()

    @property
    def output(self) -> str:
        """Everything logged so far."""
        return "".join(self.lines)

    def _read_line(self) -> bool:
        assert self.popen.stdout is not None
        line = self.popen.stdout.readline()
        if line:
            self.lines.append(line)
        return bool(line)

    def _read_rest(self) -> None:
        stdout = self.popen.stdout
        if stdout is not None and not stdout.closed and self.popen.poll() is not None:
            os.set_blocking(stdout.fileno(), True)
            rest = stdout.read()
            if rest:
                self.lines.extend(rest.splitlines(keepends=True))
            stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def wait_until(predicate: Callable[[], object], timeout: float = DEFAULT_TIMEOUT, step: float = 0.01) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds passed; its last verdict."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return bool(predicate())
        time.sleep(step)
    return True


#: where the tests look for a headless browser (Debian's chromium; scripts/system-deps installs it)
CHROMIUM = "/usr/bin/chromium"


class Browser:
    """Headless Chromium opening ``url`` (as the project's probe starts it: no sandbox, no GPU, no
    background networking, a fresh profile in ``profile_dir``), in its own process group so that
    leaving the block stops it and every helper process it spawned. ``insecure`` accepts any
    certificate (a test CA's). ``log()`` is what it printed, for a failure message.

        with Browser(server.url + "/", tmp_path) as browser:
            assert wait_until(lambda: bool(state.reports), 20), browser.log()

    Without the browser the test is skipped — or fails under ``CI=true``, where it must be there.
    """

    def __init__(self, url: str, profile_dir: str | os.PathLike[str], *, insecure: bool = False) -> None:
        if not os.path.exists(CHROMIUM):
            import pytest

            if os.environ.get("CI") == "true":
                pytest.fail(f"{CHROMIUM} is missing; CI installs it (scripts/system-deps)")
            pytest.skip(f"{CHROMIUM} is not installed (apt-get install -y chromium)")
        self.log_path = os.path.join(profile_dir, "chromium.log")
        args = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                f"--user-data-dir={os.path.join(profile_dir, 'profile')}"]
        if insecure:
            args.append("--ignore-certificate-errors")
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen([*args, url], stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                            start_new_session=True)

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return "chromium said:\n" + f.read()[-3000:]

    def stop(self) -> None:
        """Terminate the browser's process group (SIGTERM, then SIGKILL), bounded."""
        pgid = self.process.pid
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                continue
            if wait_until(lambda: not _group_alive(pgid), 5):
                break
        if self.process.poll() is None:
            self.process.wait(5)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def require_postgres() -> None:
    """Skip the calling test when PostgreSQL's server programs are missing — fail instead under
    ``CI=true``, where scripts/system-deps installs them."""
    import pytest  # (only tests call this)

    from .pgcluster import PgClusterError, find_binaries

    try:
        find_binaries()
    except PgClusterError as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true and {exc}")
        pytest.skip(str(exc))


# -- calling handlers directly --------------------------------------------------------------------------
def make_request(raw: bytes, *, state: Any = None, limits: Limits | None = None) -> Request:
    """Frame ``raw`` (one complete request) into a `Request` view, as the server would."""
    req = frame(raw, 0, limits or Limits())
    if not isinstance(req, Request):
        raise ValueError(f"incomplete request {raw!r}: it needs more bytes ({req})")
    req.state = state
    return req


def call(handler: Callable[..., Any], raw: bytes, *, state: Any = None, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Run ``handler`` on ``raw`` without a server and return what it appended to ``out``.

    A generator handler is driven on a throwaway reactor (so its sleeps and fd waits really happen).
    What the handler returns (directly, or as its generator's return value) is judged by the server's
    own rules (`_core.http1`): a `FileBody` is read and appended, and closed; a HEAD response keeps
    only its head, as the server sends it. A `Takeover` needs a real connection: use `serve`.
    """
    req = make_request(raw, state=state)
    out = bytearray()
    result = handler(req, out)
    if is_generator(result):
        result = _drive(result, timeout)
    elif result is not None and result.__class__ is not FileBody and result.__class__ is not Takeover:
        raise bad_result(handler, result)
    head = req.method == b"HEAD"
    if head:
        cut_after_head(out, 0)
    if isinstance(result, FileBody):
        file = FileSend(result)
        try:
            if not head:
                out += file.read_all()
        finally:
            file.close()
    elif isinstance(result, Takeover):
        raise HandlerError(f"handler {handler!r} took over the connection ({result.protocol!r}); testing.call has "
                           "no connection to hand over: test it with testing.serve")
    return bytes(out)


def _drive(gen: Any, timeout: float) -> Any:
    """Run a generator handler to its end on a throwaway reactor; its return value (or its exception)."""
    reactor = Reactor()
    outcome: list[Any] = []
    errors: list[BaseException] = []

    class _Driver(Task):
        def finished(self, value: Any) -> None:
            outcome.append(value)
            reactor.stop()

        def failed(self, exc: BaseException) -> None:
            errors.append(exc)
            reactor.stop()

    try:
        task = reactor.start(_Driver(gen))
        if not task.done:
            reactor.call_later(timeout, reactor.stop)
            reactor.run()
            if not task.done:
                raise TimeoutError(f"the generator handler did not finish within {timeout} s")
    finally:
        reactor.close()
    if errors:
        raise errors[0]
    return outcome[0] if outcome else None


def iter_splits(data: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every way to cut ``data`` in two (for split-point tests)."""
    for i in range(1, len(data)):
        yield data[:i], data[i:]
