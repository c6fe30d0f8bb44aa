"""The HTTP adapter of examples.hexagonal: requests in, service calls, JSON out.

Theory of operation
-------------------
`handler` parses the request (path, method, JSON body) and either answers at once — a malformed
request never reaches the service — or builds the endpoint: a `Step` that calls the service and
returns an `Answer`. What happens to that step depends on the repository behind the service,
which `App.inline` records when the app is composed:

* **in-memory** (``inline=True``): the step never waits, so the handler runs it to the end with
  `run_now` and appends the response — a plain synchronous handler, no task, no parking;
* **Postgres** (``inline=False``): the handler returns a generator that ``yield from``-s the step;
  the worker parks the request while its query is in flight.

Both go through `answered`, the one place where domain errors become statuses: `TodoNotFound`
**404**, `InvalidTodo` **422**, `StorageUnavailable` **503** with ``Retry-After: 1``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Generator, NamedTuple, Sequence

from reactor import Reactor, Token
from vanilla_async import Request, respond
from vanilla_async.pg import Database, PgGen

from .domain import InvalidTodo, Step, StorageUnavailable, TodoNotFound, TodoService, run_now
from .memory import InMemoryTodoRepository
from .postgres import PostgresTodoRepository

JSON = b"application/json"
RETRY_AFTER = (("Retry-After", "1"),)
_ID = re.compile(rb"[1-9][0-9]{0,17}")  # a positive bigint (no sign, no leading zeros)


class Answer(NamedTuple):
    """What an endpoint decided: a status, a JSON-able body (``None``: no body) and extra headers."""

    status: int
    body: object = None
    headers: Sequence[tuple[str, str]] = ()


def error(status: int, message: str, headers: Sequence[tuple[str, str]] = ()) -> Answer:
    return Answer(status, {"error": message}, headers)


@dataclass(frozen=True)
class App:
    """What a worker serves with (its ``req.state``): the service, and how to run its steps."""

    service: TodoService
    inline: bool  #: the repository never waits: run each step to its end inside the handler
    database: Database | None = None  #: the connection whose pump the worker must run (Postgres)


def memory_app() -> App:
    return App(TodoService(InMemoryTodoRepository()), inline=True)


def postgres_app(dsn: str) -> App:
    db = Database(dsn)  # after the fork: one connection per worker
    return App(TodoService(PostgresTodoRepository(db)), inline=False, database=db)


def start_pump(app: App, reactor: Reactor) -> PgGen | None:
    """``on_worker_start``: the task that owns the database connection, when there is one."""
    return app.database.pump(reactor) if app.database is not None else None


# -- the endpoints: steps that call the service and return an Answer ---------------------------------------
def list_todos(service: TodoService) -> Step[Answer]:
    todos = yield from service.list_todos()
    return Answer(200, [todo.as_json() for todo in todos])


def create(service: TodoService, title: object) -> Step[Answer]:
    todo = yield from service.create(title)
    return Answer(201, todo.as_json(), (("Location", f"/todos/{todo.id}"),))


def get(service: TodoService, todo_id: int) -> Step[Answer]:
    todo = yield from service.get(todo_id)
    return Answer(200, todo.as_json())


def mark(service: TodoService, todo_id: int, done: bool) -> Step[Answer]:
    todo = yield from service.mark(todo_id, done)
    return Answer(200, todo.as_json())


def delete(service: TodoService, todo_id: int) -> Step[Answer]:
    yield from service.delete(todo_id)
    return Answer(204)


def answered(work: Step[Answer]) -> Step[Answer]:
    """``work``'s answer, with the domain's errors turned into their statuses."""
    try:
        answer: Answer = yield from work
    except TodoNotFound as exc:
        return error(404, str(exc))
    except InvalidTodo as exc:
        return error(422, str(exc))
    except StorageUnavailable as exc:
        return error(503, str(exc), RETRY_AFTER)
    return answer


def send(out: bytearray, answer: Answer) -> None:
    if answer.body is None:
        respond(out, answer.status, headers=answer.headers)
    else:
        body = json.dumps(answer.body, ensure_ascii=False).encode("utf-8")
        respond(out, answer.status, body, content_type=JSON, headers=answer.headers)


def respond_later(out: bytearray, work: Step[Answer]) -> Generator[Token, Any, None]:
    send(out, (yield from answered(work)))


# -- parsing -----------------------------------------------------------------------------------------------
def json_object(req: Request) -> dict[str, Any] | Answer:
    """The request body as a JSON object, or the error answer (415 not JSON, 400 malformed)."""
    content_type = req.header(b"content-type") or b""
    if content_type.split(b";", 1)[0].strip().lower() != JSON:
        return error(415, "send the body as Content-Type: application/json")
    try:
        value = json.loads(bytes(req.body))
    except (ValueError, RecursionError):  # (UnicodeDecodeError is a ValueError)
        return error(400, "the body is not valid JSON")
    if not isinstance(value, dict):
        return error(400, "the body must be a JSON object")
    return value


def route(req: Request, service: TodoService) -> Answer | Step[Answer]:
    path = req.path
    method = req.method
    if path == b"/todos":
        if method == b"GET":
            return list_todos(service)
        if method == b"POST":
            body = json_object(req)
            return body if isinstance(body, Answer) else create(service, body.get("title"))
        return error(405, "/todos answers GET and POST", (("Allow", "GET, POST"),))
    if not path.startswith(b"/todos/"):
        return error(404, "not found; try /todos")
    raw = path[7:]
    if _ID.fullmatch(raw) is None:
        return error(404, f"no todo {raw[:40].decode('latin-1')!r}: ids are positive whole numbers")
    todo_id = int(raw)
    if method == b"GET":
        return get(service, todo_id)
    if method == b"PATCH":
        body = json_object(req)
        if isinstance(body, Answer):
            return body
        done = body.get("done")
        if not isinstance(done, bool):
            return error(400, 'send {"done": true} or {"done": false}')
        return mark(service, todo_id, done)
    if method == b"DELETE":
        return delete(service, todo_id)
    return error(405, "/todos/ID answers GET, PATCH and DELETE", (("Allow", "GET, PATCH, DELETE"),))


def handler(req: Request, out: bytearray) -> Generator[Token, Any, None] | None:
    app: App = req.state
    work = route(req, app.service)
    if isinstance(work, Answer):
        send(out, work)
        return None
    if app.inline:
        send(out, run_now(answered(work)))
        return None
    return respond_later(out, work)
