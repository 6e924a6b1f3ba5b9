"""An app-wide budget for chat.update, shared by every board the bot is writing.

Slack limits chat.update per app and workspace (Tier 3, about 50 a minute), not per message. With
many consultations at once, boards that each pace themselves at one update a second would still
overrun it together and spend their time in 429 retries. The budget hands out updates at Slack's
rate instead: final states first, then whoever asked first; writers keep coalescing while they
wait, so a waiting board sends its newest state, not a stale one.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time

FINAL, PROGRESS = 0, 1


class UpdateBudget:
    """A token bucket with a priority queue: `per_minute` updates a minute, bursts up to `burst`."""

    def __init__(self, per_minute: float, burst: int) -> None:
        if per_minute <= 0 or burst < 1:
            raise ValueError("the update budget needs a positive rate and a burst of at least 1")
        self.rate_per_s = per_minute / 60.0
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()
        self._order = itertools.count()
        self._queue: list[tuple[int, int, asyncio.Future[None]]] = []
        self._timer: asyncio.TimerHandle | None = None

    @property
    def waiting(self) -> int:
        """How many writers are waiting for an update."""
        return sum(1 for _, _, future in self._queue if not future.done())

    async def take(self, *, final: bool) -> None:
        """Wait until this writer may send one chat.update."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._queue, (FINAL if final else PROGRESS, next(self._order), future))
        self._dispatch()
        await future

    def _refill(self) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate_per_s)
        self._stamp = now

    def _dispatch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._refill()
        while self._queue and self._tokens >= 1:
            _, _, future = heapq.heappop(self._queue)
            if future.done():  # its writer was cancelled while waiting
                continue
            self._tokens -= 1
            future.set_result(None)
        while self._queue and self._queue[0][2].done():
            heapq.heappop(self._queue)
        if self._queue:
            delay_s = (1 - self._tokens) / self.rate_per_s
            self._timer = asyncio.get_running_loop().call_later(delay_s, self._dispatch)
