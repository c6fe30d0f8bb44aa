"""HTTP/1.1: the protocol every connection starts with — framing, dispatching, the request hot path.

Theory of operation
-------------------
`Http1` is a `protocol.Protocol`: its connection hands it plaintext chunks (``data_received``) and
it answers by appending to ``conn.out``. Its own state is named by ``phase`` (an `H1` member):

``IDLE``       between requests: nothing buffered. A chunk is framed as is (`serve`).
``READING``    a request is partly received: it sits in ``inbuf`` (a ``bytearray`` that grows
               amortised O(1)) until it holds ``need`` bytes; then it is framed again, frozen with one
               ``bytes()`` copy and served. A partial *chunked* body is resumed where framing stopped
               (``progress``, `framer.resume_chunked`), in place on ``inbuf``, so tiny chunks cost
               time linear in the body. The read timeout runs from the request's first byte and is
               never renewed (slowloris gets 408).
``PARKED``     a generator handler is parked (`RequestTask`): requests pipelined behind it, and what
               arrives meanwhile, wait in ``inbuf`` (up to ``Limits.max_buffered``; then reading
               pauses and TCP pushes back). The client leaving (EOF, reset) cancels the generator.
``SENDING``    a returned `FileBody` is on its way (`Connection.send_file`); otherwise as PARKED.
``LAST_CALL``  shutdown began while idle but recently active: one request that starts before the
               deadline is served, then the connection closes.
``DONE``       no more requests: the connection drains and closes, or another protocol took over.

``final`` (orthogonal) says that the request in progress is the last one (``Connection: close``,
HTTP/1.0 without keep-alive, shutdown, or ``Limits.max_requests_per_connection`` reached): once it
is answered the protocol is ``DONE``.

**Requests per connection.** ``served`` counts the requests framed on the connection (the worker
sums them for ``Limits.max_worker_requests``). The request that reaches ``cap``
(``max_requests_per_connection``; 0 when off, which ``served`` never equals) is the last: its
response gets ``Connection: close`` inserted after its status line (`insert_close`; a generator's
steps are relayed until one writes its head) and the connection closes once it is out. Per request
this costs one increment and one compare, limit on or off.

**Serving.** Every complete request in a chunk is framed (`headcache.frame_cached`) and handed to
the handler in order; the only costs a request that never yields pays beyond that are the ``is not
None`` test on the handler's return value and the HEAD test (one byte compared). A returned
generator becomes a `RequestTask` and runs at once until its first yield; if it parks, what it
appended is flushed (streaming) and serving stops until it ends. A returned `FileBody` is sent
after ``out``; a returned `Takeover` hands the connection to another protocol after the ``101``.
Responses of one batch leave in one ``send``.

**HEAD.** A response to HEAD never carries a body, whatever the handler appended: what follows the
head's blank line is dropped (`cut_after_head`), after a sync handler returns and at each step of a
generator (its Content-Length stays as the handler wrote it). A `FileBody` is closed unsent.

**Errors.** A `ProtocolError` from the framer is answered *after* the responses still owed to
earlier pipelined requests, then the connection closes with a lingering close. A handler exception
answers 500 (its partial output is discarded) unless part of its response already left, in which
case the connection is just closed. A parked generator past its deadline (``req.timeout`` or
``Limits.request_timeout``) is closed and answered 504 the same way.
"""

from __future__ import annotations

import enum
import logging
import math
from functools import partial
from types import GeneratorType
from typing import TYPE_CHECKING, Any

from ..errors import HandlerError, ProtocolError, ShuttingDown
from .connection import OPEN as CONN_OPEN
from .connection import Connection, ConnTask
from .framer import ChunkedProgress, Need, resume_chunked
from .handler import FileBody, Takeover
from .headcache import frame_cached as frame
from .protocol import Protocol
from .request import Request
from .response import error_response
from .steps import insert_after_status, inserting

if TYPE_CHECKING:
    from reactor import Timer

log = logging.getLogger("vanilla_async")

__all__ = ("H1", "Http1", "RequestTask", "bad_result", "cut_after_head", "insert_close", "is_generator")

_INF = float("inf")
_CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
_H2_PREFACE_HEAD = b"PRI * HTTP/2.0\r\n\r\n"  # what the framer sees of the HTTP/2 client preface (and rejects: 505)
_H = 72  # ord("H"): a method starting with it may be HEAD
_NOT_HEAD = -2  # RequestTask.head: not a HEAD request
_HEAD_OPEN = -1  # RequestTask.head: a HEAD request whose head is not complete yet


class H1(enum.Enum):
    """The HTTP/1.1 protocol's phase (see the module docstring)."""

    IDLE = "idle"
    READING = "reading"
    PARKED = "parked"
    SENDING = "sending a file"
    LAST_CALL = "last call"
    DONE = "done"


IDLE = H1.IDLE
READING = H1.READING
PARKED = H1.PARKED
SENDING = H1.SENDING
LAST_CALL = H1.LAST_CALL
DONE = H1.DONE


# -- the handler's result: one set of rules, for the server and for testing.call ---------------------
def is_generator(result: object) -> bool:
    """A generator handler's return value (a generator, or anything that drives like one)."""
    return type(result) is GeneratorType or (hasattr(result, "send") and hasattr(result, "throw"))


def bad_result(handler: object, result: object) -> HandlerError:
    return HandlerError(
        f"handler {handler!r} returned {result!r}; a handler must return None (after appending its "
        "response to out), a generator, a FileBody or a Takeover")


def is_head(req: Request) -> bool:
    return req._buf[req._start] == _H and req.method == b"HEAD"


def cut_after_head(out: bytearray, start: int) -> int:
    """HEAD: drop whatever follows the response head that starts at ``start`` in ``out``.
    Returns the offset just past the head's blank line, or -1 if the head is not complete yet."""
    end = out.find(b"\r\n\r\n", start)
    if end < 0:
        return -1
    end += 4
    if end < len(out):
        del out[end:]
    return end


_CLOSE = b"Connection: close\r\n"


def insert_close(out: bytearray, start: int) -> bool:
    """``Connection: close`` into the response head at ``out[start]`` (unless it has a Connection
    field already); False when no final head starts there yet."""
    return insert_after_status(out, start, _CLOSE, b"connection")


class RequestTask(ConnTask):
    """A parked generator handler and the request it answers."""

    __slots__ = ("proto", "req", "inline", "timer", "result", "head")

    def __init__(self, gen: Any, proto: Http1, req: Request, mark: int, head: bool) -> None:
        super().__init__(gen, proto.conn, mark=mark)
        self.proto = proto
        self.req = req
        self.inline = True  # still inside the first step (called from Http1.serve)
        self.timer: Timer | None = None  # the request deadline, while parked
        self.result: Any = None  # what the generator returned
        self.head = _HEAD_OPEN if head else _NOT_HEAD  # HEAD: where its head ends (absolute), once known

    def parked(self) -> None:
        self.inline = False
        if self.head != _NOT_HEAD:
            self.quiet()
        super().parked()

    def finished(self, value: Any) -> None:
        self.disarm()
        if self.head != _NOT_HEAD:
            self.quiet()
        self.result = value
        if not self.inline:
            self.proto.task_finished(self)

    def failed(self, exc: BaseException) -> None:
        self.disarm()
        self.proto.task_failed(self, exc)

    def disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def quiet(self) -> None:
        """HEAD: keep the head, drop any body bytes this generator appended."""
        conn = self.conn
        out = conn.out
        if self.head == _HEAD_OPEN:
            end = cut_after_head(out, max(0, self.start - conn.written))
            if end >= 0:
                self.head = conn.written + end
        else:
            keep = self.head - conn.written
            if keep < len(out):
                del out[max(0, keep):]


class Http1(Protocol):
    __slots__ = (
        "worker", "reactor", "limits", "handler", "state", "out", "phase", "final", "inbuf", "need", "progress",
        "read_since", "continue_sent", "task", "file_req", "served", "cap",
    )

    def connection_made(self, conn: Connection) -> None:
        self.conn = conn
        worker = conn.worker
        self.worker = worker
        self.reactor = worker.reactor
        self.limits = worker.limits
        self.handler = worker.handler
        self.state = worker.state
        self.out = conn.out
        self.phase = IDLE
        self.final = False  # the request in progress is the last one
        self.inbuf: bytearray | None = None
        self.need = 0
        self.progress: ChunkedProgress | None = None
        self.read_since = 0.0
        self.continue_sent = False
        self.task: RequestTask | None = None
        self.file_req: Request | None = None  # the request whose FileBody is being sent
        self.served = 0  # requests framed on this connection
        self.cap = worker.limits.max_requests_per_connection or 0  # the last one's number (0: no limit)

    # -- input --------------------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase is IDLE:
            self.serve(data)
            return
        inbuf = self.inbuf
        if phase is READING or phase is LAST_CALL:
            assert inbuf is not None
            inbuf += data
            limits = self.limits
            if len(inbuf) > limits.max_buffered:
                self.fail(ProtocolError(413, "request too large"))
                return
            if len(inbuf) < self.need:
                return
            progress = self.progress
            if progress is not None:  # a chunked body: go on from where framing stopped, in place
                try:
                    need = resume_chunked(inbuf, 0, progress, limits)
                except ProtocolError as error:
                    self.fail(error)
                    return
                except Exception:  # a framer bug must not leave the client hanging
                    self._framer_crashed()
                    return
                if need is not None:  # (its 100 Continue, if any, was sent with the head's Need)
                    self.need = need.total
                    self.progress = need.progress
                    return
                self.progress = None
            self.inbuf = None
            self.serve(bytes(inbuf))
        elif phase is PARKED or phase is SENDING:  # buffer (bounded) until the response is out
            if inbuf is None:
                self.inbuf = inbuf = bytearray(data)
            else:
                inbuf += data
            if len(inbuf) >= self.limits.max_buffered:
                self.conn.pause_reading(True)

    def eof_received(self) -> None:
        phase = self.phase
        if phase is PARKED or phase is SENDING:
            log.debug("client on fd %d left while its request was in progress; cancelling it", self.conn.fd)
            self.conn.close()
            return
        # The client shut down its sending side: serve nothing new, send what is owed, close.
        self.inbuf = None
        self.phase = DONE
        self.conn.finish()

    def keep_partial(self, buf: bytes, pos: int, need: Need) -> None:
        if pos or not self.read_since:  # a new request starts in this chunk
            now = self.reactor.now
            self.read_since = now
            self.conn.deadline = now + self.limits.read_timeout
            if pos:
                self.continue_sent = False
        self.inbuf = bytearray(buf[pos:] if pos else buf)
        self.need = need.total
        self.progress = need.progress
        self.phase = READING
        if need.expect_continue and not self.continue_sent:
            self.continue_sent = True
            self.out += _CONTINUE

    # -- serving ------------------------------------------------------------------------------------
    def serve(self, buf: bytes) -> None:
        """Frame and answer every complete request in ``buf``; keep the rest; flush once."""
        conn = self.conn
        limits = self.limits
        handler = self.handler
        state = self.state
        fd = conn.fd
        out = self.out
        cap = self.cap
        pos = 0
        end = len(buf)
        served = self.served
        try:
            while True:
                try:
                    req = frame(buf, pos, limits)
                except ProtocolError as error:
                    if pos == 0 and buf[:18] == _H2_PREFACE_HEAD and conn.written == 0:
                        self.switch_to_h2(buf)  # h2c with prior knowledge: only ever on this error path
                        return
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
                mark = len(out)
                try:
                    result = handler(req, out)
                except Exception as exc:
                    self.handler_failed(req, exc, mark)
                    return
                if buf[req._start] == _H and req.method == b"HEAD":  # (_start: past any empty lines before it)
                    cut_after_head(out, mark)
                served += 1
                if served == cap:  # Limits.max_requests_per_connection reached: this is the last one
                    result = self.last_request(out, mark, result)
                pos = req.end
                if result is not None and not self.start(req, result, mark, buf, pos):
                    return
                if not req.keep_alive or self.final:
                    self.final = True
                    break
                if pos >= end:
                    break
        finally:
            self.served = served  # (a local in the loop: one attribute store per batch, not per request)
        if self.inbuf is None:
            if self.final:
                self.phase = DONE
                conn.finish()
                return
            self.phase = IDLE
            conn.deadline = self.reactor.now + limits.idle_timeout
            if self.read_since:
                self.read_since = 0.0
                self.continue_sent = False
        if out and not conn.wants_write:
            # The common case inlined: the whole batch leaves in one send.
            try:
                sent = conn.send(out)
            except OSError:
                sent = 0  # EAGAIN or a dead peer: flush() below finds out which
            conn.written += sent
            if sent == len(out):
                out.clear()
                return
            if sent:
                del out[:sent]
        conn.flush()

    def last_request(self, out: bytearray, mark: int, result: Any) -> Any:
        """The connection's last request (``max_requests_per_connection``): its response says
        ``Connection: close``; the connection closes once it is out."""
        self.final = True
        if result is None or result.__class__ is FileBody:
            insert_close(out, mark)
        elif is_generator(result):
            return inserting(result, out, _CLOSE, b"connection")
        return result  # (a Takeover: the connection is another protocol's now)

    def start(self, req: Request, result: Any, mark: int, buf: bytes, pos: int) -> bool:
        """The handler returned something. True: its response is complete, keep serving ``buf``."""
        if not is_generator(result):
            cls = result.__class__
            if cls is FileBody:
                return self.start_file(req, result, buf, pos)
            if cls is Takeover:
                self.take_over(result, buf[pos:])
                return False
            self.handler_failed(req, bad_result(self.handler, result), mark)
            return False
        conn = self.conn
        task = RequestTask(result, self, req, mark, req._buf[req._start] == _H and req.method == b"HEAD")
        self.task = task
        conn.produce(task)
        self.reactor.start(task)
        if task.done:
            task.inline = False
            if self.task is task:
                self.task = None
                conn.produce(None)
            value = task.result
            if value.__class__ is FileBody:
                return self.start_file(req, value, buf, pos)
            if value.__class__ is Takeover:
                self.take_over(value, buf[pos:])
                return False
            return conn.phase is CONN_OPEN and self.phase is not DONE
        # Parked: requests behind it wait in inbuf; the first step's output was flushed by parked().
        self.phase = PARKED
        self.inbuf = bytearray(buf[pos:]) if pos < len(buf) else None
        self.need = 0
        self.progress = None
        if not self.out:
            conn.deadline = _INF  # (else the write timeout set by the flush stands)
        timeout = req.timeout if req.timeout is not None else self.limits.request_timeout
        if timeout is not None and timeout != math.inf:
            task.timer = self.reactor.call_later(timeout, partial(self.request_expired, task))
        return False

    def start_file(self, req: Request, body: FileBody, buf: bytes, pos: int) -> bool:
        """A handler returned a `FileBody`: send it after ``out``. True: it is out, keep serving ``buf``."""
        if not self.send_file(req, body):
            self.inbuf = bytearray(buf[pos:]) if pos < len(buf) else None
            self.need = 0
            self.progress = None
            return False
        return self.conn.phase is CONN_OPEN

    def send_file(self, req: Request, body: FileBody) -> bool:
        """Hand ``body`` to the connection. True: nothing is left in flight (sent, empty or HEAD)."""
        conn = self.conn
        if is_head(req) or conn.closed:
            conn.send_file(body._replace(length=0), self.file_sent)  # (closes the fd)
            return True
        if conn.send_file(body, self.file_sent):
            return True
        self.phase = SENDING
        self.file_req = req
        return False

    def file_sent(self) -> None:
        req = self.file_req
        assert req is not None
        self.file_req = None
        self.next_request(req)

    def switch_to_h2(self, buf: bytes) -> None:
        """The connection's first bytes are the HTTP/2 client preface: it is `h2.H2Protocol`'s now."""
        try:
            from .h2 import H2Protocol  # (imported on first use: HTTP/1.1-only servers never load h2)
        except ImportError as exc:
            log.error("a client speaks HTTP/2 but the h2 package is missing (%s): pip install 'vanilla-async[http2]'; "
                      "answering 505", exc)
            self.fail(ProtocolError(505, "HTTP/2 is not available on this server"), log_it=False)
            return
        self.phase = DONE
        self.inbuf = None
        self.conn.take_over(H2Protocol(), buf)

    def take_over(self, takeover: Takeover, leftover: bytes) -> None:
        """The handler switched protocols (after its ``101``): the connection is ``takeover.protocol``'s."""
        self.phase = DONE
        self.inbuf = None
        self.conn.pause_reading(False)
        self.conn.take_over(takeover.protocol, leftover)

    def task_finished(self, task: RequestTask) -> None:
        """A parked generator returned: its response is complete; serve what queued up behind it."""
        conn = self.conn
        self.task = None
        conn.produce(None)
        if conn.closed:
            return
        value = task.result
        if value.__class__ is FileBody:  # it returned a FileBody: that goes out first
            if not self.send_file(task.req, value):
                return
        elif value.__class__ is Takeover:
            leftover = bytes(self.inbuf) if self.inbuf is not None else b""
            self.take_over(value, leftover)
            return
        self.next_request(task.req)

    def next_request(self, req: Request) -> None:
        """``req``'s response is complete (handed to the connection): close, or serve what waits."""
        conn = self.conn
        if conn.closed:
            return
        if not req.keep_alive or self.final:
            self.final = True
            self.phase = DONE
            self.inbuf = None
            conn.finish()
            return
        conn.pause_reading(False)
        inbuf = self.inbuf
        self.phase = IDLE
        if inbuf is not None:
            self.inbuf = None
            self.serve(bytes(inbuf))
        else:
            conn.deadline = self.reactor.now + self.limits.idle_timeout
            conn.flush()
        if (self.phase is IDLE or self.phase is READING) and conn.phase is CONN_OPEN:
            conn.on_readable()  # edge-triggered: bytes that arrived while parked raised no new edge

    def request_expired(self, task: RequestTask) -> None:
        """The request's deadline passed while its generator was parked: 504, or close if too late."""
        task.timer = None
        conn = self.conn
        if task.done or self.task is not task or conn.closed:
            return
        log.info("request %r on fd %d exceeded its deadline; closing its generator", task.req, conn.fd)
        self.task = None
        conn.produce(None)
        self.reactor.cancel(task)  # its finally blocks run now
        if task.sent:
            conn.close()
            return
        del self.out[task.start - conn.written:]  # drop a partial response (and anything its finally appended)
        self.fail(ProtocolError(504, "the handler did not answer in time"), log_it=False)

    def task_failed(self, task: RequestTask, exc: BaseException) -> None:
        self.task = None
        self.conn.produce(None)
        if isinstance(exc, ShuttingDown):  # it did not catch it: nothing to say, just close
            self.conn.close()
            return
        task.inline = False
        self.handler_failed(task.req, exc, task.start - self.conn.written, sent=task.sent)

    def handler_failed(self, req: Request, exc: BaseException, mark: int, sent: bool = False) -> None:
        conn = self.conn
        log.error("handler failed on %r (fd %d); answering 500", req, conn.fd, exc_info=(type(exc), exc, exc.__traceback__))
        if conn.closed:
            return
        if sent:
            self.phase = DONE
            self.inbuf = None
            conn.finish()
            return
        del self.out[mark:]
        self.fail(ProtocolError(500, "internal server error"), log_it=False)

    def _framer_crashed(self) -> None:
        log.exception("framing a request on fd %d raised; answering 500 and closing (a bug: please report it "
                      "with this traceback)", self.conn.fd)
        self.fail(ProtocolError(500, "internal error while reading the request"), log_it=False)

    def fail(self, error: ProtocolError, log_it: bool = True) -> None:
        """Answer ``error`` after the responses already owed, then close (lingering)."""
        if log_it:
            log.info("bad request on fd %d: %s", self.conn.fd, error)
        self.out += error_response(error.status, error.reason)
        self.inbuf = None
        self.phase = DONE
        self.conn.finish(linger=True)

    # -- the connection's questions -------------------------------------------------------------------
    def output_drained(self) -> None:
        phase = self.phase
        if phase is IDLE:
            self.conn.deadline = self.reactor.now + self.limits.idle_timeout
        elif phase is READING:
            self.conn.deadline = self.reactor.now + self.limits.read_timeout

    def timed_out(self, now: float) -> None:
        phase = self.phase
        conn = self.conn
        if phase is PARKED or phase is SENDING:
            conn.deadline = _INF  # (the request deadline is the task's own timer)
        elif phase is READING:
            log.info("read timeout on fd %d (request incomplete after %.1fs); answering 408", conn.fd, now - self.read_since)
            self.fail(ProtocolError(408, "request not completed in time"), log_it=False)
        else:  # idle past the keep-alive timeout, or a last call that brought no request
            conn.close()

    def shutdown(self, now: float, last_call: float) -> None:
        """Shutdown began: finish what is in progress, then close. An idle connection that was active
        in the last ``last_call`` seconds (just accepted, or just answered) may be sending a request
        right now: it gets until ``now + last_call`` for one to start."""
        conn = self.conn
        if self.phase is IDLE:
            conn.on_readable()  # a request already received but not yet read is served, not dropped
            if conn.closed:
                return
        phase = self.phase
        if phase is DONE:
            return
        if phase is not IDLE:
            self.final = True
        elif conn.out or conn.wants_write or conn.file is not None:
            self.final = True
            self.phase = DONE
            conn.finish()
        elif last_call > 0 and conn.deadline - self.limits.idle_timeout > now - last_call:
            self.last_call(now + last_call)
        else:
            conn.close()

    def last_call(self, until: float) -> None:
        self.final = True
        self.phase = LAST_CALL
        self.inbuf = bytearray()
        self.need = 0
        self.progress = None
        self.read_since = until  # nonzero: a partial request keeps this deadline (never extended)
        self.conn.deadline = until

    def last_call_over(self) -> None:
        if self.phase is LAST_CALL:  # no request came
            self.conn.close()

    def interrupt(self) -> None:
        """The shutdown grace period is over: let a parked generator say goodbye, then close."""
        task = self.task
        if task is not None and not task.done:
            self.reactor.throw(task, ShuttingDown("the server is shutting down"))
        conn = self.conn
        if conn.closed:
            return
        if self.task is None and self.out:
            # Its last word did not fit in the socket buffer: a bounded moment to drain, then close.
            self.phase = DONE
            conn.finish()
            conn.interrupt()  # (draining: the connection gives it a bounded moment)
            return
        conn.close()

    def connection_lost(self) -> None:
        task = self.task
        if task is not None:
            self.task = None
            task.disarm()
            self.reactor.cancel(task)
        self.inbuf = None
        self.phase = DONE

