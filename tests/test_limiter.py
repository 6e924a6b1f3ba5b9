"""The shared limiter: a bound on concurrent calls, served by priority then arrival."""

from __future__ import annotations

import asyncio

import pytest

from matrec.limiter import Limiter, Priority


async def test_no_more_than_capacity_hold_a_slot_at_once() -> None:
    limiter = Limiter(3)
    release = asyncio.Event()
    entered = 0

    async def hold() -> None:
        nonlocal entered
        async with limiter.slot():
            entered += 1
            await release.wait()

    tasks = [asyncio.create_task(hold()) for _ in range(10)]
    while limiter.waiting < 7:
        await asyncio.sleep(0)
    assert (limiter.in_use, entered) == (3, 3)
    release.set()
    await asyncio.gather(*tasks)
    assert (limiter.peak, limiter.in_use, entered) == (3, 0, 10)


async def test_an_aggregation_waiting_goes_before_branches_that_queued_earlier() -> None:
    limiter = Limiter(1)
    order: list[str] = []
    gate = asyncio.Event()

    async def run(name: str, priority: Priority) -> None:
        async with limiter.slot(priority):
            order.append(name)
            await gate.wait()

    first = asyncio.create_task(run("first", Priority.BRANCH))
    while limiter.in_use == 0:
        await asyncio.sleep(0)
    queued = [asyncio.create_task(run(f"branch{i}", Priority.BRANCH)) for i in range(2)]
    queued.append(asyncio.create_task(run("aggregation", Priority.AGGREGATION)))
    while limiter.waiting < 3:
        await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(first, *queued)
    assert order == ["first", "aggregation", "branch0", "branch1"]


async def test_a_cancelled_waiter_does_not_leak_its_slot() -> None:
    limiter = Limiter(1)
    gate = asyncio.Event()

    async def hold() -> None:
        async with limiter.slot():
            await gate.wait()

    holder = asyncio.create_task(hold())
    while limiter.in_use == 0:
        await asyncio.sleep(0)
    waiter = asyncio.create_task(hold())
    while limiter.waiting == 0:
        await asyncio.sleep(0)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.set()
    await holder
    assert (limiter.in_use, limiter.waiting) == (0, 0)
    async with limiter.slot():
        assert limiter.in_use == 1
