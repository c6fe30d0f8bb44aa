"""The core of examples.hexagonal: a todo service and the repository *port* it depends on.

Theory of operation
-------------------
Nothing here knows about HTTP, sockets, SQL or the reactor. The service talks to storage only
through `TodoRepository`, a `typing.Protocol` (the *port*); the *adapters* (examples.hexagonal.memory,
examples.hexagonal.postgres) implement it, and the HTTP adapter (examples.hexagonal.web) drives
the service.

**One calling convention for both worlds.** A Postgres query has to wait for the database, and in
vanilla_async waiting means a generator handler that yields reactor tokens. So every repository
method — and so every service method — is a generator that *returns* its result (a `Step`):
``todo = yield from repo.get(42)``. The Postgres adapter really yields (while its query is in
flight); the in-memory adapter's generators never yield (``yield from ()``), so a `Step` over it
completes the moment it is started. `run_now` drives such a step to its result in plain
synchronous code (a sync handler, a script, a test) and refuses — `NeedsReactor` — a step that
tries to wait. The service is written once, with ``yield from``, and is correct for both.

Errors are the domain's own (`TodoError` and its subclasses); an adapter translates its
infrastructure's failures into `StorageUnavailable`, so callers never see a driver's exceptions.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any, Generator, Protocol, TypeVar

from vanilla_async import VanillaError

T = TypeVar("T")

#: A unit of work that may wait: a generator that yields reactor tokens and returns a ``T``.
Step = Generator[Any, Any, T]

MAX_TITLE = 200
MAX_LISTED = 1000


@dataclass(frozen=True, slots=True)
class Todo:
    """One todo item (an immutable value: a change makes a new one)."""

    id: int
    title: str
    done: bool = False

    def as_json(self) -> dict[str, object]:
        return {"id": self.id, "title": self.title, "done": self.done}


class TodoError(VanillaError):
    """Base class of the todo domain's errors."""


class InvalidTodo(TodoError):
    """The input breaks a rule of the domain (e.g. an empty title); the message says which."""


class TodoNotFound(TodoError):
    """No todo has that id."""

    def __init__(self, todo_id: int) -> None:
        super().__init__(f"no todo {todo_id}")
        self.todo_id = todo_id


class StorageUnavailable(TodoError):
    """The repository cannot reach its storage right now (an adapter's failure, translated); retry later."""


class NeedsReactor(TodoError):
    """`run_now` was given a step that waits (it yielded a token): return it from a handler instead."""


class TodoRepository(Protocol):
    """The port: where todos are kept. Every method is a `Step` (see the module docstring)."""

    def add(self, title: str) -> Step[Todo]:
        """Store a new todo (not done) under a fresh id; return it."""
        ...

    def get(self, todo_id: int) -> Step[Todo | None]:
        ...

    def list_todos(self, limit: int) -> Step[list[Todo]]:
        """Up to ``limit`` todos, in id order."""
        ...

    def set_done(self, todo_id: int, done: bool) -> Step[Todo | None]:
        """Mark a todo done or not; the updated todo, ``None`` when there is no such todo."""
        ...

    def delete(self, todo_id: int) -> Step[bool]:
        """Remove a todo; ``False`` when there was none."""
        ...


def clean_title(title: object) -> str:
    """The title as stored: a string, stripped, 1..MAX_TITLE characters, no control characters."""
    if not isinstance(title, str):
        raise InvalidTodo(f"title must be a string, got {type(title).__name__}")
    title = title.strip()
    if not title:
        raise InvalidTodo("title must not be empty")
    if len(title) > MAX_TITLE:
        raise InvalidTodo(f"title must be at most {MAX_TITLE} characters, got {len(title)}")
    if any(unicodedata.category(c) == "Cc" for c in title):
        raise InvalidTodo("title must not contain control characters (newlines, tabs, NUL...)")
    return title


class TodoService:
    """The use cases. Each method is a `Step`: ``todo = yield from service.create("milk")``."""

    def __init__(self, repository: TodoRepository) -> None:
        self.repository = repository

    def create(self, title: object) -> Step[Todo]:
        todo = yield from self.repository.add(clean_title(title))
        return todo

    def get(self, todo_id: int) -> Step[Todo]:
        todo = yield from self.repository.get(todo_id)
        if todo is None:
            raise TodoNotFound(todo_id)
        return todo

    def list_todos(self) -> Step[list[Todo]]:
        """Every todo, in id order (at most MAX_LISTED)."""
        todos = yield from self.repository.list_todos(MAX_LISTED)
        return todos

    def mark(self, todo_id: int, done: bool) -> Step[Todo]:
        todo = yield from self.repository.set_done(todo_id, done)
        if todo is None:
            raise TodoNotFound(todo_id)
        return todo

    def delete(self, todo_id: int) -> Step[None]:
        if not (yield from self.repository.delete(todo_id)):
            raise TodoNotFound(todo_id)


def run_now(step: Step[T]) -> T:
    """The result of a step that does not wait (over the in-memory adapter), in synchronous code.

    Raises `NeedsReactor` (after closing the step) if it yields a token: such a step must be
    returned from a generator handler, or driven on a reactor.
    """
    try:
        token = step.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    step.close()
    raise NeedsReactor(
        f"this step waits ({token!r}): its repository does I/O. Return it from a generator handler "
        "(yield from it) instead of calling run_now()"
    )
