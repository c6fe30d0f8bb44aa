"""examples.websocket_chat — chat rooms over WebSocket, across every worker.

``GET /ws?room=R``  join room R (a name of 1..64 of ``A-Za-z0-9_-``; else **400**). Every text
                    message a member sends reaches every member of R on every worker (itself
                    included), as ``{"room": R, "text": ...}`` JSON. At most 16 KiB per message.
                    The first message a member gets is ``{"room": R, "worker_pid": PID}``.
``GET /``           a minimal chat page.

Run: ``python -m examples.websocket_chat --port 8080 --workers 4 [--backend trio]``.

Theory of operation
-------------------
Workers share nothing, so a message crosses processes the way `examples.sse` does it, and this
example reuses its machinery: each worker binds an ``AF_UNIX``/``SOCK_DGRAM`` socket in a per-server
rendezvous directory (`examples.sse.Hub`), a clientless task reads datagrams (`examples.sse.receive`)
and hands each to `ChatHub.publish`. A member's message is sent as one datagram ``room\\n text`` to
every worker's socket, its own included (`send_to_peers`, which waits out a full peer queue with
``yield writable(sock)``). A worker fans a datagram out to its local members of that room with
`vanilla_async.websocket.broadcast`: framed once, and compressed once for every member that
negotiated deflate (``server_no_context_takeover`` is on, so one compressed frame fits them all).
A slow member is the connection's business: backpressure, then ``max_output_buffer`` closes it.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import time
from collections.abc import Generator
from typing import Any

from examples.sse import Hub, Settings, receive
from reactor import Reactor, Token
from vanilla_async import (
    Limits,
    Request,
    ServerConfig,
    query_param,
    respond,
    websocket,
    writable,
)

__all__ = ("PAGE", "ChatHub", "config", "handler", "make_config", "member", "send_to_peers")

log = logging.getLogger("examples.websocket_chat")

MAX_MESSAGE = 16 * 1024
_ROOM = re.compile(rb"[A-Za-z0-9_-]{1,64}")
DEFLATE = websocket.DeflateOptions(server_no_context_takeover=True)


class ChatHub(Hub):
    """A worker's rooms (``req.state``): room name → its local members."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.rooms: dict[str, set[websocket.WebSocket]] = {}

    def publish(self, message: bytes) -> None:
        """A datagram from some worker: send it to this worker's members of its room."""
        self.delivered += 1
        room, _, text = message.partition(b"\n")
        members = self.rooms.get(room.decode("ascii", "replace"))
        if members:
            payload = json.dumps({"room": room.decode("ascii"), "text": text.decode("utf-8")})
            websocket.broadcast(members, payload)

    def wake(self) -> None:
        """(sse's receiver calls this after a batch: nothing to wake here, broadcast already sent)"""


def send_to_peers(hub: ChatHub, datagram: bytes) -> Generator[Token, Any, int]:
    """Send ``datagram`` to every worker (this one too); how many took it."""
    notified = 0
    for path in hub.peers():
        sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            sender.setblocking(False)
            sender.connect(path)
            deadline = time.monotonic() + hub.settings.send_timeout
            while True:
                try:
                    sender.send(datagram)
                    notified += 1
                    break
                except BlockingIOError:  # the peer's queue is full: wait for room
                    left = deadline - time.monotonic()
                    if not (left > 0 and (yield writable(sender, timeout=left))):
                        log.warning("chat: %s did not take a message in time", path)
                        break
        except (ConnectionRefusedError, FileNotFoundError):
            hub.forget_if_dead(path)
        except OSError as exc:
            log.warning("chat: could not send to %s: %s", path, exc)
        finally:
            sender.close()
    return notified


def member(ws: websocket.WebSocket, hub: ChatHub, room: str) -> websocket.SessionGen:
    """One member of ``room``: what it says goes to the room on every worker."""
    members = hub.rooms.setdefault(room, set())
    members.add(ws)
    ws.send(json.dumps({"room": room, "worker_pid": hub.pid}))  # hello: which worker serves it
    try:
        while True:
            msg = yield ws.receive()
            if msg is None:
                return
            if isinstance(msg, bytes):
                ws.close(1003, "text messages only")
                return
            yield from send_to_peers(hub, room.encode("ascii") + b"\n" + msg.encode("utf-8"))
    finally:
        members.discard(ws)
        if not members:
            hub.rooms.pop(room, None)


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
    hub: ChatHub = req.state
    if req.path == b"/ws":
        room = query_param(req.query, b"room")
        if room is None or not _ROOM.fullmatch(room):
            respond(out, 400, b"join with /ws?room=NAME (1-64 of A-Za-z0-9_-)\n")
            return None
        return websocket.accept(req, out, lambda ws: member(ws, hub, room.decode("ascii")), deflate=DEFLATE,
                                max_message=MAX_MESSAGE)
    if req.path == b"/" and req.method == b"GET":
        respond(out, 200, PAGE, content_type=b"text/html; charset=utf-8")
        return None
    respond(out, 404, b"try GET / or GET /ws?room=NAME\n")
    return None


def on_worker_start(hub: ChatHub, reactor: Reactor) -> list[Generator[Token, Any, None]]:
    log.info("chat: worker pid %d receives room messages on %s", hub.pid, hub.path)
    return [receive(hub)]


def make_config(settings: Settings | None = None, **fields: Any) -> ServerConfig:
    def make_state() -> ChatHub:
        return ChatHub(settings or Settings.from_env())

    fields.setdefault("limits", Limits(max_connections=50_000))
    fields.setdefault("port", 8080)
    return ServerConfig(handler=handler, make_state=make_state, on_worker_start=on_worker_start, **fields)


config = make_config()
