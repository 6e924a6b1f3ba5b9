"""The SQLite store: one aiosqlite connection, WAL, write transactions taken with BEGIN IMMEDIATE."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiosqlite

from bot.store import (
    ACTIVE_STATUSES,
    COLUMNS,
    INTERRUPTED_ERROR,
    Clock,
    Consultation,
    ConsultationStatus,
    Store,
    apply_changes,
    from_row,
    to_row,
)
from matrec.errors import ConfigError

SQLITE_BUSY_TIMEOUT_MS = 10_000
MEMORY = ":memory:"

# One tuple of statements per schema version; never edit a released one, append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
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
    ),
)

_SELECT = f"SELECT {', '.join(COLUMNS)} FROM consultations"  # noqa: S608 (column names are ours)
_INSERT = (
    f"INSERT INTO consultations ({', '.join(COLUMNS)}) "  # noqa: S608 (column names are ours)
    f"VALUES ({', '.join(':' + c for c in COLUMNS)})"
)
_ACTIVE = ", ".join(f"'{s.value}'" for s in ACTIVE_STATUSES)


def _iso(value: datetime) -> str:
    # Fixed-width UTC text sorts in time order.
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _sql_row(consultation: Consultation) -> dict[str, Any]:
    row = to_row(consultation)
    row["created_at"] = _iso(consultation.created_at)
    row["updated_at"] = _iso(consultation.updated_at)
    return row


def _prepare_file(path: str) -> None:
    if path != MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)


class SqliteStore(Store):
    """A Store in one SQLite file (or in memory); safe for concurrent tasks and processes."""

    def __init__(self, db: aiosqlite.Connection, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        # One connection carries one transaction at a time: tasks take turns.
        self._lock = asyncio.Lock()

    @classmethod
    async def connect(cls, path: str, *, clock: Clock) -> SqliteStore:
        """Open (creating if needed) the database at `path` and migrate it."""
        _prepare_file(path)
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            db.row_factory = sqlite3.Row
            await db.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = NORMAL")
            await db.execute("PRAGMA foreign_keys = ON")
            store = cls(db, clock)
            await store._migrate()
        except BaseException:
            await db.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self._transaction() as db:
            await db.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)"
            )
            rows = await db.execute_fetchall("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            current = int(next(iter(rows))[0])
            if current > len(MIGRATIONS):
                raise ConfigError(
                    f"the database schema is version {current}, newer than this bot's {len(MIGRATIONS)}: "
                    "upgrade the bot or point DATABASE_URL at another database"
                )
            for version, statements in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in statements:
                    await db.execute(statement)
                await db.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                    (version, _iso(self._clock())),
                )

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            try:
                # IMMEDIATE takes the write lock up front: read-then-write is atomic across processes.
                await self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                await self._db.execute("COMMIT")
            except BaseException:
                # Statements run in order on the connection's thread, so this ROLLBACK follows
                # whatever was queued, even when we were cancelled; it fails only if BEGIN did.
                with suppress(sqlite3.OperationalError):
                    await self._db.execute("ROLLBACK")
                raise

    async def _select(self, where: str, parameters: Iterable[Any]) -> list[Consultation]:
        async with self._lock:
            rows = await self._db.execute_fetchall(f"{_SELECT} {where}", tuple(parameters))
        return [from_row(row) for row in rows]

    async def close(self) -> None:
        """Close the connection."""
        await self._db.close()

    async def claim_message(self, *, event_id: str | None, channel: str, ts: str) -> bool:
        """True exactly once per message (and again once after a restart interrupted all its work)."""
        now = _iso(self._clock())
        async with self._transaction() as db:
            event_is_new = True
            if event_id is not None:
                cursor = await db.execute(
                    "INSERT OR IGNORE INTO seen_events (event_id, channel, ts, seen_at) VALUES (?, ?, ?, ?)",
                    (event_id, channel, ts, now),
                )
                event_is_new = cursor.rowcount == 1
            cursor = await db.execute(
                "INSERT OR IGNORE INTO seen_messages (channel, ts, seen_at) VALUES (?, ?, ?)",
                (channel, ts, now),
            )
            if cursor.rowcount == 1:
                return event_is_new
            cursor = await db.execute(
                "UPDATE seen_messages SET reclaimable = 0, seen_at = :now "
                "WHERE channel = :channel AND ts = :ts AND reclaimable = 1 AND NOT EXISTS ("
                "  SELECT 1 FROM consultations"
                "  WHERE channel = :channel AND message_ts = :ts AND status != :interrupted)",
                {"now": now, "channel": channel, "ts": ts, "interrupted": ConsultationStatus.INTERRUPTED},
            )
            return cursor.rowcount == 1

    async def add(self, consultation: Consultation) -> None:
        """Store a new consultation."""
        try:
            async with self._transaction() as db:
                await db.execute(_INSERT, _sql_row(consultation))
        except sqlite3.IntegrityError as error:
            raise ValueError(f"consultation {consultation.id} is already stored") from error

    async def update(self, consultation_id: str, **changes: Any) -> Consultation:
        """Apply `changes`, bump updated_at and return the stored consultation."""
        async with self._transaction() as db:
            rows = list(await db.execute_fetchall(f"{_SELECT} WHERE id = ?", (consultation_id,)))
            if not rows:
                raise KeyError(consultation_id)
            updated = apply_changes(from_row(rows[0]), changes, self._clock())
            assignments = ", ".join(f"{c} = :{c}" for c in COLUMNS if c != "id")
            await db.execute(f"UPDATE consultations SET {assignments} WHERE id = :id", _sql_row(updated))  # noqa: S608
        return updated

    async def get(self, consultation_id: str) -> Consultation | None:
        """The consultation with this id, if any."""
        found = await self._select("WHERE id = ?", (consultation_id,))
        return found[0] if found else None

    async def for_message(self, channel: str, ts: str) -> list[Consultation]:
        """Consultations started by one message, oldest first."""
        return await self._select("WHERE channel = ? AND message_ts = ? ORDER BY created_at, seq", (channel, ts))

    async def for_thread(self, channel: str, thread_ts: str) -> list[Consultation]:
        """Consultations in one thread, oldest first."""
        return await self._select("WHERE channel = ? AND thread_ts = ? ORDER BY created_at, seq", (channel, thread_ts))

    async def recent(self, *, channel: str | None = None, limit: int = 20) -> list[Consultation]:
        """The latest consultations, newest first, optionally in one channel."""
        if channel is None:
            return await self._select("ORDER BY created_at DESC, seq DESC LIMIT ?", (limit,))
        return await self._select("WHERE channel = ? ORDER BY created_at DESC, seq DESC LIMIT ?", (channel, limit))

    async def mark_interrupted(self, *, idle_for_s: float = 0.0) -> int:
        """At start-up: stale RECEIVED/RUNNING consultations become INTERRUPTED; return how many."""
        now = self._clock()
        cutoff = _iso(now - timedelta(seconds=idle_for_s))
        async with self._transaction() as db:
            await db.execute(
                "UPDATE seen_messages SET reclaimable = 1 WHERE EXISTS ("  # noqa: S608 (_ACTIVE is ours)
                "  SELECT 1 FROM consultations c WHERE c.channel = seen_messages.channel"
                f"  AND c.message_ts = seen_messages.ts AND c.status IN ({_ACTIVE}) AND c.updated_at <= ?)",
                (cutoff,),
            )
            cursor = await db.execute(
                "UPDATE consultations SET status = ?, error = ?, updated_at = ? "  # noqa: S608
                f"WHERE status IN ({_ACTIVE}) AND updated_at <= ?",
                (ConsultationStatus.INTERRUPTED.value, INTERRUPTED_ERROR, _iso(now), cutoff),
            )
            return cursor.rowcount

    async def prune_dedupe(self, older_than_s: float) -> int:
        """Forget dedupe keys recorded more than `older_than_s` ago; return how many."""
        cutoff = _iso(self._clock() - timedelta(seconds=older_than_s))
        async with self._transaction() as db:
            events = await db.execute("DELETE FROM seen_events WHERE seen_at < ?", (cutoff,))
            messages = await db.execute("DELETE FROM seen_messages WHERE seen_at < ?", (cutoff,))
            return events.rowcount + messages.rowcount
