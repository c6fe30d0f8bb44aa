"""ready(value): a token that resumes at once — alone, inside first(), and while the task is held.

No HTTP here: the reactor stays HTTP-free. Every backend (trio included: its reactor shares `_step`).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import Any

import pytest

from reactor import (
    BACKENDS,
    ParkingLot,
    Reactor,
    Task,
    first,
    make_reactor,
    park,
    ready,
    sleep,
)


@pytest.fixture(params=BACKENDS)
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    r = make_reactor(str(request.param))
    yield r
    stats = r.stats()
    r.close()
    assert stats.tasks == 0 and stats.watched_fds == 0 and stats.timers == 0, stats


class Counting(Task):
    def __init__(self, gen: Generator[Any, Any, Any]) -> None:
        super().__init__(gen, "counting")
        self.parks = 0
        self.results: list[Any] = []

    def parked(self) -> None:
        self.parks += 1

    def finished(self, value: Any) -> None:
        self.results.append(value)


def test_ready_resumes_at_once_without_parking(reactor: Reactor) -> None:
    def body() -> Generator[Any, Any, list[Any]]:
        a = yield ready(1)
        b = yield ready()
        return [a, b]

    task = Counting(body())
    reactor.start(task)  # no loop turn needed
    assert task.done and task.results == [[1, None]] and task.parks == 0


def test_ready_wins_first_at_once_and_withdraws_the_other_arms(reactor: Reactor) -> None:
    lot = ParkingLot()

    def body() -> Generator[Any, Any, Any]:
        got = yield first(park(lot), sleep(60), ready("queued"), ready("second"))
        return got

    task = Counting(body())
    reactor.start(task)
    assert task.done and task.results == [(2, "queued")]  # the first ready arm, in order
    assert len(lot) == 0 and reactor.stats().timers == 0 and reactor.stats().tasks == 0


def test_ready_while_held_is_delivered_on_release(reactor: Reactor) -> None:
    lot = ParkingLot()
    seen: list[Any] = []

    def body() -> Generator[Any, Any, None]:
        yield park(lot)
        reactor.hold(task)  # (what backpressure does while its output is behind)
        seen.append((yield ready("a")))
        seen.append((yield first(sleep(60), ready("b"))))

    task = Counting(body())
    reactor.start(task)
    lot.unpark()
    assert seen == [] and not task.done and task.parks == 2  # held: parked on the stash, not running
    reactor.release(task)  # released: "a" is delivered, and the next ready runs on at once
    assert seen == ["a", (1, "b")] and task.done


def test_a_queue_delivers_an_item_already_there_at_once_and_parks_otherwise(reactor: Reactor) -> None:
    """The pattern `ready` exists for: ``yield q.get()`` is ``ready(item)`` or ``park(lot)``."""
    items: list[str] = ["one"]
    lot = ParkingLot()

    def get() -> Any:
        return ready(items.pop(0)) if items else park(lot)

    got: list[Any] = []

    def consumer() -> Generator[Any, Any, None]:
        while len(got) < 3:
            index, value = yield first(get(), sleep(60))
            got.append(value)

    task = Counting(consumer())
    reactor.start(task)
    assert got == ["one"] and len(lot) == 1  # the queued item at once; then it waits in the lot
    lot.unpark("two")
    assert got == ["one", "two"] and len(lot) == 1
    items.append("three")  # queued while it waits: whoever queues must unpark (as a producer does)
    lot.unpark(items.pop(0))
    assert got == ["one", "two", "three"] and task.done


def test_a_ready_token_must_be_valid_in_first() -> None:
    with pytest.raises(TypeError):
        first(ready(1), "nope")  # type: ignore[arg-type]
