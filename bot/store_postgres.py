"""The PostgreSQL store: an asyncpg pool, jsonb columns, claims by INSERT ... ON CONFLICT DO NOTHING."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import asyncpg

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

POSTGRES_POOL_MIN_SIZE = 1
POSTGRES_POOL_MAX_SIZE = 10
POSTGRES_COMMAND_TIMEOUT_S = 30.0
# Replicas starting together migrate one at a time under this transaction-scoped advisory lock.
MIGRATION_LOCK_KEY = 0x6D617472656301  # "matrec" + 01

# One tuple of statements per schema version; never edit a released one, append a new one.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
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
    ),
)

# asyncpg hands jsonb over as JSON text both ways, which is what from_row/to_row speak.
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM consultations"  # noqa: S608 (column names are ours)
_INSERT = (
    f"INSERT INTO consultations ({', '.join(COLUMNS)}) "  # noqa: S608 (column names are ours)
    f"VALUES ({', '.join(f'${i}' for i in range(1, len(COLUMNS) + 1))})"
)
_UPDATE = (
    "UPDATE consultations SET "  # noqa: S608 (column names are ours)
    + ", ".join(f"{c} = ${i}" for i, c in enumerate(COLUMNS, start=1) if c != "id")
    + " WHERE id = $1"
)
_ACTIVE = [s.value for s in ACTIVE_STATUSES]


def _values(consultation: Consultation) -> list[Any]:
    row = to_row(consultation)
    return [row[c] for c in COLUMNS]


class PostgresStore(Store):
    """A Store in a PostgreSQL database, shared safely by several bot processes."""

    def __init__(self, pool: Any, clock: Clock) -> None:
        self._pool = pool
        self._clock = clock

    @classmethod
    async def connect(cls, url: str, *, clock: Clock) -> PostgresStore:
        """Open a connection pool to `url` and migrate the schema."""
        pool = await asyncpg.create_pool(
            url,
            min_size=POSTGRES_POOL_MIN_SIZE,
            max_size=POSTGRES_POOL_MAX_SIZE,
            command_timeout=POSTGRES_COMMAND_TIMEOUT_S,
        )
        store = cls(pool, clock)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version "
                "(version integer PRIMARY KEY, applied_at timestamptz NOT NULL)"
            )
            current = int(await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))
            if current > len(MIGRATIONS):
                raise ConfigError(
                    f"the database schema is version {current}, newer than this bot's {len(MIGRATIONS)}: "
                    "upgrade the bot or point DATABASE_URL at another database"
                )
            for version, statements in enumerate(MIGRATIONS[current:], start=current + 1):
                for statement in statements:
                    await conn.execute(statement)
                await conn.execute(
                    "INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)", version, self._clock()
                )

    async def _select(self, where: str, *parameters: Any) -> list[Consultation]:
        records = await self._pool.fetch(f"{_SELECT} {where}", *parameters)
        return [from_row(record) for record in records]

    async def close(self) -> None:
        """Close the pool."""
        await self._pool.close()

    async def claim_message(self, *, event_id: str | None, channel: str, ts: str) -> bool:
        """True exactly once per message (and again once after a restart interrupted all its work)."""
        now = self._clock()
        async with self._pool.acquire() as conn, conn.transaction():
            event_is_new = True
            if event_id is not None:
                inserted = await conn.fetchval(
                    "INSERT INTO seen_events (event_id, channel, ts, seen_at) VALUES ($1, $2, $3, $4) "
                    "ON CONFLICT DO NOTHING RETURNING true",
                    event_id,
                    channel,
                    ts,
                    now,
                )
                event_is_new = inserted is not None
            inserted = await conn.fetchval(
                "INSERT INTO seen_messages (channel, ts, seen_at) VALUES ($1, $2, $3) "
                "ON CONFLICT DO NOTHING RETURNING true",
                channel,
                ts,
                now,
            )
            if inserted is not None:
                return event_is_new
            # Re-evaluated on the locked row, so of concurrent retries only one re-claims.
            reclaimed = await conn.fetchval(
                "UPDATE seen_messages SET reclaimable = false, seen_at = $3 "
                "WHERE channel = $1 AND ts = $2 AND reclaimable AND NOT EXISTS ("
                "  SELECT 1 FROM consultations"
                "  WHERE channel = $1 AND message_ts = $2 AND status <> $4) "
                "RETURNING true",
                channel,
                ts,
                now,
                ConsultationStatus.INTERRUPTED.value,
            )
            return reclaimed is not None

    async def add(self, consultation: Consultation) -> None:
        """Store a new consultation."""
        try:
            await self._pool.execute(_INSERT, *_values(consultation))
        except asyncpg.UniqueViolationError as error:
            raise ValueError(f"consultation {consultation.id} is already stored") from error

    async def update(self, consultation_id: str, **changes: Any) -> Consultation:
        """Apply `changes`, bump updated_at and return the stored consultation."""
        async with self._pool.acquire() as conn, conn.transaction():
            record = await conn.fetchrow(f"{_SELECT} WHERE id = $1 FOR UPDATE", consultation_id)
            if record is None:
                raise KeyError(consultation_id)
            updated = apply_changes(from_row(record), changes, self._clock())
            await conn.execute(_UPDATE, *_values(updated))
        return updated

    async def get(self, consultation_id: str) -> Consultation | None:
        """The consultation with this id, if any."""
        found = await self._select("WHERE id = $1", consultation_id)
        return found[0] if found else None

    async def for_message(self, channel: str, ts: str) -> list[Consultation]:
        """Consultations started by one message, oldest first."""
        return await self._select("WHERE channel = $1 AND message_ts = $2 ORDER BY created_at, seq", channel, ts)

    async def for_thread(self, channel: str, thread_ts: str) -> list[Consultation]:
        """Consultations in one thread, oldest first."""
        return await self._select("WHERE channel = $1 AND thread_ts = $2 ORDER BY created_at, seq", channel, thread_ts)

    async def recent(self, *, channel: str | None = None, limit: int = 20) -> list[Consultation]:
        """The latest consultations, newest first, optionally in one channel."""
        if channel is None:
            return await self._select("ORDER BY created_at DESC, seq DESC LIMIT $1", limit)
        return await self._select("WHERE channel = $1 ORDER BY created_at DESC, seq DESC LIMIT $2", channel, limit)

    async def mark_interrupted(self, *, idle_for_s: float = 0.0) -> int:
        """At start-up: stale RECEIVED/RUNNING consultations become INTERRUPTED; return how many."""
        now = self._clock()
        cutoff = now - timedelta(seconds=idle_for_s)
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE seen_messages s SET reclaimable = true FROM consultations c "
                "WHERE c.channel = s.channel AND c.message_ts = s.ts AND c.status = ANY($1::text[]) "
                "AND c.updated_at <= $2",
                _ACTIVE,
                cutoff,
            )
            interrupted = await conn.fetch(
                "UPDATE consultations SET status = $2, error = $3, updated_at = $4 "
                "WHERE status = ANY($1::text[]) AND updated_at <= $5 RETURNING id",
                _ACTIVE,
                ConsultationStatus.INTERRUPTED.value,
                INTERRUPTED_ERROR,
                now,
                cutoff,
            )
        return len(interrupted)

    async def prune_dedupe(self, older_than_s: float) -> int:
        """Forget dedupe keys recorded more than `older_than_s` ago; return how many."""
        cutoff = self._clock() - timedelta(seconds=older_than_s)
        async with self._pool.acquire() as conn, conn.transaction():
            events = await conn.fetch("DELETE FROM seen_events WHERE seen_at < $1 RETURNING 1", cutoff)
            messages = await conn.fetch("DELETE FROM seen_messages WHERE seen_at < $1 RETURNING 1", cutoff)
        return len(events) + len(messages)
