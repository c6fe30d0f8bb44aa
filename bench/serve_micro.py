#!/usr/bin/env python3
"""The HTTP/1.1 serve path alone, in process: one request (examples.tiny's GET /) framed, handled and
"sent" to a socket whose send takes everything, so no syscall is timed. Run it from a checkout's root
to compare two checkouts of the engine (before/after a change) without wrk's or the kernel's noise:

    python bench/serve_micro.py                  # this checkout
    (cd /path/to/other/checkout && python /path/to/bench/serve_micro.py)

It understands the engine before the transport/protocol seam (Connection.serve) and after it
(Http1.data_received / Http1.serve).
"""

from __future__ import annotations

import os
import socket
import sys
import time
from typing import Any

sys.path.insert(0, os.getcwd())

from examples.tiny import config  # noqa: E402
from vanilla_async._core.worker import Worker  # noqa: E402


class _TakesAll:
    """A socket stand-in whose send takes every byte (no syscall) and whose recv has nothing."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def fileno(self) -> int:
        return self.sock.fileno()

    def send(self, data: Any) -> int:
        return len(data)

    def recv(self, n: int) -> bytes:
        raise BlockingIOError

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        self.sock.close()


def main() -> None:
    worker = Worker(config.with_(port=0, backend="epoll"))
    worker.start()
    a, b = socket.socketpair()
    a.setblocking(False)
    fake: Any = _TakesAll(a)
    try:
        from vanilla_async._core.connection import Connection
        from vanilla_async._core.http1 import Http1
        from vanilla_async._core.transport import PlainTransport
        conn: Any = Connection(worker, fake, PlainTransport, Http1())
        paths = {"data_received": conn.proto.data_received, "serve": conn.proto.serve}
    except ImportError:  # the engine before the seam
        from vanilla_async._core.connection import Connection as OldConnection
        conn = OldConnection(worker, fake)  # type: ignore[call-arg]
        paths = {"serve": conn.serve}
    request = b"GET / HTTP/1.1\r\nHost: localhost:8080\r\nUser-Agent: wrk\r\n\r\n"
    count = 200_000
    for name, feed in paths.items():
        best = float("inf")
        for _ in range(7):
            started = time.perf_counter()
            for _ in range(count):
                feed(request)
            best = min(best, time.perf_counter() - started)
        print(f"{name}: {best / count * 1e9:.0f} ns per request (best of 7)")
    b.close()


if __name__ == "__main__":
    main()
