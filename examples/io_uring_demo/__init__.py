"""examples.io_uring_demo — the tiny benchmark app (`examples.tiny`) served on the io_uring backend.

Run: ``python -m examples.io_uring_demo --port 8080 --workers 1`` (``--backend epoll`` runs the very
same app on epoll, for comparison). ``GET /`` → ``Hello, World!``, ``GET /json`` → ~1 KB of JSON,
as in `examples.tiny`; ``GET /uring`` → this worker's backend and its io_uring counters as JSON.

What it measures
----------------
Only the *readiness* path differs from epoll: every request still costs the same Python (framing,
handler, one ``send``), but the readiness of the connections arrives as completions of multishot
poll requests read from a mmapped ring instead of the list ``epoll_wait`` returns, and
registrations cost no system call of their own (one ``io_uring_enter`` per loop turn submits them
and waits). Under ``wrk`` (plaintext, keep-alive, 64 connections, one worker, each pinned to its own
core) the comparison is requests/s and server CPU time per request against ``--backend epoll``.
The counters at ``/uring`` say whether the rings were large enough: ``multishot_restarts`` (polls
the kernel ended because the completion ring was full, re-added by the backend), ``early_submits``
(times the submission ring filled up between two loop turns) and ``stale_completions`` (events of
connections already closed, dropped). All three stay near zero on a healthy worker.
"""

from __future__ import annotations

import json
from typing import Any

from examples.tiny import handler as tiny_handler
from reactor import Reactor
from vanilla_async import Request, ServerConfig, respond

__all__ = ("config", "handler", "make_state", "on_worker_start", "uring_counters")


def make_state() -> dict[str, Any]:
    return {}


def on_worker_start(state: dict[str, Any], reactor: Reactor) -> None:
    state["reactor"] = reactor  # for /uring: the handler reads this worker's backend counters


def uring_counters(reactor: Reactor) -> dict[str, object]:
    """The backend's name and, on io_uring, its counters (see the module docstring)."""
    backend = reactor.backend
    doc: dict[str, object] = {"backend": reactor.backend_name}
    for name in ("multishot_restarts", "early_submits", "stale_completions", "registrations"):
        if hasattr(backend, name):
            doc[name] = getattr(backend, name)
    return doc


def handler(req: Request, out: bytearray) -> None:
    if req.target == b"/uring":
        reactor = req.state.get("reactor") if isinstance(req.state, dict) else None
        doc = uring_counters(reactor) if reactor is not None else {"backend": None}
        respond(out, 200, json.dumps(doc).encode(), content_type=b"application/json")
    else:
        tiny_handler(req, out)


config = ServerConfig(handler=handler, port=8080, backend="io_uring", make_state=make_state,
                      on_worker_start=on_worker_start)
