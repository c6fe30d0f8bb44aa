"""examples.sse — Server-Sent Events, broadcast to the subscribers of *every* worker.

``GET /events``     subscribe: a ``text/event-stream`` (chunked) that starts with a ``hello`` event
                    naming the worker (``data: {"worker_pid": 1234}``), then carries every broadcast
                    as a ``message`` event, a ``: heartbeat`` comment after ``heartbeat`` seconds of
                    silence, and a final ``bye`` event when the server shuts down.
``POST /broadcast`` the body (UTF-8 text, at most ``max_message`` bytes → else **413**) goes to every
                    subscriber on every worker; **202** with ``{"workers": N, "failed": F}``: N
                    workers took the message into their queue (202, not 200: delivery to the
                    subscribers happens after the answer). A multi-line body becomes one ``data:``
                    line per line (CRLF, CR and LF all end a line), so the client rebuilds it with LF.
``GET /``           a small page that subscribes from a browser.

Run: ``python -m examples.sse --port 8080 --workers 4``, then ``curl -N localhost:8080/events`` in
one terminal and ``curl -d 'hello' localhost:8080/broadcast`` in another. Environment (read by
each worker at start): ``SSE_HEARTBEAT`` (seconds, default 15), ``SSE_RENDEZVOUS`` (a directory, see
below). ``make_config(Settings(...))`` sets the same from code.

Theory of operation
-------------------
Workers are separate processes that share nothing, so a broadcast must cross processes:

* **Rendezvous.** Each worker binds a non-blocking ``AF_UNIX``/``SOCK_DGRAM`` socket named after
  its pid, ``<dir>/<pid>.sock``, in one directory per server. By default the directory is
  ``$XDG_RUNTIME_DIR`` (else the temp dir) ``/vanilla-sse-<uid>-<supervisor pid>``: the workers'
  parent pid is the per-server token, so every worker of one server — restarted ones included —
  finds the same directory and no two servers share one. It is created ``0700`` and refused if it
  is not ours (another user cannot inject messages). Filesystem names rather than the abstract
  namespace because discovery is then an ``os.listdir`` of a tiny directory instead of a scan of
  ``/proc/net/unix``.
* **Broadcast.** ``POST /broadcast`` lists the directory and sends the body as one datagram to every
  socket, its own worker's included. Each send uses a fresh socket *connected* to the peer, so a
  full receive queue (``net.unix.max_dgram_qlen``, often only 10) is an ``EAGAIN`` we can wait out
  with ``yield writable(sock)`` — the kernel reports a connected datagram socket writable when the
  peer's queue has room — without blocking the worker (at most ``send_timeout`` per peer, then that
  peer counts as failed). One datagram per message: no framing, no partial messages.
* **Stale names.** A worker that exits cleanly removes its socket (and the last one the directory).
  A killed worker leaves a name behind: connecting to it is refused, and the name is removed once
  its pid is gone (a refused name whose pid lives is a worker still starting: skipped, kept).
  Every worker also sweeps dead pids' names when it starts.
* **Receiving.** A clientless task (``on_worker_start``) parks on ``readable(sock)``, reads up to 64
  datagrams per wake-up (then lets the subscribers run) and fans each out.
* **Fan-out.** Every subscriber owns a queue and waits in the hub's `ParkingLot` (no fd per
  stream: 10,000 subscribers cost 10,000 sockets, not 20,000 fds). The message is encoded once
  (SSE lines + chunk framing); the fan-out appends the same ``bytes`` to each queue and, once per
  batch, unparks every waiting subscriber; each one, parked on ``park(lot, timeout=heartbeat)``,
  wakes, appends its queue to ``out`` and parks again: the server flushes it.
* **Slow subscribers.** The queue is bounded (``queue_limit``). It only fills when the subscriber is
  not resumed — the server holds a generator whose client has too much unsent output — so the
  policy is to **drop the slowest subscriber, never a message**: its stream ends with an
  ``event: dropped`` and the connection closes; an ``EventSource`` reconnects by itself. Everyone
  else still gets every message exactly once.
* **Shutdown.** A stream never ends by itself, so waiting for the grace period would only delay the
  exit. ``ServerConfig.on_worker_stop`` runs `Hub.begin_shutdown` the moment the worker starts
  shutting down: it wakes every subscriber, and each stream says ``event: bye``, ends its chunked
  body and closes at once. `vanilla_async.ShuttingDown`, thrown at the end of the grace period, is
  the fallback for a stream that was not waiting at that moment.

Limits: delivery is at-most-once and live only (no history, no replay after a reconnect: the
events carry no ``id``); messages from *different* workers may interleave differently on
different subscribers (each worker's own messages stay in order); peers are only this machine's
workers.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import re
import socket
import stat
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, Generator, Mapping

from reactor import Reactor, Token
from vanilla_async import (
    Limits,
    ParkingLot,
    Request,
    ServerConfig,
    ShuttingDown,
    date_header,
    park,
    readable,
    respond,
    writable,
)

log = logging.getLogger("examples.sse")

#: how many queued datagrams one wake-up of the receiver reads before letting the subscribers run
RECV_BATCH = 64

# -- SSE encoding (WHATWG HTML "Server-sent events") ------------------------------------------------
_LINE_END = re.compile(rb"\r\n|\r|\n")


def encode_event(data: bytes, event: str | None = None) -> bytes:
    """One event: an optional ``event:`` line, one ``data:`` line per line of ``data``, a blank line.

    ``data`` is split on CRLF, CR and LF only (the parser's line endings), so the client's
    LF-joined data equals ``data`` with its line endings normalised to LF (a trailing newline too).
    """
    head = b"event: " + event.encode("ascii") + b"\n" if event else b""
    return head + b"".join(b"data: " + line + b"\n" for line in _LINE_END.split(data)) + b"\n"


def chunk(data: bytes) -> bytes:
    """``data`` as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST_CHUNK = b"0\r\n\r\n"
HEARTBEAT = b": heartbeat\n\n"
STREAM_HEAD = (
    b"Content-Type: text/event-stream\r\n"
    b"Cache-Control: no-cache\r\n"
    b"X-Accel-Buffering: no\r\n"
)


# -- settings and per-worker state -----------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """How the example behaves; `from_env` reads ``SSE_HEARTBEAT`` and ``SSE_RENDEZVOUS``."""

    heartbeat: float = 15.0  #: seconds of silence before a ``: heartbeat`` comment
    rendezvous: str | None = None  #: directory of the workers' sockets (None: one per server, see above)
    max_message: int = 64 * 1024  #: broadcast body limit (413 beyond it)
    queue_limit: int = 256  #: messages waiting for one subscriber before it is dropped
    send_timeout: float = 1.0  #: how long a broadcast waits for one peer's full queue

    def __post_init__(self) -> None:
        if not self.heartbeat > 0:
            raise ValueError(f"heartbeat must be > 0 seconds, got {self.heartbeat!r}")
        if not 0 < self.max_message <= 128 * 1024:  # one datagram must fit the default socket buffers
            raise ValueError(f"max_message must be in 1..131072 bytes, got {self.max_message!r}")
        if self.queue_limit < 1 or not self.send_timeout > 0:
            raise ValueError("queue_limit must be >= 1 and send_timeout > 0")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        heartbeat = env.get("SSE_HEARTBEAT", "").strip()
        return cls(heartbeat=float(heartbeat) if heartbeat else 15.0, rendezvous=env.get("SSE_RENDEZVOUS") or None)


def default_rendezvous() -> str:
    """``<runtime dir>/vanilla-sse-<uid>-<parent pid>``: one per server (its workers share the parent)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"vanilla-sse-{os.getuid()}-{os.getppid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_of(name: str) -> int | None:
    stem, dot, ext = name.partition(".")
    return int(stem) if dot and ext == "sock" and stem.isdigit() else None


class Subscriber:
    """One ``/events`` stream of this worker: a bounded queue; it waits in the hub's parking lot."""

    __slots__ = ("queue", "dropped")

    def __init__(self) -> None:
        self.queue: deque[tuple[bytes, bytes]] = deque()  # (as a chunk, bare) per message
        self.dropped = False  # too slow: its stream ends at its next wake-up


class Hub:
    """A worker's broadcast endpoint and subscribers (``req.state``). Made after the fork."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.pid = os.getpid()
        self.own_directory = settings.rendezvous is None  # ours to remove when the last worker leaves
        self.directory = settings.rendezvous or default_rendezvous()
        self.path = os.path.join(self.directory, f"{self.pid}.sock")
        if len(os.fsencode(self.path)) > 107:
            raise ValueError(f"socket path {self.path!r} is too long for AF_UNIX (108 bytes); use a shorter rendezvous")
        self.subscribers: set[Subscriber] = set()
        self.lot = ParkingLot()  # where idle subscribers wait: woken in-process, no fd per stream
        self.stopping = False
        self.delivered = 0  #: messages this worker received for its subscribers
        self._prepare_directory()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.setblocking(False)
            self._forget(self.path)  # left by a dead process that had our pid: nobody else can own it
            self.sock.bind(self.path)
        except BaseException:
            self.close_socket()
            raise

    def _prepare_directory(self) -> None:
        try:
            os.mkdir(self.directory, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(self.directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise PermissionError(f"{self.directory} must be a directory of ours that others cannot write to")
        for name in os.listdir(self.directory):  # names left by killed workers
            pid = _pid_of(name)
            if pid is not None and not _pid_alive(pid):
                self._forget(os.path.join(self.directory, name))

    @staticmethod
    def _forget(path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def peers(self) -> list[str]:
        """Socket paths of every worker of this server (this one included)."""
        return [os.path.join(self.directory, n) for n in sorted(os.listdir(self.directory)) if _pid_of(n) is not None]

    def forget_if_dead(self, path: str) -> bool:
        """A peer refused a message: remove its name if its process is gone. True if removed."""
        pid = _pid_of(os.path.basename(path))
        if pid is None or _pid_alive(pid):
            return False
        self._forget(path)
        return True

    # -- local fan-out --------------------------------------------------------------------------------
    def publish(self, message: bytes) -> None:
        """Queue ``message`` (encoded once) for every local subscriber and wake them."""
        self.delivered += 1
        event = encode_event(message)
        encoded = (chunk(event), event)
        limit = self.settings.queue_limit
        for sub in self.subscribers:
            if sub.dropped:
                continue
            if len(sub.queue) >= limit:
                sub.dropped = True  # drop the slow subscriber, not a message (see the module docstring)
                sub.queue.clear()
            else:
                sub.queue.append(encoded)

    def wake(self) -> None:
        """Resume every waiting subscriber (after a batch of `publish`, or to say bye)."""
        self.lot.unpark_all()

    def begin_shutdown(self) -> None:
        if not self.stopping:
            self.stopping = True
            log.info("sse: worker pid %d says bye to %d subscriber(s)", self.pid, len(self.subscribers))
        self.wake()

    def close_socket(self) -> None:
        """Stop receiving: close and unlink the socket; the last worker out removes the directory."""
        self.sock.close()
        self._forget(self.path)
        if self.own_directory:
            try:
                os.rmdir(self.directory)
            except OSError:
                pass  # other workers are still there


# -- clientless tasks (on_worker_start) -------------------------------------------------------------
def receive(hub: Hub) -> Generator[Token, Any, None]:
    """Read datagrams from the other workers (and our own) and fan them out to local subscribers."""
    sock = hub.sock
    size = hub.settings.max_message + 1
    try:
        while True:
            yield readable(sock)
            for _ in range(RECV_BATCH):
                try:
                    message = sock.recv(size)
                except BlockingIOError:
                    break
                if len(message) < size:  # (a longer one was truncated: not ours to deliver)
                    hub.publish(message)
            hub.wake()  # once per batch
    finally:
        hub.close_socket()


def on_worker_start(hub: Hub, reactor: Reactor) -> list[Generator[Token, Any, None]]:
    log.info("sse: worker pid %d receives broadcasts on %s", hub.pid, hub.path)
    return [receive(hub)]


# -- handlers --------------------------------------------------------------------------------------
PAGE = b"""<!doctype html><meta charset="utf-8"><title>vanilla_async SSE</title>
<form onsubmit="fetch('/broadcast',{method:'POST',body:this.m.value});this.m.value='';return false">
<input name="m" placeholder="message" autofocus> <button>broadcast</button></form><pre id="log"></pre>
<script>const log = document.getElementById('log'), es = new EventSource('/events');
for (const kind of ['hello', 'message', 'bye', 'dropped'])
  es.addEventListener(kind, e => log.textContent += kind + ': ' + e.data + '\\n');</script>
"""


def handler(req: Request, out: bytearray) -> Generator[Token, Any, None] | None:
    path = req.path
    hub: Hub = req.state
    if path == b"/events":
        if req.method != b"GET":
            respond(out, 405, b"use GET /events\n", headers=[("Allow", "GET")])
            return None
        if hub.stopping:
            respond(out, 503, b"shutting down\n", headers=[("Retry-After", "1")])
            return None
        return stream(req, out, hub)
    if path == b"/broadcast":
        if req.method != b"POST":
            respond(out, 405, b"use POST /broadcast with the message as the body\n", headers=[("Allow", "POST")])
            return None
        return broadcast(req, out, hub)
    if path == b"/" and req.method == b"GET":
        respond(out, 200, PAGE, content_type=b"text/html; charset=utf-8")
        return None
    respond(out, 404, b"try GET /events or POST /broadcast\n")
    return None


def stream(req: Request, out: bytearray, hub: Hub) -> Generator[Token, Any, None]:
    """One subscriber: hello, then messages, heartbeats and finally bye (see the module docstring)."""
    req.timeout = math.inf  # an endless stream: exempt from Limits.request_timeout
    sub = Subscriber()
    hub.subscribers.add(sub)
    chunked = req.minor >= 1  # an HTTP/1.0 client gets a close-delimited stream instead
    frame = chunk if chunked else bytes
    try:
        out += b"HTTP/1.1 200 OK\r\n" + date_header() + STREAM_HEAD
        out += b"Transfer-Encoding: chunked\r\n\r\n" if chunked else b"Connection: close\r\n\r\n"
        if not chunked:
            req.keep_alive = False
        out += frame(b"retry: 2000\n" + encode_event(json.dumps({"worker_pid": hub.pid}).encode(), "hello"))
        heartbeat = frame(HEARTBEAT)
        while True:
            queue = sub.queue
            while queue:
                out += queue.popleft()[0 if chunked else 1]
            if sub.dropped or hub.stopping:
                event = b"dropped" if sub.dropped else b"bye"
                reason = b"too slow: reconnect" if sub.dropped else b"server shutting down"
                _finish(req, out, frame(b"event: " + event + b"\ndata: " + reason + b"\n\n"), chunked)
                return
            try:
                ok = yield park(hub.lot, timeout=hub.settings.heartbeat)
            except ShuttingDown:  # the grace period is over (the fallback; see the module docstring)
                _finish(req, out, frame(b"event: bye\ndata: server shutting down\n\n"), chunked)
                return
            if not ok:
                out += heartbeat
    finally:
        hub.subscribers.discard(sub)  # client gone (GeneratorExit at the yield), bye, or an error


def _finish(req: Request, out: bytearray, last: bytes, chunked: bool) -> None:
    out += last
    if chunked:
        out += LAST_CHUNK
    req.keep_alive = False


def broadcast(req: Request, out: bytearray, hub: Hub) -> Generator[Token, Any, None]:
    """Send the body to every worker's socket; 202 with how many took it."""
    settings = hub.settings
    body = bytes(req.body)
    if len(body) > settings.max_message:
        respond(out, 413, f"a broadcast is at most {settings.max_message} bytes\n")
        return
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        respond(out, 400, b"the message must be UTF-8 text (an event stream is always UTF-8)\n")
        return
    notified = failed = 0
    for path in hub.peers():
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sender.setblocking(False)
            sender.connect(path)
            deadline = time.monotonic() + settings.send_timeout
            while True:
                try:
                    sender.send(body)
                except BlockingIOError:  # the peer's queue is full: wait for room, not in a loop
                    left = deadline - time.monotonic()
                    if left > 0 and (yield writable(sender, timeout=left)):
                        continue
                    log.warning("sse: worker %s did not take the message within %.1fs", path, settings.send_timeout)
                    failed += 1
                    break
                notified += 1
                break
        except (ConnectionRefusedError, FileNotFoundError):
            if not hub.forget_if_dead(path):
                log.info("sse: %s refused the message (a worker still starting?)", path)
        except OSError as exc:
            log.warning("sse: could not send to %s: %s", path, exc if exc.errno != errno.EMSGSIZE else "message too big")
            failed += 1
        finally:
            sender.close()
    respond(out, 202, json.dumps({"workers": notified, "failed": failed}) + "\n", content_type=b"application/json")


def make_config(settings: Settings | None = None, **fields: Any) -> ServerConfig:
    """The example's `ServerConfig`; ``settings=None`` reads the environment in each worker."""

    def make_state() -> Hub:
        return Hub(settings or Settings.from_env())

    limit = (settings or Settings()).max_message
    # 413 from the declared length, before buffering; a fan-out server holds many idle streams, so
    # it admits more connections per worker than the default 10,000 (each costs ~1 fd and a few KiB).
    fields.setdefault("limits", Limits(max_body_bytes=limit, max_connections=50_000))
    fields.setdefault("port", 8080)
    fields.setdefault("on_worker_stop", Hub.begin_shutdown)  # every stream says bye when shutdown begins
    return ServerConfig(handler=handler, make_state=make_state, on_worker_start=on_worker_start, **fields)


config = make_config()
