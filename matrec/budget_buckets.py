"""The arithmetic of a shared Claude budget: per-minute token buckets, the pause, and who goes next.

Pure and synchronous, so any store can keep the state (bot.store.claude_budget keeps it in one
locked row) and the rules are tested without one.

Per-minute limits are token buckets, as Anthropic's are: a bucket holds up to its capacity (the
limit per minute) and refills continuously at capacity / 60 s, rather than emptying and refilling
at the turn of each minute. A sliding 60 s window of past calls would also hold the limit, but
it needs every call's time kept and rejects what Anthropic would accept right after a burst; a
bucket is one number per limit and answers exactly as the API does, so a call it admits is one
Anthropic admits too (reserved amounts being what Anthropic reserves: see matrec.budget).

    capacity    the configured limit (MATREC_CLAUDE_*_PER_MINUTE) or the `-limit` Anthropic
                reported, whichever is lower; neither known: no limit
    admit       a call takes 1 request, its estimated input and `max_tokens` of output (each at
                most the capacity, or it could never fit)
    settle      the call ended: input is refunded down to what was counted (input plus cache
                writes; cache reads do not count), output down to the actual output (none for a
                call that failed without a usage); a call granted but never sent gets all back
    observe     a response's `-remaining` lowers the level to it (the API saw calls we did not:
                other clients of the organisation); its `-reset`, when the bucket is full again,
                sets the refill rate (limit - remaining) / (reset - now). So a call that needs the
                whole bucket waits until that -reset, a smaller one only until enough has refilled.
                A -reset more than a minute ahead, or past, is a clock difference: limit / 60 s
    pause       a 429's retry-after: nothing is admitted before `paused_until`

Admission keeps strict order (priority, then arrival): when the first waiting call does not fit,
nobody behind it goes ahead, so a large call is never starved by a stream of small ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from matrec.budget import CallCost, Limit, RateLimits, counted_input
from matrec.results import TokenUsage

WINDOW_S = 60.0  # the limits are per minute
RESET_ROUNDING_S = 1.0  # -reset is given to the second
ROUNDING_TOKENS = 1e-6  # a refill that falls short by float rounding alone still fits


@dataclass
class Bucket:
    """One per-minute limit's state: the level now (None: full), and what the API last reported."""

    level: float | None = None
    server_limit: float | None = None
    server_rate: float | None = None  # per second, from the last report's -reset

    def capacity(self, configured: int | None) -> float | None:
        """The lower of the configured and the reported limit; None when neither is known."""
        known = [value for value in (configured, self.server_limit) if value is not None]
        return float(min(known)) if known else None

    def rate(self, configured: int | None) -> float | None:
        """Refill per second: the configured limit / 60 s, or the API's as its -reset implies, whichever is slower."""
        rates = [] if configured is None else [configured / WINDOW_S]
        if self.server_limit is not None:
            rates.append(self.server_rate if self.server_rate is not None else self.server_limit / WINDOW_S)
        return min(rates) if rates else None

    def available(self, configured: int | None) -> float | None:
        """What may be taken now; None: no limit."""
        capacity = self.capacity(configured)
        if capacity is None:
            return None
        return capacity if self.level is None else min(self.level, capacity)

    def refill(self, elapsed_s: float, configured: int | None) -> None:
        """Bring the level `elapsed_s` forward."""
        capacity, rate = self.capacity(configured), self.rate(configured)
        if capacity is None or rate is None or self.level is None:
            return
        self.level = min(capacity, self.level + max(elapsed_s, 0.0) * rate)
        if self.level >= capacity:
            self.level = None

    def take(self, amount: float, configured: int | None) -> None:
        """Remove `amount` (may leave the level below zero: a call used more than it reserved)."""
        available = self.available(configured)
        if available is not None:
            self.level = available - amount

    def give(self, amount: float, configured: int | None) -> None:
        """Return `amount` (negative: take more), up to the capacity."""
        self.take(-amount, configured)
        capacity = self.capacity(configured)
        if self.level is not None and capacity is not None and self.level >= capacity:
            self.level = None

    def wait_s(self, amount: float, configured: int | None) -> float:
        """How long until `amount` fits (0: now)."""
        available, rate = self.available(configured), self.rate(configured)
        if available is None or available >= amount - ROUNDING_TOKENS:
            return 0.0
        if rate is None or rate <= 0:
            return WINDOW_S
        return (amount - available) / rate


@dataclass(frozen=True)
class BudgetLimits:
    """The configured limits: calls in flight, and per minute (None: only what Anthropic reports)."""

    calls: int
    per_minute: Mapping[Limit, int | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Waiting:
    """A call waiting for its turn: served by priority (lower first), then arrival."""

    id: str
    priority: int
    arrived_at: float
    cost: CallCost


@dataclass(frozen=True)
class Reserved:
    """What a granted call holds of the per-minute limits (its cost, at most each capacity)."""

    input_tokens: float
    output_tokens: float


@dataclass(frozen=True)
class Grants:
    """Whom `admit` let in, and when the first still waiting might fit (None: on a release)."""

    granted: list[tuple[str, Reserved]]
    retry_at: float | None


@dataclass
class BudgetState:
    """Everything the budget keeps but the calls themselves; times are time.time()."""

    refilled_at: float
    paused_until: float = 0.0
    buckets: dict[Limit, Bucket] = field(default_factory=lambda: {limit: Bucket() for limit in Limit})

    def refill(self, now: float, limits: BudgetLimits) -> None:
        """Bring every bucket to `now`."""
        for limit, bucket in self.buckets.items():
            bucket.refill(now - self.refilled_at, limits.per_minute.get(limit))
        self.refilled_at = max(self.refilled_at, now)

    def pause(self, until: float) -> None:
        """Admit nothing before `until`; pauses only extend."""
        self.paused_until = max(self.paused_until, until)

    def observe(self, limits: RateLimits) -> None:
        """Take the API's view of the organisation's limits (see the module docstring)."""
        for limit, reported in limits.limits.items():
            bucket = self.buckets[limit]
            bucket.server_limit = float(reported.limit)
            level = bucket.level if bucket.level is not None else float(reported.limit)
            bucket.level = min(level, float(reported.remaining))
            ahead_s = None if reported.reset_at is None else reported.reset_at - limits.observed_at
            short = reported.limit - reported.remaining
            # A per-minute bucket is full within a minute: a -reset further off (or past) says more
            # about the two clocks than about the bucket, so the rate is then the limit's.
            plausible = ahead_s is not None and 0 < ahead_s <= WINDOW_S + RESET_ROUNDING_S and short > 0
            bucket.server_rate = short / ahead_s if plausible and ahead_s is not None else None

    def settle(self, reserved: Reserved, usage: TokenUsage | None, *, sent: bool, limits: BudgetLimits) -> None:
        """Settle a call's reservation at its usage (see the module docstring)."""
        if not sent:
            counted_in, counted_out = 0.0, 0.0
        elif usage is None:  # the request may have been counted; no output came of it
            counted_in, counted_out = reserved.input_tokens, 0.0
        else:
            counted_in, counted_out = float(counted_input(usage)), float(usage.output_tokens)
        refunds = {
            Limit.REQUESTS: 0.0 if sent else 1.0,
            Limit.INPUT_TOKENS: reserved.input_tokens - counted_in,
            Limit.OUTPUT_TOKENS: reserved.output_tokens - counted_out,
        }
        for limit, amount in refunds.items():
            if amount:
                self.buckets[limit].give(amount, limits.per_minute.get(limit))

    def admit(self, queue: Sequence[Waiting], in_flight: int, now: float, limits: BudgetLimits) -> Grants:
        """Grant `queue` (in serving order) while slots are free, no pause holds and the first fits."""
        granted: list[tuple[str, Reserved]] = []
        free = limits.calls - in_flight
        for waiting in queue:
            if free <= 0:
                return Grants(granted, None)
            if now < self.paused_until:
                return Grants(granted, self.paused_until)
            needs = self._needs(waiting.cost, limits)
            wait_s = max(
                self.buckets[limit].wait_s(amount, limits.per_minute.get(limit)) for limit, amount in needs.items()
            )
            if wait_s > 0:
                return Grants(granted, now + wait_s)
            for limit, amount in needs.items():
                self.buckets[limit].take(amount, limits.per_minute.get(limit))
            granted.append((waiting.id, Reserved(needs[Limit.INPUT_TOKENS], needs[Limit.OUTPUT_TOKENS])))
            free -= 1
        return Grants(granted, None)

    def _needs(self, cost: CallCost, limits: BudgetLimits) -> dict[Limit, float]:
        """Requests, input, output a call takes: its cost, at most each capacity (or it could never fit)."""
        amounts = {Limit.REQUESTS: 1, Limit.INPUT_TOKENS: cost.input_tokens, Limit.OUTPUT_TOKENS: cost.output_tokens}
        needs: dict[Limit, float] = {}
        for limit, amount in amounts.items():
            capacity = self.buckets[limit].capacity(limits.per_minute.get(limit))
            needs[limit] = float(amount) if capacity is None else min(float(amount), capacity)
        return needs
