"""examples.simple2 — CRUD over users, with the boilerplate in helper utilities (`helpers`).

``GET /users``            200, the users as a JSON list
``POST /users``           201 + ``Location``, body ``{"name": str, "email": str}``
``GET /users/:id``        200 / 404
``PUT /users/:id``        200 with the replaced user / 404
``DELETE /users/:id``     204 / 404

Compared with `examples.simple`, every check lives in a helper that raises `helpers.HttpError`
and `helpers.guarded` turns it into ``{"error": ...}`` with its status (400 bad body, 415 not
JSON, 404 unknown id), so each handler is its happy path only. An email without ``@`` is 400;
a second user with the same email is **409**.

Run: ``python -m examples.simple2 --port 8080 --workers 1``, then
``curl -i -H 'Content-Type: application/json' -d '{"name": "Ada", "email": "ada@example.com"}' localhost:8080/users``.
"""

from __future__ import annotations

from typing import Any

from vanilla_async import Request, ServerConfig
from vanilla_async.routing import Params, Router

from .helpers import HttpError, guarded, json_body, path_id, reply

__all__ = ("Users", "config", "router")

FIELDS = {"name": str, "email": str}


class Users:
    """The per-worker store (``make_state``): id → user document."""

    def __init__(self) -> None:
        self.rows: dict[int, dict[str, Any]] = {}
        self.next_id = 1

    def get(self, user_id: int) -> dict[str, Any]:
        user = self.rows.get(user_id)
        if user is None:
            raise HttpError(404, f"no user {user_id}")
        return user

    def check(self, doc: dict[str, Any], user_id: int | None = None) -> None:
        if "@" not in doc["email"]:
            raise HttpError(400, "email must contain @")
        if any(u["email"] == doc["email"] and u["id"] != user_id for u in self.rows.values()):
            raise HttpError(409, f"a user with email {doc['email']!r} exists")


router = Router(not_found=lambda req, out: reply(out, 404, {"error": "no such endpoint; try /users"}))


@router.get("/users")
@guarded
def list_users(req: Request, out: bytearray) -> None:
    reply(out, 200, list(req.state.rows.values()))


@router.post("/users")
@guarded
def create_user(req: Request, out: bytearray) -> None:
    users: Users = req.state
    doc = json_body(req, FIELDS)
    users.check(doc)
    user = {"id": users.next_id, **doc}
    users.rows[users.next_id] = user
    users.next_id += 1
    reply(out, 201, user, headers=[("Location", f"/users/{user['id']}")])


@router.route("/users/:id", "GET", "PUT", "DELETE")
@guarded
def one_user(req: Request, out: bytearray, params: Params) -> None:
    users: Users = req.state
    user = users.get(path_id(params))
    if req.method == b"GET":
        reply(out, 200, user)
    elif req.method == b"DELETE":
        del users.rows[user["id"]]
        reply(out, 204)
    else:
        doc = json_body(req, FIELDS)
        users.check(doc, user["id"])
        users.rows[user["id"]] = updated = {"id": user["id"], **doc}
        reply(out, 200, updated)


config = ServerConfig(handler=router, port=8080, make_state=Users)
