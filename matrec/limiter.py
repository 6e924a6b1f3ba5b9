"""One bound on concurrent Claude calls, shared by every consultation in the process.

A 429 from Claude pauses the whole process's new calls for its retry-after (`pause`), so the other
calls wait here instead of hitting the same limit one by one. Calls already in flight go on.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import IntEnum


class Priority(IntEnum):
    """Lower runs first: a follow-up has a person waiting for its first words; an aggregation finishes
    a consultation, so it goes ahead of new branches."""

    FOLLOW_UP = 0
    AGGREGATION = 1
    BRANCH = 2


class Limiter:
    """A priority semaphore: at most `capacity` holders; waiters served by priority, then arrival."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.in_use = 0
        self.peak = 0
        self.paused_until = 0.0  # time.monotonic(); new calls wait until then
        self._order = itertools.count()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []

    @property
    def waiting(self) -> int:
        """How many callers are queued for a slot."""
        return sum(1 for _, _, future in self._waiters if not future.done())

    def pause(self, seconds: float) -> None:
        """Hold every new call back for `seconds` (Claude asked to wait that long); pauses only extend."""
        self.paused_until = max(self.paused_until, time.monotonic() + seconds)

    @asynccontextmanager
    async def slot(self, priority: Priority = Priority.BRANCH) -> AsyncIterator[None]:
        """Hold one slot for the duration of the block, once any pause has passed."""
        while True:
            # A timed wait, not a synchronisation: the pause may be extended meanwhile, so check again.
            while (wait_s := self.paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait_s)
            await self._acquire(priority)
            if self.paused_until <= time.monotonic():
                break
            self._release()  # a pause began while we queued: wait it out without the slot
        try:
            yield
        finally:
            self._release()

    async def _acquire(self, priority: Priority) -> None:
        if self.in_use < self.capacity and self.waiting == 0:
            self._take()
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._waiters, (int(priority), next(self._order), future))
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                self._release()  # the slot was handed over just as we were cancelled
            raise

    def _take(self) -> None:
        self.in_use += 1
        self.peak = max(self.peak, self.in_use)

    def _release(self) -> None:
        self.in_use -= 1
        while self._waiters and self.in_use < self.capacity:
            _, _, future = heapq.heappop(self._waiters)
            if not future.done():
                self._take()
                future.set_result(None)
