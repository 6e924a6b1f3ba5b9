"""Ownership of active consultations: heartbeat, take_over of silent owners' work, release at shutdown."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta
from typing import Any

from bot.store import Consultation, ConsultationStatus, Store
from tests.store_support import (  # noqa: F401 (pytest fixtures)
    START,
    FakeClock,
    Opener,
    clock_fixture,
    consultation,
    opener_fixture,
    store_fixture,
    url_fixture,
)

S = ConsultationStatus
STALE_AFTER_S = 60.0
REPLICAS = 3
TAKERS_PER_REPLICA = 2
ORPHANS = 30


async def _add(store: Store, clock: FakeClock, **fields: Any) -> Consultation:
    added = consultation(clock, ts=f"{clock().timestamp():.6f}", **fields)
    await store.add(added)
    return added


async def test_heartbeat_marks_only_the_owners_active_consultations(store: Store, clock: FakeClock) -> None:
    received = await _add(store, clock, owner="a")
    running = await _add(store, clock, owner="a", status=S.RUNNING)
    done = await _add(store, clock, owner="a", status=S.DONE)
    others = await _add(store, clock, owner="b")
    clock.advance(10)

    assert await store.heartbeat("a") == 2
    assert await store.heartbeat("nobody") == 0

    beats = {c.id: c.heartbeat_at for c in await store.recent()}
    later = START + timedelta(seconds=10)
    assert (beats[received.id], beats[running.id], beats[done.id], beats[others.id]) == (later, later, START, START)


async def test_take_over_leaves_a_live_owner_alone_and_takes_a_silent_ones_work(store: Store, clock: FakeClock) -> None:
    work = await _add(store, clock, owner="a", status=S.RUNNING)
    clock.advance(STALE_AFTER_S / 2)
    assert await store.take_over("b", stale_after_s=STALE_AFTER_S) == []
    await store.heartbeat("a")
    clock.advance(STALE_AFTER_S - 1)
    assert await store.take_over("b", stale_after_s=STALE_AFTER_S) == []
    clock.advance(1)

    (taken,) = await store.take_over("b", stale_after_s=STALE_AFTER_S)

    assert (taken.id, taken.owner, taken.heartbeat_at, taken.resumes, taken.status) == (
        work.id,
        "b",
        clock(),
        1,
        S.RUNNING,
    )
    assert await store.get(work.id) == taken
    assert await store.heartbeat("a") == 0


async def test_take_over_never_takes_its_own_or_finished_work(store: Store, clock: FakeClock) -> None:
    await _add(store, clock, owner="b", heartbeat_at=START - timedelta(days=1))
    for status in (S.DONE, S.FAILED, S.REJECTED, S.INTERRUPTED):
        await _add(store, clock, owner="a", status=status, heartbeat_at=START - timedelta(days=1))

    assert await store.take_over("b", stale_after_s=0) == []


async def test_work_without_an_owner_or_heartbeat_is_taken_at_once(store: Store, clock: FakeClock) -> None:
    unowned = await _add(store, clock)
    clock.advance(1)
    never_beat = await _add(store, clock, owner="a")
    await store.update(never_beat.id, heartbeat_at=None)

    taken = await store.take_over("b", stale_after_s=3600)

    assert [c.id for c in taken] == [unowned.id, never_beat.id]


async def test_stale_after_zero_takes_every_active_consultation_of_other_owners(store: Store, clock: FakeClock) -> None:
    fresh = await _add(store, clock, owner="a")
    mine = await _add(store, clock, owner="b")

    taken = await store.take_over("b", stale_after_s=0)

    assert [c.id for c in taken] == [fresh.id]
    kept = await store.get(mine.id)
    assert kept is not None and (kept.owner, kept.resumes) == ("b", 0)


async def test_take_over_takes_at_most_limit_oldest_first_and_counts_resumes(store: Store, clock: FakeClock) -> None:
    added = []
    for _ in range(5):
        added.append(await _add(store, clock, owner="a"))
        clock.advance(1)
    clock.advance(STALE_AFTER_S)

    first = await store.take_over("b", stale_after_s=STALE_AFTER_S, limit=2)
    second = await store.take_over("c", stale_after_s=STALE_AFTER_S, limit=2)
    everything = await store.take_over("d", stale_after_s=0)

    assert [c.id for c in first] == [c.id for c in added[:2]]
    assert [c.id for c in second] == [c.id for c in added[2:4]]
    assert [(c.id, c.resumes) for c in everything] == [(c.id, 2) for c in added[:4]] + [(added[4].id, 1)]


async def test_concurrent_take_overs_never_share_a_consultation(store: Store, clock: FakeClock, opener: Opener) -> None:
    orphans = [await _add(store, clock, owner="dead", status=S.RUNNING) for _ in range(ORPHANS)]
    clock.advance(STALE_AFTER_S)
    replicas = [await opener() for _ in range(REPLICAS)]
    try:
        takers = [(replica, f"bot-{r}-{t}") for r, replica in enumerate(replicas) for t in range(TAKERS_PER_REPLICA)]
        results = await asyncio.gather(
            *(replica.take_over(owner, stale_after_s=STALE_AFTER_S, limit=ORPHANS // 4) for replica, owner in takers)
        )
    finally:
        for replica in replicas:
            await replica.close()

    taken = Counter(c.id for result in results for c in result)
    assert taken == Counter({c.id: 1 for c in orphans})
    owners = {c.id: (c.owner, c.resumes) for c in await store.recent(limit=ORPHANS)}
    assert all(resumes == 1 for _, resumes in owners.values())
    assert {owners[c.id][0] for result, (_, owner) in zip(results, takers, strict=True) for c in result} <= {
        owner for _, owner in takers
    }
    for result, (_, owner) in zip(results, takers, strict=True):
        assert all(owners[c.id][0] == owner for c in result)


async def test_release_lets_any_instance_take_over_at_once(store: Store, clock: FakeClock, opener: Opener) -> None:
    running = await _add(store, clock, owner="a", status=S.RUNNING)
    done = await _add(store, clock, owner="a", status=S.DONE)

    assert await store.release("a") == 1

    async with await opener() as other:
        taken = await other.take_over("b", stale_after_s=3600)
    assert [c.id for c in taken] == [running.id]
    finished = await store.get(done.id)
    assert finished is not None and (finished.owner, finished.heartbeat_at) == ("a", START)
