"""UpdateBudget: the bot's share of Slack's app-wide limits, kept in the database every instance uses.

Every Web API call takes one token from its bucket (`SlackRates.bucket`) in one short locked
transaction (`Store.take_slack`), so two instances pacing together stay within what Slack allows
one app. A call that finds no room above its priority's floor either gives way at once (wait 0)
or waits and asks again, up to its wait; waiting calls of one process take turns per bucket,
higher priorities first, so they do not all ask the database at every refill.

A database that cannot answer does not stop Slack writes: the call goes ahead unpaced (logged),
and the client's 429 handler is what paces it until the database is back.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

from sqlalchemy.exc import SQLAlchemyError

from bot.budget.rates import LOOKUPS, UNBUDGETED, Priority, SlackRates
from bot.store.slack_budget import BucketRate

if TYPE_CHECKING:
    from bot.pointers import Pointers

log = logging.getLogger(__name__)

FINAL_UPDATE_WAIT_S: Final = 0.5  # how long a final state waits for chat.update before it is posted anew
LOOKUP_WAIT_S: Final = 0.0  # a look-up at NORMAL priority gives way at once when there is no room
NORMAL_WAIT_S: Final = 60.0  # an ordinary call waits this long for room, then fails as a 429 would
MIN_RETRY_S: Final = 0.02  # the shortest pause between two asks of a bucket that had no room


class BudgetStore(Protocol):
    """The part of the Store the budget uses."""

    async def take_slack(
        self, bucket: str, rate: BucketRate, *, now_s: float, floor: float, cost: float = 1.0
    ) -> float:
        """0.0 if granted, else seconds until it could be."""
        ...


class UpdateBudget:
    """Slack's limits shared by every board, answer, reaction and upload of every instance."""

    def __init__(
        self,
        store: BudgetStore,
        rates: SlackRates | None = None,
        *,
        final_update_wait_s: float = FINAL_UPDATE_WAIT_S,
        clock: Callable[[], float] = time.time,
        pointers: Pointers | None = None,
    ) -> None:
        self._store = store
        self.rates = rates or SlackRates()
        self.final_update_wait_s = final_update_wait_s
        self.pointers = pointers  # where a board moved to a new message gets its pointer
        self._clock = clock
        self._turns: dict[tuple[str, Priority], asyncio.Lock] = {}
        self._waiting: Counter[tuple[str, Priority]] = Counter()
        self.granted: Counter[str] = Counter()  # by method
        self.refused: Counter[str] = Counter()  # by method: gave way or waited in vain

    async def admit(self, method: str, channel: str | None, priority: Priority, wait_s: float) -> float:
        """Take a token for one call: 0.0 once granted; else (after waiting up to `wait_s`) the seconds
        until its bucket would have room."""
        if method in UNBUDGETED:
            return 0.0
        bucket, rate = self.rates.bucket(method, channel)
        floor = self.rates.floor(priority)
        ahead = self._higher_waiting(bucket, priority)
        room_in_s = await self._take(bucket, rate, floor) if not ahead else 1.0 / rate.per_s
        if room_in_s > 0 and wait_s > 0:
            room_in_s = await self._wait(bucket, rate, priority, floor, asyncio.get_running_loop().time() + wait_s)
        (self.granted if room_in_s == 0 else self.refused)[method] += 1
        return room_in_s

    async def _wait(self, bucket: str, rate: BucketRate, priority: Priority, floor: float, deadline: float) -> float:
        """Ask again as the bucket refills, until granted or `deadline` (loop time); this process's
        waiters take turns per bucket and priority, so one of them asks at a time."""
        key = (bucket, priority)
        self._waiting[key] += 1
        turn = self._turns.setdefault(key, asyncio.Lock())
        room_in_s = 1.0 / rate.per_s
        try:
            try:
                async with asyncio.timeout_at(None if math.isinf(deadline) else deadline):
                    await turn.acquire()
            except TimeoutError:
                return room_in_s
            try:
                while True:
                    if not self._higher_waiting(bucket, priority):  # else a more urgent call asks first
                        room_in_s = await self._take(bucket, rate, floor)
                        if room_in_s == 0:
                            return 0.0
                    left_s = deadline - asyncio.get_running_loop().time()
                    if left_s <= 0:
                        return room_in_s
                    await asyncio.sleep(min(max(room_in_s, MIN_RETRY_S), left_s))
            finally:
                turn.release()
        finally:
            self._waiting[key] -= 1
            if not self._waiting[key]:
                del self._waiting[key]
                self._turns.pop(key, None)

    def _higher_waiting(self, bucket: str, priority: Priority) -> bool:
        return any(self._waiting.get((bucket, p), 0) for p in Priority if p < priority)

    async def _take(self, bucket: str, rate: BucketRate, floor: float) -> float:
        try:
            return await self._store.take_slack(bucket, rate, now_s=self._clock(), floor=floor)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            reason = type(error).__name__
            log.warning("the shared Slack budget is unavailable (%s): %s goes ahead unpaced", reason, bucket)
            return 0.0


def wait_for(method: str, priority: Priority, wait_s: float | None) -> float:
    """A call's wait: as given, or the priority's own (finals wait as long as it takes, progress not at
    all, look-ups briefly)."""
    if wait_s is not None:
        return wait_s
    if priority is Priority.NORMAL and method in LOOKUPS:
        return LOOKUP_WAIT_S
    return {Priority.FINAL: math.inf, Priority.NORMAL: NORMAL_WAIT_S, Priority.PROGRESS: 0.0}[priority]
