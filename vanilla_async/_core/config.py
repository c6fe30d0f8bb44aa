"""`ServerConfig`: everything a server needs to know, validated before anything starts."""

from __future__ import annotations

import os
import ssl
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from ..errors import ConfigError
from .handler import Handler, WorkerStart
from .limits import Limits
from .tls import TLSConfig

BACKEND_NAMES = ("auto", "epoll", "selectors", "trio", "io_uring")
#: the environment variable the CLI and `testing.serve` read when no backend is given
BACKEND_ENV = "VANILLA_ASYNC_BACKEND"


@dataclass(frozen=True)
class ServerConfig:
    """How to serve.

    ``handler(req, out)``: append a response to ``out`` and return ``None``, or return a generator
        that yields reactor tokens (see docs/architecture.md, "The handler contract").
    ``workers``: processes; ``None`` → ``$VANILLA_WORKERS`` → the CPUs this process may run on.
    ``port=0`` binds an ephemeral port (reported in the startup log and by `Server.port`).
    ``make_state()``: called in each worker after the fork; its value is ``req.state``.
    ``on_worker_start(state, reactor)``: called in each worker after ``make_state``; may return a
        generator (or several) to run as clientless tasks on the worker's reactor.
    ``on_worker_stop(state)``: called in each worker when its shutdown *begins* (it stops
        accepting; in-flight requests still run): the moment to tell endless streams to end now
        (unpark them to say goodbye) instead of holding the whole grace period.
    ``grace``: seconds in-flight and parked requests get to finish on SIGTERM/SIGINT.
    ``tls``: serve HTTPS: a `TLSConfig` (certificate, key, client certificates, ALPN) or a ready
        server ``ssl.SSLContext``; ``None`` serves cleartext HTTP.
    ``uds``: listen on this unix socket path instead of host:port (nginx's usual upstream); the
        supervisor binds it once and every worker shares it. A stale socket file left by a crash is
        replaced; one a live server answers on is an error. The file is removed at exit.
    ``uds_mode``: its permission bits (default ``0o666``, as uvicorn; ``0o660`` limits it to the group).
    ``fd``: serve on this already listening socket, inherited from the parent (systemd socket
        activation, a reloader); ``host``, ``port`` and ``uds`` are then ignored.
    """

    handler: Handler
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int | None = None
    backend: str = "auto"
    limits: Limits = field(default_factory=Limits)
    make_state: Callable[[], Any] | None = None
    on_worker_start: WorkerStart | None = None
    on_worker_stop: Callable[[Any], None] | None = None
    grace: float = 10.0
    backlog: int = 1024
    tls: TLSConfig | ssl.SSLContext | None = None
    uds: str | None = None
    uds_mode: int = 0o666
    fd: int | None = None

    def __post_init__(self) -> None:
        if not callable(self.handler):
            raise ConfigError(f"ServerConfig.handler must be callable(req, out), got {self.handler!r}")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ConfigError(f"ServerConfig.port must be an int in 0..65535 (0: ephemeral), got {self.port!r}")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ConfigError(f"ServerConfig.workers must be a positive int or None, got {self.workers!r}")
        if self.backend not in BACKEND_NAMES:
            raise ConfigError(f"ServerConfig.backend must be one of {', '.join(BACKEND_NAMES)}, got {self.backend!r}")
        if not isinstance(self.limits, Limits):
            raise ConfigError(f"ServerConfig.limits must be a Limits, got {self.limits!r}")
        if not self.grace >= 0:
            raise ConfigError(f"ServerConfig.grace must be >= 0 seconds, got {self.grace!r}")
        if self.tls is not None and not isinstance(self.tls, (TLSConfig, ssl.SSLContext)):
            raise ConfigError(f"ServerConfig.tls must be a TLSConfig, an ssl.SSLContext or None, got {self.tls!r}")

        if self.uds is not None and (not isinstance(self.uds, str) or not self.uds):
            raise ConfigError(f"ServerConfig.uds must be a unix socket path or None, got {self.uds!r}")
        if not isinstance(self.uds_mode, int) or not 0 <= self.uds_mode <= 0o777:
            raise ConfigError(f"ServerConfig.uds_mode must be permission bits in 0..0o777 (e.g. 0o660), got {self.uds_mode!r}")
        if self.fd is not None and (not isinstance(self.fd, int) or isinstance(self.fd, bool) or self.fd < 0):
            raise ConfigError(f"ServerConfig.fd must be an open file descriptor number or None, got {self.fd!r}")

    def with_(self, **changes: Any) -> ServerConfig:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def worker_count(self) -> int:
        """``workers`` → ``$VANILLA_WORKERS`` → ``len(os.sched_getaffinity(0))``."""
        if self.workers is not None:
            return self.workers
        env = os.environ.get("VANILLA_WORKERS", "").strip()
        if env:
            if not env.isdigit() or int(env) < 1:
                raise ConfigError(f"VANILLA_WORKERS must be a positive integer, got {env!r}")
            return int(env)
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count() or 1
