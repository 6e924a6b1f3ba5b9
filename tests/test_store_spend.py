"""The spend ledger: reservations within the day's caps, settled or released, shared by every store on a database."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest

from bot.store import Store
from tests.store_support import (  # noqa: F401 (pytest fixtures)
    FakeClock,
    Opener,
    clock_fixture,
    opener_fixture,
    store_fixture,
    url_fixture,
)

DAY = date(2030, 1, 2)
NEXT_DAY = date(2030, 1, 3)
RACERS = 40  # concurrent reservations in the race, split over two stores
RACE_CAP_USD = 1.0
RACE_AMOUNT_USD = 0.07  # 14 fit under the cap, 26 must be refused


async def test_a_reservation_within_the_caps_is_held_and_counts_as_spent(store: Store) -> None:
    held = await store.reserve(DAY, "C1", 0.4, cap_day=1.0, cap_channel=0.5)

    assert held is not None
    assert await store.spent(DAY) == pytest.approx(0.4)
    assert await store.spent(DAY, "C1") == pytest.approx(0.4)
    assert await store.spent(DAY, "C2") == 0.0
    assert await store.spent(NEXT_DAY) == 0.0


async def test_a_reservation_past_the_channel_cap_or_the_daily_cap_is_refused(store: Store) -> None:
    assert await store.reserve(DAY, "C1", 0.4, cap_day=1.0, cap_channel=0.5) is not None
    assert await store.reserve(DAY, "C1", 0.2, cap_day=1.0, cap_channel=0.5) is None  # channel: 0.6 > 0.5
    assert await store.reserve(DAY, "C2", 0.5, cap_day=1.0, cap_channel=0.5) is not None
    assert await store.reserve(DAY, "C3", 0.2, cap_day=1.0, cap_channel=0.5) is None  # day: 1.1 > 1.0
    assert await store.reserve(DAY, "C3", 0.1, cap_day=1.0, cap_channel=None) is not None  # exactly the cap
    assert await store.reserve(NEXT_DAY, "C1", 0.5, cap_day=1.0, cap_channel=0.5) is not None  # a new day
    assert await store.spent(DAY) == pytest.approx(1.0)


async def test_settling_replaces_the_reservation_by_the_actual_cost_and_frees_the_rest(store: Store) -> None:
    held = await store.reserve(DAY, "C1", 0.9, cap_day=1.0, cap_channel=None)
    assert held is not None
    assert await store.reserve(DAY, "C2", 0.5, cap_day=1.0, cap_channel=None) is None

    await store.settle(held, 0.25)

    assert await store.spent(DAY) == pytest.approx(0.25)
    assert await store.spent(DAY, "C1") == pytest.approx(0.25)
    assert await store.reserve(DAY, "C2", 0.5, cap_day=1.0, cap_channel=None) is not None


async def test_a_released_reservation_costs_nothing(store: Store) -> None:
    held = await store.reserve(DAY, "C1", 0.9, cap_day=1.0, cap_channel=None)
    assert held is not None

    await store.release_reservation(held)

    assert await store.spent(DAY) == 0.0
    assert await store.spent(DAY, "C1") == 0.0


async def test_the_days_alert_is_claimed_once_across_stores(store: Store, opener: Opener) -> None:
    other = await opener()
    try:
        claims = await asyncio.gather(*(s.claim_spend_alert(DAY) for s in (store, other, store, other)))
        assert sorted(claims) == [False, False, False, True]
        assert await other.claim_spend_alert(NEXT_DAY)
    finally:
        await other.close()


async def test_reservations_racing_from_two_stores_never_take_the_day_past_its_cap(
    store: Store, opener: Opener
) -> None:
    other = await opener()
    try:
        stores = [store, other]
        results = await asyncio.gather(
            *(
                stores[n % 2].reserve(DAY, f"C{n % 3}", RACE_AMOUNT_USD, cap_day=RACE_CAP_USD, cap_channel=None)
                for n in range(RACERS)
            )
        )
        held = [r for r in results if r is not None]
        assert len(held) == int(RACE_CAP_USD / RACE_AMOUNT_USD)
        assert await other.spent(DAY) == pytest.approx(len(held) * RACE_AMOUNT_USD)
        assert await store.spent(DAY) <= RACE_CAP_USD
        per_channel = [await store.spent(DAY, f"C{n}") for n in range(3)]
        assert sum(per_channel) == pytest.approx(await store.spent(DAY))
    finally:
        await other.close()
