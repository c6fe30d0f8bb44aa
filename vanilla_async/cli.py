"""The command line: ``vanilla-async MODULE:ATTR [--host] [--port] [--workers] [--backend] [--log-level] [--ssl-*]``.

ATTR names a handler ``(req, out)`` or a `ServerConfig`. Options override the config's fields.
The ``--ssl-*`` flags carry uvicorn's names. ``--ssl-certfile`` makes a new `TLSConfig` from the flags
(keeping the config's ALPN and handshake timeout if it had a `TLSConfig`); the other ``--ssl-*`` flags
without it amend the config's own `TLSConfig`, and are an error when the config has none.
Examples use `run_app` so ``python -m examples.NAME --port P --workers N`` behaves the same way.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import logging
import os
import sys
from typing import Any, Sequence

from ._core.config import BACKEND_ENV, BACKEND_NAMES, ServerConfig
from ._core.server import Server
from ._core.tls import TLSConfig
from .errors import ConfigError

__all__ = ("load_target", "main", "run_app")

log = logging.getLogger("vanilla_async")

#: ``--ssl-*`` flag → `TLSConfig` field
_SSL_FLAGS = {"ssl_certfile": "certfile", "ssl_keyfile": "keyfile", "ssl_keyfile_password": "password",
              "ssl_ca_certs": "ca_certs", "ssl_cert_reqs": "cert_reqs"}


def _parser(prog: str, with_target: bool) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Serve HTTP/1.1 with vanilla_async prefork workers.")
    if with_target:
        parser.add_argument("target", metavar="MODULE:ATTR", help="a handler(req, out) or a ServerConfig, e.g. examples.tiny:config")
    parser.add_argument("--host", help="address to bind (default: the config's, 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to bind; 0 picks a free one (default: the config's, 8080)")
    parser.add_argument("--workers", type=int, help="worker processes (default: $VANILLA_WORKERS, else the usable CPUs)")
    parser.add_argument("--backend", choices=BACKEND_NAMES, default=os.environ.get(BACKEND_ENV) or None,
                        help=f"event loop backend (default: ${BACKEND_ENV}, else the config's: auto)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default INFO")
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


def load_target(target: str) -> ServerConfig:
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
    if isinstance(obj, ServerConfig):
        return obj
    if callable(obj):
        return ServerConfig(handler=obj)
    raise ConfigError(f"{target} is {obj!r}: expected a handler(req, out) or a ServerConfig")


def _configure(config: ServerConfig, args: argparse.Namespace) -> ServerConfig:
    changes: dict[str, object] = {k: v for k in ("host", "port", "workers", "backend") if (v := getattr(args, k)) is not None}
    tls = _tls_from_args(config, args)
    if tls is not None:
        changes["tls"] = tls
    return config.with_(**changes) if changes else config


def _serve(config: ServerConfig, args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    config = _configure(config, args)
    if isinstance(config.tls, TLSConfig):
        log.info("TLS certificate %s, key %s", config.tls.certfile, config.tls.keyfile or config.tls.certfile)
    return Server(config).run()


def run_app(config: ServerConfig, argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Serve ``config`` with the CLI's options parsed from ``argv`` (used by ``python -m examples.X``)."""
    args = _parser(prog or sys.argv[0], with_target=False).parse_args(argv)
    try:
        return _serve(config, args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser("vanilla-async", with_target=True).parse_args(argv)
    try:
        return _serve(load_target(args.target), args)
    except ConfigError as exc:
        print(f"vanilla-async: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
