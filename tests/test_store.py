"""The consultation store's records and queries, run against SQLite and (with scripts/postgres.sh) PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.store import (
    UPDATABLE_FIELDS,
    Consultation,
    ConsultationStatus,
    DatabaseUrlError,
    Store,
    redact_url,
)
from matrec.errors import ConfigError
from tests.store_support import (  # noqa: F401 (pytest fixtures)
    START,
    FakeClock,
    M,
    Opener,
    clock_fixture,
    consultation,
    opener_fixture,
    recommendation,
    store_fixture,
    url_fixture,
)

S = ConsultationStatus


async def test_a_consultation_round_trips_with_its_recommendation_and_branches(store: Store, clock: FakeClock) -> None:
    rec = recommendation()
    stored = consultation(clock, branches=rec.branches, recommendation=rec, usage_cost_usd=0.0123)
    await store.add(stored)

    loaded = await store.get(stored.id)

    assert loaded == stored
    assert loaded is not None and loaded.recommendation is not None
    assert loaded.recommendation.scores[M.WOOD] is None
    assert loaded.branches[3].error == "Claude is overloaded"
    assert loaded.created_at.tzinfo is UTC
    assert (loaded.owner, loaded.heartbeat_at, loaded.resumes) == (None, None, 0)


async def test_an_unknown_id_gets_nothing(store: Store) -> None:
    assert await store.get("nope") is None


async def test_adding_the_same_id_twice_is_refused(store: Store, clock: FakeClock) -> None:
    stored = consultation(clock)
    await store.add(stored)
    with pytest.raises(ValueError, match="already stored"):
        await store.add(stored)


async def test_a_consultation_added_with_an_owner_is_alive_from_the_start(store: Store, clock: FakeClock) -> None:
    stored = consultation(clock, owner="bot-a")
    clock.advance(3)
    await store.add(stored)

    loaded = await store.get(stored.id)

    assert loaded is not None
    assert (loaded.owner, loaded.heartbeat_at) == ("bot-a", START + timedelta(seconds=3))


async def test_update_applies_changes_and_bumps_updated_at(store: Store, clock: FakeClock) -> None:
    stored = consultation(clock)
    await store.add(stored)
    clock.advance(5)
    rec = recommendation()

    updated = await store.update(
        stored.id,
        status=S.DONE,
        board_ts="100.2",
        branches=rec.branches,
        recommendation=rec,
        usage_cost_usd=0.5,
    )

    assert updated.status is S.DONE
    assert updated.updated_at == START + timedelta(seconds=5)
    assert updated.created_at == START
    assert await store.get(stored.id) == updated


async def test_update_changes_the_ownership_fields_too(store: Store, clock: FakeClock) -> None:
    stored = consultation(clock)
    await store.add(stored)

    updated = await store.update(stored.id, owner="bot-b", heartbeat_at=START, resumes=3)

    assert {"owner", "heartbeat_at", "resumes"} <= UPDATABLE_FIELDS
    assert (updated.owner, updated.heartbeat_at, updated.resumes) == ("bot-b", START, 3)
    assert await store.get(stored.id) == updated


async def test_update_validates_values(store: Store, clock: FakeClock) -> None:
    stored = consultation(clock)
    await store.add(stored)
    updated = await store.update(stored.id, status="running")
    assert updated.status is S.RUNNING
    with pytest.raises(ValueError, match="status"):
        await store.update(stored.id, status="sleeping")
    with pytest.raises(ValueError, match="resumes"):
        await store.update(stored.id, resumes=-1)


async def test_update_of_an_unknown_consultation_raises_key_error(store: Store) -> None:
    with pytest.raises(KeyError):
        await store.update("nope", status=S.DONE)


async def test_update_refuses_identity_and_unknown_fields(store: Store, clock: FakeClock) -> None:
    stored = consultation(clock)
    await store.add(stored)
    with pytest.raises(TypeError, match="channel, colour"):
        await store.update(stored.id, channel="C2", colour="red")


async def test_concurrent_updates_from_two_replicas_all_land(store: Store, clock: FakeClock, opener: Opener) -> None:
    stored = [consultation(clock, ts=f"100.{i}") for i in range(10)]
    for c in stored:
        await store.add(c)
    async with await opener() as replica:
        await asyncio.gather(
            *(store.update(c.id, board_ts=f"board.{c.message_ts}") for c in stored),
            *(replica.update(c.id, usage_cost_usd=0.25, status=S.RUNNING) for c in stored),
        )
    for c in stored:
        loaded = await store.get(c.id)
        assert loaded is not None
        assert (loaded.board_ts, loaded.usage_cost_usd, loaded.status) == (
            f"board.{c.message_ts}",
            0.25,
            S.RUNNING,
        )


async def test_for_thread_lists_oldest_first_and_recent_newest_first(store: Store, clock: FakeClock) -> None:
    first = consultation(clock, ts="100.1")
    clock.advance(1)
    second = consultation(clock, ts="100.2", thread_ts="100.1")
    third = consultation(clock, ts="100.2", thread_ts="100.1")  # same message, same instant
    clock.advance(1)
    elsewhere = consultation(clock, channel="C2", ts="300.1")
    for c in (third, elsewhere, first, second):
        await store.add(c)
    # `third` was added first: within one instant the insertion order decides.
    assert [c.id for c in await store.for_thread("C1", "100.1")] == [first.id, third.id, second.id]
    assert [c.id for c in await store.for_message("C1", "100.2")] == [third.id, second.id]
    assert [c.id for c in await store.recent()] == [elsewhere.id, second.id, third.id, first.id]
    assert [c.id for c in await store.recent(channel="C1", limit=2)] == [second.id, third.id]


async def test_prune_forgets_old_dedupe_keys_only(store: Store, clock: FakeClock) -> None:
    assert await store.claim_and_add(event_id="EvOld", channel="C1", ts="100.1", consultations=[])
    clock.advance(700)
    assert await store.claim_and_add(event_id="EvNew", channel="C1", ts="200.1", consultations=[])
    await store.add(consultation(clock, ts="100.1", status=S.DONE))

    assert await store.prune_dedupe(600) == 2

    assert await store.claim_and_add(event_id="EvOld", channel="C1", ts="100.1", consultations=[])
    assert not await store.claim_and_add(event_id="EvNew", channel="C1", ts="200.1", consultations=[])
    assert len(await store.for_message("C1", "100.1")) == 1


async def test_history_survives_close_and_reopen(store: Store, clock: FakeClock, opener: Opener) -> None:
    stored = consultation(clock, recommendation=recommendation())
    assert await store.claim_and_add(event_id="Ev1", channel="C1", ts="100.1", consultations=[stored])
    await store.close()

    async with await opener() as reopened:
        assert await reopened.get(stored.id) == stored
        assert not await reopened.claim_and_add(event_id="Ev1", channel="C1", ts="100.1", consultations=[])


async def test_a_relative_sqlite_path_lands_under_the_working_directory(tmp_path: Path) -> None:
    async with await Store.open("sqlite:///data/nested/matrec.db") as store:
        await store.add(Consultation(channel="C1", thread_ts="1.0", message_ts="1.0"))
    assert (tmp_path / "data" / "nested" / "matrec.db").is_file()


async def test_an_in_memory_store_serves_concurrent_tasks() -> None:
    async with await Store.open("sqlite:///:memory:") as store:
        claims = [
            store.claim_and_add(
                event_id=f"Ev{i}",
                channel="C1",
                ts="1.0",
                consultations=[Consultation(channel="C1", thread_ts="1.0", message_ts="1.0")],
            )
            for i in range(10)
        ]
        assert sum(await asyncio.gather(*claims)) == 1
        assert len(await store.recent()) == 1


def test_a_naive_datetime_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        Consultation(channel="C1", thread_ts="1.0", message_ts="1.0", created_at=datetime(2030, 1, 1))


@pytest.mark.parametrize("bad", ["mysql://bob:hunter2@db/matrec", "matrec.db", "sqlite://matrec.db", "sqlite:///"])
async def test_an_unsupported_url_names_database_url_and_the_accepted_forms(bad: str) -> None:
    with pytest.raises(DatabaseUrlError) as raised:
        await Store.open(bad)
    message = str(raised.value)
    assert isinstance(raised.value, ValueError) and isinstance(raised.value, ConfigError)
    assert "DATABASE_URL" in message and "sqlite:///:memory:" in message and "postgresql://" in message
    assert "\n" not in message
    assert "hunter2" not in message


def test_redact_url_masks_only_the_password() -> None:
    assert redact_url("postgresql://bob:s3cr/et@db:5432/matrec") == "postgresql://bob:***@db:5432/matrec"
    assert redact_url("postgresql://db:5432/matrec") == "postgresql://db:5432/matrec"
    assert redact_url("sqlite:////var/matrec.db") == "sqlite:////var/matrec.db"


async def test_opening_a_store_logs_the_url_without_its_password(
    url: str, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with await Store.open(url, clock=clock):
        pass
    assert "store opened" in caplog.text
    password = url.partition("://")[2].rpartition("@")[0].partition(":")[2]
    if password:
        assert password not in caplog.text
