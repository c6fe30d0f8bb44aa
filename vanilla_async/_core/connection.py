"""One client connection: reading, framing, dispatching, writing — the request hot path.

Theory of operation
-------------------
A `Connection` is registered with the reactor as a *stream* (edge-triggered on epoll) and gets
``on_event(mask)``. Its life is a small state machine over four fields:

``inbuf``   bytes received but not yet served: a partial request, or requests pipelined behind a
            parked one. ``None`` when empty (the common case).
``out``     the server-owned ``bytearray`` every handler on this connection appends to. Responses
            of one batch accumulate here and leave in one ``send``; an unsent tail stays here and
            goes out on the next EPOLLOUT edge.
``task``    the `RequestTask` of a parked generator handler, or ``None``.
``closing`` no further request will be served; close once ``out`` is flushed.

**Reading.** ``recv`` returns an immutable ``bytes`` chunk. When nothing is buffered (nearly
always) the chunk is framed as is, and every `Request` view points into it: chunks are never
mutated, so a view stays valid across a handler's yields and never pins a buffer we must resize.
A partial request is copied into ``inbuf`` (a ``bytearray`` that grows amortised O(1)); it is
framed again only once it holds at least ``need`` bytes, then frozen with one ``bytes()`` copy.
A partial *chunked* body is the exception: its `Need` carries ``progress`` (kept in ``progress``
next to ``need``), and each read that brings ``need`` bytes goes on with ``resume_chunked`` from
there, in place on ``inbuf`` — no copy, no chunk decoded twice — until it says the request is
complete; only then is ``inbuf`` frozen and served (framed whole, once). So tiny chunks in tiny
packets cost time linear in the body, not quadratic. ``progress`` is ``None`` whenever ``need``
is reset. One short read drains an edge-triggered socket; a full-size read loops.

**Serving.** Every complete request in the chunk is framed and handed to the handler in order;
the only cost the async machinery adds is the ``is not None`` test on the handler's return value.
A generator becomes a `RequestTask` and runs at once until its first yield. If it parks, whatever
it appended is flushed (streaming), requests behind it stay in ``inbuf``, and the connection
stops serving until the task ends; then the buffered requests are served and reading resumes.
While parked, readable events only buffer (up to ``Limits.max_buffered``) and watch for EOF or
a reset: a client that leaves gets its task cancelled (``gen.close()``: ``finally`` runs now).

**Errors.** A `ProtocolError` from the framer appends its error response *after* the responses
still owed to earlier pipelined requests and closes. A handler exception answers 500 (its partial
output is discarded) unless part of its response already left, in which case the connection is
just closed. Closing after an error uses a lingering close (``shutdown(SHUT_WR)``, then discard
input until EOF or a short timeout) so the client reads the error instead of a reset.

**Deadlines.** One ``deadline`` per connection, checked by the worker's sweep timer: while output
is stuck, the write timeout (renewed on progress); while a request is partially read, the read
timeout (from its first byte, never renewed: slowloris is reaped with 408); while idle, the
keep-alive timeout. A parked generator has its own timer, the request deadline (``req.timeout``
or ``Limits.request_timeout``): past it the generator is closed and the client gets 504, or the
connection is closed if part of the response already left.

**Backpressure.** A parked generator whose connection has more than ``output_high_water`` bytes
unsent is *held* by the reactor: what it waits for may happen, but it is not resumed (and so
appends nothing) until the client has read the output down to half the mark. Beyond
``max_output_buffer`` the connection is closed; a client that stops reading altogether is cut by
the write timeout.

**File bodies.** A handler that appends a response's head and *returns* a `FileBody` (a
synchronous handler, or a generator handler as its return value)
(an fd, an offset, a length) has the file's bytes sent with ``os.sendfile`` right after ``out``
drains, with no copy through Python. The file occupies the connection the way a parked generator
does: a `FileSend` (a `RequestTask` that never runs a generator) sits in ``task``, so requests
pipelined behind it wait in ``inbuf``, readable events only buffer and watch for the client
leaving, and `close` releases it (the server owns the fd from the moment it is returned and closes
it after the last byte, on a disconnect, an error or at shutdown). `flush` sends the file once
``out`` is empty: on EAGAIN it waits for writability like any partial send (``wants_write``, the
write timeout), and after `_FILE_TURN` bytes in one go it lets the loop serve others first. If
the kernel cannot ``sendfile`` from that fd (EINVAL, ENOSYS, EOPNOTSUPP), the bytes are read and
sent instead. A HEAD request's file is closed unsent. Handlers that return ``None`` pay nothing:
the check lives on the path that already rejects a non-generator return value, and the only test
on `flush` is one ``is not None`` on ``task``, which is ``None`` unless something is in flight.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import socket
from functools import partial
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from reactor import BROKEN, PEER_CLOSED, READABLE, WRITABLE, Task, Timer

from ..errors import HandlerError, ProtocolError, ShuttingDown, VanillaError
from .framer import ChunkedProgress, Need, resume_chunked
from .handler import FileBody
from .headcache import frame_cached as frame
from .request import Request
from .response import error_response

if TYPE_CHECKING:
    from .worker import Worker

log = logging.getLogger("vanilla_async")

BUFSIZE = 65536
_INF = float("inf")
_LINGER_SECONDS = 2.0
_FAREWELL_SECONDS = 1.0
_LINGER_BYTES = 1 << 20
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_GONE = BROKEN | PEER_CLOSED
_FILE_TURN = 8 << 20  # file bytes sent in one loop turn before others get a turn
_SENDFILE_MAX = 1 << 30  # bytes asked of one sendfile call
_READ_CHUNK = 1 << 16  # the read+send fallback's read size
_NO_SENDFILE = (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP)


class FileSendError(VanillaError, OSError):
    """The file ended before ``length`` bytes (it shrank after the head was written)."""


def _exhausted() -> Any:
    yield None


_DONE_GEN = _exhausted()
_DONE_GEN.close()  # a FileSend runs no generator; cancel()/throw() see one that already ended


class RequestTask(Task):
    """A parked generator handler and the connection it answers."""

    __slots__ = ("conn", "req", "mark", "sent", "inline", "timer", "file")

    def __init__(self, gen: Any, conn: Connection, req: Request, mark: int) -> None:
        super().__init__(gen, getattr(gen, "__qualname__", "handler"))
        self.conn = conn
        self.req = req
        self.mark = mark  # where this request's response starts in conn.out
        self.sent = False  # part of this response has left: too late for a 500
        self.inline = True  # still inside the first step (called from Connection.serve)
        self.timer: Timer | None = None  # the request deadline, while parked
        self.file: FileBody | None = None  # what the generator returned, if it was a FileBody

    def parked(self) -> None:
        self.inline = False
        self.conn.flush()

    def finished(self, value: Any) -> None:
        self.disarm()
        if value.__class__ is FileBody:  # the generator ends by handing over a file body
            self.file = value
        if not self.inline:
            self.conn.task_finished(self)

    def failed(self, exc: BaseException) -> None:
        self.disarm()
        self.conn.task_failed(self, exc)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class FileSend(RequestTask):
    """A `FileBody` on its way out; holds the connection like a parked generator (see the docstring)."""

    __slots__ = ("fd", "offset", "left", "fallback", "started")

    def __init__(self, body: FileBody, conn: Connection, req: Request) -> None:
        super().__init__(_DONE_GEN, conn, req, 0)
        self.name = "sendfile"
        self.fd = body.fd
        self.offset = body.offset
        self.left = body.length
        self.fallback = False  # sendfile refused this fd: read + send
        self.started = False  # a byte of the file left (too late to fall back)

    def disarm(self) -> None:
        super().disarm()
        if self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def pump(self, conn: Connection, budget: int) -> bool:
        """Send until done (True), ``budget`` bytes were sent (False) or EAGAIN/OSError (raised)."""
        sock_fd = conn.fd
        while self.left > 0 and budget > 0:
            if self.fallback:
                data = os.pread(self.fd, min(self.left, _READ_CHUNK), self.offset)
                sent = conn.send(data) if data else 0
            else:
                try:
                    sent = os.sendfile(sock_fd, self.fd, self.offset, min(self.left, _SENDFILE_MAX))
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


class Connection:
    __slots__ = (
        "worker", "sock", "fd", "recv", "send", "out", "inbuf", "need", "progress", "task", "closing", "closed",
        "deadline", "read_since", "continue_sent", "lingering", "wants_write", "paused", "discarded",
    )

    def __init__(self, worker: Worker, sock: socket.socket) -> None:
        self.worker = worker
        self.sock = sock
        self.fd = sock.fileno()
        self.recv = sock.recv
        self.send = sock.send
        self.out = bytearray()
        self.inbuf: bytearray | None = None
        self.need = 0
        self.progress: ChunkedProgress | None = None
        self.task: RequestTask | None = None
        self.closing = False
        self.closed = False
        self.deadline = worker.reactor.now + worker.limits.idle_timeout
        self.read_since = 0.0
        self.continue_sent = False
        self.lingering = False
        self.wants_write = False
        self.paused = False
        self.discarded = 0

    # -- events -------------------------------------------------------------------------------------
    def on_event(self, mask: int) -> None:
        if mask & WRITABLE and self.wants_write:  # (== out is unsent, or a FileSend waits to write)
            self.flush()
        if mask & (READABLE | _GONE) and not self.closed:
            if self.task is None and (not self.closing or (self.inbuf is not None and not self.lingering)):
                self.on_readable(mask)  # (closing with a request half received: let it finish)
            elif self.task is None:
                self._drain()
            else:
                self.on_readable_parked(mask)

    def on_readable(self, mask: int = 0) -> None:
        recv = self.recv
        while True:
            try:
                data = recv(BUFSIZE)
            except BlockingIOError:
                break
            except OSError:
                self.close()
                return
            if not data:
                self.on_eof()
                return
            inbuf = self.inbuf
            if inbuf is not None:
                inbuf += data
                if len(inbuf) > self.worker.limits.max_buffered:
                    self.fail(ProtocolError(413, "request too large"))
                    return
                if len(inbuf) < self.need:
                    if len(data) < BUFSIZE:
                        break
                    continue
                progress = self.progress
                if progress is not None:  # a chunked body: go on from where framing stopped, in place
                    try:
                        need = resume_chunked(inbuf, 0, progress, self.worker.limits)
                    except ProtocolError as error:
                        self.fail(error)
                        return
                    except Exception:  # a framer bug must not leave the client hanging
                        self._framer_crashed()
                        return
                    if need is not None:  # (its 100 Continue, if any, was sent with the head's Need)
                        self.need = need.total
                        self.progress = need.progress
                        if len(data) < BUFSIZE:
                            break
                        continue
                    self.progress = None
                data = bytes(inbuf)
                self.inbuf = None
            self.serve(data)
            if len(data) < BUFSIZE or self.task is not None or self.closing:
                break
        if mask & PEER_CLOSED and not self.closed:
            # The FIN came with the data (one edge-triggered event): no later event will say so.
            if self.task is None:
                self.on_eof()
            else:
                self.close()

    def on_readable_parked(self, mask: int) -> None:
        """Readable while a task is parked: buffer (bounded), and notice the client leaving."""
        limit = self.worker.limits.max_buffered
        inbuf = self.inbuf
        room = limit - (len(inbuf) if inbuf is not None else 0)
        if room > 0:
            try:
                data = self.recv(min(room, BUFSIZE))
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data == b"":
                log.debug("client on fd %d left while its request was parked; cancelling it", self.fd)
                self.close()
                return
            if data:
                if inbuf is None:
                    self.inbuf = bytearray(data)
                else:
                    inbuf += data
        else:
            self.pause_reading(True)
        if mask & _GONE and self.task is not None:
            # FIN or reset flagged by epoll even though data came with it: the client is gone.
            self.close()

    def pause_reading(self, on: bool) -> None:
        if self.paused != on:
            self.paused = on
            self.worker.reactor.want_read(self.fd, not on)

    def on_eof(self) -> None:
        """The client shut down its sending side: serve nothing new, flush what is owed, close."""
        self.inbuf = None
        self.closing = True
        if self.out:
            self.pause_reading(True)
        else:
            self.close()

    # -- serving ------------------------------------------------------------------------------------
    def serve(self, buf: bytes) -> None:
        """Frame and answer every complete request in ``buf``; keep the rest; flush once."""
        worker = self.worker
        limits = worker.limits
        handler = worker.handler
        state = worker.state
        fd = self.fd
        out = self.out
        pos = 0
        end = len(buf)
        while True:
            try:
                req = frame(buf, pos, limits)
            except ProtocolError as error:
                self.fail(error)
                return
            except Exception:  # a framer bug must not leave the client hanging (free until raised)
                self._framer_crashed()
                return
            if req.__class__ is not Request:
                self.keep_partial(buf, pos, req)  # type: ignore[arg-type]
                break
            req.fd = fd
            req.state = state
            pos = req.end
            mark = len(out)
            try:
                result = handler(req, out)
            except Exception as exc:
                self.handler_failed(req, exc, mark)
                return
            if result is not None and not self.start_task(req, result, mark, buf, pos):
                return
            if not req.keep_alive or self.closing:
                self.closing = True
                break
            if pos >= end:
                break
        if self.inbuf is None:
            self.deadline = worker.reactor.now + limits.idle_timeout
            if self.read_since:
                self.read_since = 0.0
                self.continue_sent = False
        if out and not self.wants_write and not self.closing:
            # The common case inlined: the whole batch leaves in one send.
            try:
                sent = self.send(out)
            except OSError:
                sent = 0  # EAGAIN or a dead peer: flush() below finds out which
            if sent == len(out):
                out.clear()
                return
            if sent:
                del out[:sent]
        self.flush()

    def keep_partial(self, buf: bytes, pos: int, need: Need) -> None:
        if pos or not self.read_since:  # a new request starts in this chunk
            now = self.worker.reactor.now
            self.read_since = now
            self.deadline = now + self.worker.limits.read_timeout
            if pos:
                self.continue_sent = False
        self.inbuf = bytearray(buf[pos:] if pos else buf)
        self.need = need.total
        self.progress = need.progress
        if need.expect_continue and not self.continue_sent:
            self.continue_sent = True
            self.out += _CONTINUE

    def start_task(self, req: Request, gen: Any, mark: int, buf: bytes, pos: int) -> bool:
        """Run a generator handler's first step. True: it already ended, keep serving ``buf``."""
        if type(gen) is not GeneratorType and not (hasattr(gen, "send") and hasattr(gen, "throw")):
            if gen.__class__ is FileBody:
                return self.start_file(req, gen, buf, pos)
            self.handler_failed(req, HandlerError(
                f"handler {self.worker.handler!r} returned {gen!r}; a handler must return None (after appending "
                "its response to out), a generator or a FileBody"), mark)
            return False
        task = RequestTask(gen, self, req, mark)
        self.task = task
        self.worker.reactor.start(task)
        if task.done:
            task.inline = False
            self.task = None
            if task.file is not None:
                return self.start_file(req, task.file, buf, pos)
            return not self.closed and not self.closing
        # Parked: requests behind it wait in inbuf; the first step's output was flushed by parked().
        self.inbuf = bytearray(buf[pos:]) if pos < len(buf) else None
        self.need = 0
        self.progress = None
        if not self.out:
            self.deadline = _INF  # (else the write timeout set by the flush stands)
        timeout = req.timeout if req.timeout is not None else self.worker.limits.request_timeout
        if timeout is not None and timeout != math.inf and not task.done:
            task.timer = self.worker.reactor.call_later(timeout, partial(self.request_expired, task))
        return False

    def _file_send(self, req: Request, body: FileBody) -> FileSend | None:
        """The `FileSend` for a returned `FileBody`, or None (the fd closed) when nothing is to be sent."""
        task = FileSend(body, self, req)
        if self.closed or body.length <= 0 or req.method == b"HEAD":
            task.disarm()
            return None
        return task

    def start_file(self, req: Request, body: FileBody, buf: bytes, pos: int) -> bool:
        """A handler returned a `FileBody`: send it after ``out``. True: it is out, keep serving ``buf``."""
        task = self._file_send(req, body)
        if task is None:
            return not self.closed
        self.task = task
        self.flush()
        if self.task is task:  # waiting for the client to read: requests behind it wait in inbuf
            task.inline = False
            self.inbuf = bytearray(buf[pos:]) if pos < len(buf) else None
            self.need = 0
            self.progress = None
            return False
        return not self.closed and not self.closing

    def _send_file(self, task: FileSend) -> bool:
        """``out`` is empty: send the file. True when it is all out and we were called from start_file."""
        try:
            done = task.pump(self, _FILE_TURN)
            if not done:  # its share of this turn is used: let the loop serve others, then go on
                self.worker.reactor.call_soon(partial(self._file_turn, task))
        except BlockingIOError:
            done = False
        except OSError as exc:
            log.log(logging.WARNING if isinstance(exc, FileSendError) else logging.DEBUG,
                    "fd %d: sending a file body failed (%s); closing", self.fd, exc)
            self.close()
            return False
        if not done:
            self.deadline = self.worker.reactor.now + self.worker.limits.write_timeout
            if not self.wants_write:
                self.wants_write = True
                self.worker.reactor.want_write(self.fd, True)
            return False
        task.disarm()
        if self.wants_write:
            self.wants_write = False
            self.worker.reactor.want_write(self.fd, False)
        if task.inline:
            self.task = None
            return True
        self.task_finished(task)
        return False

    def _file_turn(self, task: FileSend) -> None:
        if self.task is task and not self.closed:
            self.flush()

    def task_finished(self, task: RequestTask) -> None:
        """A parked generator returned: its response is complete; serve what queued up behind it."""
        self.task = None
        if task.file is not None:  # it returned a FileBody: that goes out first (then this runs again)
            sending = self._file_send(task.req, task.file)
            if sending is not None:
                sending.inline = False
                self.task = sending
                self.flush()
                return
        if self.closed:
            return
        if not task.req.keep_alive or self.closing:
            self.closing = True
            self.inbuf = None
            self.flush()
            return
        self.pause_reading(False)
        inbuf = self.inbuf
        if inbuf is not None:
            self.inbuf = None
            self.serve(bytes(inbuf))
        else:
            self.deadline = self.worker.reactor.now + self.worker.limits.idle_timeout
            self.flush()
        if self.task is None and not self.closing and not self.closed:
            self.on_readable()  # edge-triggered: bytes that arrived while parked raised no new edge

    def request_expired(self, task: RequestTask) -> None:
        """The request's deadline passed while its generator was parked: 504, or close if too late."""
        task.timer = None
        if task.done or self.task is not task or self.closed:
            return
        log.info("request %r on fd %d exceeded its deadline; closing its generator", task.req, self.fd)
        self.task = None
        self.worker.reactor.cancel(task)  # its finally blocks run now
        if task.sent:
            self.close()
            return
        del self.out[task.mark:]  # drop a partial response (and anything its finally appended)
        self.fail(ProtocolError(504, "the handler did not answer in time"), log_it=False)

    def interrupt(self) -> None:
        """The shutdown grace period is over: let a parked generator say goodbye, then close."""
        task = self.task
        if task is not None and not task.done:
            self.worker.reactor.throw(task, ShuttingDown("the server is shutting down"))
        if self.closed:
            return
        if self.task is None and self.out:
            # Its last word did not fit in the socket buffer: a bounded moment to drain, then close.
            self.closing = True
            self.deadline = self.worker.reactor.now + _FAREWELL_SECONDS
            return
        self.close()

    def last_call(self, until: float) -> None:
        """Shutdown began while this connection was idle but recently active (just accepted, or just
        answered): its client may be sending a request right now. Serve one request that starts before
        ``until``, then close; close quietly if none comes. An empty ``inbuf`` marks the state: it
        makes a closing connection read (`on_event`) and is never left by `keep_partial`."""
        self.closing = True
        self.inbuf = bytearray()
        self.need = 0
        self.progress = None
        self.read_since = until  # nonzero: a partial request keeps this deadline (never extended)
        self.deadline = until

    def task_failed(self, task: RequestTask, exc: BaseException) -> None:
        self.task = None
        if isinstance(exc, ShuttingDown):  # it did not catch it: nothing to say, just close
            self.close()
            return
        if task.inline:
            task.inline = False
        self.handler_failed(task.req, exc, task.mark, sent=task.sent)

    def handler_failed(self, req: Request, exc: BaseException, mark: int, sent: bool = False) -> None:
        log.error("handler failed on %r (fd %d); answering 500", req, self.fd, exc_info=(type(exc), exc, exc.__traceback__))
        if self.closed:
            return
        if sent:
            self.closing = True
            self.inbuf = None
            self.flush()
            return
        del self.out[mark:]
        self.fail(ProtocolError(500, "internal server error"), log_it=False)

    @property
    def in_last_call(self) -> bool:
        """Waiting, since shutdown began, for the one request `last_call` allows (none has started)."""
        inbuf = self.inbuf
        return inbuf is not None and not inbuf

    def _framer_crashed(self) -> None:
        log.exception("framing a request on fd %d raised; answering 500 and closing (a bug: please report it "
                      "with this traceback)", self.fd)
        self.fail(ProtocolError(500, "internal error while reading the request"), log_it=False)

    def fail(self, error: ProtocolError, log_it: bool = True) -> None:
        """Answer ``error`` after the responses already owed, then close (lingering)."""
        if log_it:
            log.info("bad request on fd %d: %s", self.fd, error)
        self.out += error_response(error.status, error.reason)
        self.inbuf = None
        self.closing = True
        self.lingering = True
        self.flush()

    # -- writing and closing ----------------------------------------------------------------------------
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
            task = self.task
            if task is not None:
                if sent > task.mark:
                    task.sent = True
                task.mark = max(0, task.mark - sent)
            if sent == len(out):
                out.clear()
                if task is not None and task._held:
                    self._backpressure(task)
            else:
                if sent:
                    del out[:sent]
                self.deadline = self.worker.reactor.now + self.worker.limits.write_timeout
                if not self.wants_write:
                    self.wants_write = True
                    self.worker.reactor.want_write(self.fd, True)
                if task is not None:
                    self._backpressure(task)
                return
        sending = self.task
        if sending is not None and sending.__class__ is FileSend and not self._send_file(sending):
            return
        if self.wants_write:
            self.wants_write = False
            self.worker.reactor.want_write(self.fd, False)
            if self.task is None:
                self.deadline = self.worker.reactor.now + (
                    self.worker.limits.read_timeout if self.inbuf is not None else self.worker.limits.idle_timeout
                )
        if self.closing and self.task is None:
            if self.lingering:
                self._start_linger()
            else:
                self.close()

    def _backpressure(self, task: RequestTask) -> None:
        """Hold a streaming generator while its output is backed up; cut a reader that is hopeless."""
        pending = len(self.out)
        limits = self.worker.limits
        reactor = self.worker.reactor
        if pending > limits.max_output_buffer:
            log.info("fd %d: %d bytes unsent exceed max_output_buffer; closing the slow reader", self.fd, pending)
            self.close()
        elif pending > limits.output_high_water:
            reactor.hold(task)
        elif task._held and pending <= limits.output_high_water // 2:
            reactor.call_soon(partial(self._release, task))  # next turn: never re-enter the generator here

    def _release(self, task: RequestTask) -> None:
        if self.task is task and not task.done and not self.closed:
            self.worker.reactor.release(task)

    def _start_linger(self) -> None:
        """Lingering close: stop sending, then discard input until EOF so the client reads our answer."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.close()
            return
        self.deadline = self.worker.reactor.now + _LINGER_SECONDS
        self._drain()

    def _drain(self) -> None:
        """Closing: read and discard whatever the client still sends (bounded)."""
        while not self.closed:
            try:
                data = self.recv(BUFSIZE)
            except BlockingIOError:
                return
            except OSError:
                self.close()
                return
            if not data:
                if self.out:  # half-closed client: finish sending, stop reading
                    self.pause_reading(True)
                else:
                    self.close()
                return
            self.discarded += len(data)
            if self.discarded > _LINGER_BYTES:
                self.close()
                return

    def expire(self, now: float) -> None:
        """The sweep found this connection past its deadline."""
        if self.closed:
            return
        if self.lingering and self.closing and not self.out:
            self.close()
        elif self.out or self.wants_write:  # (wants_write without out: a FileSend waits to write)
            log.info("write timeout on fd %d (client not reading); closing", self.fd)
            self.close()
        elif self.task is not None:
            self.deadline = _INF
        elif self.in_last_call:
            self.close()  # a last call (shutdown) that brought no request
        elif self.inbuf is not None:
            log.info("read timeout on fd %d (request incomplete after %.1fs); answering 408", self.fd, now - self.read_since)
            self.fail(ProtocolError(408, "request not completed in time"), log_it=False)
        else:
            self.close()

    @property
    def idle(self) -> bool:
        return self.task is None and not self.out and self.inbuf is None

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        worker = self.worker
        task = self.task
        if task is not None:
            self.task = None
            task.disarm()
            worker.reactor.cancel(task)
        worker.reactor.remove(self.fd)
        try:
            self.sock.close()
        except OSError:  # pragma: no cover
            pass
        self.inbuf = None
        worker.connection_closed(self)
