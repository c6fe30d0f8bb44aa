"""The exceptions of vanilla_async, split by meaning.

* `ProtocolError` — the *client* sent something HTTP/1.1 does not allow. It carries the status to
  answer with (400, 413, 414, 431, 501, 505) and a reason for the log and the response body. The
  server answers it, closes the connection, and carries on.
* `ResponseError` — *your* code tried to build a response that would be wrong on the wire (a CR or
  LF in a header: response splitting; an invalid status). Raised where the mistake is made.
* `ConfigError` — a `ServerConfig`/`Limits` value makes no sense; raised before anything starts.
* `ShuttingDown` — thrown *into* a parked generator handler when the server's grace period ends:
  append a final message (an SSE event, the last chunk) and return; the connection then closes.
* `HandlerError` — a handler broke the handler contract (e.g. returned something that is neither
  ``None`` nor a generator). The request gets a 500.
* `WebSocketError` — the *peer* of a WebSocket connection broke RFC 6455 / RFC 7692 (an unmasked
  frame, invalid UTF-8 in a text message, a message over the size limit). It carries the close code
  to send (1002, 1007, 1009, …) and a reason; the connection sends that Close frame and closes.
"""

from __future__ import annotations

__all__ = ("ConfigError", "HandlerError", "ProtocolError", "ResponseError", "ShuttingDown", "VanillaError", "WebSocketError")


class VanillaError(Exception):
    """Base class of every vanilla_async error."""


class ProtocolError(VanillaError):
    """The client's bytes are not a valid HTTP/1.1 request; answer ``status`` and close."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


class ResponseError(VanillaError, ValueError):
    """A response under construction would be malformed (e.g. CR/LF in a header)."""


class ConfigError(VanillaError, ValueError):
    """A configuration value is invalid; the message says which and what is allowed."""


class HandlerError(VanillaError, TypeError):
    """A handler did not keep the handler contract."""


class ShuttingDown(VanillaError):
    """Raised at a parked generator's ``yield`` when the grace period of a shutdown is over.

    Catch it to say goodbye (a final SSE event, the terminating chunk) and return; whatever was
    appended is flushed before the connection closes. A generator that yields again is closed.
    """


class WebSocketError(VanillaError):
    """The WebSocket peer broke the protocol: send a Close frame with ``code`` and ``reason``, then close.

    ``code`` is an RFC 6455 §7.4.1 status code: 1002 (protocol error), 1007 (invalid payload data,
    e.g. bad UTF-8 or bad compressed data) or 1009 (message too big).
    """

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(f"{code}: {reason}")
        self.code = code
        self.reason = reason
