"""Deprecated claim_message / mark_interrupted: the first store's protocol, until bot/ stops using it.

Delete this module with Store.claim_message, Store.mark_interrupted and bot/store/legacy.py.
"""

from __future__ import annotations

import asyncio

from bot.store import INTERRUPTED_ERROR, ConsultationStatus, Store
from tests.store_support import (  # noqa: F401 (pytest fixtures)
    FakeClock,
    Opener,
    clock_fixture,
    consultation,
    opener_fixture,
    store_fixture,
    url_fixture,
)

S = ConsultationStatus
CONCURRENT_CLAIMS = 50


async def test_a_message_is_claimed_once(store: Store) -> None:
    assert await store.claim_message(event_id="Ev1", channel="C1", ts="100.1") is True
    assert await store.claim_message(event_id="Ev1", channel="C1", ts="100.1") is False


async def test_the_mention_and_message_events_of_one_upload_claim_it_once(store: Store) -> None:
    assert await store.claim_message(event_id="EvMention", channel="C1", ts="100.1") is True
    assert await store.claim_message(event_id="EvMessage", channel="C1", ts="100.1") is False
    assert await store.claim_message(event_id=None, channel="C1", ts="100.1") is False


async def test_claim_message_and_claim_and_add_share_the_dedupe_keys(store: Store, clock: FakeClock) -> None:
    assert await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    assert not await store.claim_and_add(event_id="Ev2", channel="C1", ts="100.1", consultations=[])
    assert await store.claim_and_add(event_id="Ev3", channel="C1", ts="200.2", consultations=[consultation(clock)])
    assert not await store.claim_message(event_id="Ev4", channel="C1", ts="200.2")


async def test_two_replicas_racing_for_one_message_yield_one_winner(store: Store, opener: Opener) -> None:
    async with await opener() as replica:
        claims = [
            (store if i % 2 else replica).claim_message(event_id=f"Ev{i}", channel="C1", ts="100.1")
            for i in range(CONCURRENT_CLAIMS)
        ]
        assert sum(await asyncio.gather(*claims)) == 1


async def test_a_retry_after_a_restart_reclaims_an_interrupted_message(
    store: Store, clock: FakeClock, opener: Opener
) -> None:
    assert await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    running = consultation(clock, status=S.RUNNING)
    await store.add(running)
    await store.close()

    async with await opener() as restarted:
        assert await restarted.mark_interrupted() == 1
        interrupted = await restarted.get(running.id)
        assert interrupted is not None
        assert (interrupted.status, interrupted.error) == (S.INTERRUPTED, INTERRUPTED_ERROR)

        retries = [restarted.claim_message(event_id=e, channel="C1", ts="100.1") for e in ("Ev1", "Ev2") * 5]
        assert sum(await asyncio.gather(*retries)) == 1


async def test_a_reclaimed_message_is_claimed_again_only_after_another_interruption(
    store: Store, clock: FakeClock
) -> None:
    await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    await store.add(consultation(clock, status=S.RUNNING))
    await store.mark_interrupted()
    assert await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    await store.add(consultation(clock, status=S.RECEIVED))

    assert not await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    assert await store.mark_interrupted() == 1
    assert await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")


async def test_replicas_interrupt_only_work_left_idle_longer_than_a_live_run_can_be(
    store: Store, clock: FakeClock
) -> None:
    await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    await store.add(consultation(clock, ts="100.1", status=S.RUNNING))
    clock.advance(400)
    await store.claim_message(event_id="Ev2", channel="C1", ts="200.2")
    await store.add(consultation(clock, ts="200.2", status=S.RUNNING))  # another replica's live work
    assert await store.mark_interrupted(idle_for_s=360) == 1
    assert await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    assert not await store.claim_message(event_id="Ev2", channel="C1", ts="200.2")
    assert [c.status for c in await store.for_message("C1", "200.2")] == [S.RUNNING]


async def test_a_finished_message_stays_claimed_after_a_restart(store: Store, clock: FakeClock) -> None:
    await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    await store.add(consultation(clock, status=S.DONE))
    assert await store.mark_interrupted() == 0
    assert not await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")


async def test_a_message_with_one_image_done_and_one_interrupted_stays_claimed(store: Store, clock: FakeClock) -> None:
    await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    await store.add(consultation(clock, status=S.DONE))
    await store.add(consultation(clock, status=S.RUNNING))
    assert await store.mark_interrupted() == 1
    assert not await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")


async def test_a_claimed_message_without_consultations_stays_claimed_after_a_restart(store: Store) -> None:
    await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    assert await store.mark_interrupted() == 0
    assert not await store.claim_message(event_id="Ev2", channel="C1", ts="100.1")
