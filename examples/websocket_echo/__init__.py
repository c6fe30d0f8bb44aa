"""examples.websocket_echo — ``GET /ws`` upgrades to WebSocket and echoes every message.

``GET /ws``  the WebSocket: every text and binary message comes back as it was sent
             (permessage-deflate when the client offers it).
``GET /``    a page whose script connects with ``new WebSocket``, sends a message, shows the echo,
             and reports what it saw to ``POST /report`` (so a test can drive a real browser).

Run: ``python -m examples.websocket_echo --port 8080 --workers 2 [--backend trio]``.
"""

from __future__ import annotations

import json
from typing import Any

from vanilla_async import Request, ServerConfig, respond, websocket

__all__ = ("PAGE", "config", "echo", "handler")

PAGE = b"""<!doctype html><meta charset="utf-8"><title>vanilla_async WebSocket echo</title>
<input id="m" value="hello, echo"> <button id="b">send</button><pre id="log"></pre>
<script>
"use strict";
const log = (t) => document.getElementById("log").textContent += t + "\\n";
const ws = new WebSocket(location.href.replace(/^http/, "ws").replace(/\\/[^/]*$/, "/ws"));
const send = () => ws.send(document.getElementById("m").value);
document.getElementById("b").onclick = send;
ws.onopen = () => { log("open"); send(); };
ws.onmessage = (e) => {
  log("echo: " + e.data);
  fetch("/report", {method: "POST", body: JSON.stringify({echo: e.data, extensions: ws.extensions})});
};
ws.onclose = (e) => log("closed " + e.code);
</script>
"""


def echo(ws: websocket.WebSocket) -> websocket.SessionGen:
    while True:
        msg = yield ws.receive()
        if msg is None:  # the client closed
            return
        ws.send(msg)


def handler(req: Request, out: bytearray) -> Any:
    if req.path == b"/ws":
        return websocket.accept(req, out, echo)
    if req.path == b"/" and req.method == b"GET":
        respond(out, 200, PAGE, content_type=b"text/html; charset=utf-8")
        return None
    if req.path == b"/report" and req.method == b"POST":
        reports = req.state
        if reports is not None:
            reports.append(json.loads(bytes(req.body)))
        respond(out, 204, b"")
        return None
    respond(out, 404, b"try GET / or GET /ws\n")
    return None


config = ServerConfig(handler=handler, port=8080, make_state=list)
