"""examples.sse — Server-Sent Events broadcast to every subscriber of every worker, or of every instance.

``GET /events``     subscribe: a ``text/event-stream`` (chunked) that starts with a ``hello`` event
                    naming the worker (``data: {"worker_pid": 1234}``), then carries every broadcast
                    as a ``message`` event with its ``id:``, a ``: heartbeat`` comment every
                    ``heartbeat`` seconds, and a final ``bye`` event when the server shuts down. A
                    reconnect with ``Last-Event-ID: N`` first gets every retained message after N (a
                    ``reset`` event first if N is older than the retention).
``POST /broadcast`` the body (UTF-8 text, at most ``max_message`` bytes → else **413**) goes to every
                    subscriber; **202** with ``{"id": N}``, the id the bus gave it (delivery happens
                    after the answer). **503** with ``Retry-After`` when the bus cannot take it now
                    (the database is down). A multi-line body becomes one ``data:`` line per line.
``GET /``           a small page that subscribes from a browser.

Run: ``python -m examples.sse --port 8080 --workers 4``, then ``curl -N localhost:8080/events`` in
one terminal and ``curl -d 'hello' localhost:8080/broadcast`` in another.

Buses (`vanilla_async.channels`; read its theory of operation):

* ``DATABASE_URL`` set, or ``--bus postgres``: every instance pointed at the same database shares the
  channel (NOTIFY wakes them; a log table keeps the last ``SSE_RETAIN`` messages, default 10,000,
  for replay on whichever instance a browser reconnects to).
* otherwise ``--bus host`` (the default): the workers of this server, over unix datagram sockets in
  ``SSE_RENDEZVOUS`` (default: one directory per server); replay from each worker's memory (the
  last 1,024 messages).
* ``--bus worker``: each worker on its own (tests, one-worker servers).

Environment (read by each worker at start): ``SSE_HEARTBEAT`` (seconds, default 15), ``SSE_BUS``
(``host``, ``postgres`` or ``worker``; ``--bus`` sets it), ``DATABASE_URL``, ``SSE_RETAIN``,
``SSE_RENDEZVOUS``. ``make_config(Settings(...))`` sets the same from code.

Slow subscribers are cut by the server's backpressure (``Limits.max_output_buffer``): the browser
reconnects with its ``Last-Event-ID`` and is replayed what it missed. Shutdown: ``on_worker_stop``
runs `Hub.close`, so every stream says ``bye`` at once instead of at the end of the grace period.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any, Generator, Mapping

from vanilla_async import Limits, Request, ServerConfig, Token, respond
from vanilla_async.channels import ChannelError, ChannelUnavailable, HostBus, Hub, Message, PostgresBus, WorkerBus
from vanilla_async.sse import encode_event

__all__ = ("BUSES", "Settings", "config", "encode_event", "handler", "make_config", "make_hub")

log = logging.getLogger("examples.sse")

BUSES = ("host", "postgres", "worker")
CHANNEL = "broadcast"


@dataclass(frozen=True)
class Settings:
    """How the example behaves; `from_env` reads the environment (see the module docstring)."""

    heartbeat: float = 15.0  #: seconds between ``: heartbeat`` comments
    bus: str = "host"  #: "host", "postgres" or "worker"
    rendezvous: str | None = None  #: the host bus's directory (None: one per server)
    database_url: str | None = None  #: the postgres bus's DSN (None: $DATABASE_URL)
    retain: int = 10_000  #: messages the postgres bus keeps for replay
    max_message: int = 64 * 1024  #: broadcast body limit (413 beyond it)

    def __post_init__(self) -> None:
        if not self.heartbeat > 0:
            raise ValueError(f"heartbeat must be > 0 seconds, got {self.heartbeat!r}")
        if self.bus not in BUSES:
            raise ValueError(f"bus must be one of {', '.join(BUSES)}, got {self.bus!r}")
        if not 0 < self.max_message <= 128 * 1024:
            raise ValueError(f"max_message must be in 1..131072 bytes, got {self.max_message!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        heartbeat = env.get("SSE_HEARTBEAT", "").strip()
        database_url = env.get("DATABASE_URL") or None
        bus = env.get("SSE_BUS") or ("postgres" if database_url else "host")
        return cls(
            heartbeat=float(heartbeat) if heartbeat else 15.0, bus=bus, rendezvous=env.get("SSE_RENDEZVOUS") or None,
            database_url=database_url, retain=int(env.get("SSE_RETAIN") or 10_000),
        )


def make_hub(settings: Settings) -> Hub:
    """The worker's hub on the chosen bus (after the fork)."""
    if settings.bus == "postgres":
        return Hub(PostgresBus(dsn=settings.database_url, retain=settings.retain), heartbeat=settings.heartbeat)
    if settings.bus == "worker":
        return Hub(WorkerBus(), heartbeat=settings.heartbeat)
    return Hub(HostBus(settings.rendezvous, max_message=settings.max_message), heartbeat=settings.heartbeat)


PAGE = b"""<!doctype html><meta charset="utf-8"><title>vanilla_async SSE</title>
<form onsubmit="fetch('/broadcast',{method:'POST',body:this.m.value});this.m.value='';return false">
<input name="m" placeholder="message" autofocus> <button>broadcast</button></form><pre id="log"></pre>
<script>const log = document.getElementById('log'), es = new EventSource('/events');
for (const kind of ['hello', 'message', 'reset', 'bye', 'dropped'])
  es.addEventListener(kind, e => log.textContent += kind + ' ' + e.lastEventId + ': ' + e.data + '\\n');</script>
"""


def handler(req: Request, out: bytearray) -> Generator[Token, Any, None] | None:
    path = req.path
    hub: Hub = req.state
    if path == b"/events":
        if req.method not in (b"GET", b"HEAD"):
            respond(out, 405, b"use GET /events\n", headers=[("Allow", "GET")])
            return None
        hello = Message(0, json.dumps({"worker_pid": hub.pid}), "hello")
        return hub.channel(CHANNEL).stream(req, out, retry=2000, hello=hello)
    if path == b"/broadcast":
        if req.method != b"POST":
            respond(out, 405, b"use POST /broadcast with the message as the body\n", headers=[("Allow", "POST")])
            return None
        return broadcast(req, out, hub)
    if path == b"/" and req.method == b"GET":
        respond(out, 200, PAGE, content_type=b"text/html; charset=utf-8")
        return None
    respond(out, 404, b"try GET /events or POST /broadcast\n")
    return None


def broadcast(req: Request, out: bytearray, hub: Hub) -> Generator[Token, Any, None]:
    """Publish the body on the channel; 202 with its id, 503 while the bus is unavailable."""
    try:
        text = bytes(req.body).decode("utf-8")
    except UnicodeDecodeError:
        respond(out, 400, b"the message must be UTF-8 text (an event stream is always UTF-8)\n")
        return
    try:
        ident = yield from hub.channel(CHANNEL).publish(text)
    except ChannelUnavailable as exc:
        respond(out, 503, f"{exc}\n", headers=[("Retry-After", "1")])
        return
    except ChannelError as exc:
        respond(out, 400, f"{exc}\n")
        return
    respond(out, 202, json.dumps({"id": ident}) + "\n", content_type=b"application/json")


def make_config(settings: Settings | None = None, **fields: Any) -> ServerConfig:
    """The example's `ServerConfig`; ``settings=None`` reads the environment in each worker."""

    def make_state() -> Hub:
        return make_hub(settings or Settings.from_env())

    limit = (settings or Settings()).max_message
    # 413 from the declared length, before buffering; a fan-out server holds many idle streams, so
    # it admits more connections per worker than the default 10,000 (each costs ~1 fd and a few KiB).
    fields.setdefault("limits", Limits(max_body_bytes=limit, max_connections=50_000))
    fields.setdefault("port", 8080)
    fields.setdefault("on_worker_stop", Hub.close)  # every stream says bye when shutdown begins
    return ServerConfig(handler=handler, make_state=make_state, on_worker_start=Hub.tasks, **fields)


config = make_config()
