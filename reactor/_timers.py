"""A heap of one-shot timers with lazy cancellation.

Theory of operation: `Timer` handles sit in a binary heap ordered by (deadline, sequence number).
Cancelling only flips a flag and decrements the live count — the entry is dropped when it reaches
the top — because most timers we arm (a read with a timeout, a per-request deadline) are cancelled
long before they fire, and removal from the middle of a heap is O(n). When cancelled entries make
up more than half of a large heap it is rebuilt, so memory stays bounded by twice the live count.

`pop_due` hands out due timers one at a time, so a callback that cancels another timer due in the
same loop turn really prevents it from firing; a timer armed by a callback waits for the next turn.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Callable, Iterator


class Timer:
    """A scheduled callback; `cancel()` is idempotent and cheap."""

    __slots__ = ("deadline", "callback", "active", "_queue")

    def __init__(self, deadline: float, callback: Callable[[], object], queue: TimerQueue) -> None:
        self.deadline = deadline
        self.callback = callback
        self.active = True
        self._queue = queue

    def cancel(self) -> None:
        if self.active:
            self.active = False
            self._queue._cancelled(self)

    def __repr__(self) -> str:
        return f"<Timer at {self.deadline:.3f} {'active' if self.active else 'done'} {self.callback!r}>"


class TimerQueue:
    __slots__ = ("_heap", "_seq", "live", "on_add")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Timer]] = []
        self._seq = itertools.count()
        self.live = 0
        #: called with each new deadline (a loop that sleeps elsewhere, e.g. on trio, must learn of
        #: a timer earlier than the one it sleeps until); ``None`` for loops that re-read the queue
        self.on_add: Callable[[float], None] | None = None

    def add(self, deadline: float, callback: Callable[[], object]) -> Timer:
        timer = Timer(deadline, callback, self)
        if self.on_add is not None:
            self.on_add(deadline)
        heapq.heappush(self._heap, (deadline, next(self._seq), timer))
        self.live += 1
        return timer

    def _cancelled(self, timer: Timer) -> None:
        self.live -= 1
        heap = self._heap
        if len(heap) > 64 and self.live < len(heap) // 2:
            self._heap = [entry for entry in heap if entry[2].active]
            heapq.heapify(self._heap)

    def next_deadline(self) -> float | None:
        heap = self._heap
        while heap and not heap[0][2].active:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: float) -> Iterator[Timer]:
        """Remove and yield the active timers whose deadline is <= now, earliest first.

        Lazily: each timer is taken off the heap only after the previous one's callback ran, so a
        timer cancelled by an earlier callback of the same batch is skipped. Timers armed while
        the batch runs (sequence number past ``limit``) are left for the next loop turn.
        """
        limit = next(self._seq)
        while True:
            heap = self._heap  # re-read: _cancelled() may have rebuilt it during a callback
            if not heap:
                return
            deadline, seq, timer = heap[0]
            if not timer.active:
                heapq.heappop(heap)
            elif deadline > now or seq > limit:
                return
            else:
                heapq.heappop(heap)
                timer.active = False
                self.live -= 1
                yield timer

    def clear(self) -> None:
        for _, _, timer in self._heap:
            timer.active = False
        self._heap.clear()
        self.live = 0
