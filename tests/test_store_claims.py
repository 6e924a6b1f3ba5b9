"""claim_and_add: an upload's dedupe keys and its consultations land together, exactly once."""

from __future__ import annotations

import asyncio

import pytest

from bot.store import Store
from tests.store_support import (  # noqa: F401 (pytest fixtures)
    FakeClock,
    Opener,
    clock_fixture,
    consultation,
    opener_fixture,
    store_fixture,
    url_fixture,
)

CONCURRENT_CLAIMS = 50


async def test_a_claimed_message_gets_its_consultations_once(store: Store, clock: FakeClock) -> None:
    first, second = consultation(clock), consultation(clock)

    assert await store.claim_and_add(event_id="Ev1", channel="C1", ts="100.1", consultations=[first, second])
    assert not await store.claim_and_add(event_id="Ev1", channel="C1", ts="100.1", consultations=[consultation(clock)])

    assert [c.id for c in await store.for_message("C1", "100.1")] == [first.id, second.id]


async def test_the_mention_and_message_events_of_one_upload_claim_it_once(store: Store, clock: FakeClock) -> None:
    assert await store.claim_and_add(event_id="EvMention", channel="C1", ts="100.1", consultations=[])
    assert not await store.claim_and_add(
        event_id="EvMessage", channel="C1", ts="100.1", consultations=[consultation(clock)]
    )
    assert not await store.claim_and_add(event_id=None, channel="C1", ts="100.1", consultations=[])
    assert await store.for_message("C1", "100.1") == []


async def test_a_seen_event_id_claims_nothing_even_for_another_message(store: Store, clock: FakeClock) -> None:
    assert await store.claim_and_add(event_id="Ev1", channel="C1", ts="100.1", consultations=[])
    assert not await store.claim_and_add(
        event_id="Ev1", channel="C1", ts="200.2", consultations=[consultation(clock, ts="200.2")]
    )
    assert await store.for_message("C1", "200.2") == []


async def test_the_same_ts_in_another_channel_is_another_message(store: Store) -> None:
    assert await store.claim_and_add(event_id=None, channel="C1", ts="100.1", consultations=[])
    assert await store.claim_and_add(event_id=None, channel="C2", ts="100.1", consultations=[])


async def test_fifty_concurrent_claims_of_one_message_yield_one_winner(store: Store, clock: FakeClock) -> None:
    claims = [
        store.claim_and_add(event_id=f"Ev{i % 2}", channel="C1", ts="100.1", consultations=[consultation(clock)])
        for i in range(CONCURRENT_CLAIMS)
    ]
    assert sum(await asyncio.gather(*claims)) == 1
    assert len(await store.for_message("C1", "100.1")) == 1


async def test_two_replicas_racing_for_one_message_yield_one_winner(
    store: Store, clock: FakeClock, opener: Opener
) -> None:
    async with await opener() as replica:
        claims = [
            (store if i % 2 else replica).claim_and_add(
                event_id=f"Ev{i}", channel="C1", ts="100.1", consultations=[consultation(clock), consultation(clock)]
            )
            for i in range(CONCURRENT_CLAIMS)
        ]
        assert sum(await asyncio.gather(*claims)) == 1
    assert len(await store.for_message("C1", "100.1")) == 2


async def test_a_consultation_insert_that_fails_rolls_the_dedupe_keys_back(store: Store, clock: FakeClock) -> None:
    existing = consultation(clock, ts="50.5")
    await store.add(existing)
    fresh = consultation(clock)

    with pytest.raises(ValueError, match="already stored"):
        await store.claim_and_add(event_id="Ev1", channel="C1", ts="100.1", consultations=[fresh, existing])

    assert await store.for_message("C1", "100.1") == []
    assert await store.claim_and_add(event_id="Ev1", channel="C1", ts="100.1", consultations=[fresh])
    assert [c.id for c in await store.for_message("C1", "100.1")] == [fresh.id]
