"""Organisation-wide rate limits of the Claude emulator, as Anthropic's "Rate limits" page describes them.

What the docs say (docs.claude.com/en/api/rate-limits, "Rate limits"; the 2025-2026 versions read
through the search tool), and so what the emulator does:
- Limits are per organisation, in requests per minute (RPM), input tokens per minute (ITPM) and
  output tokens per minute (OTPM), "for each model class"; "rate limits are applied separately for
  each model", and the tier tables group versions into one class ("Sonnet 4.x ... a total limit that
  applies to combined traffic across both Sonnet 4 and Sonnet 4.5"; likewise Opus 4.x). Here every
  emulator client shares one `RateLimiter`, with one set of buckets per model class
  (`ModelSpec.limit_class`: Sonnet 5 and 5.5 share one, Opus 5 and 5.5 another, Haiku 4.5 its own).
- "We use the token bucket algorithm ... your capacity is continuously replenished up to your maximum
  limit, rather than being reset at fixed intervals."
- Over any limit: a 429 "describing which rate limit was exceeded, along with a `retry-after` header"
  (error type `rate_limit_error`, from the errors page). The message copies the API's wording as seen
  in 2026 reports (anthropics/claude-code#55132, stagewise-io/stagewise#927): "This request would
  exceed your organization's rate limit of 30,000 input tokens per minute (org: ..., model: ...)...".
- ITPM counts `input_tokens` and `cache_creation_input_tokens`; `cache_read_input_tokens` do not
  count (only some older models, marked †, count them; none of the emulator's models is one).
  ITPM is "estimated at the beginning of each request" and adjusted during it: the emulator counts
  the input exactly at the start (`emulators.claude_usage`), so there is nothing to adjust.
- OTPM is "estimated based on `max_tokens` at the beginning of each request, and the estimate is
  adjusted at the end of the request to reflect the actual number of output tokens used".
- Response headers: `retry-after` ("the number of seconds to wait until you can retry the request.
  Earlier retries will fail"); `anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-
  {limit,remaining,reset}`, where -reset is "the time when the ... rate limit will be fully
  replenished, provided in RFC 3339 format" and token -remaining values are "rounded to the nearest
  thousand". The `tokens-*` headers show "the most restrictive limit currently in effect ... If
  Workspace limits do not apply, the headers will return the total tokens remaining, where total is
  the sum of input and output tokens": the emulator has no workspaces, so `tokens-*` is the SUM of
  the input and output buckets (limit, remaining), and its reset is the later of the two.

Where the docs are silent, the emulator chooses:
- A bucket holds one minute's worth (the per-minute limit) and refills at limit / 60 per second.
  (The docs warn that 60 RPM "may be enforced as 1 request per second"; the emulator allows the
  whole minute as a burst.)
- A request is admitted or refused as a whole at its start, after its body, model and input are
  known and before any scripted fault; a refused request consumes nothing, and neither does one
  rejected as invalid (400) before admission. An admitted request keeps
  its request and input tokens whatever happens next; its output is settled once, at the end, at the
  output it generated (0 if it failed before answering; a stream cut off counts what it planned).
- `retry-after` is the ceiling of the seconds until every limit the request needs would fit, at
  least 1; a request larger than a whole bucket gets the time until that bucket is full. The 429 names
  the limit with the longest wait (ties: requests, input, output) and `rejected` counts it there.
- `-remaining` for requests is the whole requests left (floor); token values are rounded half up to
  the thousand and never above the limit. `-reset` is rounded up to the whole second, UTC, with "Z".
- Headers are sent only for the limits configured (`tokens-*` when either token limit is), on every
  Messages response once the request's model is known: streamed responses carry the state at
  message_start (output still reserved at max_tokens), others the state after settlement.
- The clock is wall-clock epoch seconds (injectable for tests); a clock that goes back refills nothing.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal

from emulators.claude_requests import ApiError

LimitKind = Literal["requests", "input_tokens", "output_tokens"]
Clock = Callable[[], float]  # epoch seconds

KINDS: Final[tuple[LimitKind, ...]] = ("requests", "input_tokens", "output_tokens")
SECONDS_PER_MINUTE: Final = 60.0
TOKENS_REMAINING_ROUNDING: Final = 1000
MIN_RETRY_AFTER_S: Final = 1
ORGANIZATION_ID: Final = "00000000-0000-4000-8000-00000000e0e0"
_HEADER_NAMES: Final[Mapping[LimitKind, str]] = {
    "requests": "requests",
    "input_tokens": "input-tokens",
    "output_tokens": "output-tokens",
}
_UNITS: Final[Mapping[LimitKind, str]] = {
    "requests": "requests",
    "input_tokens": "input tokens",
    "output_tokens": "output tokens",
}
_MESSAGE: Final = (
    "This request would exceed your organization's rate limit of {limit:,} {unit} per minute (org: {org}, "
    "model: {model}). For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the "
    "response headers for current usage. Please reduce the prompt length or the maximum tokens requested, "
    "or try again later. You may also contact sales at https://claude.com/contact-sales to discuss your "
    "options for a rate limit increase."
)


@dataclass(frozen=True)
class OrgLimits:
    """Per-minute limits for each model class; None: that limit is not enforced."""

    requests_per_minute: int | None = None
    input_tokens_per_minute: int | None = None
    output_tokens_per_minute: int | None = None

    def __post_init__(self) -> None:
        for value in (self.requests_per_minute, self.input_tokens_per_minute, self.output_tokens_per_minute):
            if value is not None and value < 1:
                raise ValueError("a per-minute limit must be at least 1, or None for no limit")

    def per_kind(self) -> dict[LimitKind, int]:
        """The configured limits by kind."""
        values: dict[LimitKind, int | None] = {
            "requests": self.requests_per_minute,
            "input_tokens": self.input_tokens_per_minute,
            "output_tokens": self.output_tokens_per_minute,
        }
        return {kind: value for kind, value in values.items() if value is not None}


@dataclass
class TokenBucket:
    """`capacity` units, refilled continuously at capacity per minute."""

    capacity: float
    level: float
    at: float

    @property
    def per_s(self) -> float:
        """Refill rate in units per second."""
        return self.capacity / SECONDS_PER_MINUTE

    def refill(self, now: float) -> None:
        """Add what flowed in since the last reading."""
        self.level = min(self.capacity, self.level + max(0.0, now - self.at) * self.per_s)
        self.at = max(self.at, now)

    def wait_s(self, amount: float) -> float:
        """Seconds until `amount` fits (until full, if it never fits); call after `refill`."""
        missing = min(amount, self.capacity) - self.level
        return max(0.0, missing / self.per_s)

    def full_in_s(self) -> float:
        """Seconds until the bucket is full again; call after `refill`."""
        return (self.capacity - self.level) / self.per_s


@dataclass
class Reservation:
    """What one admitted request took from its class's buckets; output is settled once."""

    limit_class: str
    output_tokens: int
    settled: bool = False


class RateLimiter:
    """One organisation's buckets, per model class, shared by every client of the emulator."""

    def __init__(self, limits: OrgLimits, clock: Clock = time.time) -> None:
        if not limits.per_kind():
            raise ValueError("set at least one limit")
        self.limits = limits
        self.clock = clock
        self.rejected: Counter[LimitKind] = Counter()
        self._classes: dict[str, dict[LimitKind, TokenBucket]] = {}

    def _buckets(self, limit_class: str) -> dict[LimitKind, TokenBucket]:
        now = self.clock()
        buckets = self._classes.get(limit_class)
        if buckets is None:
            buckets = {kind: TokenBucket(v, float(v), now) for kind, v in self.limits.per_kind().items()}
            self._classes[limit_class] = buckets
        for bucket in buckets.values():
            bucket.refill(now)
        return buckets

    def admit(self, limit_class: str, model: str, *, input_tokens: int, max_tokens: int) -> Reservation:
        """Take one request, its input and `max_tokens` of output, or raise the API's 429."""
        buckets = self._buckets(limit_class)
        wanted: dict[LimitKind, float] = {"requests": 1, "input_tokens": input_tokens, "output_tokens": max_tokens}
        waits = {kind: bucket.wait_s(wanted[kind]) for kind, bucket in buckets.items()}
        over = [kind for kind in KINDS if kind in waits and (waits[kind] > 0 or wanted[kind] > buckets[kind].capacity)]
        if over:
            worst = max(over, key=lambda kind: waits[kind])
            self.rejected[worst] += 1
            retry_after = max(MIN_RETRY_AFTER_S, math.ceil(max(waits[kind] for kind in over)))
            message = _MESSAGE.format(
                limit=int(buckets[worst].capacity), unit=_UNITS[worst], org=ORGANIZATION_ID, model=model
            )
            raise ApiError(429, message, headers={"retry-after": str(retry_after)})
        for kind, bucket in buckets.items():
            bucket.level -= wanted[kind]
        return Reservation(limit_class, max_tokens)

    def settle(self, reservation: Reservation, output_tokens: int) -> None:
        """Adjust the output estimate to what the request generated (once)."""
        if reservation.settled:
            return
        reservation.settled = True
        bucket = self._buckets(reservation.limit_class).get("output_tokens")
        if bucket is not None:
            unused = reservation.output_tokens - max(0, output_tokens)
            bucket.level = min(bucket.capacity, bucket.level + unused)

    def refill(self) -> None:
        """Fill every bucket (a benchmark starting afresh)."""
        self._classes.clear()

    def headers(self, limit_class: str) -> dict[str, str]:
        """The `anthropic-ratelimit-*` headers for the class's buckets as they stand."""
        buckets = self._buckets(limit_class)
        now = self.clock()
        headers: dict[str, str] = {}
        for kind, bucket in buckets.items():
            remaining = math.floor(bucket.level) if kind == "requests" else _round_tokens(bucket.level, bucket.capacity)
            _put(headers, _HEADER_NAMES[kind], bucket.capacity, remaining, now + bucket.full_in_s())
        tokens = [buckets[kind] for kind in ("input_tokens", "output_tokens") if kind in buckets]
        if tokens:
            capacity = sum(bucket.capacity for bucket in tokens)
            level = sum(bucket.level for bucket in tokens)
            full_at = now + max(bucket.full_in_s() for bucket in tokens)
            _put(headers, "tokens", capacity, _round_tokens(level, capacity), full_at)
        return headers


def _round_tokens(level: float, capacity: float) -> int:
    rounded = math.floor(level / TOKENS_REMAINING_ROUNDING + 0.5) * TOKENS_REMAINING_ROUNDING
    return int(min(capacity, max(0, rounded)))


def rfc3339(epoch_s: float) -> str:
    """`epoch_s` rounded up to the second, as an RFC 3339 UTC timestamp ("2026-12-01T05:00:12Z")."""
    return datetime.fromtimestamp(math.ceil(epoch_s), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _put(headers: dict[str, str], name: str, capacity: float, remaining: int, full_at: float) -> None:
    prefix = f"anthropic-ratelimit-{name}"
    headers[f"{prefix}-limit"] = str(int(capacity))
    headers[f"{prefix}-remaining"] = str(remaining)
    headers[f"{prefix}-reset"] = rfc3339(full_at)


def add_limit_arguments(parser: argparse.ArgumentParser) -> None:
    """`--requests-per-minute`, `--input-tokens-per-minute`, `--output-tokens-per-minute` (default: no limit)."""
    for kind in KINDS:
        flag = f"--{_HEADER_NAMES[kind]}-per-minute"
        parser.add_argument(flag, type=int, default=None, help=f"organisation-wide {_UNITS[kind]} per minute")


def limits_from_arguments(args: argparse.Namespace) -> OrgLimits:
    """The limits `add_limit_arguments` parsed."""
    return OrgLimits(args.requests_per_minute, args.input_tokens_per_minute, args.output_tokens_per_minute)


def limit_argv(limits: OrgLimits) -> list[str]:
    """The command-line flags that give a child emulator process these limits."""
    argv: list[str] = []
    for kind, value in limits.per_kind().items():
        argv += [f"--{_HEADER_NAMES[kind]}-per-minute", str(value)]
    return argv
