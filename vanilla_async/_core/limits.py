"""`Limits`: every bound the server enforces, each with a sane default."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-worker limits. Sizes are in bytes, times in seconds.

    ``max_request_line``  request line (method, target, version) → **414** beyond it.
    ``max_header_bytes``  request line plus all header fields → **431** beyond it.
    ``max_body_bytes``    declared Content-Length or decoded chunked size → **413**, decided from the
                          declared length before the body is buffered.
    ``read_timeout``      from the first byte of a request until it is complete → **408** and close
                          (a slowloris client dribbling bytes is reaped by this).
    ``idle_timeout``      a keep-alive connection with no request in progress is closed after this.
    ``write_timeout``     a response that makes no progress for this long (client not reading) is
                          abandoned and the connection closed.
    ``max_connections``   open client connections per worker → **503** and close beyond it.
    ``request_timeout``   deadline for a generator handler to finish its response (``None``: none).
                          Past it the generator is closed and the client gets **504** if nothing was
                          sent yet, else the connection is closed. Per request: set ``req.timeout``.
    ``output_high_water`` a parked generator is not resumed while more than this many bytes of its
                          connection's output are unsent (backpressure for streams); it resumes once
                          the client has read down to half of it.
    ``max_output_buffer`` a streaming connection with more unsent output than this is closed (a slow
                          or stalled reader cannot grow memory without bound).

    Off unless set (``None``):

    ``max_requests_per_connection``  after this many requests on one connection the last response
                          carries ``Connection: close`` and the connection closes once it is out (the
                          client reconnects: spreads long-lived clients over workers and lets them go
                          through a load balancer again).
    ``max_in_flight``     requests being handled or parked at once in one worker (uvicorn's
                          ``--limit-concurrency``); one more is answered **503** with ``Retry-After: 1``
                          at once, and its connection stays open.
    ``max_worker_requests``  after about this many requests a worker process is replaced gracefully
                          (uvicorn's ``--limit-max-requests``, for leaky applications): the supervisor
                          starts its replacement, then the old worker stops accepting and drains.
                          Counted four times a second, so it overshoots by what one worker serves
                          in a quarter of a second.

    HTTP/2 (`h2.H2Protocol`; advertised in our SETTINGS where the protocol has a setting for it):

    ``h2_max_concurrent_streams``  SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may have open.
    ``h2_max_header_list_size``    SETTINGS_MAX_HEADER_LIST_SIZE: decoded request header list (RFC 9113
                                   §6.5.2 size) → the connection ends (GOAWAY) beyond it.
    ``h2_header_table_size``       SETTINGS_HEADER_TABLE_SIZE: the HPACK dynamic table the client may use.
    ``h2_stream_window``           SETTINGS_INITIAL_WINDOW_SIZE: request body bytes in flight per stream.
    ``h2_connection_window``       our connection-level receive window (uploads in flight, all streams).
    ``h2_max_resets``              client RST_STREAMs per second before GOAWAY ENHANCE_YOUR_CALM
                                   ("rapid reset", CVE-2023-44487).
    ``h2_max_control_frames``      SETTINGS and PING frames per second before GOAWAY ENHANCE_YOUR_CALM
                                   (CVE-2019-9512/9515 floods).

    WebSocket (after the ``101``; the upgrade request itself is an HTTP request under ``read_timeout``):

    ``ws_max_message``    one message, reassembled and (if compressed) inflated → close **1009**.
                          Per endpoint: ``websocket.accept(..., max_message=...)``.
    ``ws_max_frame``      one frame's payload → **1009**, decided from the header before buffering.
    ``ws_queue_bytes``    received messages waiting for the handler: beyond this many bytes (or
                          ``ws_queue_messages`` messages) reading stops and TCP pushes back.
    ``ws_queue_messages`` see ``ws_queue_bytes``.
    ``ws_ping_interval``  a ping goes out after this long without a byte from the client (``None``:
                          never). Any inbound byte counts as liveness, so an upload is never pinged.
    ``ws_ping_timeout``   no byte (a pong or anything) this long after a ping → close **1011**
                          (``None``: ping, but never close for it).
    ``ws_close_timeout``  the closing handshake: after our Close, how long the client has to answer
                          with its own before the TCP connection is closed anyway.
    """

    max_request_line: int = 8 * 1024
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    read_timeout: float = 10.0
    idle_timeout: float = 60.0
    write_timeout: float = 30.0
    max_connections: int = 10_000
    request_timeout: float | None = None
    output_high_water: int = 256 * 1024
    max_output_buffer: int = 8 * 1024 * 1024
    h2_max_concurrent_streams: int = 100
    h2_max_header_list_size: int = 16 * 1024
    h2_header_table_size: int = 4096
    h2_stream_window: int = 256 * 1024
    h2_connection_window: int = 4 * 1024 * 1024
    h2_max_resets: int = 200
    h2_max_control_frames: int = 1000
    ws_max_message: int = 1024 * 1024
    ws_max_frame: int = 1024 * 1024
    ws_queue_bytes: int = 1024 * 1024
    ws_queue_messages: int = 64
    ws_ping_interval: float | None = 20.0
    ws_ping_timeout: float | None = 20.0
    ws_close_timeout: float = 5.0
    max_requests_per_connection: int | None = None
    max_in_flight: int | None = None
    max_worker_requests: int | None = None

    def __post_init__(self) -> None:
        for name in ("max_request_line", "max_header_bytes", "max_body_bytes", "max_connections", "output_high_water",
                     "max_output_buffer", "h2_max_concurrent_streams", "h2_max_header_list_size", "h2_stream_window",
                     "h2_connection_window", "h2_max_resets", "h2_max_control_frames", "ws_max_message", "ws_max_frame",
                     "ws_queue_bytes", "ws_queue_messages"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"Limits.{name} must be a positive int, got {value!r}")
        for name in ("read_timeout", "idle_timeout", "write_timeout", "ws_close_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise ConfigError(f"Limits.{name} must be a number of seconds > 0, got {value!r}")
        for name in ("max_requests_per_connection", "max_in_flight", "max_worker_requests"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ConfigError(f"Limits.{name} must be None (off) or a positive int, got {value!r}")
        if self.request_timeout is not None and (
            not isinstance(self.request_timeout, (int, float)) or not self.request_timeout > 0
        ):
            raise ConfigError(f"Limits.request_timeout must be None or seconds > 0, got {self.request_timeout!r}")
        if not isinstance(self.h2_header_table_size, int) or not 0 <= self.h2_header_table_size < 1 << 31:
            raise ConfigError(f"Limits.h2_header_table_size must be an int in [0, 2**31), got {self.h2_header_table_size!r}")
        for name in ("h2_stream_window", "h2_connection_window"):
            if getattr(self, name) > (1 << 31) - 1:
                raise ConfigError(f"Limits.{name} cannot exceed 2**31-1 (RFC 9113 §6.9.1), got {getattr(self, name)!r}")
        for name in ("ws_ping_interval", "ws_ping_timeout"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0):
                raise ConfigError(f"Limits.{name} must be None (off) or seconds > 0, got {value!r}")
        if self.output_high_water > self.max_output_buffer:
            raise ConfigError(
                f"Limits.output_high_water ({self.output_high_water}) cannot exceed max_output_buffer "
                f"({self.max_output_buffer})"
            )
        if self.max_request_line > self.max_header_bytes:
            raise ConfigError(
                f"Limits.max_request_line ({self.max_request_line}) cannot exceed max_header_bytes "
                f"({self.max_header_bytes}): the request line is part of the header section"
            )

    @property
    def max_buffered(self) -> int:
        """The most bytes one request may occupy in a connection's input buffer (head + body + framing)."""
        return self.max_header_bytes + 2 * self.max_body_bytes + 64 * 1024
