"""The trio backend's own behaviour: running inside trio, trio's (virtual) clock, no starvation, signals.

Everything the three backends share — tokens, tasks, timers, fd callbacks — is in test_reactor.py,
parametrized over epoll, selectors and trio. Here are the things only trio has: a reactor that is a
trio task among others, and timer logic checked exactly and instantly on pytest-trio's
``autojump_clock`` (a virtual clock that jumps to the next deadline whenever every task waits).
"""

from __future__ import annotations

import os
import signal
import socket
from typing import Any

import pytest
import trio
import trio.testing

from reactor import ParkingLot, Task, first, make_backend, make_reactor, park, readable, sleep, sleep_until
from reactor._core import TaskGenerator
from reactor._trio import TrioReactor


class Recorder(Task):
    def __init__(self, gen: TaskGenerator) -> None:
        super().__init__(gen)
        self.outcome: list[Any] = []
        self.ended = trio.Event()  # set from the reactor's callbacks, which run inside trio

    def finished(self, value: Any) -> None:
        self.outcome.append(value)
        self.ended.set()

    def failed(self, exc: BaseException) -> None:
        self.outcome.append(exc)
        self.ended.set()


def virtual_reactor() -> TrioReactor:
    return TrioReactor(clock=trio.current_time)


async def run_until_done(reactor: TrioReactor, *tasks: Recorder) -> None:
    """Run ``reactor`` inside this trio program until every task ended, then stop it."""
    async with trio.open_nursery() as nursery:
        await nursery.start(reactor.run_async)
        for task in tasks:
            reactor.start(task)
        with trio.fail_after(100_000):  # virtual seconds: instant unless something hangs
            for task in tasks:
                await task.ended.wait()
        reactor.stop()


def test_make_reactor_and_the_backend_name() -> None:
    reactor = make_reactor("trio")
    try:
        assert isinstance(reactor, TrioReactor)
        assert reactor.backend_name == "trio" and not reactor.backend.edge_triggered
    finally:
        reactor.close()
    with pytest.raises(ValueError, match="make_reactor"):
        make_backend("trio")


@pytest.mark.trio
async def test_sleeps_follow_the_virtual_clock_exactly(autojump_clock: trio.testing.MockClock) -> None:
    reactor = virtual_reactor()
    woke: list[tuple[str, float]] = []

    def sleeper(name: str, seconds: float) -> TaskGenerator:
        yield sleep(seconds)
        woke.append((name, trio.current_time()))

    t0 = trio.current_time()
    tasks = [Recorder(sleeper("long", 3600.0)), Recorder(sleeper("short", 5.0)), Recorder(sleeper("mid", 60.0))]
    await run_until_done(reactor, *tasks)
    assert [name for name, _ in woke] == ["short", "mid", "long"]
    assert [round(at - t0, 6) for _, at in woke] == [5.0, 60.0, 3600.0]
    reactor.close()


@pytest.mark.trio
async def test_token_timeouts_and_first_on_the_virtual_clock(autojump_clock: trio.testing.MockClock) -> None:
    reactor = virtual_reactor()
    a, b = socket.socketpair()
    lot = ParkingLot()
    t0 = trio.current_time()
    try:
        def quiet_fd() -> TaskGenerator:
            ready = yield readable(a, timeout=30.0)  # nothing is ever sent: times out at exactly 30 s
            return ready, trio.current_time() - t0

        def race() -> TaskGenerator:
            index, value = yield first(park(lot), sleep_until(t0 + 90.0), sleep(120.0))
            return index, trio.current_time() - t0

        def unparked_later() -> TaskGenerator:
            yield sleep(200.0)
            woken = lot.unpark("late")  # the race above is over: nobody waits here any more
            return woken

        tasks = [Recorder(quiet_fd()), Recorder(race()), Recorder(unparked_later())]
        await run_until_done(reactor, *tasks)
        assert tasks[0].outcome == [(False, 30.0)]
        assert tasks[1].outcome == [(1, 90.0)]
        assert tasks[2].outcome == [0]
        assert reactor.stats().tasks == 0 and reactor.stats().watched_fds == 0
    finally:
        a.close()
        b.close()
        reactor.close()


@pytest.mark.trio
async def test_call_later_from_inside_trio_wakes_a_sleeping_driver(autojump_clock: trio.testing.MockClock) -> None:
    reactor = virtual_reactor()
    fired: list[float] = []
    async with trio.open_nursery() as nursery:
        await nursery.start(reactor.run_async)
        reactor.call_later(1000.0, lambda: fired.append(trio.current_time()))
        await trio.sleep(1.0)  # the driver now sleeps until t+1000
        t1 = trio.current_time()
        reactor.call_later(2.0, lambda: fired.append(trio.current_time()))  # earlier: must wake it
        await trio.sleep(5.0)
        assert fired == [t1 + 2.0]
        nursery.cancel_scope.cancel()  # cancelling the host's nursery ends the reactor's loop too
    assert not reactor.running
    reactor.close()


def test_a_sleep_zero_loop_does_not_starve_fd_callbacks() -> None:
    reactor = make_reactor("trio")
    r, w = os.pipe()
    spins = [0]

    def spinner() -> TaskGenerator:
        while True:
            spins[0] += 1
            yield sleep(0)

    def on_readable(mask: int) -> None:
        os.read(r, 1)
        reactor.stop()

    try:
        reactor.add_reader(r, on_readable)
        task = reactor.spawn(spinner())
        os.write(w, b"x")
        reactor.call_later(5.0, reactor.stop)  # safety: the test fails below if this is what stopped it
        reactor.run()
        assert 0 < spins[0] < 10_000, "the fd callback waited behind a busy task"
        reactor.cancel(task)
        reactor.remove(r)
    finally:
        reactor.close()
        os.close(r)
        os.close(w)


def test_a_signal_before_the_loop_starts_is_delivered_when_it_does() -> None:
    reactor = make_reactor("trio")
    got: list[int] = []

    def on_signal(signum: int) -> None:
        got.append(signum)
        reactor.stop()

    try:
        reactor.add_signal_handler(signal.SIGUSR2, on_signal)
        os.kill(os.getpid(), signal.SIGUSR2)  # handled at once by Python: kept until the loop runs
        reactor.call_later(5.0, reactor.stop)
        reactor.run()
        assert got == [signal.SIGUSR2]
        got.clear()
        reactor.call_later(0.05, lambda: os.kill(os.getpid(), signal.SIGUSR2))  # and while it runs
        reactor.run()
        assert got == [signal.SIGUSR2]
    finally:
        reactor.close()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL  # close() put the old handler back


@pytest.mark.trio
async def test_a_parked_task_is_resumed_by_an_unpark_from_trio_code() -> None:
    reactor = make_reactor("trio")
    assert isinstance(reactor, TrioReactor)
    lot = ParkingLot()

    def waiter() -> TaskGenerator:
        value = yield park(lot, timeout=5.0)
        return value

    task = Recorder(waiter())
    async with trio.open_nursery() as nursery:
        await nursery.start(reactor.run_async)
        reactor.start(task)
        await trio.sleep(0.01)
        assert lot.unpark("from trio") == 1  # plain trio code may poke the reactor's objects
        with trio.fail_after(5):
            await task.ended.wait()
        reactor.stop()
    assert task.outcome == ["from trio"]
    reactor.close()
