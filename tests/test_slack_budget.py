"""The shared Slack budget in the database: instances that share it never take more than a bucket
allows together, lower priorities leave the reserve to final states, and moved boards' pointers are
held by one instance at a time until they land. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio

from bot.budget import Priority, SlackRates
from bot.store import Store
from bot.store.slack_budget import BucketRate, Pointer
from tests.store_support import Opener, clock_fixture, opener_fixture, store_fixture, url_fixture  # noqa: F401

RATE = BucketRate(per_s=1.0, burst=10.0)
T0 = 2_000_000_000.0
TAKES = 40


async def _granted(stores: list[Store], count: int, *, now_s: float, floor: float = 0.0) -> int:
    """How many of `count` takes at once, spread over `stores`, were granted."""
    waits = await asyncio.gather(
        *(stores[n % len(stores)].take_slack("chat.update", RATE, now_s=now_s, floor=floor) for n in range(count))
    )
    return sum(1 for wait_s in waits if wait_s == 0)


async def test_two_instances_together_never_take_more_than_a_buckets_burst_and_rate(
    store: Store, opener: Opener
) -> None:
    other = await opener()
    try:
        stores = [store, other]
        assert await _granted(stores, TAKES, now_s=T0) == RATE.burst
        assert await _granted(stores, TAKES, now_s=T0 + 6) == 6  # a token a second since
        assert await _granted(stores, TAKES, now_s=T0 + 60) == RATE.burst  # full again, never more
    finally:
        await other.close()


async def test_a_refused_take_says_when_there_will_be_room(store: Store) -> None:
    assert await _granted([store], 10, now_s=T0) == 10
    assert await store.take_slack("chat.update", RATE, now_s=T0 + 0.25, floor=0.0) == 0.75
    assert await store.take_slack("chat.update", RATE, now_s=T0 + 0.25, floor=3.0) == 3.75


async def test_lower_priorities_leave_the_reserve_to_final_states(store: Store) -> None:
    rates = SlackRates(burst=10, final_reserve=3.0)
    floors = {p: rates.floor(p) for p in Priority}
    assert await _granted([store], 20, now_s=T0, floor=floors[Priority.PROGRESS]) == 7
    assert await _granted([store], 20, now_s=T0, floor=floors[Priority.NORMAL]) == 1
    assert await _granted([store], 20, now_s=T0, floor=floors[Priority.FINAL]) == 2


async def test_a_clock_behind_the_buckets_refills_nothing_and_keeps_its_time(store: Store) -> None:
    assert await _granted([store], 10, now_s=T0 + 5) == 10
    assert await _granted([store], 5, now_s=T0) == 0  # an instance whose clock is 5 s behind
    assert await _granted([store], 5, now_s=T0 + 6) == 1  # one second after the newest reading, one token


async def test_channel_buckets_are_separate_and_methods_by_tier() -> None:
    rates = SlackRates()
    assert rates.bucket("chat.postMessage", "C1")[0] != rates.bucket("chat.postMessage", "C2")[0]
    update, reactions = rates.bucket("chat.update", "C1")[1], rates.bucket("reactions.remove", "C1")[1]
    assert update.per_s == 50 * 0.9 / 60 and reactions.per_s == 20 * 0.9 / 60
    assert rates.bucket("chat.postMessage", "C1")[1] == BucketRate(per_s=0.9, burst=2.0)


async def test_a_pointer_is_held_by_one_instance_at_a_time_until_it_lands(store: Store, opener: Opener) -> None:
    other = await opener()
    try:
        pointer = Pointer("C1", "100.2", "100.1", "100.9")
        await store.add_pointer(pointer, now_s=T0)
        assert await store.lease_pointers(now_s=T0, lease_s=30, limit=10) == [pointer]
        assert await other.lease_pointers(now_s=T0 + 1, lease_s=30, limit=10) == []  # held by the first
        assert await other.lease_pointers(now_s=T0 + 31, lease_s=30, limit=10) == [pointer]  # its lease ran out
        await other.drop_pointer(pointer)
        assert await store.pending_pointers() == []
    finally:
        await other.close()


async def test_a_pointer_re_aimed_while_it_was_landing_is_kept(store: Store) -> None:
    first = Pointer("C1", "100.2", "100.1", "100.9")
    await store.add_pointer(first, now_s=T0)
    await store.lease_pointers(now_s=T0, lease_s=30, limit=10)
    again = Pointer("C1", "100.2", "100.1", "101.5")
    await store.add_pointer(again, now_s=T0 + 1)
    await store.drop_pointer(first)  # the first landing knew only the old target
    assert await store.pending_pointers() == [again]
    assert await store.lease_pointers(now_s=T0 + 1, lease_s=30, limit=10) == [again]  # and is free to land now
