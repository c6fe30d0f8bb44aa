"""One client connection: a transport carrying a protocol, with the duties every protocol shares.

Theory of operation
-------------------
A `Connection` is registered with the reactor as a *stream* (edge-triggered on epoll) and gets
``on_event(mask)``. It knows nothing of HTTP: it moves bytes between its transport
(`transport.PlainTransport`, or TLS) and its protocol (`http1.Http1` at accept; another one after a
takeover, see `protocol`), and it keeps what every protocol needs the same way:

**Phases** (``phase``, one of the `Phase` members — never inferred from other fields):

``OPEN``       the protocol is in charge: readable events read and hand it the bytes.
``DRAINING``   the protocol is done (`finish`): what is owed (``out``, a file being sent) goes out,
               then the connection closes — or lingers, if it closes after an error. Input that still
               arrives is read and discarded (bounded), so the client reads our answer, not a reset.
``LINGERING``  ``SHUT_WR`` was sent after an error response: input is discarded until EOF, a byte
               limit or a short timeout (nginx's lingering close).
``CLOSED``     the socket is closed and the worker has forgotten us.

**Reading.** While ``OPEN`` and not paused, a readable event reads `BUFSIZE`-byte chunks and hands
each to ``proto.data_received``. One short read drains an edge-triggered socket (the transport's
drain contract); a full read loops. A protocol that cannot take more pauses reading
(`pause_reading`); whoever resumes it must read once by hand (`on_readable`), since the bytes that
arrived meanwhile raised no new edge. EOF, a reset, or the FIN flagged with the data
(``PEER_CLOSED``) is ``proto.eof_received()``.

**Writing.** Protocols append to ``out`` (one server-owned ``bytearray``) and call `flush`. What the
socket does not take stays in ``out`` and goes out on the next EPOLLOUT edge (``wants_write``), with
the write timeout as the deadline, renewed on progress. A file body (`FileSend`, a plain object:
an fd, an offset, a count) goes out with ``os.sendfile`` once ``out`` is empty (read and ``send``
through a transport that cannot, such as TLS), at most `_FILE_TURN` bytes per loop turn so other
connections are served meanwhile; its owner is called back when the last byte left.

**Backpressure.** The generator currently producing output (``producer``, a `ConnTask`) is *held*
by the reactor while more than ``output_high_water`` bytes are unsent, and released once the client
read down to half of it; beyond ``max_output_buffer`` the connection is closed. ``written`` counts
every byte of ``out`` that ever left, so positions in the output stream are absolute:
``ConnTask.start`` is where a task's output begins (``start - written`` is its offset in ``out``
while unsent), and ``ConnTask.sent`` says whether any of it already left — too late to replace it
with an error.

**Deadlines.** One ``deadline`` per connection, checked by the worker's sweep timer. Stuck output
is the connection's own business (write timeout: close); otherwise a lingering or draining
connection closes, and an open one asks its protocol (`Protocol.timed_out`: idle, slowloris 408,
...). **Shutdown** is the protocol's to decide (`Protocol.shutdown`, `Protocol.interrupt`); closing
always goes through `close`, which tells the protocol (``connection_lost``) and the worker, so the
leak accounting covers every protocol alike.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import socket
from functools import partial
from typing import TYPE_CHECKING, Any, Callable

from reactor import BROKEN, PEER_CLOSED, READABLE, WRITABLE, Task

from ..errors import VanillaError
from .handler import FileBody
from .protocol import Protocol
from .transport import Transport

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("vanilla_async")

__all__ = ("BUFSIZE", "ConnTask", "Connection", "FileSend", "FileSendError", "Phase")

BUFSIZE = 65536
_INF = float("inf")
_LINGER_SECONDS = 2.0
_LINGER_BYTES = 1 << 20
_FAREWELL_SECONDS = 1.0
_GONE = BROKEN | PEER_CLOSED
_FILE_TURN = 8 << 20  # file bytes sent in one loop turn before others get a turn
_SENDFILE_MAX = 1 << 30  # bytes asked of one sendfile call
_READ_CHUNK = 1 << 16  # the read+send fallback's read size
_NO_SENDFILE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)


class Phase(enum.Enum):
    """Where a connection is in its life (see the module docstring)."""

    OPEN = "open"
    DRAINING = "draining"
    LINGERING = "lingering"
    CLOSED = "closed"


OPEN = Phase.OPEN
DRAINING = Phase.DRAINING
LINGERING = Phase.LINGERING
CLOSED = Phase.CLOSED


class FileSendError(VanillaError, OSError):
    """The file ended before ``length`` bytes (it shrank after the head was written)."""


class FileSend:
    """A `FileBody` on its way out: the fd (owned: closed by `close`), where it is, what is left."""

    __slots__ = ("fd", "offset", "left", "fallback", "started")

    def __init__(self, body: FileBody) -> None:
        self.fd = body.fd
        self.offset = body.offset
        self.left = body.length
        self.fallback = False  # sendfile refused this fd (or the transport cannot): read + send
        self.started = False  # a byte of the file left (too late to fall back)

    def close(self) -> None:
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def read_all(self) -> bytes:
        """The whole remaining body, read (for callers without a socket: `testing.call`)."""
        parts = []
        while self.left > 0:
            data = os.pread(self.fd, min(self.left, _READ_CHUNK), self.offset)
            if not data:
                raise FileSendError(errno.EIO, f"file fd {self.fd} ended {self.left} bytes before its promised length")
            parts.append(data)
            self.offset += len(data)
            self.left -= len(data)
        return b"".join(parts)

    def pump(self, transport: Transport, budget: int) -> bool:
        """Send until done (True), ``budget`` bytes were sent (False) or EAGAIN/OSError (raised)."""
        if not transport.sendfile_ok:
            self.fallback = True
        while self.left > 0 and budget > 0:
            if self.fallback:
                data = os.pread(self.fd, min(self.left, _READ_CHUNK), self.offset)
                sent = transport.send(data) if data else 0
            else:
                try:
                    sent = os.sendfile(transport.fd, self.fd, self.offset, min(self.left, _SENDFILE_MAX))
                except OSError as exc:
                    if exc.errno in _NO_SENDFILE and not self.started:
                        log.debug("fd %d: sendfile refused (%s); falling back to read + send", self.fd, exc.strerror)
                        self.fallback = True
                        continue
                    raise
            if not sent:
                raise FileSendError(errno.EIO, f"file fd {self.fd} ended {self.left} bytes before its promised length")
            self.started = True
            self.offset += sent
            self.left -= sent
            budget -= sent
        return self.left <= 0


class ConnTask(Task):
    """A generator task whose output goes to one connection (see Backpressure in the docstring)."""

    __slots__ = ("conn", "start")

    def __init__(self, gen: Any, conn: Connection, name: str | None = None, mark: int | None = None) -> None:
        super().__init__(gen, name if name is not None else getattr(gen, "__qualname__", "handler"))
        self.conn = conn
        #: where this task's output starts in the connection's output stream (absolute; see ``written``);
        #: ``mark`` is that place as an offset in ``conn.out`` now (default: its end)
        self.start = conn.written + (len(conn.out) if mark is None else mark)

    @property
    def sent(self) -> bool:
        """Part of this task's output has left: too late to take it back."""
        return self.conn.written > self.start

    # Defaults for a protocol's own generators; `http1.RequestTask` overrides what HTTP needs.
    def parked(self) -> None:
        """What it appended before this yield goes out while it is parked (streaming)."""
        self.conn.flush()

    def finished(self, value: Any) -> None:
        conn = self.conn
        if conn.producer is self:
            conn.producer = None
        conn.flush()

    def failed(self, exc: BaseException) -> None:
        log.error("task %s on fd %d failed; closing its connection", self.name, self.conn.fd,
                  exc_info=(type(exc), exc, exc.__traceback__))
        self.conn.close()


class _Gone(Protocol):
    """What a closed connection's ``proto`` is: every event is ignored (see `Connection.close`)."""

    __slots__ = ()

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> None:
        pass

    def timed_out(self, now: float) -> None:
        pass

    def shutdown(self, now: float, last_call: float) -> None:
        pass

    def interrupt(self) -> None:
        pass


_GONE_PROTOCOL = _Gone()


class Connection:
    __slots__ = (
        "worker", "transport", "fd", "recv", "send", "out", "written", "proto", "phase", "deadline", "linger",
        "wants_write", "paused", "discarded", "producer", "file", "file_done",
    )

    def __init__(
        self, worker: Worker, sock: socket.socket, transport: Callable[[socket.socket, Callable[[], None]], Transport],
        proto: Protocol,
    ) -> None:
        self.worker = worker
        self.transport = transport(sock, self.blocked)
        self.fd = self.transport.fd
        self.recv = self.transport.recv
        self.send = self.transport.send
        self.out = bytearray()
        self.written = 0  # bytes of out that have left, ever
        self.phase = OPEN
        self.deadline = worker.reactor.now + worker.limits.idle_timeout
        self.linger = False  # close with a lingering close once drained (after an error response)
        self.wants_write = False
        self.paused = False
        self.discarded = 0
        self.producer: ConnTask | None = None
        self.file: FileSend | None = None
        self.file_done: Callable[[], None] | None = None
        self.proto = proto
        proto.connection_made(self)

    @property
    def closed(self) -> bool:
        return self.phase is CLOSED

    # -- events -------------------------------------------------------------------------------------
    def on_event(self, mask: int) -> None:
        if mask & WRITABLE and self.wants_write:
            self.flush()
        if mask & (READABLE | _GONE):
            phase = self.phase
            if phase is OPEN:
                if not self.paused:
                    self.on_readable()
                if mask & _GONE and self.phase is OPEN:
                    # FIN or reset flagged with the data (one edge-triggered event): no later event says so.
                    self.proto.eof_received()
            elif phase is not CLOSED:
                self._drain()

    def on_readable(self) -> None:
        """Read what the socket has and hand it to the protocol (see Reading in the docstring)."""
        recv = self.recv
        while True:
            try:
                data = recv(BUFSIZE)
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            if not data:
                self.proto.eof_received()
                return
            self.proto.data_received(data)  # (looked up each time: a takeover may have replaced it)
            if len(data) < BUFSIZE or self.phase is not OPEN or self.paused:
                return

    def pause_reading(self, on: bool) -> None:
        if self.paused != on:
            self.paused = on
            self.worker.reactor.want_read(self.fd, not on)

    def take_over(self, proto: Protocol, leftover: bytes = b"") -> None:
        """Hand the connection to ``proto`` (after a ``101``): it gets ``leftover`` (bytes already
        received after the switching request), then everything that arrives."""
        self.proto = proto
        self.producer = None
        self.deadline = self.worker.reactor.now + self.worker.limits.idle_timeout
        proto.connection_made(self)
        if leftover and self.phase is OPEN:
            proto.data_received(leftover)
        self.flush()

    # -- writing ------------------------------------------------------------------------------------
    def flush(self) -> None:
        out = self.out
        if out:
            try:
                sent = self.send(out)
            except BlockingIOError:
                sent = 0
            except OSError:
                self.close()
                return
            self.written += sent
            task = self.producer
            if sent == len(out):
                out.clear()
                if task is not None and task._held:
                    self._backpressure(task)
            else:
                if sent:
                    del out[:sent]
                self.blocked()
                if task is not None:
                    self._backpressure(task)
                return
        if self.file is not None and not self._send_file():
            return
        if self.wants_write:
            if self.transport.pending and not self.transport.flush_pending():
                return  # (TLS ciphertext the socket has not taken yet)
            self.wants_write = False
            self.worker.reactor.want_write(self.fd, False)
            if self.phase is OPEN:
                self.proto.output_drained()
        if self.phase is DRAINING:
            if self.linger:
                self._start_linger()
            else:
                self.close()

    def write(self, data: bytes | bytearray | memoryview) -> bool:
        """Append ``data`` and send what the socket takes now, without resuming any generator (a
        broadcast writes the same framed bytes to many connections this way). What the socket does
        not take waits in ``out`` under the usual backpressure: past ``output_high_water`` the
        producer is held, past ``max_output_buffer`` the connection is closed. False: it is closed."""
        if self.phase is CLOSED:
            return False
        self.out += data
        self.flush()
        return self.phase is not CLOSED

    def blocked(self) -> None:
        """Output is waiting for the socket: arm EPOLLOUT and the write timeout (transports call this too)."""
        if self.phase is CLOSED:
            return
        self.deadline = self.worker.reactor.now + self.worker.limits.write_timeout
        if not self.wants_write:
            self.wants_write = True
            self.worker.reactor.want_write(self.fd, True)

    def produce(self, task: ConnTask | None) -> None:
        """``task`` is now the generator whose output backpressure governs (None: no generator)."""
        self.producer = task

    def _backpressure(self, task: ConnTask) -> None:
        """Hold a streaming generator while its output is backed up; cut a reader that is hopeless."""
        pending = len(self.out)
        limits = self.worker.limits
        if pending > limits.max_output_buffer:
            log.info("fd %d: %d bytes unsent exceed max_output_buffer; closing the slow reader", self.fd, pending)
            self.close()
        elif pending > limits.output_high_water:
            self.worker.reactor.hold(task)
        elif task._held and pending <= limits.output_high_water // 2:
            self.worker.reactor.call_soon(partial(self._release, task))  # next turn: never re-enter the generator here

    def _release(self, task: ConnTask) -> None:
        if self.producer is task and not task.done and self.phase is not CLOSED:
            self.worker.reactor.release(task)

    # -- file bodies --------------------------------------------------------------------------------
    def send_file(self, body: FileBody, done: Callable[[], None]) -> bool:
        """Send ``body`` once ``out`` has left. True: it is all out already (``done`` is not called);
        False: it is on its way and ``done()`` runs after its last byte (never if the connection
        closes first). The fd is the connection's from now on."""
        file = FileSend(body)
        if body.length <= 0 or self.phase is CLOSED:
            file.close()
            return self.phase is not CLOSED
        self.file = file
        self.file_done = None  # called only once we are out of this call
        self.flush()
        if self.file is not file:
            return self.phase is not CLOSED
        self.file_done = done
        return False

    def _send_file(self) -> bool:
        """``out`` is empty: send the file. True when it is all out (the caller may go on)."""
        file = self.file
        assert file is not None
        try:
            done = file.pump(self.transport, _FILE_TURN)
            if not done:  # its share of this turn is used: let the loop serve others, then go on
                self.worker.reactor.call_soon(partial(self._file_turn, file))
        except BlockingIOError:
            done = False
        except OSError as exc:
            log.log(logging.WARNING if isinstance(exc, FileSendError) else logging.DEBUG,
                    "fd %d: sending a file body failed (%s); closing", self.fd, exc)
            self.close()
            return False
        if not done:
            self.blocked()
            return False
        file.close()
        self.file = None
        callback, self.file_done = self.file_done, None
        if callback is not None:
            callback()
            return False  # the owner took it from here (and flushed)
        return True

    def _file_turn(self, file: FileSend) -> None:
        if self.file is file and self.phase is not CLOSED:
            self.flush()

    # -- closing ------------------------------------------------------------------------------------
    def finish(self, linger: bool = False) -> None:
        """The protocol wants no more input: send what is owed, then close (lingering after an error)."""
        if self.phase is CLOSED:
            return
        if linger:
            self.linger = True
        if self.phase is OPEN:
            self.phase = DRAINING
            if self.paused:
                self.pause_reading(False)  # (drain what still arrives, so a close is not a reset)
        if not self.out and self.file is None and not self.wants_write:
            if self.linger:
                self._start_linger()
            else:
                self.close()
        else:
            self.flush()

    def _start_linger(self) -> None:
        """Lingering close: stop sending, then discard input until EOF so the client reads our answer."""
        if self.phase is LINGERING or self.phase is CLOSED:
            return
        self.phase = LINGERING
        try:
            self.transport.shutdown_write()
        except OSError:
            self.close()
            return
        self.deadline = self.worker.reactor.now + _LINGER_SECONDS
        self._drain()

    def _drain(self) -> None:
        """Draining or lingering: read and discard whatever the client still sends (bounded)."""
        while self.phase is not CLOSED:
            try:
                data = self.recv(BUFSIZE)
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            if not data:
                if self.out or self.file is not None or self.wants_write:  # half-closed: finish sending
                    self.pause_reading(True)
                else:
                    self.close()
                return
            self.discarded += len(data)
            if self.discarded > _LINGER_BYTES:
                self.close()
                return

    def interrupt(self) -> None:
        """The shutdown grace period is over."""
        if self.phase is OPEN:
            self.proto.interrupt()
        elif self.phase is DRAINING and (self.out or self.wants_write):
            self.deadline = self.worker.reactor.now + _FAREWELL_SECONDS  # a bounded moment for its last word
        else:
            self.close()

    def expire(self, now: float) -> None:
        """The sweep found this connection past its deadline."""
        phase = self.phase
        if phase is CLOSED:
            return
        if phase is LINGERING:
            self.close()
        elif self.out or self.wants_write:  # (wants_write without out: a file or TLS bytes wait to go)
            log.info("write timeout on fd %d (client not reading); closing", self.fd)
            self.close()
        elif phase is DRAINING:
            self.close()
        else:
            self.proto.timed_out(now)

    def close(self) -> None:
        if self.phase is CLOSED:
            return
        self.phase = CLOSED
        worker = self.worker
        self.producer = None
        file = self.file
        if file is not None:
            self.file = None
            self.file_done = None
            file.close()
        proto = self.proto
        try:
            proto.connection_lost()
        finally:
            # The connection and its protocol refer to each other: a cycle that only the cyclic GC
            # frees, late for objects that lived long enough to reach its oldest generation. So the
            # output buffer (possibly megabytes of an unsent response) is released now, and the cycle
            # is cut: a late call on conn.proto (a stray timer) reaches a protocol that does nothing.
            self.out.clear()
            worker.reactor.remove(self.fd)
            self.transport.close()
            worker.connection_closed(self)  # (it may still read the protocol's counters)
            self.proto = _GONE_PROTOCOL
