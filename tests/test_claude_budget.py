"""The Claude budget shared through the store: two Store objects on one database act as two instances.

Every test runs against SQLite and PostgreSQL. Time is a fake clock the budgets read (in seconds);
a test that moves it calls `flush()`, so the budget steps at once with the clock as it is.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest

from bot.claude_budget import StoreBudget, Ticket
from bot.metrics import Metrics
from bot.store import Store
from bot.store.claude_budget import Outcome, Step
from matrec.budget import CallCost, Lease, Limit, RateLimit, RateLimits
from matrec.budget_buckets import BudgetLimits, Waiting
from matrec.limiter import Limiter, Priority
from matrec.results import TokenUsage
from tests.store_support import url_fixture  # noqa: F401  # the fixture, by its name

START_S = 1_900_000_000.0
TTL_S = 30.0
WAIT_S = 20.0
BRANCH_COST = CallCost(input_tokens=1_000, output_tokens=2_000)
TOLERANCE_S = 1e-4  # pytest.approx's relative default would allow half an hour at time.time()'s size
FAST_POLL_S = 0.02  # SQLite has no NOTIFY: two instances on one file learn of each other's steps by polling


class Seconds:
    """A time.time() that moves only when told to."""

    def __init__(self) -> None:
        self.now = START_S

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Instances:
    """Budgets over their own Store each, on one database: instances of the bot."""

    def __init__(self, url: str, clock: Seconds, stack: AsyncExitStack) -> None:
        self.url = url
        self.clock = clock
        self.stack = stack

    async def open(self, limits: BudgetLimits, name: str) -> StoreBudget:
        store = await Store.open(self.url)
        self.stack.push_async_callback(store.close)
        budget = StoreBudget(
            store,
            limits,
            owner=name,
            ttl_s=TTL_S,
            database_url=self.url,
            single=False,
            poll_s=FAST_POLL_S,
            clock=self.clock,
        )
        await budget.start()
        self.stack.push_async_callback(budget.aclose)
        if not self.url.startswith("sqlite"):
            await asyncio.wait_for(_listening(budget), WAIT_S)
        return budget


async def _listening(budget: StoreBudget) -> None:
    while not budget.listening:  # the LISTEN connection opens in the background
        await asyncio.sleep(0.01)


@pytest.fixture(name="clock")
def clock_fixture() -> Seconds:
    """The budgets' fake clock."""
    return Seconds()


@pytest.fixture(name="instances")
async def instances_fixture(url: str, clock: Seconds) -> AsyncIterator[Instances]:
    """A way to start instances on a fresh database of each backend; all stopped at the end."""
    async with AsyncExitStack() as stack:
        yield Instances(url, clock, stack)


def _calls(count: int, **per_minute: int) -> BudgetLimits:
    limits: dict[Limit, int | None] = {Limit.REQUESTS: None, Limit.INPUT_TOKENS: None, Limit.OUTPUT_TOKENS: None}
    names = {"requests": Limit.REQUESTS, "input": Limit.INPUT_TOKENS, "output": Limit.OUTPUT_TOKENS}
    limits |= {names[name]: value for name, value in per_minute.items()}
    return BudgetLimits(calls=count, per_minute=limits)


def _id(lease: Lease) -> str:
    assert isinstance(lease, Ticket)
    return lease.id


async def _granted(task: asyncio.Task[Lease]) -> Lease:
    return await asyncio.wait_for(task, WAIT_S)


async def _waiting(budget: StoreBudget, count: int) -> Outcome:
    """Once the store has `count` calls waiting (of any instance), as this budget's latest step saw."""
    return await asyncio.wait_for(budget.until(lambda outcome: outcome.waiting == count), WAIT_S)


async def test_two_instances_never_hold_more_than_the_shared_cap_together(instances: Instances) -> None:
    cap = 3
    first = await instances.open(_calls(cap), "a")
    second = await instances.open(_calls(cap), "b")
    inside = 0
    peak = 0
    full = asyncio.Event()
    done = 0

    async def call(budget: StoreBudget) -> None:
        nonlocal inside, peak, done
        lease = await budget.acquire(Priority.BRANCH, BRANCH_COST)
        inside += 1
        peak = max(peak, inside)
        if inside == cap:
            full.set()
        await full.wait()  # the first ones hold on until the cap is reached
        for _ in range(3):
            await asyncio.sleep(0)  # hold the slot while others try
        inside -= 1
        done += 1
        budget.release(lease, TokenUsage(input_tokens=900, output_tokens=300))

    async with asyncio.timeout(WAIT_S * 2):
        await asyncio.gather(*(call(first if i % 2 else second) for i in range(40)))

    assert (peak, done, inside) == (cap, 40, 0)
    outcome = await first.until(lambda _: True)
    assert outcome.in_flight <= cap


async def test_a_crashed_instances_slots_come_back_once_its_leases_expire(instances: Instances, clock: Seconds) -> None:
    limits = _calls(2)
    alive = await instances.open(limits, "alive")
    crashed = await Store.open(instances.url)  # an instance that took both slots, then died
    instances.stack.push_async_callback(crashed.close)
    joined = [Waiting(f"dead{i}", int(Priority.BRANCH), clock(), BRANCH_COST) for i in range(2)]
    taken = await crashed.claude_budget_step(Step("dead", TTL_S, joined=joined), limits, clock())
    assert taken.granted == {"dead0", "dead1"}

    waiter = asyncio.create_task(alive.acquire(Priority.BRANCH, BRANCH_COST))
    outcome = await _waiting(alive, 1)
    assert (outcome.in_flight, waiter.done()) == (2, False)

    clock.advance(TTL_S / 2)  # the dead instance's leases are not renewed...
    outcome = await alive.flush()
    assert (outcome.evicted, outcome.in_flight, waiter.done()) == (0, 2, False)
    clock.advance(TTL_S)  # ...and once they expire its slots are free
    assert (await alive.flush()).evicted == 2
    lease = await _granted(waiter)
    assert (await alive.until(lambda o: o.in_flight == 1)).waiting == 0
    alive.release(lease, None)


async def test_a_live_instances_heartbeat_keeps_its_leases(instances: Instances, clock: Seconds) -> None:
    first = await instances.open(_calls(1), "a")
    second = await instances.open(_calls(1), "b")
    lease = await first.acquire(Priority.BRANCH, BRANCH_COST)
    waiter = asyncio.create_task(second.acquire(Priority.BRANCH, BRANCH_COST))
    await _waiting(second, 1)

    for _ in range(4):  # well past the TTL, in steps shorter than it: each heartbeat renews
        clock.advance(TTL_S / 2)
        assert (await first.flush()).known == frozenset({_id(lease)})
        assert (await second.flush()).evicted == 0
    assert not waiter.done()
    first.release(lease, None)
    second.release(await _granted(waiter), None)


async def test_output_is_reserved_at_max_tokens_and_settled_at_the_actual_output(instances: Instances) -> None:
    limits = _calls(8, output=3_000)
    first = await instances.open(limits, "a")
    second = await instances.open(limits, "b")
    lease = await first.acquire(Priority.BRANCH, BRANCH_COST)  # 2,000 of the 3,000 a minute reserved
    waiter = asyncio.create_task(second.acquire(Priority.BRANCH, BRANCH_COST))
    outcome = await _waiting(second, 1)
    assert outcome.retry_at is not None and not waiter.done()  # 1,000 left: it waits for the bucket

    first.release(lease, TokenUsage(input_tokens=1_000, output_tokens=500))  # 1,500 back at once
    second.release(await _granted(waiter), TokenUsage(output_tokens=100))


async def test_cache_reads_do_not_count_toward_the_input_limit(instances: Instances) -> None:
    limits = _calls(8, input=3_000)
    first = await instances.open(limits, "a")
    second = await instances.open(limits, "b")
    cost = CallCost(input_tokens=2_000, output_tokens=100)
    lease = await first.acquire(Priority.BRANCH, cost)
    waiter = asyncio.create_task(second.acquire(Priority.BRANCH, cost))
    await _waiting(second, 1)

    # Counted: 200 uncached + 300 written to the cache; the 50,000 read from it are not.
    first.release(lease, TokenUsage(input_tokens=200, cache_write_tokens=300, cache_read_tokens=50_000))
    second.release(await _granted(waiter), None)


async def test_a_bucket_spent_by_actual_usage_refills_over_the_minute(instances: Instances, clock: Seconds) -> None:
    limits = _calls(8, output=2_000)
    first = await instances.open(limits, "a")
    second = await instances.open(limits, "b")
    first.release(await first.acquire(Priority.BRANCH, BRANCH_COST), TokenUsage(output_tokens=2_000))
    waiter = asyncio.create_task(second.acquire(Priority.BRANCH, BRANCH_COST))
    outcome = await _waiting(second, 1)
    assert outcome.retry_at == pytest.approx(clock() + 60.0, abs=TOLERANCE_S)  # the whole bucket: a minute

    clock.advance(59.0)
    assert (await second.flush()).retry_at == pytest.approx(clock() + 1.0, abs=TOLERANCE_S)
    assert not waiter.done()
    clock.advance(1.0)
    await second.flush()
    second.release(await _granted(waiter), None)


async def test_a_429s_retry_after_on_one_instance_pauses_the_other(instances: Instances, clock: Seconds) -> None:
    first = await instances.open(_calls(8), "a")
    second = await instances.open(_calls(8), "b")
    Limiter(8, first).pause(12.0)  # what the retry loop does with a 429's retry-after
    assert (await first.flush()).paused_until == clock() + 12.0

    limiter = Limiter(8, second)
    waiter = asyncio.create_task(second.acquire(Priority.FOLLOW_UP, BRANCH_COST))
    outcome = await _waiting(second, 1)
    assert outcome.retry_at == clock() + 12.0 and not waiter.done()
    assert limiter.paused_until - time.monotonic() == pytest.approx(12.0, abs=1.0)  # deadlines are checked against it

    clock.advance(12.0)
    await second.flush()
    second.release(await _granted(waiter), None)


async def test_exhausted_remaining_headers_pause_new_calls_until_the_reset(
    instances: Instances, clock: Seconds
) -> None:
    first = await instances.open(_calls(8), "a")
    second = await instances.open(_calls(8), "b")
    reset_at = clock() + 12.0
    exhausted = RateLimit(limit=2_000, remaining=0, reset_at=reset_at)
    first.observe(RateLimits(clock(), {Limit.OUTPUT_TOKENS: exhausted}))
    await first.flush()

    waiter = asyncio.create_task(second.acquire(Priority.BRANCH, BRANCH_COST))  # needs the whole 2,000
    outcome = await _waiting(second, 1)
    assert outcome.retry_at == pytest.approx(reset_at, abs=TOLERANCE_S)

    clock.advance(11.5)
    assert (await second.flush()).retry_at == pytest.approx(reset_at, abs=TOLERANCE_S)
    assert not waiter.done()
    clock.advance(0.5)
    await second.flush()
    second.release(await _granted(waiter), None)


async def test_a_remaining_count_that_cannot_fit_the_next_call_holds_it_only_until_it_fits(
    instances: Instances, clock: Seconds
) -> None:
    first = await instances.open(_calls(8), "a")
    reported = RateLimit(limit=60, remaining=0, reset_at=clock() + 60.0)  # one request a second refills
    first.observe(RateLimits(clock(), {Limit.REQUESTS: reported}))
    waiter = asyncio.create_task(first.acquire(Priority.BRANCH, BRANCH_COST))
    outcome = await _waiting(first, 1)
    assert outcome.retry_at == pytest.approx(clock() + 1.0, abs=TOLERANCE_S)
    clock.advance(1.0)
    await first.flush()
    first.release(await _granted(waiter), None)


async def test_follow_ups_then_aggregations_then_branches_then_arrival_across_instances(
    instances: Instances, clock: Seconds
) -> None:
    first = await instances.open(_calls(1), "a")
    second = await instances.open(_calls(1), "b")
    holder = await first.acquire(Priority.BRANCH, BRANCH_COST)
    order: list[str] = []

    async def call(budget: StoreBudget, name: str, priority: Priority) -> None:
        lease = await budget.acquire(priority, BRANCH_COST)
        order.append(name)
        budget.release(lease, None)

    queued: list[asyncio.Task[None]] = []
    arrivals: list[tuple[StoreBudget, str, Priority]] = [
        (second, "branch1", Priority.BRANCH),
        (first, "branch2", Priority.BRANCH),
        (second, "aggregation", Priority.AGGREGATION),
        (first, "follow-up", Priority.FOLLOW_UP),
        (second, "branch3", Priority.BRANCH),
    ]
    for count, (budget, name, priority) in enumerate(arrivals, start=1):
        queued.append(asyncio.create_task(call(budget, name, priority)))
        await _waiting(budget, count)
        clock.advance(0.001)  # arrival order
    first.release(holder, None)
    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*queued)
    assert order == ["follow-up", "aggregation", "branch1", "branch2", "branch3"]


async def test_a_cancelled_waiter_leaves_the_queue_and_its_late_grant_is_handed_back(instances: Instances) -> None:
    first = await instances.open(_calls(1), "a")
    second = await instances.open(_calls(1), "b")
    holder = await first.acquire(Priority.BRANCH, BRANCH_COST)
    doomed = asyncio.create_task(second.acquire(Priority.FOLLOW_UP, BRANCH_COST))
    await _waiting(second, 1)
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await second.until(lambda o: o.waiting == 0)

    first.release(holder, None)
    lease = await asyncio.wait_for(second.acquire(Priority.BRANCH, BRANCH_COST), WAIT_S)
    assert (await second.until(lambda o: o.in_flight == 1)).granted == frozenset({_id(lease)})
    second.release(lease, None)


async def test_metrics_show_the_calls_in_flight_and_waiting_across_instances(instances: Instances) -> None:
    first = await instances.open(_calls(1), "a")
    second = await instances.open(_calls(1), "b")
    metrics = Metrics()
    metrics.watch_claude_budget(second)
    lease = await first.acquire(Priority.BRANCH, BRANCH_COST)
    waiter = asyncio.create_task(second.acquire(Priority.BRANCH, BRANCH_COST))
    await _waiting(second, 1)

    body, _ = await metrics.exposition()
    assert 'matrec_claude_calls{state="in_flight"} 1.0' in body.decode()
    assert 'matrec_claude_calls{state="waiting"} 1.0' in body.decode()
    first.release(lease, None)
    second.release(await _granted(waiter), None)
