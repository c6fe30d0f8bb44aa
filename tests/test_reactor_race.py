"""first(): racing several tokens in one yield (both backends, no HTTP)."""

from __future__ import annotations

import os
import time
from typing import Any, Generator, Iterator

import pytest

from reactor import BusyResourceError, Reactor, Task, first, readable, sleep


@pytest.fixture(params=["epoll", "selectors"])
def reactor(request: pytest.FixtureRequest) -> Iterator[Reactor]:
    r = Reactor(str(request.param))
    r.call_later(5, r.stop)  # safety net: a hang fails the test instead of stalling the suite
    yield r
    stats = r.stats()
    r.close()
    assert stats.tasks == 0 and stats.watched_fds == 0 and stats.callbacks == 0, stats


def run_until_done(reactor: Reactor, gen: Generator[Any, Any, Any]) -> list[Any]:
    results: list[Any] = []

    class Collect(Task):
        def finished(self, value: Any) -> None:
            results.append(value)
            reactor.stop()

    task = reactor.start(Collect(gen))
    if not task.done:  # (a stop() before run() would be lost)
        reactor.run()
    return results


def test_the_first_token_to_fire_wins_and_the_others_are_withdrawn(reactor: Reactor) -> None:
    rd, wr = os.pipe()
    try:
        def handler() -> Generator[Any, Any, Any]:
            a = yield first(readable(rd), sleep(0.05))  # nothing to read: the sleep wins
            os.write(wr, b"x")
            b = yield first(sleep(2), readable(rd))  # the pipe wins at once, the 2 s sleep is dropped
            return a, b, reactor.stats().watched_fds

        started = time.monotonic()
        assert run_until_done(reactor, handler()) == [((1, None), (1, True), 0)]
        assert time.monotonic() - started < 1
        assert reactor.stats().timers == 1  # only the fixture's safety timer is left
    finally:
        os.close(rd)
        os.close(wr)


def test_readable_with_its_own_timeout_inside_a_race(reactor: Reactor) -> None:
    rd, wr = os.pipe()
    try:
        def handler() -> Generator[Any, Any, Any]:
            return (yield first(readable(rd, timeout=0.02), sleep(1)))

        assert run_until_done(reactor, handler()) == [(0, False)]  # the read timed out first
    finally:
        os.close(rd)
        os.close(wr)


def test_cancelling_a_racing_task_withdraws_every_arm(reactor: Reactor) -> None:
    rd, wr = os.pipe()
    cleaned: list[bool] = []
    try:
        def handler() -> Generator[Any, Any, Any]:
            try:
                yield first(readable(rd), sleep(10))
            finally:
                cleaned.append(True)

        task = reactor.spawn(handler())
        assert reactor.stats().watched_fds == 1
        reactor.cancel(task)
        assert cleaned == [True] and reactor.stats().watched_fds == 0 and reactor.stats().tasks == 0
    finally:
        os.close(rd)
        os.close(wr)


def test_an_arm_that_cannot_park_throws_into_the_racer(reactor: Reactor) -> None:
    rd, wr = os.pipe()
    try:
        def holder() -> Generator[Any, Any, Any]:
            yield readable(rd)

        def racer() -> Generator[Any, Any, Any]:
            try:
                yield first(sleep(5), readable(rd))
            except BusyResourceError as exc:
                return f"busy: {exc}"
            return "no error"

        hold = reactor.spawn(holder())
        result = run_until_done(reactor, racer())
        assert result and result[0].startswith("busy:")
        assert reactor.stats().timers == 1  # the losing sleep arm was withdrawn too
        reactor.cancel(hold)
    finally:
        os.close(rd)
        os.close(wr)


def test_first_validates_its_arguments() -> None:
    with pytest.raises(ValueError):
        first()
    with pytest.raises(TypeError):
        first(sleep(1), "not a token")  # type: ignore[arg-type]


def test_stop_before_run_is_not_lost(reactor: Reactor) -> None:
    reactor.stop()
    started = time.monotonic()
    reactor.run()  # one turn, then return — not a wait for the 5 s safety timer
    assert time.monotonic() - started < 1


# -- ParkingLot: in-process wake-ups without an fd ---------------------------------------------------------
def test_unpark_all_wakes_every_waiter_with_the_value(reactor: Reactor) -> None:
    from reactor import ParkingLot, park

    lot = ParkingLot()
    got: list[Any] = []

    def waiter(i: int) -> Generator[Any, Any, None]:
        got.append((i, (yield park(lot))))

    for i in range(1000):
        reactor.spawn(waiter(i))
    assert len(lot) == 1000 and reactor.stats().watched_fds == 0
    assert lot.unpark_all("news") == 1000
    assert got == [(i, "news") for i in range(1000)] and len(lot) == 0 and reactor.stats().tasks == 0


def test_unpark_wakes_the_oldest_waiters_first(reactor: Reactor) -> None:
    from reactor import ParkingLot, park

    lot = ParkingLot()
    order: list[int] = []

    def waiter(i: int) -> Generator[Any, Any, None]:
        yield park(lot)
        order.append(i)

    for i in range(5):
        reactor.spawn(waiter(i))
    assert lot.unpark(count=2) == 2 and order == [0, 1]
    assert lot.unpark() == 1 and order == [0, 1, 2]
    lot.unpark_all()
    assert order == [0, 1, 2, 3, 4]


def test_park_timeout_cancel_and_race_leave_the_lot(reactor: Reactor) -> None:
    from reactor import ParkingLot, park

    lot = ParkingLot()
    results: list[Any] = []

    def timed() -> Generator[Any, Any, None]:
        results.append((yield park(lot, timeout=0.02)))

    def raced() -> Generator[Any, Any, None]:
        results.append((yield first(park(lot), sleep(0.01))))

    def cancelled() -> Generator[Any, Any, None]:
        yield park(lot)

    reactor.spawn(timed())
    reactor.spawn(raced())
    victim = reactor.spawn(cancelled())
    reactor.cancel(victim)
    assert len(lot) == 2
    reactor.call_later(0.1, reactor.stop)
    reactor.run()
    assert results == [(1, None), False] and len(lot) == 0  # the race's sleep won; the park timed out


def test_a_waiter_cancelled_by_an_earlier_one_is_not_resumed(reactor: Reactor) -> None:
    from reactor import ParkingLot, park

    lot = ParkingLot()
    resumed: list[str] = []
    tasks: dict[str, Task] = {}

    def first_waiter() -> Generator[Any, Any, None]:
        yield park(lot)
        resumed.append("first")
        reactor.cancel(tasks["second"])

    def second_waiter() -> Generator[Any, Any, None]:
        yield park(lot)
        resumed.append("second")

    tasks["first"] = reactor.spawn(first_waiter())
    tasks["second"] = reactor.spawn(second_waiter())
    assert lot.unpark_all() == 1 and resumed == ["first"]
