"""The handler contract's types: what a handler is, and what it may return.

A leaf module (it imports nothing of the engine at run time), so that the config, the
connection, the worker and the toolbox can all name these types without an import cycle.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generator, Iterable, NamedTuple, Optional, Union

from reactor import Token

if TYPE_CHECKING:
    from reactor import Reactor

    from .protocol import Protocol
    from .request import Request

__all__ = ("FileBody", "Handler", "HandlerGen", "Takeover", "WorkerStart")


class FileBody(NamedTuple):
    """Return this from a handler (a generator handler: as its return value), after appending a
    response head whose Content-Length is ``length``: the server then sends ``length`` bytes of the
    open file ``fd`` from ``offset`` with ``os.sendfile``. The server owns ``fd`` from then on and
    closes it (after the last byte, when the client leaves, or at shutdown); for a HEAD request it
    is closed unsent. Requests pipelined behind it are answered after its last byte."""

    fd: int  #: an open regular file (os.open / a file object's ``os.dup(f.fileno())``)
    offset: int  #: the first byte to send
    length: int  #: how many bytes to send (what the head's Content-Length says)


class Takeover(NamedTuple):
    """Return this from a handler (a generator handler: as its return value) after appending a
    complete ``101 Switching Protocols`` response: the connection then belongs to ``protocol``
    (a `protocol.Protocol`), which gets every byte the client sends after this request — including
    any already received — and the connection's backpressure, deadlines, disconnect detection and
    shutdown. This is how WebSocket starts."""

    protocol: Protocol


#: a generator handler: it yields reactor tokens and may end by returning a `FileBody` or a `Takeover`
HandlerGen = Generator[Token, Any, Union[None, FileBody, Takeover]]

#: ``handler(req, out)``: append a response and return None, return a generator (parked on the
#: reactor), or append a response head and return a `FileBody` (sent with sendfile), or append a
#: ``101`` and return a `Takeover`
Handler = Callable[["Request", bytearray], Optional[Union[Generator[Any, Any, Any], FileBody, Takeover]]]

#: ``on_worker_start(state, reactor)``: may return clientless generators to run on the reactor
WorkerStart = Callable[[Any, "Reactor"], Union[None, Generator[Any, Any, Any], Iterable[Generator[Any, Any, Any]]]]
