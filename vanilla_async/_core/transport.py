"""Transports: what owns a client socket and moves its bytes.

Theory of operation
-------------------
A connection (`connection.Connection`) never touches its socket directly: it reads and writes
through a *transport* with the same non-blocking semantics as a socket's own ``recv``/``send``, so
that cleartext and TLS look alike to it and to every protocol above it.

``recv(n)``  1..n bytes; ``b""`` at EOF; `BlockingIOError` when nothing is ready; `OSError` on a reset
             or a broken stream. **Drain contract** (edge-triggered epoll relies on it): a return
             shorter than ``n`` means the socket is drained and nothing is left buffered inside the
             transport, so no further readable event will come until new bytes arrive.
``send(b)``  how many bytes of ``b`` were accepted; `BlockingIOError` when none can be now.
``pending``  bytes accepted by ``send`` that are not yet on the wire (a TLS transport's ciphertext
             the socket did not take). When it has such bytes it calls the ``on_blocked`` callback
             it was given, and the connection waits for writability and calls ``flush_pending``.
``sendfile_ok``  ``os.sendfile`` on ``fd`` puts the file's bytes on the wire as they are (cleartext
             only); otherwise the connection reads the file and ``send``s it.

`PlainTransport` is the cleartext one. Its ``recv`` and ``send`` *are* the socket's bound methods,
so the hot path pays nothing for the seam; ``pending`` is always 0 and the callback never fires.
The TLS transport lives in `tls.py`.
"""

from __future__ import annotations

import socket
from typing import Callable, Protocol

__all__ = ("PlainTransport", "Transport")


class Transport(Protocol):
    """The interface every transport offers (see the module docstring)."""

    fd: int
    sendfile_ok: bool
    handshaking: bool  #: the transport is still negotiating (TLS); no plaintext has flowed yet
    alpn: str | None  #: the application protocol the client and we agreed on (TLS ALPN), if any

    def recv(self, n: int, /) -> bytes: ...

    def send(self, data: bytes | bytearray | memoryview, /) -> int: ...

    @property
    def pending(self) -> int: ...

    def flush_pending(self) -> bool: ...

    def shutdown_write(self) -> None: ...

    def close(self) -> None: ...


class PlainTransport:
    """Cleartext TCP (or a unix socket): the socket's own methods, nothing in between."""

    __slots__ = ("sock", "fd", "recv", "send")

    sendfile_ok = True
    handshaking = False
    alpn: str | None = None
    pending = 0

    def __init__(self, sock: socket.socket, on_blocked: Callable[[], None] | None = None) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.recv = sock.recv
        self.send = sock.send

    def flush_pending(self) -> bool:
        return True

    def shutdown_write(self) -> None:
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass
