"""vanilla_async: a minimalist, very fast prefork HTTP server for Python (HTTP/1.1, HTTP/2, TLS, WebSocket).

A synchronous handler appends a complete raw response to a server-owned ``bytearray``; an
asynchronous handler is a generator that yields `reactor` tokens and is parked and resumed on the
worker's event loop. The layers and the life of a request are drawn in docs/architecture.md.

This facade exports what a user's program needs: the configuration (`ServerConfig`, `Limits`,
`TLSConfig`),
`Server`, the request view and response helpers, the handler types (`Handler`, `HandlerGen`,
`FileBody`, `Takeover`), the reactor tokens a handler yields (`Token` and its seven makers:
`readable`, `writable`, `sleep`, `sleep_until`, `park`, `ready`, `first`) and the error hierarchy. The engine itself
(workers, connections, the framer) lives in the private ``vanilla_async._core``.
"""

from reactor import ParkingLot, Token, first, park, readable, ready, sleep, sleep_until, writable

from ._core.config import ServerConfig
from ._core.handler import FileBody, Handler, HandlerGen, Takeover
from ._core.limits import Limits
from ._core.request import Request, query_param
from ._core.response import StaticResponse, date_header, error_response, header_line, respond, status_line
from ._core.server import Server
from ._core.tls import TLSConfig
from .errors import ConfigError, HandlerError, ProtocolError, ResponseError, ShuttingDown, VanillaError

__all__ = (
    "ConfigError", "FileBody", "Handler", "HandlerError", "HandlerGen", "Limits", "ParkingLot", "ProtocolError",
    "Request", "ResponseError", "Server", "ServerConfig", "ShuttingDown", "StaticResponse", "TLSConfig", "Takeover", "Token", "VanillaError",
    "date_header", "error_response", "first", "header_line", "park", "query_param", "readable", "ready", "respond", "sleep",
    "sleep_until", "status_line", "writable",
)
