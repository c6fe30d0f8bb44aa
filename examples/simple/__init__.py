"""examples.simple — CRUD routing with `vanilla_async.routing.Router` over an in-memory store.

``GET /items``            200, every item as a JSON list (ordered by id)
``POST /items``           201 + ``Location: /items/ID``, body ``{"name": str, "price": number >= 0}``
``GET /items/:id``        200 with the item, 404 when there is none
``PUT /items/:id``        200 with the replaced item (same body rules as POST), 404 when there is none
``DELETE /items/:id``     204, 404 when there is none

A body that is not JSON, or JSON that is not such an object, gets **400** with a message saying
what is expected; a body that is not ``Content-Type: application/json`` gets **415**; an id that is
not a whole number gets **404** (there is no such item); another method on a known path gets
**405** with ``Allow``; any other path **404**. HEAD and OPTIONS come from the router.

The store lives in each worker (``ServerConfig.make_state``): with ``--workers 2`` two workers
hold two different stores, which is what "in-memory" means under prefork. Use a database to share.

Run: ``python -m examples.simple --port 8080 --workers 1``, then
``curl -i -H 'Content-Type: application/json' -d '{"name": "pen", "price": 1.5}' localhost:8080/items``.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

from vanilla_async import Request, ServerConfig, respond
from vanilla_async.routing import Params, Router

JSON = b"application/json"


@dataclass(frozen=True, slots=True)
class Item:
    id: int
    name: str
    price: float


class Store:
    """The per-worker store: id → `Item`."""

    def __init__(self) -> None:
        self.items: dict[int, Item] = {}
        self.next_id = 1

    def create(self, name: str, price: float) -> Item:
        item = Item(self.next_id, name, price)
        self.items[item.id] = item
        self.next_id += 1
        return item


def send_json(out: bytearray, status: int, doc: Any, *, headers: list[tuple[str, str]] | None = None,
              head: bool = False) -> None:
    respond(out, status, json.dumps(doc), content_type=JSON, headers=headers or (), head=head)


def error(out: bytearray, status: int, message: str) -> None:
    send_json(out, status, {"error": message})


class ItemIn(NamedTuple):
    name: str
    price: float


class Invalid(NamedTuple):
    status: int  #: 400 or 415
    message: str


def parse_item(req: Request) -> ItemIn | Invalid:
    """The item in a POST/PUT body, or why it is refused."""
    content_type = (req.header(b"content-type") or b"").split(b";")[0].strip().lower()
    if content_type != JSON:
        return Invalid(415, "send the item as Content-Type: application/json")
    try:
        doc = json.loads(bytes(req.body))
    except (ValueError, RecursionError):
        return Invalid(400, "the body is not valid JSON")
    if not isinstance(doc, dict) or set(doc) != {"name", "price"}:
        return Invalid(400, 'expected exactly {"name": string, "price": number}')
    name, price = doc["name"], doc["price"]
    if not isinstance(name, str) or not 1 <= len(name) <= 200:
        return Invalid(400, "name must be a string of 1 to 200 characters")
    if isinstance(price, bool) or not isinstance(price, (int, float)) or not math.isfinite(price) or price < 0:
        return Invalid(400, "price must be a finite number >= 0")
    return ItemIn(name, float(price))


def item_id(params: Params) -> int | None:
    raw = params["id"]
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 18 else None


router = Router()


@router.get("/items")
def list_items(req: Request, out: bytearray) -> None:
    store: Store = req.state
    send_json(out, 200, [asdict(item) for item in store.items.values()])


@router.post("/items")
def create_item(req: Request, out: bytearray) -> None:
    parsed = parse_item(req)
    if isinstance(parsed, Invalid):
        error(out, parsed.status, parsed.message)
        return
    store: Store = req.state
    item = store.create(parsed.name, parsed.price)
    send_json(out, 201, asdict(item), headers=[("Location", f"/items/{item.id}")])


@router.route("/items/:id", "GET", "PUT", "DELETE")
def one_item(req: Request, out: bytearray, params: Params) -> None:
    store: Store = req.state
    key = item_id(params)
    item = store.items.get(key) if key is not None else None
    if item is None:
        error(out, 404, f"no item {params['id']!r}")
        return
    method = req.method
    if method == b"GET":
        send_json(out, 200, asdict(item))
    elif method == b"DELETE":
        del store.items[item.id]
        respond(out, 204)
    else:
        parsed = parse_item(req)
        if isinstance(parsed, Invalid):
            error(out, parsed.status, parsed.message)
            return
        store.items[item.id] = updated = Item(item.id, parsed.name, parsed.price)
        send_json(out, 200, asdict(updated))


config = ServerConfig(handler=router, port=8080, make_state=Store)
