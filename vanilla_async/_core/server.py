"""`Server`: the prefork supervisor.

Theory of operation
-------------------
The parent process never serves a request. It resolves the port (for port 0 it binds a
placeholder ``SO_REUSEPORT`` socket — bound, never listening — so every worker, including those
restarted later, joins the same ephemeral port), forks the workers, and then only waits for
signals with ``sigtimedwait`` (SIGTERM, SIGINT, SIGCHLD and SIGUSR1 are blocked in the parent, so
none is lost between two waits). Each worker unblocks them, opens its own listening socket and
runs its own reactor; nothing is shared between workers.

* A worker that dies while the server runs is replaced (after a back-off when it keeps dying
  within a second of its start, so a crash loop cannot spin).
* SIGTERM/SIGINT (or `shutdown`): forwarded to the workers as SIGTERM; each stops accepting and
  drains within ``ServerConfig.grace``. A shorter grace given to `shutdown` is enforced by sending
  SIGUSR1 ("grace is over, close now") when it expires. Workers still alive well after that are
  killed. A second SIGTERM/SIGINT (Ctrl-C twice) ends the grace period at once. `run()` returns 0
  when every worker exited cleanly; after a stop by signal, SIGTERM/SIGINT stay ignored (the
  process is expected to exit), so a late one cannot turn a clean exit into a kill.
* A worker past ``Limits.max_worker_requests`` sends SIGUSR2: the supervisor forks its
  replacement, waits until it listens, and only then sends the old one SIGTERM (it stops accepting
  and drains), so capacity never drops and no request is refused. It is not restarted when it exits.

Shared listeners: a unix socket (``ServerConfig.uds``) or an inherited fd (``ServerConfig.fd``,
systemd socket activation) is bound and listening in the supervisor *before* the fork, and every
worker inherits that one socket. ``SO_REUSEPORT`` does not apply to them: Linux spreads connections
over a reuseport group only for TCP and UDP, and an inherited fd is a single socket by nature. The
workers then all watch the one accept queue and the kernel hands each connection to one of them;
a worker that shuts down closes only its copy, so no queued connection is lost when workers come
and go (unlike a TCP reuseport listener, whose closing drops connections still in its own queue
unless ``net.ipv4.tcp_migrate_req`` is set). The supervisor removes the unix socket file at exit.
"""

from __future__ import annotations

import logging
import os
import select
import signal
import socket
import ssl
import stat
import threading
import time

from reactor import BackendUnavailableError, default_backend_name, make_backend

from ..errors import ConfigError
from .config import ServerConfig
from .tls import TLSConfig, build_context, reload_certificates
from .worker import Worker

log = logging.getLogger("vanilla_async")

_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP}
_KILL_MARGIN = 5.0


class Server:
    """Run ``config`` with prefork workers: ``Server(config).run()``."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.workers = config.worker_count()
        self.port: int | None = None
        self._placeholder: socket.socket | None = None
        self._shared: socket.socket | None = None  # a unix socket or inherited fd every worker serves
        self._uds_inode: int | None = None  # the socket file we created (removed at exit if still ours)
        self._retiring: set[int] = set()  # pids told to drain after their replacement started
        self._pids: dict[int, int] = {}  # pid -> worker index
        self._started_at: dict[int, float] = {}
        self._stopping = False
        self._grace = config.grace
        self._parent = os.getpid()
        if config.backend not in ("auto", "trio"):
            # A backend the kernel refuses (io_uring disabled, too old) fails here, once, with the
            # fallback named — not as a crash loop of every worker.
            try:
                make_backend(config.backend).close()
            except BackendUnavailableError as exc:
                raise ConfigError(str(exc)) from exc
        # Built here, before any fork: a bad certificate, key or password fails now with a message
        # that names the file, and every worker inherits the same session-ticket keys (resumption
        # works whichever worker SO_REUSEPORT picks).
        self.tls_context = build_context(config.tls) if config.tls is not None else None

    def bind(self) -> int:
        """Resolve the port (binding a placeholder for port 0) and return it."""
        if self.port is not None:
            return self.port
        if self.config.fd is not None:
            self._shared = _inherited_listener(self.config.fd)
            address = self._shared.getsockname()
            self.port = address[1] if isinstance(address, tuple) else 0
        elif self.config.uds is not None:
            self._shared = self._bind_uds(self.config.uds, self.config.uds_mode)
            self.port = 0
        elif self.config.port == 0:
            # A plain bind(0) (no SO_REUSEPORT) never returns a port some other reuseport group holds.
            family = socket.getaddrinfo(self.config.host, 0, type=socket.SOCK_STREAM)[0][0]
            with socket.socket(family, socket.SOCK_STREAM) as probe:
                probe.bind((self.config.host, 0))
                port = probe.getsockname()[1]
            placeholder = socket.socket(family, socket.SOCK_STREAM)
            placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            placeholder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            placeholder.bind((self.config.host, port))
            self._placeholder = placeholder
            self.port = port
        else:
            self.port = self.config.port
        return self.port

    @property
    def url(self) -> str:
        """``http://host:port`` (``https`` with TLS), or ``unix:PATH`` on a unix socket."""
        port = self.bind()
        host = self.config.host
        if self._shared is not None:
            address = self._shared.getsockname()
            if not isinstance(address, tuple):
                return f"unix:{address.decode() if isinstance(address, bytes) else address}"
            host = address[0]
        scheme = "https" if self.config.tls is not None else "http"
        return f"{scheme}://{'[' + host + ']' if ':' in host else host}:{port}"

    def run(self) -> int:
        """Fork the workers and supervise them until shutdown; returns the exit status (0: clean)."""
        if threading.current_thread() is not threading.main_thread():
            raise RuntimeError("Server.run() supervises with signals and must run in the main thread")
        port = self.bind()
        old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
        try:
            backend = self.config.backend if self.config.backend != "auto" else default_backend_name()
            ready = [self._spawn(index) for index in range(self.workers)]
            self._await_ready(ready)
            log.info("vanilla_async serving %s (backend=%s, workers=%d, pid=%d)", self.url, backend, self.workers, os.getpid())
            return self._supervise()
        finally:
            if self._stopping:
                # Stopped by a signal: the process is about to exit. A late SIGTERM/SIGINT (Ctrl-C
                # pressed again) must not kill it with the default action once unblocked: from
                # now on they are ignored. (Set while still blocked, so there is no window.)
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                signal.signal(signal.SIGINT, signal.SIG_IGN)
            while signal.sigtimedwait(_SIGNALS, 0) is not None:
                pass
            signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
            if self._placeholder is not None:
                self._placeholder.close()
            self._close_shared()

    def shutdown(self, grace: float | None = None) -> None:
        """Ask `run()` to stop (from another thread, or a signal handler); workers get ``grace`` seconds."""
        if grace is not None:
            self._grace = grace
        os.kill(self._parent, signal.SIGTERM)

    # -- internals ------------------------------------------------------------------------------------
    def _bind_uds(self, path: str, mode: int) -> socket.socket:
        """Bind and listen on the unix socket ``path`` with permissions ``mode``, replacing a stale
        socket file (one nothing answers on) but never a live server's or a file that is not a socket."""
        try:
            existing = os.stat(path)
        except FileNotFoundError:
            pass
        else:
            if not stat.S_ISSOCK(existing.st_mode):
                raise ConfigError(f"--uds {path}: a file that is not a socket is in the way; remove it or pick another path")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(1.0)
                try:
                    probe.connect(path)
                except (ConnectionRefusedError, FileNotFoundError):
                    log.info("removing the stale unix socket %s", path)
                    os.unlink(path)
                except OSError:
                    pass  # (bind below reports it)
                else:
                    raise ConfigError(f"--uds {path}: another server is listening there; stop it or pick another path")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old_umask = os.umask(0o777 & ~mode)  # created with ``mode`` already: no window with wider permissions
        try:
            sock.bind(path)
            os.chmod(path, mode)
            sock.listen(self.config.backlog)
        except OSError as exc:
            sock.close()
            raise ConfigError(f"cannot listen on unix socket {path}: {exc.strerror}") from exc
        finally:
            os.umask(old_umask)
        sock.setblocking(False)
        self._uds_inode = os.stat(path).st_ino
        return sock

    def _close_shared(self) -> None:
        if self._shared is None:
            return
        self._shared.close()
        self._shared = None
        path = self.config.uds
        if self._uds_inode is not None and path is not None:
            try:
                if os.stat(path).st_ino == self._uds_inode:  # (not a socket some newer server put there)
                    os.unlink(path)
            except FileNotFoundError:
                pass
            self._uds_inode = None

    def _spawn(self, index: int) -> int:
        """Fork worker ``index``; returns the read end of a pipe that gets one byte once it listens."""
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                os.close(ready_r)
                # Stop signals are ignored outside the reactor's lifetime: its handlers take over while it
                # runs, and a late SIGUSR1/SIGTERM after it closed must not kill a worker that is exiting.
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_IGN)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # handlers may waitpid() their own children
                signal.pthread_sigmask(signal.SIG_SETMASK, set())
                if self._placeholder is not None:
                    self._placeholder.close()
                code = _worker_main(self.config.with_(port=self.port), index, self._parent, ready_w, self.tls_context,
                                    self._shared)
            except BaseException:
                log.exception("worker %d crashed", index)
            finally:
                logging.shutdown()
                os._exit(code)
        os.close(ready_w)
        self._pids[pid] = index
        self._started_at[pid] = time.monotonic()
        log.info("worker %d started (pid %d)", index, pid)
        return ready_r

    def _await_ready(self, pipes: list[int], timeout: float = 30.0) -> None:
        """Wait until every worker listens (or has died trying), so "serving" in the log is true."""
        deadline = time.monotonic() + timeout
        for fd in pipes:
            try:
                remaining = deadline - time.monotonic()
                if remaining > 0 and select.select([fd], [], [], remaining)[0]:
                    os.read(fd, 1)  # b"1" when listening, b"" when the worker died first
                else:
                    log.warning("a worker did not report ready within %.0fs", timeout)
            finally:
                os.close(fd)

    def _supervise(self) -> int:
        status = 0
        restart_at: dict[int, float] = {}
        backoff: dict[int, float] = {}
        kill_at = force_at = None
        while self._pids or (restart_at and not self._stopping):
            now = time.monotonic()
            waits = [t for t in (kill_at, force_at, *restart_at.values()) if t is not None]
            timeout = max(0.0, min(waits) - now) if waits else 1.0
            info = signal.sigtimedwait(_SIGNALS, min(timeout, 1.0))
            now = time.monotonic()
            if info is not None and info.si_signo == signal.SIGHUP:
                self._reload_tls()
            elif info is not None and info.si_signo == signal.SIGUSR2:
                self._retire(info.si_pid)
            elif info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT) and self._stopping:
                log.info("second stop signal: closing remaining connections now")
                self._signal_all(signal.SIGUSR1)
            elif info is not None and info.si_signo in (signal.SIGTERM, signal.SIGINT):
                self._stopping = True
                restart_at.clear()
                log.info("stopping: %d worker(s) get %.1fs to drain", len(self._pids), self._grace)
                self._signal_all(signal.SIGTERM)
                if self._grace < self.config.grace:
                    force_at = now + self._grace
                kill_at = now + max(self._grace, self.config.grace) + _KILL_MARGIN
            for pid, code in self._reap():
                index = self._pids.pop(pid)
                lived = now - self._started_at.pop(pid, now)
                if pid in self._retiring:
                    self._retiring.discard(pid)
                    if code != 0:
                        log.warning("retired worker %d (pid %d) exited with status %d", index, pid, code)
                    else:
                        log.info("worker %d (pid %d) retired", index, pid)
                    continue
                if self._stopping:
                    if code != 0:
                        status = 1
                        log.warning("worker %d (pid %d) exited with status %d", index, pid, code)
                    continue
                delay = 0.0
                if lived < 1.0:
                    delay = backoff[index] = min(5.0, backoff.get(index, 0.05) * 2)
                else:
                    backoff.pop(index, None)
                log.warning("worker %d (pid %d) died (status %d); restarting in %.2fs", index, pid, code, delay)
                restart_at[index] = now + delay
            for index, when in list(restart_at.items()):
                if when <= now and not self._stopping:
                    del restart_at[index]
                    os.close(self._spawn(index))
            if force_at is not None and now >= force_at:
                force_at = None
                self._signal_all(signal.SIGUSR1)
            if kill_at is not None and now >= kill_at:
                log.error("workers %s did not stop in time; killing them", sorted(self._pids))
                self._signal_all(signal.SIGKILL)
                kill_at = None
                status = 1
        log.info("stopped")
        return status

    def _retire(self, pid: int) -> None:
        """A worker reached ``Limits.max_worker_requests``: start its replacement, then drain it."""
        if self._stopping or pid not in self._pids or pid in self._retiring:
            return  # (a repeated request, or one that lost the race with a stop)
        index = self._pids[pid]
        self._retiring.add(pid)
        log.info("worker %d (pid %d) reached its request limit; starting its replacement", index, pid)
        self._await_ready([self._spawn(index)])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass

    def _reload_tls(self) -> None:
        """SIGHUP: every worker loads the certificate and key again (new connections get the new
        ones; open connections carry on). The supervisor reloads its own copy first, so a worker
        restarted later starts with the new certificate, and a broken file is reported once here."""
        tls = self.config.tls
        if self.tls_context is None or not isinstance(tls, TLSConfig):
            log.warning("SIGHUP: %s; nothing to reload", "TLS is off" if tls is None else
                        "TLS came as a ready ssl.SSLContext, which has no files to reload")
            return
        if not reload_certificates(self.tls_context, tls):
            return  # (logged, naming the file; the old certificate stays in use everywhere)
        log.info("SIGHUP: reloading the TLS certificate in %d worker(s)", len(self._pids))
        self._signal_all(signal.SIGHUP)

    def _signal_all(self, sig: int) -> None:
        for pid in self._pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass

    def _reap(self) -> list[tuple[int, int]]:
        dead = []
        while self._pids:
            try:
                pid, raw = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in self._pids:
                dead.append((pid, os.waitstatus_to_exitcode(raw)))
        return dead


def _inherited_listener(fd: int) -> socket.socket:
    """The listening stream socket open on ``fd`` (systemd socket activation, ``--fd``), checked."""
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ConfigError(f"--fd {fd}: not an open socket ({exc.strerror}); pass the number of an inherited "
                          "listening socket (systemd: LISTEN_FDS starts at 3)") from exc
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise ConfigError(f"--fd {fd}: the socket is not a listening stream socket (call listen() on it, or use "
                          "ListenStream= in the systemd socket unit)")
    sock.setblocking(False)
    sock.set_inheritable(False)  # (a handler's subprocess must not hold the server's socket)
    return sock


def _worker_main(
    config: ServerConfig, index: int, parent_pid: int, ready_fd: int, tls_context: ssl.SSLContext | None,
    listener: socket.socket | None = None,
) -> int:
    try:
        worker = Worker(config, index, listener=listener, parent_pid=parent_pid, tls_context=tls_context)
        reactor = worker.reactor
        # Handlers before readiness: a SIGTERM right after "serving" must drain, not kill.
        reactor.add_signal_handler(signal.SIGTERM, lambda s: worker.begin_shutdown())
        reactor.add_signal_handler(signal.SIGINT, lambda s: worker.begin_shutdown())
        reactor.add_signal_handler(signal.SIGUSR1, lambda s: worker.stop_now())
        reactor.add_signal_handler(signal.SIGHUP, lambda s: worker.reload_tls())
        worker.start()
        try:
            os.write(ready_fd, b"1")
        except BrokenPipeError:
            pass  # a restarted worker: the supervisor does not wait for it
    finally:
        os.close(ready_fd)
    worker.run()
    return 0
