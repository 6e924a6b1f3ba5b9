"""Migrations: a first-store database is adopted and upgraded, concurrent openers migrate once, newer is refused."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from bot.store import Consultation, ConsultationStatus, SchemaTooNewError, Store, StoredFile
from matrec.errors import ConfigError
from matrec.results import BranchResult
from tests.store_support import (  # noqa: F401 (pytest fixtures)
    START,
    FakeClock,
    backend_of,
    clock_fixture,
    describe_schema,
    execute_raw,
    fetch_raw,
    fresh_database,
    recommendation,
    sqlite_file,
    url_fixture,
)

S = ConsultationStatus
HEAD = "0006"
CONCURRENT_OPENS = 8
PROCESSES = 2
PROCESS_TIMEOUT_S = 60.0
REPO = Path(__file__).resolve().parents[1]

# The v1 schema as shipped: the first store's MIGRATIONS[0] and its schema_version table, verbatim.
V1_SQLITE = (
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    """CREATE TABLE consultations (
            seq INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            channel TEXT NOT NULL,
            thread_ts TEXT NOT NULL,
            message_ts TEXT NOT NULL,
            user_id TEXT,
            file_id TEXT,
            file_name TEXT,
            image_sha256 TEXT,
            context TEXT NOT NULL,
            status TEXT NOT NULL,
            board_ts TEXT,
            branches TEXT NOT NULL,
            recommendation TEXT,
            usage_cost_usd REAL,
            error TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        )""",
    "CREATE INDEX consultations_by_message ON consultations (channel, message_ts)",
    "CREATE INDEX consultations_by_thread ON consultations (channel, thread_ts, created_at)",
    "CREATE INDEX consultations_by_channel ON consultations (channel, created_at)",
    "CREATE INDEX consultations_by_created ON consultations (created_at)",
    "CREATE INDEX consultations_by_status ON consultations (status)",
    """CREATE TABLE seen_events (
            event_id TEXT PRIMARY KEY,
            channel TEXT NOT NULL,
            ts TEXT NOT NULL,
            seen_at TEXT NOT NULL
        )""",
    "CREATE INDEX seen_events_by_time ON seen_events (seen_at)",
    """CREATE TABLE seen_messages (
            channel TEXT NOT NULL,
            ts TEXT NOT NULL,
            seen_at TEXT NOT NULL,
            reclaimable INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (channel, ts)
        )""",
    "CREATE INDEX seen_messages_by_time ON seen_messages (seen_at)",
)
V1_POSTGRES = (
    "CREATE TABLE IF NOT EXISTS schema_version (version integer PRIMARY KEY, applied_at timestamptz NOT NULL)",
    """CREATE TABLE consultations (
            seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            id text NOT NULL UNIQUE,
            channel text NOT NULL,
            thread_ts text NOT NULL,
            message_ts text NOT NULL,
            user_id text,
            file_id text,
            file_name text,
            image_sha256 text,
            context text NOT NULL,
            status text NOT NULL,
            board_ts text,
            branches jsonb NOT NULL,
            recommendation jsonb,
            usage_cost_usd double precision,
            error text,
            created_at timestamptz NOT NULL,
            updated_at timestamptz NOT NULL
        )""",
    "CREATE INDEX consultations_by_message ON consultations (channel, message_ts)",
    "CREATE INDEX consultations_by_thread ON consultations (channel, thread_ts, created_at)",
    "CREATE INDEX consultations_by_channel ON consultations (channel, created_at)",
    "CREATE INDEX consultations_by_created ON consultations (created_at)",
    "CREATE INDEX consultations_by_status ON consultations (status)",
    """CREATE TABLE seen_events (
            event_id text PRIMARY KEY,
            channel text NOT NULL,
            ts text NOT NULL,
            seen_at timestamptz NOT NULL
        )""",
    "CREATE INDEX seen_events_by_time ON seen_events (seen_at)",
    """CREATE TABLE seen_messages (
            channel text NOT NULL,
            ts text NOT NULL,
            seen_at timestamptz NOT NULL,
            reclaimable boolean NOT NULL DEFAULT false,
            PRIMARY KEY (channel, ts)
        )""",
    "CREATE INDEX seen_messages_by_time ON seen_messages (seen_at)",
)
V1_INSERT_CONSULTATION = (
    "INSERT INTO consultations (id, channel, thread_ts, message_ts, user_id, file_id, file_name, image_sha256, "
    "context, status, board_ts, branches, recommendation, usage_cost_usd, error, created_at, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
# How the first store wrote a time into SQLite: fixed-width ISO-8601 UTC text.
OLD_CREATED_TEXT = "2026-11-27T10:00:00.000000+00:00"
OLD_UPDATED_TEXT = "2026-11-27T10:00:05.250000+00:00"
OLD_CREATED = datetime(2026, 11, 27, 10, 0, 0, tzinfo=UTC)
OLD_UPDATED = datetime(2026, 11, 27, 10, 0, 5, 250000, tzinfo=UTC)


def _old_consultations() -> list[Consultation]:
    """What the first store held: one finished consultation, one cut off while running."""
    rec = recommendation()
    common: dict[str, Any] = {"channel": "C1", "user_id": "U1", "file_id": "F1", "file_name": "part.jpg"}
    done = Consultation(
        **common,
        id="old-done",
        thread_ts="100.1",
        message_ts="100.1",
        context="outdoor, 5 kg",
        status=S.DONE,
        board_ts="100.2",
        branches=rec.branches,
        recommendation=rec,
        usage_cost_usd=0.0123,
        created_at=OLD_CREATED,
        updated_at=OLD_UPDATED,
    )
    running = Consultation(
        **common,
        id="old-running",
        thread_ts="200.2",
        message_ts="200.2",
        status=S.RUNNING,
        created_at=OLD_CREATED,
        updated_at=OLD_UPDATED,
    )
    return [done, running]


def _as_first_store_wrote_it(consultation: Consultation, *, sqlite: bool) -> list[Any]:
    """The first store's column values: pydantic JSON text, and ISO text times in SQLite."""
    branches = TypeAdapter(list[BranchResult]).dump_json(consultation.branches).decode()
    rec = consultation.recommendation.model_dump_json() if consultation.recommendation else None
    created, updated = (OLD_CREATED_TEXT, OLD_UPDATED_TEXT) if sqlite else (OLD_CREATED, OLD_UPDATED)
    c = consultation
    return [
        *(c.id, c.channel, c.thread_ts, c.message_ts, c.user_id, c.file_id, c.file_name, c.image_sha256),
        *(c.context, c.status.value, c.board_ts, branches, rec, c.usage_cost_usd, c.error, created, updated),
    ]


async def _make_first_store_database(url: str) -> None:
    """A database exactly as the first store left it: v1 schema, version 1, two consultations, keys."""
    sqlite = sqlite_file(url) is not None
    seen = OLD_CREATED_TEXT if sqlite else OLD_CREATED
    rows: list[tuple[str, list[Any]]] = [
        ("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)", [1, seen]),
        ("INSERT INTO seen_events (event_id, channel, ts, seen_at) VALUES (?, ?, ?, ?)", ["Ev1", "C1", "100.1", seen]),
        ("INSERT INTO seen_messages (channel, ts, seen_at) VALUES (?, ?, ?)", ["C1", "100.1", seen]),
        ("INSERT INTO seen_messages (channel, ts, seen_at) VALUES (?, ?, ?)", ["C1", "200.2", seen]),
        *((V1_INSERT_CONSULTATION, _as_first_store_wrote_it(c, sqlite=sqlite)) for c in _old_consultations()),
    ]
    await execute_raw(url, V1_SQLITE if sqlite else V1_POSTGRES, rows)


def _as_migrated(consultation: Consultation) -> Consultation:
    """What revision 0003 makes of an earlier row: its one file is `files`, its recommended part `part_text`."""
    files = [StoredFile(id=consultation.file_id, name=consultation.file_name or "")] if consultation.file_id else []
    part = consultation.recommendation.part if consultation.recommendation else ""
    return consultation.model_copy(update={"files": files, "part_text": part})


async def _revisions(url: str) -> list[str]:
    return [row[0] for row in await fetch_raw(url, "SELECT version_num FROM alembic_version")]


async def test_a_first_store_database_is_adopted_upgraded_and_its_rows_stay_readable(
    url: str, clock: FakeClock
) -> None:
    await _make_first_store_database(url)
    done, running = (_as_migrated(c) for c in _old_consultations())

    async with await Store.open(url, clock=clock) as store:
        assert await store.get(done.id) == done
        assert await store.for_message("C1", "200.2") == [running]
        new = Consultation(channel="C1", thread_ts="300.3", message_ts="300.3", owner="bot-new", created_at=START)
        assert not await store.claim_and_add(event_id="Ev2", channel="C1", ts="100.1", consultations=[new])
        assert not await store.claim_and_add(event_id="Ev1", channel="C9", ts="1.1", consultations=[new])
        assert await store.claim_and_add(event_id="Ev3", channel="C1", ts="300.3", consultations=[new])
        assert [c.id for c in await store.recent()] == [new.id, running.id, done.id]

        (taken,) = await store.take_over("bot-new", stale_after_s=60)
        assert (taken.id, taken.owner, taken.heartbeat_at, taken.resumes) == (running.id, "bot-new", START, 1)
        assert await store.heartbeat("bot-new") == 2
        updated = await store.update(done.id, error="looked at again")
        assert updated.created_at == OLD_CREATED and updated.updated_at == START
        assert await store.prune_dedupe(3600) == 3  # the first store's keys, not today's

    assert await _revisions(url) == [HEAD]
    assert await fetch_raw(url, "SELECT version FROM schema_version") == [(1,)]
    async with await Store.open(url, clock=clock) as reopened:
        assert (await reopened.get(done.id)) == updated


async def test_an_adopted_database_ends_with_the_schema_of_a_fresh_one(url: str, tmp_path: Path) -> None:
    await _make_first_store_database(url)
    async with fresh_database(backend_of(url), tmp_path / "fresh") as fresh:
        for opened in (url, fresh):
            async with await Store.open(opened):
                pass
        assert await describe_schema(url) == await describe_schema(fresh)


async def test_stores_opening_one_fresh_database_at_once_migrate_it_once(
    url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="alembic")

    stores = await asyncio.gather(*(Store.open(url) for _ in range(CONCURRENT_OPENS)))
    for store in stores:
        await store.close()

    upgrades = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Running upgrade")]
    assert len(upgrades) == len(list((REPO / "bot/store/migrations/versions").glob("r0*.py")))
    assert "-> 0001" in upgrades[0] and "0001 -> 0002" in upgrades[1]
    assert "0002 -> 0003" in upgrades[2] and "0003 -> 0004" in upgrades[3] and f"-> {HEAD}" in upgrades[-1]
    assert await _revisions(url) == [HEAD]


async def test_processes_opening_one_fresh_sqlite_file_at_once_migrate_it_and_claim_the_message_once(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'shared' / 'matrec.db'}"
    script = (
        "import asyncio, sys\n"
        "from bot.store import Consultation, Store\n"
        "async def main():\n"
        "    async with await Store.open(sys.argv[1]) as store:\n"
        "        added = [Consultation(channel='C1', thread_ts='1.0', message_ts='1.0')]\n"
        "        print(int(await store.claim_and_add(event_id=None, channel='C1', ts='1.0', consultations=added)))\n"
        "asyncio.run(main())\n"
    )
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable, "-c", script, url, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        for _ in range(PROCESSES)
    ]
    outputs = await asyncio.wait_for(asyncio.gather(*(p.communicate() for p in processes)), PROCESS_TIMEOUT_S)

    assert [p.returncode for p in processes] == [0] * PROCESSES, [err.decode() for _, err in outputs]
    assert sorted(int(out) for out, _ in outputs) == [0] * (PROCESSES - 1) + [1]
    assert await _revisions(url) == [HEAD]
    async with await Store.open(url) as store:
        assert len(await store.for_message("C1", "1.0")) == 1


async def test_a_database_migrated_by_a_newer_bot_is_refused(url: str) -> None:
    async with await Store.open(url):
        pass
    await execute_raw(url, ["UPDATE alembic_version SET version_num = '9999'"])

    with pytest.raises(SchemaTooNewError, match=f"revision 9999, newer than this bot's {HEAD}") as raised:
        await Store.open(url)
    assert isinstance(raised.value, ConfigError)
    assert await _revisions(url) == ["9999"]


async def test_a_first_store_database_of_a_later_schema_version_is_refused(url: str) -> None:
    await _make_first_store_database(url)
    await execute_raw(url, ["UPDATE schema_version SET version = 2"])

    with pytest.raises(ConfigError, match="version 2, newer than this bot"):
        await Store.open(url)
    assert "alembic_version" not in await _table_names(url)


async def _table_names(url: str) -> set[str]:
    return set((await describe_schema(url)).keys())
