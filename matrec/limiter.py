"""One bound on concurrent Claude calls, shared by every consultation in the process.

A 429 from Claude pauses the whole process's new calls for its retry-after (`pause`), so the other
calls wait here instead of hitting the same limit one by one. Calls already in flight go on.

Given a `SharedBudget` (matrec.budget), the limiter asks it for every slot instead of counting
its own: the budget bounds calls in flight and tokens per minute across every process sharing it,
in the same priority order, and a pause reaches them all. Each `slot` then reserves the call's
`CallCost` and settles it, when the block ends, at the usage recorded with `Slot.settle`.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from enum import IntEnum

from matrec.budget import CallCost, RateLimits, SharedBudget
from matrec.results import TokenUsage

NO_COST = CallCost()


class Priority(IntEnum):
    """Lower runs first: a follow-up has a person waiting for its first words; an aggregation finishes
    a consultation, so it goes ahead of new branches."""

    FOLLOW_UP = 0
    AGGREGATION = 1
    BRANCH = 2


class Slot:
    """One call's hold on the limiter; `settle(usage)` records what the call was billed."""

    def __init__(self) -> None:
        self.usage: TokenUsage | None = None

    def settle(self, usage: TokenUsage) -> None:
        """The call was billed `usage` (an unusable answer too): the reservation is settled at it."""
        self.usage = usage


class Limiter:
    """A priority semaphore: at most `capacity` holders; waiters served by priority, then arrival.

    With a `budget`, the budget decides instead (see the module docstring); `in_use` and `peak`
    still count this process's calls.
    """

    def __init__(self, capacity: int, budget: SharedBudget | None = None) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.budget = budget
        self.in_use = 0
        self.peak = 0
        self._paused_until = 0.0  # time.monotonic(); new calls wait until then
        self._order = itertools.count()
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []
        self._budget_waiting = 0

    @property
    def paused_until(self) -> float:
        """The time.monotonic() until which new calls wait: this process's pause or the shared one."""
        shared = self.budget.paused_until if self.budget is not None else 0.0
        return max(self._paused_until, shared)

    @property
    def waiting(self) -> int:
        """How many callers are queued for a slot."""
        return sum(1 for _, _, future in self._waiters if not future.done()) + self._budget_waiting

    def pause(self, seconds: float) -> None:
        """Hold every new call back for `seconds` (Claude asked to wait that long); pauses only extend.

        With a budget, every process sharing it pauses.
        """
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)
        if self.budget is not None:
            self.budget.pause(seconds)

    def observe(self, limits: RateLimits) -> None:
        """A response's rate-limit headers, for the budget (alone, the limiter goes by 429s' retry-after)."""
        if self.budget is not None:
            self.budget.observe(limits)

    @asynccontextmanager
    async def slot(self, priority: Priority = Priority.BRANCH, cost: CallCost = NO_COST) -> AsyncIterator[Slot]:
        """Hold one slot for the duration of the block, once any pause has passed; `cost` is reserved
        from the budget's per-minute limits, if there is a budget, and settled when the block ends."""
        if self.budget is not None:
            async with self._budget_slot(self.budget, priority, cost) as held:
                yield held
            return
        while True:
            # A timed wait, not a synchronisation: the pause may be extended meanwhile, so check again.
            while (wait_s := self.paused_until - time.monotonic()) > 0:  # noqa: ASYNC110
                await asyncio.sleep(wait_s)
            await self._acquire(priority)
            if self.paused_until <= time.monotonic():
                break
            self._release()  # a pause began while we queued: wait it out without the slot
        try:
            yield Slot()
        finally:
            self._release()

    @asynccontextmanager
    async def _budget_slot(self, budget: SharedBudget, priority: Priority, cost: CallCost) -> AsyncIterator[Slot]:
        self._budget_waiting += 1
        try:
            lease = await budget.acquire(priority, cost)  # the budget waits out the shared pause itself
        finally:
            self._budget_waiting -= 1
        self._take()
        held = Slot()
        try:
            yield held
        finally:
            self.in_use -= 1
            budget.release(lease, held.usage)

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
