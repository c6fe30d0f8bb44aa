"""Protocols: what a connection runs over its transport (HTTP/1.1 at accept; HTTP/2, WebSocket).

Theory of operation
-------------------
A `Connection` owns the transport, the output buffer ``conn.out``, one deadline, and the phases
that every protocol needs alike: open, draining what is owed before a close, lingering after an
error, closed. A *protocol* owns the meaning of the bytes. The connection calls it:

``connection_made(conn)``  it is now in charge (at accept, or at a takeover after a ``101``).
``data_received(data)``    plaintext arrived (an immutable ``bytes`` chunk; keeping it is free).
``eof_received()``         the client shut down its sending side, or is gone (FIN, RST, HUP).
``output_drained()``       everything written so far has left (out and any file are empty):
                           the moment to renew an idle deadline.
``timed_out(now)``         ``conn.deadline`` passed with no output stuck (stuck output is the
                           connection's own write timeout).
``shutdown(now, last_call)``  graceful shutdown began: finish what is in flight, take no new work.
``interrupt()``            the grace period is over: say goodbye (bounded) and close.
``connection_lost()``      the connection closed: release tasks, timers and fds now.

and the protocol acts through the connection: append to ``conn.out`` and ``conn.flush()``;
``conn.produce(task)`` marks the generator whose output is subject to backpressure;
``conn.pause_reading(on)``; ``conn.deadline = t``; ``conn.finish(linger)`` (no more input wanted:
flush, then close); ``conn.close()`` (at once); ``conn.send_file(...)``; ``conn.take_over(proto)``.

Backpressure, deadlines, disconnect detection, graceful shutdown and leak accounting therefore
work the same for every protocol: they are the connection's, and a protocol only says what its
bytes mean. A handler hands its connection to another protocol by returning ``Takeover(proto)``
after appending its ``101 Switching Protocols`` response (`handler.Takeover`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ("Protocol",)


class Protocol:
    """Base class with the defaults a simple protocol wants; override what you need."""

    __slots__ = ("conn",)

    conn: Connection

    def connection_made(self, conn: Connection) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError

    def eof_received(self) -> None:
        """Default: send what is owed, then close."""
        self.conn.finish()

    def output_drained(self) -> None:
        """Default: nothing to do."""

    def timed_out(self, now: float) -> None:
        """Default: close (the protocol let its deadline pass)."""
        self.conn.close()

    def shutdown(self, now: float, last_call: float) -> None:
        """Default: send what is owed, then close."""
        self.conn.finish()

    def last_call_over(self) -> None:
        """The window `shutdown` may have granted (``last_call`` seconds) is over. Default: nothing."""

    def interrupt(self) -> None:
        """Default: close at once."""
        self.conn.close()

    def connection_lost(self) -> None:
        """Default: nothing to release."""
