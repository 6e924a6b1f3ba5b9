"""Who may see what: membership of Slack conversations, asked of Slack and remembered briefly.

Every answer matrec gives about earlier consultations (history, search, similar-consultation links,
App Home) is filtered here, so a private channel's or a DM's consultation never reaches someone who
is not in that conversation. Membership comes from `conversations.members` (paged): for a DM that is
the person and the bot, for a group DM its members. A conversation Slack will not describe to the bot
(it left a private channel, a scope is missing, Slack is unreachable) counts as having no members:
when in doubt, show less.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Iterable
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

MEMBERSHIP_TTL_S = 60.0  # how long a conversation's member list is trusted before asking again
MEMBERS_PAGE_SIZE = 200  # conversations.members page size (Slack recommends at most 200)
MAX_MEMBER_PAGES = 50  # a conversation larger than 10,000 members is cut off there
MEMBERSHIP_CONCURRENCY = 8  # conversations.members calls in flight for one visible_channels()


class MembersApi(Protocol):
    """The one Web API method Access uses (AsyncWebClient has it; unit tests give a fake)."""

    async def conversations_members(self, *, channel: str, cursor: str | None = None, limit: int | None = None) -> Any:
        """One page of a conversation's members."""


class Access:
    """Conversation membership (cached for `ttl_s`) and the visibility rules built on it."""

    def __init__(
        self,
        client: MembersApi,
        *,
        ttl_s: float = MEMBERSHIP_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def members(self, channel: str) -> frozenset[str]:
        """The user ids in `channel` (the bot's included); empty when Slack will not say."""
        cached = self._fresh(channel)
        if cached is not None:
            return cached
        lock = self._locks.setdefault(channel, asyncio.Lock())
        async with lock:  # one conversations.members walk per channel at a time; the others reuse it
            cached = self._fresh(channel)
            if cached is not None:
                return cached
            found = await self._ask(channel)
            if found is not None:
                self._cache[channel] = (self._clock(), found)
            return found or frozenset()

    async def is_member(self, user: str, channel: str) -> bool:
        """Whether `user` is in `channel`."""
        return user in await self.members(channel)

    async def visible_channels(self, user: str, channels: Iterable[str]) -> set[str]:
        """The conversations among `channels` that `user` is a member of."""
        wanted = list(dict.fromkeys(channels))
        gate = asyncio.Semaphore(MEMBERSHIP_CONCURRENCY)

        async def check(channel: str) -> bool:
            async with gate:
                return await self.is_member(user, channel)

        seen = await asyncio.gather(*(check(channel) for channel in wanted))
        return {channel for channel, visible in zip(wanted, seen, strict=True) if visible}

    async def can_see_all(self, viewers: Collection[str], channel: str) -> bool:
        """Whether every one of `viewers` is a member of `channel` (no viewers: False, show nothing)."""
        if not viewers:
            return False
        return set(viewers) <= await self.members(channel)

    def forget(self, channel: str | None = None) -> None:
        """Drop what is remembered about `channel` (or every channel), e.g. after a member_left event."""
        if channel is None:
            self._cache.clear()
        else:
            self._cache.pop(channel, None)

    def _fresh(self, channel: str) -> frozenset[str] | None:
        entry = self._cache.get(channel)
        if entry is None or self._clock() - entry[0] > self._ttl_s:
            return None
        return entry[1]

    async def _ask(self, channel: str) -> frozenset[str] | None:
        """Every page of conversations.members; an empty set for a conversation Slack refuses to
        describe (remembered like any answer), None when Slack could not be asked (not remembered)."""
        members: set[str] = set()
        cursor: str | None = None
        try:
            for _ in range(MAX_MEMBER_PAGES):
                response = await self._client.conversations_members(
                    channel=channel, limit=MEMBERS_PAGE_SIZE, cursor=cursor
                )
                members.update(str(member) for member in response.get("members") or [])
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
            else:
                log.warning("conversation %s has more members than matrec reads; the rest count as absent", channel)
        except SlackApiError as error:
            reason = error.response.get("error", "")
            level = logging.WARNING if reason == "missing_scope" else logging.INFO
            log.log(level, "membership of %s unknown (%s): nothing from there is shown", channel, reason)
            return frozenset()
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("membership of %s unknown (%s): nothing from there is shown", channel, type(error).__name__)
            return None
        return frozenset(members)
