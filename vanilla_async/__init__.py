"""vanilla_async: a minimalist, very fast HTTP/1.1 prefork server for Python.

A synchronous handler appends a complete raw response to a server-owned ``bytearray``; an
asynchronous handler is a generator that yields `reactor` tokens and is parked and resumed on the
worker's event loop. See README.md and DESIGN.md.
"""

from reactor import ParkingLot, first, park, readable, sleep, sleep_until, writable

from ._config import ServerConfig
from ._connection import FileBody
from ._framer import Need, frame
from ._limits import Limits
from ._request import Request, query_param
from ._response import StaticResponse, date_header, error_response, header_line, respond, status_line
from ._server import Server
from ._worker import Worker
from .errors import ConfigError, HandlerError, ProtocolError, ResponseError, ShuttingDown, VanillaError

__all__ = (
    "ConfigError", "FileBody", "HandlerError", "Limits", "Need", "ProtocolError", "Request", "ResponseError", "Server",
    "ServerConfig", "ShuttingDown", "StaticResponse", "VanillaError", "Worker", "date_header", "error_response", "frame",
    "first", "header_line", "park", "ParkingLot", "query_param", "readable", "respond", "sleep", "sleep_until", "status_line", "writable",
)
