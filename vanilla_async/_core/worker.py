"""A worker: one reactor, one listening socket, the connections it accepted.

Theory of operation
-------------------
Each worker process (or, in tests, a thread) owns a `Reactor` and its own listening socket,
bound with ``SO_REUSEPORT`` so the kernel spreads new connections over the workers: no accept
lock, no shared state on the hot path. The listener is level-triggered and each readable event
accepts at most `ACCEPT_BATCH` connections, so a connection storm cannot starve served clients.
Beyond ``Limits.max_connections`` a new connection gets a 503 and is closed; when the process
runs out of fds, accepting pauses for a moment instead of spinning.

Two periodic timers run on the reactor: the Date refresh (once a second, on the second) and the
deadline sweep, which walks the connections and expires those whose ``deadline`` passed. One
sweep every quarter of the shortest timeout costs O(connections) a few times a second, instead
of a heap operation on every request.

Graceful shutdown (`begin_shutdown`, on SIGTERM/SIGINT in a worker process): the listener closes
at once; idle keep-alive connections close; connections with a request in progress (being read,
parked, or still sending) are marked ``closing`` and close as soon as their response is out.
When none is left — or when the grace period ends and the rest are closed — clientless tasks are
cancelled, the timers stop and `run()` returns. `leaks()` then reports anything left behind.

Listeners the supervisor shares (a unix socket, an inherited fd: see `server`) are the same
socket in every worker: each worker watches it and one wins each accept (the others see EAGAIN);
closing a worker's copy at shutdown does not close the socket.

Optional limits (`Limits`), each costing nothing when off: ``max_in_flight`` wraps the handler
(`limit_in_flight`: one compare per request, one counted ``yield from`` per generator);
``max_worker_requests`` is checked every `RETIRE_CHECK` seconds, from the per-connection counts
``Http1.served`` (no per-request cost beyond that counter; O(connections) per check): past it the worker asks its supervisor for a
replacement (SIGUSR2, repeated each sweep until answered, since signals of one kind coalesce), and
the supervisor sends SIGTERM once the replacement listens.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import signal
import socket
import ssl
import threading
import time
from functools import partial
from types import GeneratorType
from typing import Any, Callable

from reactor import Reactor, Task, Timer, make_reactor

from .config import ServerConfig
from .connection import OPEN, Connection
from .handler import Handler
from .http1 import Http1, is_generator
from .protocol import Protocol
from .request import Request
from .tls import DEFAULT_HANDSHAKE_TIMEOUT, TLSConfig, TLSTransport, build_context, reload_certificates
from .transport import PlainTransport, Transport
from .response import error_response, refresh_date, respond

log = logging.getLogger("vanilla_async")

ACCEPT_BATCH = 64
RETIRE_CHECK = 0.25  # seconds between two counts of the requests served, with Limits.max_worker_requests
LAST_CALL = 0.5  # seconds a recently active idle connection may still send one request once shutdown began
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
_OVERLOADED = error_response(503, "server at its connection limit; retry later")
_BUSY_HEADERS = ((b"Retry-After", b"1"),)


def limit_in_flight(handler: Handler, limit: int) -> Handler:
    """``handler`` answering **503** (``Retry-After: 1``, connection kept) while ``limit`` requests
    are in flight: being handled (a sync handler runs alone, so that is one) or parked (a generator
    is counted from its start until it ends, however it ends). One wrapper per worker."""
    parked = 0

    def counted(gen: Any) -> Any:
        nonlocal parked
        parked += 1
        try:
            return (yield from gen)
        finally:
            parked -= 1

    def limited(req: Request, out: bytearray) -> Any:
        if parked >= limit:  # this request would be number parked + 1
            respond(out, 503, b"server at its concurrency limit; retry later\n", headers=_BUSY_HEADERS)
            return None
        result = handler(req, out)
        if result is not None and is_generator(result):
            return counted(result)
        return result

    return limited


def make_listener(host: str, port: int, backlog: int, reuse_port: bool = True) -> socket.socket:
    """A non-blocking listening socket on host:port, with SO_REUSEPORT so every worker can bind it."""
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port and hasattr(socket, "SO_REUSEPORT"):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


_local = threading.local()


def current_worker() -> Worker | None:
    """The worker serving in this thread (set by `Worker.start`), or None outside a server."""
    worker: Worker | None = getattr(_local, "worker", None)
    return worker


def connection_of(req: Request) -> Connection | None:
    """The connection answering ``req`` — for toolbox code that writes to a request's client outside
    its handler's steps (a broadcast's direct path: `Connection.write`). None when it has closed or
    the request is not being served by a worker in this thread."""
    worker = current_worker()
    return worker.conns.get(req.fd) if worker is not None else None


class Worker:
    """Serve ``config`` on one reactor. `run()` blocks until shutdown completes."""

    def __init__(
        self, config: ServerConfig, index: int = 0, listener: socket.socket | None = None, parent_pid: int | None = None,
        reactor: Reactor | None = None, tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.config = config
        self.parent_pid = parent_pid  # a worker process drains and exits if its supervisor disappears
        self.index = index
        self.limits = config.limits
        self.handler = config.handler
        if self.limits.max_in_flight is not None:
            self.handler = limit_in_flight(config.handler, self.limits.max_in_flight)
        self.reactor = reactor if reactor is not None else make_reactor(config.backend)
        self.listener = listener if listener is not None else make_listener(config.host, config.port, config.backlog)
        address = self.listener.getsockname()
        self.port: int = address[1] if isinstance(address, tuple) else 0  # (0: a unix socket)
        #: requests served on connections already closed (kept only with ``Limits.max_worker_requests``)
        self.served_closed = 0
        self.retiring = False  # past max_worker_requests: waiting for the supervisor's SIGTERM
        self.conns: dict[int, Connection] = {}
        #: how each accepted socket is wrapped, and what protocol it starts with
        self.transport: Callable[[socket.socket, Callable[[], None]], Transport] = PlainTransport
        self.make_protocol: Callable[[], Protocol] = Http1
        #: TLS: the context every connection's session comes from (built by the supervisor before the
        #: fork, so that all workers share its session-ticket keys), and the handshake deadline
        self.tls_context = tls_context
        self.handshake_timeout = 0.0
        if config.tls is not None:
            self.tls_context = tls_context if tls_context is not None else build_context(config.tls)
            self.handshake_timeout = (config.tls.handshake_timeout if isinstance(config.tls, TLSConfig)
                                      else DEFAULT_HANDSHAKE_TIMEOUT)
            self.transport = partial(_tls_transport, self.tls_context)
        self.state: Any = None
        self.background: list[Task] = []
        self.stopping = False
        self._timers: list[Timer] = []
        self._force_timer: Timer | None = None
        self._started = False
        #: what `leaks()` reported when `run()` returned, before the final cleanup (all zero when clean)
        self.final_leaks: dict[str, int] | None = None

    # -- lifecycle --------------------------------------------------------------------------------------
    def start(self) -> None:
        """Make the worker's state, start accepting and the periodic timers (call in the worker's thread)."""
        if self._started:
            return
        self._started = True
        _local.worker = self
        config = self.config
        self.state = config.make_state() if config.make_state is not None else None
        self.reactor.add_reader(self.listener.fileno(), self._on_accept)
        self._schedule_date()
        limits = self.limits
        # (WebSocket keepalive deadlines ride on the same sweep: a short ping interval makes it finer)
        timeouts = [limits.read_timeout, limits.idle_timeout, limits.write_timeout,
                    *(t for t in (limits.ws_ping_interval, limits.ws_ping_timeout) if t is not None)]
        self._sweep_every = max(0.05, min(1.0, min(timeouts) / 4))
        self._timers.append(self.reactor.call_later(self._sweep_every, self._sweep))
        if limits.max_worker_requests is not None:
            self._timers.append(self.reactor.call_later(RETIRE_CHECK, self._check_retirement))
        if config.on_worker_start is not None:
            started = config.on_worker_start(self.state, self.reactor)
            gens = [started] if isinstance(started, GeneratorType) else list(started or ())
            for gen in gens:
                self.background.append(self.reactor.spawn(gen))

    def run(self) -> None:
        self.start()
        try:
            self.reactor.run()
            self.final_leaks = self.leaks()
        finally:
            self.close()

    def begin_shutdown(self, grace: float | None = None) -> None:
        """Stop accepting, close idle connections, give the rest ``grace`` seconds.

        Call it from the loop (a signal handler, a timer, ``call_soon``), not from inside a handler:
        it reads the idle connections once, which would re-enter a connection that is serving.
        """
        if self.stopping:
            return
        self.stopping = True
        grace = self.config.grace if grace is None else grace
        log.info("worker %d shutting down: %d connection(s), grace %.1fs", self.index, len(self.conns), grace)
        if self.listener.fileno() >= 0:
            # Connections the kernel already completed are clients that were promised an answer:
            # closing the listener would reset them. Take them first (bounded).
            self._on_accept(0, self.limits.max_connections)
        self._stop_accepting()
        if self.config.on_worker_stop is not None:
            try:
                self.config.on_worker_stop(self.state)
            except Exception:
                log.exception("on_worker_stop raised; shutting down anyway")
        now = self.reactor.now
        last_call = min(LAST_CALL, grace)
        for conn in list(self.conns.values()):
            if conn.phase is OPEN:
                # The protocol decides: finish what is in progress; an idle connection that was just
                # active may get a last call (a request may be on its way), else it closes now.
                conn.proto.shutdown(now, last_call)
        if last_call > 0 and self.conns:
            self._timers.append(self.reactor.call_later(last_call, self._end_last_call))
        self._force_timer = self.reactor.call_later(grace, self.force_close)
        self._maybe_done()

    def _end_last_call(self) -> None:
        for conn in list(self.conns.values()):
            if conn.phase is OPEN:
                conn.proto.last_call_over()

    def stop_now(self) -> None:
        """Shut down without a grace period: parked and in-flight requests are closed at once."""
        self.begin_shutdown(0.0)
        self.force_close()

    def force_close(self) -> None:
        """The grace period is over: parked generators get `ShuttingDown` thrown in (a last word,
        e.g. a final SSE event, is flushed), then every connection is closed."""
        if self.conns:
            log.info("worker %d: grace period over, closing %d connection(s)", self.index, len(self.conns))
        for conn in list(self.conns.values()):
            conn.interrupt()
        self._maybe_done()

    def _maybe_done(self) -> None:
        if self.stopping and not self.conns:
            for task in self.background:
                self.reactor.cancel(task)
            self.background.clear()
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
            if self._force_timer is not None:
                self._force_timer.cancel()
                self._force_timer = None
            self.reactor.stop()

    def close(self) -> None:
        """Release everything (idempotent); run() calls this on its way out."""
        self._stop_accepting()
        for conn in list(self.conns.values()):
            conn.close()
        for task in self.background:
            self.reactor.cancel(task)
        self.background.clear()
        self.reactor.close()

    def leaks(self) -> dict[str, int]:
        """What is still held (all zero after a clean shutdown): connections, tasks, timers, fds."""
        stats = self.reactor.stats()
        return {
            "connections": len(self.conns),
            "tasks": stats.tasks,
            "timers": stats.timers,
            "watched_fds": stats.watched_fds,
            "callbacks": stats.callbacks,
        }

    # -- accepting --------------------------------------------------------------------------------------
    def _stop_accepting(self) -> None:
        if self.listener.fileno() >= 0:
            self.reactor.remove(self.listener.fileno())
            self.listener.close()

    def _on_accept(self, mask: int, batch: int = ACCEPT_BATCH) -> None:
        listener = self.listener
        conns = self.conns
        max_conns = self.limits.max_connections
        for _ in range(batch):
            try:
                sock, _ = listener.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno in _OUT_OF_FDS:
                    log.warning("worker %d cannot accept: %s; pausing accepts for 100 ms (raise RLIMIT_NOFILE?)",
                                self.index, exc.strerror)
                    self._pause_accepting(0.1)
                elif exc.errno != errno.ECONNABORTED:
                    log.warning("worker %d accept failed: %s", self.index, exc)
                return
            sock.setblocking(False)
            if len(conns) >= max_conns:
                if self.tls_context is None:  # (a TLS port cannot answer in cleartext: it just closes)
                    try:
                        sock.send(_OVERLOADED)
                    except OSError:
                        pass
                sock.close()
                log.warning("worker %d at max_connections=%d; answered 503", self.index, max_conns)
                continue
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass  # not TCP (unix socket) or already reset
            conn = Connection(self, sock, self.transport, self.make_protocol())
            if self.handshake_timeout:
                conn.deadline = self.reactor.now + self.handshake_timeout  # a stalled handshake is reaped
            conns[conn.fd] = conn
            self.reactor.add_stream(conn.fd, conn.on_event)

    def reload_tls(self) -> None:
        """SIGHUP: load the certificate and key files again (new connections get them; open ones
        keep theirs; a broken file is refused with a log line and the old one stays in use)."""
        tls = self.config.tls
        if self.tls_context is None:
            log.info("worker %d: SIGHUP, but TLS is off: nothing to reload", self.index)
            return
        if not isinstance(tls, TLSConfig):
            log.warning("worker %d: SIGHUP, but TLS came as a ready ssl.SSLContext: there are no files to reload "
                        "(give ServerConfig.tls a TLSConfig to rotate certificates without a restart)", self.index)
            return
        if reload_certificates(self.tls_context, tls):  # (a failure is logged there, naming the file)
            log.info("worker %d: TLS certificate reloaded from %s", self.index, tls.certfile)

    def _pause_accepting(self, seconds: float) -> None:
        fd = self.listener.fileno()
        self.reactor.remove(fd)

        def resume() -> None:
            if not self.stopping and self.listener.fileno() >= 0:
                self.reactor.add_reader(self.listener.fileno(), self._on_accept)

        self.reactor.call_later(seconds, resume)

    def connection_closed(self, conn: Connection) -> None:
        self.conns.pop(conn.fd, None)
        if self.limits.max_worker_requests is not None:
            self.served_closed += getattr(conn.proto, "served", 0)
        if self.stopping:
            self._maybe_done()

    # -- periodic work -----------------------------------------------------------------------------------
    def _schedule_date(self) -> None:
        wall = time.time()
        refresh_date(wall)
        delay = math.floor(wall) + 1.0 - wall + 0.001
        self._timers = [t for t in self._timers if t.active]
        self._timers.append(self.reactor.call_later(delay, self._schedule_date))

    def _sweep(self) -> None:
        if self.parent_pid is not None and os.getppid() != self.parent_pid and not self.stopping:
            log.warning("worker %d: supervisor (pid %d) is gone; shutting down", self.index, self.parent_pid)
            self.begin_shutdown()
        now = self.reactor.now = self.reactor.clock()
        for conn in [c for c in self.conns.values() if c.deadline <= now]:
            conn.expire(now)
        self._timers = [t for t in self._timers if t.active]
        self._timers.append(self.reactor.call_later(self._sweep_every, self._sweep))


    def requests_served(self) -> int:
        """Requests this worker has framed so far (counted only with ``Limits.max_worker_requests``)."""
        return self.served_closed + sum(getattr(conn.proto, "served", 0) for conn in self.conns.values())

    def _check_retirement(self) -> None:
        """Every `RETIRE_CHECK` s with ``Limits.max_worker_requests``: past it, ask for a replacement."""
        limit = self.limits.max_worker_requests
        if self.stopping or limit is None:
            return
        self._timers = [t for t in self._timers if t.active]
        self._timers.append(self.reactor.call_later(RETIRE_CHECK, self._check_retirement))
        if not self.retiring and self.requests_served() < limit:
            return
        if not self.retiring:
            self.retiring = True
            log.info("worker %d served %d requests (max_worker_requests=%d): asking for a replacement",
                     self.index, self.requests_served(), limit)
        if self.parent_pid is None:
            return  # no supervisor (a worker in a thread): nothing replaces it, it keeps serving
        try:
            os.kill(self.parent_pid, signal.SIGUSR2)  # (again each sweep until SIGTERM comes: signals coalesce)
        except ProcessLookupError:
            pass


def _tls_transport(context: ssl.SSLContext, sock: socket.socket, on_blocked: Callable[[], None]) -> Transport:
    return TLSTransport(sock, context, on_blocked)
