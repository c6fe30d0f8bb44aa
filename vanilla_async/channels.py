"""vanilla_async.channels: broadcast channels with replay, in one worker, across workers, across hosts.

    from vanilla_async import ServerConfig, respond
    from vanilla_async.channels import ChannelUnavailable, Hub, PostgresBus

    def make_state():                                  # after the fork: one hub per worker
        return Hub(PostgresBus(dsn=os.environ["DATABASE_URL"]))   # or HostBus(), or WorkerBus()

    def on_worker_start(hub, reactor):
        return hub.tasks(reactor)                      # the bus's receiver (and its database pump)

    def handler(req, out):
        news = req.state.channel("news")
        if req.method == b"GET":
            return news.stream(req, out)               # SSE; Last-Event-ID replays what was missed
        return post(req, out, news)

    def post(req, out, news):
        try:
            ident = yield from news.publish(bytes(req.body).decode())
        except ChannelUnavailable as exc:
            respond(out, 503, str(exc), headers=[("Retry-After", "1")])
            return
        respond(out, 202, b"%d\\n" % ident)

Theory of operation
-------------------
A **channel** is a named, ordered stream of `Message`\\ s. Every message gets its id from the
**bus**: ids are dense integers (1, 2, 3, ... per channel), so "every message after N" is a
range, a gap is visible, and a browser's ``Last-Event-ID`` is simply the last id it saw. The
worker's `Hub` delivers each channel's messages to its subscribers **in id order, each once**:
a message whose id is not above the channel's ``last`` is dropped, and the bus fills any hole
before going on (or, when it cannot, says so with a *reset*, below).

Three buses, interchangeable (`Hub` takes any of them):

* `WorkerBus` — one worker. `publish` assigns the next id and delivers at once.
* `HostBus` — the workers of one host (what ``examples/sse`` did by hand). Each worker binds an
  ``AF_UNIX`` datagram socket ``<dir>/<pid>.sock``; ids come from a per-channel counter file
  ``<dir>/<channel>.seq`` taken under ``flock``. The publisher keeps the lock while it sends the
  datagram to every worker (itself included), so every receive queue holds the messages in id
  order. A peer whose queue stays full for ``send_timeout`` misses the message: it sees the
  gap at the next one and tells its subscribers *reset*.
* `PostgresBus` — every instance pointed at the same database. ``publish`` is one statement in
  one transaction: it bumps the channel's row in ``<prefix>_head`` (an upsert: the row lock
  serialises publishers, so ids commit in order and without holes — a rolled-back publish does
  not use up an id), inserts into ``<prefix>_log``, and ``pg_notify``\\ s ``[channel, id,
  event, data]`` as JSON — or only ``[channel, id]`` when that would pass NOTIFY's 8000-byte
  limit: the receiver then reads the row. Retention (``retain`` messages and/or ``max_age``
  seconds) is a ``DELETE`` in the same transaction. Notifications arrive in commit order, so a
  receiver normally delivers each straight from its payload; an id past ``last + 1`` (a lost
  notification, a big payload, a reconnection) makes it read ``id > last`` from the log.

  The listening connection is the worker's own `vanilla_async.pg.Database` (pass it in, or the
  bus makes one and runs its pump): LISTEN on a pipelined connection costs nothing, notifications
  are read by the pump that reads query results anyway, and a server with W workers x H hosts
  keeps W x H backends instead of twice that. The price is that a catch-up query queues behind
  the worker's other queries (FIFO on one connection); pass a dedicated ``Database`` if that matters.

**Faults.** When the connection drops, `vanilla_async.pg` fails queued queries and reconnects by
itself (re-issuing LISTEN). ``publish`` then raises `ChannelUnavailable` (answer 503 with
``Retry-After``); subscribers stay connected (heartbeats continue). The receiver notices the new
connection (``Database.connects``; it checks every ``poll`` seconds) and reads everything logged
after each channel's ``last``: the gap is filled in order.

**Replay.** ``subscribe(since=N)`` / ``stream`` with ``Last-Event-ID: N``: the subscriber is
registered *first* (live messages from then on collect in its queue), then the backlog after N is
read — from the channel's in-memory ring (the last ``ring`` messages this worker delivered) when it
covers N, else from the bus (the log table on PostgreSQL). Backlog, then queued live messages with
an id above the backlog's last: no gap (the backlog was read after registration, so it reaches at
least the first queued id) and no duplicate (ids are compared), on whichever host. An N older than
the retention (or newer than anything the bus ever issued: the counter of another life) gives a
**reset** message first (``event: reset``, its id the one before the oldest retained message,
data ``{"since": N, "oldest": ...}``), then everything retained: the client should reload its state.

**Fan-out fast path.** An SSE subscriber, once caught up, is *direct*: a broadcast frames the event
once (one HTTP/1.1 chunk; the bare event for an HTTP/1.0 close-delimited stream) and hands the
same ``bytes`` to every direct subscriber's `Connection.write` (append + send now) — no generator
is resumed. A socket that does not take it keeps the rest in the connection's buffer under the
usual backpressure: past ``Limits.max_output_buffer`` the connection is closed, which closes the
subscriber's generator and unsubscribes it; nobody else waits. Generators still run for their
own work: heartbeats (their park timeout), shutdown (`Hub.close` wakes each for its ``bye``).
Queue subscribers (`Channel.subscribe`, for code that is not an SSE stream) get the message in
their bounded queue and a wake-up of their own `ParkingLot`; one that falls ``queue_limit``
behind is dropped (``dropped`` set), never a message.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import logging
import math
import os
import socket
import stat
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Generator, Protocol

from reactor import ParkingLot, Reactor, Token, park, readable, sleep, writable

from ._core.request import Request
from ._core.response import Headers, respond
from ._core.worker import connection_of
from .errors import ShuttingDown, VanillaError
from .sse import encode_comment, encode_event, start as sse_start
from .streaming import chunk

if TYPE_CHECKING:
    from ._core.connection import Connection
    from .pg import Database

__all__ = (
    "RESET_EVENT",
    "Backlog",
    "Bus",
    "Channel",
    "ChannelError",
    "ChannelUnavailable",
    "HostBus",
    "Hub",
    "Message",
    "PostgresBus",
    "Subscription",
    "WorkerBus",
)

log = logging.getLogger("vanilla_async.channels")

RESET_EVENT = "reset"  #: the event type of a reset message (the backlog a subscriber asked for is gone)
_LAST_CHUNK = b"0\r\n\r\n"
Gen = Generator[Token, Any, Any]


class ChannelError(VanillaError):
    """Base class of this module's errors."""


class ChannelUnavailable(ChannelError):
    """The bus cannot take or replay a message now (database down or busy, a peer stuck): answer
    503 with ``Retry-After`` and let the client retry."""


@dataclass(frozen=True)
class Message:
    """One published message: its bus-assigned ``id`` (dense, per channel), ``data`` and SSE ``event`` type."""

    id: int
    data: str
    event: str | None = None

    def sse(self) -> bytes:
        """The message as one SSE event (``id:`` included), without chunk framing."""
        return encode_event(self.data, id=self.id, event=self.event)


@dataclass(frozen=True)
class Backlog:
    """What a bus answers to "everything after ``since``": ``messages`` in id order; ``reset`` when
    ``since`` is older than the retention (or unknown to the bus), with ``oldest`` the first id retained
    (``head + 1`` when none is) and ``head`` the last id issued; ``more``: a page, ask again after its last."""

    messages: tuple[Message, ...]
    reset: bool = False
    oldest: int = 0
    head: int = 0
    more: bool = False


def _check_name(name: str) -> str:
    if not (name and name.isidentifier() and name.isascii() and len(name) <= 63):
        raise ChannelError(f"channel names are ASCII identifiers of 1-63 characters, got {name!r}")
    return name


def _check_event(event: str | None) -> None:
    if event is not None and ("\r" in event or "\n" in event):
        raise ChannelError(f"an event type cannot contain CR or LF: {event!r}")


# -- subscriptions and channels ------------------------------------------------------------------------
class Subscription:
    """One subscriber of a `Channel`. Queue mode: ``msg = yield from sub.next(timeout)``; `close` when done."""

    __slots__ = ("channel", "queue", "lot", "dropped", "closed", "last")

    def __init__(self, channel: Channel) -> None:
        self.channel = channel
        self.queue: deque[Message] = deque()
        self.lot = ParkingLot()
        self.dropped = False  #: fell ``queue_limit`` behind: it gets nothing more (reconnect with `last`)
        self.closed = False
        self.last = 0  #: the id of the last message taken (or written, for a stream)

    def next(self, timeout: float | None = None) -> Generator[Token, Any, Message | None]:
        """The next message, or None after ``timeout`` seconds, once dropped or closed."""
        while not self.queue:
            if self.dropped or self.closed or self.channel.hub.stopping:
                return None
            if not (yield park(self.lot, timeout)):
                return None
        message = self.queue.popleft()
        self.last = message.id
        return message

    def close(self) -> None:
        self.closed = True
        self.channel._remove(self)
        self.lot.unpark_all(False)


class Channel:
    """A named broadcast channel in one worker's `Hub` (``hub.channel(name)``)."""

    def __init__(self, hub: Hub, name: str) -> None:
        self.hub = hub
        self.name = name
        self.last: int | None = None  #: the id of the last message delivered here (None: none yet)
        self.ring: deque[Message] = deque(maxlen=hub.ring)
        self._queued: dict[Subscription, None] = {}  # queue mode (and streams catching up)
        self._direct: dict[Subscription, Connection] = {}  # caught-up chunked streams: the fast path
        self._direct_raw: dict[Subscription, Connection] = {}  # caught-up HTTP/1.0 streams
        self._listeners: list[Callable[[Message], object]] = []  # `listen` callbacks
        self.delivered = 0  #: messages delivered in this worker
        self.direct_writes = 0  #: `Connection.write` calls of the fast path

    def __len__(self) -> int:
        return len(self._queued) + len(self._direct) + len(self._direct_raw) + len(self._listeners)

    def listen(self, callback: Callable[[Message], object]) -> Callable[[], None]:
        """Call ``callback(message)`` for every message delivered here, in id order, on the worker's
        loop — a fan-out of one's own (e.g. `vanilla_async.websocket.broadcast` to a room's sockets:
        framed once). It must not block. Returns the function that stops it."""
        self._listeners.append(callback)

        def stop() -> None:
            if callback in self._listeners:
                self._listeners.remove(callback)

        return stop

    # -- publishing --------------------------------------------------------------------------------
    def publish(self, data: str, *, event: str | None = None) -> Generator[Token, Any, int]:
        """``ident = yield from channel.publish(data)``: the id the bus gave it. Raises `ChannelUnavailable`."""
        if not isinstance(data, str):
            raise ChannelError(f"message data must be str, got {type(data).__name__}")
        _check_event(event)
        return (yield from self.hub.bus.publish(self.hub, self.name, data, event))

    # -- subscribing ---------------------------------------------------------------------------------
    def subscribe(self, since: int | None = None) -> Generator[Token, Any, Subscription]:
        """``sub = yield from channel.subscribe(since=N)``: a queue subscription holding every retained
        message after N (a reset message first if N is too old), then the live ones."""
        sub = Subscription(self)
        self._queued[sub] = None
        try:
            if since is not None:
                yield from self._catch_up(sub, since)
        except BaseException:
            self._remove(sub)
            raise
        return sub

    def _catch_up(self, sub: Subscription, since: int) -> Gen:
        """Put the backlog after ``since`` in front of the live messages queued meanwhile (see the docstring)."""
        items: list[Message] = []
        last = since
        backlog = self._from_ring(since)
        while True:
            if backlog is None:
                backlog = yield from self.hub.bus.replay(self.hub, self.name, last)
            if backlog.reset and not items:
                items.append(_reset_message(since, backlog.oldest))
                last = backlog.oldest - 1
            for message in backlog.messages:
                if message.id > last:
                    items.append(message)
                    last = message.id
            if not backlog.more:
                break
            backlog = None
        pending = [m for m in sub.queue if m.id > last]
        sub.queue.clear()
        sub.queue.extend(items)
        sub.queue.extend(pending)
        if sub.queue:
            sub.lot.unpark_all()

    def _from_ring(self, since: int) -> Backlog | None:
        ring, last = self.ring, self.last
        if last is None or since > last or not ring or ring[0].id > since + 1:
            return self.hub.bus.local_backlog(self, since)
        return Backlog(tuple(itertools.islice(ring, since + 1 - ring[0].id, None)), head=last)

    def stream(
        self, req: Request, out: bytearray, *, since: int | None | str = "header", heartbeat: float | None = None,
        retry: int | None = None, headers: Headers = (), hello: Message | None = None,
    ) -> Generator[Token, Any, None]:
        """An SSE response that carries this channel: ``return channel.stream(req, out)`` from a handler.

        ``since``: ``"header"`` (default) replays after the request's ``Last-Event-ID`` when it is an
        integer; an int or None overrides it. ``hello`` is sent first (without ``id``, so it does not
        move the client's last id). Heartbeat comments every ``heartbeat`` seconds (default: the hub's);
        ``bye`` when the server shuts down; ``dropped`` if it could not keep up while catching up.
        """
        hub = self.hub
        if hub.stopping:
            respond(out, 503, b"shutting down\n", headers=[("Retry-After", "1")])
            return
        req.timeout = math.inf  # an endless stream: exempt from Limits.request_timeout
        chunked = req.minor >= 1
        first = retry if hello is None else None  # with a hello, the retry field rides in it (one chunk)
        if chunked:
            sse_start(out, retry=first, headers=headers)
        else:  # HTTP/1.0: no chunked coding, a close-delimited stream
            req.keep_alive = False
            start = bytearray()
            sse_start(start, headers=[*headers, ("Connection", "close")])
            head = bytes(start).partition(b"\r\n\r\n")[0]
            out += b"\r\n".join(h for h in head.split(b"\r\n") if not h.startswith(b"Transfer-Encoding:")) + b"\r\n\r\n"
            if first is not None:
                out += b"retry: %d\n\n" % first
        if req.method == b"HEAD":
            if chunked:
                out += _LAST_CHUNK
            return
        frame = chunk if chunked else bytes
        if hello is not None:
            out += frame(encode_event(hello.data, event=hello.event, retry=retry))
        if since == "header":
            raw = req.last_event_id
            since = int(raw) if raw is not None and raw.isdigit() and len(raw) < 19 else None
        beat = frame(encode_comment("heartbeat") + b"\n")  # (a blank line: block-splitting clients see it too)
        period = heartbeat if heartbeat is not None else hub.heartbeat
        sub = Subscription(self)
        self._queued[sub] = None
        conn = connection_of(req)
        try:
            if isinstance(since, int):
                while True:
                    try:
                        yield from self._catch_up(sub, since)
                        break
                    except ChannelUnavailable as exc:  # stay connected; try again
                        log.info("channel %s: replay after %d failed (%s); retrying", self.name, since, exc)
                        out += beat
                        yield sleep(min(period, hub.retry_delay))
                        if self.hub.stopping:  # (not `hub`: mypy would keep its narrowing across the yield)
                            break
            while True:
                queue = sub.queue
                while queue:
                    message = queue.popleft()
                    out += frame(message.sse())
                    sub.last = message.id
                if sub.dropped or hub.stopping:
                    kind, reason = ("dropped", "too slow: reconnect") if sub.dropped else ("bye", "server shutting down")
                    out += frame(encode_event(reason, event=kind))
                    if chunked:
                        out += _LAST_CHUNK
                    req.keep_alive = False
                    return
                if conn is not None and sub in self._queued:  # caught up: from now on, the fast path
                    del self._queued[sub]
                    (self._direct if chunked else self._direct_raw)[sub] = conn
                if not (yield park(sub.lot, period)):
                    out += beat
        except ShuttingDown:  # the grace period is over (the fallback when Hub.close was not called)
            out += frame(encode_event("server shutting down", event="bye"))
            if chunked:
                out += _LAST_CHUNK
            req.keep_alive = False
        finally:
            self._remove(sub)

    def _remove(self, sub: Subscription) -> None:
        self._queued.pop(sub, None)
        self._direct.pop(sub, None)
        self._direct_raw.pop(sub, None)

    # -- delivery (the bus's receiver calls these, in id order) --------------------------------------
    def deliver(self, message: Message) -> None:
        """Deliver ``message`` here if its id is new; the fast path for caught-up streams."""
        last = self.last
        if last is not None and message.id <= last:
            return
        self.last = message.id
        self.ring.append(message)
        self.delivered += 1
        encoded = message.sse()
        if self._direct:
            framed = chunk(encoded)
            writes = 0
            for sub, conn in list(self._direct.items()):
                writes += 1
                if not conn.write(framed):
                    self._direct.pop(sub, None)
            self.direct_writes += writes
        if self._direct_raw:
            for sub, conn in list(self._direct_raw.items()):
                if not conn.write(encoded):
                    self._direct_raw.pop(sub, None)
        for callback in list(self._listeners):
            try:
                callback(message)
            except Exception:
                log.exception("channel %r: a listener raised on message %d; it stays registered", self.name, message.id)
        if self._queued:
            limit = self.hub.queue_limit
            for sub in list(self._queued):
                if sub.dropped:
                    continue
                if len(sub.queue) >= limit:
                    sub.dropped = True  # drop the slow subscriber, never a message
                    sub.queue.clear()
                else:
                    sub.queue.append(message)
                sub.lot.unpark_all()

    def reset(self, since: int, oldest: int) -> None:
        """The messages after ``since`` up to ``oldest - 1`` are lost to this worker: tell every subscriber."""
        self.last = None
        self.ring.clear()
        self.deliver(_reset_message(since, oldest))

    def wake_all(self) -> None:
        for sub in [*self._queued, *self._direct, *self._direct_raw]:
            sub.lot.unpark_all(False)


def _reset_message(since: int, oldest: int) -> Message:
    return Message(oldest - 1, json.dumps({"since": since, "oldest": oldest}), RESET_EVENT)


class Hub:
    """One worker's channels over one bus (make it in ``make_state``, after the fork)."""

    def __init__(
        self, bus: Bus, *, ring: int = 1024, heartbeat: float = 15.0, queue_limit: int = 1024, retry_delay: float = 0.5,
    ) -> None:
        if ring < 1 or queue_limit < 1 or not heartbeat > 0 or not retry_delay > 0:
            raise ValueError("ring and queue_limit must be >= 1, heartbeat and retry_delay > 0")
        self.bus = bus
        retained = bus.retain
        #: messages each channel keeps in memory for replay (never more than the bus retains: a reconnect
        #: must get the same answer on every host)
        self.ring = min(ring, retained) if retained is not None else ring
        self.heartbeat = heartbeat  #: seconds between heartbeat comments on a stream
        self.queue_limit = queue_limit  #: messages a queue subscriber may fall behind before it is dropped
        self.retry_delay = retry_delay  #: pause before a failed replay is tried again
        self.channels: dict[str, Channel] = {}
        self.stopping = False
        self.pid = os.getpid()

    def channel(self, name: str) -> Channel:
        ch = self.channels.get(name)
        if ch is None:
            ch = self.channels[_check_name(name)] = Channel(self, name)
        return ch

    def tasks(self, reactor: Reactor | None = None) -> list[Gen]:
        """The clientless tasks to return from ``on_worker_start`` (the bus's receiver)."""
        return self.bus.tasks(self, reactor)

    def close(self, *_: object) -> None:
        """Shutdown began (``on_worker_stop``): every stream says bye now, every queue subscriber wakes."""
        if not self.stopping:
            self.stopping = True
            log.info("channels: worker pid %d says bye to %d subscriber(s)", self.pid,
                     sum(len(c) for c in self.channels.values()))
        for ch in list(self.channels.values()):
            ch.wake_all()


# -- buses --------------------------------------------------------------------------------------------
class Bus(Protocol):
    """What a `Hub` needs from a bus (see the three below)."""

    retain: int | None  #: the most messages per channel the bus keeps for replay (None: no count limit)

    def publish(self, hub: Hub, name: str, data: str, event: str | None) -> Generator[Token, Any, int]: ...

    def replay(self, hub: Hub, name: str, since: int) -> Generator[Token, Any, Backlog]: ...

    def local_backlog(self, channel: Channel, since: int) -> Backlog | None: ...

    def tasks(self, hub: Hub, reactor: Reactor | None) -> list[Gen]: ...

    def close(self, hub: Hub) -> None: ...


def _ring_or_reset(channel: Channel, since: int, head: int) -> Backlog:
    """The ring is all a memory bus retains: older than it (or newer than ``head``) is a reset."""
    ring = channel.ring
    if since > head or (ring and ring[0].id > since + 1) or (not ring and since < head):
        oldest = ring[0].id if ring else head + 1
        return Backlog(tuple(ring), reset=True, oldest=oldest, head=head)
    return Backlog(tuple(m for m in ring if m.id > since), head=head)


class WorkerBus:
    """Channels within one worker: publish assigns the next id and delivers at once (no I/O)."""

    retain: int | None = None  # (the hub's ring is the retention)

    def publish(self, hub: Hub, name: str, data: str, event: str | None) -> Generator[Token, Any, int]:
        yield from ()  # a generator, like every bus's publish
        ch = hub.channel(name)
        message = Message((ch.last or 0) + 1, data, event)
        ch.deliver(message)
        return message.id

    def replay(self, hub: Hub, name: str, since: int) -> Generator[Token, Any, Backlog]:
        yield from ()
        ch = hub.channel(name)
        return _ring_or_reset(ch, since, ch.last or 0)

    def local_backlog(self, channel: Channel, since: int) -> Backlog | None:
        return _ring_or_reset(channel, since, channel.last or 0)

    def tasks(self, hub: Hub, reactor: Reactor | None) -> list[Gen]:
        return []

    def close(self, hub: Hub) -> None:
        pass


def default_rendezvous() -> str:
    """``<runtime dir>/vanilla-channels-<uid>-<parent pid>``: one per server (its workers share the parent)."""
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, f"vanilla-channels-{os.getuid()}-{os.getppid()}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _pid_of(name: str) -> int | None:
    stem, dot, ext = name.partition(".")
    return int(stem) if dot and ext == "sock" and stem.isdigit() else None


class HostBus:
    """Channels across the workers of one host: unix datagrams and a counter file (see the docstring).

    ``rendezvous``: the directory shared by the workers (default `default_rendezvous`, one per server).
    Create it after the fork (in ``make_state``).
    """

    RECV_BATCH = 64  #: datagrams read per wake-up before the subscribers get to run
    retain: int | None = None  # (each worker's ring is the retention)

    def __init__(self, rendezvous: str | None = None, *, max_message: int = 64 * 1024, send_timeout: float = 1.0) -> None:
        if not 0 < max_message <= 128 * 1024:
            raise ValueError(f"max_message must be in 1..131072 bytes, got {max_message!r}")
        self.max_message = max_message
        self.send_timeout = send_timeout
        self.pid = os.getpid()
        self.own_directory = rendezvous is None
        self.directory = rendezvous or default_rendezvous()
        self.path = os.path.join(self.directory, f"{self.pid}.sock")
        if len(os.fsencode(self.path)) > 107:
            raise ValueError(f"socket path {self.path!r} is too long for AF_UNIX (108 bytes); use a shorter rendezvous")
        self._counters: dict[str, int] = {}
        self.sent = self.failed = 0  #: datagrams sent to peers, and peers that did not take one in time
        self._prepare_directory()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            self.sock.setblocking(False)
            self._forget(self.path)  # left by a dead process that had our pid
            self.sock.bind(self.path)
        except BaseException:
            self.sock.close()
            raise

    def _prepare_directory(self) -> None:
        try:
            os.mkdir(self.directory, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(self.directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o022:
            raise PermissionError(f"{self.directory} must be a directory of ours that others cannot write to")
        for name in os.listdir(self.directory):  # sockets left by killed workers
            pid = _pid_of(name)
            if pid is not None and not _pid_alive(pid):
                self._forget(os.path.join(self.directory, name))

    @staticmethod
    def _forget(path: str) -> None:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    def peers(self) -> list[str]:
        """Socket paths of every worker of this server (this one included)."""
        return [os.path.join(self.directory, n) for n in sorted(os.listdir(self.directory)) if _pid_of(n) is not None]

    def _counter(self, name: str) -> int:
        fd = self._counters.get(name)
        if fd is None:
            fd = self._counters[name] = os.open(os.path.join(self.directory, f"{name}.seq"), os.O_RDWR | os.O_CREAT, 0o600)
        return fd

    def head(self, name: str) -> int:
        """The last id issued on channel ``name`` by any worker of this host."""
        return int.from_bytes(os.pread(self._counter(name), 8, 0).ljust(8, b"\0"), "little")

    def publish(self, hub: Hub, name: str, data: str, event: str | None) -> Generator[Token, Any, int]:
        body = data.encode("utf-8")
        if len(body) > self.max_message:
            raise ChannelError(f"a message is at most {self.max_message} bytes on this bus, got {len(body)}")
        fd = self._counter(name)
        deadline = time.monotonic() + self.send_timeout
        while True:  # the lock is held across yields: other workers wait by polling, never blocking their loop
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ChannelUnavailable(f"channel {name}: another worker holds the counter") from None
                yield sleep(0.0005)
        try:
            ident = self.head(name) + 1
            os.pwrite(fd, ident.to_bytes(8, "little"), 0)
            datagram = b"%s\n%d\n%s\n%s" % (name.encode(), ident, (event or "").encode(), body)
            for path in self.peers():
                yield from self._send(path, datagram)
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return ident

    def _send(self, path: str, datagram: bytes) -> Gen:
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sender.setblocking(False)
            sender.connect(path)
            deadline = time.monotonic() + self.send_timeout
            while True:
                try:
                    sender.send(datagram)
                    self.sent += 1
                    return
                except BlockingIOError:  # the peer's queue is full: wait for room (the peer will see no gap)
                    left = deadline - time.monotonic()
                    if left > 0 and (yield writable(sender, timeout=left)):
                        continue
                    log.warning("channels: worker %s did not take a message within %.1fs", path, self.send_timeout)
                    self.failed += 1
                    return
        except (ConnectionRefusedError, FileNotFoundError):
            pid = _pid_of(os.path.basename(path))
            if pid is not None and not _pid_alive(pid):
                self._forget(path)
        except OSError as exc:
            log.warning("channels: could not send to %s: %s", path, exc if exc.errno != errno.EMSGSIZE else "too big")
            self.failed += 1
        finally:
            sender.close()

    def replay(self, hub: Hub, name: str, since: int) -> Generator[Token, Any, Backlog]:
        yield from ()
        backlog = self.local_backlog(hub.channel(name), since)
        assert backlog is not None
        return backlog

    def local_backlog(self, channel: Channel, since: int) -> Backlog | None:
        head = self.head(channel.name)
        last = channel.last or 0
        if last < since <= head:  # seen elsewhere, still on its way here: the live queue has it
            return Backlog((), head=head)
        return _ring_or_reset(channel, since, last)

    def tasks(self, hub: Hub, reactor: Reactor | None) -> list[Gen]:
        log.info("channels: worker pid %d receives broadcasts on %s", self.pid, self.path)
        return [self._receive(hub)]

    def _receive(self, hub: Hub) -> Gen:
        sock = self.sock
        size = self.max_message + 256
        try:
            while True:
                yield readable(sock)
                for _ in range(self.RECV_BATCH):
                    try:
                        datagram = sock.recv(size)
                    except BlockingIOError:
                        break
                    try:
                        name, ident, event, data = datagram.split(b"\n", 3)
                        message = Message(int(ident), data.decode("utf-8"), event.decode() or None)
                        ch = hub.channel(name.decode())
                    except (ValueError, ChannelError, UnicodeDecodeError):
                        log.warning("channels: dropped a malformed datagram of %d bytes", len(datagram))
                        continue
                    if ch.last is not None and message.id > ch.last + 1:
                        ch.reset(ch.last, message.id)  # a peer could not give us the messages between
                    ch.deliver(message)
        finally:
            self.close(hub)

    def close(self, hub: Hub) -> None:
        """Stop receiving: close and unlink the socket; the last worker out removes the directory."""
        if self.sock.fileno() < 0:
            return
        self.sock.close()
        self._forget(self.path)
        for fd in self._counters.values():
            os.close(fd)
        self._counters.clear()
        if self.own_directory and not self.peers():
            for name in os.listdir(self.directory):
                if name.endswith(".seq"):
                    self._forget(os.path.join(self.directory, name))
            try:
                os.rmdir(self.directory)
            except OSError:
                pass  # another worker is starting


class PostgresBus:
    """Channels across hosts through PostgreSQL (see the docstring).

    ``db``: the worker's `vanilla_async.pg.Database` (its pump is yours to run), or None to make one
    from ``dsn`` / ``$DATABASE_URL`` whose pump `Hub.tasks` runs. ``retain``: messages kept per
    channel; ``max_age``: seconds a message is kept (either may be None, not both). ``prefix``:
    the tables ``<prefix>_head`` and ``<prefix>_log`` and the NOTIFY channel ``<prefix>``.
    ``poll``: how often the receiver checks for a new connection while no notification comes.
    """

    PAGE = 1000  #: rows per replay or catch-up query
    NOTIFY_LIMIT = 7999  #: NOTIFY payloads must be shorter than 8000 bytes

    def __init__(
        self, db: Database | None = None, *, dsn: str | None = None, retain: int | None = 10_000,
        max_age: float | None = None, prefix: str = "vanilla_channels", poll: float = 0.25,
    ) -> None:
        from .pg import Database

        if retain is None and max_age is None:
            raise ValueError("PostgresBus needs a retention: retain= (messages) and/or max_age= (seconds)")
        if retain is not None and retain < 1 or max_age is not None and not max_age > 0:
            raise ValueError("retain must be >= 1 and max_age > 0")
        if not (prefix.isidentifier() and prefix.isascii() and prefix == prefix.lower() and len(prefix) <= 50):
            raise ValueError(f"prefix must be a lower-case ASCII identifier, got {prefix!r}")
        self.own_db = db is None
        self.db = db if db is not None else Database(dsn)
        self.retain = retain
        self.max_age = max_age
        self.prefix = prefix
        self.poll = poll
        self.ready = False  #: the tables exist (the receiver made sure)
        head, logt = f"{prefix}_head", f"{prefix}_log"
        self._schema = [
            ("SELECT pg_advisory_xact_lock(hashtext($1::text))", (prefix,)),
            (f"CREATE TABLE IF NOT EXISTS {head} (channel text PRIMARY KEY, last bigint NOT NULL)", ()),
            (f"CREATE TABLE IF NOT EXISTS {logt} (channel text NOT NULL, id bigint NOT NULL, event text,"
             f" data text NOT NULL, at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (channel, id))", ()),
        ]
        self._publish = (
            f"WITH h AS (INSERT INTO {head} AS h (channel, last) VALUES ($1::text, 1)"
            f" ON CONFLICT (channel) DO UPDATE SET last = h.last + 1 RETURNING last),"
            f" ins AS (INSERT INTO {logt} (channel, id, event, data) SELECT $1::text, last, $3::text, $2::text FROM h"
            f" RETURNING id),"
            f" m AS (SELECT id, json_build_array($1::text, id, $3::text, $2::text)::text AS payload FROM ins)"
            f" SELECT id, pg_notify('{prefix}', CASE WHEN octet_length(payload) <= {self.NOTIFY_LIMIT} THEN payload"
            f" ELSE json_build_array($1::text, id)::text END) FROM m"
        )
        conditions: list[str] = []
        params: list[int | float] = []
        if retain is not None:
            conditions.append(f"id <= (SELECT last FROM {head} WHERE channel = $1::text) - $2::bigint")
            params.append(retain)
        if max_age is not None:
            conditions.append(f"at < now() - make_interval(secs => ${len(params) + 2}::float8)")
            params.append(max_age)
        self._retention = (f"DELETE FROM {logt} WHERE channel = $1::text AND ({' OR '.join(conditions)})", tuple(params))
        self._read = f"SELECT id, event, data FROM {logt} WHERE channel = $1::text AND id > $2::bigint ORDER BY id LIMIT $3::int"
        self._bounds = (f"SELECT (SELECT last FROM {head} WHERE channel = $1::text),"
                        f" (SELECT min(id) FROM {logt} WHERE channel = $1::text)")
        self.publishes = 0

    def _unavailable(self, exc: BaseException) -> ChannelUnavailable:
        return ChannelUnavailable(f"the channel database is unavailable ({exc}); retry shortly")

    def publish(self, hub: Hub, name: str, data: str, event: str | None) -> Generator[Token, Any, int]:
        from .pg import DatabaseError

        if "\x00" in data or (event is not None and "\x00" in event):
            raise ChannelError("PostgreSQL text cannot hold NUL characters")
        retention, params = self._retention
        try:
            results = yield from self.db.run([(self._publish, (name, data, event)), (retention, (name, *params))])
        except DatabaseError as exc:
            raise self._unavailable(exc) from exc
        except Exception as exc:  # an SQL error: the tables are missing (the receiver has not started yet?)
            if self.ready:
                raise
            raise ChannelUnavailable(f"the channel tables are not ready yet ({exc}); retry shortly") from exc
        self.publishes += 1
        return int(results[0].rows[0][0])

    def replay(self, hub: Hub, name: str, since: int) -> Generator[Token, Any, Backlog]:
        from .pg import DatabaseError

        try:
            results = yield from self.db.run([(self._read, (name, since, self.PAGE)), (self._bounds, (name,))])
        except DatabaseError as exc:
            raise self._unavailable(exc) from exc
        messages = tuple(Message(int(i), d, e) for i, e, d in results[0].rows)
        head_row = results[1].rows[0]
        head, oldest = int(head_row[0] or 0), int(head_row[1] if head_row[1] is not None else (head_row[0] or 0) + 1)
        reset = since > head or oldest > since + 1
        return Backlog(messages, reset=reset, oldest=oldest, head=head, more=len(messages) == self.PAGE)

    def local_backlog(self, channel: Channel, since: int) -> Backlog | None:
        return None  # the log table is the retention: ask the database

    def tasks(self, hub: Hub, reactor: Reactor | None) -> list[Gen]:
        tasks = [self._receive(hub)]
        if self.own_db:
            tasks.insert(0, self.db.pump(reactor))
        return tasks

    def close(self, hub: Hub) -> None:
        pass

    def _receive(self, hub: Hub) -> Gen:
        from .pg import DatabaseError

        db = self.db
        while not self.ready:
            try:
                yield from db.run(self._schema)
                self.ready = True
            except DatabaseError as exc:
                log.info("channels: cannot create the tables yet (%s); retrying", exc)
                yield sleep(hub.retry_delay)
        listener = db.listener(self.prefix)
        connects = db.connects
        dirty: set[str] = set()
        log.info("channels: worker pid %d listens on PostgreSQL channel %s", hub.pid, self.prefix)
        while True:
            if connects != db.connects and db.connected:  # a new connection: what was published meanwhile
                connects = db.connects
                dirty.update(name for name, ch in hub.channels.items() if ch.last is not None)
            for name in list(dirty):
                try:
                    yield from self._catch_up(hub.channel(name))
                    dirty.discard(name)
                except DatabaseError as exc:
                    log.info("channels: catching up %s failed (%s); retrying", name, exc)
                    break
            payload = yield from listener.get(timeout=self.poll if not dirty else hub.retry_delay)
            if payload is None:
                continue
            try:
                item = json.loads(payload)
                name, ident = str(item[0]), int(item[1])
                ch = hub.channel(name)
            except (ValueError, TypeError, IndexError, ChannelError):
                log.warning("channels: ignored a malformed notification %r", payload[:80])
                continue
            if name in dirty or (ch.last is not None and ident <= ch.last):
                continue
            if len(item) == 4 and (ch.last is None or ident == ch.last + 1):
                ch.deliver(Message(ident, str(item[3]), item[2]))
                continue
            if ch.last is None:
                ch.last = ident - 1  # a big first message: read it from the log
            dirty.add(name)

    def _catch_up(self, ch: Channel) -> Gen:
        """Deliver what the log holds after ``ch.last``, in order; a reset if retention passed it."""
        while ch.last is not None:
            since = ch.last
            results = yield from self.db.run([(self._read, (ch.name, since, self.PAGE)), (self._bounds, (ch.name,))])
            rows = results[0].rows
            oldest = results[1].rows[0][1]
            if rows and int(rows[0][0]) > since + 1 or not rows and oldest is not None and int(oldest) > since + 1:
                ch.reset(since, int(rows[0][0]) if rows else int(oldest))
            for ident, event, data in rows:
                ch.deliver(Message(int(ident), data, event))
            if len(rows) < self.PAGE:
                return


