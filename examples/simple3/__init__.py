"""examples.simple3 — CRUD over books, every response written through a fluent response builder.

``GET /books``            200, the books as a JSON list (``?author=`` filters)
``POST /books``           201 + ``Location``, body ``{"title": str, "author": str}``
``GET /books/:id``        200 + ``ETag`` / 404; ``If-None-Match`` with that ETag → **304**
``PATCH /books/:id``      200, body: some of ``title``/``author`` / 404
``DELETE /books/:id``     204 / 404

`Reply` collects a status, headers and a body and writes them with one `respond` call::

    Reply(201).json(book).header("Location", f"/books/{book['id']}").send(out)

so handlers never format a header by hand, and every error has the same shape,
``Reply.error(404, "no book 7")``. Header names and values are validated by `respond` (a CR or LF
in a value is refused), so the builder cannot be used for header injection.

Run: ``python -m examples.simple3 --port 8080``, then
``curl -i -X POST -H 'Content-Type: application/json' -d '{"title": "Dune", "author": "Herbert"}' localhost:8080/books``.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from vanilla_async import Request, ServerConfig, respond
from vanilla_async.forms import FormError, parse_qs
from vanilla_async.routing import Params, Router

__all__ = ("Books", "Reply", "config", "router")


class Reply:
    """A response under construction; `send` appends it to the output buffer."""

    __slots__ = ("_body", "_content_type", "_headers", "status")

    def __init__(self, status: int = 200) -> None:
        self.status = status
        self._headers: list[tuple[str, str]] = []
        self._body = b""
        self._content_type = b"text/plain; charset=utf-8"

    @classmethod
    def error(cls, status: int, message: str) -> Reply:
        return cls(status).json({"error": message})

    def json(self, doc: Any) -> Reply:
        self._body = json.dumps(doc).encode()
        self._content_type = b"application/json"
        return self

    def text(self, text: str) -> Reply:
        self._body = text.encode()
        return self

    def header(self, name: str, value: str) -> Reply:
        self._headers.append((name, value))
        return self

    def etag(self) -> str:
        """A strong ETag of the body so far (and set it)."""
        tag = '"' + hashlib.sha256(self._body).hexdigest()[:16] + '"'
        self.header("ETag", tag)
        return tag

    def send(self, out: bytearray, *, head: bool = False) -> None:
        body = b"" if self.status in (204, 304) else self._body
        respond(out, self.status, body, content_type=self._content_type if body else None, headers=self._headers,
                head=head)


class Books:
    """The per-worker store (``make_state``)."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.next_id = 1


def parse(req: Request, *, partial: bool) -> dict[str, str] | Reply:
    if (req.header(b"content-type") or b"").split(b";")[0].strip().lower() != b"application/json":
        return Reply.error(415, "send Content-Type: application/json")
    try:
        doc = json.loads(bytes(req.body))
    except (ValueError, RecursionError):
        return Reply.error(400, "the body is not valid JSON")
    allowed = {"title", "author"}
    if not isinstance(doc, dict) or not set(doc) <= allowed or (not partial and set(doc) != allowed) or not doc:
        return Reply.error(400, "expected {\"title\": str, \"author\": str}" + (" (or some of them)" if partial else ""))
    if not all(isinstance(v, str) and v.strip() for v in doc.values()):
        return Reply.error(400, "title and author must be non-empty strings")
    return doc


def lookup(req: Request, params: Params) -> dict[str, Any] | None:
    raw = params["id"]
    books: Books = req.state
    return books.rows.get(int(raw)) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


router = Router(not_found=lambda req, out: Reply.error(404, "no such endpoint; try /books").send(out))


@router.get("/books")
def list_books(req: Request, out: bytearray) -> None:
    try:
        author = parse_qs(req.query).get("author")
    except FormError as exc:
        Reply.error(400, str(exc)).send(out)
        return
    rows = [b for b in req.state.rows.values() if author is None or b["author"] == author]
    Reply(200).json(rows).send(out)


@router.post("/books")
def create_book(req: Request, out: bytearray) -> None:
    doc = parse(req, partial=False)
    if isinstance(doc, Reply):
        doc.send(out)
        return
    books: Books = req.state
    book = {"id": books.next_id, **doc}
    books.rows[books.next_id] = book
    books.next_id += 1
    Reply(201).json(book).header("Location", f"/books/{book['id']}").send(out)


@router.route("/books/:id", "GET", "PATCH", "DELETE")
def one_book(req: Request, out: bytearray, params: Params) -> None:
    book = lookup(req, params)
    if book is None:
        Reply.error(404, f"no book {params['id']!r}").send(out)
        return
    if req.method == b"GET":
        reply = Reply(200).json(book)
        tag = reply.etag()
        if req.header(b"if-none-match") == tag.encode():
            reply.status = 304
        reply.send(out)
    elif req.method == b"DELETE":
        del req.state.rows[book["id"]]
        Reply(204).send(out)
    else:
        doc = parse(req, partial=True)
        if isinstance(doc, Reply):
            doc.send(out)
            return
        book.update(doc)
        Reply(200).json(book).send(out)


config = ServerConfig(handler=router, port=8080, make_state=Books)
