"""The command line: ``vanilla-async MODULE:ATTR [--host] [--port] [--workers] [--backend] [--log-level]``.

ATTR names a handler ``(req, out)`` or a `ServerConfig`. Options override the config's fields.
Examples use `run_app` so ``python -m examples.NAME --port P --workers N`` behaves the same way.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Sequence

from ._core.config import BACKEND_ENV, BACKEND_NAMES, ServerConfig
from ._core.server import Server
from .errors import ConfigError

__all__ = ("load_target", "main", "run_app")


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
    return parser


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
    changes = {k: v for k in ("host", "port", "workers", "backend") if (v := getattr(args, k)) is not None}
    return config.with_(**changes) if changes else config


def _serve(config: ServerConfig, args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")
    return Server(_configure(config, args)).run()


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
