"""The consultation store, run against SQLite and (with scripts/postgres.sh) PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.store import (
    INTERRUPTED_ERROR,
    Consultation,
    ConsultationStatus,
    DatabaseUrlError,
    Store,
    redact_url,
)
from matrec.errors import ConfigError
from matrec.materials import MaterialClass
from matrec.results import ImageInfo, Recommendation, Timing, TokenUsage, UsageReport
from matrec.schema import ScreenedOut
from matrec.settings import Mode, Strategy
from tests.factories import failed, ok

M = MaterialClass
S = ConsultationStatus
POSTGRES_URL_ENV = "MATREC_TEST_POSTGRES_URL"
START = datetime(2030, 1, 2, 3, 4, 5, 123456, tzinfo=UTC)
CONCURRENT_CLAIMS = 50

Opener = Callable[[], Awaitable[Store]]


class FakeClock:
    """A clock that moves only when told to."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def recommendation() -> Recommendation:
    """A complete recommendation: metal over polymer, ceramic screened out, wood failed."""
    branches = [ok(M.METAL, 8), ok(M.POLYMER, 7), ok(M.CERAMIC, 3, hard_screen="brittle"), failed(M.WOOD)]
    usage = TokenUsage(input_tokens=1200, output_tokens=340, cache_read_tokens=900)
    return Recommendation(
        part="bracket",
        best=M.METAL,
        runner_up=M.POLYMER,
        rationale="Metal carries the load; polymer creeps.",
        confidence="medium",
        scores={M.METAL: 8.0, M.POLYMER: 7.0, M.CERAMIC: 3.0, M.WOOD: None},
        screened_out=[ScreenedOut(material=M.CERAMIC, reason="brittle under impact")],
        questions=["What load?"],
        strategy=Strategy.WEIGHTED,
        mode=Mode.PARALLEL,
        branches=branches,
        missing=[M.WOOD],
        notes=["wood failed"],
        usage=UsageReport(branches=usage, aggregation=TokenUsage(), total=usage, cost_usd=0.0123, calls=4),
        timing=Timing(wall_s=12.5, slowest_branch_s=9.0, aggregation_s=2.0, prepare_s=0.4),
        image=ImageInfo(
            media_type="image/jpeg",
            width=1024,
            height=768,
            original_width=4032,
            original_height=3024,
            encoded_bytes=180_000,
            sha256="ab" * 32,
        ),
        context="outdoor, 5 kg",
    )


def consultation(clock: FakeClock, *, channel: str = "C1", ts: str = "100.1", **fields: Any) -> Consultation:
    """A RECEIVED consultation for the upload at (channel, ts), created now."""
    values: dict[str, Any] = {
        "channel": channel,
        "thread_ts": ts,
        "message_ts": ts,
        "user_id": "U1",
        "file_id": "F1",
        "file_name": "part.jpg",
        "context": "outdoor, 5 kg",
        "created_at": clock(),
        "updated_at": clock(),
    }
    return Consultation(**(values | fields))


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


async def _postgres_url() -> AsyncIterator[str]:
    base = os.environ.get(POSTGRES_URL_ENV)
    if not base:
        message = f"{POSTGRES_URL_ENV} is not set: start PostgreSQL with scripts/postgres.sh and export its URL"
        if _in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    import asyncpg

    schema = f"test_{uuid.uuid4().hex}"
    admin = await asyncpg.connect(base)
    try:
        await admin.execute(f"CREATE SCHEMA {schema}")
        # asyncpg sends unknown URL parameters as server settings: every test gets its own schema.
        yield f"{base}{'&' if '?' in base else '?'}search_path={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        await admin.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'matrec.db'}"
    else:
        async for postgres in _postgres_url():
            yield postgres


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def store(url: str, clock: FakeClock) -> AsyncIterator[Store]:
    async with await Store.open(url, clock=clock) as opened:
        yield opened


@pytest.fixture
def opener(url: str, clock: FakeClock) -> Opener:
    """Opens another Store on the same database: another replica, or the bot after a restart."""

    async def open_again() -> Store:
        return await Store.open(url, clock=clock)

    return open_again


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


async def test_an_unknown_id_gets_nothing(store: Store) -> None:
    assert await store.get("nope") is None


async def test_adding_the_same_id_twice_is_refused(store: Store, clock: FakeClock) -> None:
    stored = consultation(clock)
    await store.add(stored)
    with pytest.raises(ValueError, match="already stored"):
        await store.add(stored)


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


async def test_update_validates_values(store: Store, clock: FakeClock) -> None:
    stored = consultation(clock)
    await store.add(stored)
    updated = await store.update(stored.id, status="running")
    assert updated.status is S.RUNNING
    with pytest.raises(ValueError, match="status"):
        await store.update(stored.id, status="sleeping")


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


async def test_a_message_is_claimed_once(store: Store) -> None:
    assert await store.claim_message(event_id="Ev1", channel="C1", ts="100.1") is True
    assert await store.claim_message(event_id="Ev1", channel="C1", ts="100.1") is False


async def test_the_mention_and_message_events_of_one_upload_claim_it_once(store: Store) -> None:
    assert await store.claim_message(event_id="EvMention", channel="C1", ts="100.1") is True
    assert await store.claim_message(event_id="EvMessage", channel="C1", ts="100.1") is False
    assert await store.claim_message(event_id=None, channel="C1", ts="100.1") is False


async def test_the_same_ts_in_another_channel_is_another_message(store: Store) -> None:
    assert await store.claim_message(event_id=None, channel="C1", ts="100.1") is True
    assert await store.claim_message(event_id=None, channel="C2", ts="100.1") is True


async def test_fifty_concurrent_claims_of_one_message_yield_one_winner(store: Store) -> None:
    claims = [store.claim_message(event_id=f"Ev{i % 2}", channel="C1", ts="100.1") for i in range(CONCURRENT_CLAIMS)]
    assert sum(await asyncio.gather(*claims)) == 1


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


async def test_prune_forgets_old_dedupe_keys_only(store: Store, clock: FakeClock) -> None:
    await store.claim_message(event_id="EvOld", channel="C1", ts="100.1")
    clock.advance(700)
    await store.claim_message(event_id="EvNew", channel="C1", ts="200.1")
    await store.add(consultation(clock, ts="100.1", status=S.DONE))

    assert await store.prune_dedupe(600) == 2

    assert await store.claim_message(event_id="EvOld", channel="C1", ts="100.1")
    assert not await store.claim_message(event_id="EvNew", channel="C1", ts="200.1")
    assert len(await store.for_message("C1", "100.1")) == 1


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


async def test_history_survives_close_and_reopen(store: Store, clock: FakeClock, opener: Opener) -> None:
    stored = consultation(clock, recommendation=recommendation())
    await store.add(stored)
    await store.claim_message(event_id="Ev1", channel="C1", ts="100.1")
    await store.close()

    async with await opener() as reopened:
        assert await reopened.get(stored.id) == stored
        assert not await reopened.claim_message(event_id="Ev1", channel="C1", ts="100.1")


async def test_a_database_migrated_by_a_newer_bot_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "matrec.db"
    async with await Store.open(f"sqlite:///{path}"):
        pass
    with closing(sqlite3.connect(path)) as db, db:
        db.execute("INSERT INTO schema_version (version, applied_at) VALUES (99, '2031-01-01')")
    with pytest.raises(ConfigError, match="newer than this bot"):
        await Store.open(f"sqlite:///{path}")


async def test_a_relative_sqlite_path_lands_under_the_working_directory(tmp_path: Path) -> None:
    async with await Store.open("sqlite:///data/nested/matrec.db") as store:
        await store.add(Consultation(channel="C1", thread_ts="1.0", message_ts="1.0"))
    assert (tmp_path / "data" / "nested" / "matrec.db").is_file()


async def test_an_in_memory_store_works() -> None:
    async with await Store.open("sqlite:///:memory:") as store:
        assert await store.claim_message(event_id="Ev1", channel="C1", ts="1.0")
        assert await store.recent() == []


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
