"""WebSocket for handlers: accept an upgrade, then run a session generator over the connection.

    from vanilla_async import websocket

    def echo(ws: websocket.WebSocket) -> websocket.SessionGen:
        while True:
            msg = yield ws.receive()          # str (text), bytes (binary), None: the client closed
            if msg is None:
                return
            ws.send(msg)

    def handler(req, out):
        if req.path == b"/ws":
            return websocket.accept(req, out, echo)     # 101 + Takeover, or a plain 400/403/426
        ...

Theory of operation
-------------------
`accept` validates the opening handshake with the codec (`wscodec.check_upgrade`). A bad one gets a
plain HTTP answer — 400 malformed, 426 wrong version, 403 Origin not allowed — and the connection
stays HTTP/1.1 (`accept` returns ``None``, which is what a handler returns after appending a
response). A good one appends the ``101`` and returns a `Takeover` of a `WebSocket` protocol: the
connection speaks WebSocket from the next byte on, and ``session(ws)`` runs as a generator on the
worker's reactor.

A session *receives with a token*: ``yield ws.receive()`` gives the next message — at once if one is
already queued (the token is then ``ready(msg)``), else when it arrives. Because it is a token, a
session combines messages with broadcasts and timers in one yield::

    i, value = yield first(ws.receive(), park(room.lot), sleep(30))

It *sends by appending frames*: ``ws.send_text``, ``ws.send_bytes``, ``ws.send`` (by type), and
``ws.close(code, reason)``. Everything else is the connection's: pongs, the closing handshake (1000
when the session returns, 1001 at shutdown, 1011 when it raises; the client's code echoed), protocol
errors (1002/1007/1009), keepalive pings, backpressure, the limits of `Limits` (``ws_*``), and a
client that vanishes (its session is closed at once: ``finally`` blocks run). See
`vanilla_async._core.websocket` for how.

`broadcast` sends one message to many sockets and encodes it once: one plain frame for the sockets
without compression, and one compressed frame per window size for the sockets that negotiated
``server_no_context_takeover`` (``DeflateOptions(server_no_context_takeover=True)`` makes every
deflate client one of those); a socket whose compressor keeps its context compresses on its own.
"""

from __future__ import annotations

from collections.abc import Collection, Generator, Iterable, Sequence
from typing import Any

from ._core.handler import Takeover
from ._core.request import Request
from ._core.websocket import Session, WebSocket
from ._core.wscodec import OP_BINARY, OP_TEXT, Reject, check_upgrade, encode_frame
from ._core.wsdeflate import DeflateOptions, broadcast_frame

__all__ = ("DEFAULT_DEFLATE", "DeflateOptions", "Session", "SessionGen", "WebSocket", "accept", "broadcast")

#: what a session generator is
SessionGen = Generator[Any, Any, Any]

#: permessage-deflate as `accept` offers it by default (under 64 KiB of zlib state per connection)
DEFAULT_DEFLATE = DeflateOptions()


def accept(req: Request, out: bytearray, session: Session, *, subprotocols: Sequence[str] = (),
           origins: Collection[str] | None = None, deflate: DeflateOptions | None = DEFAULT_DEFLATE,
           max_message: int | None = None) -> Takeover | None:
    """Answer a WebSocket upgrade: append the ``101`` and return the `Takeover` (return it from the
    handler), or append a 400/403/426 and return ``None`` (the connection stays HTTP).

    ``subprotocols``: the app's, by preference (the first one the client offers is chosen).
    ``origins``: the allowed ``Origin`` values (``None``: any; a browser-facing app should list them).
    ``deflate``: permessage-deflate, negotiated when the client offers it (``None``: never).
    ``max_message``: this endpoint's message limit (default ``Limits.ws_max_message``).
    """
    if max_message is not None and (not isinstance(max_message, int) or max_message <= 0):
        raise ValueError(f"max_message must be a positive number of bytes, got {max_message!r}")
    verdict = check_upgrade(req, subprotocols=subprotocols, origins=origins, deflate=deflate)
    if isinstance(verdict, Reject):
        out += verdict.response()
        return None
    out += verdict.response()
    return Takeover(WebSocket(session, params=verdict.deflate_params, subprotocol=verdict.subprotocol,
                              max_message=max_message))


def broadcast(sockets: Iterable[WebSocket], message: str | bytes) -> int:
    """Send ``message`` (``str``: text, else binary) to every open socket, encoding it once where
    the sockets allow (see the module docstring). Returns how many sockets it was sent to."""
    if isinstance(message, str):
        opcode, payload = OP_TEXT, message.encode("utf-8")
    else:
        opcode, payload = OP_BINARY, bytes(message)
    plain: bytes | None = None
    compressed: dict[int, bytes] = {}
    sent = 0
    for ws in sockets:
        if not ws.open:
            continue
        params = ws.params
        if params is None:
            if plain is None:
                plain = encode_frame(opcode, payload)
            frame = plain
        elif params.server_no_context_takeover:
            bits = params.server_max_window_bits
            shared = compressed.get(bits)
            if shared is None:
                shared = compressed[bits] = broadcast_frame(opcode, payload, bits, params.mem_level, params.level)
            frame = shared
        else:
            sent += ws._send(opcode, payload)  # its compressor keeps context: only it can compress
            continue
        sent += ws.send_frame(frame)
    return sent
