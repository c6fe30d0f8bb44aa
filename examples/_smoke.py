"""Shared by the examples' tests: run ``python -m examples.NAME`` as a real prefork process and
talk to it with the standard library's `http.client` (a third, independent HTTP client)."""

from __future__ import annotations

import http.client
import signal
from pathlib import Path
from typing import Iterator
from contextlib import contextmanager

from vanilla_async.testing import ServerProcess

ROOT = Path(__file__).resolve().parents[1]

__all__ = ("ROOT", "running")


@contextmanager
def running(name: str, *args: str, workers: int = 2) -> Iterator[http.client.HTTPConnection]:
    """``python -m examples.NAME --port 0 --workers N``; yields a keep-alive `HTTPConnection` to it,
    and asserts that SIGTERM stops it with exit code 0."""
    with ServerProcess("-m", f"examples.{name}", "--port", "0", "--workers", str(workers), *args, cwd=ROOT) as proc:
        conn = http.client.HTTPConnection("127.0.0.1", proc.port(), timeout=10)
        try:
            yield conn
        finally:
            conn.close()
        assert proc.stop(signal.SIGTERM) == 0, proc.output
