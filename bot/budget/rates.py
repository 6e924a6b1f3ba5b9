"""Slack's rate limits as the bot paces itself to them: which bucket a call spends from, at what rate.

Slack counts each Web API method per app and workspace by its tier (Tier 2 about 20 a minute,
Tier 3 about 50, Tier 4 about 100; "+": short bursts pass), and chat.postMessage about one a
second per channel. The bot paces itself at `pacing` (90%) of those rates, so its clock and
Slack's never disagree into a 429, with bursts no larger than Slack tolerates.

A call's priority decides how much of a bucket it may use: final states may take the last token,
ordinary calls leave half the reserve, progress (intermediate board updates, reactions, the thread
status) leaves all of it, so a final state never waits behind progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import TYPE_CHECKING, Final

from bot.store.slack_budget import BucketRate

if TYPE_CHECKING:
    from bot.settings import BotSettings

SECONDS_PER_MINUTE: Final = 60.0
PACING: Final = 0.9  # the share of Slack's published rates the bot uses
FINAL_RESERVE: Final = 3.0  # tokens of each app-wide bucket only final states may take
TIER_BURST: Final = 10  # calls at once per app-wide bucket (never more than a minute's worth)
# chat.postMessage calls at once per channel: Slack allows "short bursts of more than 1"; one token
# less than the 3 bench.bot models keeps a whole post of margin for requests that arrive out of step.
POST_BURST: Final = 2

# Slack's published tiers for every method the bot calls (api.slack.com/docs/rate-limits and each
# method's page). assistant.threads.setStatus is listed without a tier: Tier 3 is assumed.
METHOD_TIERS: Final[dict[str, int]] = {
    "assistant.threads.setStatus": 3,
    "chat.appendStream": 4,
    "chat.delete": 3,
    "chat.getPermalink": 4,
    "chat.startStream": 2,
    "chat.stopStream": 2,
    "chat.update": 3,
    "conversations.history": 3,
    "conversations.info": 3,
    "conversations.members": 4,
    "conversations.open": 3,
    "conversations.replies": 3,
    "files.completeUploadExternal": 4,
    "files.getUploadURLExternal": 4,
    "files.info": 4,
    "reactions.add": 3,
    "reactions.remove": 2,
    "users.conversations": 3,
    "users.info": 4,
    "views.open": 4,
    "views.publish": 4,
    "views.update": 4,
}
# "Special": about one message a second per channel.
PER_CHANNEL: Final = frozenset({"chat.postMessage", "chat.postEphemeral"})
UNLISTED_TIER: Final = 3  # a method missing from the table is paced as Tier 3
# Called by the frameworks, not by the bot's own work: Bolt's auth.test on the first requests (all
# at once when a burst of events arrives) and Socket Mode's apps.connections.open on a reconnect.
# Slack's limits for both are far above their use; pacing them would hold back first replies.
UNBUDGETED: Final = frozenset({"auth.test", "apps.connections.open"})
# Look-ups that only decorate a message (links to similar parts, names, who may see what): at
# NORMAL priority they wait briefly, then give way, so a final state is never held up by them.
LOOKUPS: Final = frozenset(
    {"chat.getPermalink", "users.info", "conversations.members", "users.conversations", "conversations.info"}
)


class Priority(IntEnum):
    """How much a call may take from its bucket, and whether it waits for room (see bot.budget.client)."""

    FINAL = 0  # final states, first replies, answers to a click: may take the last token
    NORMAL = 1  # notices, uploads, look-ups: leave half the reserve
    PROGRESS = 2  # intermediate updates, reactions, thread status: leave the reserve; skipped, not queued


def _slack_tiers() -> dict[int, float]:
    return {1: 1.0, 2: 20.0, 3: 50.0, 4: 100.0}


@dataclass(frozen=True)
class SlackRates:
    """Slack's limits (calls a minute by tier, posts a second per channel) and how the bot paces to them."""

    tier_per_minute: dict[int, float] = field(default_factory=_slack_tiers)
    posts_per_channel_per_s: float = 1.0
    burst: int = TIER_BURST
    post_burst: int = POST_BURST
    pacing: float = PACING
    final_reserve: float = FINAL_RESERVE

    @classmethod
    def from_settings(cls, settings: BotSettings) -> SlackRates:
        """The rates MATREC_SLACK_* (and MATREC_UPDATES_PER_MINUTE for Tier 3) configure."""
        tiers = {
            1: 1.0,
            2: settings.slack_tier2_per_minute,
            3: settings.updates_per_minute,
            4: settings.slack_tier4_per_minute,
        }
        return cls(
            tier_per_minute=tiers,
            posts_per_channel_per_s=settings.slack_posts_per_channel_per_s,
            burst=settings.update_burst,
            post_burst=settings.slack_post_burst,
            pacing=settings.slack_pacing,
            final_reserve=settings.slack_final_reserve,
        )

    def bucket(self, method: str, channel: str | None) -> tuple[str, BucketRate]:
        """The bucket a call of `method` (in `channel`) spends from, and its paced rate."""
        if method in PER_CHANNEL:
            rate = BucketRate(self.posts_per_channel_per_s * self.pacing, float(self.post_burst))
            return f"{method} {channel or ''}", rate
        per_minute = self.tier_per_minute.get(METHOD_TIERS.get(method, UNLISTED_TIER), 1.0)
        rate = BucketRate(per_minute / SECONDS_PER_MINUTE * self.pacing, float(min(self.burst, max(per_minute, 1.0))))
        return method, rate

    def floor(self, priority: Priority) -> float:
        """Tokens a call of `priority` must leave in its bucket."""
        return {Priority.FINAL: 0.0, Priority.NORMAL: self.final_reserve / 2, Priority.PROGRESS: self.final_reserve}[
            priority
        ]
