"""Small helpers that take the boilerplate out of JSON CRUD handlers.

`HttpError` carries a status and a message; `guarded` turns it into a JSON error response, so a
handler can ``raise HttpError(404, ...)`` from any depth. `json_body` reads and checks a JSON
object body, `path_id` a numeric path parameter, `reply` writes a JSON response.
"""

from __future__ import annotations

import functools
import json
from typing import Any, Callable, Mapping

from vanilla_async import Request, respond
from vanilla_async.routing import Params

__all__ = ("HttpError", "JSON", "guarded", "json_body", "path_id", "reply")

JSON = b"application/json"


class HttpError(Exception):
    """Raised by a handler to answer ``status`` with ``{"error": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def reply(out: bytearray, status: int, doc: Any = None, *, headers: list[tuple[str, str]] | None = None) -> None:
    """A JSON response (no body for 204)."""
    body = b"" if status == 204 else json.dumps(doc).encode()
    respond(out, status, body, content_type=JSON, headers=headers or ())


def json_body(req: Request, fields: Mapping[str, type]) -> dict[str, Any]:
    """The body as a JSON object with exactly ``fields`` (name → type), or `HttpError` 400/415."""
    media = (req.header(b"content-type") or b"").split(b";")[0].strip().lower()
    if media != JSON:
        raise HttpError(415, "send the body as Content-Type: application/json")
    try:
        doc = json.loads(bytes(req.body))
    except (ValueError, RecursionError):
        raise HttpError(400, "the body is not valid JSON") from None
    if not isinstance(doc, dict) or set(doc) != set(fields):
        raise HttpError(400, f"expected exactly the fields {sorted(fields)}")
    for name, kind in fields.items():
        value = doc[name]
        if not isinstance(value, kind) or isinstance(value, bool) or (isinstance(value, str) and not value.strip()):
            raise HttpError(400, f"{name} must be a non-empty {kind.__name__}")
    return doc


def path_id(params: Params, name: str = "id") -> int:
    """A whole-number path parameter, or `HttpError` 404 (there is no such resource)."""
    raw = params[name]
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
        raise HttpError(404, f"no resource {raw!r}")
    return int(raw)


def guarded(handler: Callable[..., None]) -> Callable[..., None]:
    """Wrap a route handler so that `HttpError` becomes its JSON error response."""

    @functools.wraps(handler)
    def run(req: Request, out: bytearray, *params: Params) -> None:
        try:
            handler(req, out, *params)
        except HttpError as exc:
            reply(out, exc.status, {"error": exc.message})

    return run
