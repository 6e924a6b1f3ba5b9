"""Revision 0003 on a database that revision 0002 left with data: rows gain their new fields and become searchable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from bot.store import Consultation, ConsultationKind, ConsultationStatus, Store, StoredFile, StoredImage, Turn
from matrec.results import BranchResult
from tests.store_support import (  # noqa: F401 (pytest fixtures)
    START,
    FakeClock,
    M,
    backend_of,
    clock_fixture,
    describe_schema,
    execute_raw,
    fetch_raw,
    fresh_database,
    recommendation,
    run_alembic,
    sqlite_file,
    url_fixture,
)

S = ConsultationStatus
CONCURRENT_OPENS = 6
MANY_OLD_ROWS = 200
NEW_TABLES = {"consultation_images", "turns", "feedback", "mutes", "consultation_search"}
CREATED = datetime(2030, 1, 1, 9, 0, tzinfo=UTC)
R0002_INSERT = (
    "INSERT INTO consultations (id, channel, thread_ts, message_ts, user_id, file_id, file_name, image_sha256, "
    "context, status, board_ts, branches, recommendation, usage_cost_usd, error, created_at, updated_at, owner, "
    "heartbeat_at, resumes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


def _r0002_consultations() -> list[Consultation]:
    """What a 0002 store held: a finished upload with its file, and one running without a file."""
    rec = recommendation()
    done = Consultation(
        id="old-done",
        channel="C1",
        thread_ts="100.1",
        message_ts="100.1",
        user_id="U1",
        file_id="F1",
        file_name="gearbox-housing.jpg",
        context="oil bath, 80 °C",
        status=S.DONE,
        board_ts="100.2",
        branches=rec.branches,
        recommendation=rec,
        created_at=CREATED,
        updated_at=CREATED,
    )
    running = Consultation(
        id="old-running",
        channel="C2",
        thread_ts="200.1",
        message_ts="200.1",
        context="a valve lever",
        status=S.RUNNING,
        owner="bot-a",
        heartbeat_at=CREATED,
        resumes=1,
        created_at=CREATED,
        updated_at=CREATED,
    )
    return [done, running]


def _as_r0002_wrote_it(c: Consultation, *, sqlite: bool) -> list[Any]:
    def time(value: datetime | None) -> Any:
        return value.isoformat(timespec="microseconds") if sqlite and value else value

    branches = TypeAdapter(list[BranchResult]).dump_json(c.branches).decode()
    rec = c.recommendation.model_dump_json() if c.recommendation else None
    return [
        *(c.id, c.channel, c.thread_ts, c.message_ts, c.user_id, c.file_id, c.file_name, c.image_sha256, c.context),
        *(c.status.value, c.board_ts, branches, rec, c.usage_cost_usd, c.error, time(c.created_at)),
        *(time(c.updated_at), c.owner, time(c.heartbeat_at), c.resumes),
    ]


async def _make_r0002_database(url: str, *, extra: int = 0) -> None:
    """A 0002 database with the two consultations, and `extra` more finished ones."""
    await run_alembic(url, "upgrade", "0002")
    sqlite = sqlite_file(url) is not None
    done, running = _r0002_consultations()
    copies = [done.model_copy(update={"id": f"copy-{n}", "message_ts": f"{n}.0"}) for n in range(extra)]
    rows = [(R0002_INSERT, _as_r0002_wrote_it(c, sqlite=sqlite)) for c in (done, running, *copies)]
    await execute_raw(url, [], rows)


async def test_rows_of_revision_0002_gain_kind_files_and_part_and_become_searchable(url: str, clock: FakeClock) -> None:
    await _make_r0002_database(url)
    done, running = _r0002_consultations()

    async with await Store.open(url, clock=clock) as store:
        migrated = await store.get(done.id)
        assert migrated == done.model_copy(
            update={"files": [StoredFile(id="F1", name="gearbox-housing.jpg")], "part_text": "bracket"}
        )
        assert migrated.kind is ConsultationKind.UPLOAD and migrated.requirements == []
        assert await store.get(running.id) == running
        for words in ("gearbox", "oil bath", "bracket", "creeps", "metal"):
            assert [c.id for c in await store.search(words, ["C1", "C2"])] == [done.id], words
        assert [c.id for c in await store.search("valve", ["C1", "C2"])] == [running.id]
        assert [c.id for c in await store.similar("a bracket in oil", ["C1", "C2"])] == [done.id]

        await store.set_feedback(done.id, "U2", chosen=M.CERAMIC)
        assert [c.id for c in await store.search("ceramic", ["C1"])] == [done.id]
        turn = Turn(consultation_id=done.id, channel="C1", thread_ts="100.1", message_ts="100.9", question="Why?")
        await store.add_turn(turn)
        image = StoredImage(
            position=0,
            media_type="image/jpeg",
            data=b"\xff\xd8\xff",
            width=1,
            height=1,
            original_width=1,
            original_height=1,
            original_format="JPEG",
            sha256="s",
        )
        await store.save_images(done.id, [image])
        assert (await store.turns(done.id), await store.images(done.id)) == ([turn], [image])
    assert await fetch_raw(url, "SELECT version_num FROM alembic_version") == [("0006",)]  # the head


async def test_a_database_upgraded_from_0002_has_the_schema_of_a_fresh_one(url: str, tmp_path: Path) -> None:
    await _make_r0002_database(url)
    async with fresh_database(backend_of(url), tmp_path / "fresh") as fresh:
        for opened in (url, fresh):
            async with await Store.open(opened):
                pass
        upgraded = await describe_schema(url)
        assert set(upgraded) >= NEW_TABLES
        assert upgraded == await describe_schema(fresh)


async def test_a_downgrade_to_0002_keeps_the_rows_and_a_new_upgrade_indexes_them_again(
    url: str, clock: FakeClock
) -> None:
    await _make_r0002_database(url)
    done, _ = _r0002_consultations()
    async with await Store.open(url, clock=clock) as store:
        await store.set_feedback(done.id, "U2", chosen=M.WOOD)

    await run_alembic(url, "downgrade", "0002")
    schema = await describe_schema(url)
    assert not NEW_TABLES & set(schema)
    assert "kind" not in {column[0] for column in schema["consultations"][0]}

    async with await Store.open(url, clock=clock) as store:
        assert [c.id for c in await store.search("gearbox", ["C1"])] == [done.id]
        assert await store.search("wood", ["C1"]) == []  # the feedback went with the downgrade
        assert (await store.get(done.id)) is not None


async def test_stores_opening_an_upgraded_database_at_once_each_fill_the_index_without_conflict(url: str) -> None:
    await _make_r0002_database(url, extra=MANY_OLD_ROWS)

    stores = await asyncio.gather(*(Store.open(url) for _ in range(CONCURRENT_OPENS)))
    try:
        for store in stores:
            assert len(await store.search("gearbox", ["C1"], limit=MANY_OLD_ROWS * 2)) == MANY_OLD_ROWS + 1
    finally:
        for store in stores:
            await store.close()
    assert await fetch_raw(url, "SELECT COUNT(*) FROM consultation_search") == [(MANY_OLD_ROWS + 2,)]
