"""Pointers: boards whose final state went out as a new message are turned into a pointer to it.

When Slack's update budget has no room for a board's final chat.update in time, the writer posts
the final state as a new thread reply (`bot.writer`) and records the old board here, in the
database, so the pointer is not lost when this instance stops: any instance lands it later, at
PROGRESS priority (after every final state), holding a lease on it while it tries. A board that is
gone needs no pointer.

    pointers = Pointers(store, client)
    task = asyncio.create_task(pointers.run())   # one per instance, cancelled at shutdown
    await pointers.add(Pointer(channel, ts=old_board_ts, thread_ts=..., target_ts=new_ts))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Final, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.blocks import Rendered
from bot.blocks.kit import context
from bot.budget import Priority, calls_at
from bot.store.slack_budget import Pointer
from bot.writer import MESSAGE_GONE

log = logging.getLogger(__name__)

POINTER_TEXT: Final = ":arrow_down: This analysis moved: its result is in a newer message below."
POLL_S: Final = 5.0  # how often pointers left by another instance are looked for
LEASE_S: Final = 30.0  # how long one instance holds a pointer it is trying to land
BATCH: Final = 20  # pointers leased at once
PRUNE_INTERVAL_S: Final = 600.0  # how often untouched budget buckets are forgotten
PRUNE_AFTER_S: Final = 3600.0  # a bucket untouched this long is full again: its row can go


class PointerStore(Protocol):
    """The part of the Store pointers use."""

    async def add_pointer(self, pointer: Pointer, *, now_s: float) -> None:
        """Record a pointer to land."""
        ...

    async def lease_pointers(self, *, now_s: float, lease_s: float, limit: int) -> list[Pointer]:
        """Pointers nobody holds, held for `lease_s`."""
        ...

    async def drop_pointer(self, pointer: Pointer) -> None:
        """Forget a pointer that landed."""
        ...

    async def prune_slack_budget(self, *, before_s: float) -> int:
        """Forget untouched buckets."""
        ...


def pointer_message() -> Rendered:
    """What an old board says once its final state is in a newer message."""
    return Rendered(text=POINTER_TEXT, blocks=[context(POINTER_TEXT)])


class Pointers:
    """Records moved boards and lands their pointers (see the module docstring)."""

    def __init__(
        self,
        store: PointerStore,
        client: AsyncWebClient,
        *,
        poll_s: float = POLL_S,
        lease_s: float = LEASE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self._client = client
        self._poll_s = poll_s
        self._lease_s = lease_s
        self._clock = clock
        self._wake = asyncio.Event()
        self.landed = 0

    async def add(self, pointer: Pointer) -> None:
        """Record that `pointer.ts` must point at `pointer.target_ts`; landed later, by some instance."""
        await self._store.add_pointer(pointer, now_s=self._clock())
        self._wake.set()

    async def run(self) -> None:
        """Land pointers as budget allows, forever (cancel to stop); also forgets stale budget buckets."""
        pruned_at = float("-inf")
        while True:
            self._wake.clear()
            tried = await self.land_due()
            if time.monotonic() - pruned_at >= PRUNE_INTERVAL_S:
                pruned_at = time.monotonic()
                await self._prune()
            if not tried:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_s):
                        await self._wake.wait()

    async def land_due(self) -> int:
        """One round: lease the pointers nobody holds and try each; how many were tried."""
        try:
            leased = await self._store.lease_pointers(now_s=self._clock(), lease_s=self._lease_s, limit=BATCH)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            log.warning("could not read the pointers to land (%s); trying again", type(error).__name__)
            return 0
        for pointer in leased:
            await self._land(pointer)
        return len(leased)

    async def _prune(self) -> None:
        try:
            await self._store.prune_slack_budget(before_s=self._clock() - PRUNE_AFTER_S)
        except (SQLAlchemyError, OSError, TimeoutError) as error:
            log.warning("could not prune the Slack budget (%s)", type(error).__name__)

    async def _land(self, pointer: Pointer) -> None:
        """One pointer, within its lease; left for a later round when there is no room or Slack fails."""
        shown = pointer_message()
        try:
            with calls_at(Priority.PROGRESS, wait_s=self._lease_s / 2):
                await self._client.chat_update(
                    channel=pointer.channel, ts=pointer.ts, text=shown.text, blocks=shown.blocks
                )
        except SlackApiError as error:
            code = str(error.response.get("error", ""))
            if code not in MESSAGE_GONE:
                log.info("the pointer on board %s/%s waits (%s)", pointer.channel, pointer.ts, code)
                return
        except (aiohttp.ClientError, TimeoutError) as error:
            log.info("the pointer on board %s/%s waits (%s)", pointer.channel, pointer.ts, type(error).__name__)
            return
        else:
            self.landed += 1
        try:
            await self._store.drop_pointer(pointer)
        except (SQLAlchemyError, OSError, TimeoutError) as error:  # landed twice at worst: the same text
            log.warning("could not forget the pointer on %s/%s (%s)", pointer.channel, pointer.ts, type(error).__name__)
