"""The in-memory adapter of the `TodoRepository` port: a dict, per process.

Its methods are generators that never yield (``yield from ()`` makes a function a generator that
completes at once), so they fit the port's calling convention while costing no reactor round
trip: `domain.run_now` gets their result synchronously.

Each worker process has its own store, so with more than one worker two requests may see
different todos: use it with one worker (the example's default without ``DATABASE_URL``), or in
tests.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from .domain import Step, Todo


class InMemoryTodoRepository:
    """`TodoRepository` over a dict (insertion order is id order: ids only grow)."""

    def __init__(self) -> None:
        self._todos: dict[int, Todo] = {}
        self._ids = itertools.count(1)

    def add(self, title: str) -> Step[Todo]:
        yield from ()
        todo = Todo(next(self._ids), title)
        self._todos[todo.id] = todo
        return todo

    def get(self, todo_id: int) -> Step[Todo | None]:
        yield from ()
        return self._todos.get(todo_id)

    def list_todos(self, limit: int) -> Step[list[Todo]]:
        yield from ()
        return list(itertools.islice(self._todos.values(), limit))

    def set_done(self, todo_id: int, done: bool) -> Step[Todo | None]:
        yield from ()
        todo = self._todos.get(todo_id)
        if todo is None:
            return None
        todo = self._todos[todo_id] = replace(todo, done=done)
        return todo

    def delete(self, todo_id: int) -> Step[bool]:
        yield from ()
        return self._todos.pop(todo_id, None) is not None
