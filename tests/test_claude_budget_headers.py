"""The adapter reads Anthropic's `anthropic-ratelimit-*` headers from every response, streamed or an
error, and hands them on parsed; the engine passes them to the limiter's budget, and each attempt
reserves its estimated cost and settles at what it was billed. Against the Claude emulator's
organisation-wide limits, on a test clock."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from emulators.claude import ClaudeEmulator, Fault
from matrec.budget import CallCost, Lease, Limit, RateLimit, RateLimits
from matrec.claude import Claude
from matrec.engine import Engine
from matrec.errors import CallFailure, ModelCallError
from matrec.limiter import Limiter, Priority
from matrec.results import TokenUsage
from matrec.retry import Ask
from matrec.schema import BranchAnalysis
from tests.engine_support import KEY, engine_settings

T0 = datetime(2026, 12, 1, 5, 0, 0, tzinfo=UTC).timestamp()
MAX_TOKENS = 16_000


class ManualClock:
    """Epoch seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY, thinking=False) as claude:
        yield claude


@dataclass
class FakeBudget:
    """A SharedBudget that grants at once and keeps a history of what it was told."""

    history: list[tuple[str, object]] = field(default_factory=list)
    paused_until: float = 0.0

    async def acquire(self, priority: Priority, cost: CallCost) -> Lease:
        self.history.append(("acquire", cost))
        return object()

    def release(self, lease: Lease, usage: TokenUsage | None) -> None:
        self.history.append(("release", usage))

    def pause(self, seconds: float) -> None:
        self.history.append(("pause", seconds))

    def observe(self, limits: RateLimits) -> None:
        self.history.append(("observe", limits))

    def told(self, what: str) -> list[object]:
        return [value for kind, value in self.history if kind == what]


def _ask(max_tokens: int = MAX_TOKENS) -> Ask[BranchAnalysis]:
    return Ask(
        system="You are a materials engineer.",
        images=(),
        shared_text="<part_context>a small bracket</part_context>",
        task_text="<task>branch</task>\n<material_class>metal</material_class>\nScore: strength, cost.",
        output=BranchAnalysis,
        max_tokens=max_tokens,
        effort="medium",
        cache_prefix=False,
    )


@pytest.fixture
async def engine(emulator: ClaudeEmulator) -> AsyncIterator[tuple[Engine, FakeBudget]]:
    settings = engine_settings(emulator, max_retries=0)
    budget = FakeBudget()
    claude = Claude.from_settings(settings)
    try:
        yield Engine(claude, settings, Limiter(settings.concurrency, budget)), budget
    finally:
        await claude.aclose()


async def _call(engine: Engine, max_tokens: int = MAX_TOKENS) -> None:
    await engine.caller.ask(_ask(max_tokens), priority=Priority.BRANCH, deadline=math.inf)


async def test_a_streamed_answers_rate_limit_headers_are_read_and_passed_to_the_budget(
    emulator: ClaudeEmulator, engine: tuple[Engine, FakeBudget]
) -> None:
    clock = ManualClock()
    emulator.org_limits(
        requests_per_minute=50, input_tokens_per_minute=40_000, output_tokens_per_minute=80_000, clock=clock
    )
    running, budget = engine
    await _call(running)

    (seen,) = budget.told("observe")
    assert seen is running.claude.rate_limits
    assert isinstance(seen, RateLimits)
    requests, output = seen.limits[Limit.REQUESTS], seen.limits[Limit.OUTPUT_TOKENS]
    assert (requests.limit, requests.remaining, requests.reset_at) == (50, 49, T0 + 2)  # 1.2 s, to the second
    # At the start of the stream the output is still reserved at max_tokens: full again in 12 s.
    assert (output.limit, output.remaining, output.reset_at) == (80_000, 64_000, T0 + 12)
    assert seen.limits[Limit.INPUT_TOKENS].limit == 40_000


async def test_a_429s_rate_limit_headers_are_read_too(
    emulator: ClaudeEmulator, engine: tuple[Engine, FakeBudget]
) -> None:
    emulator.org_limits(requests_per_minute=1, clock=ManualClock())
    running, budget = engine
    await _call(running)
    with pytest.raises(ModelCallError) as refused:
        await running.caller.ask(_ask(), priority=Priority.BRANCH, deadline=0.0)  # no time to wait the minute

    assert refused.value.kind is CallFailure.RATE_LIMITED
    exhausted = budget.told("observe")[-1]
    assert isinstance(exhausted, RateLimits)
    assert exhausted.limits[Limit.REQUESTS] == RateLimit(limit=1, remaining=0, reset_at=T0 + 60)
    assert budget.told("pause") == [60.0]


async def test_each_attempt_reserves_its_estimate_and_settles_at_its_usage(
    emulator: ClaudeEmulator, engine: tuple[Engine, FakeBudget]
) -> None:
    running, budget = engine
    await _call(running, max_tokens=20_000)

    (cost,) = budget.told("acquire")
    assert isinstance(cost, CallCost)
    assert cost.output_tokens == 20_000 and cost.input_tokens > 0
    (usage,) = budget.told("release")
    assert isinstance(usage, TokenUsage) and usage.output_tokens > 0
    billed = emulator.requests[0].usage
    assert billed is not None
    assert (usage.input_tokens, usage.output_tokens) == (billed["input_tokens"], billed["output_tokens"])


async def test_a_refused_call_settles_at_nothing_and_a_broken_one_at_no_usage(
    emulator: ClaudeEmulator, engine: tuple[Engine, FakeBudget]
) -> None:
    running, budget = engine
    emulator.fail(Fault.RATE_LIMITED, retry_after_s=0.01)
    emulator.fail(Fault.SERVER_ERROR)
    with pytest.raises(ModelCallError):
        await _call(running)
    assert budget.told("release") == [TokenUsage(), None]


def test_rate_limit_headers_parse_as_the_api_sends_them() -> None:
    headers = {
        "anthropic-ratelimit-requests-limit": "50",
        "anthropic-ratelimit-requests-remaining": "49",
        "anthropic-ratelimit-requests-reset": "2026-12-01T05:00:02Z",
        "anthropic-ratelimit-output-tokens-limit": "8000",
        "anthropic-ratelimit-output-tokens-remaining": "7000",
        "anthropic-ratelimit-output-tokens-reset": "not a time",
        "anthropic-ratelimit-input-tokens-limit": "lots",
        "anthropic-ratelimit-input-tokens-remaining": "1000",
    }
    parsed = RateLimits.from_headers(headers, T0)
    assert parsed is not None
    assert parsed.limits == {
        Limit.REQUESTS: RateLimit(50, 49, T0 + 2),
        Limit.OUTPUT_TOKENS: RateLimit(8000, 7000, None),
    }
    assert RateLimits.from_headers({"request-id": "req_1"}, T0) is None
