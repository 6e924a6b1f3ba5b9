"""The App Home tab: the viewer's recent consultations, the team's, and simple statistics.

Published afresh (views.publish) each time someone opens the tab, from conversations that person
is a member of only, so two people with different memberships see different consultations. The
publish is an ordinary call in the shared Slack budget (Tier 4): it waits for room behind final
states, and gives up (logged) if there is none for a minute.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine, Sequence
from typing import Any, Protocol

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Access
from bot.blocks.kit import Block, context, divider, header, section
from bot.memory import Memory, link_lines, stats_lines
from bot.store import Consultation, Store
from bot.writer import best_effort

log = logging.getLogger(__name__)


class Spawn(Protocol):
    """Runs a coroutine as a kept background task (`Consultant.spawn`)."""

    def __call__(self, work: Coroutine[Any, Any, None], *, name: str) -> None:
        """Start `work`."""


MINE_LIMIT = 5  # the viewer's own recent consultations shown
TEAM_LIMIT = 10  # the team's recent consultations shown
INTRO = (
    "Post a photo of a part where I am (or send it to me here) with a line about its job, load, "
    "temperature, environment and quantity; `/matrec help` lists the commands."
)
ONLY_YOURS = "Everything here comes from conversations you are a member of."


class Home:
    """Publishes a person's App Home view when they open the tab."""

    def __init__(self, store: Store, access: Access, memory: Memory, *, spawn: Spawn) -> None:
        self._store = store
        self._access = access
        self._memory = memory
        self._spawn = spawn  # Consultant.spawn: the work is kept, so a shutdown waits for it

    def register(self, app: AsyncApp) -> None:
        """Listen for `app_home_opened`."""
        app.event("app_home_opened")(self.on_opened)

    async def on_opened(self, event: dict[str, Any], client: AsyncWebClient) -> None:
        """The Home tab opened: publish that person's view (the Messages tab needs nothing)."""
        if event.get("tab", "home") != "home" or not event.get("user"):
            return
        user = str(event["user"])
        self._spawn(self.publish(client, user), name=f"home of {user}")

    async def publish(self, client: AsyncWebClient, user: str) -> None:
        """Publish `user`'s Home tab as it stands now."""
        view = await self.view(user)
        await best_effort(client.views_publish(user_id=user, view=view), f"could not publish the home of {user}")

    async def view(self, user: str) -> dict[str, Any]:
        """The Home tab view for `user`."""
        channels = await self._access.visible_channels(user, await self._store.channels())
        mine: list[Consultation] = []
        team: list[Consultation] = []
        stats_text = ["No consultations yet in the conversations you are a member of."]
        if channels:
            mine = await self._store.history(channels, limit=MINE_LIMIT, user_id=user)
            team = await self._store.history(channels, limit=TEAM_LIMIT)
            stats_text = stats_lines(await self._store.stats(channels))
        blocks: list[Block] = [header("matrec: material selection"), section(INTRO)]
        blocks += await self._listing("Your recent consultations", mine, "You have not asked for one yet.")
        blocks += await self._listing("The team's recent consultations", team, "Nothing yet.")
        blocks += [divider(), header("Statistics"), section("\n".join(stats_text)), context(ONLY_YOURS)]
        return {"type": "home", "blocks": blocks}

    async def _listing(self, title: str, found: Sequence[Consultation], empty: str) -> list[Block]:
        lines = link_lines(await self._memory.links(found)) if found else [empty]
        return [divider(), header(title), section("\n".join(lines))]
