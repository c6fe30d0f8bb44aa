"""examples.async_proxy — a streaming reverse proxy whose upstream I/O is non-blocking, as tokens.

``GET /proxy/<rest>`` is forwarded to the upstream as ``GET /<rest>`` (query included) with
``Host: <upstream>`` and ``Connection: close``, and the upstream's response is streamed back as it
arrives: the client has the head and the first bytes while the upstream is still sending.

* **502 Bad Gateway**: the upstream refuses the connection, closes before a complete response head,
  or sends something that is not an HTTP/1.x response (or a head larger than 64 KiB).
* **504 Gateway Timeout**: connecting plus the first byte of the response take longer than
  ``timeout`` (default 1 s), or the head then stalls for ``idle_timeout``.
* Once the head was relayed it is too late for an error status: if the upstream then stalls for
  ``idle_timeout``, breaks the body framing or closes early, the client's response is cut — the
  connection closes without the terminating chunk (or short of the Content-Length), which every
  HTTP client reports as an incomplete response.
* The upstream socket is closed in a ``finally``: on completion, on error, and when the client
  disconnects mid-response (the server then closes the generator at its ``yield``).

Framing: the upstream body is delimited per RFC 9112 §6.3 (no body for 1xx/204/304, chunked —
decoded here —, Content-Length, or until close). The client gets ``Content-Length`` when the
upstream sent one (the body bytes pass through unchanged), otherwise ``Transfer-Encoding: chunked``
with each piece as it arrived (an HTTP/1.0 client: close-delimited). Hop-by-hop headers (RFC 9110
§7.6.1, and those named in ``Connection``) and ``Date`` are dropped; ``Via: 1.1 vanilla_async`` is added.
Only ``GET`` is proxied (405 otherwise); request bodies are not forwarded.

Configuration: ``UPSTREAM=host:port`` (default ``127.0.0.1:8000``, what ``python -m http.server``
listens on) and ``PROXY_TIMEOUT`` (seconds, default 1), read by each worker at start, or
``make_config(Settings(upstream=("host", port), timeout=0.3))``. The host name is resolved once per
worker when it starts (resolving per request would block the worker).

Run: ``python -m http.server 8000 &`` then
``UPSTREAM=127.0.0.1:8000 python -m examples.async_proxy --port 8080`` and
``curl -i localhost:8080/proxy/``.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import time
from dataclasses import dataclass
from typing import Any, Generator, Mapping

from reactor import Token
from vanilla_async import (
    Request,
    ResponseError,
    ServerConfig,
    ShuttingDown,
    date_header,
    header_line,
    readable,
    respond,
    status_line,
    writable,
)
from vanilla_async.grammar import TOKEN

log = logging.getLogger("examples.async_proxy")

BUFSIZE = 65536
MAX_HEAD = 64 * 1024
MAX_CHUNK_LINE = 4096

_STATUS = re.compile(rb"HTTP/1\.[0-9] ([1-9][0-9][0-9])(?: [^\r\n]*)?")
_TOKEN = TOKEN
_HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate", b"proxy-authorization", b"te",
    b"trailer", b"transfer-encoding", b"upgrade", b"content-length", b"date",
})
_FORWARDED = (b"Accept", b"Accept-Language", b"User-Agent")  # request headers passed on to the upstream


@dataclass(frozen=True)
class Settings:
    upstream: tuple[str, int] = ("127.0.0.1", 8000)
    timeout: float = 1.0  #: connect + first byte of the response → 504 beyond it
    idle_timeout: float = 30.0  #: longest silence once the response has started

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        host, _, port = (env.get("UPSTREAM") or "127.0.0.1:8000").strip().rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"UPSTREAM must be host:port, got {env.get('UPSTREAM')!r}")
        timeout = env.get("PROXY_TIMEOUT", "").strip()
        return cls((host.strip("[]"), int(port)), float(timeout) if timeout else 1.0)


class Upstream:
    """``req.state``: the settings, the upstream's resolved address and the Host header to send."""

    def __init__(self, settings: Settings) -> None:
        host, port = settings.upstream
        family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        self.settings = settings
        self.family = family
        self.address = address
        name = f"[{host}]" if ":" in host else host
        self.host = header_line(b"Host", name if port == 80 else f"{name}:{port}")
        log.info("async_proxy: worker pid %d forwards /proxy/* to %s:%d", os.getpid(), host, port)


class BadGateway(Exception):
    """The upstream's answer cannot be relayed (→ 502, or a cut response once the head has left)."""


class GatewayTimeout(Exception):
    """The upstream was too slow (→ 504, or a cut response once the head has left)."""


def handler(req: Request, out: bytearray) -> Generator[Token, Any, None] | None:
    target = req.target
    if target == b"/proxy" or target.startswith((b"/proxy/", b"/proxy?")):
        if req.method != b"GET":
            respond(out, 405, b"the proxy only forwards GET\n", headers=[("Allow", "GET")])
            return None
        return proxy(req, out, req.state)
    respond(out, 404, b"try GET /proxy/<path>\n")
    return None


def proxy(req: Request, out: bytearray, upstream: Upstream) -> Generator[Token, Any, None]:
    settings = upstream.settings
    rest = req.target[len(b"/proxy"):]
    path = rest if rest.startswith(b"/") else b"/" + rest
    request = [b"GET " + path + b" HTTP/1.1\r\n", upstream.host, b"Connection: close\r\nVia: 1.1 vanilla_async\r\n"]
    for name in _FORWARDED:
        value = req.header(name)
        if value is not None:
            request.append(header_line(name, value))
    request.append(b"\r\n")

    sock = socket.socket(upstream.family, socket.SOCK_STREAM)
    relaying = False  # the response head is in ``out``: errors can no longer become a 502/504
    try:
        sock.setblocking(False)
        deadline = time.monotonic() + settings.timeout  # connect + send + first byte
        err = sock.connect_ex(upstream.address)
        if err == errno.EINPROGRESS:
            if not (yield writable(sock, timeout=max(0.0, deadline - time.monotonic()))):
                raise GatewayTimeout(f"no connection within {settings.timeout}s")
            err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            raise BadGateway(f"cannot connect: {os.strerror(err)}")
        pending = memoryview(b"".join(request))
        while pending:
            try:
                pending = pending[sock.send(pending):]
            except BlockingIOError:
                if not (yield writable(sock, timeout=max(0.0, deadline - time.monotonic()))):
                    raise GatewayTimeout("the upstream does not take the request") from None

        # -- the response head (interim 1xx responses are skipped) ------------------------------------
        buf = b""
        started = False  # a first byte came: from now on the idle timeout applies
        while True:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise BadGateway("response head too large")
                data = yield from _recv(sock, time.monotonic() + settings.idle_timeout if started else deadline)
                if not data:
                    raise BadGateway("the upstream closed the connection before a complete response head")
                buf += data
                started = True
                continue
            status, headers = _parse_head(buf[:end])
            buf = buf[end + 4:]
            if status >= 200:
                break
            if status == 101:
                raise BadGateway("unexpected 101 Switching Protocols")

        # -- relay the head, then the body as it arrives ---------------------------------------------
        body = _body_framing(status, headers)
        head = bytearray(status_line(status) + date_header())  # built aside: a bad value must not leave half a head
        connection_tokens = {t.strip().lower() for v in _values(headers, b"connection") for t in v.split(b",")}
        for name, value in headers:
            lower = name.lower()
            if lower not in _HOP_BY_HOP and lower not in connection_tokens:
                head += header_line(name, value)
        head += b"Via: 1.1 vanilla_async\r\n"
        chunked_out = False
        if body == "none":
            out += head + b"\r\n"
            return
        if isinstance(body, int):
            head += b"Content-Length: %d\r\n\r\n" % body
        elif req.minor >= 1:
            chunked_out = True
            head += b"Transfer-Encoding: chunked\r\n\r\n"
        else:
            req.keep_alive = False
            head += b"Connection: close\r\n\r\n"
        out += head
        relaying = True

        remaining = body if isinstance(body, int) else -1
        decoder = ChunkedDecoder() if body == "chunked" else None
        while True:
            if buf:
                piece = decoder.feed(buf) if decoder is not None else buf[:remaining] if remaining >= 0 else buf
                if remaining >= 0:
                    remaining -= len(piece)
                if piece:
                    out += b"%x\r\n%s\r\n" % (len(piece), piece) if chunked_out else piece
            if remaining == 0 or (decoder is not None and decoder.done):
                break
            buf = yield from _recv(sock, time.monotonic() + settings.idle_timeout)  # out leaves meanwhile
            if not buf:
                if body == "close":
                    break
                raise BadGateway("the upstream closed the connection in the middle of the body")
        if chunked_out:
            out += b"0\r\n\r\n"
    except (BadGateway, GatewayTimeout, ResponseError, OSError, ShuttingDown) as exc:
        status = 504 if isinstance(exc, GatewayTimeout) else 503 if isinstance(exc, ShuttingDown) else 502
        log.warning("async_proxy: GET %s: %s%s", path.decode("latin-1"), exc, "; cutting the response" if relaying else "")
        if relaying:
            req.keep_alive = False  # the client sees an incomplete response, not a complete wrong one
        else:
            reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}[status]
            respond(out, status, f"{reason}: {exc}\n")
    finally:
        sock.close()  # also when the client left: GeneratorExit at a yield


def _recv(sock: socket.socket, deadline: float) -> Generator[Token, Any, bytes]:
    """The next bytes from ``sock`` (``b""`` at EOF), parking until ``deadline`` at most."""
    while True:
        try:
            return sock.recv(BUFSIZE)
        except BlockingIOError:
            pass
        if not (yield readable(sock, timeout=max(0.0, deadline - time.monotonic()))):
            raise GatewayTimeout("the upstream is too slow")


def _parse_head(head: bytes) -> tuple[int, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    match = _STATUS.fullmatch(lines[0])
    if match is None:
        raise BadGateway(f"not an HTTP/1.x status line: {lines[0][:80]!r}")
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or _TOKEN.fullmatch(name) is None:
            raise BadGateway(f"malformed header line {line[:80]!r}")
        headers.append((name, value.strip(b" \t")))
    return int(match.group(1)), headers


def _values(headers: list[tuple[bytes, bytes]], name: bytes) -> list[bytes]:
    return [v for n, v in headers if n.lower() == name]


def _body_framing(status: int, headers: list[tuple[bytes, bytes]]) -> int | str:
    """RFC 9112 §6.3 for a response to GET: ``"none"``, ``"chunked"``, a length, or ``"close"``."""
    if status < 200 or status in (204, 304):
        return "none"
    codings = [t.strip().lower() for v in _values(headers, b"transfer-encoding") for t in v.split(b",")]
    if codings:
        return "chunked" if codings[-1] == b"chunked" else "close"
    lengths = {v.strip() for v in _values(headers, b"content-length") for v in v.split(b",")}
    if not lengths:
        return "close"
    value = lengths.pop()
    if lengths or not value.isdigit() or len(value) > 18:
        raise BadGateway("invalid Content-Length")
    return int(value)


class ChunkedDecoder:
    """An incremental decoder of a chunked body: `feed` bytes, get data; `done` after the trailers."""

    def __init__(self) -> None:
        self.buf = b""
        self.remaining = 0  # data bytes left in the current chunk (+2 for its CRLF once started)
        self.state = "size"  # "size" → "data" → "crlf" → "size" ... → "trailers"
        self.done = False

    def feed(self, data: bytes) -> bytes:
        buf = self.buf + data
        out = []
        while not self.done:
            if self.state == "size" or self.state == "trailers":
                end = buf.find(b"\r\n")
                if end < 0:
                    if len(buf) > MAX_CHUNK_LINE:
                        raise BadGateway("chunk-size line too long")
                    break
                line, buf = buf[:end], buf[end + 2:]
                if self.state == "trailers":
                    self.done = not line  # trailer fields are dropped; an empty line ends the body
                    continue
                size = line.split(b";", 1)[0].strip(b" \t")
                if not size or len(size) > 16 or size.strip(b"0123456789abcdefABCDEF"):
                    raise BadGateway(f"invalid chunk size {line[:40]!r}")
                self.remaining = int(size, 16)
                self.state = "data" if self.remaining else "trailers"
            elif self.state == "data":
                if not buf:
                    break
                piece, buf = buf[:self.remaining], buf[self.remaining:]
                out.append(piece)
                self.remaining -= len(piece)
                if not self.remaining:
                    self.state = "crlf"
            else:  # "crlf"
                if len(buf) < 2:
                    break
                if buf[:2] != b"\r\n":
                    raise BadGateway("chunk data not followed by CRLF")
                buf = buf[2:]
                self.state = "size"
        self.buf = buf
        return b"".join(out)


def make_config(settings: Settings | None = None, **fields: Any) -> ServerConfig:
    """The example's `ServerConfig`; ``settings=None`` reads ``UPSTREAM``/``PROXY_TIMEOUT`` in each worker."""

    def make_state() -> Upstream:
        return Upstream(settings or Settings.from_env())

    fields.setdefault("port", 8080)
    return ServerConfig(handler=handler, make_state=make_state, **fields)


config = make_config()
