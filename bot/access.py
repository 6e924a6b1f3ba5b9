"""Who may see what: membership of Slack conversations, asked of Slack and remembered briefly.

Every answer matrec gives about earlier consultations (history, search, similar-consultation links,
App Home) is filtered here, so a private channel's or a DM's consultation never reaches someone who
is not in that conversation. Two questions, each one paged Slack call remembered for a minute:

    members(channel)        conversations.members: for a DM the person and the bot, for a group DM
                            its members; used to check that everyone in a conversation may see a link
    conversations(user)     users.conversations: the conversations a person is in that the bot can
                            see (the bot is in every conversation it has consultations from, or left
                            it, and then nobody sees them); used for one person's history, search, Home

A conversation or person Slack will not describe (the bot left a private channel, a scope is
missing, Slack is unreachable) counts as empty: when in doubt, show less.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Protocol

import aiohttp
from slack_sdk.errors import SlackApiError

log = logging.getLogger(__name__)

MEMBERSHIP_TTL_S = 60.0  # how long a member list (or a person's conversation list) is trusted
PAGE_SIZE = 200  # per page of conversations.members / users.conversations (Slack recommends <= 200)
MAX_PAGES = 50  # 10,000 members or conversations at most; the rest count as absent
SLACK_CALLS_AT_ONCE = 8  # membership calls in flight, so a burst of checks stays within the rate tier
CONVERSATION_TYPES = "public_channel,private_channel,mpim,im"


class MembershipApi(Protocol):
    """The two Web API methods Access uses (AsyncWebClient has them; unit tests give a fake)."""

    async def conversations_members(self, *, channel: str, cursor: str | None = None, limit: int | None = None) -> Any:
        """One page of a conversation's members."""

    async def users_conversations(
        self, *, cursor: str | None = None, limit: int | None = None, types: str | None = None, user: str | None = None
    ) -> Any:
        """One page of the conversations a person is in."""


class Access:
    """Conversation membership (remembered for `ttl_s`) and the visibility rules built on it."""

    def __init__(
        self,
        client: MembershipApi,
        *,
        ttl_s: float = MEMBERSHIP_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._clock = clock
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}  # "members:C1" / "conversations:U1"
        self._locks: dict[str, asyncio.Lock] = {}
        self._gate = asyncio.Semaphore(SLACK_CALLS_AT_ONCE)

    async def members(self, channel: str) -> frozenset[str]:
        """The user ids in `channel` (the bot's included); empty when Slack will not say."""

        def page(cursor: str | None) -> Awaitable[Any]:
            return self._client.conversations_members(channel=channel, limit=PAGE_SIZE, cursor=cursor)

        return await self._remembered(f"members:{channel}", page, "members")

    async def conversations(self, user: str) -> frozenset[str]:
        """The ids of the conversations `user` is in that the bot can see; empty when Slack will not say."""

        def page(cursor: str | None) -> Awaitable[Any]:
            return self._client.users_conversations(user=user, types=CONVERSATION_TYPES, limit=PAGE_SIZE, cursor=cursor)

        return await self._remembered(f"conversations:{user}", page, "channels")

    async def is_member(self, user: str, channel: str) -> bool:
        """Whether `user` is in `channel`."""
        return user in await self.members(channel)

    async def visible_channels(self, user: str, channels: Iterable[str]) -> set[str]:
        """The conversations among `channels` that `user` is a member of."""
        mine = await self.conversations(user)
        return {channel for channel in channels if channel in mine}

    async def can_see_all(self, viewers: Collection[str], channel: str) -> bool:
        """Whether every one of `viewers` is a member of `channel` (no viewers: False, show nothing)."""
        if not viewers:
            return False
        return set(viewers) <= await self.members(channel)

    def forget(self) -> None:
        """Drop everything remembered (membership changes show within the TTL anyway)."""
        self._cache.clear()

    async def _remembered(self, key: str, page: Callable[[str | None], Awaitable[Any]], field: str) -> frozenset[str]:
        cached = self._fresh(key)
        if cached is not None:
            return cached
        async with self._locks.setdefault(key, asyncio.Lock()):  # one walk per key; waiters reuse it
            cached = self._fresh(key)
            if cached is not None:
                return cached
            async with self._gate:
                found = await self._walk(key, page, field)
            if found is not None:
                self._cache[key] = (self._clock(), found)
            self._locks.pop(key, None)
            return found or frozenset()

    def _fresh(self, key: str) -> frozenset[str] | None:
        entry = self._cache.get(key)
        if entry is None or self._clock() - entry[0] > self._ttl_s:
            return None
        return entry[1]

    async def _walk(self, key: str, page: Callable[[str | None], Awaitable[Any]], field: str) -> frozenset[str] | None:
        """Every page; an empty set when Slack refuses (remembered like any answer), None when it could
        not be asked (not remembered, so the next question asks again)."""
        found: set[str] = set()
        cursor: str | None = None
        try:
            for _ in range(MAX_PAGES):
                response = await page(cursor)
                for item in response.get(field) or []:
                    found.add(str(item["id"] if isinstance(item, dict) else item))
                cursor = (response.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor:
                    break
            else:
                log.warning("%s has more entries than matrec reads; the rest count as absent", key)
        except SlackApiError as error:
            reason = error.response.get("error", "")
            level = logging.WARNING if reason == "missing_scope" else logging.INFO
            log.log(level, "%s unknown (%s): nothing that depends on it is shown", key, reason)
            return frozenset()
        except (aiohttp.ClientError, TimeoutError) as error:
            log.warning("%s unknown (%s): nothing that depends on it is shown", key, type(error).__name__)
            return None
        return frozenset(found)
