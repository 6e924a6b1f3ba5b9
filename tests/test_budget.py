"""The app-wide chat.update budget: Slack's rate for all boards together, final states first."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.budget import UpdateBudget


async def test_a_burst_passes_at_once_then_updates_come_at_the_rate() -> None:
    budget = UpdateBudget(per_minute=600, burst=3)  # 10 a second
    started = time.monotonic()
    for _ in range(5):
        await budget.take(final=False)
    elapsed = time.monotonic() - started
    assert 0.15 <= elapsed < 0.6  # three at once, then two at 0.1 s apart


async def test_final_states_go_before_progress_that_waited_longer() -> None:
    budget = UpdateBudget(per_minute=600, burst=1)
    await budget.take(final=False)  # the bucket is now empty
    order: list[str] = []

    async def take(name: str, final: bool) -> None:
        await budget.take(final=final)
        order.append(name)

    tasks = [asyncio.create_task(take(f"progress{i}", False)) for i in range(3)]
    tasks.append(asyncio.create_task(take("final", True)))
    await asyncio.gather(*tasks)
    assert order == ["final", "progress0", "progress1", "progress2"]


async def test_a_cancelled_writer_does_not_spend_an_update() -> None:
    budget = UpdateBudget(per_minute=600, burst=1)
    await budget.take(final=False)
    doomed = asyncio.create_task(budget.take(final=False))
    survivor = asyncio.create_task(budget.take(final=False))
    while budget.waiting < 2:
        await asyncio.sleep(0)
    doomed.cancel()
    await survivor
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert budget.waiting == 0


def test_a_budget_needs_a_rate_and_a_burst() -> None:
    with pytest.raises(ValueError, match="positive rate"):
        UpdateBudget(per_minute=0, burst=1)
