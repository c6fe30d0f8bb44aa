"""WebSocket (RFC 6455 + RFC 7692): the protocol a connection runs after a ``101`` (engine side).

Theory of operation
-------------------
`WebSocket` is a `protocol.Protocol`. A handler accepts the upgrade (`vanilla_async.websocket.accept`
appends the ``101`` and returns ``Takeover(WebSocket(session, ...))``) and the connection hands every
later byte to it. The app's code is the *session*: a generator ``session(ws)`` run as a `SessionTask`
(a `ConnTask`, so the connection's backpressure holds it while the client is behind). Its own state is
``state`` (a `WS` member):

``OPEN``     messages flow both ways.
``CLOSING``  we sent our Close (the session ended, ``ws.close()``, or shutdown): we wait up to
             ``Limits.ws_close_timeout`` for the client's Close, discarding data, then close TCP.
``CLOSED``   the closing handshake is over (or failed): the connection drains what is owed and closes.

**Receiving.** Chunks go to the codec's `FrameReader`; complete messages (``str`` for text,
``bytes`` for binary; fragments reassembled, control frames interleaved) go to a queue. The session
asks with ``msg = yield ws.receive()``: the token is ``ready(msg)`` when one is queued — delivered at
once, also inside ``first(ws.receive(), park(lot), sleep(t))`` — else ``park(lot)`` on the socket's own
`ParkingLot`, and the next message unparks it with the message as the value (a message is taken off
the queue only when it is handed over, so a race lost to a timer loses nothing). ``None`` means the
peer closed (``ws.close_code`` says how). The queue is bounded (``ws_queue_bytes``,
``ws_queue_messages``): beyond it reading stops (`Connection.pause_reading`) and TCP pushes back on the
client; it resumes (on the next loop turn, never inside the session's own step) below half.

**Sending.** ``ws.send_text``/``send_bytes``/``send`` append one frame (compressed with the
connection's `Deflater` when permessage-deflate was negotiated) to ``conn.out``. The session's output
is flushed at each of its yields (`ConnTask.parked`); output appended from elsewhere (a broadcast
from another task) is flushed once per loop turn (``call_soon``), so N sends cost one ``send``.
Backpressure is the connection's: beyond ``output_high_water`` unsent bytes the session is held;
beyond ``max_output_buffer`` the connection is closed.

**The connection's duties, not the session's.** Pings are answered with pongs. A Close from the
client is echoed (its code; an empty one with an empty one) and the connection closes. Protocol
errors close with the codec's code (1002 protocol, 1007 bad UTF-8, 1009 too big). A session that
raises closes with 1011, one that returns with 1000 (1001 during shutdown). **Keepalive**: the one
connection deadline is ``ws_ping_interval`` after the last inbound byte — *any* byte, so a client
busy uploading is never pinged; past it a ping goes out and the deadline becomes
``ws_ping_timeout``; past that the connection closes with 1011. While reading is paused (the
session is the slow one) the client is not held to it. While output is stuck the deadline is the
connection's write timeout. **A client that vanishes** (FIN, RST, half-close) closes the
connection at once, which cancels the session (its ``finally`` blocks run). **Shutdown**:
`ShuttingDown` is thrown into the session (a last message may still go out), then Close 1001; the
client has the grace period to answer; `interrupt` closes what is left.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from reactor import Park, ParkingLot, Ready, park, ready

from ..errors import ShuttingDown, WebSocketError
from .connection import CLOSED as CLOSED_CONN
from .connection import OPEN as CONN_OPEN
from .connection import Connection, ConnTask
from .protocol import Protocol
from .wscodec import (
    OP_BINARY,
    OP_TEXT,
    Close,
    FrameReader,
    Message,
    Ping,
    encode_close,
    encode_ping,
    encode_pong,
    frame_header,
)

if TYPE_CHECKING:
    from .wsdeflate import DeflateParams

log = logging.getLogger("vanilla_async")

__all__ = ("WS", "Session", "SessionTask", "WebSocket")

_INF = float("inf")

#: ``session(ws)``: the app's generator for one WebSocket connection
Session = Callable[["WebSocket"], Generator[Any, Any, Any]]


class WS(enum.Enum):
    """The WebSocket protocol's phase (see the module docstring)."""

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"


OPEN = WS.OPEN
CLOSING = WS.CLOSING
CLOSED = WS.CLOSED


class SessionTask(ConnTask):
    """The session generator of one WebSocket connection."""

    __slots__ = ("ws",)

    def __init__(self, gen: Any, ws: WebSocket) -> None:
        super().__init__(gen, ws.conn, getattr(gen, "__qualname__", "websocket session"))
        self.ws = ws

    def finished(self, value: Any) -> None:
        super().finished(value)
        self.ws.session_ended(None)

    def failed(self, exc: BaseException) -> None:
        conn = self.conn
        if conn.producer is self:
            conn.producer = None
        self.ws.session_ended(exc)


class WebSocket(Protocol):
    """One WebSocket connection: the handle a session receives and sends through."""

    __slots__ = (
        "awaiting_pong",
        "close_code",
        "close_reason",
        "deflater",
        "due",
        "flush_queued",
        "going_away",
        "limits",
        "lot",
        "max_message",
        "params",
        "queue",
        "queued",
        "reactor",
        "reader",
        "resume_queued",
        "session",
        "state",
        "subprotocol",
        "task",
    )

    def __init__(self, session: Session, *, params: DeflateParams | None = None, subprotocol: str | None = None,
                 max_message: int | None = None) -> None:
        self.session = session
        self.params = params  #: the negotiated permessage-deflate parameters (None: no compression)
        self.subprotocol = subprotocol  #: the negotiated subprotocol, if any
        self.max_message = max_message
        self.queue: deque[str | bytes] = deque()
        self.queued = 0  # bytes in queue
        self.lot = ParkingLot()
        self.task: SessionTask | None = None
        self.state = OPEN
        self.close_code: int | None = None  #: the client's close code, once it closed (1005: none given)
        self.close_reason = ""
        self.awaiting_pong = False
        self.due = _INF
        self.flush_queued = False
        self.resume_queued = False
        self.going_away = False

    # -- the session's side -------------------------------------------------------------------------
    def receive(self) -> Ready | Park:
        """Token: the next message (``str`` or ``bytes``), or ``None`` once the client closed."""
        queue = self.queue
        if queue:
            msg = queue.popleft()
            self.queued -= len(msg)
            if self.conn.paused and not self.resume_queued and self._below_half():
                self.resume_queued = True
                self.reactor.call_soon(self._resume_reading)
            return ready(msg)
        if self.state is not OPEN:
            return ready(None)
        return park(self.lot)

    def send(self, message: str | bytes | bytearray | memoryview) -> bool:
        """Send a text message (``str``) or a binary one. False if the socket is closing (dropped)."""
        if isinstance(message, str):
            return self._send(OP_TEXT, message.encode("utf-8"))
        return self._send(OP_BINARY, message)

    def send_text(self, text: str) -> bool:
        return self._send(OP_TEXT, text.encode("utf-8"))

    def send_bytes(self, data: bytes | bytearray | memoryview) -> bool:
        return self._send(OP_BINARY, data)

    def send_frame(self, frame: bytes) -> bool:
        """Append an already-encoded frame (a broadcast encodes once for many sockets)."""
        if self.state is not OPEN:
            return False
        self.conn.out += frame
        self._flush_later()
        return True

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (the session may go on; later sends are dropped)."""
        self._start_closing(code, reason)

    @property
    def open(self) -> bool:
        return self.state is OPEN

    @property
    def deflate(self) -> bool:
        """permessage-deflate was negotiated on this connection."""
        return self.params is not None

    def _send(self, opcode: int, payload: bytes | bytearray | memoryview) -> bool:
        if self.state is not OPEN:
            return False
        out = self.conn.out
        deflater = self.deflater
        if deflater is not None:
            out += deflater.frame(opcode, payload)
        else:
            out += frame_header(opcode, len(payload))
            out += payload
        self._flush_later()
        return True

    def _flush_later(self) -> None:
        if not self.flush_queued:
            self.flush_queued = True
            self.reactor.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self.flush_queued = False
        if self.conn.phase is not CLOSED_CONN:
            self.conn.flush()

    # -- the connection's side ----------------------------------------------------------------------
    def connection_made(self, conn: Connection) -> None:
        self.conn = conn
        worker = conn.worker
        self.reactor = worker.reactor
        limits = self.limits = worker.limits
        max_message = self.max_message if self.max_message is not None else limits.ws_max_message
        max_frame = min(limits.ws_max_frame, max_message)
        if self.params is not None:  # incompressible data grows a little when deflated (stored blocks)
            max_frame += max_frame // 256 + 1024
        self.reader = FrameReader(max_frame=max_frame, max_message=max_message, deflate=self.params)
        self.deflater = self.params.deflater() if self.params is not None else None
        self._alive()
        try:
            gen = self.session(self)
            task = SessionTask(gen, self)
        except Exception as exc:  # not a generator, or it raised before its first line
            log.error("websocket session %r could not start; closing with 1011", self.session,
                      exc_info=(type(exc), exc, exc.__traceback__))
            self._start_closing(1011, "internal error")
            return
        self.task = task
        conn.produce(task)
        self.reactor.start(task)

    def data_received(self, data: bytes) -> None:
        state = self.state
        if state is CLOSED:
            return
        self._alive()
        try:
            events = self.reader.feed(data)
        except WebSocketError as error:
            self._fail(error.code, error.reason)
            return
        conn = self.conn
        limits = self.limits
        for event in events:
            kind = type(event)
            if kind is Message:
                if self.state is OPEN:
                    msg: str | bytes = event.text if event.text is not None else event.data  # type: ignore[union-attr, assignment]
                    self.queue.append(msg)
                    self.queued += len(msg)
            elif kind is Ping:
                if self.state is OPEN:
                    conn.out += encode_pong(event.payload)  # type: ignore[union-attr]
            elif kind is Close:
                self._peer_closed(event)  # type: ignore[arg-type]
        self._deliver()
        if self.state is OPEN and not conn.paused and (
                self.queued >= limits.ws_queue_bytes or len(self.queue) >= limits.ws_queue_messages):
            conn.pause_reading(True)  # the session is behind: TCP pushes back on the client
        if conn.phase is CONN_OPEN:
            conn.flush()

    def _deliver(self) -> None:
        """Hand queued messages (then the close, as ``None``) to a session waiting in ``receive``."""
        lot = self.lot
        queue = self.queue
        while lot and (queue or self.state is not OPEN):
            if queue:
                msg: str | bytes | None = queue.popleft()
                self.queued -= len(msg)  # type: ignore[arg-type]
            else:
                msg = None
            if not lot.unpark(msg) and msg is not None:
                queue.appendleft(msg)  # (nobody took it after all)
                self.queued += len(msg)
                return
            if msg is None:
                return

    def _below_half(self) -> bool:
        limits = self.limits
        return self.queued <= limits.ws_queue_bytes // 2 and len(self.queue) <= limits.ws_queue_messages // 2

    def _resume_reading(self) -> None:
        self.resume_queued = False
        conn = self.conn
        if conn.phase is CONN_OPEN and conn.paused and self._below_half():
            conn.pause_reading(False)
            self._alive()
            conn.on_readable()  # what arrived meanwhile raised no new edge

    def _alive(self) -> None:
        """A byte came in (or the connection just started): the client is alive."""
        self.awaiting_pong = False
        interval = self.limits.ws_ping_interval
        if self.state is OPEN:
            self.due = self.reactor.now + interval if interval is not None else _INF
            if not self.conn.wants_write:
                self.conn.deadline = self.due

    def _peer_closed(self, event: Close) -> None:
        self.close_code = event.code
        self.close_reason = event.reason
        if self.state is OPEN:
            # echo its code (RFC 6455 §5.5.1); an empty Close is answered with an empty one
            self.conn.out += encode_close(None if event.code == 1005 else event.code)
        self.state = CLOSED
        # Let the session see what is queued and then None, before the connection goes.
        self._deliver()
        if self.conn.phase is CONN_OPEN:
            self.conn.finish()

    def _fail(self, code: int, reason: str) -> None:
        """The client broke the protocol: Close with ``code`` and close the connection."""
        log.info("websocket on fd %d: %s; closing with %d", self.conn.fd, reason, code)
        self.queue.clear()
        self.queued = 0
        if self.state is OPEN:
            self.conn.out += encode_close(code, reason)
        self.state = CLOSED
        self.conn.finish()

    def _start_closing(self, code: int, reason: str) -> None:
        if self.state is not OPEN:
            return
        self.state = CLOSING
        conn = self.conn
        conn.out += encode_close(code, reason)
        self.due = self.reactor.now + self.limits.ws_close_timeout
        if not conn.wants_write:
            conn.deadline = self.due
        if conn.phase is CONN_OPEN:
            conn.flush()

    def session_ended(self, exc: BaseException | None) -> None:
        self.task = None
        conn = self.conn
        if conn.phase is CLOSED_CONN:
            return
        if exc is None or isinstance(exc, ShuttingDown):
            code = 1001 if self.going_away else 1000
            self._start_closing(code, "server shutting down" if self.going_away else "")
        else:
            log.error("websocket session %s on fd %d raised; closing with 1011", self.session, conn.fd,
                      exc_info=(type(exc), exc, exc.__traceback__))
            self._start_closing(1011, "internal error")

    def output_drained(self) -> None:
        self.conn.deadline = self.due

    def eof_received(self) -> None:
        """FIN, RST or half-close: the client is gone (or will read nothing more that matters)."""
        self.conn.close()

    def timed_out(self, now: float) -> None:
        conn = self.conn
        if self.state is not OPEN:
            conn.close()  # the client did not answer our Close in time
            return
        limits = self.limits
        if conn.paused:  # the session is behind, not the client
            self.due = conn.deadline = now + (limits.ws_ping_interval or 60.0)
            return
        if self.awaiting_pong:
            log.info("websocket on fd %d: no pong within %.1fs of a ping; closing with 1011", conn.fd,
                     limits.ws_ping_timeout or 0.0)
            conn.out += encode_close(1011, "keepalive ping timeout")
            self.state = CLOSED
            conn.finish()
            return
        interval = limits.ws_ping_interval
        if interval is None:
            self.due = conn.deadline = _INF
            return
        conn.out += encode_ping(b"%d" % int(now * 1000))
        timeout = limits.ws_ping_timeout
        self.awaiting_pong = timeout is not None
        self.due = now + (timeout if timeout is not None else interval)
        conn.flush()
        if conn.phase is CONN_OPEN and not conn.wants_write:
            conn.deadline = self.due

    def shutdown(self, now: float, last_call: float) -> None:
        """Graceful shutdown: the session may say a last word (`ShuttingDown`), then Close 1001."""
        self.going_away = True
        task = self.task
        if task is not None and not task.done:
            self.reactor.throw(task, ShuttingDown("the server is shutting down"))
        if self.conn.phase is CONN_OPEN:
            self._start_closing(1001, "server shutting down")

    def interrupt(self) -> None:
        self.conn.close()

    def connection_lost(self) -> None:
        self.state = CLOSED
        self.queue.clear()
        self.queued = 0
        task = self.task
        if task is not None:
            self.task = None
            self.reactor.cancel(task)

