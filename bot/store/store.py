"""The Store: consultations, their ownership by running instances, and dedupe keys, on one engine."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from bot.store.dedupe import prune_keys, record_keys
from bot.store.engine import Connections, connect
from bot.store.migrate import migrate
from bot.store.model import ACTIVE_STATUSES, COLUMNS, Clock, Consultation, apply_changes, utc_now
from bot.store.tables import CONSULTATION_COLUMNS, consultations
from bot.store.urls import parse_database_url
from matrec.urls import redact_url

logger = logging.getLogger(__name__)

RECENT_LIMIT = 20  # consultations recent() returns unless told otherwise
TAKE_OVER_LIMIT = 100  # consultations one take_over() claims unless told otherwise

_c = consultations.c
_SELECT = sa.select(*CONSULTATION_COLUMNS)
_OLDEST_FIRST = (_c.created_at, _c.seq)
_NEWEST_FIRST = (_c.created_at.desc(), _c.seq.desc())
_ACTIVE = _c.status.in_(ACTIVE_STATUSES)


class Store:
    """Consultations and dedupe keys in SQLite or PostgreSQL; `await Store.open(url)` to get one."""

    def __init__(self, connections: Connections, clock: Clock) -> None:
        self._connections = connections
        self._clock = clock

    @classmethod
    async def open(cls, url: str, *, clock: Clock = utc_now) -> Self:
        """Connect to DATABASE_URL `url`, create or migrate the schema, and return the store."""
        connections = connect(parse_database_url(url))
        try:
            await migrate(connections)
        except BaseException:
            await connections.close()
            raise
        logger.info("store opened: %s", redact_url(url))
        return cls(connections, clock)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close every connection."""
        await self._connections.close()

    async def claim_and_add(
        self, *, event_id: str | None, channel: str, ts: str, consultations: Sequence[Consultation]
    ) -> bool:
        """Record the message's dedupe keys and add `consultations`, in one transaction.

        False (and nothing added) if the event or the message was seen before, so of concurrent
        deliveries of one upload exactly one gets True. If an insert fails, the keys are not kept.
        """
        now = self._clock()
        async with self._connections.write() as connection:
            event_is_new, message_is_new = await record_keys(
                connection, event_id=event_id, channel=channel, ts=ts, now=now
            )
            if not (event_is_new and message_is_new):
                return False
            await _insert(connection, consultations, now)
        return True

    async def add(self, consultation: Consultation) -> None:
        """Store a new consultation (one with an owner and no heartbeat_at gets heartbeat_at = now)."""
        async with self._connections.write() as connection:
            await _insert(connection, [consultation], self._clock())

    async def update(self, consultation_id: str, **changes: Any) -> Consultation:
        """Apply `changes`, bump updated_at and return the stored consultation."""
        async with self._connections.write() as connection:
            query = _SELECT.where(_c.id == consultation_id).with_for_update()
            row = (await connection.execute(query)).first()
            if row is None:
                raise KeyError(consultation_id)
            updated = apply_changes(_consultation(row), changes, self._clock())
            values = {name: getattr(updated, name) for name in COLUMNS if name != "id"}
            await connection.execute(sa.update(consultations).where(_c.id == consultation_id).values(values))
        return updated

    async def get(self, consultation_id: str) -> Consultation | None:
        """The consultation with this id, if any."""
        found = await self._select(_SELECT.where(_c.id == consultation_id))
        return found[0] if found else None

    async def for_message(self, channel: str, ts: str) -> list[Consultation]:
        """Consultations started by one message, oldest first."""
        return await self._select(_SELECT.where(_c.channel == channel, _c.message_ts == ts).order_by(*_OLDEST_FIRST))

    async def for_thread(self, channel: str, thread_ts: str) -> list[Consultation]:
        """Consultations in one thread, oldest first."""
        query = _SELECT.where(_c.channel == channel, _c.thread_ts == thread_ts).order_by(*_OLDEST_FIRST)
        return await self._select(query)

    async def recent(self, *, channel: str | None = None, limit: int = RECENT_LIMIT) -> list[Consultation]:
        """The latest consultations, newest first, optionally in one channel."""
        query = _SELECT.order_by(*_NEWEST_FIRST).limit(limit)
        return await self._select(query if channel is None else query.where(_c.channel == channel))

    async def heartbeat(self, owner: str) -> int:
        """Mark every active consultation `owner` holds as alive now; return how many."""
        return await self._update_owned(owner, heartbeat_at=self._clock())

    async def release(self, owner: str) -> int:
        """At shutdown: leave `owner`'s active consultations for any instance to take over at once."""
        return await self._update_owned(owner, heartbeat_at=None)

    async def take_over(self, owner: str, *, stale_after_s: float, limit: int = TAKE_OVER_LIMIT) -> list[Consultation]:
        """Take active consultations of other owners silent for `stale_after_s` (or never heard of).

        Each taken one gets owner=`owner`, heartbeat_at=now and one more resume; they come back
        oldest first. Concurrent callers never take the same one: PostgreSQL skips rows another
        transaction has locked, SQLite runs one writer at a time.
        """
        now = self._clock()
        stale = sa.or_(_c.heartbeat_at.is_(None), _c.heartbeat_at <= now - timedelta(seconds=stale_after_s))
        candidates = (
            sa.select(_c.seq)
            .where(_ACTIVE, _c.owner.is_distinct_from(owner), stale)
            .order_by(*_OLDEST_FIRST)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        statement = (
            sa.update(consultations)
            .where(_c.seq.in_(candidates))
            .values(owner=owner, heartbeat_at=now, resumes=_c.resumes + 1)
            .returning(_c.seq, *CONSULTATION_COLUMNS)
        )
        async with self._connections.write() as connection:
            rows = (await connection.execute(statement)).all()
        oldest_first = sorted(rows, key=lambda row: (row.created_at, row.seq))
        return [Consultation.model_validate({name: row._mapping[name] for name in COLUMNS}) for row in oldest_first]

    async def prune_dedupe(self, older_than_s: float) -> int:
        """Forget dedupe keys recorded more than `older_than_s` ago; return how many."""
        cutoff = self._clock() - timedelta(seconds=older_than_s)
        async with self._connections.write() as connection:
            return await prune_keys(connection, seen_before=cutoff)

    async def _select(self, query: sa.Select[Any]) -> list[Consultation]:
        async with self._connections.read() as connection:
            rows = (await connection.execute(query)).all()
        return [_consultation(row) for row in rows]

    async def _update_owned(self, owner: str, *, heartbeat_at: datetime | None) -> int:
        statement = sa.update(consultations).where(_c.owner == owner, _ACTIVE).values(heartbeat_at=heartbeat_at)
        async with self._connections.write() as connection:
            return (await connection.execute(statement)).rowcount


def _consultation(row: sa.Row[Any]) -> Consultation:
    return Consultation.model_validate(dict(row._mapping))


async def _insert(connection: AsyncConnection, added: Sequence[Consultation], now: datetime) -> None:
    """Insert `added`; ValueError (rolling the transaction back) if one's id is already stored."""
    if not added:
        return
    rows = [_row(consultation, now) for consultation in added]
    try:
        await connection.execute(sa.insert(consultations), rows)
    except sa.exc.IntegrityError as error:
        ids = ", ".join(consultation.id for consultation in added)
        raise ValueError(f"consultation {ids} is already stored") from error


def _row(consultation: Consultation, now: datetime) -> dict[str, Any]:
    row = {name: getattr(consultation, name) for name in COLUMNS}
    if consultation.owner is not None and consultation.heartbeat_at is None:
        # Otherwise another instance would see it as stale before its owner's first heartbeat.
        row["heartbeat_at"] = now
    return row
