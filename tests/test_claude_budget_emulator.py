"""Two instances' engines, sharing the Claude budget through one database, against the Claude emulator's
organisation-wide limits: they learn the limits from its headers and meet them together without a
429, and a 429 one of them gets holds the other back. SQLite and PostgreSQL; the emulator and the
budgets read one test clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.claude_budget import StoreBudget, budget_limits
from bot.store import Store
from emulators.claude import ClaudeEmulator, Fault
from matrec.claude import Claude
from matrec.engine import Engine
from matrec.errors import CallFailure, ModelCallError
from matrec.limiter import Limiter, Priority
from matrec.retry import Ask
from matrec.schema import BranchAnalysis
from tests.engine_support import KEY, engine_settings
from tests.store_support import url_fixture  # noqa: F401  # the fixture, by its name
from tests.test_claude_budget import FAST_POLL_S, TTL_S, Seconds

WAIT_S = 20.0
ASK = Ask(
    system="You are a materials engineer.",
    images=(),
    shared_text="<part_context>a small bracket</part_context>",
    task_text="<task>branch</task>\n<material_class>metal</material_class>\nScore: strength, cost.",
    output=BranchAnalysis,
    max_tokens=4_000,
    effort="medium",
    cache_prefix=False,
)


@pytest.fixture
async def emulator() -> AsyncIterator[ClaudeEmulator]:
    async with ClaudeEmulator(api_key=KEY, thinking=False) as claude:
        yield claude


class Instance:
    """One bot instance's engine, its limiter asking a budget kept in the shared database."""

    def __init__(self, engine: Engine, budget: StoreBudget) -> None:
        self.engine = engine
        self.budget = budget

    async def ask(self) -> None:
        await self.engine.caller.ask(ASK, priority=Priority.BRANCH, deadline=asyncio.get_running_loop().time() + WAIT_S)


@pytest.fixture
async def instances(url: str, emulator: ClaudeEmulator) -> AsyncIterator[tuple[Instance, Instance, Seconds]]:
    clock = Seconds()
    settings = engine_settings(emulator, max_retries=0, concurrency=8)
    made: list[tuple[Store, StoreBudget, Claude]] = []
    try:
        for name in ("a", "b"):
            store = await Store.open(url)
            budget = StoreBudget(
                store,
                budget_limits(settings),
                owner=name,
                ttl_s=TTL_S,
                database_url=url,
                single=False,
                poll_s=FAST_POLL_S,
                clock=clock,
            )
            await budget.start()
            made.append((store, budget, Claude.from_settings(settings)))
        first, second = (Instance(Engine(c, settings, Limiter(settings.concurrency, b)), b) for _, b, c in made)
        yield first, second, clock
    finally:
        for store, budget, claude in made:
            await budget.aclose()
            await claude.aclose()
            await store.close()


async def test_two_instances_learn_the_organisations_limit_from_its_headers_and_meet_it_without_a_429(
    emulator: ClaudeEmulator, instances: tuple[Instance, Instance, Seconds]
) -> None:
    first, second, clock = instances
    emulator.org_limits(requests_per_minute=4, clock=clock)
    await first.ask()  # the first response tells the limit: 4 a minute, 3 left
    await first.budget.flush()

    await asyncio.gather(*(second.ask() for _ in range(3)))
    fifth = asyncio.create_task(second.ask())
    outcome = await asyncio.wait_for(second.budget.until(lambda o: o.waiting == 1), WAIT_S)
    assert outcome.retry_at == pytest.approx(clock() + 15.0, abs=1e-3)  # one request refills in 15 s
    assert (len(emulator.requests), fifth.done()) == (4, False)

    clock.now += 15.0
    await second.budget.flush()
    await asyncio.wait_for(fifth, WAIT_S)
    assert len(emulator.requests) == 5
    assert emulator.rate_limited == {}


async def test_a_429_one_instance_gets_holds_the_others_calls_back_for_its_retry_after(
    emulator: ClaudeEmulator, instances: tuple[Instance, Instance, Seconds]
) -> None:
    first, second, clock = instances
    emulator.fail(Fault.RATE_LIMITED, retry_after_s=30.0)
    with pytest.raises(ModelCallError) as refused:  # 30 s is longer than its deadline: it gives up at once
        await first.engine.caller.ask(ASK, priority=Priority.BRANCH, deadline=asyncio.get_running_loop().time() + 1.0)
    assert refused.value.kind is CallFailure.RATE_LIMITED
    await first.budget.flush()

    held = asyncio.create_task(second.ask())
    outcome = await asyncio.wait_for(second.budget.until(lambda o: o.waiting == 1), WAIT_S)
    assert outcome.paused_until == pytest.approx(clock() + 30.0, abs=1e-3)
    assert (len(emulator.requests), held.done()) == (1, False)

    clock.now += 30.0
    await second.budget.flush()
    await asyncio.wait_for(held, WAIT_S)
    assert len(emulator.requests) == 2
