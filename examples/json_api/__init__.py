"""examples.json_api — a small JSON API with a size-limited multipart upload endpoint.

``GET  /api/health``        200 ``{"status": "ok"}``
``GET  /api/notes``         200, the notes as a JSON list
``POST /api/notes``         201 + ``Location``, body ``{"text": str}`` (``application/json`` only → else **415**)
``GET  /api/notes/:id``     200 / 404
``POST /api/upload``        ``multipart/form-data`` with one or more files (and optional text fields):
                            200 ``{"files": [{"field", "filename", "content_type", "size", "sha256"}],
                            "fields": {...}}``; **415** for another Content-Type, **413** for a file
                            over ``MAX_FILE`` bytes or a body over ``MAX_BODY`` (the server refuses the
                            latter from its Content-Length, before reading it), **400** for a
                            malformed body or no file at all.

Every answer, errors included, is JSON: ``{"error": "what went wrong and what to do"}``. Files
larger than ``SPOOL`` bytes are spooled to an anonymous temporary file while hashed, and closed
when the response is built; the filename in the answer is sanitised (last path component only).

Run: ``python -m examples.json_api --port 8080 --workers 2``, then
``curl -F file=@README.md localhost:8080/api/upload``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from vanilla_async import Limits, Request, ServerConfig, respond
from vanilla_async.forms import FormError, FormLimits, parse_multipart
from vanilla_async.routing import Params, Router

MAX_FILE = 256 * 1024
MAX_BODY = 1024 * 1024
SPOOL = 32 * 1024
UPLOAD_LIMITS = FormLimits(max_fields=20, max_field_bytes=4096, max_file_bytes=MAX_FILE, max_total_bytes=MAX_BODY,
                           spool_threshold=SPOOL)
JSON = b"application/json"


def send(out: bytearray, status: int, doc: Any, headers: list[tuple[str, str]] | None = None) -> None:
    respond(out, status, json.dumps(doc), content_type=JSON, headers=headers or ())


def error(out: bytearray, status: int, message: str) -> None:
    send(out, status, {"error": message})


def media_type(req: Request) -> bytes:
    return (req.header(b"content-type") or b"").split(b";")[0].strip().lower()


class Notes:
    """Per-worker notes (``make_state``)."""

    def __init__(self) -> None:
        self.notes: list[dict[str, Any]] = []


router = Router(not_found=lambda req, out: error(out, 404, "no such endpoint; see GET /api/health"))


@router.get("/api/health")
def health(req: Request, out: bytearray) -> None:
    send(out, 200, {"status": "ok"})


@router.get("/api/notes")
def list_notes(req: Request, out: bytearray) -> None:
    send(out, 200, req.state.notes)


@router.post("/api/notes")
def create_note(req: Request, out: bytearray) -> None:
    if media_type(req) != JSON:
        error(out, 415, "send the note as Content-Type: application/json")
        return
    try:
        doc = json.loads(bytes(req.body))
    except (ValueError, RecursionError):
        error(out, 400, "the body is not valid JSON")
        return
    if not isinstance(doc, dict) or not isinstance(doc.get("text"), str) or set(doc) != {"text"}:
        error(out, 400, 'expected {"text": string}')
        return
    notes: list[dict[str, Any]] = req.state.notes
    note = {"id": len(notes) + 1, "text": doc["text"]}
    notes.append(note)
    send(out, 201, note, headers=[("Location", f"/api/notes/{note['id']}")])


@router.get("/api/notes/:id")
def get_note(req: Request, out: bytearray, params: Params) -> None:
    notes: list[dict[str, Any]] = req.state.notes
    raw = params["id"]
    index = int(raw) - 1 if raw.isascii() and raw.isdigit() and len(raw) < 10 else -1
    if not 0 <= index < len(notes):
        error(out, 404, f"no note {raw!r}")
        return
    send(out, 200, notes[index])


@router.post("/api/upload")
def upload(req: Request, out: bytearray) -> None:
    try:
        with parse_multipart(req, UPLOAD_LIMITS) as form:
            if not form.file_list:
                error(out, 400, "no file in the form; send at least one part with a filename")
                return
            files = []
            for f in form.file_list:
                digest = hashlib.sha256()
                for piece in f.chunks():
                    digest.update(piece)
                files.append({"field": f.name, "filename": f.filename, "content_type": f.content_type,
                              "size": f.size, "sha256": digest.hexdigest()})
            send(out, 200, {"files": files, "fields": dict(form.fields)})
    except FormError as exc:
        error(out, exc.status, exc.reason)


config = ServerConfig(handler=router, port=8080, make_state=Notes, limits=Limits(max_body_bytes=MAX_BODY))
