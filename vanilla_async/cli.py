"""The command line: ``vanilla-async MODULE:ATTR [options]``, with uvicorn's names for its options.

ATTR names a handler ``(req, out)`` or a `ServerConfig` (with ``--factory``: a callable that returns
one of them). Options override the config's fields. Examples use `run_app` so
``python -m examples.NAME --port P --workers N`` behaves the same way.

Theory of operation
-------------------
Every option becomes a field of the `ServerConfig` before anything starts (`_configure`), so a bad
value fails at once with a message, never in a forked worker.

* **Where to listen.** ``--host``/``--port`` (each worker binds with ``SO_REUSEPORT``); ``--uds PATH``
  (``--uds-mode``) and ``--fd N`` are bound once by the supervisor and shared (see `_core.server`).
  Under systemd socket activation (``LISTEN_PID`` is this process and ``LISTEN_FDS`` ≥ 1) the first
  passed socket, fd 3, is used unless ``--fd`` or ``--uds`` says otherwise; the variables are then
  removed from the environment, as ``sd_listen_fds(1)`` does, so a subprocess does not take them.
* **TLS.** The ``--ssl-*`` flags: ``--ssl-certfile`` makes a new `TLSConfig` (keeping the config's
  ALPN and handshake timeout if it had one); the other ``--ssl-*`` flags without it amend the
  config's own `TLSConfig`, and are an error when the config has none.
* **Limits.** ``--timeout-keep-alive`` → ``Limits.idle_timeout``; ``--limit-concurrency`` →
  ``max_in_flight``; ``--limit-max-requests`` → ``max_worker_requests``;
  ``--limit-requests-per-connection`` → ``max_requests_per_connection``.
* **Wrappers, only when asked for** (an unused feature costs nothing): ``--header`` wraps the
  handler to insert the default headers after the status line of each response (`with_headers`;
  bodies are never parsed), ``--access-log`` wraps it to log one line per response to the
  ``vanilla_async.access`` logger (`access_logged`); a generator handler is driven through
  `streaming.relay`, as ``examples/middleware`` does.
* **--reload** (development only) makes this process a *reloader*: it never imports the
  application; it runs the same command line as a child server and watches the ``.py`` files under
  the current directory (``watchfiles`` when installed, else an mtime poll every
  `POLL_INTERVAL` s over at most `MAX_WATCHED` files). On a change it stops the child (SIGTERM:
  it drains) and starts a new one, which imports the code afresh — forking workers again from the
  same supervisor could not, since they would inherit the old modules. With ``--workers N`` all N
  restart together. A child that exits by itself (a syntax error) is started again at the next
  change. Give a fixed ``--port``: with port 0 each restart picks another one.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import importlib
import importlib.metadata
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from ._core.config import BACKEND_ENV, BACKEND_NAMES, ServerConfig
from ._core.handler import FileBody, Handler
from ._core.http1 import is_generator
from ._core.request import Request
from ._core.response import header_line
from ._core.server import Server
from ._core.steps import insert_after_status, inserting
from ._core.tls import TLSConfig
from .errors import ConfigError, ResponseError
from .streaming import measured

__all__ = ("access_logged", "listen_fds", "load_target", "main", "run_app", "with_headers")

log = logging.getLogger("vanilla_async")
access_log = logging.getLogger("vanilla_async.access")

#: ``--ssl-*`` flag → `TLSConfig` field
_SSL_FLAGS = {"ssl_certfile": "certfile", "ssl_keyfile": "keyfile", "ssl_keyfile_password": "password",
              "ssl_ca_certs": "ca_certs", "ssl_cert_reqs": "cert_reqs"}
#: set in the child a reloader starts: serve, do not reload
_RELOADED_ENV = "VANILLA_ASYNC_RELOADER"
SD_LISTEN_FDS_START = 3
POLL_INTERVAL = 0.5
MAX_WATCHED = 10_000
_SKIP_DIRS = {"__pycache__", "node_modules", "site-packages", "venv", "build", "dist"}


def _version() -> str:
    try:
        version = importlib.metadata.version("vanilla-async")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown (not installed)"
    return f"vanilla-async {version} (CPython {platform.python_version()}, {platform.system()})"


def _mode(text: str) -> int:
    """``0o660``, ``0660`` or ``660`` → 0o660."""
    try:
        value = int(text, 0) if text.lower().startswith("0o") else int(text, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected octal permission bits like 0o660, got {text!r}") from None
    if not 0 <= value <= 0o777:
        raise argparse.ArgumentTypeError(f"permission bits must be within 0o000..0o777, got {text!r}")
    return value


def _positive(kind: type[int | float]) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}")
        return value
    return parse


def _parser(prog: str, with_target: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Serve HTTP/1.1 with vanilla_async prefork workers.")
    if with_target:
        parser.add_argument("target", metavar="MODULE:ATTR", help="a handler(req, out) or a ServerConfig, e.g. examples.tiny:config")
        parser.add_argument("--factory", action="store_true",
                            help="ATTR is a callable (no arguments) that returns the handler or the ServerConfig")
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--host", help="address to bind (default: the config's, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind; 0 picks a free one (default: the config's, 8080)")
    parser.add_argument("--uds", metavar="PATH", help="listen on this unix socket instead (shared by every worker; "
                        "removed at exit)")
    parser.add_argument("--uds-mode", type=_mode, metavar="MODE", help="the unix socket's permissions (default 0o666; "
                        "e.g. 0o660 for the web server's group)")
    parser.add_argument("--fd", type=int, metavar="N", help="serve on this inherited listening socket (systemd socket "
                        "activation is also read from LISTEN_FDS/LISTEN_PID)")
    parser.add_argument("--workers", type=int, help="worker processes (default: $VANILLA_WORKERS, else the usable CPUs)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default=os.environ.get(BACKEND_ENV) or None,
                        help=f"event loop backend (default: ${BACKEND_ENV}, else the config's: auto)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")
    parser.add_argument("--reload", action="store_true",
                        help="development only: restart the server when a .py file under the current directory changes")
    parser.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=False,
                        help="log one line per response to the vanilla_async.access logger (default: off)")
    parser.add_argument("--access-log-format", choices=["common", "json"], default="common",
                        help="common: Common Log Format plus the duration; json: one JSON object a line")
    parser.add_argument("--header", action="append", default=[], metavar="NAME:VALUE",
                        help="a header added to every response, e.g. 'Server: vanilla' (repeatable)")
    limits = parser.add_argument_group("limits")
    limits.add_argument("--timeout-keep-alive", type=_positive(float), metavar="S",
                        help="close a keep-alive connection idle this long (Limits.idle_timeout; default 60)")
    limits.add_argument("--limit-concurrency", type=_positive(int), metavar="N",
                        help="answer 503 beyond N requests in flight per worker (being handled or parked)")
    limits.add_argument("--limit-max-requests", type=_positive(int), metavar="N",
                        help="replace a worker gracefully after about N requests (for leaky applications)")
    limits.add_argument("--limit-requests-per-connection", type=_positive(int), metavar="N",
                        help="close a connection after N requests (the last response says Connection: close)")
    tls = parser.add_argument_group("TLS (HTTPS)")
    tls.add_argument("--ssl-certfile", metavar="PATH", help="PEM certificate chain; serving HTTPS needs it")
    tls.add_argument("--ssl-keyfile", metavar="PATH", help="PEM private key (default: in the certfile)")
    tls.add_argument("--ssl-keyfile-password", metavar="PASSWORD", help="password of an encrypted key")
    tls.add_argument("--ssl-ca-certs", metavar="PATH", help="PEM CA bundle that verifies client certificates")
    tls.add_argument("--ssl-cert-reqs", type=int, choices=[0, 1, 2],
                     help="client certificates: 0 none (default), 1 optional, 2 required")
    return parser


def _tls_from_args(config: ServerConfig, args: argparse.Namespace) -> TLSConfig | None:
    """The `TLSConfig` the ``--ssl-*`` flags ask for, or None when none was given."""
    given: dict[str, Any] = {field: value for flag, field in _SSL_FLAGS.items() if (value := getattr(args, flag, None)) is not None}
    if not given:
        return None
    base = config.tls if isinstance(config.tls, TLSConfig) else None
    if "certfile" in given:
        keep: dict[str, Any] = {"alpn": base.alpn, "handshake_timeout": base.handshake_timeout} if base is not None else {}
        return TLSConfig(**given, **keep)
    if base is None:
        flags = ", ".join("--" + flag.replace("_", "-") for flag, field in _SSL_FLAGS.items() if field in given)
        raise ConfigError(f"{flags} given without --ssl-certfile: HTTPS needs a certificate (--ssl-certfile PATH)")
    return dataclasses.replace(base, **given)


def load_target(target: str, factory: bool = False) -> ServerConfig:
    """Import ``MODULE:ATTR``: a handler or a `ServerConfig` (``factory``: a callable returning one)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"expected MODULE:ATTR (e.g. examples.tiny:config), got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r}: {exc}") from exc
    try:
        obj = getattr(module, attr)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {attr!r}") from None
    if factory:
        if not callable(obj):
            raise ConfigError(f"--factory: {target} is {obj!r}, not a callable that returns a handler or a ServerConfig")
        obj = obj()
    if isinstance(obj, ServerConfig):
        return obj
    if callable(obj):
        return ServerConfig(handler=obj)
    what = f"{target}() returned" if factory else f"{target} is"
    raise ConfigError(f"{what} {obj!r}: expected a handler(req, out) or a ServerConfig")


def listen_fds(environ: dict[str, str] | os._Environ[str] = os.environ) -> int | None:
    """systemd socket activation: the first passed socket's fd (3) when ``LISTEN_PID`` is this
    process and ``LISTEN_FDS`` ≥ 1, else None. The variables are removed either way once read."""
    pid, count = environ.get("LISTEN_PID", ""), environ.get("LISTEN_FDS", "")
    if not count:
        return None
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        environ.pop(name, None)
    if pid.strip() != str(os.getpid()) or not count.strip().isdigit() or int(count) < 1:
        return None  # (meant for another process, e.g. our parent)
    if int(count) > 1:
        log.warning("LISTEN_FDS=%s: serving on fd %d only; the other sockets are ignored", count, SD_LISTEN_FDS_START)
    return SD_LISTEN_FDS_START


# -- wrappers, installed only when their flag is given ------------------------------------------------
def _header_block(specs: Sequence[str]) -> bytes:
    block = b""
    for spec in specs:
        name, colon, value = spec.partition(":")
        if not colon:
            raise ConfigError(f"--header {spec!r}: expected NAME:VALUE, e.g. --header 'Server: vanilla'")
        try:
            block += header_line(name.strip(), value.strip().encode("latin-1"))
        except (ResponseError, UnicodeEncodeError) as exc:
            raise ConfigError(f"--header {spec!r}: {exc}") from exc
    return block


def with_headers(handler: Handler, block: bytes) -> Handler:
    """``handler`` whose responses get ``block`` (complete ``Name: value\\r\\n`` lines) after their status line."""
    def wrapper(req: Request, out: bytearray) -> Any:
        mark = len(out)
        result = handler(req, out)
        if result is None or result.__class__ is FileBody:
            insert_after_status(out, mark, block)
        elif is_generator(result):
            return inserting(result, out, block)  # type: ignore[arg-type]  # (is_generator says so)
        return result
    return wrapper


def _common_line(req: Request, status: int, size: int, seconds: float) -> str:
    peer = req.peer()
    when = datetime.datetime.now().astimezone().strftime("%d/%b/%Y:%H:%M:%S %z")
    return (f'{peer[0] if peer else "-"} - - [{when}] "{req.method.decode("latin-1")} {req.target.decode("latin-1")} '
            f'HTTP/1.{req.minor}" {status or "-"} {size} {seconds * 1000:.3f}ms')


def _json_line(req: Request, status: int, size: int, seconds: float) -> str:
    peer = req.peer()
    return json.dumps({
        "time": datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds"),
        "client": f"{peer[0]}:{peer[1]}" if peer else None, "method": req.method.decode("latin-1"),
        "target": req.target.decode("latin-1"), "version": f"1.{req.minor}", "status": status or None,
        "bytes": size, "duration_ms": round(seconds * 1000, 3)})


def access_logged(handler: Handler, fmt: str = "common") -> Handler:
    """``handler`` logging one line per response to ``vanilla_async.access`` (INFO) when it is
    complete: method, target, status, bytes written (head and body; a `FileBody`'s length added),
    duration. ``fmt``: ``common`` or ``json``. A generator's line is written when it ends, however."""
    line = _json_line if fmt == "json" else _common_line

    def done(req: Request, status: int, size: int, outcome: str, started: float) -> None:
        access_log.info(line(req, status, size, time.perf_counter() - started))

    return measured(handler, done)


# -- configuration -----------------------------------------------------------------------------------
_LIMIT_FLAGS = {"timeout_keep_alive": "idle_timeout", "limit_concurrency": "max_in_flight",
                "limit_max_requests": "max_worker_requests", "limit_requests_per_connection": "max_requests_per_connection"}


def _configure(config: ServerConfig, args: argparse.Namespace) -> ServerConfig:
    changes: dict[str, Any] = {k: v for k in ("host", "port", "workers", "backend") if (v := getattr(args, k)) is not None}
    tls = _tls_from_args(config, args)
    if tls is not None:
        changes["tls"] = tls
    if args.uds_mode is not None:
        changes["uds_mode"] = args.uds_mode
    systemd = listen_fds() if args.fd is None and args.uds is None else None
    if args.fd is not None or systemd is not None:
        changes["fd"] = args.fd if args.fd is not None else systemd
        if systemd is not None:
            log.info("systemd socket activation: serving on fd %d", systemd)
    elif args.uds is not None:
        changes["uds"], changes["fd"] = args.uds, None
    limits = {field: v for flag, field in _LIMIT_FLAGS.items() if (v := getattr(args, flag)) is not None}
    if limits:
        changes["limits"] = dataclasses.replace(config.limits, **limits)
    handler = config.handler
    if args.header:
        handler = with_headers(handler, _header_block(args.header))
    if args.access_log:
        handler = access_logged(handler, args.access_log_format)
    if handler is not config.handler:
        changes["handler"] = handler
    return config.with_(**changes) if changes else config


def _setup_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    if args.access_log:
        # Access lines are the message alone (a JSON line stays parseable), on stdout, as uvicorn does.
        stream = logging.StreamHandler(sys.stdout)
        stream.setFormatter(logging.Formatter("%(message)s"))
        access_log.addHandler(stream)
        access_log.setLevel(logging.INFO)
        access_log.propagate = False


def _serve(config: ServerConfig, args: argparse.Namespace) -> int:
    config = _configure(config, args)
    if isinstance(config.tls, TLSConfig):
        log.info("TLS certificate %s, key %s", config.tls.certfile, config.tls.keyfile or config.tls.certfile)
    return Server(config).run()


# -- --reload ----------------------------------------------------------------------------------------
def _watched(root: str) -> dict[str, int]:
    """``{path: mtime_ns}`` of the ``.py`` files under ``root`` (at most `MAX_WATCHED`; hidden,
    cache, virtualenv and build directories skipped)."""
    found: dict[str, int] = {}
    for directory, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in _SKIP_DIRS]
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                try:
                    found[path] = os.stat(path).st_mtime_ns
                except OSError:
                    continue
                if len(found) >= MAX_WATCHED:
                    log.warning("--reload: watching only the first %d .py files under %s", MAX_WATCHED, root)
                    return found
    return found


def _changes(root: str) -> Iterator[list[str]]:
    """Every `POLL_INTERVAL` seconds or so: the ``.py`` files under ``root`` changed since the last time."""
    try:
        import watchfiles  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        log.info("--reload: polling the .py files under %s every %.1fs (install watchfiles for inotify)", root, POLL_INTERVAL)
        before = _watched(root)
        while True:
            time.sleep(POLL_INTERVAL)
            now = _watched(root)
            yield sorted(path for path in now.keys() | before.keys() if now.get(path) != before.get(path))
            before = now
    else:
        log.info("--reload: watching the .py files under %s with watchfiles", root)
        for batch in watchfiles.watch(root, watch_filter=watchfiles.PythonFilter(), yield_on_timeout=True,
                                      rust_timeout=int(POLL_INTERVAL * 1000), raise_interrupt=False):
            yield sorted(path for _, path in batch)


def _reload(command: list[str]) -> int:
    """Run ``command`` (this server without the reloader) and restart it whenever a watched file changes."""
    stop: list[int] = []
    previous = {sig: signal.signal(sig, lambda sig, frame: stop.append(sig)) for sig in (signal.SIGTERM, signal.SIGINT)}
    env = {**os.environ, _RELOADED_ENV: "1"}

    def start() -> subprocess.Popen[bytes]:
        # Its own session: Ctrl-C reaches the reloader only, which stops the server once, gracefully.
        return subprocess.Popen(command, env=env, start_new_session=True)

    def finish(child: subprocess.Popen[bytes] | None) -> int:
        if child is None or child.poll() is not None:
            return 0 if child is None else child.returncode
        child.send_signal(signal.SIGTERM)
        try:
            return child.wait(30.0)
        except subprocess.TimeoutExpired:
            log.error("--reload: the server did not stop within 30s of SIGTERM; killing it")
            child.kill()
            return child.wait()

    log.warning("--reload is for development: it restarts the server on every code change; never use it in production")
    child: subprocess.Popen[bytes] | None = start()
    try:
        for changed in _changes(os.getcwd()):
            if stop:
                break
            if child is not None and child.poll() is not None:
                log.warning("--reload: the server exited (status %d); it starts again at the next change", child.returncode)
                child = None
            if changed:
                log.info("--reload: %s changed; restarting the server", ", ".join(os.path.relpath(p) for p in changed[:3]))
                finish(child)
                child = start()
        return finish(child)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _reloading(args: argparse.Namespace) -> bool:
    return bool(args.reload) and not os.environ.get(_RELOADED_ENV)


def _child_command(argv: Sequence[str] | None, module: str | None) -> list[str]:
    """The command line that runs this server again (the reloader's child)."""
    if module is not None:  # ``vanilla-async ...``
        return [sys.executable, "-m", module, *(sys.argv[1:] if argv is None else argv)]
    given = sys.argv[1:] if argv is None else list(argv)
    interpreter = sys.orig_argv[:len(sys.orig_argv) - (len(sys.argv) - 1)]  # e.g. python -m examples.tiny
    return [sys.executable, *interpreter[1:], *given]


def run_app(config: ServerConfig, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Serve ``config`` with the CLI's options parsed from ``argv`` (used by ``python -m examples.X``)."""
    args = _parser(prog or sys.argv[0], with_target=False).parse_args(argv)
    _setup_logging(args)
    try:
        if _reloading(args):
            return _reload(_child_command(argv, None))
        return _serve(config, args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser("vanilla-async", with_target=True).parse_args(argv)
    _setup_logging(args)
    try:
        if _reloading(args):  # (the reloader never imports the application)
            return _reload(_child_command(argv, "vanilla_async"))
        return _serve(load_target(args.target, args.factory), args)
    except ConfigError as exc:
        print(f"vanilla-async: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
