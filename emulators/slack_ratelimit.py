"""Per-method rate limits that answer HTTP 429 with Retry-After, as Slack's Web API does."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

MIN_RETRY_AFTER_S = 1
SECONDS_PER_MINUTE = 60.0

# Slack's documented tiers: calls per minute per method per workspace ("+": short bursts pass).
TIER_CALLS_PER_MINUTE: dict[int, float] = {1: 1, 2: 20, 3: 50, 4: 100}
METHOD_TIERS: dict[str, int] = {
    "assistant.threads.setStatus": 3,  # no tier in the docs; Tier 3 assumed, as the bot assumes
    "auth.test": 4,  # Special in the docs; Tier 4 as a floor
    "chat.update": 3,
    "chat.delete": 3,
    "chat.getPermalink": 4,
    "chat.startStream": 2,
    "chat.appendStream": 4,
    "chat.stopStream": 2,
    "reactions.add": 3,
    "reactions.remove": 2,
    "files.info": 4,
    "files.getUploadURLExternal": 4,
    "files.completeUploadExternal": 4,
    "conversations.info": 3,
    "conversations.history": 3,
    "conversations.replies": 3,
    "conversations.members": 4,
    "conversations.open": 3,
    "users.conversations": 3,
    "users.info": 4,
    "views.open": 4,
    "views.update": 4,
    "views.publish": 4,
}
# chat.postMessage and chat.postEphemeral are "Special": about one message per second per channel.
SPECIAL_PER_CHANNEL_PER_S = {"chat.postMessage": 1.0, "chat.postEphemeral": 1.0}


@dataclass
class _Bucket:
    per_s: float
    burst: int
    retry_after_s: int | None
    per_channel: bool
    tokens: dict[str, tuple[float, float]] = field(default_factory=dict)  # key -> (tokens, at)

    def take(self, key: str, now: float) -> int | None:
        tokens, at = self.tokens.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.per_s)
        if tokens >= 1.0:
            self.tokens[key] = (tokens - 1.0, now)
            return None
        self.tokens[key] = (tokens, now)
        if self.retry_after_s is not None:
            return self.retry_after_s
        return max(MIN_RETRY_AFTER_S, math.ceil((1.0 - tokens) / self.per_s))


class RateLimits:
    """Token buckets and "fail the next N calls" rules per method; counts the 429s served."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._forced: dict[str, list[int]] = {}
        self.served: Counter[str] = Counter()

    def limit(
        self,
        method: str,
        *,
        per_s: float,
        burst: int = 1,
        retry_after_s: int | None = None,
        per_channel: bool = False,
    ) -> None:
        """Allow `burst` calls at once, refilled at `per_s`; over it, 429 (per channel if asked)."""
        if per_s <= 0 or burst < 1:
            raise ValueError("per_s must be positive and burst at least 1")
        self._buckets[method] = _Bucket(per_s, burst, retry_after_s, per_channel)

    def use_slack_tiers(
        self,
        *,
        burst: int | None = None,
        per_minute: Mapping[int, float] | None = None,
        posts_per_s: float | None = None,
    ) -> None:
        """Limit every method as Slack's tiers do (per minute; `burst` calls at once, default a minute's
        worth); `per_minute` replaces some tiers' rates and `posts_per_s` the per-channel post rate
        (tests that want the same shape of limits, faster)."""
        rates = {**TIER_CALLS_PER_MINUTE, **(per_minute or {})}
        for method, tier in METHOD_TIERS.items():
            tier_per_minute = rates[tier]
            self.limit(
                method, per_s=tier_per_minute / SECONDS_PER_MINUTE, burst=burst or max(1, math.floor(tier_per_minute))
            )
        for method, per_s in SPECIAL_PER_CHANNEL_PER_S.items():
            self.limit(method, per_s=posts_per_s or per_s, burst=burst or 1, per_channel=True)

    def fail_next(self, method: str, count: int = 1, *, retry_after_s: int = MIN_RETRY_AFTER_S) -> None:
        """Answer the next `count` calls to `method` with 429 and this Retry-After."""
        self._forced.setdefault(method, []).extend([retry_after_s] * count)

    def clear(self, method: str | None = None) -> None:
        """Remove the limits of one method, or of all methods."""
        if method is None:
            self._buckets.clear()
            self._forced.clear()
        else:
            self._buckets.pop(method, None)
            self._forced.pop(method, None)

    def check(self, method: str, channel: str | None) -> int | None:
        """Seconds to put in Retry-After if this call is limited, else None (and the call is counted)."""
        forced = self._forced.get(method)
        retry_after: int | None = None
        if forced:
            retry_after = forced.pop(0)
        elif (bucket := self._buckets.get(method)) is not None:
            key = (channel or "") if bucket.per_channel else ""
            retry_after = bucket.take(key, time.monotonic())
        if retry_after is not None:
            self.served[method] += 1
        return retry_after
