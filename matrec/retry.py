"""The one retry loop around Claude calls: outside the concurrency slot, within the caller's deadline.

    429 with retry-after       retried until the deadline; the whole process pauses for the retry-after
                               (a wait longer than the time left fails at once, saying how long)
    529 / overloaded_error     retried until the deadline, after retry-after or a jittered backoff
    503, other 5xx, 408, 409,  retried `max_retries` times with backoff (retry-after honoured)
    no connection, timeout
    stream broke off           retried once
    max_tokens reached         retried once with twice the budget (or, at the model's cap, one
                               effort level lower)
    spend limit, 4xx, refusal, not retried
    invalid output

The slot is held only while a request is in flight, never while sleeping between attempts. Each
attempt reserves its estimated cost (`structured_cost`) with the slot and settles it at what the
attempt was billed: the answer's usage, an unusable answer's, or none for a failure without one.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Generic, TypeVar

import pydantic

from matrec.claude import Claude, Reply, structured_cost
from matrec.errors import CallFailure, ModelCallError
from matrec.images import PreparedImage
from matrec.limiter import Limiter, Priority, Slot
from matrec.models import Effort, lower_effort
from matrec.results import TokenUsage

T = TypeVar("T", bound=pydantic.BaseModel)

INITIAL_BACKOFF_S = 0.5
MAX_BACKOFF_S = 8.0
BACKOFF_JITTER = 0.25  # each backoff is shortened by up to this share, so retries spread out
TRUNCATION_BUDGET_FACTOR = 2

_UNTIL_DEADLINE = frozenset({CallFailure.RATE_LIMITED, CallFailure.OVERLOADED})
_COUNTED = frozenset({CallFailure.UNAVAILABLE, CallFailure.SERVER_ERROR, CallFailure.CONNECTION, CallFailure.TIMEOUT})


@dataclass(frozen=True)
class Ask(Generic[T]):
    """One question to Claude: the prompt parts, the answer's type and the budget."""

    system: str
    images: tuple[PreparedImage, ...]
    shared_text: str
    task_text: str
    output: type[T]
    max_tokens: int
    effort: Effort
    cache_prefix: bool


@dataclass
class Trace:
    """What one call's attempts went through: counts, the last failure, and what each answer was billed."""

    attempts: int = 0
    counted: int = 0  # transient failures retried under max_retries
    backoffs: int = 0  # backoff steps taken (grows the wait)
    dropped: int = 0
    truncated: int = 0
    last: ModelCallError | None = None
    billed: list[TokenUsage] = field(default_factory=list)  # usable or not: a cut-off answer is billed too

    def overrun(self, timeout_s: float, what: str) -> ModelCallError:
        """The failure to report when the deadline passed: the last failure seen, if any, says why."""
        deadline = f"no answer within the {timeout_s:g} s {what} deadline"
        if self.last is None:
            return ModelCallError(CallFailure.TIMEOUT, deadline)
        tries = f" after {self.attempts} attempts" if self.attempts > 1 else ""
        return ModelCallError(self.last.kind, f"{self.last.reason}; {deadline}{tries}")


class Caller:
    """Asks Claude through the shared limiter, retrying as the module docstring says."""

    def __init__(
        self,
        claude: Claude,
        limiter: Limiter,
        *,
        max_retries: int,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.claude = claude
        self.limiter = limiter
        self.max_retries = max_retries
        self._jitter = jitter

    async def ask(
        self,
        ask: Ask[T],
        *,
        priority: Priority,
        deadline: float,
        on_started: Callable[[], None] | None = None,
        on_attempt: Callable[[], None] | None = None,
        on_failure: Callable[[], None] | None = None,
        trace: Trace | None = None,
    ) -> Reply[T]:
        """The answer, or ModelCallError.

        `deadline` is a loop.time() by which to give up (the caller enforces it with a timeout, and
        reports `trace.overrun(...)` when it passes); `on_attempt` runs when an attempt gets its
        slot, `on_failure` when an attempt fails (before any wait); `trace` records the attempts and
        the usage of every answer that came back.
        """
        tally = trace if trace is not None else Trace()
        loop = asyncio.get_running_loop()
        while True:
            tally.attempts += 1
            self.check_pause(tally, deadline - loop.time())
            cost = structured_cost(
                system=ask.system,
                images=ask.images,
                shared_text=ask.shared_text,
                task_text=ask.task_text,
                output=ask.output,
                max_tokens=ask.max_tokens,
            )
            try:
                async with self.limiter.slot(priority, cost) as slot:
                    if on_attempt is not None:
                        on_attempt()
                    with self.settling(slot):
                        reply = await self.claude.structured(
                            system=ask.system,
                            images=ask.images,
                            shared_text=ask.shared_text,
                            task_text=ask.task_text,
                            output=ask.output,
                            max_tokens=ask.max_tokens,
                            effort=ask.effort,
                            cache_prefix=ask.cache_prefix,
                            on_started=on_started,
                        )
                        slot.settle(reply.usage)
            except ModelCallError as error:
                tally.last = error
                if on_failure is not None:
                    on_failure()
                if error.usage is not None:
                    tally.billed.append(error.usage)
                if error.kind is CallFailure.TRUNCATED:
                    ask = self._after_truncation(ask, error, tally)
                    continue
                await asyncio.sleep(self.wait_before_retry(error, tally, deadline - loop.time()))
                continue
            tally.billed.append(reply.usage)
            return reply

    def wait_before_retry(self, error: ModelCallError, tally: Trace, left_s: float) -> float:
        """How long to wait before retrying after `error` with `left_s` to the deadline; raises the
        error to report when it is not to be retried (or the wait would pass the deadline)."""
        delay_s = self._delay(error, tally)
        wait_s = error.retry_after_s if error.kind is CallFailure.RATE_LIMITED else None
        if wait_s is not None and wait_s > left_s:
            raise _rate_limit_wait(wait_s, left_s) from None
        if delay_s >= left_s:
            raise _gave_up(error, tally) from None
        return delay_s

    def check_pause(self, tally: Trace, left_s: float) -> None:
        """Raise at once when the rate-limit pause (this process's or a shared one) outlasts the time left."""
        paused_s = self.limiter.paused_until - time.monotonic()
        if paused_s > left_s:
            raise _rate_limit_wait(paused_s, left_s)

    @contextmanager
    def settling(self, slot: Slot) -> Iterator[None]:
        """A failed attempt settles its slot at the usage it was billed, if any, and a 429's retry-after
        pauses every new call (of every process sharing the limiter's budget) before the slot is released."""
        try:
            yield
        except ModelCallError as error:
            if error.usage is not None:
                slot.settle(error.usage)
            if error.kind is CallFailure.RATE_LIMITED and error.retry_after_s is not None:
                slot.settle(TokenUsage())  # refused at the door: it used none of the per-minute tokens
                self.limiter.pause(error.retry_after_s)
            raise

    def _after_truncation(self, ask: Ask[T], error: ModelCallError, tally: Trace) -> Ask[T]:
        tally.truncated += 1
        if tally.truncated > 1:
            raise ModelCallError(CallFailure.TRUNCATED, f"{error.reason}, even after one retry with a larger budget")
        cap = self.claude.max_output_tokens or ask.max_tokens * TRUNCATION_BUDGET_FACTOR
        budget = min(ask.max_tokens * TRUNCATION_BUDGET_FACTOR, cap)
        if budget > ask.max_tokens:
            return replace(ask, max_tokens=budget)
        effort = lower_effort(ask.effort)
        if not self.claude.takes_effort or effort == ask.effort:
            # the same request again would be cut off again, and billed again
            raise ModelCallError(CallFailure.TRUNCATED, f"{error.reason}, at the model's output cap")
        return replace(ask, effort=effort)

    def _delay(self, error: ModelCallError, tally: Trace) -> float:
        """How long to wait before the next attempt; raises `error` when it is not to be retried."""
        if error.kind is CallFailure.DROPPED:
            tally.dropped += 1
            if tally.dropped > 1:
                raise _gave_up(error, tally)
            return 0.0
        if error.kind in _COUNTED:
            tally.counted += 1
            if tally.counted > self.max_retries:
                raise _gave_up(error, tally)
        elif error.kind not in _UNTIL_DEADLINE:
            raise error
        if error.retry_after_s is not None:
            return error.retry_after_s
        step = min(INITIAL_BACKOFF_S * 2.0**tally.backoffs, MAX_BACKOFF_S)
        tally.backoffs += 1
        return step * (1 - BACKOFF_JITTER * self._jitter())


def _rate_limit_wait(wait_s: float, left_s: float) -> ModelCallError:
    return ModelCallError(
        CallFailure.RATE_LIMITED,
        f"Claude's rate limit asks to wait {math.ceil(wait_s)} s, longer than the {max(left_s, 0):.0f} s left",
    )


def _gave_up(error: ModelCallError, tally: Trace) -> ModelCallError:
    if tally.attempts == 1:
        return error
    return ModelCallError(
        error.kind, f"{error.reason}; gave up after {tally.attempts} attempts", retry_after_s=error.retry_after_s
    )
