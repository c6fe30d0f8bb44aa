"""examples.websocket_chat — chat rooms over WebSocket, across every worker.

``GET /ws?room=R``  join room R (a name of 1..64 of ``A-Za-z0-9_-``; else **400**). Every text
                    message a member sends reaches every member of R on every worker (itself
                    included), as ``{"room": R, "text": ...}`` JSON. At most 16 KiB per message.
                    The first message a member gets is ``{"room": R, "worker_pid": PID}``.
``GET /``           a minimal chat page.

Run: ``python -m examples.websocket_chat --port 8080 --workers 4 [--backend trio]``.

Theory of operation
-------------------
Workers share nothing, so a room is a `vanilla_async.channels` channel on the host bus
(`HostBus`: unix datagram sockets between the workers, ids from a counter file), one per room name.
A member's text is published to its room's channel (``yield from channel.publish(...)``); every
worker's receiver delivers it, in id order, to the channel's listener in that worker, which fans it
out to the worker's local members of the room with `vanilla_async.websocket.broadcast`: framed once,
and compressed once for every member that negotiated deflate (``server_no_context_takeover`` is on,
so one compressed frame fits them all). The first member of a room in a worker registers the
listener (`Channel.listen`), the last one to leave removes it. A slow member is the connection's
business: backpressure, then ``max_output_buffer`` closes it.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Generator
from typing import Any, Callable

from reactor import Reactor, Token
from vanilla_async import Limits, Request, ServerConfig, query_param, respond, websocket
from vanilla_async.channels import ChannelUnavailable, HostBus, Hub, Message

__all__ = ("PAGE", "Rooms", "config", "handler", "make_config", "member")

log = logging.getLogger("examples.websocket_chat")

MAX_MESSAGE = 16 * 1024
_ROOM = re.compile(rb"[A-Za-z0-9_-]{1,64}")
DEFLATE = websocket.DeflateOptions(server_no_context_takeover=True)


class Rooms:
    """A worker's rooms (``req.state``): the channels hub, and room name → its local members."""

    def __init__(self, rendezvous: str | None = None) -> None:
        self.hub = Hub(HostBus(rendezvous, max_message=MAX_MESSAGE + 256))
        self.rooms: dict[str, set[websocket.WebSocket]] = {}
        self._stops: dict[str, Callable[[], None]] = {}
        self.pid = os.getpid()

    def join(self, room: str, ws: websocket.WebSocket) -> None:
        members = self.rooms.setdefault(room, set())
        if not members:  # the room's first member here: fan its channel out to this worker's members
            self._stops[room] = self.hub.channel(room).listen(
                lambda message: websocket.broadcast(self.rooms.get(room, ()), message.data))
        members.add(ws)

    def leave(self, room: str, ws: websocket.WebSocket) -> None:
        members = self.rooms.get(room)
        if members is None:
            return
        members.discard(ws)
        if not members:
            del self.rooms[room]
            self._stops.pop(room)()


def member(ws: websocket.WebSocket, rooms: Rooms, room: str) -> websocket.SessionGen:
    """One member of ``room``: what it says goes to the room on every worker."""
    rooms.join(room, ws)
    ws.send(json.dumps({"room": room, "worker_pid": rooms.pid}))  # hello: which worker serves it
    channel = rooms.hub.channel(room)
    try:
        while True:
            msg = yield ws.receive()
            if msg is None:
                return
            if isinstance(msg, bytes):
                ws.close(1003, "text messages only")
                return
            try:
                yield from channel.publish(json.dumps({"room": room, "text": msg}))
            except ChannelUnavailable as exc:
                log.warning("chat: room %s: %s", room, exc)
                ws.close(1013, "try again later")
                return
    finally:
        rooms.leave(room, ws)


PAGE = b"""<!doctype html><meta charset="utf-8"><title>vanilla_async chat</title>
<form id="f">room <input id="room" value="lobby" size="8"> <button id="join">join</button>
<input id="m" placeholder="message" size="40"> <button>send</button></form><pre id="log"></pre>
<script>
"use strict";
let ws = null;
const log = (t) => document.getElementById("log").textContent += t + "\\n";
document.getElementById("join").onclick = (e) => {
  e.preventDefault();
  if (ws) ws.close();
  const room = document.getElementById("room").value;
  ws = new WebSocket(location.origin.replace(/^http/, "ws") + "/ws?room=" + encodeURIComponent(room));
  ws.onopen = () => log("joined " + room);
  ws.onmessage = (m) => { const d = JSON.parse(m.data); log("[" + d.room + "] " + d.text); };
  ws.onclose = (c) => log("left (" + c.code + ")");
};
document.getElementById("f").onsubmit = (e) => {
  e.preventDefault();
  if (ws) ws.send(document.getElementById("m").value);
  document.getElementById("m").value = "";
};
</script>
"""


def handler(req: Request, out: bytearray) -> Any:
    rooms: Rooms = req.state
    if req.path == b"/ws":
        room = query_param(req.query, b"room")
        if room is None or not _ROOM.fullmatch(room):
            respond(out, 400, b"join with /ws?room=NAME (1-64 of A-Za-z0-9_-)\n")
            return None
        return websocket.accept(req, out, lambda ws: member(ws, rooms, room.decode("ascii")), deflate=DEFLATE,
                                max_message=MAX_MESSAGE)
    if req.path == b"/" and req.method == b"GET":
        respond(out, 200, PAGE, content_type=b"text/html; charset=utf-8")
        return None
    respond(out, 404, b"try GET / or GET /ws?room=NAME\n")
    return None


def on_worker_start(rooms: Rooms, reactor: Reactor) -> list[Generator[Token, Any, None]]:
    log.info("chat: worker pid %d serves rooms over the host bus", rooms.pid)
    return rooms.hub.tasks(reactor)


def make_config(rendezvous: str | None = None, **fields: Any) -> ServerConfig:
    """``rendezvous``: the host bus's directory (default: one per server; ``$CHAT_RENDEZVOUS``)."""
    def make_state() -> Rooms:
        return Rooms(rendezvous or os.environ.get("CHAT_RENDEZVOUS") or None)

    fields.setdefault("limits", Limits(max_connections=50_000))
    fields.setdefault("port", 8080)
    return ServerConfig(handler=handler, make_state=make_state, on_worker_start=on_worker_start,
                        on_worker_stop=lambda rooms: rooms.hub.close(), **fields)


config = make_config()
