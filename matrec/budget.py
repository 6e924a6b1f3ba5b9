"""A Claude budget shared beyond this process: the protocol the Limiter consults, and what a call costs.

The in-process `Limiter` bounds calls in flight on its own (CLI, eval). Given a `SharedBudget` it
asks the budget for every slot instead, so that several processes share one organisation's
limits (the bot's implementation keeps them in its database: bot.claude_budget):

    acquire(priority, cost) -> lease    wait until the call may start: a slot is free, the tokens it
                                        may use are available and no pause holds; served by
                                        priority, then arrival, across every process
    release(lease, usage)               the call ended: free the slot and settle the tokens reserved
                                        at what it was billed (None: it failed without a usage)
    pause(seconds)                      a 429 asked to wait: no process starts a call before then
    observe(limits)                     a response's rate-limit headers: the organisation's limits
                                        and what is left of them, as Anthropic counts
    paused_until                        the shared pause as last known (time.monotonic())

`release`, `pause` and `observe` never block: they are called from `finally` blocks and from the
middle of a stream, so a budget queues them for its own task.

What a call costs (`CallCost`), as Anthropic's rate limits count it:

    input    uncached input tokens (input_tokens + cache_creation_input_tokens; cache reads do not
             count). Estimated before the call from the request: text at 4 characters a token
             raised by 30% (Claude 5.x's tokenizer makes about 30% more tokens of the same text),
             images at width x height / 750 (Anthropic's formula, on the downscaled image as
             sent). Whether a prefix will be read from the cache is not known in advance, so the
             whole prompt is reserved as uncached, and the difference refunded at settlement.
    output   reserved at `max_tokens` (Anthropic does the same), settled at the actual output.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from matrec.images import PreparedImage
from matrec.results import TokenUsage

if TYPE_CHECKING:
    from matrec.limiter import Priority

TEXT_CHARS_PER_TOKEN = 4.0
NEW_TOKENIZER_FACTOR = 1.3  # Claude 5.x: about 30% more tokens than 4.x for the same text
IMAGE_PIXELS_PER_TOKEN = 750.0
HEADER_PREFIX = "anthropic-ratelimit-"


@dataclass(frozen=True)
class CallCost:
    """What a call may use of the per-minute limits, reserved before it starts."""

    input_tokens: int = 0  # estimated uncached input
    output_tokens: int = 0  # max_tokens


def estimate_input_tokens(texts: Iterable[str], images: Iterable[PreparedImage] = ()) -> int:
    """Input tokens of a request's texts and images, as the module docstring says."""
    chars = sum(len(text) for text in texts)
    text_tokens = chars / TEXT_CHARS_PER_TOKEN * NEW_TOKENIZER_FACTOR
    image_tokens = sum(image.width * image.height / IMAGE_PIXELS_PER_TOKEN for image in images)
    return math.ceil(text_tokens + image_tokens)


def call_cost(texts: Iterable[str], images: Iterable[PreparedImage], max_tokens: int) -> CallCost:
    """The reservation for one request: its estimated input, and output at `max_tokens`."""
    return CallCost(input_tokens=estimate_input_tokens(texts, images), output_tokens=max_tokens)


def counted_input(usage: TokenUsage) -> int:
    """Input tokens a billed call counted against the input limit: cache reads do not count."""
    return usage.input_tokens + usage.cache_write_tokens


class Limit(StrEnum):
    """The per-minute limits Anthropic reports, by their header names."""

    REQUESTS = "requests"
    INPUT_TOKENS = "input-tokens"
    OUTPUT_TOKENS = "output-tokens"


@dataclass(frozen=True)
class RateLimit:
    """One limit as a response reported it: the limit, what remains, when it is full again."""

    limit: int
    remaining: int
    reset_at: float | None  # time.time() when the bucket is full again (the -reset header)


@dataclass(frozen=True)
class RateLimits:
    """A response's `anthropic-ratelimit-*` headers, parsed; `observed_at` is time.time() on receipt.

    The combined `-tokens-*` headers (the more restrictive of input and output) are not kept: the
    input and output limits they summarise are.
    """

    observed_at: float
    limits: Mapping[Limit, RateLimit]

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], observed_at: float) -> RateLimits | None:
        """The limits in `headers` (case-insensitive, as httpx keeps them), or None when there are none."""
        found: dict[Limit, RateLimit] = {}
        for limit in Limit:
            stem = f"{HEADER_PREFIX}{limit.value}"
            total, remaining = _int(headers.get(f"{stem}-limit")), _int(headers.get(f"{stem}-remaining"))
            if total is not None and remaining is not None:
                found[limit] = RateLimit(total, remaining, _timestamp(headers.get(f"{stem}-reset")))
        return cls(observed_at, found) if found else None


def _int(raw: str | None) -> int | None:
    try:
        return None if raw is None else int(raw.strip())
    except ValueError:
        return None


def _timestamp(raw: str | None) -> float | None:
    """An RFC 3339 time (`2026-12-01T05:00:12Z`) as time.time(); None when absent or malformed."""
    if raw is None:
        return None
    try:
        parsed = datetime.fromisoformat(raw.strip())
    except ValueError:
        return None
    return parsed.timestamp() if parsed.tzinfo is not None else None


class Lease(Protocol):
    """A granted slot, handed back to `release`."""


class SharedBudget(Protocol):
    """Calls in flight and per-minute limits shared with other processes; see the module docstring."""

    @property
    def paused_until(self) -> float:
        """The shared pause as last known, as a time.monotonic(); in the past when there is none."""
        ...

    async def acquire(self, priority: Priority, cost: CallCost) -> Lease:
        """Wait until the call may start; cancellable (a cancelled acquire holds nothing)."""
        ...

    def release(self, lease: Lease, usage: TokenUsage | None) -> None:
        """The call ended, billed `usage` (None: failed without one); never blocks."""
        ...

    def pause(self, seconds: float) -> None:
        """No process starts a call for `seconds`; pauses only extend. Never blocks."""
        ...

    def observe(self, limits: RateLimits) -> None:
        """Take a response's rate-limit headers into account; never blocks."""
        ...
